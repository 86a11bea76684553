//! `nvml` (cargo feature `nvml`): readings from NVML through nvml-wrapper.
//!
//! GPUs are matched to the topology by UUID (by PCI address when the topology has no
//! UUID). NVLink links: each GPU's links are probed once (`0..18`, NVML's
//! `NVML_NVLINK_MAX_LINKS`), keeping those that are active or name a far end, as
//! discovery does. When a GPU has as many such links as the topology gives it ports, the
//! k-th port (topology order) reads the k-th NVML link and [`NvmlCollector::ports`] labels
//! it with NVML's link number (what `nvidia-smi nvlink -s` shows). When the counts differ
//! the topology's numbering is kept, the first ports read the first links, and ports
//! beyond NVML's count get no reading (no sample rather than a guess).
//!
//! NVLink throughput (`tx_bytes`/`rx_bytes`): per GPU, one
//! [`linkwise_discovery::nvlink_throughput_kib`] call per collection reads the
//! `NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX/RX` field values of its matched links (NVML
//! link number as `scopeId`; nvml-wrapper 0.13's `field_values_for` always sends 0, so the
//! raw call lives in discovery, the one crate allowed `unsafe`). NVML counts KiB: the
//! readings are that times 1024, so they grow in 1 KiB steps. A value the GPU does not
//! report (`NOT_SUPPORTED` on GPUs or drivers without these counters) is `None`; when the
//! call as a whole fails every link of that GPU reads `None`, logged once at debug.
//!
//! Not read here: XIDs. They arrive through NVML events, which block; run
//! `linkwise_discovery::watch_xids` on its own thread and pass each event to
//! `ExporterHandle::record_xid`.

use std::sync::Arc;

use linkwise_core::{PciAddress, Topology};
use nvml_wrapper::Device;
use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::{EccCounter, MemoryError, TemperatureSensor};
use nvml_wrapper::enum_wrappers::nv_link::ErrorCounter;
use nvml_wrapper::error::NvmlError;

use crate::{
    Collect, CollectError, GpuReading, LinkReading, PcieReading, Port, Readings, nvlink_ports,
};

/// Links probed per GPU (`NVML_NVLINK_MAX_LINKS`).
const MAX_LINKS: u32 = 18;

/// Reads GPUs, NVLink links and PCIe links through NVML on every collection.
pub struct NvmlCollector {
    nvml: Nvml,
    topo: Arc<Topology>,
    ports: Vec<Port>,
    /// Per topology GPU: its NVML index, `None` when NVML does not list it.
    index: Vec<Option<u32>>,
    /// Per topology GPU: (port index, NVML link number) pairs, `None` until probed.
    links: Vec<Option<Vec<(usize, u32)>>>,
    /// Per topology GPU: a failed throughput call has been logged.
    throughput_logged: Vec<bool>,
}

impl std::fmt::Debug for NvmlCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmlCollector")
            .field("index", &self.index)
            .field("links", &self.links)
            .finish_non_exhaustive()
    }
}

fn err(message: impl Into<String>) -> CollectError {
    CollectError {
        source_name: "gpu".to_string(),
        message: message.into(),
    }
}

/// The value, or `None` when NVML cannot give it (not supported, no permission, ...);
/// `GpuLost` also sets `lost`.
fn val<T>(r: Result<T, NvmlError>, lost: &mut bool) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(NvmlError::GpuLost) => {
            *lost = true;
            None
        }
        Err(_) => None,
    }
}

/// NVML's PCIe generation in MT/s per lane.
fn gen_mts(generation: u32) -> Option<u32> {
    match generation {
        1 => Some(2_500),
        2 => Some(5_000),
        3 => Some(8_000),
        4 => Some(16_000),
        5 => Some(32_000),
        6 => Some(64_000),
        _ => None,
    }
}

/// NVML's KiB throughput counters in bytes (saturating, so the counter never goes back).
fn kib_to_bytes(kib: u64) -> u64 {
    kib.saturating_mul(1024)
}

// === impl NvmlCollector ===

