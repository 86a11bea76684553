//! Built-in topologies (`--source profile:NAME`): pure data, embedded in the binary.
//!
//! Profiles are built by code from the published layouts of the machines they model
//! (NVLink lane counts per pair, NVSwitch port counts, NUMA placement, PCIe paths), so a
//! 72-GPU domain is as cheap to keep correct as an 8-GPU box. Identifiers (UUIDs, PCI
//! addresses) are synthetic but stable: the same profile always gives the same snapshot.
//! They are the embedded default for demos and tests on machines without a GPU.

use crate::{
    Arch, C2cFlavor, CpuSet, Endpoint, Error, FabricMembership, Gpu, GpuId, Health, Host, Link,
    LinkKind, LinkState, MigMode, NumaNode, NvSwitch, PathClass, PciAddress, PcieLinkStatus,
    Topology,
};

const GIB: u64 = 1 << 30;

/// Every built-in profile: name and one-line description.
pub const PROFILES: &[(&str, &str)] = &[
    (
        "dgx-h100",
        "8x H100 SXM5 80GB, all-to-all NV18 through 4 NVSwitches, 2 NUMA nodes (x86_64)",
    ),
    (
        "dgx1-v100",
        "8x V100 SXM2 32GB, hybrid cube-mesh of NV1 and NV2 links, 2 NUMA nodes (x86_64)",
    ),
    (
        "pcie-8gpu",
        "8x L40S 48GB, PCIe only (PIX/PXB/NODE/SYS), 2 NUMA nodes (x86_64)",
    ),
    (
        "nvlink-bridge-pairs",
        "4x RTX A6000 48GB as two NV4-bridged pairs, 2 NUMA nodes (x86_64)",
    ),
    (
        "riscv-fusion",
        "riscv64 host, 4x B200 each on NVLink Fusion to the CPU and NV6 to each other",
    ),
    (
        "dgx2-v100",
        "16x V100 SXM3 32GB, all-to-all NV6 through 6 trunked NVSwitch planes, 2 NUMA nodes (x86_64)",
    ),
    (
        "nvl72",
        "72x GB200 in one NVLink domain: 18 compute trays of 4 GPUs, 18 NVSwitch chips, one clique",
    ),
    (
        "nvl144",
        "144x GB300 in one NVLink domain: 36 compute trays of 4 GPUs, 18 NVSwitch chips, one clique",
    ),
    (
        "degraded",
        "dgx-h100 with GPU3 unhealthy (XID 79) and one NVLink of GPU5 down",
    ),
];

/// Why [`get`] gave no topology.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// No built-in profile has this name.
    #[error("unknown profile {name:?}; built-in profiles: {known}")]
    Unknown {
        /// The name given.
        name: String,
        /// The names that exist, comma-separated.
        known: String,
    },
    /// The profile's topology fails [`Topology::validate`] (a bug in the profile).
    #[error("profile:{name}: {error}")]
    Invalid {
        /// The profile.
        name: String,
        /// The model's complaint.
        error: Error,
    },
}

/// Whether a built-in profile is called `name`.
pub fn exists(name: &str) -> bool {
    PROFILES.iter().any(|(n, _)| *n == name)
}

