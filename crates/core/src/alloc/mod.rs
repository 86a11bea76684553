//! The allocator: choose the best `k` GPUs of a node (or of a multi-node NVLink domain).
//!
//! The objective is written down, with worked examples, in `docs/allocation.md`; this
//! module follows it. In short, a candidate set is scored by a [`Score`] whose components
//! are compared lexicographically in the order the [`Policy`] gives:
//!
//! - `islands`: NVLink islands the set spans (fewer is better);
//! - `hosts`: hosts the set spans (fewer is better; only multi-host domains have several);
//! - `numa_misses`: GPUs outside the requested NUMA node / CPU set (fewer is better);
//! - `bottleneck_mbps`: the weakest link on the set's best ring (higher is better);
//! - `total_mbps`: the sum of pairwise bandwidth inside the set (higher is better);
//! - `leftover_mbps`: what stays behind, as the sum over the GPUs that stay free of the
//!   bandwidth to their best free partner (higher is better: the set does not leave
//!   NVLink pairs or islands half used);
//! - `cut_mbps`: bandwidth from the set to the GPUs that stay free (lower is better: it
//!   prefers GPUs already cut off from their partners, such as the orphan of a pair);
//! - `opened`: intact islands and hosts the set breaks into (fewer is better);
//!
//! and then the lowest GPU positions win, so answers are deterministic.
//!
//! Search: exhaustive enumeration of candidate sets with lazy scoring — one set per
//! orbit of interchangeable GPUs ("twins") — on every node of up to [`EXACT_GPUS`] GPUs
//! and wherever few enough sets remain, which gives the exact optimum; otherwise a
//! decomposition by island and host that shrinks the candidates to a pool that can be
//! enumerated, falling back to a greedy start plus swap search. A caller with a time
//! budget uses [`Allocator::allocate_within`] with its own "out of time" probe (this crate
//! has no clock): the greedy, the swaps and the decomposition stop when it says so and
//! answer the best set found ([`Allocation::timed_out`]); exhaustive searches never ask it.
//!
//! [`Allocator`] is built once per topology and then answers requests without touching
//! the topology again (the device plugin's hot path).

mod frac;
pub mod prior_art;
mod ring;
mod search;

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::{CpuSet, Endpoint, GpuId, LinkKind, PathClass, Topology};

pub use frac::{FracError, FracPlacement, MigProfile, MigState, place_fraction, place_mig};
pub use ring::ring_bottleneck;

/// Nodes of up to this many GPUs are always searched exhaustively (exact).
pub const EXACT_GPUS: usize = 16;

/// Larger topologies are searched exhaustively when they have at most this many
/// candidate sets (after symmetry reduction); above it, by decomposition.
pub const LARGE_BUDGET: u64 = 2_000;

/// Pools found by the decomposition are enumerated when they have at most this many
/// candidate sets (C(16, 8) = 12,870 fits).
pub const EXACT_BUDGET: u64 = 13_000;

/// What the caller optimises for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Best interconnect inside the set, then least damage to what stays free.
    #[default]
    Default,
    /// Least damage to what stays free first (bin packing), then interconnect.
    Pack,
    /// Most NUMA nodes (host bandwidth) first, then interconnect.
    Spread,
}

/// How candidate sets are scored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scoring {
    /// linkwise's objective (`docs/allocation.md`).
    #[default]
    Default,
    /// The prior art's pair weights summed over the set (SYS 10, NODE 20, PHB 30, PXB 40,
    /// PIX 50, plus 100 per NVLink lane), for comparisons on its own objective.
    PriorArtPairwise,
}

/// A request, with kubelet `GetPreferredAllocation` semantics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllocRequest {
    /// Devices that may be chosen.
    pub available: Vec<GpuId>,
    /// Devices that must be in the answer.
    pub must_include: Vec<GpuId>,
    /// How many devices to return.
    pub size: usize,
    /// What to optimise for.
    pub policy: Policy,
    /// How to score.
    pub scoring: Scoring,
    /// Preferred NUMA node.
    pub numa: Option<u32>,
    /// Preferred CPUs (a GPU is local when its CPU affinity meets them).
    pub cpus: Option<CpuSet>,
}

