//! Validation: what the fabric should deliver, what the tools measured, and whether the
//! two agree.
//!
//! - [`results`]: one model for the results of nvbandwidth ([`nvbandwidth`]: JSON and
//!   text), nccl-tests ([`nccl`]: its tables) and `dcgmi diag -j` ([`dcgm`]: 3.x and 4.x);
//!   [`import`] recognises the format.
//! - [`expect`]: per GPU pair and per GPU, the bandwidth the topology allows (the
//!   physical peak of the bottleneck link) and what a copy realistically reaches.
//! - [`check`]: measured against expected; every pair or GPU that falls short is a
//!   finding with a diagnosis from the topology.
//! - [`gate`]: repeated runs before and after a change, a noise-aware verdict per metric.
//! - [`compare`]: a reference's tensors against a device's output (`.npy`,
//!   `.safetensors`), streamed.
//! - [`bench`](mod@bench): native benchmarks (host memory, STREAM-style, per NUMA node).

pub mod bench;
pub mod check;
pub mod compare;
pub mod cuda;
pub mod dcgm;
pub mod expect;
pub mod gate;
pub mod import;
pub mod nccl;
pub mod nvbandwidth;
pub mod results;

/// What cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file that is not in the format it claims, or is cut short.
    #[error("{source_name}: {position}: {message}")]
    Format {
        /// The file.
        source_name: String,
        /// Where: `line 12`, or a JSON path.
        position: String,
        /// What is wrong.
        message: String,
    },
}

impl Error {
    fn format(source: &str, position: String, message: String) -> Error {
        Error::Format {
            source_name: source.to_string(),
            position,
            message,
        }
    }
}
