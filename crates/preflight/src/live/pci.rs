//! The NVIDIA PCI functions, their IOMMU groups and drivers.

use std::path::{Path, PathBuf};

use super::{LiveInput, read};
use crate::report::Check;

/// One NVIDIA PCI function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciDevice {
    /// `0000:17:00.0`.
    pub address: String,
    /// The class code (`0x030200`).
    pub class: u32,
    /// The device id (`0x2330`).
    pub device: String,
    /// The bound driver, if any.
    pub driver: Option<String>,
    /// The IOMMU group, if any.
    pub iommu_group: Option<String>,
    /// The sysfs directory.
    pub dir: PathBuf,
}

impl PciDevice {
    /// A display controller (class 0x03xxxx): a GPU.
    pub fn is_gpu(&self) -> bool {
        self.class >> 16 == 0x03
    }

    /// `0000:17:00` (the slot, without the function).
    pub fn slot(&self) -> &str {
        self.address
            .rsplit_once('.')
            .map_or(&self.address, |(s, _)| s)
    }
}

fn link_name(path: &Path) -> Option<String> {
    std::fs::read_link(path)
        .ok()
        .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
}

/// Every PCI function under `ROOT/sys/bus/pci/devices` with vendor 0x10de, sorted by
/// address. Unreadable entries are left out.
pub fn nvidia_devices(root: &Path) -> Vec<PciDevice> {
    pci_devices(root)
        .into_iter()
        .filter(|(vendor, _)| vendor == "0x10de")
        .map(|(_, d)| d)
        .collect()
}

fn pci_devices(root: &Path) -> Vec<(String, PciDevice)> {
    let dir = root.join("sys/bus/pci/devices");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, PciDevice)> = entries
        .flatten()
        .filter_map(|e| {
            let address = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            let rel = |f: &str| format!("sys/bus/pci/devices/{address}/{f}");
            let vendor = read(root, &rel("vendor")).ok()?.to_ascii_lowercase();
            let class = read(root, &rel("class")).ok()?;
            let class = u32::from_str_radix(class.trim_start_matches("0x"), 16).ok()?;
            let device = read(root, &rel("device"))
                .unwrap_or_default()
                .to_ascii_lowercase();
            Some((
                vendor,
                PciDevice {
                    driver: link_name(&path.join("driver")),
                    iommu_group: link_name(&path.join("iommu_group")),
                    address,
                    class,
                    device,
                    dir: path,
                },
            ))
        })
        .collect();
    out.sort_by(|a, b| a.1.address.cmp(&b.1.address));
    out
}

