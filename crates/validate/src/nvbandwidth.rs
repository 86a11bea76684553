//! nvbandwidth's output: its JSON (`-j`) and its text.
//!
//! JSON: `{"nvbandwidth": {"version", "Driver Version", "GPU Device list", "error"?,
//! "testcases": [{"name", "status", "bandwidth_description", "bandwidth_matrix",
//! "sum", "error"?}]}}`, matrix cells as strings (`"N/A"` where there is no value). A
//! test with several matrices (bidirectional copies: Read1, Read2, Total) has their rows
//! one after another under the last description; the last block, the total, is kept.
//!
//! Text: `Running NAME.`, then either a status line (`Waived: ...`, `Error: ...`) or,
//! per matrix, a description line, a header of column labels, one line per row and
//! `SUM NAME VALUE`. A test whose `Running` line has nothing after it crashed.

use serde_json::Value;

use crate::Error;
use crate::results::{Axis, Direction, Matrix, Results, Status, Test, Tool, Unit};

/// Reads a description line's axes, direction and unit.
fn describe(description: &str) -> (Axis, Axis, Direction, Unit) {
    let axis = |tag: &str| {
        if description.contains(&format!("CPU({tag})")) {
            Some(Axis::Cpu)
        } else if description.contains(&format!("GPU({tag})")) {
            Some(Axis::Gpu)
        } else {
            None
        }
    };
    let all = description.contains("All Gpus") || description.contains("All ->");
    let rows = axis("row").unwrap_or(if all { Axis::All } else { Axis::Gpu });
    let columns = axis("column").unwrap_or(Axis::Gpu);
    let direction = if description.contains("<->") {
        Direction::Both
    } else if description.contains("->") {
        Direction::RowToColumn
    } else if description.contains("<-") {
        Direction::ColumnToRow
    } else if description.contains("local") {
        Direction::Local
    } else {
        Direction::Unknown
    };
    let unit = if description.contains("(ns)") || description.contains("latency") {
        Unit::Ns
    } else {
        Unit::GBps
    };
    (rows, columns, direction, unit)
}

fn status(s: &str) -> Option<Status> {
    Some(match s {
        "Passed" => Status::Passed,
        "Waived" => Status::Waived,
        "Error" => Status::Error,
        "Not Found" => Status::NotFound,
        "Running" => Status::Running,
        _ => return None,
    })
}

fn cell(s: &str) -> Option<Option<f64>> {
    if s == "N/A" {
        return Some(None);
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite()).map(Some)
}

