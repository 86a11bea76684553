//! Dynamic Resource Allocation (`resource.k8s.io/v1`) for linkwise.
//!
//! The GPUs of a [`Topology`](linkwise_core::Topology) published as DRA objects:
//! [`slices()`] renders one pool of ResourceSlices per node with the fabric attributes
//! (NVLink island, NVLink domain, clique, PCIe root), [`class()`] the DeviceClass that
//! selects this driver's devices, [`claim()`] an example ResourceClaim that keeps its GPUs
//! together, and [`render()`] writes any of them as YAML documents or JSON. [`api`] holds
//! the subset of the `resource.k8s.io/v1` types these objects use. The kubelet DRA node
//! plugin will live here too, publishing the same slices.
//!
//! Pure: no I/O. Names are checked when they are made ([`Driver::new`],
//! [`claim::claim`]); failures are [`Error`]s.

pub mod api;
pub mod claim;
pub mod class;
pub mod names;
pub mod render;
pub mod slices;

pub use claim::{KeepTogether, claim};
pub use class::class;
pub use names::Driver;
pub use render::{Format, render};
pub use slices::slices;

/// Why a DRA object could not be made or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The driver name is not a DNS subdomain with at least one dot.
    #[error("driver name {name:?} must be a DNS subdomain such as gpu.example.com")]
    Driver {
        /// The name given.
        name: String,
    },
    /// A claim for no device.
    #[error("a claim needs at least one device")]
    ZeroCount,
    /// The claim name is not a Kubernetes object name.
    #[error(
        "claim name {name:?} is not a Kubernetes object name (a DNS subdomain: lower-case \
         letters, digits, '-' and '.'); for example {suggestion:?}"
    )]
    ClaimName {
        /// The name given.
        name: String,
        /// A valid name made from it.
        suggestion: String,
    },
    /// An object could not be serialised.
    #[error("cannot serialise a DRA object: {0}")]
    Serialise(#[from] serde_json::Error),
}

/// The API group and version of every DRA object written here.
pub const API_VERSION: &str = "resource.k8s.io/v1";