fn addresses(devs: &[&PciDevice]) -> String {
    devs.iter()
        .map(|d| d.address.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `live.gpus`: the NVIDIA GPUs on PCI.
pub fn gpus(devs: &[PciDevice]) -> Check {
    let gpus: Vec<&PciDevice> = devs.iter().filter(|d| d.is_gpu()).collect();
    if gpus.is_empty() {
        return Check::skip("live.gpus", "no NVIDIA GPU on PCI (no vendor 0x10de display controller under sys/bus/pci/devices): the GPU checks do not apply")
            .with_fix("nothing to do on a node without GPUs; on a GPU node check the cards are seated and powered (lspci -d 10de:)");
    }
    Check::pass(
        "live.gpus",
        format!(
            "{} NVIDIA GPU{}: {}",
            gpus.len(),
            if gpus.len() == 1 { "" } else { "s" },
            addresses(&gpus)
        ),
    )
}

/// `live.iommu-groups`: groups exist; for vfio-host each GPU's group holds only the GPU's
/// own functions (and bridges).
pub fn iommu_groups(input: &LiveInput<'_>, devs: &[PciDevice]) -> Check {
    let id = "live.iommu-groups";
    let groups_dir = input.root.join("sys/kernel/iommu_groups");
    let groups = std::fs::read_dir(&groups_dir)
        .map(|e| e.count())
        .unwrap_or(0);
    let vfio = input.has("vfio-host");
    if groups == 0 {
        let message = format!(
            "no IOMMU groups under {}: the IOMMU is off or has no driver",
            groups_dir.display()
        );
        let fix = "turn the IOMMU on: VT-d/AMD-Vi in the firmware and intel_iommu=on (x86), the SMMU described in ACPI IORT or the device tree (arm64), a RISC-V IOMMU driver (Linux 6.13+, CONFIG_RISCV_IOMMU) and its device-tree node (riscv64)";
        return if vfio {
            Check::fail(id, message, fix).with_roles(["vfio-host"])
        } else {
            Check::pass(
                id,
                format!("{message}; only passthrough (vfio-host) needs it"),
            )
        };
    }
    if !vfio {
        return Check::pass(id, format!("{groups} IOMMU groups"));
    }
    let gpus: Vec<&PciDevice> = devs.iter().filter(|d| d.is_gpu()).collect();
    if gpus.is_empty() {
        return Check::pass(
            id,
            format!("{groups} IOMMU groups; no NVIDIA GPU to pass through"),
        )
        .with_roles(["vfio-host"]);
    }
    let all = pci_devices(input.root);
    let mut shared = Vec::new();
    let mut ungrouped = Vec::new();
    for g in &gpus {
        let Some(group) = &g.iommu_group else {
            ungrouped.push(g.address.clone());
            continue;
        };
        let members = std::fs::read_dir(groups_dir.join(group).join("devices"))
            .map(|e| {
                e.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let strangers: Vec<String> = members
            .into_iter()
            .filter(|m| !m.starts_with(&format!("{}.", g.slot())))
            .filter(|m| {
                // Bridges may share the group: VFIO accepts them unbound or on pcieport.
                all.iter()
                    .find(|(_, d)| &d.address == m)
                    .is_none_or(|(_, d)| d.class >> 8 != 0x0604)
            })
            .collect();
        if !strangers.is_empty() {
            shared.push(format!(
                "{} (group {group}) with {}",
                g.address,
                strangers.join(", ")
            ));
        }
    }
    if !ungrouped.is_empty() {
        return Check::fail(id, format!("GPUs in no IOMMU group: {}", ungrouped.join(", ")), "the IOMMU does not cover these devices: check the firmware's IOMMU tables (DMAR, IVRS, IORT) or the device tree's iommu-map")
            .with_roles(["vfio-host"]);
    }
    if shared.is_empty() {
        Check::pass(
            id,
            format!(
                "{groups} IOMMU groups; each GPU's group holds only its own functions ({})",
                addresses(&gpus)
            ),
        )
        .with_roles(["vfio-host"])
    } else {
        Check::fail(
            id,
            format!("GPUs share their IOMMU group with other devices, which would have to go to the same VM: {}", shared.join("; ")),
            "move the GPU to a slot behind a switch or root port with ACS, or enable ACS in the firmware; do not use the pcie_acs_override patch on shared hosts",
        )
        .with_roles(["vfio-host"])
    }
}

/// `live.gpu-driver`: nvidia for gpu-host, vfio-pci for vfio-host.
pub fn gpu_driver(input: &LiveInput<'_>, devs: &[PciDevice]) -> Check {
    let id = "live.gpu-driver";
    let gpus: Vec<&PciDevice> = devs.iter().filter(|d| d.is_gpu()).collect();
    let (want, role, fix) = if input.has("vfio-host") {
        (
            "vfio-pci",
            "vfio-host",
            "bind them to vfio-pci: echo vfio-pci > /sys/bus/pci/devices/ADDR/driver_override && echo ADDR > /sys/bus/pci/drivers_probe, or boot with vfio-pci.ids=10de:DEVICE",
        )
    } else if input.has("gpu-host") {
        (
            "nvidia",
            "gpu-host",
            "load the NVIDIA driver (modprobe nvidia) and unbind anything else (nouveau: blacklist it)",
        )
    } else {
        return Check::skip(id, "no role here needs a GPU driver")
            .with_fix("ask for --role gpu-host or vfio-host to check it");
    };
    if gpus.is_empty() {
        return Check::skip(id, "no NVIDIA GPU on PCI")
            .with_fix("nothing to do on a node without GPUs")
            .with_roles([role]);
    }
    let bound: Vec<String> = gpus
        .iter()
        .map(|g| {
            format!(
                "{} {}",
                g.address,
                g.driver.as_deref().unwrap_or("(no driver)")
            )
        })
        .collect();
    let wrong: Vec<&String> = gpus
        .iter()
        .zip(&bound)
        .filter(|(g, _)| g.driver.as_deref() != Some(want))
        .map(|(_, b)| b)
        .collect();
    if wrong.is_empty() {
        Check::pass(
            id,
            format!("every GPU is bound to {want}: {}", bound.join(", ")),
        )
    } else {
        Check::fail(
            id,
            format!(
                "a {role} needs its GPUs on {want}; {}",
                wrong
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            fix,
        )
    }
    .with_roles([role])
}