/// Reads nvbandwidth's JSON; `source` names the file in errors, which give the JSON path.
///
/// # Errors
///
/// [`Error::Format`] for JSON that is not nvbandwidth's, naming the path.
pub fn parse_json(text: &str, source: &str) -> Result<Results, Error> {
    let bad = |at: String, message: String| Error::format(source, at, message);
    let root: Value =
        serde_json::from_str(text).map_err(|e| bad(format!("line {}", e.line()), e.to_string()))?;
    let nvb = root.get("nvbandwidth").ok_or_else(|| {
        bad(
            "$".into(),
            "no \"nvbandwidth\" object: not nvbandwidth's JSON".into(),
        )
    })?;
    let string = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let mut results = Results {
        tool: Tool::Nvbandwidth,
        source: source.to_string(),
        version: string(nvb.get("version")),
        driver_version: string(nvb.get("Driver Version")),
        devices: nvb
            .get("GPU Device list")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        error: match nvb.get("error") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(a)) => Some(
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            _ => None,
        },
        tests: Vec::new(),
    };
    let Some(cases) = nvb.get("testcases") else {
        return Ok(results);
    };
    let cases = cases
        .as_array()
        .ok_or_else(|| bad("nvbandwidth.testcases".into(), "not an array".into()))?;
    for (i, c) in cases.iter().enumerate() {
        let at = |f: &str| format!("nvbandwidth.testcases[{i}].{f}");
        let name = string(c.get("name")).ok_or_else(|| bad(at("name"), "missing".into()))?;
        let raw_status =
            string(c.get("status")).ok_or_else(|| bad(at("status"), "missing".into()))?;
        let status = status(&raw_status).ok_or_else(|| {
            bad(
                at("status"),
                format!("{raw_status:?} is not a status nvbandwidth writes"),
            )
        })?;
        let mut test = Test {
            name,
            status,
            message: string(c.get("error")),
            matrices: Vec::new(),
            collective: None,
            entities: Vec::new(),
        };
        if let Some(m) = c.get("bandwidth_matrix") {
            let rows = m
                .as_array()
                .ok_or_else(|| bad(at("bandwidth_matrix"), "not an array".into()))?;
            let mut values = Vec::with_capacity(rows.len());
            for (r, row) in rows.iter().enumerate() {
                let row = row.as_array().ok_or_else(|| {
                    bad(at(&format!("bandwidth_matrix[{r}]")), "not an array".into())
                })?;
                let mut out = Vec::with_capacity(row.len());
                for (k, v) in row.iter().enumerate() {
                    let parsed = match v {
                        Value::String(s) => cell(s.trim()),
                        Value::Number(n) => n.as_f64().map(Some),
                        _ => None,
                    };
                    out.push(parsed.ok_or_else(|| {
                        bad(
                            at(&format!("bandwidth_matrix[{r}][{k}]")),
                            format!("{v} is not a number or \"N/A\""),
                        )
                    })?);
                }
                values.push(out);
            }
            let description = string(c.get("bandwidth_description")).unwrap_or_default();
            let (rows_axis, columns, direction, unit) = describe(&description);
            // Several matrices of one test come one after another: keep the last block
            // (the total of a bidirectional copy).
            let block = match rows_axis {
                Axis::Gpu if columns == Axis::Gpu => values.first().map_or(0, Vec::len),
                _ => 1,
            };
            if block > 0 && values.len() > block && values.len() % block == 0 {
                values.drain(..values.len() - block);
            }
            if let Some(w) = values.first().map(Vec::len)
                && let Some(r) = values.iter().position(|row| row.len() != w)
            {
                return Err(bad(
                    at(&format!("bandwidth_matrix[{r}]")),
                    format!("{} values where the first row has {w}", values[r].len()),
                ));
            }
            test.matrices.push(Matrix {
                description,
                rows: rows_axis,
                columns,
                direction,
                unit,
                values,
                sum: c.get("sum").and_then(Value::as_f64),
            });
        }
        results.tests.push(test);
    }
    Ok(results)
}

