//! Fleet inventory: what each node runs, kept so that drift and unapproved artefacts can
//! be found across a fleet.
//!
//! [`report`] is the node report, an interchange format (`docs/node-report.md`,
//! `docs/node-report.schema.json`): identity and labels, host (architecture, kernel,
//! command line, board and firmware), driver, GPUs (model, UUID, VBIOS, firmware, PCI
//! address, NUMA node), artefacts with their SHA-256 (the NVIDIA modules, the GPU
//! firmware files, named paths), a fingerprint of the fabric that ignores serial numbers,
//! and the preflight summary. [`collect`] builds one from a node's topology and files.
//! Any producer that writes the required fields can be read ([`NodeReport::parse`]).
//!
//! [`store`] keeps the reports in a database (SQLite or PostgreSQL, one code path),
//! every report once with history and each node's latest; [`server`] is the HTTP API of
//! `linkwise fleet serve` over it and [`push`] the agents' client. [`drift`] and
//! [`attest`] analyse the latest reports, from the store or from files.

pub mod attest;
pub mod collect;
pub mod drift;
pub mod fingerprint;
pub mod push;
pub mod report;
pub mod server;
pub mod store;

pub use report::{
    Artifact, Driver, GpuFacts, HostFacts, NodeReport, PreflightSummary, SCHEMA_VERSION,
};

/// What cannot be read or built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A report that is not JSON, or lacks or mistypes a field.
    #[error("{source_name}: {message}")]
    Report {
        /// The file (or `-`, or a request).
        source_name: String,
        /// What is wrong, with the field's path (`gpus[2].uuid`).
        message: String,
    },
    /// A file named for hashing cannot be read.
    #[error(transparent)]
    Read(#[from] linkwise_fsio::ReadError),
}
