//! `nvml` (cargo feature `nvml`): discovery through NVML, loaded at run time.
//!
//! `libnvidia-ml.so.1` is opened by nvml-wrapper with `dlopen`, so one binary runs on
//! hosts with and without the driver. The host picture (name, NUMA, IOMMU groups, PCIe
//! link state) comes from sysfs; NVML adds UUIDs, product names, memory, NVLinks with
//! their far ends, PCIe common ancestors, MIG mode and multi-node fabric membership, and
//! [`crate::merge::merge`] joins the two by PCI address.
//!
//! Two NVML calls go through the raw symbol table (the only `unsafe` in linkwise):
//! `nvmlDeviceGetGpuFabricInfo`, which nvml-wrapper 0.13 does not wrap, and
//! `nvmlDeviceGetNvLinkRemoteDeviceType`, whose 0.13 wrapper writes the answer into a
//! temporary and so always reports "unknown".
#![allow(unsafe_code)]

use linkwise_core::{CpuSet, FabricMembership, MigMode, PathClass, PciAddress, Topology};
use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::TopologyLevel;
use nvml_wrapper::error::NvmlError;

use crate::merge::{DriverFacts, DriverGpu, DriverLink, RemoteKind, merge};
use crate::{Error, Result, SysfsSource, TopologySource};

/// Links probed per GPU (`NVML_NVLINK_MAX_LINKS`).
const MAX_LINKS: u32 = 18;

/// NVML, with sysfs for the host.
#[derive(Debug, Clone, Default)]
pub struct NvmlSource {}

impl NvmlSource {
    /// A source for this host.
    pub fn new() -> Self {
        NvmlSource {}
    }
}

fn one_line(e: &NvmlError) -> String {
    match e {
        NvmlError::LibloadingError(_) => {
            "libnvidia-ml.so.1 not found (no NVIDIA driver installed, or not in the library path)"
                .to_string()
        }
        NvmlError::DriverNotLoaded => "the NVIDIA kernel driver is not loaded".to_string(),
        NvmlError::NoPermission => "no permission to talk to the NVIDIA driver".to_string(),
        other => other.to_string(),
    }
}

impl TopologySource for NvmlSource {
    fn discover(&self) -> Result<Topology> {
        let nvml = Nvml::init().map_err(|e| Error::NvmlUnavailable {
            reason: one_line(&e),
        })?;
        let facts = read_facts(&nvml)?;
        let base = SysfsSource::new("/").discover()?;
        let t = merge(base, &facts, "nvml");
        t.validate().map_err(|error| Error::Model {
            origin: "nvml".to_string(),
            error,
        })?;
        Ok(t)
    }
}

fn nvml_err(call: &'static str, device: impl ToString) -> impl FnOnce(NvmlError) -> Error {
    move |e| Error::Nvml {
        call,
        device: device.to_string(),
        reason: e.to_string(),
    }
}

/// Reads every GPU; a GPU whose calls fail (XID 79 "fallen off the bus") keeps what
/// could be read and does not fail the others.
fn read_facts(nvml: &Nvml) -> Result<DriverFacts> {
    let count = nvml
        .device_count()
        .map_err(nvml_err("nvmlDeviceGetCount", "system"))?;
    let driver = nvml.sys_driver_version().ok();
    let mut facts = DriverFacts::default();
    let mut devices = Vec::new();
    for i in 0..count {
        let dev = match nvml.device_by_index(i) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(gpu = i, error = %e, "NVML cannot open GPU; skipping it");
                continue;
            }
        };
        let pci = dev
            .pci_info()
            .ok()
            .and_then(|p| p.bus_id.parse::<PciAddress>().ok());
        let mut g = DriverGpu {
            index: i,
            pci,
            uuid: dev.uuid().ok(),
            model: dev.name().ok(),
            memory_bytes: dev.memory_info().ok().map(|m| m.total),
            gpu_numa_id: dev.numa_node_id().ok(),
            cpu_affinity: dev.cpu_affinity(16).ok().map(|words| mask_to_cpus(&words)),
            driver_version: driver.clone(),
            vbios_version: dev.vbios_version().ok(),
            firmware_version: dev.info_rom_image_version().ok(),
            mig_mode: match dev.mig_mode() {
                Ok(m) if m.current == 1 => Some(MigMode::Enabled),
                Ok(_) => Some(MigMode::Disabled),
                Err(NvmlError::NotSupported) => Some(MigMode::Unsupported),
                Err(_) => None,
            },
            fabric: fabric_info(nvml, &dev),
            nvlinks: Vec::new(),
        };
        for link in 0..MAX_LINKS {
            let w = dev.link_wrapper_for(link);
            let active = match w.is_active() {
                Ok(a) => a,
                Err(NvmlError::NotSupported | NvmlError::InvalidArg) => continue,
                Err(e) => {
                    tracing::debug!(gpu = i, link, error = %e, "NVLink state unreadable");
                    continue;
                }
            };
            let remote_pci = w
                .remote_pci_info()
                .ok()
                .and_then(|p| p.bus_id.parse::<PciAddress>().ok());
            if !active && remote_pci.is_none() {
                continue;
            }
            g.nvlinks.push(DriverLink {
                link,
                active,
                generation: w.version().ok().map(generation_of),
                remote_kind: remote_kind(nvml, &dev, link),
                remote_pci,
            });
        }
        facts.gpus.push(g);
        devices.push((i, dev));
    }
    for (x, (i, a)) in devices.iter().enumerate() {
        for (j, _) in &devices[x + 1..] {
            // `topology_common_ancestor` takes the other device by value; open it again.
            let Ok(b) = nvml.device_by_index(*j) else {
                continue;
            };
            if let Ok(level) = a.topology_common_ancestor(b) {
                facts.pcie.insert((*i, *j), class_of(&level));
            }
        }
    }
    Ok(facts)
}

