//! What one collection reads, and the snapshot a render turns into text.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use linkwise_core::{Endpoint, GpuId, LinkKind, Topology};

/// What an NVLink link reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeerType {
    /// Another GPU (direct NVLink or bridge).
    Gpu,
    /// An NVSwitch.
    Nvswitch,
    /// A CPU (NVLink-C2C or NVLink Fusion).
    Cpu,
}

impl PeerType {
    /// The `peer_type` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerType::Gpu => "gpu",
            PeerType::Nvswitch => "nvswitch",
            PeerType::Cpu => "cpu",
        }
    }
}

/// The far end of an NVLink link.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Peer {
    /// What it is.
    pub kind: PeerType,
    /// Its id: the GPU's UUID (else its id), the switch id, or `<host>/numa<N>` (`<host>/cpu`
    /// when the NUMA node is unknown).
    pub id: String,
}

/// One physical NVLink link of a GPU, as the topology describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// Position of the GPU in `Topology::gpus`.
    pub gpu: usize,
    /// Link number on that GPU (0-based, in the order the topology lists the links).
    pub link: u32,
    /// The far end.
    pub peer: Peer,
    /// Per-direction line rate, bytes per second, where known.
    pub bandwidth_bps: Option<u64>,
    /// Whether the topology records the link as up (a profile or snapshot may record a
    /// link down; live sources report the state in each collection).
    pub up: bool,
}

/// Every NVLink link of every GPU: a `Nvlink { lanes }` link gives each GPU end `lanes`
/// links to the other GPU, a `NvswitchPort { lanes }` gives the GPU `lanes` links to the
/// switch, a `C2c` link gives the GPU `lanes` (1 when unknown) links to the CPU. PCIe
/// links are not NVLink links. This is the per-link series count of a scrape.
pub fn nvlink_ports(topo: &Topology) -> Vec<Port> {
    let pos: BTreeMap<&GpuId, usize> = topo
        .gpus
        .iter()
        .enumerate()
        .map(|(i, g)| (&g.id, i))
        .collect();
    let mut next: Vec<u32> = vec![0; topo.gpus.len()];
    let mut out = Vec::new();
    let peer_of = |e: &Endpoint| -> Option<Peer> {
        match e {
            Endpoint::Gpu(id) => Some(Peer {
                kind: PeerType::Gpu,
                id: topo
                    .gpu(id)
                    .and_then(|g| g.uuid.clone())
                    .unwrap_or_else(|| id.0.clone()),
            }),
            Endpoint::Switch(s) => Some(Peer {
                kind: PeerType::Nvswitch,
                id: s.clone(),
            }),
            Endpoint::Cpu { host, numa } => Some(Peer {
                kind: PeerType::Cpu,
                id: match numa {
                    Some(n) => format!("{host}/numa{n}"),
                    None => format!("{host}/cpu"),
                },
            }),
            Endpoint::Nic(_) => None,
        }
    };
    for link in &topo.links {
        let lanes = match link.kind {
            LinkKind::Nvlink { lanes, .. } | LinkKind::NvswitchPort { lanes, .. } => lanes,
            LinkKind::C2c { lanes, .. } => lanes.unwrap_or(1),
            LinkKind::Pcie { .. } => continue,
        };
        let per_lane = link
            .bandwidth_mbps
            .map(|m| m * 1_000_000 / u64::from(lanes.max(1)));
        for (near, far) in [(&link.a, &link.b), (&link.b, &link.a)] {
            let Endpoint::Gpu(id) = near else { continue };
            let (Some(&g), Some(peer)) = (pos.get(id), peer_of(far)) else {
                continue;
            };
            for _ in 0..lanes {
                out.push(Port {
                    gpu: g,
                    link: next[g],
                    peer: peer.clone(),
                    bandwidth_bps: per_lane,
                    up: link.state == linkwise_core::LinkState::Up,
                });
                next[g] += 1;
            }
        }
    }
    out.sort_by_key(|p| (p.gpu, p.link));
    out
}

/// One GPU's values from one collection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuReading {
    /// Fraction of time a kernel ran, 0..1.
    pub utilization_ratio: Option<f64>,
    /// Memory in use, bytes.
    pub memory_used_bytes: Option<u64>,
    /// Memory installed, bytes.
    pub memory_total_bytes: Option<u64>,
    /// Core temperature, °C.
    pub temperature_celsius: Option<f64>,
    /// Power draw, W.
    pub power_watts: Option<f64>,
    /// Corrected ECC errors (volatile, since driver load).
    pub ecc_corrected: Option<u64>,
    /// Uncorrected ECC errors.
    pub ecc_uncorrected: Option<u64>,
    /// False when the device stopped answering (GPU lost / fallen off the bus).
    pub present: bool,
}

