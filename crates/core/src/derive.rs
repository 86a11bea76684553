//! What is derived from the facts: the pair matrix, NVLink islands, NVLink domains.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::{Endpoint, GpuId, LinkKind, PathClass, Topology};

/// PCIe bandwidth assumed when a GPU's link speed is unknown: 16 GT/s x16, in MB/s.
const DEFAULT_PCIE_MBPS: u64 = 31_507;

/// One cell of the pair matrix, in `nvidia-smi topo -m` vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cell {
    /// The diagonal (`X`).
    Own,
    /// `lanes` NVLinks between the pair, directly or through NVSwitches (`NV#`).
    Nvlink {
        /// Bonded NVLinks the pair can use.
        lanes: u32,
    },
    /// No NVLink; the PCIe (or network) path class.
    Pcie(PathClass),
}

impl Cell {
    /// The `nvidia-smi topo -m` spelling: `X`, `NV18`, `PIX`, ..., `SYS`, or `NET`.
    pub fn label(&self) -> String {
        match self {
            Cell::Own => "X".to_string(),
            Cell::Nvlink { lanes } => format!("NV{lanes}"),
            Cell::Pcie(c) => c.as_str().to_string(),
        }
    }

    /// NVLink lanes of the cell (0 when the pair has none).
    pub fn nvlink_lanes(&self) -> u32 {
        match self {
            Cell::Nvlink { lanes } => *lanes,
            _ => 0,
        }
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// The path class and bandwidth of every GPU pair, GPUs in topology order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairMatrix {
    gpus: Vec<GpuId>,
    cells: Vec<Cell>,
    bandwidth: Vec<u64>,
    pcie: Vec<PathClass>,
}

impl PairMatrix {
    /// Number of GPUs.
    pub fn len(&self) -> usize {
        self.gpus.len()
    }

    /// True when the topology has no GPU.
    pub fn is_empty(&self) -> bool {
        self.gpus.is_empty()
    }

    /// GPU ids in matrix order (the topology's GPU order).
    pub fn gpus(&self) -> &[GpuId] {
        &self.gpus
    }

    /// The cell for GPUs `i` and `j` (matrix positions). Panics when out of range.
    pub fn cell(&self, i: usize, j: usize) -> Cell {
        self.cells[i * self.gpus.len() + j]
    }

    /// Bandwidth per direction between GPUs `i` and `j` in MB/s: the sum of NVLink lane
    /// bandwidth for NVLink pairs; for PCIe pairs the narrower of the two PCIe links,
    /// discounted by how far peer-to-peer traffic travels (see [`pcie_p2p_mbps`]); 0 across
    /// hosts without NVLink and on the diagonal.
    pub fn bandwidth_mbps(&self, i: usize, j: usize) -> u64 {
        self.bandwidth[i * self.gpus.len() + j]
    }

    /// The PCIe path class between GPUs `i` and `j` whether or not they also share NVLink:
    /// the recorded class, else the fallback (`NET` / `NODE` / `SYS`). Meaningless on the
    /// diagonal.
    pub fn pcie_class(&self, i: usize, j: usize) -> PathClass {
        self.pcie[i * self.gpus.len() + j]
    }
}

/// A set of GPUs joined by NVLink, directly or through NVSwitches; a GPU without
/// NVLink is an island of one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Island {
    /// Position of the island (islands are ordered by their first GPU).
    pub id: usize,
    /// Member GPUs, in topology order.
    pub gpus: Vec<GpuId>,
    /// Hosts the island spans.
    pub hosts: Vec<String>,
    /// The fewest NVLink lanes between any two members (0 for an island of one).
    pub min_lanes: u32,
}

impl Island {
    /// The name used in labels and annotations: `island<id>`.
    pub fn name(&self) -> String {
        format!("island{}", self.id)
    }
}