/// The names of every built-in profile, comma-separated (for messages).
pub fn known() -> String {
    PROFILES
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The built-in profile called `name`, normalized and validated, with `source` set to
/// `profile:NAME`; an unknown name is an error that lists the names that exist.
pub fn get(name: &str) -> Result<Topology, ProfileError> {
    let mut t = match name {
        "dgx-h100" => dgx_h100("dgx-h100"),
        "dgx1-v100" => dgx1_v100(),
        "pcie-8gpu" => pcie_8gpu(),
        "nvlink-bridge-pairs" => bridge_pairs(),
        "riscv-fusion" => riscv_fusion(),
        "dgx2-v100" => dgx2_v100(),
        "nvl72" => rack(
            "nvl72",
            18,
            "NVIDIA GB200",
            186,
            "0d3c5b8e-6a57-4c2e-9f4a-72a1b2c3d4e5",
        ),
        "nvl144" => rack(
            "nvl144",
            36,
            "NVIDIA GB300",
            279,
            "5e1f0c2d-8b3a-4d6e-9c7b-144a2b3c4d5e",
        ),
        "degraded" => degraded(),
        other => {
            return Err(ProfileError::Unknown {
                name: other.to_string(),
                known: known(),
            });
        }
    };
    t.source = format!("profile:{name}");
    t.normalize();
    t.validate().map_err(|error| ProfileError::Invalid {
        name: name.to_string(),
        error,
    })?;
    Ok(t)
}

// === builders ===

/// A stable, well-formed UUID for a synthetic GPU.
fn uuid(seed: &str, index: u32) -> String {
    // FNV-1a, twice with different salts, to fill 128 bits.
    let h = |salt: u64| {
        let mut x: u64 = 0xcbf2_9ce4_8422_2325 ^ salt;
        for b in seed.bytes().chain(index.to_le_bytes()) {
            x ^= u64::from(b);
            x = x.wrapping_mul(0x0000_0100_0000_01b3);
        }
        x
    };
    let (a, b) = (h(1), h(2));
    format!(
        "GPU-{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 48) & 0xfff,
        b & 0xffff_ffff_ffff
    )
}

fn host(name: &str, arch: Arch, cpu_model: &str, board: &str, nodes: &[(&str, u64)]) -> Host {
    let numa_nodes: Vec<NumaNode> = nodes
        .iter()
        .zip(0u32..)
        .map(|((cpus, mem), id)| NumaNode {
            id,
            cpus: cpus.parse().unwrap_or_default(),
            memory_bytes: Some(*mem),
        })
        .collect();
    let all = numa_nodes
        .iter()
        .fold(CpuSet::default(), |acc, n| acc.union(&n.cpus));
    Host {
        name: name.to_string(),
        arch: Some(arch),
        kernel: Some(
            match arch {
                Arch::X86_64 => "6.8.0-60-generic",
                Arch::Aarch64 => "6.8.0-1021-nvidia-64k",
                Arch::Riscv64 => "6.18.0-2-riscv64",
            }
            .to_string(),
        ),
        cpu_model: Some(cpu_model.to_string()),
        board_model: Some(board.to_string()),
        cpus: u32::try_from(all.len()).ok(),
        memory_bytes: Some(nodes.iter().map(|(_, m)| m).sum()),
        numa_nodes,
        rack: None,
    }
}

struct GpuSpec<'a> {
    host: &'a str,
    model: &'a str,
    memory: u64,
    driver: &'a str,
    vbios: &'a str,
    pcie: (u32, u32),
    mig: MigMode,
}

fn gpu(
    spec: &GpuSpec<'_>,
    seed: &str,
    index: u32,
    bus: u8,
    numa: Option<u32>,
    cpus: &CpuSet,
) -> Gpu {
    let uuid = uuid(seed, index);
    let mut g = Gpu::new(uuid.clone(), index, spec.host, spec.model);
    g.uuid = Some(uuid);
    g.pci_bus_id = Some(PciAddress {
        domain: 0,
        bus,
        device: 0,
        function: 0,
    });
    // Synthetic: one root complex per 64 buses.
    g.pcie_root = Some(format!("pci0000:{:02x}", bus & 0xc0));
    g.memory_bytes = Some(spec.memory);
    g.numa_node = numa;
    g.cpu_affinity = Some(cpus.clone());
    g.driver_version = Some(spec.driver.to_string());
    g.vbios_version = Some(spec.vbios.to_string());
    g.kernel_driver = Some("nvidia".to_string());
    g.iommu_group = Some(u32::from(bus));
    g.pcie = Some(PcieLinkStatus {
        current_speed_mts: Some(spec.pcie.0),
        current_width: Some(spec.pcie.1),
        max_speed_mts: Some(spec.pcie.0),
        max_width: Some(spec.pcie.1),
    });
    g.mig_mode = Some(spec.mig);
    g
}

fn ep(t: &Topology, i: usize) -> Endpoint {
    Endpoint::Gpu(t.gpus[i].id.clone())
}

fn nvlink(t: &mut Topology, i: usize, j: usize, lanes: u32, generation: u32) {
    let l = Link::new(
        ep(t, i),
        ep(t, j),
        LinkKind::Nvlink {
            lanes,
            generation: Some(generation),
        },
    );
    t.links.push(l);
}

/// PCIe links for every GPU pair on one host, from a class function of GPU positions.
fn pcie_pairs(
    t: &mut Topology,
    range: std::ops::Range<usize>,
    class: impl Fn(usize, usize) -> PathClass,
) {
    for i in range.clone() {
        for j in (i + 1)..range.end {
            let l = Link::new(
                ep(t, i),
                ep(t, j),
                LinkKind::Pcie {
                    class: class(i - range.start, j - range.start),
                },
            );
            t.links.push(l);
        }
    }
}