/// Why a request cannot be answered. Every variant is a property of the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AllocError {
    /// `size` is 0.
    #[error("requested 0 devices; ask for at least 1")]
    ZeroSize,
    /// Fewer available devices than requested.
    #[error("requested {requested} devices but only {available} are available")]
    Insufficient {
        /// Requested size.
        requested: usize,
        /// Available devices.
        available: usize,
    },
    /// More must-include devices than the size.
    #[error("{must} devices must be included but only {requested} were requested")]
    TooManyRequired {
        /// Must-include count.
        must: usize,
        /// Requested size.
        requested: usize,
    },
    /// A must-include device is not in the available list.
    #[error("must-include device {id} is not available")]
    RequiredUnavailable {
        /// The device.
        id: GpuId,
    },
    /// A device id is not in the topology.
    #[error("unknown device {id}")]
    UnknownDevice {
        /// The device.
        id: GpuId,
    },
    /// A device id appears twice in one list.
    #[error("device {id} is listed twice")]
    Duplicate {
        /// The device.
        id: GpuId,
    },
}

/// The components of a set's score (see the module docs for their order and meaning).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Score {
    /// NVLink islands spanned.
    pub islands: u32,
    /// Hosts spanned.
    pub hosts: u32,
    /// NUMA nodes spanned (GPUs with unknown NUMA count as one node).
    pub numa_nodes: u32,
    /// GPUs outside the requested NUMA node / CPU set (0 without a preference).
    pub numa_misses: u32,
    /// Weakest link on the best ring through the set, MB/s (0 for one GPU).
    pub bottleneck_mbps: u64,
    /// Sum of pairwise bandwidth inside the set, MB/s.
    pub total_mbps: u64,
    /// Bandwidth from the set to the GPUs that stay available, MB/s (reported, not ranked).
    pub cut_mbps: u64,
    /// Over the GPUs that stay available, the sum of each one's bandwidth to its best
    /// partner among them, MB/s.
    pub leftover_mbps: u64,
    /// Intact islands and hosts the set breaks into.
    pub opened: u32,
    /// The prior art's pairwise score of the set.
    pub prior_art_pairwise: u64,
}

impl Score {
    /// The comparison key under a policy and scoring mode: higher is better.
    pub fn key(&self, policy: Policy, scoring: Scoring) -> [i128; 8] {
        let (i, h, nm, b, t, l, c, o) = (
            -i128::from(self.islands),
            -i128::from(self.hosts),
            -i128::from(self.numa_misses),
            i128::from(self.bottleneck_mbps),
            i128::from(self.total_mbps),
            i128::from(self.leftover_mbps),
            -i128::from(self.cut_mbps),
            -i128::from(self.opened),
        );
        match (scoring, policy) {
            (Scoring::PriorArtPairwise, _) => {
                [i128::from(self.prior_art_pairwise), 0, 0, 0, 0, 0, 0, 0]
            }
            (Scoring::Default, Policy::Default) => [i, h, nm, b, t, l, c, o],
            (Scoring::Default, Policy::Pack) => [i, h, nm, o, l, c, b, t],
            (Scoring::Default, Policy::Spread) => {
                [h, i128::from(self.numa_nodes), nm, b, t, l, c, o]
            }
        }
    }

