//! The fabric model: hosts, GPUs, switches, NICs and links.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{CpuSet, Error, PciAddress, Result};

/// A GPU's stable identifier: its UUID where known, else its PCI bus id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GpuId(pub String);

impl fmt::Display for GpuId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for GpuId {
    fn from(s: &str) -> Self {
        GpuId(s.to_string())
    }
}

/// CPU architecture of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Arch {
    /// 64-bit x86.
    #[serde(rename = "x86_64")]
    X86_64,
    /// 64-bit Arm.
    #[serde(rename = "aarch64")]
    Aarch64,
    /// 64-bit RISC-V.
    #[serde(rename = "riscv64")]
    Riscv64,
}

impl Arch {
    /// The name as `uname -m` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
            Arch::Riscv64 => "riscv64",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A NUMA node of a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NumaNode {
    /// Node number as the kernel numbers it.
    pub id: u32,
    /// CPUs local to the node.
    pub cpus: CpuSet,
    /// Memory of the node in bytes, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
}

/// A host (server, compute tray) that holds GPUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Host {
    /// Host name; GPUs, switches and NICs refer to their host by it.
    pub name: String,
    /// CPU architecture, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<Arch>,
    /// Kernel release (`uname -r`), where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// CPU model (x86 "model name", Arm part, RISC-V `uarch` / `isa`), where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_model: Option<String>,
    /// Board or system model (device tree `model`, DMI product name), where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board_model: Option<String>,
    /// Number of logical CPUs, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Total memory in bytes, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// NUMA nodes; empty when the host reports none.
    #[serde(default)]
    pub numa_nodes: Vec<NumaNode>,
    /// Rack or switch group the host sits in, where known (used for topology.conf).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
}

impl Host {
    /// A host with only a name.
    pub fn named(name: impl Into<String>) -> Self {
        Host {
            name: name.into(),
            arch: None,
            kernel: None,
            cpu_model: None,
            board_model: None,
            cpus: None,
            memory_bytes: None,
            numa_nodes: Vec::new(),
            rack: None,
        }
    }
}

/// MIG (Multi-Instance GPU) mode of a GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MigMode {
    /// MIG capable, off.
    Disabled,
    /// MIG capable, on.
    Enabled,
    /// The GPU cannot do MIG.
    Unsupported,
}

/// Health of a GPU as last observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Health {
    /// Usable.
    Healthy,
    /// Not usable; `reason` says why (for example an XID number).
    Unhealthy {
        /// Why the GPU is unhealthy.
        reason: String,
    },
}

impl Health {
    /// True for [`Health::Healthy`].
    pub fn is_healthy(&self) -> bool {
        matches!(self, Health::Healthy)
    }
}

/// Membership of a multi-node NVLink fabric (NVML `nvmlGpuFabricInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FabricMembership {
    /// The fabric's cluster UUID.
    pub cluster_uuid: String,
    /// The clique (NVLink partition) within the cluster.
    pub clique_id: u32,
}

impl FabricMembership {
    /// The clique string used by Kubernetes labels and DRA: `<clusterUUID>.<cliqueId>`.
    pub fn clique(&self) -> String {
        format!("{}.{}", self.cluster_uuid, self.clique_id)
    }
}

/// State of a GPU's PCIe link: speeds in MT/s (`16.0 GT/s` = 16000), widths in lanes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PcieLinkStatus {
    /// Current speed in MT/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_speed_mts: Option<u32>,
    /// Current width in lanes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_width: Option<u32>,
    /// Maximum speed in MT/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_speed_mts: Option<u32>,
    /// Maximum width in lanes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_width: Option<u32>,
}

impl PcieLinkStatus {
    /// Usable bandwidth of the link at its maximum speed and width, in MB/s per direction,
    /// where both are known (128b/130b encoding from 8 GT/s on, 8b/10b below).
    pub fn max_bandwidth_mbps(&self) -> Option<u64> {
        let speed = u64::from(self.max_speed_mts?);
        let width = u64::from(self.max_width?);
        let per_lane = if speed >= 8000 {
            speed * 128 / 130 / 8
        } else {
            speed * 8 / 10 / 8
        };
        Some(per_lane * width)
    }