/// Reads nvbandwidth's text output; errors name the line.
///
/// # Errors
///
/// [`Error::Format`]: a matrix cut short, a row that does not match its header, a value
/// that is not a number, or no test at all.
pub fn parse_text(text: &str, source: &str) -> Result<Results, Error> {
    let bad = |line: usize, message: String| Error::format(source, format!("line {line}"), message);
    let mut results = Results {
        tool: Tool::Nvbandwidth,
        source: source.to_string(),
        version: None,
        driver_version: None,
        devices: Vec::new(),
        error: None,
        tests: Vec::new(),
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_end();
        i += 1;
        if let Some(v) = line.strip_prefix("nvbandwidth Version: ") {
            results.version = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("Driver Version: ") {
            results.driver_version = Some(v.trim().to_string());
        } else if line.starts_with("Device ") && line.contains(": ") && results.tests.is_empty() {
            results
                .devices
                .push(line["Device ".len()..].trim().to_string());
        } else if let Some(rest) = line.strip_prefix("Running ") {
            let name = rest.trim().trim_end_matches('.').to_string();
            results.tests.push(Test {
                name,
                status: Status::Running,
                message: None,
                matrices: Vec::new(),
                collective: None,
                entities: Vec::new(),
            });
        } else if let Some(test) = results.tests.last_mut() {
            if let Some((word, msg)) = line.split_once(": ")
                && let Some(s) = status(word.trim())
            {
                test.status = s;
                test.message = Some(msg.trim().to_string());
                continue;
            }
            let is_description =
                line.contains("(GB/s)") || line.contains("(ns)") || line.contains(" BW");
            if !is_description {
                continue;
            }
            // A matrix: header, rows until a blank line, then the SUM line.
            let description = line.trim().to_string();
            let header_at = i + 1;
            let header: Vec<&str> = lines
                .get(i)
                .ok_or_else(|| bad(header_at, "the file ends before the matrix's header".into()))?
                .split_whitespace()
                .collect();
            i += 1;
            let mut values = Vec::new();
            loop {
                let row_at = i + 1;
                let Some(row) = lines.get(i) else {
                    return Err(bad(
                        row_at,
                        format!(
                            "the file ends inside the matrix of {} (truncated)",
                            test.name
                        ),
                    ));
                };
                i += 1;
                if row.trim().is_empty() {
                    break;
                }
                let cells: Vec<&str> = row.split_whitespace().collect();
                // The row label, then one value per column ("N/A" is one word).
                if cells.len() != header.len() + 1 {
                    return Err(bad(
                        row_at,
                        format!(
                            "{} values where the header has {} columns",
                            cells.len().saturating_sub(1),
                            header.len()
                        ),
                    ));
                }
                let mut out = Vec::with_capacity(header.len());
                for c in &cells[1..] {
                    out.push(
                        cell(c)
                            .ok_or_else(|| bad(row_at, format!("{c:?} is not a number or N/A")))?,
                    );
                }
                values.push(out);
            }
            // SUM (or the PERF line of a formatter) closes the matrix.
            let sum_at = i + 1;
            let sum_line = lines.get(i).ok_or_else(|| {
                bad(
                    sum_at,
                    format!(
                        "the file ends before the SUM line of {} (truncated)",
                        test.name
                    ),
                )
            })?;
            i += 1;
            let sum = sum_line
                .strip_prefix("SUM ")
                .or_else(|| sum_line.strip_prefix("&&&& PERF "))
                .and_then(|r| r.split_whitespace().nth(1))
                .map(|v| v.trim_end_matches(|c: char| c.is_ascii_alphabetic() || c == '/'))
                .and_then(|v| v.parse::<f64>().ok());
            if sum.is_none() {
                return Err(bad(
                    sum_at,
                    format!("expected `SUM {} VALUE` after the matrix", test.name),
                ));
            }
            let (rows, columns, direction, unit) = describe(&description);
            test.matrices.push(Matrix {
                description,
                rows,
                columns,
                direction,
                unit,
                values,
                sum,
            });
            if test.status == Status::Running {
                test.status = Status::Passed;
            }
        }
    }
    if results.tests.is_empty() {
        return Err(Error::format(
            source,
            "the whole file".into(),
            "no `Running TEST.` line: not nvbandwidth's output".into(),
        ));
    }
    Ok(results)
}

/// Writes `results` as nvbandwidth's JSON (`-j`), so tools that read nvbandwidth read
/// linkwise's benchmarks too: one test case per test, its last matrix as
/// `bandwidth_matrix` with cells as nvbandwidth writes them (strings, `"N/A"` where
/// there is no value). [`parse_json`] reads it back to the same matrices.
pub fn to_json(results: &Results) -> Value {
    let status = |s: Status| match s {
        Status::Passed | Status::Warn | Status::Skip => "Passed",
        Status::Waived => "Waived",
        Status::NotFound => "Not Found",
        Status::Running => "Running",
        Status::Error | Status::Fail => "Error",
    };
    let cases: Vec<Value> = results
        .tests
        .iter()
        .map(|t| {
            let mut case = serde_json::json!({ "name": t.name, "status": status(t.status) });
            if let Some(m) = t.matrices.last() {
                case["bandwidth_description"] = Value::from(m.description.clone());
                case["bandwidth_matrix"] = m
                    .values
                    .iter()
                    .map(|row| {
                        row.iter()
                            .map(|v| v.map_or_else(|| "N/A".to_string(), |v| format!("{v:.2}")))
                            .collect::<Vec<_>>()
                    })
                    .collect();
                if let Some(sum) = m.sum {
                    case["sum"] = Value::from(sum);
                }
            }
            if let Some(e) = &t.message {
                case["error"] = Value::from(e.clone());
            }
            case
        })
        .collect();
    let mut nvb = serde_json::json!({
        "version": results.version.clone().unwrap_or_default(),
        "GPU Device list": results.devices,
        "testcases": cases,
    });
    if let Some(d) = &results.driver_version {
        nvb["Driver Version"] = Value::from(d.clone());
    }
    if let Some(e) = &results.error {
        nvb["error"] = Value::from(e.clone());
    }
    serde_json::json!({ "nvbandwidth": nvb })
}