/// One NVLink link's values; `port` indexes [`nvlink_ports`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkReading {
    /// Index into the port list.
    pub port: usize,
    /// Up (true) or down.
    pub up: bool,
    /// Bytes sent, cumulative.
    pub tx_bytes: Option<u64>,
    /// Bytes received, cumulative.
    pub rx_bytes: Option<u64>,
    /// CRC flit errors, cumulative.
    pub crc_flit_errors: Option<u64>,
    /// CRC data errors, cumulative.
    pub crc_data_errors: Option<u64>,
    /// Replay errors, cumulative.
    pub replay_errors: Option<u64>,
    /// Recovery errors, cumulative.
    pub recovery_errors: Option<u64>,
}

/// One GPU's PCIe link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PcieReading {
    /// Current speed, MT/s.
    pub current_speed_mts: Option<u32>,
    /// Max speed, MT/s.
    pub max_speed_mts: Option<u32>,
    /// Current width, lanes.
    pub current_width: Option<u32>,
    /// Max width, lanes.
    pub max_width: Option<u32>,
}

/// One collection: per GPU (indexed like `Topology::gpus`), per port, per GPU PCIe.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Readings {
    /// Per GPU, same order as `Topology::gpus`.
    pub gpus: Vec<GpuReading>,
    /// Per NVLink port, same order as [`nvlink_ports`].
    pub links: Vec<LinkReading>,
    /// Per GPU PCIe link, same order as `Topology::gpus`.
    pub pcie: Vec<PcieReading>,
    /// XID events seen since the last collection: (GPU position, XID).
    pub xids: Vec<(usize, u64)>,
}

/// Why a collection failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: {message}")]
pub struct CollectError {
    /// The source (`gpu`, `podresources`, `slurm`).
    pub source_name: String,
    /// What went wrong, in one line.
    pub message: String,
}

/// A telemetry source polled on the collection interval (blocking calls allowed: it runs
/// on a blocking thread, never on the scrape path).
pub trait Collect: Send + 'static {
    /// Reads every value once.
    fn collect(&mut self) -> Result<Readings, CollectError>;
    /// True when values are generated rather than read from hardware.
    fn synthetic(&self) -> bool;
}

/// Who holds a GPU: a pod's container and/or a Slurm job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attribution {
    /// Kubernetes namespace.
    pub namespace: Option<String>,
    /// Pod name.
    pub pod: Option<String>,
    /// Container name.
    pub container: Option<String>,
    /// Slurm job id(s), comma-separated when a GPU is shared.
    pub slurm_job: Option<String>,
}

/// Per source: last duration, errors so far, last success.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceHealth {
    /// How long the last attempt took.
    pub last_duration: Duration,
    /// Failed attempts so far.
    pub errors: u64,
    /// When the last attempt succeeded.
    pub last_success: Option<SystemTime>,
}

/// Everything a render needs: the topology, the latest readings, attribution, health and
/// counters kept by the exporter.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The topology the series describe (labels, islands, domains).
    pub topo: std::sync::Arc<Topology>,
    /// Host name for the `hostname` label of the exporter info (each GPU carries its own host).
    pub hostname: String,
    /// The source string (`profile:dgx-h100`, `nvml`, ...).
    pub source: String,
    /// True when values are generated.
    pub synthetic: bool,
    /// The ports, [`nvlink_ports`] of the topology.
    pub ports: Vec<Port>,
    /// The latest readings (may be empty before the first collection).
    pub readings: Readings,
    /// Per GPU position: who holds it.
    pub attribution: BTreeMap<usize, Attribution>,
    /// Per GPU position: healthy?
    pub healthy: Vec<bool>,
    /// XID event counts per (GPU position, XID) since start.
    pub xid_counts: BTreeMap<(usize, u64), u64>,
    /// Health events per (GPU position, reason) since start; reasons are `xid`,
    /// `link_down`, `gpu_lost`, `external`.
    pub health_events: BTreeMap<(usize, &'static str), u64>,
    /// Per source name: collection health.
    pub sources: BTreeMap<&'static str, SourceHealth>,
}
