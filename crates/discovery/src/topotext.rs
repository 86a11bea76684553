//! `topo-text:FILE`: import of `nvidia-smi topo -m` text.
//!
//! The input is whatever a person saved or pasted: raw TAB-separated output, copies whose
//! TABs a terminal or web page expanded to spaces (sometimes collapsed to single spaces,
//! sometimes indented), shell prompts or report markers before the matrix, CRLF line
//! endings, a legend cut off anywhere. [`parse`] reads all of these and never panics;
//! what it cannot read it rejects with the 1-based line number of the original input.
//!
//! # Sections
//!
//! 1. **Preamble.** Every line before the header row is skipped.
//! 2. **Header row.** The first line whose first word is `GPU<n>` and which has no `X`
//!    cell (every matrix row has one, the header never does), and whose columns all read
//!    as device names up to the first trailing column. A line that starts with `GPU<n>`
//!    but fails that check (prose such as `GPU0 is slow`) is skipped; when no header is
//!    found at all, the error points at that line, or else at the first line that looks
//!    like a matrix row, or else at `Legend:`, or else at line 1.
//! 3. **Matrix rows**, one per line, until a blank line, `Legend:`, or any line whose first
//!    word is not a header column (a `[TRUNCATED ...]` marker, a shell prompt). A line
//!    whose first word looks like a device label (`GPU<n>`, `NIC<n>`, or a raw NIC name
//!    on a line with an `X` cell) but is not a header column is an error, not an end.
//! 4. **`NIC Legend:`**, anywhere after the matrix: `NIC<n>: <name>` lines, with or
//!    without indent, until the first line of another shape. Absent or cut-off legends
//!    leave NIC names unknown (a [`linkwise_core::Gap`] per NIC).
//!
//! # Splitting and column alignment
//!
//! A line is first split into fields on TAB when it has one, else on runs of two or more
//! spaces, and the fields are trimmed. Then:
//!
//! * **Header.** Each field is read as words. The trailing columns are recognised as
//!   word phrases, case-insensitively: `CPU Affinity`, `NUMA Affinity`, `GPU NUMA ID`
//!   (each optional, in any order). Before the first of them every word is one device
//!   column — `GPU<n>`, `NIC<n>` or a raw NIC name such as `mlx5_0` (letters, digits,
//!   `_ . : -`, at least one digit). After it, any other words form one unknown trailing
//!   column per field (a future driver's extra column; its values are read and
//!   ignored). Working on words, not fields, makes the leading empty cell (present, or
//!   lost in a copy) irrelevant and survives copies that collapsed the two-space gaps
//!   to one (`GPU0 GPU1 CPU Affinity`), which field splitting alone cannot.
//! * **Rows.** No value nvidia-smi prints in a row contains whitespace (`X`, `NV18`,
//!   `SYS`, `0-47,96-143`, `0`, `N/A`), so a row's values are its non-empty words.
//!   Empty fields carry nothing and are dropped: the padding TAB nvidia-smi inserts after
//!   a value under a wide header (`0\t\tN/A`, and `0-47\t\tN/A` on drivers without
//!   `GPU NUMA ID`), the trailing TABs of NIC rows, trailing spaces. Values are then
//!   aligned to columns **by order**: the first values are the device cells, in header
//!   order, and the rest are the trailing values, in header order. This is exact because
//!   nvidia-smi prints something (`N/A` at least) for every column of a GPU row, and it
//!   is immune to the ways copies mangle whitespace; aligning by character position
//!   is not (long CPU lists push later values past their header's position even in raw
//!   output, and copies shift headers by a lost TAB). The cost is that an empty value
//!   cannot be placed, so a GPU row must have exactly one value per column — anything
//!   else is reported as a wrong number of cells. NIC rows carry the device cells and,
//!   optionally, trailing values, which are ignored.
//!
//! # Cells
//!
//! `X` on the diagonal and nowhere else; `NV<n>` (n ≥ 1) bonded NVLinks between two
//! GPUs; `PIX`, `PXB`, `PHB`, `NODE`, `SYS` PCIe path classes; all case-insensitive.
//! `SOC`, the name drivers before the 384 series printed for `SYS`, reads as `SYS`.
//! Anything else is an error naming the line, the row and column and what was expected.
//! The matrix must be symmetric cell for cell. Affinities: `N/A` is unknown, `CPU
//! Affinity` is a cpulist, `NUMA Affinity` and `GPU NUMA ID` are node numbers (a list of
//! several nodes is read as unknown and recorded as a gap).
//!
//! # What the topology holds
//!
//! One host, `unknown` (topo text names no host); GPUs `GPU<n>` with index `n`, model
//! `unknown`, NUMA node, CPU affinity and GPU NUMA id from the trailing columns; NUMA
//! nodes from the (NUMA Affinity, CPU Affinity) pairs, CPU sets united per node; an
//! NVLink link per `NV<n>` GPU pair and a PCIe link per PCIe-class pair (GPU–GPU,
//! GPU–NIC, NIC–NIC); NICs named from the NIC legend or their raw header name. What the
//! text cannot say (host name and architecture, UUIDs, PCI addresses, models, the PCIe
//! class of NVLink pairs, NVLink generation, missing NIC names) is recorded as gaps.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use linkwise_core::{
    CpuSet, Endpoint, Gpu, GpuId, Host, Link, LinkKind, Nic, NumaNode, PathClass, Topology,
};

