//! NUMA, hugepages, the NVIDIA driver, the fabric manager and IMEX, persistence.

use super::{LiveInput, PciDevice, read, shown};
use crate::report::Check;

/// The NUMA nodes under `sys/devices/system/node` (0 when the directory is absent).
fn numa_nodes(input: &LiveInput<'_>) -> usize {
    std::fs::read_dir(input.root.join("sys/devices/system/node"))
        .map(|e| {
            e.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_prefix("node"))
                        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                })
                .count()
        })
        .unwrap_or(0)
}

/// `live.gpu-numa`: every GPU's NUMA node is known on a multi-node system.
pub fn gpu_numa(input: &LiveInput<'_>, devs: &[PciDevice]) -> Check {
    let id = "live.gpu-numa";
    let gpus: Vec<&PciDevice> = devs.iter().filter(|d| d.is_gpu()).collect();
    if gpus.is_empty() {
        return Check::skip(id, "no NVIDIA GPU on PCI")
            .with_fix("nothing to do on a node without GPUs");
    }
    let nodes = numa_nodes(input);
    let mut unknown = Vec::new();
    let mut odd = Vec::new();
    let mut known = Vec::new();
    for g in &gpus {
        let rel = format!("sys/bus/pci/devices/{}/numa_node", g.address);
        match read(input.root, &rel).map(|t| (t.parse::<i64>(), t)) {
            Ok((Ok(-1), _)) => unknown.push(g.address.clone()),
            Ok((Ok(n), _)) if n >= 0 => known.push(format!("{} node {n}", g.address)),
            Ok((_, text)) => odd.push(format!("{rel} holds {}", shown(&text))),
            Err(why) => odd.push(why),
        }
    }
    if !odd.is_empty() {
        return Check::warn(
            id,
            format!(
                "the NUMA node of some GPUs cannot be read: {}",
                odd.join("; ")
            ),
            "read the files on the node; numa_node holds a number (-1 when unknown)",
        );
    }
    if unknown.is_empty() {
        return Check::pass(
            id,
            format!(
                "{nodes} NUMA node{}; {}",
                if nodes == 1 { "" } else { "s" },
                known.join(", ")
            ),
        );
    }
    if nodes <= 1 {
        return Check::pass(
            id,
            format!(
                "one NUMA node: GPUs {} report -1, which is right where there is only one node",
                unknown.join(", ")
            ),
        );
    }
    Check::warn(
        id,
        format!(
            "{nodes} NUMA nodes, but GPUs {} report node -1: jobs cannot be placed next to their GPUs' memory",
            unknown.join(", ")
        ),
        "have the firmware describe PCI locality: ACPI _PXM on the host bridges with an SRAT (x86, arm64), or numa-node-id on the PCIe controller's device-tree node (RISC-V boards often lack it); until then, linkwise takes NUMA from --source facts only",
    )
}

/// `live.hugepages`: pages reserved, from meminfo and every page size.
pub fn hugepages(input: &LiveInput<'_>) -> Check {
    let id = "live.hugepages";
    let wanted = input.has("gpu-host") || input.has("vfio-host");
    let mut sizes = Vec::new();
    let mut total = 0u64;
    if let Ok(entries) = std::fs::read_dir(input.root.join("sys/kernel/mm/hugepages")) {
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            let rel = format!("sys/kernel/mm/hugepages/{name}/nr_hugepages");
            if let Some(n) = read(input.root, &rel)
                .ok()
                .and_then(|t| t.parse::<u64>().ok())
            {
                let size = name.strip_prefix("hugepages-").unwrap_or(&name).to_string();
                total += n;
                sizes.push(format!("{n} x {size}"));
            }
        }
    }
    if sizes.is_empty() {
        let meminfo = match read(input.root, "proc/meminfo") {
            Ok(m) => m,
            Err(why) => {
                return Check::skip(id, format!("no hugepage state: {why}"))
                    .with_fix("run on the node, or capture proc/meminfo");
            }
        };
        let field = |k: &str| {
            meminfo.lines().find_map(|l| {
                l.strip_prefix(k)?
                    .split_whitespace()
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
        };
        let Some(n) = field("HugePages_Total:") else {
            return Check::skip(
                id,
                "proc/meminfo has no HugePages_Total: the kernel has no hugetlbfs",
            )
            .with_fix("build the kernel with CONFIG_HUGETLBFS=y");
        };
        total = n;
        sizes.push(format!("{n} x {} kB", field("Hugepagesize:").unwrap_or(0)));
    }
    let found = format!("hugepages reserved: {}", sizes.join(", "));
    if total > 0 {
        Check::pass(id, found)
    } else if wanted {
        Check::warn(
            id,
            found,
            "reserve huge pages: hugepages=N (and default_hugepagesz=1G for VMs) on the kernel command line, or sysctl vm.nr_hugepages=N",
        )
    } else {
        Check::pass(id, format!("{found}; no role here needs them"))
    }
}

/// `live.nvidia-driver`: loaded, and its version.
pub fn nvidia_driver(input: &LiveInput<'_>, devs: &[PciDevice]) -> Check {
    let id = "live.nvidia-driver";
    let version = read(input.root, "proc/driver/nvidia/version")
        .ok()
        .and_then(|t| linkwise_core::conventions::driver_version(&t))
        .or_else(|| {
            read(input.root, "sys/module/nvidia/version")
                .ok()
                .filter(|v| !v.is_empty())
        });
    let gpus = devs.iter().any(PciDevice::is_gpu);
    match (version, gpus, input.has("gpu-host")) {
        (Some(v), _, _) => Check::pass(id, format!("the NVIDIA driver {v} is loaded")),
        (None, false, _) => Check::skip(id, "no NVIDIA GPU on PCI and no NVIDIA driver loaded").with_fix("nothing to do on a node without GPUs"),
        (None, true, true) => Check::fail(
            id,
            "NVIDIA GPUs are present but no NVIDIA driver is loaded (no proc/driver/nvidia/version, no sys/module/nvidia)",
            "install the driver for this kernel and load it (modprobe nvidia); dmesg says why a load failed (a signature refused under Secure Boot, a version mismatch)",
        )
        .with_roles(["gpu-host"]),
        (None, true, false) => Check::pass(id, "no NVIDIA driver loaded: the GPUs are left for passthrough"),
    }
}

/// The command names of the running processes (`comm`, 15 characters at most, and the
/// program name from `cmdline`).
fn processes(input: &LiveInput<'_>) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(input.root.join("proc")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(comm) = read(input.root, &format!("proc/{name}/comm")) {
            out.push(comm);
        }
        if let Ok(bytes) = std::fs::read(e.path().join("cmdline"))
            && let Some(argv0) = bytes.split(|b| *b == 0).next()
        {
            let argv0 = String::from_utf8_lossy(argv0);
            if let Some(base) = argv0.rsplit('/').next().filter(|b| !b.is_empty()) {
                out.push(base.to_string());
            }
        }
    }
    out
}

