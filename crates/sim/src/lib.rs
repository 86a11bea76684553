//! The `linkwise sim` machinery: trace CSV readers, replay runs on worker threads, the
//! paper's resampled metrics, the topology map, and the chart (drawn as SVG, rendered
//! to PNG with resvg). The placement policies and the replay itself are pure and live in
//! `linkwise_core::placement`; the CLI parses the flags and calls this crate.

pub mod bound;
pub mod csv;
pub mod metrics;
pub mod plot;
pub mod render;
pub mod run;
pub mod topomap;

/// What the simulator can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: a trace file that cannot be read or parsed (the message names the file,
    /// the line and the column) or a malformed topology map.
    #[error("{0}")]
    Input(String),
    /// A run that failed: a worker panicked, or a job named an unknown policy.
    #[error("{0}")]
    Run(String),
}

/// The simulator's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
