//! Merging driver facts (NVML) into a host picture (sysfs): pure, testable without a GPU.

use std::collections::BTreeMap;

use linkwise_core::{
    Endpoint, FabricMembership, Gpu, GpuId, Link, LinkKind, LinkState, MigMode, NvSwitch,
    PathClass, PciAddress, Topology,
};

/// What the driver reports about one GPU.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriverGpu {
    /// NVML index.
    pub index: u32,
    /// PCI address (the join key with sysfs).
    pub pci: Option<PciAddress>,
    /// UUID.
    pub uuid: Option<String>,
    /// Product name.
    pub model: Option<String>,
    /// Frame-buffer bytes.
    pub memory_bytes: Option<u64>,
    /// The GPU's own NUMA node (coherent memory), where it is one.
    pub gpu_numa_id: Option<u32>,
    /// CPUs close to the GPU.
    pub cpu_affinity: Option<linkwise_core::CpuSet>,
    /// Driver version.
    pub driver_version: Option<String>,
    /// VBIOS version.
    pub vbios_version: Option<String>,
    /// InfoROM image version.
    pub firmware_version: Option<String>,
    /// MIG mode.
    pub mig_mode: Option<MigMode>,
    /// Multi-node fabric membership.
    pub fabric: Option<FabricMembership>,
    /// NVLinks: one entry per link index that answered.
    pub nvlinks: Vec<DriverLink>,
}

/// The far end of one NVLink as the driver reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteKind {
    /// Another GPU.
    Gpu,
    /// An NVSwitch.
    Switch,
    /// A CPU (IBM NPU in NVML's terms).
    Cpu,
    /// The driver did not say.
    Unknown,
}

/// One NVLink of a GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverLink {
    /// Link index on the GPU.
    pub link: u32,
    /// Active or not.
    pub active: bool,
    /// NVLink generation, where known.
    pub generation: Option<u32>,
    /// What is at the far end.
    pub remote_kind: RemoteKind,
    /// PCI address of the far end, where known.
    pub remote_pci: Option<PciAddress>,
}

/// Everything the driver reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriverFacts {
    /// GPUs in NVML index order.
    pub gpus: Vec<DriverGpu>,
    /// PCIe common-ancestor class per GPU pair, by NVML index (i < j).
    pub pcie: BTreeMap<(u32, u32), PathClass>,
}

/// Overlays driver facts on a sysfs topology: GPUs are joined by PCI address (driver
/// GPUs that sysfs did not see are added), ids become UUIDs, NVLinks and switches are
/// added, and the driver's PCIe classes replace the ones sysfs derived. Gaps that only
/// said "NVLink needs NVML" are dropped.
pub fn merge(mut base: Topology, facts: &DriverFacts, origin: &str) -> Topology {
    let host = base
        .hosts
        .first()
        .map(|h| h.name.clone())
        .unwrap_or_else(|| "localhost".to_string());
    if base.hosts.is_empty() {
        base.hosts.push(linkwise_core::Host::named(host.clone()));
    }
    let ids = join_gpus(&mut base, facts, &host);
    let rewrite = |e: &mut Endpoint| {
        if let Endpoint::Gpu(id) = e
            && let Some(n) = ids.rename.get(id)
        {
            *id = n.clone();
        }
    };
    for l in &mut base.links {
        rewrite(&mut l.a);
        rewrite(&mut l.b);
    }
    // The driver's PCIe classes win over sysfs-derived ones.
    if !facts.pcie.is_empty() {
        replace_pcie(&mut base, facts, &ids);
    }
    let unknown = add_nvlinks(&mut base, facts, &ids);
    // The driver answered: NVLink facts (present or absent) are now known.
    base.gaps
        .retain(|g| g.what != linkwise_core::NVLINK_GAP && !g.why.contains("NVML"));
    if unknown > 0 {
        base.gap(
            format!("{unknown} NVLink(s)"),
            "the driver gave no usable far end (remote type unknown, or a GPU not on this host)",
        );
    }
    base.source = format!("{origin}+{}", base.source);
    base.normalize();
    base
}

/// How the driver's GPUs map onto the merged topology's GPU ids.
#[derive(Debug, Default)]
struct GpuIds {
    /// Old id (from sysfs) to new id (the UUID).
    rename: BTreeMap<GpuId, GpuId>,
    /// GPU id by NVML index.
    by_index: BTreeMap<u32, GpuId>,
    /// GPU id by PCI address.
    by_pci: BTreeMap<PciAddress, GpuId>,
}

