//! GPUs: what sysfs and `/proc/driver/nvidia` say about each, their ids and indexes.

use std::collections::BTreeSet;

use linkwise_core::{CpuSet, Gpu, PcieLinkStatus};

use super::Ctx;
use super::devices::{Function, Placement};
use super::parse::{self, GpuInformation, Speed};
use super::root::Lookup;

/// `ROOT/proc/driver/nvidia`.
const PROC_NVIDIA: &str = "proc/driver/nvidia";

/// What the NVIDIA driver's procfs shows, when the driver is loaded.
#[derive(Debug, Clone, Default)]
pub(super) struct Driver {
    /// True when `proc/driver/nvidia/version` exists.
    pub(super) loaded: bool,
    /// The driver version, where the version file gives one.
    pub(super) version: Option<String>,
}

/// Reads `proc/driver/nvidia/version`. A missing file is no gap by itself (a host
/// without GPUs has none); [`build`] records one when GPUs are present.
pub(super) fn driver(cx: &mut Ctx) -> Driver {
    let rel = format!("{PROC_NVIDIA}/version");
    match cx.root.read(&rel) {
        Lookup::Missing => Driver::default(),
        Lookup::Unreadable(e) => {
            let why = format!("{} cannot be read: {e}", cx.root.show(&rel));
            cx.gap("nvidia driver version", why);
            Driver {
                loaded: true,
                version: None,
            }
        }
        Lookup::Text(t) => {
            let version = parse::nvidia_driver_version(&t);
            if version.is_none() {
                let why = format!(
                    "{} has no NVRM version line with a version",
                    cx.root.show(&rel)
                );
                cx.gap("nvidia driver version", why);
            }
            Driver {
                loaded: true,
                version,
            }
        }
    }
}

/// A GPU with the placement and NUMA node its path classes need.
#[derive(Debug, Clone)]
pub(super) struct Found {
    /// The model GPU.
    pub(super) gpu: Gpu,
    /// Where it sits in the PCIe tree.
    pub(super) place: Placement,
}

/// Facts of one GPU function before ids and indexes are settled.
struct Facts<'a> {
    f: &'a Function,
    info: Option<GpuInformation>,
    gpu: Gpu,
}

/// Builds the GPUs of `functions` (GPU functions, PCI address order) on `host`.
///
/// Ids: the UUID from the driver's `information` file, else the PCI bus id.
/// Indexes: `Device Minor` when every GPU has a distinct one, else the position in
/// PCI bus id order (NVML's order).
pub(super) fn build(
    cx: &mut Ctx,
    functions: &[&Function],
    host: &str,
    driver: &Driver,
) -> Vec<Found> {
    if functions.is_empty() {
        return Vec::new();
    }
    if !driver.loaded {
        let why = format!(
            "{}/version is missing: the NVIDIA driver is not loaded, so GPU UUIDs, VBIOS and driver \
             version are unknown; GPU ids are PCI bus ids and indexes follow PCI bus order",
            cx.root.show(PROC_NVIDIA)
        );
        cx.gap("gpu uuids", why);
    }
    let mut facts: Vec<Facts<'_>> = functions
        .iter()
        .map(|f| facts(cx, f, host, driver))
        .collect();

    let minors: Vec<Option<u32>> = facts
        .iter()
        .map(|x| x.info.as_ref().and_then(|i| i.minor))
        .collect();
    let distinct: BTreeSet<u32> = minors.iter().flatten().copied().collect();
    let use_minors = minors.iter().all(Option::is_some) && distinct.len() == minors.len();
    if !use_minors && minors.iter().any(Option::is_some) {
        let why = format!(
            "Device Minor in {}/gpus/*/information is missing for some GPUs or repeated; \
             indexes follow PCI bus order",
            cx.root.show(PROC_NVIDIA)
        );
        cx.gap("gpu indexes", why);
    }
    let mut ids = BTreeSet::new();
    let mut out = Vec::with_capacity(facts.len());
    for (pos, x) in facts.iter_mut().enumerate() {
        let minor = minors.get(pos).copied().flatten();
        x.gpu.index = match (use_minors, minor) {
            (true, Some(m)) => m,
            _ => u32::try_from(pos).unwrap_or(u32::MAX),
        };
        if let Some(u) = x.gpu.uuid.clone() {
            if ids.contains(&u) {
                let why = format!(
                    "{}/gpus/{}/information repeats UUID {u}; the GPU is named by its PCI bus id",
                    cx.root.show(PROC_NVIDIA),
                    x.f.bdf
                );
                cx.gap(format!("gpu {} uuid", x.f.bdf), why);
                x.gpu.uuid = None;
            } else {
                x.gpu.id.0 = u;
            }
        }
        ids.insert(x.gpu.id.0.clone());
        out.push(Found {
            gpu: x.gpu.clone(),
            place: x.f.place.clone(),
        });
    }
    out.sort_by_key(|g| g.gpu.index);
    out
}

