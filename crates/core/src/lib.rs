//! `linkwise-core`: the fabric model every other part of linkwise reads.
//!
//! What it is: plain data types for hosts, GPUs, NVSwitches, NICs and the links
//! between them ([`Topology`]), what is derived from them (the pair matrix in
//! `nvidia-smi topo -m` vocabulary, NVLink islands, NVLink domains that span hosts),
//! and the versioned snapshot format that serialises a topology ([`snapshot`]).
//!
//! What it is not: discovery. Nothing here touches `/sys`, `/proc`, a device file,
//! the driver, the clock or the environment; `linkwise-discovery` fills this model
//! and everything downstream (allocator, device plugin, exporter, Slurm) reads it.
//!
//! Where to start: [`Topology`] and [`Topology::pair_matrix`].
#![warn(missing_docs)]

pub mod alloc;
pub mod annotation;
pub mod conventions;
mod cpuset;
mod derive;
mod error;
pub mod labels;
mod model;
mod pci;
pub mod placement;
pub mod profiles;
pub mod snapshot;
pub mod yaml;

pub use cpuset::CpuSet;
pub use derive::{Cell, Island, NvlinkDomain, PairMatrix, pcie_p2p_mbps};
pub use error::{Error, Result};
pub use model::*;
pub use pci::PciAddress;
