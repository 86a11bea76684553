//! Reading the trace CSVs (openb node and pod lists) with the `csv` crate: header-driven
//! (columns found by name through serde, any order, other columns ignored), quoted fields
//! allowed, every error naming the file, the line and the column.

use std::collections::BTreeSet;
use std::io::Read as _;
use std::path::Path;

use csv::StringRecord;
use linkwise_core::placement::{GPU_MILLI, NodeSpec, PodSpec};
use serde::Deserialize;

use crate::Error;

/// Read after the text, so that a quoted field left open at the end of the file
/// swallows it: the last record is this line alone exactly when every quote was closed.
const END: &[u8] = b"\n\x01";

/// The UTF-8 byte order mark, skipped at the start of a file (by the reader).
const BOM: &[u8] = "\u{feff}".as_bytes();

/// A parsed CSV file: its header and its records.
#[derive(Debug)]
struct Table {
    /// The file as given on the command line (for messages).
    file: String,
    /// Column names, trimmed (for messages).
    names: Vec<String>,
    /// The header that rows are deserialized against: the trimmed names, with a repeated
    /// name blanked so that the first column of that name is the one read.
    header: StringRecord,
    /// Records after the header; blank lines skipped.
    rows: Vec<Row>,
}

/// One record and the line it starts on (1-based).
#[derive(Debug)]
struct Row {
    line: usize,
    record: StringRecord,
}

/// Counts line ends (`\n`, `\r\n` or a lone `\r`) from byte `from` up to `to`; `to`
/// never splits a `\r\n`.
struct Lines<'a> {
    text: &'a [u8],
    at: usize,
    line: usize,
}

// === impl Lines ===

impl Lines<'_> {
    /// The line that a record read from byte `pos` starts on: the line ends before it
    /// (left over from the record before, or blank lines) are not part of it.
    fn start(&mut self, pos: usize) -> (usize, usize) {
        let bom = if pos == 0 && self.text.starts_with(BOM) {
            BOM.len()
        } else {
            0
        };
        let pos = (pos + bom).min(self.text.len());
        let skip = self.text[pos..]
            .iter()
            .take_while(|b| matches!(b, b'\n' | b'\r'))
            .count();
        let to = pos + skip;
        let seg = &self.text[self.at.min(to)..to];
        let ends = seg
            .iter()
            .enumerate()
            .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && seg.get(i + 1) != Some(&b'\n')))
            .count();
        self.line += ends;
        self.at = to;
        (self.line, to)
    }
}

/// Whether a record is a line of blanks only (skipped like an empty line; a quoted
/// empty field is a record).
fn blank(record: &StringRecord, raw: &[u8]) -> bool {
    record.len() == 1
        && record.get(0).is_some_and(|f| f.trim().is_empty())
        && !raw
            .iter()
            .take_while(|b| !matches!(b, b'\n' | b'\r'))
            .any(|&b| b == b'"')
}

// === impl Table ===