/// The class of a two-socket box with GPUs in pairs behind PCIe switches:
/// same pair `pair`, same socket `socket`, across sockets SYS.
fn two_socket(
    per_socket: usize,
    pair: PathClass,
    socket: PathClass,
) -> impl Fn(usize, usize) -> PathClass {
    move |i, j| {
        if i / per_socket != j / per_socket {
            PathClass::Sys
        } else if i / 2 == j / 2 {
            pair
        } else {
            socket
        }
    }
}

fn dgx_h100(name: &str) -> Topology {
    let h = host(
        name,
        Arch::X86_64,
        "Intel(R) Xeon(R) Platinum 8480C",
        "NVIDIA DGX H100",
        &[("0-55,112-167", 1024 * GIB), ("56-111,168-223", 1024 * GIB)],
    );
    let cpus: Vec<CpuSet> = h.numa_nodes.iter().map(|n| n.cpus.clone()).collect();
    let mut t = Topology {
        hosts: vec![h],
        ..Topology::default()
    };
    let spec = GpuSpec {
        host: name,
        model: "NVIDIA H100 80GB HBM3",
        memory: 80 * GIB,
        driver: "550.54.15",
        vbios: "96.00.74.00.01",
        pcie: (32_000, 16),
        mig: MigMode::Disabled,
    };
    let buses = [0x18, 0x2a, 0x3a, 0x5d, 0x9a, 0xab, 0xba, 0xdb];
    for (i, bus) in (0u32..).zip(buses) {
        let node = i / 4;
        let g = gpu(
            &spec,
            name,
            i,
            bus,
            Some(node),
            &cpus[usize::try_from(node).unwrap_or(0)],
        );
        t.gpus.push(g);
    }
    for (s, bus) in (0u32..).zip([0x05u8, 0x06, 0x07, 0x08]) {
        t.switches.push(NvSwitch {
            id: format!("nvswitch{s}"),
            host: Some(name.to_string()),
            pci_bus_id: Some(PciAddress {
                domain: 0,
                bus,
                device: 0,
                function: 0,
            }),
            model: Some("NVIDIA H100 NVSwitch".to_string()),
        });
    }
    // HGX H100: every GPU has 18 NVLink4 links, 5 + 4 + 4 + 5 to the four switches.
    for i in 0..8 {
        for (s, lanes) in [5u32, 4, 4, 5].into_iter().enumerate() {
            let l = Link::new(
                ep(&t, i),
                Endpoint::Switch(format!("nvswitch{s}")),
                LinkKind::NvswitchPort {
                    lanes,
                    generation: Some(4),
                },
            );
            t.links.push(l);
        }
    }
    pcie_pairs(&mut t, 0..8, two_socket(4, PathClass::Pxb, PathClass::Node));
    t
}

fn dgx1_v100() -> Topology {
    let name = "dgx1-v100";
    let h = host(
        name,
        Arch::X86_64,
        "Intel(R) Xeon(R) CPU E5-2698 v4 @ 2.20GHz",
        "NVIDIA DGX-1 with V100",
        &[("0-19,40-59", 256 * GIB), ("20-39,60-79", 256 * GIB)],
    );
    let cpus: Vec<CpuSet> = h.numa_nodes.iter().map(|n| n.cpus.clone()).collect();
    let mut t = Topology {
        hosts: vec![h],
        ..Topology::default()
    };
    let spec = GpuSpec {
        host: name,
        model: "Tesla V100-SXM2-32GB",
        memory: 32 * GIB,
        driver: "535.183.01",
        vbios: "88.00.98.00.01",
        pcie: (8_000, 16),
        mig: MigMode::Unsupported,
    };
    let buses = [0x06, 0x07, 0x0a, 0x0b, 0x85, 0x86, 0x89, 0x8a];
    for (i, bus) in (0u32..).zip(buses) {
        let node = i / 4;
        let g = gpu(
            &spec,
            name,
            i,
            bus,
            Some(node),
            &cpus[usize::try_from(node).unwrap_or(0)],
        );
        t.gpus.push(g);
    }
    // Hybrid cube-mesh: two fully connected quads (0-3, 4-7) joined by 0-4, 1-5, 2-6, 3-7;
    // six NVLink2 links per GPU, so some pairs are doubled.
    for (i, j, lanes) in [
        (0, 1, 1),
        (0, 2, 1),
        (0, 3, 2),
        (0, 4, 2),
        (1, 2, 2),
        (1, 3, 1),
        (1, 5, 2),
        (2, 3, 2),
        (2, 6, 1),
        (3, 7, 1),
        (4, 5, 1),
        (4, 6, 1),
        (4, 7, 2),
        (5, 6, 2),
        (5, 7, 1),
        (6, 7, 2),
    ] {
        nvlink(&mut t, i, j, lanes, 2);
    }
    pcie_pairs(&mut t, 0..8, two_socket(4, PathClass::Pix, PathClass::Phb));
    t
}