impl NvmlCollector {
    /// Loads NVML and matches its GPUs to `topo`'s. Fails when NVML cannot be loaded or
    /// initialised (no driver); GPUs NVML does not list read as not present.
    pub fn new(topo: Arc<Topology>) -> Result<Self, CollectError> {
        let nvml = Nvml::init().map_err(|e| err(format!("NVML unavailable: {e}")))?;
        let count = nvml
            .device_count()
            .map_err(|e| err(format!("nvmlDeviceGetCount: {e}")))?;
        let mut index = vec![None; topo.gpus.len()];
        for i in 0..count {
            let Ok(dev) = nvml.device_by_index(i) else {
                continue;
            };
            let uuid = dev.uuid().ok();
            let pci = dev
                .pci_info()
                .ok()
                .and_then(|p| p.bus_id.parse::<PciAddress>().ok());
            let pos = topo.gpus.iter().position(|g| match (&g.uuid, &uuid) {
                (Some(a), Some(b)) => a == b,
                _ => g.pci_bus_id.is_some() && g.pci_bus_id == pci,
            });
            if let Some(p) = pos {
                index[p] = Some(i);
            }
        }
        if let Some(g) = index.iter().position(Option::is_none) {
            tracing::warn!(
                gpu = %topo.gpus[g].id.0,
                "NVML lists no GPU with this UUID; it reads as not present"
            );
        }
        let ports = nvlink_ports(&topo);
        let links = vec![None; topo.gpus.len()];
        let throughput_logged = vec![false; topo.gpus.len()];
        let mut c = NvmlCollector {
            nvml,
            topo,
            ports,
            index,
            links,
            throughput_logged,
        };
        for g in 0..c.topo.gpus.len() {
            if let Some(Ok(dev)) = c.index[g].map(|i| c.nvml.device_by_index(i)) {
                let map = c.probe_links(g, &dev);
                c.links[g] = Some(map);
            }
        }
        Ok(c)
    }

    /// The topology's ports, with NVML's link numbers where a GPU's link count matches
    /// the topology (see the module docs). Same order and length as
    /// [`nvlink_ports`]; pass it to `Exporter::with_ports`.
    pub fn ports(&self) -> Vec<Port> {
        let mut ports = self.ports.clone();
        for (g, map) in self.links.iter().enumerate() {
            let Some(map) = map else { continue };
            let n = ports.iter().filter(|p| p.gpu == g).count();
            if map.len() == n {
                for &(port, link) in map {
                    if let Some(p) = ports.get_mut(port) {
                        p.link = link;
                    }
                }
            }
        }
        ports
    }

    /// The NVML links of GPU `g` paired with its ports in order.
    fn probe_links(&self, g: usize, dev: &Device<'_>) -> Vec<(usize, u32)> {
        let mut found = Vec::new();
        for link in 0..MAX_LINKS {
            let w = dev.link_wrapper_for(link);
            let active = match w.is_active() {
                Ok(a) => a,
                Err(_) => continue,
            };
            if active || w.remote_pci_info().is_ok() {
                found.push(link);
            }
        }
        let ports: Vec<usize> = (0..self.ports.len())
            .filter(|&i| self.ports[i].gpu == g)
            .collect();
        if found.len() != ports.len() {
            tracing::warn!(
                gpu = %self.topo.gpus[g].id.0,
                nvml_links = found.len(),
                topology_ports = ports.len(),
                "NVML and the topology disagree on the NVLink count; keeping topology numbering"
            );
        }
        ports.into_iter().zip(found).collect()
    }