use crate::{Error, Result, TopologySource};

/// Reads a saved `nvidia-smi topo -m` output.
#[derive(Debug, Clone)]
pub struct TopoTextSource {
    path: PathBuf,
}

impl TopoTextSource {
    /// A source reading `path`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        TopoTextSource {
            path: path.as_ref().to_path_buf(),
        }
    }
}

impl TopologySource for TopoTextSource {
    fn discover(&self) -> Result<Topology> {
        let bytes = crate::read_input(&self.path)?;
        // Saved terminal output may carry a stray non-UTF-8 byte in a prompt line; the
        // matrix itself is ASCII, so decode lossily and let the parser judge.
        parse(&String::from_utf8_lossy(&bytes), &self.path)
    }
}

/// Host name used for the one host of an imported matrix.
const HOST: &str = "unknown";

/// Largest `NV<n>` accepted; real systems bond at most a few dozen links.
const MAX_NVLINKS: u32 = 1024;

/// The trailing column headers nvidia-smi prints, as word phrases.
const TRAILING: &[(&[&str], Trailing)] = &[
    (&["CPU", "Affinity"], Trailing::Cpu),
    (&["NUMA", "Affinity"], Trailing::Numa),
    (&["GPU", "NUMA", "ID"], Trailing::GpuNuma),
];

/// Parses `nvidia-smi topo -m` text; `path` names the input in errors.
///
/// See the module documentation for the accepted layouts. Errors are
/// [`Error::TopoText`] with the 1-based line of the problem in `text`, or
/// [`Error::Model`] should the result be inconsistent.
pub fn parse(text: &str, path: &Path) -> Result<Topology> {
    let lines = split_lines(text);
    let fail = |line: usize, message: String| Error::TopoText {
        path: path.to_path_buf(),
        line,
        message,
    };
    let header = find_header(&lines).map_err(|(l, m)| fail(l, m))?;
    let matrix = read_matrix(&lines, &header).map_err(|(l, m)| fail(l, m))?;
    let legend = read_nic_legend(lines.get(matrix.end..).unwrap_or(&[]), &header);
    build(&header, &matrix, &legend, path)
}

// === lines and words ===

/// One input line: its 1-based number and its text without the line ending.
#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    no: usize,
    text: &'a str,
}