fn pcie_8gpu() -> Topology {
    let name = "pcie-8gpu";
    let h = host(
        name,
        Arch::X86_64,
        "AMD EPYC 9454 48-Core Processor",
        "Supermicro AS-4125GS-TNRT",
        &[("0-47,96-143", 384 * GIB), ("48-95,144-191", 384 * GIB)],
    );
    let cpus: Vec<CpuSet> = h.numa_nodes.iter().map(|n| n.cpus.clone()).collect();
    let mut t = Topology {
        hosts: vec![h],
        ..Topology::default()
    };
    let spec = GpuSpec {
        host: name,
        model: "NVIDIA L40S",
        memory: 48 * GIB,
        driver: "550.127.05",
        vbios: "95.02.66.00.02",
        pcie: (16_000, 16),
        mig: MigMode::Unsupported,
    };
    let buses = [0x01, 0x02, 0x21, 0x22, 0x81, 0x82, 0xc1, 0xc2];
    for (i, bus) in (0u32..).zip(buses) {
        let node = i / 4;
        let g = gpu(
            &spec,
            name,
            i,
            bus,
            Some(node),
            &cpus[usize::try_from(node).unwrap_or(0)],
        );
        t.gpus.push(g);
    }
    // Socket 0: two switches under one root port (PIX in a pair, PXB across);
    // socket 1: two switches under different host bridges (PIX in a pair, NODE across).
    pcie_pairs(&mut t, 0..8, |i, j| {
        if i / 4 != j / 4 {
            PathClass::Sys
        } else if i / 2 == j / 2 {
            PathClass::Pix
        } else if i < 4 {
            PathClass::Pxb
        } else {
            PathClass::Node
        }
    });
    t
}

fn bridge_pairs() -> Topology {
    let name = "nvlink-bridge-pairs";
    let h = host(
        name,
        Arch::X86_64,
        "Intel(R) Xeon(R) Gold 6348 CPU @ 2.60GHz",
        "Dell PowerEdge R750xa",
        &[("0-27,56-83", 256 * GIB), ("28-55,84-111", 256 * GIB)],
    );
    let cpus: Vec<CpuSet> = h.numa_nodes.iter().map(|n| n.cpus.clone()).collect();
    let mut t = Topology {
        hosts: vec![h],
        ..Topology::default()
    };
    let spec = GpuSpec {
        host: name,
        model: "NVIDIA RTX A6000",
        memory: 48 * GIB,
        driver: "550.127.05",
        vbios: "94.02.5c.00.01",
        pcie: (16_000, 16),
        mig: MigMode::Unsupported,
    };
    for (i, bus) in (0u32..).zip([0x17u8, 0x65, 0xca, 0xe3]) {
        let node = i / 2;
        let g = gpu(
            &spec,
            name,
            i,
            bus,
            Some(node),
            &cpus[usize::try_from(node).unwrap_or(0)],
        );
        t.gpus.push(g);
    }
    nvlink(&mut t, 0, 1, 4, 3);
    nvlink(&mut t, 2, 3, 4, 3);
    pcie_pairs(
        &mut t,
        0..4,
        two_socket(2, PathClass::Node, PathClass::Node),
    );
    t
}