    fn read_gpu(&mut self, g: usize, out: &mut Readings) {
        let Some(i) = self.index[g] else {
            return;
        };
        let dev = match self.nvml.device_by_index(i) {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(gpu = i, error = %e, "NVML cannot open the GPU");
                return;
            }
        };
        let mut lost = false;
        let util = val(dev.utilization_rates().map(|u| u.gpu), &mut lost);
        let mem = dev.memory_info();
        let temp = val(dev.temperature(TemperatureSensor::Gpu), &mut lost);
        let power = val(dev.power_usage(), &mut lost);
        let ecc_c = val(
            dev.total_ecc_errors(MemoryError::Corrected, EccCounter::Volatile),
            &mut lost,
        );
        let ecc_u = val(
            dev.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile),
            &mut lost,
        );
        let pcie = PcieReading {
            current_speed_mts: dev.current_pcie_link_gen().ok().and_then(gen_mts),
            max_speed_mts: dev.max_pcie_link_gen().ok().and_then(gen_mts),
            current_width: dev.current_pcie_link_width().ok(),
            max_width: dev.max_pcie_link_width().ok(),
        };
        // Memory info answers on every GPU NVML supports: failing, the GPU is not answering.
        let present = !lost && mem.is_ok();
        let mem = mem.ok();
        let reading = GpuReading {
            utilization_ratio: util.map(|u| f64::from(u) / 100.0),
            memory_used_bytes: mem.as_ref().map(|m| m.used),
            memory_total_bytes: mem.as_ref().map(|m| m.total),
            temperature_celsius: temp.map(f64::from),
            power_watts: power.map(|mw| f64::from(mw) / 1000.0),
            ecc_corrected: ecc_c,
            ecc_uncorrected: ecc_u,
            present,
        };
        out.gpus[g] = reading;
        out.pcie[g] = pcie;
        if !present {
            return;
        }
        if self.links[g].is_none() {
            let map = self.probe_links(g, &dev);
            self.links[g] = Some(map);
        }
        let Some(map) = &self.links[g] else { return };
        let numbers: Vec<u32> = map.iter().map(|&(_, link)| link).collect();
        let kib = match linkwise_discovery::nvlink_throughput_kib(&dev, &numbers) {
            Ok(kib) => kib,
            Err(e) => {
                if !self.throughput_logged[g] {
                    self.throughput_logged[g] = true;
                    tracing::debug!(
                        gpu = %self.topo.gpus[g].id.0,
                        error = %e,
                        "NVLink throughput unreadable; its byte counters have no samples"
                    );
                }
                Vec::new()
            }
        };
        for (k, &(port, link)) in map.iter().enumerate() {
            let w = dev.link_wrapper_for(link);
            let counter = |c: ErrorCounter| w.error_counter(c).ok();
            let (tx, rx) = kib.get(k).copied().unwrap_or((None, None));
            out.links.push(LinkReading {
                port,
                up: w.is_active().unwrap_or(false),
                tx_bytes: tx.map(kib_to_bytes),
                rx_bytes: rx.map(kib_to_bytes),
                crc_flit_errors: counter(ErrorCounter::DlCrcFlit),
                crc_data_errors: counter(ErrorCounter::DlCrcData),
                replay_errors: counter(ErrorCounter::DlReplay),
                recovery_errors: counter(ErrorCounter::DlRecovery),
            });
        }
    }
}

impl Collect for NvmlCollector {
    fn collect(&mut self) -> Result<Readings, CollectError> {
        let n = self.topo.gpus.len();
        let mut out = Readings {
            gpus: vec![GpuReading::default(); n],
            links: Vec::new(),
            pcie: vec![PcieReading::default(); n],
            xids: Vec::new(),
        };
        for g in 0..n {
            self.read_gpu(g, &mut out);
        }
        out.links.sort_by_key(|l| l.port);
        Ok(out)
    }

    fn synthetic(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcie_generations_are_transfer_rates() {
        assert_eq!(gen_mts(4), Some(16_000));
        assert_eq!(gen_mts(6), Some(64_000));
        assert_eq!(gen_mts(0), None);
    }

    #[test]
    fn throughput_kib_are_bytes() {
        assert_eq!(kib_to_bytes(0), 0);
        assert_eq!(kib_to_bytes(3), 3 * 1024);
        assert_eq!(kib_to_bytes(u64::MAX), u64::MAX);
    }
}

/// Against a real GPU: `cargo test -p linkwise-exporter --features nvml -- --ignored`.
#[cfg(test)]
mod hardware {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use linkwise_core::Gpu;

    #[test]
    #[ignore = "needs an NVIDIA GPU and driver"]
    fn reads_every_gpu_of_this_host() {
        let nvml = Nvml::init().expect("NVML");
        let mut topo = Topology::default();
        for i in 0..nvml.device_count().unwrap() {
            let dev = nvml.device_by_index(i).unwrap();
            let mut g = Gpu::new(dev.uuid().unwrap(), i, "here", dev.name().unwrap());
            g.uuid = Some(g.id.0.clone());
            topo.gpus.push(g);
        }
        drop(nvml);
        let mut c = NvmlCollector::new(Arc::new(topo)).expect("collector");
        let r = c.collect().unwrap();
        assert!(!r.gpus.is_empty());
        for g in &r.gpus {
            assert!(g.present, "{g:?}");
            assert!(g.memory_total_bytes.is_some_and(|m| m > 0), "{g:?}");
            assert!(
                g.utilization_ratio
                    .is_some_and(|u| (0.0..=1.0).contains(&u)),
                "{g:?}"
            );
        }
        assert!(r.pcie.iter().all(|p| p.max_width.is_some()), "{:?}", r.pcie);
        println!("{r:#?}");
    }
}
