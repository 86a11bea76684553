//! `nvml` (cargo feature `nvml`): discovery through NVML, loaded at run time.
//!
//! `libnvidia-ml.so.1` is opened by nvml-wrapper with `dlopen`, so one binary runs on
//! hosts with and without the driver. The host picture (name, NUMA, IOMMU groups, PCIe
//! link state) comes from sysfs; NVML adds UUIDs, product names, memory, NVLinks with
//! their far ends, PCIe common ancestors, MIG mode and multi-node fabric membership, and
//! [`crate::merge::merge`] joins the two by PCI address.
//!
//! Three NVML calls go through the raw symbol table (the only `unsafe` in linkwise):
//! `nvmlDeviceGetGpuFabricInfo`, which nvml-wrapper 0.13 does not wrap,
//! `nvmlDeviceGetNvLinkRemoteDeviceType`, whose 0.13 wrapper writes the answer into a
//! temporary and so always reports "unknown", and `nvmlDeviceGetFieldValues` in
//! [`nvlink_throughput_kib`], whose 0.13 wrapper (`field_values_for`) always sends
//! `scopeId` 0 and so cannot ask for a given link's throughput.
#![allow(unsafe_code)]

use linkwise_core::{CpuSet, FabricMembership, MigMode, PathClass, PciAddress, Topology};
use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::TopologyLevel;
use nvml_wrapper::error::NvmlError;

use crate::merge::{DriverFacts, DriverGpu, DriverLink, RemoteKind, merge};
use crate::throughput::{self, FieldSample};
use crate::{Error, Result, SysfsSource, TopologySource};

// The numbers `throughput` uses without nvml-wrapper-sys are the bindings' numbers.
// (138 and 139 are outside the 251..=273 range NVIDIA renumbered in driver 580.82, so
// nvml-wrapper's field-id translation does not apply to them.)
const _: () = {
    use nvml_wrapper_sys::bindings as b;
    assert!(
        throughput::FI_NVLINK_THROUGHPUT_DATA_TX
            == b::field_id::NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX
    );
    assert!(
        throughput::FI_NVLINK_THROUGHPUT_DATA_RX
            == b::field_id::NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX
    );
    assert!(throughput::NVML_SUCCESS == b::nvmlReturn_enum_NVML_SUCCESS);
    assert!(
        throughput::NVML_VALUE_TYPE_UNSIGNED_LONG_LONG
            == b::nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_LONG_LONG
    );
};

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

/// NVLink data throughput of `links` (NVML link numbers, as `nvidia-smi nvlink -s` shows
/// them) on `dev`: per link, in the order given, (KiB sent, KiB received), running totals.
///
/// One `nvmlDeviceGetFieldValues` call asks for `NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX`
/// and `_RX` with the link as `scopeId` (2 × `links.len()` values). A value NVML does not
/// give — its entry fails (`NOT_SUPPORTED` on GPUs or drivers without these counters, a
/// link that does not exist) or is not an unsigned long long — is `None`; the others
/// are still returned. An empty `links` makes no call.
///
/// # Errors
///
/// [`Error::Nvml`] when the loaded NVML has no `nvmlDeviceGetFieldValues` or the call as
/// a whole fails (a lost GPU, an invalid handle).
pub fn nvlink_throughput_kib(
    dev: &nvml_wrapper::Device<'_>,
    links: &[u32],
) -> Result<Vec<(Option<u64>, Option<u64>)>> {
    use nvml_wrapper_sys::bindings::{nvmlFieldValue_t, nvmlValue_t};
    if links.is_empty() {
        return Ok(Vec::new());
    }
    let fail = |reason: String| Error::Nvml {
        call: "nvmlDeviceGetFieldValues",
        device: dev
            .index()
            .map_or_else(|_| "a GPU".to_string(), |i| format!("GPU {i}")),
        reason,
    };
    let sym = dev
        .nvml()
        .lib()
        .nvmlDeviceGetFieldValues
        .as_ref()
        .map_err(|e| fail(e.to_string()))?;
    let mut values: Vec<nvmlFieldValue_t> = throughput::requests(links)
        .into_iter()
        .map(|(field, scope)| nvmlFieldValue_t {
            fieldId: field,
            scopeId: scope,
            timestamp: 0,
            latencyUsec: 0,
            valueType: 0,
            // Anything but success until NVML answers the entry.
            nvmlReturn: nvml_wrapper_sys::bindings::nvmlReturn_enum_NVML_ERROR_UNKNOWN,
            // `ullVal` is 8 bytes, the union's full size: every byte is initialised.
            value: nvmlValue_t { ullVal: 0 },
        })
        .collect();
    let count = std::os::raw::c_int::try_from(values.len())
        .map_err(|_| fail(format!("{} links is too many", links.len())))?;
    // SAFETY: `dev.handle()` is a live handle owned by the `Nvml` that `dev` borrows, which
    // outlives this call. `values` is an initialised, exclusively borrowed buffer of
    // exactly `count` `nvmlFieldValue_t`s (the bindings' `#[repr(C)]` layout); NVML reads
    // `fieldId`/`scopeId` and writes the other members of those `count` entries only, and
    // keeps no pointer to it after returning.
    let rc = unsafe { sym(dev.handle(), count, values.as_mut_ptr()) };
    if rc != throughput::NVML_SUCCESS {
        return Err(fail(NvmlError::from(rc).to_string()));
    }
    let samples: Vec<FieldSample> = values
        .iter()
        .map(|v| FieldSample {
            field_id: v.fieldId,
            scope_id: v.scopeId,
            return_code: v.nvmlReturn,
            value_type: v.valueType,
            value: if v.nvmlReturn == throughput::NVML_SUCCESS
                && v.valueType == throughput::NVML_VALUE_TYPE_UNSIGNED_LONG_LONG
            {
                // SAFETY: `valueType` says NVML stored an unsigned long long, so `ullVal`
                // is the member it wrote; the union was fully initialised before the call
                // in any case, so the read never sees uninitialised bytes.
                unsafe { v.value.ullVal }
            } else {
                0
            },
        })
        .collect();
    Ok(throughput::per_link_kib(links, &samples))
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

    #[test]
    #[ignore = "needs an NVIDIA GPU and driver"]
    fn reads_nvlink_throughput_per_link() {
        let nvml = Nvml::init().expect("NVML");
        for i in 0..nvml.device_count().expect("count") {
            let dev = nvml.device_by_index(i).expect("device");
            let links: Vec<u32> = (0..MAX_LINKS)
                .filter(|&l| dev.link_wrapper_for(l).is_active().unwrap_or(false))
                .collect();
            let kib = nvlink_throughput_kib(&dev, &links).expect("nvmlDeviceGetFieldValues");
            assert_eq!(kib.len(), links.len());
            println!("GPU {i}: links {links:?}: (tx KiB, rx KiB) {kib:?}");
        }
    }
}

/// XIDs that do not make a GPU unhealthy by default (defined in core).
pub use linkwise_core::conventions::xid::DEFAULT_IGNORED_XIDS;

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