/// Whether a process named `name` runs (a `comm` is cut at 15 characters).
fn running(procs: &[String], names: &[&str]) -> bool {
    procs.iter().any(|p| {
        names
            .iter()
            .any(|n| p == n || (p.len() == 15 && n.starts_with(p.as_str())))
    })
}

/// `live.fabric-manager`: nv-fabricmanager where the node has NVSwitches, nvidia-imex
/// where its GPUs are in a multi-node NVLink fabric.
pub fn fabric_manager(input: &LiveInput<'_>) -> Check {
    let id = "live.fabric-manager";
    let Some(topo) = input.topology else {
        return Check::skip(
            id,
            "the node's topology is unknown, so whether it needs the fabric manager is too",
        )
        .with_fix("run on the node with a working --source (NVML), so the NVSwitches are seen");
    };
    let switches = topo.switches.len();
    let multi_node = topo.gpus.iter().any(|g| g.fabric.is_some());
    if switches == 0 && !multi_node {
        return Check::skip(
            id,
            format!(
                "{}: no NVSwitch and no multi-node NVLink fabric: no fabric manager needed",
                topo.source
            ),
        )
        .with_fix("nothing to do");
    }
    let procs = processes(input);
    let mut missing = Vec::new();
    let mut found = Vec::new();
    if switches > 0 {
        if running(&procs, &["nv-fabricmanager", "nvidia-fabricmanager"]) {
            found.push(format!("nv-fabricmanager runs ({switches} NVSwitches)"));
        } else {
            missing.push(format!("{switches} NVSwitches but no nv-fabricmanager process: the GPUs stay uninitialised for CUDA (error 802, system not yet initialized)"));
        }
    }
    if multi_node {
        if running(&procs, &["nvidia-imex"]) {
            found.push("nvidia-imex runs (multi-node NVLink)".to_string());
        } else {
            missing.push("the GPUs are in a multi-node NVLink fabric but no nvidia-imex process: memory cannot be shared across nodes".to_string());
        }
    }
    if missing.is_empty() {
        Check::pass(id, found.join("; "))
    } else {
        Check::fail(
            id,
            missing.into_iter().chain(found).collect::<Vec<_>>().join("; "),
            "install and start the services matching the driver version: systemctl enable --now nvidia-fabricmanager (NVSwitch nodes), nvidia-imex (multi-node NVLink)",
        )
        .with_roles(["gpu-host"])
    }
}

/// `live.persistence-mode`: nvidia-persistenced keeps the driver loaded between jobs.
pub fn persistence(input: &LiveInput<'_>, devs: &[PciDevice]) -> Check {
    let id = "live.persistence-mode";
    if !devs.iter().any(PciDevice::is_gpu) || !input.has("gpu-host") {
        return Check::skip(id, "no NVIDIA GPU on a gpu-host here").with_fix("nothing to do");
    }
    if running(&processes(input), &["nvidia-persistenced"]) {
        Check::pass(
            id,
            "nvidia-persistenced runs: the GPUs stay initialised between jobs",
        )
        .with_roles(["gpu-host"])
    } else {
        Check::warn(
            id,
            "nvidia-persistenced is not running: each job pays the driver's initialisation, and the GPUs' state resets when idle",
            "systemctl enable --now nvidia-persistenced",
        )
        .with_roles(["gpu-host"])
    }
}