    /// True when the link runs narrower than it can, or slower while also narrower
    /// (GPUs drop speed at idle, so speed alone is not a fault).
    pub fn is_degraded(&self) -> bool {
        matches!((self.current_width, self.max_width), (Some(c), Some(m)) if c < m)
    }
}

/// A GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Gpu {
    /// Stable id: UUID where known, else PCI bus id.
    pub id: GpuId,
    /// Index on its host (NVML / `nvidia-smi` order).
    pub index: u32,
    /// The host the GPU sits in.
    pub host: String,
    /// UUID (`GPU-...`), where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// PCI address, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci_bus_id: Option<PciAddress>,
    /// The PCIe root complex (host bridge) above the GPU, `pci<domain>:<bus>` as sysfs and
    /// the DRA attribute `resource.kubernetes.io/pcieRoot` name it, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcie_root: Option<String>,
    /// Product name (for example `NVIDIA H100 80GB HBM3`).
    pub model: String,
    /// Frame-buffer memory in bytes, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// NUMA node of the GPU's PCIe attachment; absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numa_node: Option<u32>,
    /// CPUs close to the GPU, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_affinity: Option<CpuSet>,
    /// NUMA node of the GPU's own memory (coherent C2C / Fusion systems), where it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_numa_id: Option<u32>,
    /// NVIDIA driver version, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
    /// VBIOS version, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vbios_version: Option<String>,
    /// GSP / InfoROM firmware version, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware_version: Option<String>,
    /// Kernel driver bound to the PCI function (`nvidia`, `vfio-pci`, ...), where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_driver: Option<String>,
    /// IOMMU group, where the host has an IOMMU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iommu_group: Option<u32>,
    /// PCIe link speed and width, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcie: Option<PcieLinkStatus>,
    /// MIG mode, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mig_mode: Option<MigMode>,
    /// Health as last observed.
    pub health: Health,
    /// Multi-node NVLink fabric membership, where the GPU has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fabric: Option<FabricMembership>,
}

impl Gpu {
    /// A healthy GPU with only the required fields set.
    pub fn new(
        id: impl Into<String>,
        index: u32,
        host: impl Into<String>,
        model: impl Into<String>,
    ) -> Self {
        Gpu {
            id: GpuId(id.into()),
            index,
            host: host.into(),
            uuid: None,
            pci_bus_id: None,
            pcie_root: None,
            model: model.into(),
            memory_bytes: None,
            numa_node: None,
            cpu_affinity: None,
            gpu_numa_id: None,
            driver_version: None,
            vbios_version: None,
            firmware_version: None,
            kernel_driver: None,
            iommu_group: None,
            pcie: None,
            mig_mode: None,
            health: Health::Healthy,
            fabric: None,
        }
    }

    /// The short name used in matrices: `GPU<index>`, prefixed by the host when the
    /// topology spans hosts.
    pub fn label(&self, multi_host: bool) -> String {
        if multi_host {
            format!("{}/GPU{}", self.host, self.index)
        } else {
            format!("GPU{}", self.index)
        }
    }
}

/// An NVSwitch chip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NvSwitch {
    /// Identifier, unique in the topology.
    pub id: String,
    /// The host whose PCIe tree shows the switch; absent for switches in separate
    /// switch trays (NVL72-class racks), which no compute host enumerates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// PCI address, where the switch is a PCI function of the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci_bus_id: Option<PciAddress>,
    /// Product name, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// A network adapter that appears in the PCIe topology (as `nvidia-smi topo -m` NIC columns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Nic {
    /// Identifier, unique in the topology (`NIC0`, `mlx5_0`, ...).
    pub id: String,
    /// The host the adapter sits in.
    pub host: String,
    /// Device name (`mlx5_0`, `rocep49s0`), where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// PCI address, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci_bus_id: Option<PciAddress>,
}

