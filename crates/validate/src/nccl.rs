//! nccl-tests' text output (`all_reduce_perf` and the other `*_perf` programs).
//!
//! The header (`# nThread 1 nGpus 8 ... validation: 1 graph: 0`), one line per rank
//! (`#  Rank  0 Group  0 Pid 1234 on node01 device  0 [0x18] NVIDIA H100 ...`), the
//! column header (`size count type redop root | out-of-place: time algbw busbw #wrong |
//! in-place: ...`, `root` only in newer versions), one line per message size, and the
//! footer (`# Out of bounds values : 0 OK`, `# Avg bus bandwidth : X`). Columns are
//! found by the header's names, so either layout reads.

use crate::Error;
use crate::results::{Collective, Perf, Results, SizeRow, Status, Test, Tool};

/// Reads nccl-tests' output; errors name the line.
///
/// # Errors
///
/// [`Error::Format`]: no column header (not nccl-tests' output), a row that does not
/// match it, a value that is not a number.
pub fn parse_text(text: &str, source: &str) -> Result<Results, Error> {
    let bad = |line: usize, message: String| Error::format(source, format!("line {line}"), message);
    let mut name = None;
    let mut version = None;
    let mut devices = Vec::new();
    let mut hosts: Vec<String> = Vec::new();
    let mut ranks = 0u32;
    let mut columns: Option<Vec<String>> = None;
    let mut sizes = Vec::new();
    let mut avg = None;
    let mut out_of_bounds = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let c = comment.trim();
            let words: Vec<&str> = c.split_whitespace().collect();
            if let Some(rest) = c.strip_prefix("Collective test starting:") {
                name = Some(rest.trim().to_string());
            } else if c.starts_with("nccl-tests version") {
                version = words.get(2).map(|v| (*v).to_string());
            } else if words.first() == Some(&"Rank") {
                ranks += 1;
                let after = |key: &str| {
                    words
                        .iter()
                        .position(|w| *w == key)
                        .and_then(|p| words.get(p + 1))
                };
                if let Some(h) = after("on")
                    && !hosts.iter().any(|x| x == h)
                {
                    hosts.push((*h).to_string());
                }
                if let Some(d) = after("device").and_then(|d| d.parse::<u32>().ok()) {
                    devices.push(d);
                }
            } else if words.contains(&"size")
                && words.contains(&"count")
                && words.contains(&"busbw")
            {
                columns = Some(words.iter().map(|w| (*w).to_string()).collect());
            } else if let Some(rest) = c.strip_prefix("Out of bounds values") {
                out_of_bounds = rest
                    .trim_start_matches([' ', ':'])
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse().ok());
            } else if let Some(rest) = c.strip_prefix("Avg bus bandwidth") {
                avg = rest
                    .trim_start_matches([' ', ':'])
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse().ok());
            }
            continue;
        }
        let Some(cols) = &columns else {
            // Lines before the table that are not comments (NCCL's own INFO lines).
            continue;
        };
        let cells: Vec<&str> = line.split_whitespace().collect();
        if cells.first().is_none_or(|c| c.parse::<u64>().is_err()) {
            continue; // NCCL INFO/WARN lines between rows
        }
        if cells.len() != cols.len() {
            return Err(bad(
                n,
                format!(
                    "{} values where the column header has {} (truncated?)",
                    cells.len(),
                    cols.len()
                ),
            ));
        }
        let pos = |name: &str, nth: usize| {
            cols.iter()
                .enumerate()
                .filter(|(_, c)| c.as_str() == name)
                .nth(nth)
                .map(|(p, _)| p)
        };
        let num = |name: &str, nth: usize| -> Result<f64, Error> {
            let p =
                pos(name, nth).ok_or_else(|| bad(n, format!("no {name} column in the header")))?;
            cells[p]
                .parse::<f64>()
                .map_err(|_| bad(n, format!("{name}: {:?} is not a number", cells[p])))
        };
        let wrong = |nth: usize| -> Result<Option<u64>, Error> {
            let Some(p) = pos("#wrong", nth) else {
                return Ok(None);
            };
            match cells[p] {
                "N/A" => Ok(None),
                v => v
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| bad(n, format!("#wrong: {v:?} is not a count"))),
            }
        };
        let perf = |nth: usize| -> Result<Perf, Error> {
            Ok(Perf {
                time_us: num("time", nth)?,
                alg_bw: num("algbw", nth)?,
                bus_bw: num("busbw", nth)?,
                wrong: wrong(nth)?,
            })
        };
        let text_at = |name: &str| {
            pos(name, 0)
                .map(|p| cells[p].to_string())
                .unwrap_or_default()
        };
        sizes.push(SizeRow {
            bytes: cells[0]
                .parse()
                .map_err(|_| bad(n, "size is not a byte count".into()))?,
            count: cells
                .get(pos("count", 0).unwrap_or(1))
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| bad(n, "count is not a number".into()))?,
            dtype: text_at("type"),
            redop: text_at("redop"),
            out_of_place: perf(0)?,
            in_place: perf(1)?,
        });
    }
    if columns.is_none() {
        return Err(Error::format(
            source,
            "the whole file".into(),
            "no `size count type ... busbw #wrong` column header: not nccl-tests' output".into(),
        ));
    }
    let wrong: u64 = sizes
        .iter()
        .flat_map(|s| [s.out_of_place.wrong, s.in_place.wrong])
        .flatten()
        .sum();
    let status = if sizes.is_empty() {
        Status::Running
    } else if wrong > 0 || out_of_bounds.is_some_and(|o| o > 0) {
        Status::Fail
    } else {
        Status::Passed
    };
    let message = match status {
        Status::Running => Some("the table has no rows: the test did not finish".to_string()),
        Status::Fail => Some(format!(
            "{wrong} wrong elements{}",
            out_of_bounds
                .filter(|o| *o > 0)
                .map(|o| format!(", {o} out-of-bounds values"))
                .unwrap_or_default()
        )),
        _ => None,
    };
    Ok(Results {
        tool: Tool::NcclTests,
        source: source.to_string(),
        version,
        driver_version: None,
        devices: Vec::new(),
        error: None,
        tests: vec![Test {
            name: name.unwrap_or_else(|| "nccl-tests".to_string()),
            status,
            message,
            matrices: Vec::new(),
            collective: Some(Collective {
                ranks,
                devices,
                hosts,
                sizes,
                avg_bus_bandwidth: avg,
                out_of_bounds,
            }),
            entities: Vec::new(),
        }],
    })
}