/// NVML's NVLink version: old drivers return the generation (1..5); newer ones an
/// enum (1 = 1.0, 2 = 2.0, 3 = 2.2, 4 = 3.0, 5 = 3.1, 6 = 4.0, 7 = 5.0). 6 and 7 can only
/// be the enum; 1..5 are read as generations.
fn generation_of(v: u32) -> u32 {
    match v {
        6 => 4,
        7 => 5,
        v => v,
    }
}

fn class_of(level: &TopologyLevel) -> PathClass {
    match level {
        TopologyLevel::Internal | TopologyLevel::Single => PathClass::Pix,
        TopologyLevel::Multiple => PathClass::Pxb,
        TopologyLevel::HostBridge => PathClass::Phb,
        TopologyLevel::Node => PathClass::Node,
        TopologyLevel::System => PathClass::Sys,
    }
}

// `c_ulong` is u64 on the 64-bit targets linkwise ships for, u32 elsewhere.
#[allow(clippy::useless_conversion)]
fn mask_to_cpus(words: &[std::os::raw::c_ulong]) -> CpuSet {
    let bits = u32::try_from(std::mem::size_of::<std::os::raw::c_ulong>() * 8).unwrap_or(64);
    let mut cpus = Vec::new();
    for (w, word) in (0u32..).zip(words) {
        for b in 0..bits {
            if (u64::from(*word) >> b) & 1 == 1 {
                cpus.push(w * bits + b);
            }
        }
    }
    CpuSet::from_cpus(cpus)
}

fn remote_kind(nvml: &Nvml, dev: &nvml_wrapper::Device<'_>, link: u32) -> RemoteKind {
    let Ok(sym) = nvml.lib().nvmlDeviceGetNvLinkRemoteDeviceType.as_ref() else {
        return RemoteKind::Unknown;
    };
    let mut out: nvml_wrapper_sys::bindings::nvmlIntNvLinkDeviceType_t = 255;
    // SAFETY: `dev.handle()` is a live handle owned by `nvml`, which outlives this call;
    // `out` is a valid pointer to a c_uint for the duration of the call.
    let rc = unsafe { sym(dev.handle(), link, &mut out) };
    if rc != 0 {
        return RemoteKind::Unknown;
    }
    match out {
        0 => RemoteKind::Gpu,
        1 => RemoteKind::Cpu,
        2 => RemoteKind::Switch,
        _ => RemoteKind::Unknown,
    }
}

