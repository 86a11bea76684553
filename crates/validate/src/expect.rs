//! What the fabric should deliver, from the topology alone.
//!
//! Per GPU pair, per direction: the physical peak of the path (NVLink: lanes × the
//! generation's per-lane rate, directly or through NVSwitches; PCIe: the narrower link
//! of the two, discounted by how far peer-to-peer traffic travels, as the pair matrix
//! computes it) and what a copy realistically reaches, a documented fraction of the peak
//! per link class ([`NVLINK_FRACTION`], [`PCIE_FRACTION`], [`C2C_FRACTION`];
//! `docs/validation.md` says where each comes from). Per GPU: the same for its link to
//! host memory (PCIe at its maximum speed and width, or the coherent C2C / NVLink Fusion
//! link).

use serde::Serialize;

use linkwise_core::{Cell, Endpoint, LinkKind, PathClass, Topology};

/// The share of an NVLink path's peak that a copy-engine copy reaches.
pub const NVLINK_FRACTION: f64 = 0.85;
/// The share of a PCIe link's usable rate (after line encoding) that a pinned copy reaches
/// (TLP and DLLP overheads).
pub const PCIE_FRACTION: f64 = 0.85;
/// The share of a C2C / NVLink Fusion link's peak that a copy reaches.
pub const C2C_FRACTION: f64 = 0.85;
/// PCIe assumed when a GPU's link is not known: 16 GT/s × 16, in MB/s.
const DEFAULT_PCIE_MBPS: u64 = 31_507;

/// The kind of link that carries a pair's or a GPU's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkClass {
    /// NVLink between the two GPUs directly.
    Nvlink,
    /// NVLink through NVSwitches.
    Nvswitch,
    /// PCIe.
    Pcie,
    /// A coherent CPU-GPU link (NVLink-C2C, NVLink Fusion).
    C2c,
    /// No path inside the node (different hosts).
    None,
}

impl LinkClass {
    /// The realistic fraction of the peak for the class.
    pub fn fraction(self) -> f64 {
        match self {
            LinkClass::Nvlink | LinkClass::Nvswitch => NVLINK_FRACTION,
            LinkClass::Pcie => PCIE_FRACTION,
            LinkClass::C2c => C2C_FRACTION,
            LinkClass::None => 0.0,
        }
    }
}

/// What one GPU pair should deliver, per direction.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PairExpectation {
    /// One GPU's index.
    pub a: u32,
    /// The other's.
    pub b: u32,
    /// The link class.
    pub class: LinkClass,
    /// NVLink lanes the pair can use (0 over PCIe).
    pub lanes: u32,
    /// The path in words (`18 NVLink lanes through NVSwitch`, `PCIe PXB`).
    pub path: String,
    /// The PCIe path class of the pair (what it falls back to without NVLink).
    pub pcie_class: PathClass,
    /// Physical peak, GB/s per direction.
    pub peak_gbps: f64,
    /// What a copy reaches, GB/s per direction (peak × the class's fraction).
    pub expected_gbps: f64,
    /// What the pair would reach over PCIe alone, GB/s (for diagnosis).
    pub pcie_gbps: f64,
    /// The narrower of the two GPUs' PCIe links, GB/s: the most a pair without NVLink
    /// can move.
    pub pcie_link_gbps: f64,
    /// One NVLink lane's peak, GB/s (0 over PCIe).
    pub lane_gbps: f64,
}

/// What one GPU's link to host memory should deliver, per direction.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostExpectation {
    /// The GPU's index.
    pub gpu: u32,
    /// The link class (PCIe or C2C).
    pub class: LinkClass,
    /// The link in words (`PCIe 32 GT/s x16`, `NVLink-C2C`).
    pub link: String,
    /// Physical peak, GB/s per direction.
    pub peak_gbps: f64,
    /// What a copy reaches, GB/s per direction.
    pub expected_gbps: f64,
    /// PCIe: the speed the link can run at, MT/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_speed_mts: Option<u32>,
    /// PCIe: the width the link can run at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_width: Option<u32>,
    /// PCIe: the width the topology saw it trained at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_width: Option<u32>,
    /// True when the link's speed or width was not known and 16 GT/s x16 was assumed.
    pub assumed: bool,
}

/// Everything expected of a topology's GPUs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Expectations {
    /// The topology's source.
    pub source: String,
    /// GPU indexes, in matrix order.
    pub gpus: Vec<u32>,
    /// Every unordered pair (a < b in matrix order).
    pub pairs: Vec<PairExpectation>,
    /// Every GPU's host link.
    pub host: Vec<HostExpectation>,
}

impl Expectations {
    /// The pair of GPUs at matrix positions `i` and `j` (either order).
    pub fn pair(&self, i: usize, j: usize) -> Option<&PairExpectation> {
        let (a, b) = (*self.gpus.get(i)?, *self.gpus.get(j)?);
        self.pairs
            .iter()
            .find(|p| (p.a == a && p.b == b) || (p.a == b && p.b == a))
    }
}

fn gbps(mbps: u64) -> f64 {
    mbps as f64 / 1000.0
}