/// One end of a [`Link`].
///
/// Written as a map with exactly one key (`gpu`, `switch`, `nic` or `cpu`), the same
/// in JSON and YAML.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "EndpointRepr", into = "EndpointRepr")]
pub enum Endpoint {
    /// A GPU, by id.
    Gpu(GpuId),
    /// An NVSwitch, by id.
    Switch(String),
    /// A NIC, by id.
    Nic(String),
    /// A host CPU complex (socket / NUMA node).
    Cpu {
        /// The host.
        host: String,
        /// The NUMA node of the CPU end, where known.
        numa: Option<u32>,
    },
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointRepr {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gpu: Option<GpuId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    switch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cpu: Option<CpuRepr>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CpuRepr {
    host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    numa: Option<u32>,
}

impl TryFrom<EndpointRepr> for Endpoint {
    type Error = String;

    fn try_from(r: EndpointRepr) -> Result<Self, String> {
        match (r.gpu, r.switch, r.nic, r.cpu) {
            (Some(g), None, None, None) => Ok(Endpoint::Gpu(g)),
            (None, Some(s), None, None) => Ok(Endpoint::Switch(s)),
            (None, None, Some(n), None) => Ok(Endpoint::Nic(n)),
            (None, None, None, Some(c)) => Ok(Endpoint::Cpu {
                host: c.host,
                numa: c.numa,
            }),
            _ => Err("an endpoint has exactly one of `gpu`, `switch`, `nic`, `cpu`".to_string()),
        }
    }
}

impl From<Endpoint> for EndpointRepr {
    fn from(e: Endpoint) -> Self {
        let mut r = EndpointRepr {
            gpu: None,
            switch: None,
            nic: None,
            cpu: None,
        };
        match e {
            Endpoint::Gpu(g) => r.gpu = Some(g),
            Endpoint::Switch(s) => r.switch = Some(s),
            Endpoint::Nic(n) => r.nic = Some(n),
            Endpoint::Cpu { host, numa } => r.cpu = Some(CpuRepr { host, numa }),
        }
        r
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Gpu(id) => write!(f, "gpu {id}"),
            Endpoint::Switch(id) => write!(f, "nvswitch {id}"),
            Endpoint::Nic(id) => write!(f, "nic {id}"),
            Endpoint::Cpu {
                host,
                numa: Some(n),
            } => write!(f, "cpu {host} node {n}"),
            Endpoint::Cpu { host, numa: None } => write!(f, "cpu {host}"),
        }
    }
}

/// The PCIe path between two devices, in `nvidia-smi topo -m` terms, closest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PathClass {
    /// At most a single PCIe bridge.
    #[serde(rename = "PIX")]
    Pix,
    /// Multiple PCIe bridges, without the host bridge.
    #[serde(rename = "PXB")]
    Pxb,
    /// Through a PCIe host bridge (typically the CPU).
    #[serde(rename = "PHB")]
    Phb,
    /// Between PCIe host bridges within one NUMA node.
    #[serde(rename = "NODE")]
    Node,
    /// Across the SMP interconnect between NUMA nodes (QPI/UPI/xGMI).
    #[serde(rename = "SYS")]
    Sys,
    /// Different hosts, over the network (no `nvidia-smi` equivalent: it shows one host).
    #[serde(rename = "NET")]
    Net,
}

impl PathClass {
    /// The `nvidia-smi topo -m` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PathClass::Pix => "PIX",
            PathClass::Pxb => "PXB",
            PathClass::Phb => "PHB",
            PathClass::Node => "NODE",
            PathClass::Sys => "SYS",
            PathClass::Net => "NET",
        }
    }

    /// Parses the `nvidia-smi topo -m` spelling (case-insensitive).
    pub fn parse(s: &str) -> Option<PathClass> {
        Some(match s.trim().to_ascii_uppercase().as_str() {
            "PIX" => PathClass::Pix,
            "PXB" => PathClass::Pxb,
            "PHB" => PathClass::Phb,
            "NODE" => PathClass::Node,
            "SYS" => PathClass::Sys,
            "NET" => PathClass::Net,
            _ => return None,
        })
    }
}