/// An NVLink domain: the GPUs of one multi-node NVLink clique (same cluster UUID and
/// clique id), or, for GPUs without fabric membership, one island.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NvlinkDomain {
    /// `<clusterUUID>.<cliqueId>` for fabric cliques, `island<N>` otherwise.
    pub id: String,
    /// Member GPUs, in topology order.
    pub gpus: Vec<GpuId>,
    /// Hosts the domain spans.
    pub hosts: Vec<String>,
}

// === impl Topology (derived views) ===

impl Topology {
    /// Computes the pair matrix. A pair's NVLink lanes are its direct NVLink lanes plus,
    /// for every NVSwitch both reach, the smaller of their lane counts to it; GPUs of the
    /// same fabric clique that reach switches but share none in the model (switch trays
    /// are not enumerated by compute hosts) get the smaller of their total switch lanes.
    /// Only links that are up count. Pairs without NVLink take the recorded PCIe class;
    /// without one: `NET` across hosts, `NODE` on the same (or the only) NUMA node,
    /// `SYS` otherwise.
    pub fn pair_matrix(&self) -> PairMatrix {
        let n = self.gpus.len();
        let pos: BTreeMap<&GpuId, usize> = self
            .gpus
            .iter()
            .enumerate()
            .map(|(i, g)| (&g.id, i))
            .collect();
        let mut direct = vec![(0u32, 0u64); n * n];
        let mut pcie: BTreeMap<(usize, usize), PathClass> = BTreeMap::new();
        // Switch ids interned to small numbers; per GPU a map switch -> (lanes, bandwidth).
        let switch_no: BTreeMap<&str, usize> = self
            .switches
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        let mut switch_ports: Vec<BTreeMap<usize, (u32, u64)>> = vec![BTreeMap::new(); n];
        for l in self.links.iter().filter(|l| l.is_up()) {
            match (&l.kind, &l.a, &l.b) {
                (LinkKind::Nvlink { lanes, generation }, Endpoint::Gpu(a), Endpoint::Gpu(b)) => {
                    if let (Some(&i), Some(&j)) = (pos.get(a), pos.get(b)) {
                        let bw = link_mbps(l.bandwidth_mbps, *lanes, *generation);
                        for (x, y) in [(i, j), (j, i)] {
                            let c = &mut direct[x * n + y];
                            c.0 = c.0.saturating_add(*lanes);
                            c.1 = c.1.saturating_add(bw);
                        }
                    }
                }
                (
                    LinkKind::NvswitchPort { lanes, generation },
                    Endpoint::Gpu(g),
                    Endpoint::Switch(s),
                )
                | (
                    LinkKind::NvswitchPort { lanes, generation },
                    Endpoint::Switch(s),
                    Endpoint::Gpu(g),
                ) => {
                    if let (Some(&i), Some(&k)) = (pos.get(g), switch_no.get(s.as_str())) {
                        let e = switch_ports[i].entry(k).or_default();
                        e.0 = e.0.saturating_add(*lanes);
                        e.1 =
                            e.1.saturating_add(link_mbps(l.bandwidth_mbps, *lanes, *generation));
                    }
                }
                (LinkKind::Pcie { class }, Endpoint::Gpu(a), Endpoint::Gpu(b)) => {
                    if let (Some(&i), Some(&j)) = (pos.get(a), pos.get(b)) {
                        pcie.insert((i.min(j), i.max(j)), *class);
                    }
                }
                _ => {}
            }
        }
        let switch_ports: Vec<Vec<(usize, u32, u64)>> = switch_ports
            .into_iter()
            .map(|m| m.into_iter().map(|(k, (l, b))| (k, l, b)).collect())
            .collect();
        let totals: Vec<(u32, u64)> = switch_ports
            .iter()
            .map(|v| {
                v.iter().fold((0u32, 0u64), |acc, p| {
                    (acc.0.saturating_add(p.1), acc.1.saturating_add(p.2))
                })
            })
            .collect();
        let single_numa: BTreeMap<&str, bool> = self
            .hosts
            .iter()
            .map(|h| (h.name.as_str(), h.numa_nodes.len() <= 1))
            .collect();
        let mut cells = vec![Cell::Own; n * n];
        let mut bandwidth = vec![0u64; n * n];
        let mut classes = vec![PathClass::Pix; n * n];
        for i in 0..n {
            for j in (i + 1)..n {
                let (mut lanes, mut bw) = direct[i * n + j];
                let (mut sl, mut sb) = (0u32, 0u64);
                // Both port lists are sorted by switch number: merge them.
                let (pa, pb) = (&switch_ports[i], &switch_ports[j]);
                let (mut x, mut y) = (0, 0);
                while x < pa.len() && y < pb.len() {
                    match pa[x].0.cmp(&pb[y].0) {
                        std::cmp::Ordering::Less => x += 1,
                        std::cmp::Ordering::Greater => y += 1,
                        std::cmp::Ordering::Equal => {
                            sl = sl.saturating_add(pa[x].1.min(pb[y].1));
                            sb = sb.saturating_add(pa[x].2.min(pb[y].2));
                            x += 1;
                            y += 1;
                        }
                    }
                }
                let (gi, gj) = (&self.gpus[i], &self.gpus[j]);
                if sl == 0
                    && gi.fabric.is_some()
                    && gi.fabric == gj.fabric
                    && totals[i].0 > 0
                    && totals[j].0 > 0
                {
                    sl = totals[i].0.min(totals[j].0);
                    sb = totals[i].1.min(totals[j].1);
                }
                lanes = lanes.saturating_add(sl);
                bw = bw.saturating_add(sb);
                let class = pcie
                    .get(&(i, j))
                    .copied()
                    .unwrap_or_else(|| fallback_class(gi, gj, &single_numa));
                let cell = if lanes > 0 {
                    Cell::Nvlink { lanes }
                } else {
                    let link = |g: &crate::Gpu| {
                        g.pcie
                            .and_then(|p| p.max_bandwidth_mbps())
                            .unwrap_or(DEFAULT_PCIE_MBPS)
                    };
                    bw = pcie_p2p_mbps(class, link(gi).min(link(gj)));
                    Cell::Pcie(class)
                };
                for (x, y) in [(i, j), (j, i)] {
                    cells[x * n + y] = cell;
                    bandwidth[x * n + y] = bw;
                    classes[x * n + y] = class;
                }
            }
        }
        PairMatrix {
            gpus: self.gpus.iter().map(|g| g.id.clone()).collect(),
            cells,
            bandwidth,
            pcie: classes,
        }
    }