fn riscv_fusion() -> Topology {
    let name = "riscv-fusion";
    let mut h = host(
        name,
        Arch::Riscv64,
        "sifive,p870",
        "linkwise riscv-fusion reference board",
        &[("0-63", 512 * GIB)],
    );
    h.kernel = Some("6.18.0-2-riscv64".to_string());
    let cpus = h.numa_nodes[0].cpus.clone();
    let mut t = Topology {
        hosts: vec![h],
        ..Topology::default()
    };
    let spec = GpuSpec {
        host: name,
        model: "NVIDIA B200",
        memory: 180 * GIB,
        driver: "580.82.07",
        vbios: "97.00.8a.00.01",
        pcie: (32_000, 16),
        mig: MigMode::Disabled,
    };
    for (i, bus) in (0u32..).zip([0x01u8, 0x02, 0x03, 0x04]) {
        let mut g = gpu(&spec, name, i, bus, None, &cpus);
        // Coherent Fusion memory shows up as one NUMA node per GPU after the host's.
        g.gpu_numa_id = Some(i + 1);
        g.iommu_group = None;
        t.gpus.push(g);
    }
    for i in 0..4 {
        for j in (i + 1)..4 {
            nvlink(&mut t, i, j, 6, 5);
        }
        let mut l = Link::new(
            ep(&t, i),
            Endpoint::Cpu {
                host: name.to_string(),
                numa: Some(0),
            },
            LinkKind::C2c {
                flavor: C2cFlavor::NvlinkFusion,
                lanes: Some(18),
            },
        );
        l.bandwidth_mbps = Some(18 * 50_000);
        t.links.push(l);
    }
    pcie_pairs(&mut t, 0..4, |_, _| PathClass::Phb);
    for g in 0..4 {
        t.gap(
            format!("gpu {} numa node", t.gpus[g].index),
            "numa_node is -1: the device tree gives the PCIe host bridge no numa-node-id",
        );
    }
    t.gap(
        "iommu groups",
        "no IOMMU group links: the kernel has no RISC-V IOMMU driver bound",
    );
    t
}

/// A rack-scale NVLink domain: `trays` compute trays of 4 GPUs (2 Grace CPUs each), every
/// GPU with one NVLink5 link to each of 18 switch chips in separate switch trays.
fn rack(name: &str, trays: u32, model: &str, mem_gib: u64, cluster_uuid: &str) -> Topology {
    let mut t = Topology::default();
    for s in 0..18 {
        t.switches.push(NvSwitch {
            id: format!("{name}-switch{:02}", s),
            host: None,
            pci_bus_id: None,
            model: Some("NVIDIA NVLink5 Switch".to_string()),
        });
    }
    for tray in 1..=trays {
        let host_name = format!("{name}-tray{tray:02}");
        let name_ = name;
        let name = host_name;
        let mut h = host(
            &name,
            Arch::Aarch64,
            "NVIDIA Grace (Neoverse-V2)",
            &format!("{model} {} compute tray", name_.to_uppercase()),
            &[("0-71", 480 * GIB), ("72-143", 480 * GIB)],
        );
        h.rack = Some(format!("{name_}-rack1"));
        let cpus: Vec<CpuSet> = h.numa_nodes.iter().map(|n| n.cpus.clone()).collect();
        t.hosts.push(h);
        let spec = GpuSpec {
            host: &name,
            model,
            memory: mem_gib * GIB,
            driver: "570.133.20",
            vbios: "97.00.82.00.0f",
            pcie: (32_000, 16),
            mig: MigMode::Disabled,
        };
        let first = t.gpus.len();
        for (i, bus) in (0u32..).zip([0x01u8, 0x02, 0x41, 0x42]) {
            let node = i / 2;
            let mut g = gpu(
                &spec,
                &name,
                i,
                bus,
                Some(node),
                &cpus[usize::try_from(node).unwrap_or(0)],
            );
            g.gpu_numa_id = Some(2 + i);
            g.fabric = Some(FabricMembership {
                cluster_uuid: cluster_uuid.to_string(),
                clique_id: 1,
            });
            t.gpus.push(g);
        }
        for k in first..first + 4 {
            // One NVLink5 link from every GPU to each of the 18 switch chips.
            for s in 0..18 {
                let l = Link::new(
                    ep(&t, k),
                    Endpoint::Switch(format!("{name_}-switch{:02}", s)),
                    LinkKind::NvswitchPort {
                        lanes: 1,
                        generation: Some(5),
                    },
                );
                t.links.push(l);
            }
            let node = u32::try_from((k - first) / 2).unwrap_or(0);
            let mut l = Link::new(
                ep(&t, k),
                Endpoint::Cpu {
                    host: name.clone(),
                    numa: Some(node),
                },
                LinkKind::C2c {
                    flavor: C2cFlavor::NvlinkC2c,
                    lanes: None,
                },
            );
            l.bandwidth_mbps = Some(450_000);
            t.links.push(l);
        }
        pcie_pairs(&mut t, first..first + 4, |i, j| {
            if i / 2 == j / 2 {
                PathClass::Node
            } else {
                PathClass::Sys
            }
        });
    }
    t
}