fn facts<'a>(cx: &mut Ctx, f: &'a Function, host: &str, driver: &Driver) -> Facts<'a> {
    let what = |x: &str| format!("gpu {} {x}", f.bdf);
    let mut gpu = Gpu::new(f.bdf.clone(), 0, host, parse::nvidia_model(f.device));
    gpu.pci_bus_id = Some(f.addr);
    gpu.pcie_root = f.place.host_bridge.clone();

    gpu.numa_node = numa_node(cx, f);
    gpu.cpu_affinity = cx.parsed(
        &f.attr("local_cpulist"),
        &what("cpu affinity"),
        "a CPU list",
        |s| s.parse::<CpuSet>().ok(),
    );
    gpu.iommu_group = iommu_group(cx, f);
    gpu.pcie = pcie(cx, f);
    gpu.kernel_driver = match cx.root.link_name(&f.attr("driver")) {
        Ok(d) => d,
        Err(e) => {
            let why = format!("{}: {e}", cx.root.show(&f.attr("driver")));
            cx.gap(what("kernel driver"), why);
            None
        }
    };

    let info = if driver.loaded {
        let rel = format!("{PROC_NVIDIA}/gpus/{}/information", f.bdf);
        match cx.root.read(&rel) {
            Lookup::Text(t) => Some(parse::gpu_information(&t)),
            Lookup::Missing => {
                let why = format!(
                    "{} is missing: the NVIDIA driver does not manage this GPU (bound to {})",
                    cx.root.show(&rel),
                    gpu.kernel_driver.as_deref().unwrap_or("no driver")
                );
                cx.gap(what("uuid"), why);
                None
            }
            Lookup::Unreadable(e) => {
                cx.gap(
                    what("uuid"),
                    format!("{} cannot be read: {e}", cx.root.show(&rel)),
                );
                None
            }
        }
    } else {
        None
    };
    if let Some(i) = &info {
        if let Some(m) = &i.model {
            gpu.model.clone_from(m);
        }
        gpu.uuid.clone_from(&i.uuid);
        gpu.vbios_version.clone_from(&i.vbios);
        gpu.firmware_version.clone_from(&i.firmware);
    }
    if info.is_some() || gpu.kernel_driver.as_deref() == Some("nvidia") {
        gpu.driver_version.clone_from(&driver.version);
    }
    Facts { f, info, gpu }
}