impl Table {
    /// Parses `text` (RFC 4180: `,` separators, `"` quoting with `""` escapes, fields may
    /// span lines; `\n`, `\r\n` or `\r` line ends; a UTF-8 BOM at the start is skipped).
    fn parse(file: &str, text: &str) -> Result<Table, Error> {
        let bytes = text.as_bytes();
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(bytes.chain(END));
        let mut lines = Lines {
            text: bytes,
            at: 0,
            line: 1,
        };
        let mut records: Vec<(usize, usize, StringRecord)> = Vec::new();
        let mut record = StringRecord::new();
        loop {
            let pos = usize::try_from(reader.position().byte()).unwrap_or(usize::MAX);
            let more = reader.read_record(&mut record).map_err(|e| {
                let line = e.position().map_or(1, csv::Position::line);
                Error::Input(format!("{file}: line {line}: {e}"))
            })?;
            if !more {
                break;
            }
            let (line, start) = lines.start(pos);
            if !blank(&record, &bytes[start.min(bytes.len())..]) {
                records.push((line, start, record.clone()));
            }
        }
        match records.pop() {
            Some((_, _, r)) if r.len() == 1 && r.get(0) == Some("\x01") => {}
            Some((line, start, r)) => {
                // The sentinel line went into a quoted field: its opening quote is on the
                // line reached after the record's line ends before that field.
                let last = r.get(r.len().saturating_sub(1)).unwrap_or("");
                let inside = last.bytes().filter(|&b| b == b'\n').count();
                let before = bytes[start..].iter().filter(|&&b| b == b'\n').count();
                let open = line + (before + 1).saturating_sub(inside);
                return Err(Error::Input(format!(
                    "{file}: line {open}: unterminated quoted field (a `\"` without its closing `\"`)"
                )));
            }
            None => {}
        }
        let mut it = records.into_iter();
        let (_, _, header) = it
            .next()
            .ok_or_else(|| Error::Input(format!("{file}: empty file: expected a header line")))?;
        let names: Vec<String> = header.iter().map(|h| h.trim().to_string()).collect();
        let header: StringRecord = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                if names[..i].contains(n) {
                    ""
                } else {
                    n.as_str()
                }
            })
            .collect();
        let mut rows = Vec::new();
        for (line, _, record) in it {
            if record.len() != names.len() {
                return Err(Error::Input(format!(
                    "{file}: line {line}: {} fields, but the header has {} ({})",
                    record.len(),
                    names.len(),
                    names.join(",")
                )));
            }
            rows.push(Row { line, record });
        }
        Ok(Table {
            file: file.to_string(),
            names,
            header,
            rows,
        })
    }

    /// Checks that the required columns are there (the first missing one is named).
    fn require(&self, columns: &[&str]) -> Result<(), Error> {
        match columns.iter().find(|c| !self.names.iter().any(|n| n == *c)) {
            Some(name) => Err(Error::Input(format!(
                "{}: line 1: no column {name:?} in the header ({})",
                self.file,
                self.names.join(",")
            ))),
            None => Ok(()),
        }
    }

    /// The rows as `T` (fields by column name), each with its line.
    fn rows<'a, T: Deserialize<'a>>(&'a self) -> impl Iterator<Item = Result<(usize, T), Error>> {
        self.rows.iter().map(|r| {
            r.record
                .deserialize::<T>(Some(&self.header))
                .map(|t| (r.line, t))
                .map_err(|e| Error::Input(format!("{}: line {}: {e}", self.file, r.line)))
        })
    }

    /// A field checked: the file, line and column for messages, and the value.
    fn field<'v>(&'v self, line: usize, column: &'static str, value: &'v str) -> Field<'v> {
        Field {
            file: &self.file,
            line,
            column,
            value: value.trim(),
        }
    }
}

/// One field of one row, ready to be converted (errors name the file, line and column).
struct Field<'a> {
    file: &'a str,
    line: usize,
    column: &'static str,
    /// The value, trimmed.
    value: &'a str,
}

// === impl Field ===

impl Field<'_> {
    /// An error about this field.
    fn bad(&self, expected: &str) -> Error {
        Error::Input(format!(
            "{}: line {}, column {:?}: {:?} is not {expected}",
            self.file, self.line, self.column, self.value
        ))
    }

    /// The field as a non-negative integer (`12000` or `12000.0`).
    fn int(&self) -> Result<u64, Error> {
        let s = self.value;
        if let Ok(v) = s.parse::<u64>() {
            return Ok(v);
        }
        match s.parse::<f64>() {
            Ok(f) if f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < 9.0e15 => {
                // Integral, non-negative and below 2^53: exact.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Ok(f as u64)
            }
            _ => Err(self.bad("a non-negative integer")),
        }
    }

    /// The field as a `u32`.
    fn int32(&self) -> Result<u32, Error> {
        let v = self.int()?;
        u32::try_from(v).map_err(|_| self.bad("an integer below 2^32"))
    }
}

/// Reads a whole CSV file (`-` is standard input), stopping at the input cap
/// (`--max-input-bytes`).
fn read(path: &Path) -> Result<(String, String), Error> {
    let file = path.display().to_string();
    let text =
        linkwise_fsio::read_to_string_capped(path).map_err(|e| Error::Input(e.to_string()))?;
    Ok((file, text))
}

/// A node list row: the columns read, by name.
#[derive(Deserialize)]
struct NodeRow<'a> {
    sn: &'a str,
    cpu_milli: &'a str,
    memory_mib: &'a str,
    gpu: &'a str,
    model: &'a str,
}

