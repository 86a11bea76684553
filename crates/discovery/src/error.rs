//! Discovery errors, carrying the file, line or device they are about.
//!
//! Each message is complete on its own (it includes the underlying error's text), so
//! the underlying errors are not chained as `source()` and nothing prints twice.

use std::path::PathBuf;

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why discovery produced nothing usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A `--source` value does not parse.
    #[error("bad source {spec:?}: {reason}")]
    BadSource {
        /// The value given.
        spec: String,
        /// What was expected.
        reason: String,
    },
    /// No built-in profile has this name.
    #[error("unknown profile {name:?}; built-in profiles: {known}")]
    UnknownProfile {
        /// The name given.
        name: String,
        /// The names that exist, comma-separated.
        known: String,
    },
    /// A file could not be read.
    #[error("reading {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A snapshot file does not parse or is inconsistent.
    #[error("{}: {error}", path.display())]
    Snapshot {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column where known.
        error: linkwise_core::Error,
    },
    /// `nvidia-smi topo -m` text does not parse.
    #[error("{}:{line}: {message}", path.display())]
    TopoText {
        /// The file (`-` for standard input).
        path: PathBuf,
        /// 1-based line number of the problem.
        line: usize,
        /// What was expected.
        message: String,
    },
    /// NVML could not be loaded or initialised.
    #[error("NVML unavailable: {reason}")]
    NvmlUnavailable {
        /// One-line reason (no driver, library missing, built without the feature).
        reason: String,
    },
    /// An NVML call failed for a device.
    #[error("NVML {call} failed for {device}: {reason}")]
    Nvml {
        /// The NVML call.
        call: &'static str,
        /// The device (index or PCI bus id).
        device: String,
        /// The error NVML returned.
        reason: String,
    },
    /// The model rejected what a source produced.
    #[error("{origin}: {error}")]
    Model {
        /// Which source produced it.
        origin: String,
        /// The model's complaint.
        error: linkwise_core::Error,
    },
}