impl fmt::Display for PathClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which CPU-GPU coherent link a [`LinkKind::C2c`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum C2cFlavor {
    /// NVLink-C2C (Grace Hopper / Grace Blackwell).
    NvlinkC2c,
    /// NVLink Fusion: a third-party CPU (for example RISC-V) speaking NVLink to the GPU.
    NvlinkFusion,
}

/// What a [`Link`] is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LinkKind {
    /// Direct GPU-GPU NVLink (mesh or bridge), `lanes` bonded links.
    Nvlink {
        /// Number of NVLinks bonded between the two ends.
        lanes: u32,
        /// NVLink generation (1..5), where known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        generation: Option<u32>,
    },
    /// GPU to NVSwitch NVLinks.
    NvswitchPort {
        /// Number of NVLinks from the GPU to this switch.
        lanes: u32,
        /// NVLink generation (1..5), where known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        generation: Option<u32>,
    },
    /// Coherent CPU-GPU link (NVLink-C2C or NVLink Fusion).
    C2c {
        /// Which link.
        flavor: C2cFlavor,
        /// Lanes, where known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lanes: Option<u32>,
    },
    /// PCIe path between two devices.
    Pcie {
        /// The path class.
        class: PathClass,
    },
}

/// Up or down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkState {
    /// Carrying traffic.
    #[default]
    Up,
    /// Trained down, disabled or failed.
    Down,
}

/// A connection between two endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Link {
    /// One end.
    pub a: Endpoint,
    /// The other end.
    pub b: Endpoint,
    /// What the link is.
    pub kind: LinkKind,
    /// Up or down.
    #[serde(default, skip_serializing_if = "is_up")]
    pub state: LinkState,
    /// Bandwidth per direction in MB/s, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_mbps: Option<u64>,
}

fn is_up(s: &LinkState) -> bool {
    *s == LinkState::Up
}

/// Per-lane NVLink bandwidth in MB/s per direction for a generation (V100..H100: 25 GB/s,
/// P100: 20 GB/s, B200: 50 GB/s); 25 GB/s when the generation is unknown.
pub fn nvlink_lane_mbps(generation: Option<u32>) -> u64 {
    match generation {
        Some(1) => 20_000,
        Some(5..) => 50_000,
        _ => 25_000,
    }
}

impl Link {
    /// An up link with the bandwidth implied by its kind.
    pub fn new(a: Endpoint, b: Endpoint, kind: LinkKind) -> Self {
        let bandwidth_mbps = match &kind {
            LinkKind::Nvlink { lanes, generation }
            | LinkKind::NvswitchPort { lanes, generation } => {
                Some(u64::from(*lanes) * nvlink_lane_mbps(*generation))
            }
            LinkKind::C2c { lanes: Some(l), .. } => Some(u64::from(*l) * nvlink_lane_mbps(Some(4))),
            _ => None,
        };
        Link {
            a,
            b,
            kind,
            state: LinkState::Up,
            bandwidth_mbps,
        }
    }

    /// True when the link is up.
    pub fn is_up(&self) -> bool {
        self.state == LinkState::Up
    }

    /// NVLink lanes of the link (0 for PCIe).
    pub fn nvlink_lanes(&self) -> u32 {
        match self.kind {
            LinkKind::Nvlink { lanes, .. } | LinkKind::NvswitchPort { lanes, .. } => lanes,
            LinkKind::C2c { lanes, .. } => lanes.unwrap_or(0),
            LinkKind::Pcie { .. } => 0,
        }
    }
}

/// The [`Gap::what`] of a topology whose GPUs or NVSwitches were seen but whose NVLink
/// facts were not (sysfs alone cannot see NVLink). Such a topology's "no NVLink" is
/// unknown, not false; see [`Topology::nvlink_unknown`].
pub const NVLINK_GAP: &str = "nvlink";