/// Joins the driver's GPUs with sysfs's by PCI address (adding those sysfs did not see)
/// and overlays the driver's facts on them.
fn join_gpus(base: &mut Topology, facts: &DriverFacts, host: &str) -> GpuIds {
    let mut ids = GpuIds::default();

    for d in &facts.gpus {
        let pos = d
            .pci
            .and_then(|p| base.gpus.iter().position(|g| g.pci_bus_id == Some(p)));
        let pos = match pos {
            Some(p) => p,
            None => {
                let id = d
                    .uuid
                    .clone()
                    .or_else(|| d.pci.map(|p| p.to_string()))
                    .unwrap_or_else(|| format!("nvml-{}", d.index));
                let mut g = Gpu::new(id, d.index, host.to_string(), "unknown");
                g.pci_bus_id = d.pci;
                base.gpus.push(g);
                base.gpus.len() - 1
            }
        };
        let g = &mut base.gpus[pos];
        if let Some(u) = &d.uuid {
            let new = GpuId(u.clone());
            if g.id != new {
                ids.rename.insert(g.id.clone(), new.clone());
                g.id = new;
            }
            g.uuid = Some(u.clone());
        }
        g.index = d.index;
        if let Some(m) = &d.model {
            g.model = m.clone();
        }
        g.memory_bytes = d.memory_bytes.or(g.memory_bytes);
        g.gpu_numa_id = d.gpu_numa_id.or(g.gpu_numa_id);
        if g.cpu_affinity.is_none() {
            g.cpu_affinity = d.cpu_affinity.clone();
        }
        g.driver_version = d.driver_version.clone().or(g.driver_version.take());
        g.vbios_version = d.vbios_version.clone().or(g.vbios_version.take());
        g.firmware_version = d.firmware_version.clone().or(g.firmware_version.take());
        g.mig_mode = d.mig_mode.or(g.mig_mode);
        g.fabric = d.fabric.clone().or(g.fabric.take());
        ids.by_index.insert(d.index, g.id.clone());
        if let Some(p) = g.pci_bus_id {
            ids.by_pci.insert(p, g.id.clone());
        }
    }
    ids
}

/// Replaces the GPU-GPU PCIe links with the driver's classes.
fn replace_pcie(base: &mut Topology, facts: &DriverFacts, ids: &GpuIds) {
    base.links.retain(|l| {
        !(matches!(l.kind, LinkKind::Pcie { .. })
            && matches!(l.a, Endpoint::Gpu(_))
            && matches!(l.b, Endpoint::Gpu(_)))
    });
    for ((i, j), class) in &facts.pcie {
        if let (Some(a), Some(b)) = (ids.by_index.get(i), ids.by_index.get(j)) {
            base.links.push(Link::new(
                Endpoint::Gpu(a.clone()),
                Endpoint::Gpu(b.clone()),
                LinkKind::Pcie { class: *class },
            ));
        }
    }
}

/// Adds the NVLinks, aggregated per (local, remote, state, generation), and the
/// switches they reach; returns how many links had no usable far end.
fn add_nvlinks(base: &mut Topology, facts: &DriverFacts, ids: &GpuIds) -> usize {
    let mut gpu_links: BTreeMap<(GpuId, GpuId, bool, Option<u32>), u32> = BTreeMap::new();
    let mut switch_links: BTreeMap<(GpuId, String, bool, Option<u32>), u32> = BTreeMap::new();
    let mut unknown = 0usize;
    for d in &facts.gpus {
        let Some(me) = ids.by_index.get(&d.index) else {
            continue;
        };
        for l in &d.nvlinks {
            match (l.remote_kind, l.remote_pci) {
                (RemoteKind::Gpu, Some(p)) => {
                    if let Some(peer) = ids.by_pci.get(&p) {
                        // Each link is seen from both ends: count it from the lower id only.
                        if me < peer {
                            *gpu_links
                                .entry((me.clone(), peer.clone(), l.active, l.generation))
                                .or_default() += 1;
                        }
                    } else {
                        unknown += 1;
                    }
                }
                (RemoteKind::Switch, Some(p)) => {
                    let id = p.to_string();
                    if !base
                        .switches
                        .iter()
                        .any(|s| s.id == id || s.pci_bus_id == Some(p))
                    {
                        base.switches.push(NvSwitch {
                            id: id.clone(),
                            host: None,
                            pci_bus_id: Some(p),
                            model: None,
                        });
                    }
                    let sid = base
                        .switches
                        .iter()
                        .find(|s| s.id == id || s.pci_bus_id == Some(p))
                        .map_or(id, |s| s.id.clone());
                    *switch_links
                        .entry((me.clone(), sid, l.active, l.generation))
                        .or_default() += 1;
                }
                _ => unknown += 1,
            }
        }
    }
    for ((a, b, active, generation), lanes) in gpu_links {
        let mut l = Link::new(
            Endpoint::Gpu(a),
            Endpoint::Gpu(b),
            LinkKind::Nvlink { lanes, generation },
        );
        if !active {
            l.state = LinkState::Down;
        }
        base.links.push(l);
    }
    for ((g, s, active, generation), lanes) in switch_links {
        let mut l = Link::new(
            Endpoint::Gpu(g),
            Endpoint::Switch(s),
            LinkKind::NvswitchPort { lanes, generation },
        );
        if !active {
            l.state = LinkState::Down;
        }
        base.links.push(l);
    }
    unknown
}

