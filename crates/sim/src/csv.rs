//! Reading the trace CSVs (openb node and pod lists): header-driven, quoted fields
//! allowed, every error naming the file, the line and the column.

use std::collections::BTreeSet;
use std::path::Path;

use linkwise_core::placement::{GPU_MILLI, NodeSpec, PodSpec};

use crate::Error;

/// A parsed CSV file: its header and its records.
#[derive(Debug)]
pub struct Table {
    /// The file as given on the command line (for messages).
    pub file: String,
    /// Column names, trimmed.
    pub header: Vec<String>,
    /// Records after the header; blank lines skipped.
    pub rows: Vec<Record>,
}

/// One record and the line it starts on (1-based).
#[derive(Debug)]
pub struct Record {
    pub line: usize,
    pub fields: Vec<String>,
}

// === impl Table ===

impl Table {
    /// Parses `text` (RFC 4180: `,` separators, `"` quoting with `""` escapes, fields may
    /// span lines; `\n` or `\r\n` line ends; a UTF-8 BOM is skipped).
    pub fn parse(file: &str, text: &str) -> Result<Table, Error> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut records: Vec<Record> = Vec::new();
        let mut chars = text.chars().peekable();
        let mut line = 1usize;
        let mut fields: Vec<String> = Vec::new();
        let mut field = String::new();
        let mut start = 1usize;
        // Whether the current record has any content (a blank line has none).
        let mut any = false;
        let mut quoted_field = false;
        while let Some(c) = chars.next() {
            match c {
                '"' if field.trim().is_empty() && !quoted_field => {
                    // A quoted field: read to the closing quote.
                    let open_line = line;
                    field.clear();
                    quoted_field = true;
                    any = true;
                    loop {
                        match chars.next() {
                            Some('"') if chars.peek() == Some(&'"') => {
                                chars.next();
                                field.push('"');
                            }
                            Some('"') => break,
                            Some(ch) => {
                                if ch == '\n' {
                                    line += 1;
                                }
                                field.push(ch);
                            }
                            None => {
                                return Err(Error::Input(format!(
                                    "{file}: line {open_line}: unterminated quoted field (a `\"` without its closing `\"`)"
                                )));
                            }
                        }
                    }
                    // Only spaces may follow the closing quote before the separator.
                    while let Some(&ch) = chars.peek() {
                        if ch == ' ' || ch == '\t' {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    if let Some(&ch) = chars.peek()
                        && ch != ','
                        && ch != '\n'
                        && ch != '\r'
                    {
                        return Err(Error::Input(format!(
                            "{file}: line {line}, field {}: unexpected {ch:?} after a closing quote (quote the whole field and double inner quotes: \"\")",
                            fields.len() + 1
                        )));
                    }
                }
                ',' => {
                    any = true;
                    fields.push(finish(&mut field, &mut quoted_field));
                }
                '\r' if chars.peek() == Some(&'\n') => {}
                '\n' | '\r' => {
                    if any || !field.trim().is_empty() {
                        fields.push(finish(&mut field, &mut quoted_field));
                        records.push(Record {
                            line: start,
                            fields: std::mem::take(&mut fields),
                        });
                    }
                    field.clear();
                    any = false;
                    line += 1;
                    start = line;
                }
                other => {
                    if !quoted_field {
                        field.push(other);
                    }
                    if !other.is_whitespace() {
                        any = true;
                    }
                }
            }
        }
        if any || !field.trim().is_empty() {
            fields.push(finish(&mut field, &mut quoted_field));
            records.push(Record {
                line: start,
                fields,
            });
        }
        let mut it = records.into_iter();
        let header = it
            .next()
            .ok_or_else(|| Error::Input(format!("{file}: empty file: expected a header line")))?;
        let header: Vec<String> = header.fields.iter().map(|h| h.trim().to_string()).collect();
        let mut rows = Vec::new();
        for r in it {
            if r.fields.len() != header.len() {
                return Err(Error::Input(format!(
                    "{file}: line {}: {} fields, but the header has {} ({})",
                    r.line,
                    r.fields.len(),
                    header.len(),
                    header.join(",")
                )));
            }
            rows.push(r);
        }
        Ok(Table {
            file: file.to_string(),
            header,
            rows,
        })
    }

    /// The position of a required column.
    pub fn column(&self, name: &str) -> Result<Col, Error> {
        self.optional(name).ok_or_else(|| {
            Error::Input(format!(
                "{}: line 1: no column {name:?} in the header ({})",
                self.file,
                self.header.join(",")
            ))
        })
    }

    /// The position of an optional column.
    pub fn optional(&self, name: &str) -> Option<Col> {
        self.header.iter().position(|h| h == name).map(|i| Col {
            index: i,
            name: name.to_string(),
        })
    }

    /// A field as text (trimmed).
    pub fn text<'a>(&self, r: &'a Record, c: &Col) -> &'a str {
        r.fields.get(c.index).map_or("", |s| s.trim())
    }

    /// A field as a non-negative integer (`12000` or `12000.0`).
    pub fn int(&self, r: &Record, c: &Col) -> Result<u64, Error> {
        let s = self.text(r, c);
        if let Ok(v) = s.parse::<u64>() {
            return Ok(v);
        }
        match s.parse::<f64>() {
            Ok(f) if f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < 9.0e15 => {
                // Integral, non-negative and below 2^53: exact.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Ok(f as u64)
            }
            _ => Err(self.bad(r, c, s, "a non-negative integer")),
        }
    }

    /// A field as a `u32`.
    pub fn int32(&self, r: &Record, c: &Col) -> Result<u32, Error> {
        let v = self.int(r, c)?;
        u32::try_from(v).map_err(|_| self.bad(r, c, self.text(r, c), "an integer below 2^32"))
    }

    /// An error about one field.
    pub fn bad(&self, r: &Record, c: &Col, value: &str, expected: &str) -> Error {
        Error::Input(format!(
            "{}: line {}, column {:?}: {value:?} is not {expected}",
            self.file, r.line, c.name
        ))
    }
}