/// Splits on `\n` (dropping a `\r` before it), or on lone `\r` when the text has no `\n`;
/// drops a leading byte-order mark.
fn split_lines(text: &str) -> Vec<Line<'_>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let sep = if !text.contains('\n') && text.contains('\r') {
        '\r'
    } else {
        '\n'
    };
    // A final line ending ends the last line; it does not start an empty one.
    let text = text.strip_suffix(sep).unwrap_or(text);
    text.split(sep)
        .enumerate()
        .map(|(i, t)| Line {
            no: i + 1,
            text: t.strip_suffix('\r').unwrap_or(t),
        })
        .collect()
}

/// Fields of a line: split on TAB when it has one, else on runs of two or more spaces;
/// trimmed, empty ones dropped.
fn fields(line: &str) -> Vec<&str> {
    let raw: Vec<&str> = if line.contains('\t') {
        line.split('\t').collect()
    } else {
        line.split("  ").collect()
    };
    raw.into_iter()
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .collect()
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// `GPU<n>` → `n`. `None` when the word is not of that shape; `Some(Err)` when the number
/// does not fit.
fn gpu_index(word: &str) -> Option<std::result::Result<u32, String>> {
    let digits = word.strip_prefix("GPU")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        digits
            .parse::<u32>()
            .map_err(|_| format!("GPU index in {word:?} is too large")),
    )
}

/// `NIC<n>` (the recent drivers' NIC column names).
fn is_nic_label(word: &str) -> bool {
    word.strip_prefix("NIC")
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// A word that can name a device column: `GPU<n>`, `NIC<n>` or a raw NIC name such as
/// `mlx5_0` or `rocep49s0` — starts with a letter, has a digit, only letters, digits and
/// `_ . : -`, and is not itself a cell value.
fn is_device_name(word: &str) -> bool {
    word.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && word.len() <= 64
        && word.bytes().any(|b| b.is_ascii_digit())
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
        && parse_cell(word).is_err()
}

fn is_na(value: &str) -> bool {
    value.eq_ignore_ascii_case("N/A")
}

// === cells ===

/// A matrix cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TopoCell {
    /// `X`.
    Own,
    /// `NV<n>`.
    Nvlink(u32),
    /// A PCIe path class.
    Pcie(PathClass),
}

impl fmt::Display for TopoCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopoCell::Own => f.write_str("X"),
            TopoCell::Nvlink(n) => write!(f, "NV{n}"),
            TopoCell::Pcie(c) => f.write_str(c.as_str()),
        }
    }
}

const CELL_EXPECTED: &str = "expected X, NV<n>, PIX, PXB, PHB, NODE or SYS";

/// Parses one cell; the error says why, without location.
fn parse_cell(value: &str) -> std::result::Result<TopoCell, String> {
    if value.eq_ignore_ascii_case("X") {
        return Ok(TopoCell::Own);
    }
    if let Some(prefix) = value.get(..2)
        && prefix.eq_ignore_ascii_case("NV")
    {
        let digits = value.get(2..).unwrap_or("");
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "{value:?} is not an NVLink count; expected NV followed by a number, as in NV12"
            ));
        }
        return match digits.parse::<u32>() {
            Ok(0) => Err(format!("{value:?}: an NVLink count must be at least 1")),
            Ok(n) if n <= MAX_NVLINKS => Ok(TopoCell::Nvlink(n)),
            _ => Err(format!(
                "{value:?}: NVLink count is implausible (at most {MAX_NVLINKS})"
            )),
        };
    }
    if value.eq_ignore_ascii_case("SOC") {
        return Ok(TopoCell::Pcie(PathClass::Sys));
    }
    match PathClass::parse(value) {
        Some(PathClass::Net) | None => {
            Err(format!("{value:?} is not a topo cell; {CELL_EXPECTED}"))
        }
        Some(c) => Ok(TopoCell::Pcie(c)),
    }
}

// === header ===

/// A trailing (non-device) column.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Trailing {
    /// `CPU Affinity`.
    Cpu,
    /// `NUMA Affinity`.
    Numa,
    /// `GPU NUMA ID`.
    GpuNuma,
    /// A column this parser does not know; values are ignored.
    Other(String),
}