    /// NVLink islands: connected components of the pair matrix's NVLink cells.
    pub fn islands(&self) -> Vec<Island> {
        self.islands_of(&self.pair_matrix())
    }

    /// The name of each GPU's NVLink island ([`Island::name`]), by GPU.
    pub fn island_names(&self) -> BTreeMap<GpuId, String> {
        self.islands()
            .into_iter()
            .flat_map(|is| {
                let name = is.name();
                is.gpus.into_iter().map(move |g| (g, name.clone()))
            })
            .collect()
    }

    /// [`Topology::islands`] from an already computed matrix.
    pub fn islands_of(&self, m: &PairMatrix) -> Vec<Island> {
        let n = m.len();
        let mut parent: Vec<usize> = (0..n).collect();
        fn find(p: &mut [usize], mut x: usize) -> usize {
            while p[x] != x {
                p[x] = p[p[x]];
                x = p[x];
            }
            x
        }
        for i in 0..n {
            for j in (i + 1)..n {
                if m.cell(i, j).nvlink_lanes() > 0 {
                    let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                    if a != b {
                        parent[a.max(b)] = a.min(b);
                    }
                }
            }
        }
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for i in 0..n {
            let r = find(&mut parent, i);
            groups.entry(r).or_default().push(i);
        }
        groups
            .into_values()
            .enumerate()
            .map(|(id, members)| {
                let mut min_lanes = u32::MAX;
                for (x, &i) in members.iter().enumerate() {
                    for &j in &members[x + 1..] {
                        min_lanes = min_lanes.min(m.cell(i, j).nvlink_lanes());
                    }
                }
                Island {
                    id,
                    gpus: members.iter().map(|&i| self.gpus[i].id.clone()).collect(),
                    hosts: hosts_of(members.iter().map(|&i| &self.gpus[i].host)),
                    min_lanes: if members.len() < 2 { 0 } else { min_lanes },
                }
            })
            .collect()
    }