fn finish(field: &mut String, quoted: &mut bool) -> String {
    let out = if *quoted {
        std::mem::take(field)
    } else {
        std::mem::take(field).trim().to_string()
    };
    *quoted = false;
    out
}

/// A column: its position and name.
#[derive(Debug)]
pub struct Col {
    index: usize,
    name: String,
}

/// Reads a whole CSV file (`-` is standard input), stopping at the input cap
/// (`--max-input-bytes`).
fn read(path: &Path) -> Result<(String, String), Error> {
    let file = path.display().to_string();
    let text = linkwise_discovery::input::read_to_string_capped(path)
        .map_err(|e| Error::Input(e.to_string()))?;
    Ok((file, text))
}

/// Reads a node list: `sn,cpu_milli,memory_mib,gpu,model` (any order, other columns
/// ignored). An empty `model` or `nan` means a CPU-only node.
pub fn read_nodes(path: &Path) -> Result<Vec<NodeSpec>, Error> {
    let (file, text) = read(path)?;
    parse_nodes(&file, &text)
}

/// [`read_nodes`] on text already read.
pub fn parse_nodes(file: &str, text: &str) -> Result<Vec<NodeSpec>, Error> {
    let t = Table::parse(file, text)?;
    let sn = t.column("sn")?;
    let cpu = t.column("cpu_milli")?;
    let mem = t.column("memory_mib")?;
    let gpu = t.column("gpu")?;
    let model = t.column("model")?;
    let mut nodes = Vec::with_capacity(t.rows.len());
    for r in &t.rows {
        let name = t.text(r, &sn);
        if name.is_empty() {
            return Err(t.bad(r, &sn, name, "a node name"));
        }
        let gpus = t.int32(r, &gpu)?;
        if gpus > 1024 {
            return Err(t.bad(r, &gpu, t.text(r, &gpu), "a GPU count (0..1024)"));
        }
        let m = t.text(r, &model);
        let m = (!m.is_empty() && !m.eq_ignore_ascii_case("nan")).then(|| m.to_string());
        nodes.push(NodeSpec {
            name: name.to_string(),
            cpu_milli: t.int(r, &cpu)?,
            memory_mib: t.int(r, &mem)?,
            gpus,
            model: m,
            islands: Vec::new(),
        });
    }
    if nodes.is_empty() {
        return Err(Error::Input(format!("{file}: no nodes (only a header)")));
    }
    Ok(nodes)
}