    /// The names of the key's components under a policy and scoring mode, in order.
    pub fn key_names(policy: Policy, scoring: Scoring) -> [&'static str; 8] {
        match (scoring, policy) {
            (Scoring::PriorArtPairwise, _) => {
                ["prior-art pairwise score", "", "", "", "", "", "", ""]
            }
            (_, Policy::Default) => [
                "islands",
                "hosts",
                "NUMA misses",
                "ring bottleneck",
                "total bandwidth",
                "what stays free",
                "torn bandwidth",
                "broken islands/hosts",
            ],
            (_, Policy::Pack) => [
                "islands",
                "hosts",
                "NUMA misses",
                "broken islands/hosts",
                "what stays free",
                "torn bandwidth",
                "ring bottleneck",
                "total bandwidth",
            ],
            (_, Policy::Spread) => [
                "hosts",
                "NUMA nodes",
                "NUMA misses",
                "ring bottleneck",
                "total bandwidth",
                "what stays free",
                "torn bandwidth",
                "broken islands/hosts",
            ],
        }
    }
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Allocation {
    /// The chosen devices, in topology order.
    pub devices: Vec<GpuId>,
    /// Their positions in the topology (matrix order).
    pub positions: Vec<usize>,
    /// The chosen set's score.
    pub score: Score,
    /// True when the search was exhaustive, so the answer is the optimum.
    pub exact: bool,
    /// True when the caller's time budget ([`Allocator::allocate_within`]) ended the
    /// search: the answer is the best set found after `evaluated` sets, and it is not
    /// proven to be the optimum (`exact` is false).
    pub timed_out: bool,
    /// How many candidate sets were scored.
    pub evaluated: u64,
    /// The best set that lost, with its score, when there was one.
    pub runner_up: Option<(Vec<usize>, Score)>,
}

/// Per-topology tables the search reads: built once, then requests are pure lookups.
#[derive(Debug, Clone)]
pub struct Allocator {
    ids: Vec<GpuId>,
    pos: BTreeMap<GpuId, usize>,
    labels: Vec<String>,
    n: usize,
    /// Pairwise bandwidth, MB/s, row-major.
    w: Vec<u64>,
    /// NVLink lanes per pair, row-major.
    lanes: Vec<u32>,
    /// The prior art's pair weight, row-major.
    prior_art: Vec<u64>,
    island: Vec<usize>,
    island_size: Vec<usize>,
    host: Vec<usize>,
    host_size: Vec<usize>,
    /// NUMA nodes a GPU is local to: its PCIe NUMA node and C2C / Fusion CPU nodes.
    numa: Vec<Vec<u32>>,
    cpus: Vec<Option<CpuSet>>,
    healthy: Vec<bool>,
    /// Per GPU, every other GPU by bandwidth, best first (ties: lower position).
    partners: Vec<Vec<usize>>,
    /// Twin classes: GPUs with the same attributes and the same bandwidth to every other
    /// GPU (swapping two twins changes no score), for the default and prior-art pairwise scoring.
    twins: Vec<usize>,
    twins_prior_art: Vec<usize>,
    budget: Option<u64>,
}

/// The prior art's weight of a PCIe level.
fn prior_art_pcie_weight(c: PathClass) -> u64 {
    match c {
        PathClass::Pix => 50,
        PathClass::Pxb => 40,
        PathClass::Phb => 30,
        PathClass::Node => 20,
        PathClass::Sys => 10,
        PathClass::Net => 0,
    }
}

// === impl Allocator ===

impl Allocator {
    /// Builds the tables for `topo`.
    pub fn new(topo: &Topology) -> Self {
        let m = topo.pair_matrix();
        let n = m.len();
        let mut w = vec![0; n * n];
        let mut lanes = vec![0; n * n];
        let mut prior_art = vec![0; n * n];
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    w[i * n + j] = m.bandwidth_mbps(i, j);
                    let l = m.cell(i, j).nvlink_lanes();
                    lanes[i * n + j] = l;
                    prior_art[i * n + j] =
                        prior_art_pcie_weight(m.pcie_class(i, j)) + 100 * u64::from(l);
                }
            }
        }
        let islands = topo.islands_of(&m);
        let ids: Vec<GpuId> = topo.gpus.iter().map(|g| g.id.clone()).collect();
        let pos: BTreeMap<GpuId, usize> = ids
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, g)| (g, i))
            .collect();
        let mut island = vec![0; n];
        let mut island_size = Vec::new();
        for is in &islands {
            for g in &is.gpus {
                if let Some(&p) = pos.get(g) {
                    island[p] = island_size.len();
                }
            }
            island_size.push(is.gpus.len());
        }
        let host_no: BTreeMap<&str, usize> = topo
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.name.as_str(), i))
            .collect();
        let host: Vec<usize> = topo
            .gpus
            .iter()
            .map(|g| host_no.get(g.host.as_str()).copied().unwrap_or(0))
            .collect();
        let mut host_size = vec![0; topo.hosts.len().max(1)];
        for &h in &host {
            host_size[h] += 1;
        }
        let mut numa: Vec<Vec<u32>> = topo
            .gpus
            .iter()
            .map(|g| g.numa_node.into_iter().collect())
            .collect();
        for l in &topo.links {
            if let (LinkKind::C2c { .. }, Endpoint::Gpu(g), Endpoint::Cpu { numa: Some(c), .. })
            | (LinkKind::C2c { .. }, Endpoint::Cpu { numa: Some(c), .. }, Endpoint::Gpu(g)) =
                (&l.kind, &l.a, &l.b)
                && let Some(&p) = pos.get(g)
                && !numa[p].contains(c)
            {
                numa[p].push(*c);
            }
        }
        let multi = topo.is_multi_host();
        let partners = (0..n)
            .map(|a| {
                let mut v: Vec<usize> = (0..n).filter(|&b| b != a).collect();
                v.sort_by(|&x, &y| w[a * n + y].cmp(&w[a * n + x]).then(x.cmp(&y)));
                v
            })
            .collect();
        Allocator {
            partners,
            labels: topo.gpus.iter().map(|g| g.label(multi)).collect(),
            pos,
            ids,
            n,
            w,
            lanes,
            prior_art,
            island,
            island_size,
            host,
            host_size,
            numa,
            cpus: topo.gpus.iter().map(|g| g.cpu_affinity.clone()).collect(),
            healthy: topo.gpus.iter().map(|g| g.health.is_healthy()).collect(),
            twins: Vec::new(),
            twins_prior_art: Vec::new(),
            budget: None,
        }
        .with_twins()
    }

    /// Computes the twin classes: `i` and `j` are twins when they share island, host,
    /// NUMA locality, CPU affinity and health, and `w(i, x) == w(j, x)` for every other
    /// `x` (for prior-art pairwise scoring also the pair weights). The relation is transitive, so one
    /// comparison against each class representative suffices.
    fn with_twins(mut self) -> Self {
        let n = self.n;
        let same_attrs = |a: usize, b: usize| {
            self.island[a] == self.island[b]
                && self.host[a] == self.host[b]
                && self.numa[a] == self.numa[b]
                && self.cpus[a] == self.cpus[b]
                && self.healthy[a] == self.healthy[b]
        };
        let rows_equal = |m: &[u64], a: usize, b: usize| {
            (0..n).all(|x| x == a || x == b || m[a * n + x] == m[b * n + x])
        };
        let classes = |prior_art: bool| -> Vec<usize> {
            let mut reps: Vec<usize> = Vec::new();
            (0..n)
                .map(|p| {
                    let found = reps.iter().position(|&r| {
                        same_attrs(r, p)
                            && rows_equal(&self.w, r, p)
                            && (!prior_art || rows_equal(&self.prior_art, r, p))
                    });
                    found.unwrap_or_else(|| {
                        reps.push(p);
                        reps.len() - 1
                    })
                })
                .collect()
        };
        self.twins = classes(false);
        self.twins_prior_art = classes(true);
        self
    }

    /// The same allocator with one limit on exhaustive enumeration of the whole request,
    /// replacing the default rule ([`EXACT_GPUS`] or [`LARGE_BUDGET`]); pools found by the
    /// decomposition keep [`EXACT_BUDGET`]. Tests use 0 to force the decomposition.
    pub fn with_budget(mut self, budget: u64) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Number of GPUs in the topology.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True when the topology has no GPU.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// GPU ids in position order.
    pub fn ids(&self) -> &[GpuId] {
        &self.ids
    }

    /// The display label (`GPU3`) of a position.
    pub fn label(&self, p: usize) -> &str {
        self.labels.get(p).map_or("?", String::as_str)
    }

    /// The position of a GPU id.
    pub fn position(&self, id: &GpuId) -> Option<usize> {
        self.pos.get(id).copied()
    }

    /// Every healthy GPU: the default `available` list.
    pub fn healthy(&self) -> Vec<GpuId> {
        (0..self.n)
            .filter(|&p| self.healthy[p])
            .map(|p| self.ids[p].clone())
            .collect()
    }

    fn w(&self, a: usize, b: usize) -> u64 {
        self.w[a * self.n + b]
    }

    fn at<T: Copy + Default>(&self, m: &[T], a: usize, b: usize) -> T {
        if a < self.n && b < self.n {
            m[a * self.n + b]
        } else {
            T::default()
        }
    }

    /// NVLink lanes between two positions (0 for positions out of range).
    pub fn lanes(&self, a: usize, b: usize) -> u32 {
        self.at(&self.lanes, a, b)
    }

    /// The prior art's pair weight between two positions (0 out of range).
    pub fn prior_art_weight(&self, a: usize, b: usize) -> u64 {
        self.at(&self.prior_art, a, b)
    }

    /// Bandwidth between two positions, MB/s (0 out of range).
    pub fn bandwidth(&self, a: usize, b: usize) -> u64 {
        self.at(&self.w, a, b)
    }

    fn positions(&self, ids: &[GpuId]) -> Result<Vec<usize>, AllocError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let p = self
                .position(id)
                .ok_or_else(|| AllocError::UnknownDevice { id: id.clone() })?;
            if out.contains(&p) {
                return Err(AllocError::Duplicate { id: id.clone() });
            }
            out.push(p);
        }
        Ok(out)
    }

    /// Answers a request. Infeasible requests are errors; a success always holds exactly
    /// `size` distinct available devices including every must-include device. No time
    /// limit: see [`Allocator::allocate_within`] for one.
    pub fn allocate(&self, req: &AllocRequest) -> Result<Allocation, AllocError> {
        self.answer(req, None)
    }

    /// Answers a request within a time budget. This crate has no clock: the caller passes
    /// `out_of_time`, a probe that says when the budget is spent (the CLI and the device
    /// plugin compare `Instant::now()` with a deadline; tests count calls).
    ///
    /// The probe is asked before each candidate set is scored in the parts of the search
    /// that are not exhaustive — greedy growth and swaps — and before each further pool
    /// of a decomposition; once it says yes, growth finishes without scoring (the GPU
    /// with the most bandwidth to the set so far), swaps stop, and the best set so far is
    /// the answer, with [`Allocation::timed_out`] set and `exact` false. It is never asked
    /// during an exhaustive enumeration, so every answer that is exact without a budget
    /// (every request on a node of up to [`EXACT_GPUS`] GPUs, every search of up to
    /// [`EXACT_BUDGET`] candidate sets) is the same set, exact, whatever the probe says.
    /// The answer is as valid as [`Allocator::allocate`]'s.
    pub fn allocate_within(
        &self,
        req: &AllocRequest,
        out_of_time: &dyn Fn() -> bool,
    ) -> Result<Allocation, AllocError> {
        self.answer(req, Some(out_of_time))
    }

    fn answer(
        &self,
        req: &AllocRequest,
        out_of_time: Option<&dyn Fn() -> bool>,
    ) -> Result<Allocation, AllocError> {
        if req.size == 0 {
            return Err(AllocError::ZeroSize);
        }
        let mut available = self.positions(&req.available)?;
        let must = self.positions(&req.must_include)?;
        if must.len() > req.size {
            return Err(AllocError::TooManyRequired {
                must: must.len(),
                requested: req.size,
            });
        }
        for (&p, id) in must.iter().zip(&req.must_include) {
            if !available.contains(&p) {
                return Err(AllocError::RequiredUnavailable { id: id.clone() });
            }
        }
        if available.len() < req.size {
            return Err(AllocError::Insufficient {
                requested: req.size,
                available: available.len(),
            });
        }
        available.sort_unstable();
        let ctx = search::Ctx::new(self, req, &available, &must, out_of_time);
        let mut out = ctx.solve();
        out.positions.sort_unstable();
        out.devices = out.positions.iter().map(|&p| self.ids[p].clone()).collect();
        debug_assert_eq!(out.positions.len(), req.size);
        Ok(out)
    }

    /// Scores a given set against an availability (for explanations and tests).
    /// Positions out of range are ignored.
    pub fn score(&self, set: &[usize], available: &[usize], req: &AllocRequest) -> Score {
        let keep = |v: &[usize]| {
            v.iter()
                .copied()
                .filter(|&p| p < self.n)
                .collect::<Vec<_>>()
        };
        search::Ctx::new(self, req, &keep(available), &[], None).score(&keep(set))
    }

    /// A sentence explaining an allocation: its components and why it beat the runner-up.
    pub fn explain(&self, a: &Allocation, req: &AllocRequest) -> String {
        let names = |ps: &[usize]| {
            ps.iter()
                .map(|&p| self.label(p))
                .collect::<Vec<_>>()
                .join(",")
        };
        let s = &a.score;
        let gb = |x: u64| format!("{:.1} GB/s", x as f64 / 1000.0);
        let how = if a.timed_out {
            format!(
                "stopped at the time budget after {} candidate sets scored: the best set found, optimum not proven",
                a.evaluated
            )
        } else {
            format!(
                "{} of {} candidate sets scored{}",
                a.evaluated,
                if a.exact { "all" } else { "a decomposition's" },
                if a.exact { ", exact optimum" } else { "" },
            )
        };
        let mut out = format!(
            "chose {} ({how}): {} NVLink island{}, {} host{}, ",
            names(&a.positions),
            s.islands,
            if s.islands == 1 { "" } else { "s" },
            s.hosts,
            if s.hosts == 1 { "" } else { "s" },
        );
        if req.numa.is_some() || req.cpus.is_some() {
            out.push_str(&format!(
                "{} GPU(s) outside the preferred NUMA node/CPUs, ",
                s.numa_misses
            ));
        }
        if a.positions.len() > 1 {
            out.push_str(&format!(
                "ring bottleneck {}, total pairwise {}, ",
                gb(s.bottleneck_mbps),
                gb(s.total_mbps)
            ));
        }
        out.push_str(&format!(
            "leaves the free GPUs {} of best-partner bandwidth ({} torn from the set), breaks {} intact island(s)/host(s)",
            gb(s.leftover_mbps),
            gb(s.cut_mbps),
            s.opened
        ));
        if req.scoring == Scoring::PriorArtPairwise {
            out.push_str(&format!(
                "; prior-art pairwise score {}",
                s.prior_art_pairwise
            ));
        }
        if let Some((set, r)) = &a.runner_up {
            let (ka, kb) = (
                s.key(req.policy, req.scoring),
                r.key(req.policy, req.scoring),
            );
            let names_c = Score::key_names(req.policy, req.scoring);
            let why = ka
                .iter()
                .zip(kb.iter())
                .position(|(x, y)| x != y)
                .map_or_else(
                    || "the tie-break (equal score, lower GPU numbers)".to_string(),
                    |i| names_c[i].to_string(),
                );
            out.push_str(&format!("; runner-up {} lost on {}", names(set), why));
        }
        out
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Policy::Default => "default",
            Policy::Pack => "pack",
            Policy::Spread => "spread",
        })
    }
}
