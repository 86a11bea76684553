//! Generated readings for a topology without a GPU: profiles, snapshots, tests, demos.
//!
//! Every value is a function of the GPU or port position and a tick counter that each
//! [`Collect::collect`] call advances; there is no randomness and no clock, so two
//! [`Synthetic`] sources over the same topology produce the same readings tick for tick.
//! Counters only grow, by amounts that assume one collection per second.

use linkwise_core::{PcieLinkStatus, Topology};

use crate::readings::{
    Collect, CollectError, GpuReading, LinkReading, PcieReading, Port, Readings, nvlink_ports,
};

/// Memory assumed for a GPU whose topology entry has none: 80 GiB.
const DEFAULT_MEMORY_BYTES: u64 = 80 << 30;
/// Line rate assumed for a port whose topology entry has none: 25 GB/s (one NVLink 4 link).
const DEFAULT_PORT_BPS: u64 = 25_000_000_000;
/// PCIe assumed for a GPU whose topology entry has none: Gen4 x16.
const DEFAULT_PCIE: PcieReading = PcieReading {
    current_speed_mts: Some(16_000),
    max_speed_mts: Some(16_000),
    current_width: Some(16),
    max_width: Some(16),
};

/// A [`Collect`] source that generates plausible, deterministic readings for a topology.
///
/// Utilisation, temperature, power and memory in use vary with the GPU position and the
/// tick within realistic ranges; NVLink byte counters grow by the port's line rate times a
/// per-port utilisation pattern (5–50 %) per tick; a few ports gain an error now and then;
/// every link is as the topology records it (up unless recorded down) and every GPU present until [`Synthetic::set_link_up`] or
/// [`Synthetic::set_present`] says otherwise. No XIDs.
#[derive(Debug, Clone)]
pub struct Synthetic {
    gpus: Vec<SynthGpu>,
    ports: Vec<Port>,
    /// Cumulative per-port state, returned (cloned) by each collection.
    links: Vec<LinkReading>,
    tick: u64,
}

#[derive(Debug, Clone)]
struct SynthGpu {
    memory_total: u64,
    pcie: PcieReading,
    present: bool,
    ecc_corrected: u64,
}

// === impl Synthetic ===

impl Synthetic {
    /// A source for `topo`'s GPUs and [`nvlink_ports`], at tick 0.
    pub fn new(topo: &Topology) -> Self {
        let ports = nvlink_ports(topo);
        let gpus = topo
            .gpus
            .iter()
            .map(|g| SynthGpu {
                memory_total: g.memory_bytes.unwrap_or(DEFAULT_MEMORY_BYTES),
                pcie: g.pcie.map_or(DEFAULT_PCIE, pcie_reading),
                present: true,
                ecc_corrected: 0,
            })
            .collect();
        let links = (0..ports.len())
            .map(|port| LinkReading {
                port,
                up: ports[port].up,
                tx_bytes: Some(0),
                rx_bytes: Some(0),
                crc_flit_errors: Some(0),
                crc_data_errors: Some(0),
                replay_errors: Some(0),
                recovery_errors: Some(0),
            })
            .collect();
        Synthetic {
            gpus,
            ports,
            links,
            tick: 0,
        }
    }

    /// The ports the readings describe ([`nvlink_ports`] of the topology).
    pub fn ports(&self) -> &[Port] {
        &self.ports
    }

    /// How many collections have run.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// Takes port `port` (an index into [`Synthetic::ports`]) down or back up; a down
    /// link's byte counters stop growing. Out-of-range ports are ignored.
    pub fn set_link_up(&mut self, port: usize, up: bool) {
        if let Some(l) = self.links.get_mut(port) {
            l.up = up;
        }
    }

    /// Marks GPU `gpu` (its position in `Topology::gpus`) lost or back: a lost GPU reads
    /// `present: false` with no values. Its links are left as they are. Out-of-range GPUs
    /// are ignored.
    pub fn set_present(&mut self, gpu: usize, present: bool) {
        if let Some(g) = self.gpus.get_mut(gpu) {
            g.present = present;
        }
    }

    fn gpu_reading(i: u64, t: u64, g: &SynthGpu) -> GpuReading {
        if !g.present {
            return GpuReading {
                present: false,
                ..GpuReading::default()
            };
        }
        let util = (i * 13 + t * 7) % 101; // percent, 0..=100
        let mem_pct = 10 + (i * 29 + t * 11) % 81; // 10..=90
        GpuReading {
            utilization_ratio: Some(util as f64 / 100.0),
            memory_used_bytes: Some(g.memory_total / 100 * mem_pct),
            memory_total_bytes: Some(g.memory_total),
            temperature_celsius: Some(30.0 + util as f64 * 0.5 + (i % 7) as f64),
            power_watts: Some(80.0 + util as f64 * 6.0),
            ecc_corrected: Some(g.ecc_corrected),
            ecc_uncorrected: Some(0),
            present: true,
        }
    }
}

impl Collect for Synthetic {
    fn collect(&mut self) -> Result<Readings, CollectError> {
        self.tick += 1;
        let t = self.tick;
        for (l, port) in self.links.iter_mut().zip(&self.ports) {
            if !l.up {
                continue;
            }
            let p = l.port as u64;
            let bps = port.bandwidth_bps.unwrap_or(DEFAULT_PORT_BPS);
            let tx_pct = 5 + (p * 7 + t * 3) % 10 * 5; // 5..=50 %
            let rx_pct = 5 + (p * 3 + t * 7 + 4) % 10 * 5;
            add(&mut l.tx_bytes, bps / 100 * tx_pct);
            add(&mut l.rx_bytes, bps / 100 * rx_pct);
            if p % 17 == 3 && t.is_multiple_of(4) {
                add(&mut l.crc_flit_errors, 1);
            }
            if p % 31 == 7 && t.is_multiple_of(10) {
                add(&mut l.replay_errors, 1);
            }
            if p % 97 == 11 && t.is_multiple_of(25) {
                add(&mut l.recovery_errors, 1);
            }
        }
        let mut gpus = Vec::with_capacity(self.gpus.len());
        for (i, g) in self.gpus.iter_mut().enumerate() {
            let i = i as u64;
            if g.present && i % 5 == 1 && t.is_multiple_of(8) {
                g.ecc_corrected += 1;
            }
            gpus.push(Self::gpu_reading(i, t, g));
        }
        Ok(Readings {
            gpus,
            links: self.links.clone(),
            pcie: self.gpus.iter().map(|g| g.pcie).collect(),
            xids: Vec::new(),
        })
    }

    fn synthetic(&self) -> bool {
        true
    }
}

fn add(counter: &mut Option<u64>, by: u64) {
    *counter = Some(counter.unwrap_or(0).saturating_add(by));
}

fn pcie_reading(s: PcieLinkStatus) -> PcieReading {
    PcieReading {
        current_speed_mts: s.current_speed_mts,
        max_speed_mts: s.max_speed_mts,
        current_width: s.current_width,
        max_width: s.max_width,
    }
}