/// One PCIe lane's usable rate at `speed` MT/s, MB/s (128b/130b from 8 GT/s, 8b/10b below).
pub fn pcie_lane_mbps(speed_mts: u32) -> f64 {
    let s = f64::from(speed_mts);
    if speed_mts >= 8000 {
        s * 128.0 / 130.0 / 8.0
    } else {
        s * 8.0 / 10.0 / 8.0
    }
}

/// The expectations of `topo`'s GPUs (one host's; across hosts pairs have no path).
pub fn expect(topo: &Topology) -> Expectations {
    let m = topo.pair_matrix();
    let n = m.len();
    let mut pairs = Vec::new();
    for i in 0..n {
        for j in (i + 1)..n {
            let (gi, gj) = (&topo.gpus[i], &topo.gpus[j]);
            let class_pcie = m.pcie_class(i, j);
            let link = |g: &linkwise_core::Gpu| {
                g.pcie
                    .and_then(|p| p.max_bandwidth_mbps())
                    .unwrap_or(DEFAULT_PCIE_MBPS)
            };
            let pcie_peak = linkwise_core::pcie_p2p_mbps(class_pcie, link(gi).min(link(gj)));
            let (class, lanes, path, lane) = match m.cell(i, j) {
                Cell::Nvlink { lanes } => {
                    let direct = topo.links.iter().any(|l| {
                        l.is_up()
                            && matches!(l.kind, LinkKind::Nvlink { .. })
                            && ((l.a == Endpoint::Gpu(gi.id.clone())
                                && l.b == Endpoint::Gpu(gj.id.clone()))
                                || (l.a == Endpoint::Gpu(gj.id.clone())
                                    && l.b == Endpoint::Gpu(gi.id.clone())))
                    });
                    let lane = m.bandwidth_mbps(i, j) as f64 / f64::from(lanes.max(1));
                    if direct {
                        (
                            LinkClass::Nvlink,
                            lanes,
                            format!("{lanes} NVLink lanes"),
                            lane,
                        )
                    } else {
                        (
                            LinkClass::Nvswitch,
                            lanes,
                            format!("{lanes} NVLink lanes through NVSwitch"),
                            lane,
                        )
                    }
                }
                Cell::Pcie(PathClass::Net) => (
                    LinkClass::None,
                    0,
                    "no path inside a node (different hosts)".into(),
                    0.0,
                ),
                Cell::Pcie(c) => (LinkClass::Pcie, 0, format!("PCIe {c}"), 0.0),
                Cell::Own => continue,
            };
            let peak = gbps(m.bandwidth_mbps(i, j));
            pairs.push(PairExpectation {
                a: gi.index,
                b: gj.index,
                class,
                lanes,
                path,
                pcie_class: class_pcie,
                peak_gbps: peak,
                expected_gbps: peak * class.fraction(),
                pcie_gbps: gbps(pcie_peak) * PCIE_FRACTION,
                pcie_link_gbps: gbps(link(gi).min(link(gj))),
                lane_gbps: lane / 1000.0,
            });
        }
    }
    let host = topo
        .gpus
        .iter()
        .map(|g| {
            let c2c = topo.links.iter().find_map(|l| match (&l.kind, &l.a, &l.b) {
                (LinkKind::C2c { flavor, .. }, Endpoint::Gpu(x), Endpoint::Cpu { .. })
                | (LinkKind::C2c { flavor, .. }, Endpoint::Cpu { .. }, Endpoint::Gpu(x))
                    if *x == g.id && l.is_up() =>
                {
                    Some((*flavor, l.bandwidth_mbps))
                }
                _ => None,
            });
            if let Some((flavor, Some(bw))) = c2c {
                let name = match flavor {
                    linkwise_core::C2cFlavor::NvlinkC2c => "NVLink-C2C",
                    linkwise_core::C2cFlavor::NvlinkFusion => "NVLink Fusion",
                };
                return HostExpectation {
                    gpu: g.index,
                    class: LinkClass::C2c,
                    link: name.to_string(),
                    peak_gbps: gbps(bw),
                    expected_gbps: gbps(bw) * C2C_FRACTION,
                    max_speed_mts: None,
                    max_width: None,
                    current_width: None,
                    assumed: false,
                };
            }
            let p = g.pcie.unwrap_or_default();
            let known = p.max_bandwidth_mbps();
            let speed = p
                .max_speed_mts
                .filter(|_| known.is_some())
                .unwrap_or(16_000);
            let width = p.max_width.filter(|_| known.is_some()).unwrap_or(16);
            let peak = gbps(known.unwrap_or(DEFAULT_PCIE_MBPS));
            HostExpectation {
                gpu: g.index,
                class: LinkClass::Pcie,
                link: format!("PCIe {} GT/s x{width}", f64::from(speed) / 1000.0),
                peak_gbps: peak,
                expected_gbps: peak * PCIE_FRACTION,
                max_speed_mts: Some(speed),
                max_width: Some(width),
                current_width: p.current_width,
                assumed: known.is_none(),
            }
        })
        .collect();
    Expectations {
        source: topo.source.clone(),
        gpus: topo.gpus.iter().map(|g| g.index).collect(),
        pairs,
        host,
    }
}
