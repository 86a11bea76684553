//! `sysfs[:ROOT]`: discovery from Linux `/sys` and `/proc`, with the root injectable.
//!
//! Every path below is read relative to ROOT (`/` on a live host, a captured tree or a
//! fixture otherwise). Symlinks are resolved inside ROOT: relative targets against the
//! link's directory, absolute ones against ROOT, so a tree copied with its links works
//! wherever it lies.
//!
//! # What is read
//!
//! - **Host**: name from `proc/sys/kernel/hostname`, else `etc/hostname`, else
//!   `localhost`; kernel from `proc/sys/kernel/osrelease`; architecture and CPU model
//!   from `proc/cpuinfo` (x86 `vendor_id` / `model name` / `flags`; Arm
//!   `CPU implementer` / `CPU part`, named from a small table; RISC-V `isa` / `uarch`,
//!   the model being `uarch`, else `isa`), the architecture from
//!   `proc/sys/kernel/arch` where present; board from `proc/device-tree/model`,
//!   `sys/firmware/devicetree/base/model` or `sys/class/dmi/id/product_name`; NUMA
//!   nodes from `sys/devices/system/node/node<N>/{cpulist,meminfo}`; CPU count from
//!   `sys/devices/system/cpu/online`; memory from `proc/meminfo`.
//! - **PCI functions**: every entry of `sys/bus/pci/devices`, its `vendor` and
//!   `class`. NVIDIA (`0x10de`) class `0x0302xx` / `0x0300xx` is a GPU, class
//!   `0x0680xx` an NVSwitch; Mellanox (`0x15b3`) class `0x0207xx` / `0x0200xx` is a NIC
//!   (named after its `infiniband/*` or `net/*` entry); everything else is ignored.
//! - **Per GPU**: `device` (product name from a table of well-known ids), `numa_node`
//!   (`-1` is unknown), `local_cpulist`, the `iommu_group` link, `current_link_speed`
//!   / `max_link_speed` (`16.0 GT/s PCIe`, `8 GT/s`, ..., as MT/s) and
//!   `current_link_width` / `max_link_width`, the `driver` link (kernel driver).
//! - **NVIDIA driver**, where loaded: the version from `proc/driver/nvidia/version`;
//!   model, UUID, VBIOS, GSP firmware and `Device Minor` from
//!   `proc/driver/nvidia/gpus/<BDF>/information`. A GPU's id is its UUID, else its PCI
//!   bus id. Its index is its `Device Minor` when every GPU has a distinct one, else its
//!   position in PCI bus id order (the order NVML numbers GPUs in).
//!
//! # PCIe path classes
//!
//! The resolved device path (`sys/devices/pci0000:15/0000:15:01.0/0000:16:00.0/...`)
//! gives the host bridge (the `pciDDDD:BB` directory) and the chain of bridges below it.
//! For every GPU pair, and every GPU-NIC pair:
//!
//! - different host bridges: `NODE` when both NUMA nodes are equal (unknown on both
//!   counts as equal), else `SYS`;
//! - same host bridge, no bridge in common below it: `PHB`;
//! - otherwise, with `ka` / `kb` the bridges strictly between the deepest common bridge
//!   and each device: `PIX` when `ka <= 1 && kb <= 1` (both under one PCIe switch: the
//!   common bridge is its upstream port, each device under one downstream port), else
//!   `PXB`.
//!
//! # What sysfs cannot tell
//!
//! NVLink (lanes, NVSwitch ports, fabric membership), GPU memory size, MIG mode and
//! health need NVML (cargo feature `nvml`). Those, and every file that is missing
//! (RISC-V boards often have no NUMA, no IOMMU and no ACPI) or holds text that does not
//! parse, become [`linkwise_core::Gap`]s naming the file; discovery does not fail on
//! them. A host without GPUs, or without a readable `sys/bus/pci/devices`, gives a
//! topology with no GPU; when PCI functions were seen, a `gpus` gap lists them (ids,
//! class, the bridge above each, NUMA node and IOMMU group or their absence), so a
//! board or virtual machine without NVIDIA devices shows what it does have.

mod devices;
mod gpus;
mod host;
mod parse;
mod root;

use std::path::{Path, PathBuf};

use linkwise_core::{Endpoint, Gap, Link, LinkKind, Nic, NvSwitch, Topology};

use crate::{Error, Result, TopologySource};

use devices::Kind;
use root::{Lookup, Root};

/// Reads `ROOT/sys` and `ROOT/proc` (ROOT is `/` on a live host).
#[derive(Debug, Clone)]
pub struct SysfsSource {
    root: PathBuf,
}

impl SysfsSource {
    /// A source reading below `root`.
    pub fn new(root: impl AsRef<Path>) -> Self {
        SysfsSource {
            root: root.as_ref().to_path_buf(),
        }
    }
}

/// A root that does not exist, is not a directory or holds neither `sys` nor `proc`
/// cannot be a host: refusing it keeps a mistyped path from reading as a GPU-less host.
fn check_root(root: &Path, source: &str) -> Result<()> {
    let bad = |reason: String| {
        Err(crate::Error::BadSource {
            spec: source.to_string(),
            reason,
        })
    };
    match std::fs::metadata(root) {
        Err(e) => bad(format!("{}: {e}", root.display())),
        Ok(m) if !m.is_dir() => bad(format!("{} is not a directory", root.display())),
        Ok(_) if !root.join("sys").is_dir() && !root.join("proc").is_dir() => bad(format!(
            "{} holds neither sys/ nor proc/; give the directory that contains them \
             (a captured tree, or / for this host)",
            root.display()
        )),
        Ok(_) => Ok(()),
    }
}