fn fabric_info(nvml: &Nvml, dev: &nvml_wrapper::Device<'_>) -> Option<FabricMembership> {
    let sym = nvml.lib().nvmlDeviceGetGpuFabricInfo.as_ref().ok()?;
    let mut info = nvml_wrapper_sys::bindings::nvmlGpuFabricInfo_t {
        clusterUuid: [0; 16],
        status: 0,
        cliqueId: 0,
        state: 0,
    };
    // SAFETY: as above; `info` is a plain C struct NVML fills in.
    let rc = unsafe { sym(dev.handle(), &mut info) };
    // Fabric-attached only when registration completed successfully with a real cluster.
    if rc != 0
        || info.status != 0
        || u32::from(info.state) != 3
        || info.clusterUuid.iter().all(|b| *b == 0)
    {
        return None;
    }
    let u = info.clusterUuid;
    let hex =
        |r: std::ops::Range<usize>| u[r].iter().map(|b| format!("{b:02x}")).collect::<String>();
    Some(FabricMembership {
        cluster_uuid: format!(
            "{}-{}-{}-{}-{}",
            hex(0..4),
            hex(4..6),
            hex(6..8),
            hex(8..10),
            hex(10..16)
        ),
        clique_id: info.cliqueId,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_masks_decode() {
        let words: Vec<std::os::raw::c_ulong> = vec![0b1011, 1];
        let set = mask_to_cpus(&words);
        assert_eq!(set.to_string(), "0-1,3,64");
    }

    #[test]
    fn version_enum_values_map_to_generations() {
        assert_eq!(generation_of(7), 5);
        assert_eq!(generation_of(6), 4);
        assert_eq!(generation_of(2), 2);
    }
}

/// Tests against a real GPU: `cargo test -p linkwise-discovery --features nvml -- --ignored`.
#[cfg(test)]
mod hardware {
    use super::*;

    #[test]
    #[ignore = "needs an NVIDIA GPU and driver"]
    fn discovers_this_hosts_gpus() {
        let t = NvmlSource::new().discover().expect("NVML discovery");
        assert!(!t.gpus.is_empty(), "NVML loaded but reported no GPU");
        for g in &t.gpus {
            assert!(
                g.uuid.as_deref().is_some_and(|u| u.starts_with("GPU-")),
                "{g:?}"
            );
            assert!(g.pci_bus_id.is_some(), "{g:?}");
            assert!(g.memory_bytes.is_some_and(|m| m > 0), "{g:?}");
            assert_ne!(g.model, "unknown");
        }
        let m = t.pair_matrix();
        assert_eq!(m.len(), t.gpus.len());
        println!(
            "{}",
            linkwise_core::snapshot::to_string(&t, linkwise_core::snapshot::Format::Yaml)
                .unwrap_or_default()
        );
    }

    #[test]
    #[ignore = "needs an NVIDIA GPU and driver"]
    fn reads_pcie_ancestors_for_every_pair() {
        let nvml = Nvml::init().expect("NVML");
        let facts = read_facts(&nvml).expect("facts");
        let n = u32::try_from(facts.gpus.len()).unwrap_or(0);
        assert_eq!(
            facts.pcie.len(),
            usize::try_from(n * n.saturating_sub(1) / 2).unwrap_or(0)
        );
    }
}

/// XIDs that do not make a GPU unhealthy by default: application-level errors (13 graphics
/// engine exception, 31 GPU memory page fault, 43 GPU stopped processing, 45 preemptive
/// cleanup, 68 video processor exception, 109 context switch timeout) — a faulty job, not
/// a faulty GPU. The same set NVIDIA's device plugin ignores.
pub const DEFAULT_IGNORED_XIDS: &[u64] = &[13, 31, 43, 45, 68, 109];

/// Waits for NVML critical XID events on every GPU and calls `on_fault(gpu, xid)` for each
/// XID not in `ignored`. Blocks until NVML fails (run it on its own thread). GPUs whose
/// events cannot be registered are skipped with a warning; the others are watched.
pub fn watch_xids(
    ignored: &[u64],
    mut on_fault: impl FnMut(linkwise_core::GpuId, u64),
) -> Result<()> {
    use nvml_wrapper::bitmasks::event::EventTypes;
    use nvml_wrapper::enums::event::XidError;
    let nvml = Nvml::init().map_err(|e| Error::NvmlUnavailable {
        reason: one_line(&e),
    })?;
    let count = nvml
        .device_count()
        .map_err(nvml_err("nvmlDeviceGetCount", "system"))?;
    let mut set = nvml
        .create_event_set()
        .map_err(nvml_err("nvmlEventSetCreate", "system"))?;
    for i in 0..count {
        let Ok(dev) = nvml.device_by_index(i) else {
            continue;
        };
        set = match dev.register_events(EventTypes::CRITICAL_XID_ERROR, set) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(gpu = i, error = %e.error, "cannot watch XID events on this GPU");
                // The set is consumed on error; start a new one for the remaining GPUs.
                nvml.create_event_set()
                    .map_err(nvml_err("nvmlEventSetCreate", "system"))?
            }
        };
    }
    loop {
        match set.wait(1000) {
            Ok(ev) => {
                let xid = match ev.event_data {
                    Some(XidError::Value(x)) => x,
                    _ => 0,
                };
                if ignored.contains(&xid) {
                    tracing::info!(xid, "ignored XID (application-level)");
                    continue;
                }
                match ev.device.uuid() {
                    Ok(u) => on_fault(linkwise_core::GpuId(u), xid),
                    Err(e) => tracing::warn!(xid, error = %e, "XID on a GPU NVML cannot name"),
                }
            }
            Err(NvmlError::Timeout) => {}
            Err(e) => return Err(nvml_err("nvmlEventSetWait", "system")(e)),
        }
    }
}