impl Trailing {
    fn title(&self) -> &str {
        match self {
            Trailing::Cpu => "CPU Affinity",
            Trailing::Numa => "NUMA Affinity",
            Trailing::GpuNuma => "GPU NUMA ID",
            Trailing::Other(s) => s,
        }
    }
}

/// A device column of the header.
#[derive(Debug, Clone)]
struct DeviceCol {
    /// The header text (`GPU0`, `NIC1`, `mlx5_0`).
    name: String,
    /// `Some(n)` for `GPU<n>`, `None` for NICs.
    gpu: Option<u32>,
}

impl DeviceCol {
    fn is_gpu(&self) -> bool {
        self.gpu.is_some()
    }
}

#[derive(Debug)]
struct Header {
    /// Position of the header in the line list.
    idx: usize,
    /// Its 1-based line number.
    line: usize,
    devices: Vec<DeviceCol>,
    trailing: Vec<Trailing>,
    /// Device column by name.
    by_name: BTreeMap<String, usize>,
}

type LineErr = (usize, String);

/// Finds and reads the header row.
fn find_header(lines: &[Line<'_>]) -> std::result::Result<Header, LineErr> {
    let mut rejected: Option<LineErr> = None;
    let mut row_like: Option<usize> = None;
    let mut legend: Option<usize> = None;
    for (idx, l) in lines.iter().enumerate() {
        let mut words = l.text.split_whitespace();
        let Some(first) = words.next() else { continue };
        if first.eq_ignore_ascii_case("Legend:") {
            legend.get_or_insert(l.no);
            continue;
        }
        if gpu_index(first).is_none() {
            continue;
        }
        if l.text
            .split_whitespace()
            .any(|w| w.eq_ignore_ascii_case("X"))
        {
            row_like.get_or_insert(l.no);
            continue;
        }
        match read_header(l.text) {
            Ok((devices, trailing)) => return index_header(idx, l.no, devices, trailing),
            Err(why) => {
                rejected.get_or_insert((l.no, why));
            }
        }
    }
    if let Some((no, why)) = rejected {
        return Err((
            no,
            format!("expected the `nvidia-smi topo -m` header row here, but {why}"),
        ));
    }
    let what = "no `nvidia-smi topo -m` header row (GPU0 GPU1 ... CPU Affinity ...) found";
    if let Some(no) = row_like {
        return Err((no, format!("{what} before this matrix row")));
    }
    if let Some(no) = legend {
        return Err((no, format!("{what} before the legend")));
    }
    Err((1, what.to_string()))
}

/// Reads the columns of a header candidate; the error says why the line is not one.
///
/// Known trailing phrases are matched on the line's words whatever the field boundaries;
/// fields only group the words of unknown trailing columns.
fn read_header(text: &str) -> std::result::Result<(Vec<DeviceCol>, Vec<Trailing>), String> {
    let tagged: Vec<(usize, &str)> = fields(text)
        .into_iter()
        .enumerate()
        .flat_map(|(f, field)| field.split_whitespace().map(move |w| (f, w)))
        .collect();
    let words: Vec<&str> = tagged.iter().map(|&(_, w)| w).collect();
    let mut devices = Vec::new();
    let mut trailing: Vec<Trailing> = Vec::new();
    let mut other: Vec<&str> = Vec::new();
    let mut other_field = None;
    let flush = |other: &mut Vec<&str>, trailing: &mut Vec<Trailing>| {
        if !other.is_empty() {
            trailing.push(Trailing::Other(other.join(" ")));
            other.clear();
        }
    };
    let mut i = 0;
    while let Some(&(field, word)) = tagged.get(i) {
        if let Some((len, kind)) = match_trailing(words.get(i..).unwrap_or(&[])) {
            flush(&mut other, &mut trailing);
            trailing.push(kind.clone());
            i += len;
            continue;
        }
        if !trailing.is_empty() {
            if other_field != Some(field) {
                flush(&mut other, &mut trailing);
                other_field = Some(field);
            }
            other.push(word);
        } else if let Some(index) = gpu_index(word) {
            devices.push(DeviceCol {
                name: word.to_string(),
                gpu: Some(index?),
            });
        } else if is_device_name(word) {
            devices.push(DeviceCol {
                name: word.to_string(),
                gpu: None,
            });
        } else {
            return Err(format!(
                "{word:?} is neither a device column (GPU<n>, NIC<n>, a NIC name such as mlx5_0) \
                 nor CPU Affinity, NUMA Affinity or GPU NUMA ID"
            ));
        }
        i += 1;
    }
    flush(&mut other, &mut trailing);
    Ok((devices, trailing))
}

/// The known trailing phrase at the start of `words`: its length in words and its kind.
fn match_trailing(words: &[&str]) -> Option<(usize, &'static Trailing)> {
    TRAILING.iter().find_map(|(phrase, kind)| {
        let hit = words.len() >= phrase.len()
            && phrase
                .iter()
                .zip(words)
                .all(|(p, w)| p.eq_ignore_ascii_case(w));
        hit.then_some((phrase.len(), kind))
    })
}

/// Checks a header's columns for duplicates and builds the name index.
fn index_header(
    idx: usize,
    line: usize,
    devices: Vec<DeviceCol>,
    trailing: Vec<Trailing>,
) -> std::result::Result<Header, LineErr> {
    let mut by_name = BTreeMap::new();
    let mut gpu_indexes = BTreeSet::new();
    for (i, d) in devices.iter().enumerate() {
        if by_name.insert(d.name.clone(), i).is_some() {
            return Err((
                line,
                format!("column {} appears twice in the header", d.name),
            ));
        }
        if let Some(n) = d.gpu
            && !gpu_indexes.insert(n)
        {
            return Err((line, format!("column {} repeats GPU index {n}", d.name)));
        }
    }
    let mut seen = BTreeSet::new();
    for t in &trailing {
        if !matches!(t, Trailing::Other(_)) && !seen.insert(t.title().to_string()) {
            return Err((
                line,
                format!("column {} appears twice in the header", t.title()),
            ));
        }
    }
    if gpu_indexes.is_empty() {
        return Err((
            line,
            "the header names no GPU column (GPU0, GPU1, ...)".to_string(),
        ));
    }
    Ok(Header {
        idx,
        line,
        devices,
        trailing,
        by_name,
    })
}

// === matrix ===

/// A parsed matrix row.
#[derive(Debug)]
struct Row {
    line: usize,
    cells: Vec<TopoCell>,
    cpu: Option<CpuSet>,
    numa: Option<u32>,
    gpu_numa: Option<u32>,
    /// `(column, value)` of NUMA values that name several nodes (kept as gaps).
    spans: Vec<(&'static str, String)>,
}

#[derive(Debug)]
struct Matrix {
    /// Row per device column, where the text has one.
    rows: Vec<Option<Row>>,
    /// Position in the line list of the first line after the matrix.
    end: usize,
}

/// True when a line that is not a header column still looks like a matrix row.
fn looks_like_row(words: &[&str]) -> bool {
    let Some(first) = words.first() else {
        return false;
    };
    gpu_index(first).is_some()
        || is_nic_label(first)
        || (is_device_name(first) && words.iter().skip(1).any(|w| w.eq_ignore_ascii_case("X")))
}

fn read_matrix(lines: &[Line<'_>], h: &Header) -> std::result::Result<Matrix, LineErr> {
    let mut rows: Vec<Option<Row>> = h.devices.iter().map(|_| None).collect();
    let mut end = lines.len();
    let mut last_line = h.line;
    for (idx, l) in lines.iter().enumerate().skip(h.idx + 1) {
        if is_blank(l.text) {
            end = idx;
            break;
        }
        let words: Vec<&str> = l.text.split_whitespace().collect();
        let Some(&label) = words.first() else {
            end = idx;
            break;
        };
        let Some(&col) = h.by_name.get(label) else {
            if looks_like_row(&words) {
                return Err((
                    l.no,
                    format!(
                        "row {label} is not a column of the header at line {}; the rows must be the header's devices",
                        h.line
                    ),
                ));
            }
            end = idx;
            break;
        };
        let Some(slot) = rows.get_mut(col) else {
            end = idx;
            break;
        };
        if let Some(prev) = slot {
            return Err((
                l.no,
                format!("row {label} appears twice (first at line {})", prev.line),
            ));
        }
        *slot = Some(read_row(l.no, col, words.get(1..).unwrap_or(&[]), h)?);
        last_line = l.no;
    }
    // Every GPU column needs its row; NIC rows may be missing (a truncated copy): their
    // cells with GPUs are in the GPU rows.
    let end_line = lines.get(end).map_or(last_line, |l| l.no);
    for (d, r) in h.devices.iter().zip(&rows) {
        if d.is_gpu() && r.is_none() {
            return Err((
                end_line,
                format!(
                    "the matrix ends here without a row for {} (a column of the header at line {}); \
                     the GPU rows must match the GPU columns",
                    d.name, h.line
                ),
            ));
        }
    }
    check_symmetric(h, &rows)?;
    Ok(Matrix { rows, end })
}

/// Parses the values of row `col` (the label already removed).
fn read_row(
    line: usize,
    col: usize,
    values: &[&str],
    h: &Header,
) -> std::result::Result<Row, LineErr> {
    let ndev = h.devices.len();
    let ntrail = h.trailing.len();
    let row_dev = h.devices.get(col);
    let label = row_dev.map_or("?", |d| d.name.as_str());
    let is_gpu = row_dev.is_some_and(DeviceCol::is_gpu);
    let count_ok = if is_gpu {
        values.len() == ndev + ntrail
    } else {
        (ndev..=ndev + ntrail).contains(&values.len())
    };
    if !count_ok {
        let expected = if is_gpu {
            format!(
                "{} ({ndev} device cells and {ntrail} trailing values)",
                ndev + ntrail
            )
        } else if ntrail == 0 {
            format!("{ndev} (one per device column)")
        } else {
            format!("{ndev} device cells, optionally followed by {ntrail} trailing values")
        };
        return Err((
            line,
            format!(
                "row {label} has {} values; expected {expected}",
                values.len()
            ),
        ));
    }
    let mut cells = Vec::with_capacity(ndev);
    for (j, (d, value)) in h.devices.iter().zip(values).enumerate() {
        let at = |why: String| (line, format!("row {label}, column {}: {why}", d.name));
        let cell = parse_cell(value).map_err(at)?;
        match cell {
            TopoCell::Own if j != col => {
                return Err(at("X (self) may only appear on the diagonal".to_string()));
            }
            TopoCell::Nvlink(_) | TopoCell::Pcie(_) if j == col => {
                return Err(at(format!("{value:?} on the diagonal; expected X")));
            }
            TopoCell::Nvlink(_) if !(is_gpu && d.is_gpu()) => {
                return Err(at(format!(
                    "{value:?}: NV<n> joins two GPUs; a pair with a NIC takes PIX, PXB, PHB, NODE or SYS"
                )));
            }
            _ => {}
        }
        cells.push(cell);
    }
    let mut row = Row {
        line,
        cells,
        cpu: None,
        numa: None,
        gpu_numa: None,
        spans: Vec::new(),
    };
    if is_gpu {
        for (t, value) in h.trailing.iter().zip(values.get(ndev..).unwrap_or(&[])) {
            read_trailing(&mut row, t, value)
                .map_err(|why| (line, format!("row {label}, column {}: {why}", t.title())))?;
        }
    }
    Ok(row)
}

/// Stores one trailing value of a GPU row.
fn read_trailing(row: &mut Row, t: &Trailing, value: &str) -> std::result::Result<(), String> {
    if is_na(value) {
        return Ok(());
    }
    match t {
        Trailing::Cpu => {
            let set: CpuSet = value.parse().map_err(|e| {
                format!("{e}; expected a CPU list such as 0-47,96-143 or 6,14,22,30, or N/A")
            })?;
            row.cpu = Some(set);
        }
        Trailing::Numa => row.numa = numa_node(row, "NUMA Affinity", value)?,
        Trailing::GpuNuma => row.gpu_numa = numa_node(row, "GPU NUMA ID", value)?,
        Trailing::Other(_) => {}
    }
    Ok(())
}

/// A NUMA node number. A list of several nodes (never seen, but cheap to survive) is
/// recorded in `row.spans` and read as unknown rather than guessed.
fn numa_node(
    row: &mut Row,
    column: &'static str,
    value: &str,
) -> std::result::Result<Option<u32>, String> {
    let nodes: CpuSet = value
        .parse()
        .map_err(|_| format!("{value:?} is not a NUMA node; expected a number or N/A"))?;
    match nodes.cpus() {
        [n] => Ok(Some(*n)),
        _ => {
            row.spans.push((column, value.to_string()));
            Ok(None)
        }
    }
}

/// Every pair both of whose rows are present must read the same both ways.
fn check_symmetric(h: &Header, rows: &[Option<Row>]) -> std::result::Result<(), LineErr> {
    for (i, ri) in rows.iter().enumerate() {
        let Some(ri) = ri else { continue };
        for (j, rj) in rows.iter().enumerate().skip(i + 1) {
            let Some(rj) = rj else { continue };
            let (Some(a), Some(b)) = (ri.cells.get(j), rj.cells.get(i)) else {
                continue;
            };
            if a != b {
                let name = |k: usize| h.devices.get(k).map_or("?", |d| d.name.as_str());
                return Err((
                    ri.line.max(rj.line),
                    format!(
                        "asymmetric matrix: {} to {} is {a} (line {}) but {} to {} is {b} (line {})",
                        name(i),
                        name(j),
                        ri.line,
                        name(j),
                        name(i),
                        rj.line
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The cell of pair (i, j), from row i or else row j.
fn pair_cell(rows: &[Option<Row>], i: usize, j: usize) -> Option<TopoCell> {
    let from = |r: usize, c: usize| {
        rows.get(r)
            .and_then(Option::as_ref)
            .and_then(|row| row.cells.get(c))
            .copied()
    };
    from(i, j).or_else(|| from(j, i))
}

// === NIC legend ===

/// `NIC<n>: name` entries after a `NIC Legend:` line, for NIC columns of the header.
fn read_nic_legend(lines: &[Line<'_>], h: &Header) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    let Some(start) = lines.iter().position(|l| {
        let words: Vec<&str> = l.text.split_whitespace().collect();
        matches!(words.as_slice(), [nic, legend] if nic.eq_ignore_ascii_case("NIC")
            && (legend.eq_ignore_ascii_case("Legend:") || legend.eq_ignore_ascii_case("Legend")))
    }) else {
        return names;
    };
    for l in lines.iter().skip(start + 1) {
        if is_blank(l.text) {
            continue;
        }
        let Some((id, name)) = l.text.split_once(':') else {
            break;
        };
        let (id, name) = (id.trim(), name.trim());
        if !is_nic_label(id) || name.is_empty() || name.contains(char::is_whitespace) {
            break;
        }
        if h.by_name.contains_key(id) {
            names
                .entry(id.to_string())
                .or_insert_with(|| name.to_string());
        }
    }
    names
}

// === topology ===

fn build(
    h: &Header,
    m: &Matrix,
    legend: &BTreeMap<String, String>,
    path: &Path,
) -> Result<Topology> {
    let origin = format!("topo-text:{}", path.display());
    let mut t = Topology {
        source: origin.clone(),
        ..Topology::default()
    };
    let mut host = Host::named(HOST);
    let mut nodes: BTreeMap<u32, CpuSet> = BTreeMap::new();
    let mut endpoints: Vec<Endpoint> = Vec::with_capacity(h.devices.len());
    for (d, row) in h.devices.iter().zip(&m.rows) {
        match d.gpu {
            Some(n) => {
                let id = format!("GPU{n}");
                let mut g = Gpu::new(id.clone(), n, HOST, "unknown");
                if let Some(r) = row {
                    g.numa_node = r.numa;
                    g.cpu_affinity = r.cpu.clone();
                    g.gpu_numa_id = r.gpu_numa;
                    if let Some(n) = r.numa {
                        let e = nodes.entry(n).or_default();
                        if let Some(c) = &r.cpu {
                            *e = e.union(c);
                        }
                    }
                    for (column, value) in &r.spans {
                        t.gap(
                            format!("gpu {id} {}", column.to_ascii_lowercase()),
                            format!("{column} {value} names several nodes (line {})", r.line),
                        );
                    }
                }
                t.gpus.push(g);
                endpoints.push(Endpoint::Gpu(GpuId(id)));
            }
            None => {
                let name = match legend.get(&d.name) {
                    Some(n) => Some(n.clone()),
                    None if is_nic_label(&d.name) => {
                        t.gap(
                            format!("nic {} name", d.name),
                            "no NIC Legend entry for it in the topo text (absent or cut off)",
                        );
                        None
                    }
                    None => Some(d.name.clone()),
                };
                t.nics.push(Nic {
                    id: d.name.clone(),
                    host: HOST.to_string(),
                    name,
                    pci_bus_id: None,
                });
                endpoints.push(Endpoint::Nic(d.name.clone()));
            }
        }
    }
    if t.gpus.is_empty() {
        return Err(Error::TopoText {
            path: path.to_path_buf(),
            line: h.line,
            message: "the matrix has no GPU".to_string(),
        });
    }
    host.numa_nodes = nodes
        .into_iter()
        .map(|(id, cpus)| NumaNode {
            id,
            cpus,
            memory_bytes: None,
        })
        .collect();
    t.hosts.push(host);

    let mut any_nvlink = false;
    for (i, a) in endpoints.iter().enumerate() {
        for (j, b) in endpoints.iter().enumerate().skip(i + 1) {
            let kind = match pair_cell(&m.rows, i, j) {
                Some(TopoCell::Nvlink(lanes)) => {
                    any_nvlink = true;
                    LinkKind::Nvlink {
                        lanes,
                        generation: None,
                    }
                }
                Some(TopoCell::Pcie(class)) => LinkKind::Pcie { class },
                // Both rows missing (two NICs of a truncated copy) or a diagonal cell,
                // which read_row rejects off the diagonal.
                Some(TopoCell::Own) | None => continue,
            };
            t.links.push(Link::new(a.clone(), b.clone(), kind));
        }
    }

    t.gap(
        "host name and architecture",
        "nvidia-smi topo -m text names neither the host nor its CPU architecture",
    );
    t.gap(
        "gpu uuids, pci bus ids and models",
        "nvidia-smi topo -m text identifies GPUs by index only",
    );
    if !h.trailing.contains(&Trailing::Cpu) {
        t.gap(
            "gpu cpu affinity",
            "the topo text has no CPU Affinity column",
        );
    }
    if !h.trailing.contains(&Trailing::Numa) {
        t.gap(
            "gpu numa nodes",
            "the topo text has no NUMA Affinity column (drivers before about 450 print none)",
        );
    }
    if any_nvlink {
        t.gap(
            "pcie path class of nvlink-joined gpu pairs",
            "nvidia-smi topo -m prints NV# instead of the PCIe class for those pairs",
        );
        t.gap(
            "nvlink generation",
            "nvidia-smi topo -m gives NVLink counts only; bandwidth assumes 25 GB/s per link",
        );
    }

    t.normalize();
    t.validate()
        .map_err(|error| Error::Model { origin, error })?;
    Ok(t)
}