/// DGX-2: two baseboards of 8 V100s, each GPU with one NVLink2 link to each of its board's
/// 6 NVSwitches; switch `i` of one board is trunked to switch `i` of the other, so each
/// trunked pair acts as one switch plane and every GPU pair gets NV6 (as `nvidia-smi topo
/// -m` shows on this machine). The model has the 6 planes, not the 12 chips.
fn dgx2_v100() -> Topology {
    let name = "dgx2-v100";
    let h = host(
        name,
        Arch::X86_64,
        "Intel(R) Xeon(R) Platinum 8168 CPU @ 2.70GHz",
        "NVIDIA DGX-2",
        &[("0-23,48-71", 768 * GIB), ("24-47,72-95", 768 * GIB)],
    );
    let cpus: Vec<CpuSet> = h.numa_nodes.iter().map(|n| n.cpus.clone()).collect();
    let mut t = Topology {
        hosts: vec![h],
        ..Topology::default()
    };
    let spec = GpuSpec {
        host: name,
        model: "Tesla V100-SXM3-32GB",
        memory: 32 * GIB,
        driver: "535.183.01",
        vbios: "88.00.5a.00.03",
        pcie: (8_000, 16),
        mig: MigMode::Unsupported,
    };
    let buses = [
        0x34, 0x36, 0x39, 0x3b, 0x57, 0x59, 0x5c, 0x5e, 0xb7, 0xb9, 0xbc, 0xbe, 0xe0, 0xe2, 0xe5,
        0xe7,
    ];
    for (i, bus) in (0u32..).zip(buses) {
        let node = i / 8;
        let g = gpu(
            &spec,
            name,
            i,
            bus,
            Some(node),
            &cpus[usize::try_from(node).unwrap_or(0)],
        );
        t.gpus.push(g);
    }
    for s in 0..6 {
        t.switches.push(NvSwitch {
            id: format!("nvswitch-plane{s}"),
            host: Some(name.to_string()),
            pci_bus_id: None,
            model: Some("NVIDIA NVSwitch (2 chips, trunked)".to_string()),
        });
    }
    for i in 0..16 {
        for s in 0..6 {
            let l = Link::new(
                ep(&t, i),
                Endpoint::Switch(format!("nvswitch-plane{s}")),
                LinkKind::NvswitchPort {
                    lanes: 1,
                    generation: Some(2),
                },
            );
            t.links.push(l);
        }
    }
    // Two GPUs per PCIe switch, four per root port, eight per socket.
    pcie_pairs(&mut t, 0..16, |i, j| {
        if i / 8 != j / 8 {
            PathClass::Sys
        } else if i / 2 == j / 2 {
            PathClass::Pix
        } else if i / 4 == j / 4 {
            PathClass::Pxb
        } else {
            PathClass::Node
        }
    });
    t
}

fn degraded() -> Topology {
    let mut t = dgx_h100("degraded");
    if let Some(g) = t.gpus.get_mut(3) {
        g.health = Health::Unhealthy {
            reason: "XID 79: GPU has fallen off the bus".to_string(),
        };
    }
    // GPU5 loses one of its five links to nvswitch0: 4 up, 1 down.
    let g5: GpuId = t.gpus[5].id.clone();
    if let Some(pos) = t.links.iter().position(|l| {
        l.a == Endpoint::Gpu(g5.clone()) && l.b == Endpoint::Switch("nvswitch0".to_string())
    }) {
        let a = t.links[pos].a.clone();
        let b = t.links[pos].b.clone();
        t.links[pos] = Link::new(
            a.clone(),
            b.clone(),
            LinkKind::NvswitchPort {
                lanes: 4,
                generation: Some(4),
            },
        );
        let mut down = Link::new(
            a,
            b,
            LinkKind::NvswitchPort {
                lanes: 1,
                generation: Some(4),
            },
        );
        down.state = LinkState::Down;
        t.links.insert(pos + 1, down);
    }
    t
}