/// Something discovery could not find out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Gap {
    /// What is unknown (for example `gpu 0000:1b:00.0 numa node`).
    pub what: String,
    /// Why (for example `numa_node is -1: firmware gives no proximity`).
    pub why: String,
}

/// The fabric of one or more hosts: everything discovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    /// Where the facts came from (`profile:dgx-h100`, `sysfs:/`, `nvml`, ...).
    pub source: String,
    /// Hosts; most topologies have one.
    pub hosts: Vec<Host>,
    /// GPUs, in host then index order.
    pub gpus: Vec<Gpu>,
    /// NVSwitch chips.
    pub switches: Vec<NvSwitch>,
    /// NICs that appear in the PCIe topology.
    pub nics: Vec<Nic>,
    /// Links between endpoints.
    pub links: Vec<Link>,
    /// What could not be discovered, and why.
    pub gaps: Vec<Gap>,
}

// === impl Topology ===

impl Topology {
    /// The GPU with `id`.
    pub fn gpu(&self, id: &GpuId) -> Option<&Gpu> {
        self.gpus.iter().find(|g| &g.id == id)
    }

    /// The host named `name`.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// True when the topology covers more than one host.
    pub fn is_multi_host(&self) -> bool {
        self.hosts.len() > 1
    }

    /// The gap saying NVLink facts are missing although NVIDIA GPUs or NVSwitches were
    /// seen; `None` when the topology's NVLink facts (present or absent) are known.
    pub fn nvlink_unknown(&self) -> Option<&Gap> {
        self.gaps.iter().find(|g| g.what == NVLINK_GAP)
    }

    /// Record something that could not be discovered.
    pub fn gap(&mut self, what: impl Into<String>, why: impl Into<String>) {
        self.gaps.push(Gap {
            what: what.into(),
            why: why.into(),
        });
    }