/// `numa_node`: `-1` and garbage are unknown, with a gap naming the file.
fn numa_node(cx: &mut Ctx, f: &Function) -> Option<u32> {
    let rel = f.attr("numa_node");
    let what = format!("gpu {} numa node", f.bdf);
    let raw = cx.parsed(&rel, &what, "a NUMA node number or -1", |s| {
        s.parse::<i64>().ok()
    })?;
    match u32::try_from(raw) {
        Ok(n) => Some(n),
        Err(_) if raw == -1 => {
            let why = format!(
                "{} is -1: the firmware gives the PCIe root no proximity (no ACPI _PXM or device-tree numa-node-id)",
                cx.root.show(&rel)
            );
            cx.gap(what, why);
            None
        }
        Err(_) => {
            let why = format!(
                "{} holds {raw}, not a NUMA node number or -1",
                cx.root.show(&rel)
            );
            cx.gap(what, why);
            None
        }
    }
}

/// `iommu_group` → `../../../kernel/iommu_groups/<N>`.
fn iommu_group(cx: &mut Ctx, f: &Function) -> Option<u32> {
    let rel = f.attr("iommu_group");
    let what = format!("gpu {} iommu group", f.bdf);
    match cx.root.link_name(&rel) {
        Ok(Some(n)) => match n.parse::<u32>() {
            Ok(g) => Some(g),
            Err(_) => {
                let why = format!("{} points to {n:?}, not a group number", cx.root.show(&rel));
                cx.gap(what, why);
                None
            }
        },
        Ok(None) => {
            let why = format!(
                "{} is missing: the host has no IOMMU, or it is off or not supported by this kernel",
                cx.root.show(&rel)
            );
            cx.gap(what, why);
            None
        }
        Err(e) => {
            cx.gap(what, format!("{}: {e}", cx.root.show(&rel)));
            None
        }
    }
}

/// `current_link_speed`, `current_link_width`, `max_link_speed`, `max_link_width`.
fn pcie(cx: &mut Ctx, f: &Function) -> Option<PcieLinkStatus> {
    let what = format!("gpu {} pcie link", f.bdf);
    let mut missing = Vec::new();
    let speed = |cx: &mut Ctx, attr: &str, missing: &mut Vec<String>| -> Option<u32> {
        let rel = f.attr(attr);
        match cx.root.read(&rel) {
            Lookup::Missing => {
                missing.push(attr.to_string());
                None
            }
            Lookup::Unreadable(e) => {
                cx.gap(
                    what.clone(),
                    format!("{} cannot be read: {e}", cx.root.show(&rel)),
                );
                None
            }
            Lookup::Text(t) => match parse::link_speed(&t) {
                Some(Speed::Mts(m)) => Some(m),
                Some(Speed::Unknown) => {
                    cx.gap(what.clone(), format!("{} says Unknown", cx.root.show(&rel)));
                    None
                }
                None => {
                    let why = format!(
                        "{} holds {:?}, not a speed such as \"16.0 GT/s PCIe\"",
                        cx.root.show(&rel),
                        t.trim()
                    );
                    cx.gap(what.clone(), why);
                    None
                }
            },
        }
    };
    let current_speed_mts = speed(cx, "current_link_speed", &mut missing);
    let max_speed_mts = speed(cx, "max_link_speed", &mut missing);
    let width = |cx: &mut Ctx, attr: &str, missing: &mut Vec<String>| -> Option<u32> {
        let rel = f.attr(attr);
        if matches!(cx.root.read(&rel), Lookup::Missing) {
            missing.push(attr.to_string());
            return None;
        }
        cx.parsed(
            &rel,
            &format!("gpu {} pcie link", f.bdf),
            "a lane count",
            parse::link_width,
        )
    };
    let current_width = width(cx, "current_link_width", &mut missing);
    let max_width = width(cx, "max_link_width", &mut missing);
    if !missing.is_empty() {
        let why = format!(
            "{} has no {} (kernels before 4.13 do not show link state)",
            cx.root.show(&f.rel),
            missing.join(", ")
        );
        cx.gap(format!("gpu {} pcie link", f.bdf), why);
    }
    let status = PcieLinkStatus {
        current_speed_mts,
        current_width,
        max_speed_mts,
        max_width,
    };
    (status != PcieLinkStatus::default()).then_some(status)
}
