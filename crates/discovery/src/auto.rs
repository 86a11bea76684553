//! `auto`: NVML when it loads, sysfs otherwise.

use linkwise_core::Topology;

use crate::{Result, SysfsSource, TopologySource};

/// The default source on a live host: NVML (which itself reads sysfs for the host and
/// merges the two) when the driver library loads; sysfs alone otherwise, with the reason
/// NVML was not used recorded as a gap.
#[derive(Debug, Clone, Default)]
pub struct AutoSource {}

impl AutoSource {
    /// The default source for a live host.
    pub fn new() -> Self {
        AutoSource {}
    }
}

impl TopologySource for AutoSource {
    fn discover(&self) -> Result<Topology> {
        let reason = match try_nvml() {
            Ok(t) => return Ok(t),
            Err(reason) => reason,
        };
        tracing::info!(%reason, "NVML not used; discovering from sysfs");
        let mut t = SysfsSource::new("/").discover()?;
        t.source = format!("auto:{}", t.source);
        t.gap("NVML", reason);
        Ok(t)
    }
}

#[cfg(feature = "nvml")]
fn try_nvml() -> std::result::Result<Topology, String> {
    match crate::NvmlSource::new().discover() {
        Ok(t) => Ok(t),
        Err(crate::Error::NvmlUnavailable { reason }) => Err(reason),
        Err(e) => Err(format!("NVML discovery failed: {e}")),
    }
}

#[cfg(not(feature = "nvml"))]
fn try_nvml() -> std::result::Result<Topology, String> {
    Err("this linkwise was built without the `nvml` feature (NVLink lanes, UUIDs and fabric membership need it)".to_string())
}