    /// NVLink domains: GPUs grouped by fabric clique; GPUs without one by island.
    pub fn domains(&self) -> Vec<NvlinkDomain> {
        let islands = self.islands();
        let mut by_key: BTreeMap<(u8, String), Vec<usize>> = BTreeMap::new();
        let island_of: BTreeMap<&GpuId, &Island> = islands
            .iter()
            .flat_map(|is| is.gpus.iter().map(move |g| (g, is)))
            .collect();
        for (i, g) in self.gpus.iter().enumerate() {
            let key = match (&g.fabric, island_of.get(&g.id)) {
                (Some(f), _) => (0, f.clique()),
                (None, Some(is)) => (1, format!("{:08}", is.id)),
                (None, None) => (1, format!("{i:08}")),
            };
            by_key.entry(key).or_default().push(i);
        }
        by_key
            .into_iter()
            .map(|((kind, key), members)| NvlinkDomain {
                id: if kind == 0 {
                    key
                } else {
                    let first = &self.gpus[members[0]].id;
                    island_of
                        .get(first)
                        .map_or_else(|| key.clone(), |is| is.name())
                },
                gpus: members.iter().map(|&i| self.gpus[i].id.clone()).collect(),
                hosts: hosts_of(members.iter().map(|&i| &self.gpus[i].host)),
            })
            .collect()
    }
}

/// A link's bandwidth: as recorded, else its lanes at the generation's lane rate.
fn link_mbps(recorded: Option<u64>, lanes: u32, generation: Option<u32>) -> u64 {
    recorded.unwrap_or_else(|| u64::from(lanes).saturating_mul(crate::nvlink_lane_mbps(generation)))
}

/// Peer-to-peer bandwidth over PCIe in MB/s for a pair whose narrower link carries `link`:
/// the full link under one switch or bridge tree (`PIX`, `PXB`), 80% through the host
/// bridge (`PHB`), 60% between host bridges of one NUMA node (`NODE`), 40% across the
/// SMP interconnect (`SYS`, where P2P is often bounced through host memory), 0 across
/// hosts (`NET`). The factors order the classes the way `nvidia-smi` does and keep every
/// PCIe pair below its own link rate; they are estimates, not measurements.
pub fn pcie_p2p_mbps(class: PathClass, link: u64) -> u64 {
    match class {
        PathClass::Pix | PathClass::Pxb => link,
        PathClass::Phb => link * 4 / 5,
        PathClass::Node => link * 3 / 5,
        PathClass::Sys => link * 2 / 5,
        PathClass::Net => 0,
    }
}

/// The class of a pair without NVLink or a recorded PCIe path.
fn fallback_class(a: &crate::Gpu, b: &crate::Gpu, single_numa: &BTreeMap<&str, bool>) -> PathClass {
    if a.host != b.host {
        return PathClass::Net;
    }
    let single = single_numa.get(a.host.as_str()).copied().unwrap_or(true);
    match (a.numa_node, b.numa_node) {
        (Some(x), Some(y)) if x == y => PathClass::Node,
        _ if single => PathClass::Node,
        _ => PathClass::Sys,
    }
}

fn hosts_of<'a>(it: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for h in it {
        if !v.contains(h) {
            v.push(h.clone());
        }
    }
    v
}