#[cfg(test)]
mod tests {
    use super::*;
    use linkwise_core::Host;

    fn pci(bus: u8) -> PciAddress {
        PciAddress {
            domain: 0,
            bus,
            device: 0,
            function: 0,
        }
    }

    fn base() -> Topology {
        let mut t = Topology {
            source: "sysfs:/".into(),
            hosts: vec![Host::named("n1")],
            ..Topology::default()
        };
        for (i, bus) in [(0u32, 0x18u8), (1, 0x2a)] {
            let mut g = Gpu::new(pci(bus).to_string(), i, "n1", "NVIDIA device 0x2330");
            g.pci_bus_id = Some(pci(bus));
            g.numa_node = Some(0);
            t.gpus.push(g);
        }
        t.links.push(Link::new(
            Endpoint::Gpu(GpuId(pci(0x18).to_string())),
            Endpoint::Gpu(GpuId(pci(0x2a).to_string())),
            LinkKind::Pcie {
                class: PathClass::Phb,
            },
        ));
        t.gap(linkwise_core::NVLINK_GAP, "sysfs cannot see NVLink");
        t
    }

    fn link(link: u32, kind: RemoteKind, bus: u8, active: bool) -> DriverLink {
        DriverLink {
            link,
            active,
            generation: Some(4),
            remote_kind: kind,
            remote_pci: Some(pci(bus)),
        }
    }

    #[test]
    fn nvml_facts_turn_sysfs_gpus_into_an_nvlinked_pair() {
        let mut facts = DriverFacts::default();
        for (i, bus, peer) in [(0u32, 0x18u8, 0x2au8), (1, 0x2a, 0x18)] {
            facts.gpus.push(DriverGpu {
                index: i,
                pci: Some(pci(bus)),
                uuid: Some(format!("GPU-{i}")),
                model: Some("NVIDIA H100 80GB HBM3".into()),
                nvlinks: vec![
                    link(0, RemoteKind::Gpu, peer, true),
                    link(1, RemoteKind::Gpu, peer, true),
                    link(2, RemoteKind::Gpu, peer, false),
                    link(3, RemoteKind::Switch, 0x05, true),
                ],
                ..DriverGpu::default()
            });
        }
        facts.pcie.insert((0, 1), PathClass::Pix);
        let t = merge(base(), &facts, "nvml");
        t.validate().unwrap();
        assert_eq!(t.gpus[0].id, GpuId("GPU-0".into()));
        assert_eq!(t.gpus[0].numa_node, Some(0), "sysfs NUMA kept");
        assert_eq!(t.gpus[0].model, "NVIDIA H100 80GB HBM3");
        assert!(
            t.gaps.is_empty(),
            "the NVML-needed gap is gone: {:?}",
            t.gaps
        );
        // Two active direct lanes (counted once, not from both ends) + one shared switch lane.
        let m = t.pair_matrix();
        assert_eq!(m.cell(0, 1).label(), "NV3");
        assert_eq!(t.switches.len(), 1);
        assert!(t.links.iter().any(|l| l.state == LinkState::Down));
        // The driver's PCIe class replaced sysfs's, and no stale id remains.
        let pcie: Vec<_> = t
            .links
            .iter()
            .filter(|l| matches!(l.kind, LinkKind::Pcie { .. }))
            .collect();
        assert_eq!(pcie.len(), 1);
        assert_eq!(
            pcie[0].kind,
            LinkKind::Pcie {
                class: PathClass::Pix
            }
        );
    }

    #[test]
    fn driver_gpus_unknown_to_sysfs_are_added() {
        let facts = DriverFacts {
            gpus: vec![DriverGpu {
                index: 2,
                pci: Some(pci(0x9a)),
                uuid: Some("GPU-x".into()),
                ..DriverGpu::default()
            }],
            pcie: BTreeMap::new(),
        };
        let t = merge(base(), &facts, "nvml");
        assert_eq!(t.gpus.len(), 3);
        assert!(t.gpu(&GpuId("GPU-x".into())).is_some());
    }
}
