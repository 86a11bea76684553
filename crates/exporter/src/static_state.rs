//! The topology's own state as readings, for sources with no live values (sysfs, or
//! NVML that did not load).
//!
//! Every GPU is present with the memory the topology records, every NVLink port is up or
//! down as the topology records it, and PCIe is as discovered; nothing else has a value
//! (so nothing else has a sample). Every collection returns the same readings.

use linkwise_core::Topology;

use crate::readings::{
    Collect, CollectError, GpuReading, LinkReading, PcieReading, Readings, nvlink_ports,
};

/// A [`Collect`] source serving the topology's own state, with no live readings: GPUs
/// present, links as discovered, PCIe as discovered. Not synthetic: the values are facts
/// the topology holds, not generated ones.
#[derive(Debug, Clone)]
pub struct Static {
    readings: Readings,
}

// === impl Static ===

impl Static {
    /// The readings of `topo`'s GPUs and [`nvlink_ports`], computed once.
    pub fn new(topo: &Topology) -> Self {
        let ports = nvlink_ports(topo);
        let readings = Readings {
            gpus: topo
                .gpus
                .iter()
                .map(|g| GpuReading {
                    memory_total_bytes: g.memory_bytes,
                    present: true,
                    ..GpuReading::default()
                })
                .collect(),
            links: (0..ports.len())
                .map(|port| LinkReading {
                    port,
                    up: ports[port].up,
                    ..LinkReading::default()
                })
                .collect(),
            pcie: topo
                .gpus
                .iter()
                .map(|g| {
                    let p = g.pcie.unwrap_or_default();
                    PcieReading {
                        current_speed_mts: p.current_speed_mts,
                        max_speed_mts: p.max_speed_mts,
                        current_width: p.current_width,
                        max_width: p.max_width,
                    }
                })
                .collect(),
            xids: Vec::new(),
        };
        Static { readings }
    }
}

impl Collect for Static {
    fn collect(&mut self) -> Result<Readings, CollectError> {
        Ok(self.readings.clone())
    }

    fn synthetic(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use linkwise_core::{LinkKind, LinkState, PcieLinkStatus};

    use super::*;

    fn profile(name: &str) -> Topology {
        linkwise_core::profiles::get(name).expect("a built-in profile")
    }

    #[test]
    fn serves_the_topology_state_and_nothing_else() {
        let topo = profile("dgx-h100");
        let mut s = Static::new(&topo);
        assert!(!s.synthetic());
        let r = s.collect().expect("collects");
        assert_eq!(r.gpus.len(), topo.gpus.len());
        for (reading, gpu) in r.gpus.iter().zip(&topo.gpus) {
            assert!(reading.present);
            assert_eq!(reading.memory_total_bytes, gpu.memory_bytes);
            assert_eq!(
                reading,
                &GpuReading {
                    memory_total_bytes: gpu.memory_bytes,
                    present: true,
                    ..GpuReading::default()
                },
                "no live value"
            );
        }
        let ports = nvlink_ports(&topo);
        assert!(!ports.is_empty());
        assert_eq!(r.links.len(), ports.len());
        for (i, l) in r.links.iter().enumerate() {
            assert_eq!(l.port, i);
            assert!(l.up);
            assert_eq!(l.tx_bytes, None);
        }
        assert_eq!(r.pcie.len(), topo.gpus.len());
        assert!(r.xids.is_empty());
        assert_eq!(s.collect().expect("collects again"), r, "same every time");
    }

    #[test]
    fn links_and_pcie_are_as_discovered() {
        let mut topo = profile("dgx1-v100");
        let down = topo
            .links
            .iter()
            .position(|l| matches!(l.kind, LinkKind::Nvlink { .. }))
            .expect("an NVLink link");
        topo.links[down].state = LinkState::Down;
        topo.gpus[0].pcie = Some(PcieLinkStatus {
            current_speed_mts: Some(8_000),
            current_width: Some(8),
            max_speed_mts: Some(16_000),
            max_width: Some(16),
        });
        topo.gpus[1].pcie = None;
        let r = Static::new(&topo).collect().expect("collects");
        let ports = nvlink_ports(&topo);
        assert!(ports.iter().any(|p| !p.up), "the profile has a down port");
        for (l, p) in r.links.iter().zip(&ports) {
            assert_eq!(l.up, p.up);
        }
        assert_eq!(
            r.pcie[0],
            PcieReading {
                current_speed_mts: Some(8_000),
                max_speed_mts: Some(16_000),
                current_width: Some(8),
                max_width: Some(16),
            }
        );
        assert_eq!(r.pcie[1], PcieReading::default(), "unknown stays unknown");
    }
}