    /// Sorts GPUs by (host order, index) and hosts by name, so that equal facts give
    /// equal topologies whatever order a source found them in.
    pub fn normalize(&mut self) {
        self.hosts.sort_by(|a, b| a.name.cmp(&b.name));
        for h in &mut self.hosts {
            h.numa_nodes.sort_by_key(|n| n.id);
        }
        let order: BTreeMap<String, usize> = self
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.name.clone(), i))
            .collect();
        self.gpus
            .sort_by_key(|g| (order.get(&g.host).copied().unwrap_or(usize::MAX), g.index));
    }

    /// Checks that the topology is consistent: non-empty unique ids, every reference
    /// resolves, no self-links, NVLink lanes positive, GPU indexes unique per host.
    pub fn validate(&self) -> Result<()> {
        let mut hosts = BTreeSet::new();
        for (i, h) in self.hosts.iter().enumerate() {
            if h.name.is_empty() {
                return Err(Error::invalid(
                    format!("hosts[{i}].name"),
                    "must not be empty",
                ));
            }
            if !hosts.insert(h.name.as_str()) {
                return Err(Error::invalid(
                    format!("hosts[{i}].name"),
                    format!("host {:?} appears twice", h.name),
                ));
            }
            let mut nodes = BTreeSet::new();
            for (j, n) in h.numa_nodes.iter().enumerate() {
                if !nodes.insert(n.id) {
                    return Err(Error::invalid(
                        format!("hosts[{i}].numaNodes[{j}].id"),
                        format!("NUMA node {} appears twice", n.id),
                    ));
                }
            }
        }
        let mut ids = BTreeSet::new();
        let mut indexes = BTreeSet::new();
        for (i, g) in self.gpus.iter().enumerate() {
            if g.id.0.is_empty() {
                return Err(Error::invalid(format!("gpus[{i}].id"), "must not be empty"));
            }
            if !ids.insert(&g.id) {
                return Err(Error::invalid(
                    format!("gpus[{i}].id"),
                    format!("GPU id {} appears twice", g.id),
                ));
            }
            if !hosts.contains(g.host.as_str()) {
                return Err(Error::invalid(
                    format!("gpus[{i}].host"),
                    format!("host {:?} is not in hosts", g.host),
                ));
            }
            if !indexes.insert((g.host.as_str(), g.index)) {
                return Err(Error::invalid(
                    format!("gpus[{i}].index"),
                    format!("index {} appears twice on host {}", g.index, g.host),
                ));
            }
        }
        let mut switches = BTreeSet::new();
        for (i, s) in self.switches.iter().enumerate() {
            if s.id.is_empty() || !switches.insert(s.id.as_str()) {
                return Err(Error::invalid(
                    format!("switches[{i}].id"),
                    format!("switch id {:?} is empty or appears twice", s.id),
                ));
            }
            if let Some(h) = &s.host
                && !hosts.contains(h.as_str())
            {
                return Err(Error::invalid(
                    format!("switches[{i}].host"),
                    format!("host {h:?} is not in hosts"),
                ));
            }
        }
        let mut nics = BTreeSet::new();
        for (i, n) in self.nics.iter().enumerate() {
            if n.id.is_empty() || !nics.insert(n.id.as_str()) {
                return Err(Error::invalid(
                    format!("nics[{i}].id"),
                    format!("NIC id {:?} is empty or appears twice", n.id),
                ));
            }
            if !hosts.contains(n.host.as_str()) {
                return Err(Error::invalid(
                    format!("nics[{i}].host"),
                    format!("host {:?} is not in hosts", n.host),
                ));
            }
        }
        for (i, l) in self.links.iter().enumerate() {
            for (end, e) in [("a", &l.a), ("b", &l.b)] {
                let ok = match e {
                    Endpoint::Gpu(id) => ids.contains(id),
                    Endpoint::Switch(id) => switches.contains(id.as_str()),
                    Endpoint::Nic(id) => nics.contains(id.as_str()),
                    Endpoint::Cpu { host, .. } => hosts.contains(host.as_str()),
                };
                if !ok {
                    return Err(Error::invalid(
                        format!("links[{i}].{end}"),
                        format!("{e} is not in the topology"),
                    ));
                }
            }
            if l.a == l.b {
                return Err(Error::invalid(
                    format!("links[{i}]"),
                    "a link joins an endpoint to itself",
                ));
            }
            match (&l.kind, &l.a, &l.b) {
                (
                    LinkKind::Nvlink { lanes: 0, .. } | LinkKind::NvswitchPort { lanes: 0, .. },
                    _,
                    _,
                ) => {
                    return Err(Error::invalid(
                        format!("links[{i}].kind.lanes"),
                        "must be at least 1",
                    ));
                }
                (LinkKind::Nvlink { .. }, Endpoint::Gpu(_), Endpoint::Gpu(_)) => {}
                (LinkKind::Nvlink { .. }, _, _) => {
                    return Err(Error::invalid(
                        format!("links[{i}]"),
                        "an nvlink link joins two GPUs (use nvswitch-port or c2c for other ends)",
                    ));
                }
                (LinkKind::NvswitchPort { .. }, Endpoint::Gpu(_), Endpoint::Switch(_))
                | (LinkKind::NvswitchPort { .. }, Endpoint::Switch(_), Endpoint::Gpu(_)) => {}
                (LinkKind::NvswitchPort { .. }, _, _) => {
                    return Err(Error::invalid(
                        format!("links[{i}]"),
                        "an nvswitch-port link joins a GPU and a switch",
                    ));
                }
                (LinkKind::C2c { .. }, Endpoint::Gpu(_), Endpoint::Cpu { .. })
                | (LinkKind::C2c { .. }, Endpoint::Cpu { .. }, Endpoint::Gpu(_)) => {}
                (LinkKind::C2c { .. }, _, _) => {
                    return Err(Error::invalid(
                        format!("links[{i}]"),
                        "a c2c link joins a GPU and a CPU",
                    ));
                }
                (LinkKind::Pcie { .. }, _, _) => {}
            }
        }
        Ok(())
    }
}
