//! `linkwise-exporter`: OpenMetrics for GPUs, NVLink links and PCIe links.
//!
//! What it is: a [`Collect`] source polled on its own interval ([`readings`]), pod and
//! Slurm job attribution refreshed on their own timers, health events, and a renderer
//! that turns the latest [`Snapshot`] into OpenMetrics text once per collection
//! ([`render`]). A scrape only serves the last rendered bytes: no driver, kubelet or file
//! access on the scrape path, so a slow source never slows a scrape.
//! What it is not: the kubelet device plugin (the agent wires this crate's health events
//! into it through a [`HealthLink`]) or a time-series store.
//!
//! Every metric family is listed once in [`catalogue::FAMILIES`]; the renderer, the
//! `docs/metrics.md` generator and the dashboard checks all read that list.
#![warn(missing_docs)]

pub mod attribution;
pub mod catalogue;
pub mod docs;
#[cfg(feature = "nvml")]
pub mod nvml;
pub mod readings;
pub mod render;
pub mod runtime;
pub mod server;
pub mod static_state;
pub mod synthetic;

pub use readings::{
    Attribution, Collect, CollectError, GpuReading, LinkReading, PcieReading, Peer, PeerType, Port,
    Readings, Snapshot, SourceHealth, nvlink_ports,
};
pub use render::{CONTENT_TYPE, Renderer};
pub use synthetic::Synthetic;

#[cfg(feature = "nvml")]
pub use nvml::NvmlCollector;
pub use runtime::{
    DEFAULT_IGNORED_XIDS, DEFAULT_RESOURCE_PREFIXES, Exporter, ExporterConfig, ExporterHandle,
    HealthLink,
};
pub use server::serve;