impl TopologySource for SysfsSource {
    fn discover(&self) -> Result<Topology> {
        let source = format!("sysfs:{}", self.root.display());
        check_root(&self.root, &source)?;
        let mut cx = Ctx {
            root: Root::new(&self.root),
            gaps: Vec::new(),
        };
        let host = host::discover(&mut cx);
        let (functions, others) = devices::scan(&mut cx);
        let driver = gpus::driver(&mut cx);

        let of = |k: Kind| functions.iter().filter(move |f| f.kind == k);
        let gpu_fns: Vec<&devices::Function> = of(Kind::Gpu).collect();
        let found = gpus::build(&mut cx, &gpu_fns, &host.name, &driver);

        let switches: Vec<NvSwitch> = of(Kind::NvSwitch)
            .map(|f| NvSwitch {
                id: f.bdf.clone(),
                host: Some(host.name.clone()),
                pci_bus_id: Some(f.addr),
                model: Some(parse::nvidia_model(f.device)),
            })
            .collect();
        let nic_fns: Vec<&devices::Function> = of(Kind::Nic).collect();
        let nics: Vec<Nic> = nic_fns
            .iter()
            .map(|f| Nic {
                id: f.bdf.clone(),
                host: host.name.clone(),
                name: devices::nic_name(&cx, f),
                pci_bus_id: Some(f.addr),
            })
            .collect();

        let nic_numa: Vec<Option<u32>> = nic_fns
            .iter()
            .map(|n| devices::quiet_numa(&cx, n))
            .collect();
        let mut links = Vec::new();
        for (i, a) in found.iter().enumerate() {
            for b in found.iter().skip(i + 1) {
                let class =
                    devices::path_class(&a.place, a.gpu.numa_node, &b.place, b.gpu.numa_node);
                links.push(Link::new(
                    Endpoint::Gpu(a.gpu.id.clone()),
                    Endpoint::Gpu(b.gpu.id.clone()),
                    LinkKind::Pcie { class },
                ));
            }
            for (n, n_numa) in nic_fns.iter().zip(&nic_numa) {
                let class = devices::path_class(&a.place, a.gpu.numa_node, &n.place, *n_numa);
                links.push(Link::new(
                    Endpoint::Gpu(a.gpu.id.clone()),
                    Endpoint::Nic(n.bdf.clone()),
                    LinkKind::Pcie { class },
                ));
            }
        }

        if !found.is_empty() || !switches.is_empty() {
            cx.gap(
                linkwise_core::NVLINK_GAP,
                "sysfs does not show NVLink lanes, NVSwitch ports or fabric membership; GPU pairs carry \
                 PCIe path classes only. NVLink facts come from NVML (libnvidia-ml.so.1, loaded at run \
                 time by the default build): install the NVIDIA driver, or in a container mount the \
                 driver libraries (NVIDIA runtime class)",
            );
        }
        if found.is_empty() && !others.is_empty() {
            let why = devices::describe_others(&cx, &others, others.len() + functions.len());
            cx.gap("gpus", why);
        }
        if !found.is_empty() {
            cx.gap(
                "gpu memory",
                "neither sysfs nor /proc/driver/nvidia reports frame-buffer size; use the NVML source \
                 (cargo feature `nvml`)",
            );
        }

        let mut topo = Topology {
            source: source.clone(),
            hosts: vec![host],
            gpus: found.into_iter().map(|f| f.gpu).collect(),
            switches,
            nics,
            links,
            gaps: cx.gaps,
        };
        topo.normalize();
        topo.validate().map_err(|source_err| Error::Model {
            origin: source,
            error: source_err,
        })?;
        Ok(topo)
    }
}

/// Discovery state: the root and the gaps found so far.
#[derive(Debug)]
struct Ctx {
    root: Root,
    gaps: Vec<Gap>,
}

impl Ctx {
    /// Records a gap.
    fn gap(&mut self, what: impl Into<String>, why: impl Into<String>) {
        self.gaps.push(Gap {
            what: what.into(),
            why: why.into(),
        });
    }

    /// The trimmed, non-empty text of `rel`; a gap about `what` otherwise.
    fn text(&mut self, rel: &str, what: &str) -> Option<String> {
        self.parsed(rel, what, "a value", |s| {
            (!s.is_empty()).then(|| s.to_string())
        })
    }

    /// `rel` trimmed and parsed by `parse`; a gap about `what` naming the file when it
    /// is missing, unreadable or does not parse (`expected` says what should be there).
    fn parsed<T>(
        &mut self,
        rel: &str,
        what: &str,
        expected: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Option<T> {
        let shown = self.root.show(rel);
        match self.root.read(rel) {
            Lookup::Missing => {
                self.gap(what, format!("{shown} is missing"));
                None
            }
            Lookup::Unreadable(e) => {
                self.gap(what, format!("{shown} cannot be read: {e}"));
                None
            }
            Lookup::Text(t) => {
                let t = t.trim();
                let v = parse(t);
                if v.is_none() {
                    let shown_value: String = t.chars().take(80).collect();
                    self.gap(
                        what,
                        format!("{shown} holds {shown_value:?}, not {expected}"),
                    );
                }
                v
            }
        }
    }
}
