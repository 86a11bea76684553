//! One model for what the benchmarks and diagnostics report: nvbandwidth's matrices,
//! nccl-tests' tables and dcgmi diag's verdicts, each test with its status.

use serde::{Deserialize, Serialize};

/// Which tool produced the results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tool {
    /// NVIDIA nvbandwidth (JSON with `-j`, or its text).
    Nvbandwidth,
    /// NVIDIA nccl-tests (`all_reduce_perf` and the others; their text tables).
    NcclTests,
    /// DCGM diagnostics (`dcgmi diag -j`, 3.x or 4.x).
    DcgmDiag,
    /// linkwise's own benchmarks (`validate bench`).
    Linkwise,
}

/// Everything read from one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Results {
    /// The tool.
    pub tool: Tool,
    /// The file (or `-`).
    pub source: String,
    /// The tool's version, where it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The driver version the tool reports, where it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
    /// The GPUs the tool lists (`index: name (bus id)`), where it does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// An error the tool reports for the whole run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The tests, in the file's order.
    pub tests: Vec<Test>,
}

/// A test's outcome, in the union of the tools' vocabularies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Ran and passed (nvbandwidth `Passed`, DCGM `Pass`).
    Passed,
    /// Not run because the system lacks what it needs (nvbandwidth `Waived`: no P2P path).
    Waived,
    /// Failed to run (nvbandwidth `Error`).
    Error,
    /// Asked for but unknown to the tool (nvbandwidth `Not Found`).
    NotFound,
    /// Started and never finished: the tool crashed or was killed (nvbandwidth leaves
    /// `Running`).
    Running,
    /// Ran and failed (DCGM `Fail`, nccl-tests with wrong elements).
    Fail,
    /// Passed with a warning (DCGM `Warn`).
    Warn,
    /// Skipped (DCGM `Skip`).
    Skip,
}

impl Status {
    /// True for outcomes that are a problem whatever the topology: an error, a crash, a
    /// failure.
    pub fn is_failure(self) -> bool {
        matches!(self, Status::Error | Status::Running | Status::Fail)
    }
}

/// One test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Test {
    /// The test's name (`device_to_device_memcpy_read_ce`, `all_reduce_perf`, `pcie`).
    pub name: String,
    /// Its outcome.
    pub status: Status,
    /// The tool's message (an error, a waiver's reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Bandwidth or latency matrices (nvbandwidth).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matrices: Vec<Matrix>,
    /// A collective's table (nccl-tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collective: Option<Collective>,
    /// Per-entity verdicts (DCGM).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<EntityResult>,
}

/// What a matrix's rows or columns are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Axis {
    /// The host's memory (one row or column).
    Cpu,
    /// GPUs by index.
    Gpu,
    /// All GPUs together (one row of totals).
    All,
}

/// Which way the data of a matrix cell moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// From the row to the column (`->`).
    RowToColumn,
    /// From the column to the row (`<-`).
    ColumnToRow,
    /// Both at once (`<->`); the cell is what the measured direction carried.
    Both,
    /// Inside one device (`memcpy local`).
    Local,
    /// The description does not say.
    Unknown,
}

/// A matrix's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unit {
    /// GB/s (10^9 bytes per second).
    #[serde(rename = "GB/s")]
    GBps,
    /// Nanoseconds (latency).
    #[serde(rename = "ns")]
    Ns,
}

/// One matrix of a test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Matrix {
    /// The tool's description line (`memcpy CE CPU(row) -> GPU(column) bandwidth (GB/s)`).
    pub description: String,
    /// What the rows are.
    pub rows: Axis,
    /// What the columns are.
    pub columns: Axis,
    /// Which way data moves.
    pub direction: Direction,
    /// The unit of the values.
    pub unit: Unit,
    /// The values by row then column; `None` where the tool wrote `N/A`.
    pub values: Vec<Vec<Option<f64>>>,
    /// The tool's sum, where it gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum: Option<f64>,
}

/// A collective's results (nccl-tests).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Collective {
    /// Ranks (GPUs) taking part: `nThread × nGpus × processes`, as the rank lines count.
    pub ranks: u32,
    /// The GPUs by their device index on their host, from the rank lines.
    pub devices: Vec<u32>,
    /// The hosts the ranks ran on.
    pub hosts: Vec<String>,
    /// One row per message size.
    pub sizes: Vec<SizeRow>,
    /// The tool's average bus bandwidth, GB/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_bus_bandwidth: Option<f64>,
    /// Out-of-bounds values the tool counted, where it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_bounds: Option<u64>,
}

/// One message size of a collective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SizeRow {
    /// Bytes.
    pub bytes: u64,
    /// Elements.
    pub count: u64,
    /// The element type (`float`).
    pub dtype: String,
    /// The reduction (`sum`; `none` for collectives without one).
    pub redop: String,
    /// Out of place.
    pub out_of_place: Perf,
    /// In place.
    pub in_place: Perf,
}

/// One measurement of a size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Perf {
    /// Time, microseconds.
    pub time_us: f64,
    /// Algorithm bandwidth, GB/s (size ÷ time).
    pub alg_bw: f64,
    /// Bus bandwidth, GB/s (algorithm bandwidth × the collective's factor).
    pub bus_bw: f64,
    /// Wrong elements found by validation; `None` when not validated (`N/A`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrong: Option<u64>,
}

/// One entity's verdict in a DCGM test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityResult {
    /// The entity group (`GPU`, `CPU`, `Switch`).
    pub group: String,
    /// The entity's id in its group (the GPU index for GPUs).
    pub id: u32,
    /// Its outcome.
    pub status: Status,
    /// The warnings and errors DCGM gives for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}