/// Reads a pod list: `name,cpu_milli,memory_mib,num_gpu,gpu_milli` and optionally
/// `gpu_spec` (`|`-separated models, empty = any); other columns are ignored.
pub fn read_pods(path: &Path) -> Result<Vec<PodSpec>, Error> {
    let (file, text) = read(path)?;
    parse_pods(&file, &text)
}

/// [`read_pods`] on text already read.
pub fn parse_pods(file: &str, text: &str) -> Result<Vec<PodSpec>, Error> {
    let t = Table::parse(file, text)?;
    let name = t.column("name")?;
    let cpu = t.column("cpu_milli")?;
    let mem = t.column("memory_mib")?;
    let num = t.column("num_gpu")?;
    let milli = t.column("gpu_milli")?;
    let spec = t.optional("gpu_spec");
    let mut pods = Vec::with_capacity(t.rows.len());
    for r in &t.rows {
        let n = t.text(r, &name);
        if n.is_empty() {
            return Err(t.bad(r, &name, n, "a pod name"));
        }
        let num_gpu = t.int32(r, &num)?;
        if num_gpu > 1024 {
            return Err(t.bad(r, &num, t.text(r, &num), "a GPU count (0..1024)"));
        }
        let gpu_milli = t.int32(r, &milli)?;
        if gpu_milli > GPU_MILLI {
            return Err(t.bad(
                r,
                &milli,
                t.text(r, &milli),
                "a per-GPU share in milli-GPU (0..1000)",
            ));
        }
        let gpu_spec: BTreeSet<String> = spec
            .as_ref()
            .map(|c| t.text(r, c))
            .filter(|s| !s.eq_ignore_ascii_case("nan"))
            .map(|s| {
                s.split('|')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        pods.push(PodSpec {
            name: n.to_string(),
            cpu_milli: t.int(r, &cpu)?,
            memory_mib: t.int(r, &mem)?,
            num_gpu,
            gpu_milli,
            gpu_spec,
        });
    }
    if pods.is_empty() {
        return Err(Error::Input(format!("{file}: no pods (only a header)")));
    }
    Ok(pods)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_reordered_columns_and_errors() {
        let pods = parse_pods(
            "p.csv",
            "gpu_milli,name,num_gpu,qos,cpu_milli,memory_mib,gpu_spec\r\n\
             500,\"a,b\",1,LS,1000,10,\"T4|V100M16|T4\"\r\n\
             \r\n\
             1000,\"x \"\"y\"\"\",2,BE,2000,20,\n",
        )
        .unwrap_or_default();
        assert_eq!(pods.len(), 2);
        assert_eq!(pods[0].name, "a,b");
        assert_eq!(pods[0].gpu_milli, 500);
        assert_eq!(pods[0].gpu_spec.len(), 2);
        assert_eq!(pods[1].name, "x \"y\"");
        assert!(pods[1].gpu_spec.is_empty());

        let e = parse_pods("p.csv", "name,cpu_milli,memory_mib,num_gpu\na,1,1,1\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("p.csv: line 1") && e.contains("gpu_milli"),
            "{e}"
        );
        let e = parse_pods(
            "p.csv",
            "name,cpu_milli,memory_mib,num_gpu,gpu_milli\na,1,1,1,1000\nb,x1,1,1,1000\n",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("line 3") && e.contains("cpu_milli"), "{e}");
        let e = parse_pods("p.csv", "name,cpu_milli\n\"a,1\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("unterminated"), "{e}");

        let nodes = parse_nodes(
            "n.csv",
            "sn,cpu_milli,memory_mib,gpu,model\na,1000,10,0,nan\nb,1000,10,0,\nc,1,1,2,T4\n",
        )
        .unwrap_or_default();
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[0].model, None);
        assert_eq!(nodes[1].model, None);
        assert_eq!(nodes[2].model.as_deref(), Some("T4"));
    }
}
