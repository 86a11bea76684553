//! A node report built from the node's topology (discovered by the caller) and its files,
//! read under a root directory (`/` on the node, a captured tree in tests).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use linkwise_core::Topology;

use crate::Error;
use crate::fingerprint::fingerprint;
use crate::report::{
    Artifact, Driver, GpuFacts, HostFacts, NodeReport, PreflightSummary, SCHEMA_VERSION, sha256_hex,
};

/// The NVIDIA kernel modules, as `/sys/module` names them.
pub const NVIDIA_MODULES: [&str; 5] = [
    "nvidia",
    "nvidia_uvm",
    "nvidia_modeset",
    "nvidia_drm",
    "nvidia_peermem",
];

/// The largest artefact hashed (modules and firmware images are well under it).
const MAX_ARTIFACT: u64 = 1 << 30;

/// What a report is built from.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// The node's topology.
    pub topology: &'a Topology,
    /// `/` on the node; `None` reads no machine (a report from a profile or snapshot:
    /// only the topology and the named files).
    pub root: Option<&'a Path>,
    /// The node's name; the topology's first host name when `None`.
    pub node: Option<String>,
    /// Labels (rack, batch, ...).
    pub labels: BTreeMap<String, String>,
    /// Extra files to hash, named by their path as given.
    pub hash: Vec<PathBuf>,
    /// The preflight verdict, when it ran.
    pub preflight: Option<PreflightSummary>,
    /// The time to record (RFC 3339), when the caller wants one.
    pub collected_at: Option<String>,
}

fn read_text(root: Option<&Path>, rel: &str) -> Option<String> {
    let bytes = linkwise_fsio::read_capped_at(&root?.join(rel), 1 << 20).ok()?;
    let text = String::from_utf8_lossy(&bytes)
        .trim_matches(|c: char| c.is_whitespace() || c == '\0')
        .to_string();
    (!text.is_empty()).then_some(text)
}

/// The host's facts: the topology's where it has them, else the files under the root.
fn host(inputs: &Inputs<'_>) -> HostFacts {
    let h = inputs.topology.hosts.first();
    let root = inputs.root;
    let arch = h
        .and_then(|h| h.arch)
        .and_then(|a| serde_json::to_value(a).ok())
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let kernel = h
        .and_then(|h| h.kernel.clone())
        .or_else(|| read_text(root, "proc/sys/kernel/osrelease"))
        .unwrap_or_default();
    let mut firmware = BTreeMap::new();
    for (key, rel) in [
        ("bios", "sys/class/dmi/id/bios_version"),
        ("bios-date", "sys/class/dmi/id/bios_date"),
        ("board", "sys/class/dmi/id/board_name"),
        ("dt-compatible", "proc/device-tree/compatible"),
    ] {
        if let Some(v) = read_text(root, rel) {
            // The device tree's compatible is NUL-separated, most specific first.
            firmware.insert(
                key.to_string(),
                v.split('\0').next().unwrap_or("").to_string(),
            );
        }
    }
    let board = h
        .and_then(|h| h.board_model.clone())
        .or_else(|| read_text(root, "sys/class/dmi/id/product_name"))
        .or_else(|| read_text(root, "proc/device-tree/model"));
    HostFacts {
        arch,
        kernel,
        cmdline: read_text(root, "proc/cmdline"),
        board,
        firmware,
    }
}

fn driver(inputs: &Inputs<'_>) -> Driver {
    let version = inputs
        .topology
        .gpus
        .iter()
        .find_map(|g| g.driver_version.clone())
        .or_else(|| {
            read_text(inputs.root, "proc/driver/nvidia/version")
                .and_then(|t| linkwise_core::conventions::driver_version(&t))
        })
        .or_else(|| read_text(inputs.root, "sys/module/nvidia/version"));
    Driver {
        version,
        cuda_version: None,
    }
}

fn gpus(topo: &Topology) -> Vec<GpuFacts> {
    topo.gpus
        .iter()
        .map(|g| GpuFacts {
            index: g.index,
            uuid: g.uuid.clone(),
            model: g.model.clone(),
            vbios: g.vbios_version.clone(),
            firmware: g.firmware_version.clone(),
            pci_address: g.pci_bus_id.map(|p| p.to_string()),
            numa_node: g.numa_node,
        })
        .collect()
}

fn hash_file(name: String, path: &Path) -> Result<Artifact, Error> {
    let bytes = linkwise_fsio::read_capped_at(path, MAX_ARTIFACT)?;
    Ok(Artifact {
        name,
        path: Some(path.display().to_string()),
        sha256: sha256_hex(&bytes),
    })
}

/// Every regular file under `dir`, sorted (symlinks to files followed, to directories not).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(p),
                _ if p.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// The loaded NVIDIA modules' files, the GPU firmware files and the named paths, hashed.
/// A named path that cannot be read is an error; node files that vanish are left out.
fn artifacts(inputs: &Inputs<'_>, kernel: &str) -> Result<Vec<Artifact>, Error> {
    let mut out = Vec::new();
    for path in &inputs.hash {
        out.push(hash_file(path.display().to_string(), path)?);
    }
    let Some(root) = inputs.root else {
        out.sort();
        return Ok(out);
    };
    let modules_dir = root.join("lib/modules").join(kernel);
    for name in NVIDIA_MODULES {
        if kernel.is_empty() || !root.join("sys/module").join(name).is_dir() {
            continue;
        }
        if let Some(file) = linkwise_modsig::find_modules(&modules_dir, &[name])
            .into_iter()
            .next()
            && let Ok(a) = hash_file(format!("module:{name}"), &file)
        {
            out.push(a);
        }
    }
    let firmware = root.join("lib/firmware/nvidia");
    for file in files_under(&firmware) {
        let rel = file
            .strip_prefix(root.join("lib/firmware"))
            .unwrap_or(&file)
            .display()
            .to_string();
        if let Ok(a) = hash_file(format!("firmware:{rel}"), &file) {
            out.push(a);
        }
    }
    out.sort();
    Ok(out)
}

/// Builds the report.
pub fn collect(inputs: &Inputs<'_>) -> Result<NodeReport, Error> {
    let host = host(inputs);
    let artifacts = artifacts(inputs, &host.kernel)?;
    let node = inputs
        .node
        .clone()
        .or_else(|| inputs.topology.hosts.first().map(|h| h.name.clone()))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    Ok(NodeReport {
        schema_version: SCHEMA_VERSION,
        node,
        labels: inputs.labels.clone(),
        collected_at: inputs.collected_at.clone(),
        driver: driver(inputs),
        gpus: gpus(inputs.topology),
        artifacts,
        topology_fingerprint: Some(fingerprint(inputs.topology)),
        preflight: inputs.preflight.clone(),
        host,
    })
}