/// A pod list row: the columns read, by name (`gpu_spec` may be absent).
#[derive(Deserialize)]
struct PodRow<'a> {
    name: &'a str,
    cpu_milli: &'a str,
    memory_mib: &'a str,
    num_gpu: &'a str,
    gpu_milli: &'a str,
    gpu_spec: Option<&'a str>,
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
    t.require(&["sn", "cpu_milli", "memory_mib", "gpu", "model"])?;
    let mut nodes = Vec::with_capacity(t.rows.len());
    for row in t.rows::<NodeRow<'_>>() {
        let (line, r) = row?;
        let name = t.field(line, "sn", r.sn);
        if name.value.is_empty() {
            return Err(name.bad("a node name"));
        }
        let gpu = t.field(line, "gpu", r.gpu);
        let gpus = gpu.int32()?;
        if gpus > 1024 {
            return Err(gpu.bad("a GPU count (0..1024)"));
        }
        let m = r.model.trim();
        let m = (!m.is_empty() && !m.eq_ignore_ascii_case("nan")).then(|| m.to_string());
        nodes.push(NodeSpec {
            name: name.value.to_string(),
            cpu_milli: t.field(line, "cpu_milli", r.cpu_milli).int()?,
            memory_mib: t.field(line, "memory_mib", r.memory_mib).int()?,
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
    t.require(&["name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli"])?;
    let mut pods = Vec::with_capacity(t.rows.len());
    for row in t.rows::<PodRow<'_>>() {
        let (line, r) = row?;
        let name = t.field(line, "name", r.name);
        if name.value.is_empty() {
            return Err(name.bad("a pod name"));
        }
        let num = t.field(line, "num_gpu", r.num_gpu);
        let num_gpu = num.int32()?;
        if num_gpu > 1024 {
            return Err(num.bad("a GPU count (0..1024)"));
        }
        let milli = t.field(line, "gpu_milli", r.gpu_milli);
        let gpu_milli = milli.int32()?;
        if gpu_milli > GPU_MILLI {
            return Err(milli.bad("a per-GPU share in milli-GPU (0..1000)"));
        }
        let gpu_spec: BTreeSet<String> = r
            .gpu_spec
            .map(str::trim)
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
            name: name.value.to_string(),
            cpu_milli: t.field(line, "cpu_milli", r.cpu_milli).int()?,
            memory_mib: t.field(line, "memory_mib", r.memory_mib).int()?,
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

    fn err(text: &str) -> String {
        parse_pods("p.csv", text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn errors_name_the_line_a_record_starts_on() {
        let head = "\u{feff}name,cpu_milli,memory_mib,num_gpu,gpu_milli\r\n";
        // Blank lines, lines of blanks, CRLF and a field over two lines before the bad one.
        let e = err(&format!(
            "{head}\r\n   \r\n\"a\nb\",1,1,1,1\r\nc,1,x,1,1\r\n"
        ));
        assert_eq!(
            e,
            "p.csv: line 6, column \"memory_mib\": \"x\" is not a non-negative integer"
        );
        let e = err(&format!("{head}\n\na,1,1,1\n"));
        assert!(
            e.starts_with("p.csv: line 4: 4 fields, but the header has 5"),
            "{e}"
        );
        // The line of the opening quote, not the line the record starts on.
        let e = err(&format!("{head}a,1,1,1,1\n\"b\nc\",1,\"1\n2,3\n"));
        assert_eq!(
            e,
            "p.csv: line 4: unterminated quoted field (a `\"` without its closing `\"`)"
        );
        assert_eq!(err(""), "p.csv: empty file: expected a header line");
        assert_eq!(err(" \n\r\n"), "p.csv: empty file: expected a header line");
        let e = err(&format!("{head}\n"));
        assert_eq!(e, "p.csv: no pods (only a header)");
    }

    #[test]
    fn a_repeated_column_is_read_from_its_first_place() {
        let pods = parse_pods(
            "p.csv",
            "name,cpu_milli,memory_mib,num_gpu,gpu_milli,name\n a ,1,2,1,500,b\n",
        )
        .unwrap_or_default();
        assert_eq!(pods.len(), 1);
        assert_eq!(pods[0].name, "a");
        assert_eq!((pods[0].cpu_milli, pods[0].memory_mib), (1, 2));
    }

    #[test]
    fn the_openb_mini_fixture_reads_every_row_the_file_holds() {
        let dir = linkwise_testkit::fixtures().join("openb-mini");
        let count = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .map(|t| t.lines().skip(1).filter(|l| !l.trim().is_empty()).count())
                .unwrap_or_default()
        };
        let nodes = read_nodes(&dir.join("nodes.csv")).unwrap_or_default();
        let pods = read_pods(&dir.join("pods.csv")).unwrap_or_default();
        assert!(count("nodes.csv") > 0 && count("pods.csv") > 0);
        assert_eq!(nodes.len(), count("nodes.csv"));
        assert_eq!(pods.len(), count("pods.csv"));
        let first = nodes
            .first()
            .map(|n| (n.name.as_str(), n.cpu_milli, n.gpus));
        assert_eq!(first, Some(("mini-node-0", 96_000, 8)));
        let first = pods
            .first()
            .map(|p| (p.name.as_str(), p.num_gpu, p.gpu_milli));
        assert_eq!(first, Some(("mini-pod-00", 1, 1000)));
    }
}
