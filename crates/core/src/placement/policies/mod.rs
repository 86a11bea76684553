//! Placement policies: the FGD paper's baselines and linkwise's default.
//!
//! The baselines follow the paper's simulator (hkust-adsl/kubernetes-scheduler-simulator,
//! `pkg/simulator/plugin/*_score.go` with the flags of `experiments/run_scripts`): every
//! policy filters the nodes that fit ([`NodeState::fits`]), scores each with one score
//! plugin (integer scores, as the Go plugins return them), takes the highest score and
//! breaks ties uniformly at random (kube-scheduler's `selectHost`), then picks the GPUs
//! on the chosen node with its `-gpusel` method. `docs/placement.md` has the details.

mod baselines;
mod linkwise;

pub use baselines::{
    BestFit, DotProd, Fgd, GpuClustering, GpuPacking, RandomPolicy, bestfit_score,
    clustering_score, dotprod_score, fgd_score, packing_score,
};
pub use linkwise::LinkwiseDefault;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::frag::{FragIndex, TypicalPods};
use super::{Cluster, GPU_MILLI, NodeState, PodSpec, Policy, Rng};

/// Policy names accepted by [`by_name`].
pub const NAMES: &[&str] = &[
    "random",
    "dotprod",
    "gpu-clustering",
    "gpu-packing",
    "bestfit",
    "fgd",
    "default",
];

/// The policy called `name` (see [`NAMES`]); `typical` is the target workload that FGD
/// and `default` use. `None` for an unknown name.
pub fn by_name(name: &str, typical: &TypicalPods) -> Option<Box<dyn Policy>> {
    Some(match name {
        "random" => Box::new(RandomPolicy),
        "dotprod" => Box::new(DotProd::default()),
        "gpu-clustering" => Box::new(GpuClustering::default()),
        "gpu-packing" => Box::new(GpuPacking::default()),
        "bestfit" => Box::new(BestFit::default()),
        "fgd" => Box::new(Fgd::new(typical)),
        "default" => Box::new(LinkwiseDefault::new(typical)),
        _ => return None,
    })
}

// === helpers shared by the policies ===

/// Whether `pod` shares one GPU (a fraction of a GPU).
pub(crate) fn is_sharing(pod: &PodSpec) -> bool {
    pod.num_gpu == 1 && pod.gpu_milli > 0 && pod.gpu_milli < GPU_MILLI
}

/// Whether `pod` asks for any GPU.
pub(crate) fn wants_gpu(pod: &PodSpec) -> bool {
    pod.num_gpu > 0 && pod.gpu_milli > 0
}

/// kube-scheduler's `selectHost` as the paper's simulator patches it
/// (mental2008/kubernetes v1.20.5-minor): the highest score wins and ties go to the node
/// whose name sorts first. The simulator prefixes node names with a random permutation
/// (`%04d-`, per seed), so ties go to the first node in a random node order that is fixed
/// for the whole run; [`NodeOrder`] is that order.
#[derive(Debug)]
pub(crate) struct MaxPicker<S, T> {
    best: Option<(S, u64, T)>,
}

impl<S: PartialOrd, T> MaxPicker<S, T> {
    pub(crate) fn new() -> Self {
        MaxPicker { best: None }
    }

    /// Offers a candidate; among equal scores the lowest `tie` wins.
    pub(crate) fn offer(&mut self, score: S, tie: u64, item: T) {
        let better = match &self.best {
            None => true,
            Some((b, bt, _)) => score > *b || (score == *b && tie < *bt),
        };
        if better {
            self.best = Some((score, tie, item));
        }
    }

    pub(crate) fn into_best(self) -> Option<T> {
        self.best.map(|(_, _, t)| t)
    }
}

/// A random node order drawn once per run (the simulator's node-name prefixes): the
/// tie-break of [`MaxPicker`]. Redrawn when the node count changes.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeOrder {
    rank: Vec<u64>,
}

impl NodeOrder {
    pub(crate) fn prepare(&mut self, nodes: usize, rng: &mut Rng) {
        if self.rank.len() != nodes {
            self.rank = (0..nodes as u64).collect();
            rng.shuffle(&mut self.rank);
        }
    }

    pub(crate) fn rank(&self, node: usize) -> u64 {
        self.rank.get(node).copied().unwrap_or(u64::MAX)
    }
}

/// Nodes that fit the pod, in order.
pub(crate) fn feasible<'a>(
    cluster: &'a Cluster,
    pod: &'a PodSpec,
) -> impl Iterator<Item = (usize, &'a NodeState)> + 'a {
    cluster
        .nodes
        .iter()
        .enumerate()
        .filter(move |(_, n)| n.fits(pod))
}

/// Total free milli-GPU of a node.
pub(crate) fn free_total(node: &NodeState) -> u64 {
    node.gpu_free.iter().map(|&f| u64::from(f)).sum()
}

/// `AllocateExclusiveGpuId`: the first `num_gpu` GPUs (by index) with the per-GPU share
/// free; whole GPUs for whole-GPU pods.
pub(crate) fn first_gpus(node: &NodeState, pod: &PodSpec) -> Vec<u32> {
    (0u32..)
        .zip(&node.gpu_free)
        .filter(|&(_, &f)| f >= pod.gpu_milli)
        .map(|(g, _)| g)
        .take(pod.num_gpu as usize)
        .collect()
}

/// `-gpusel best`: a sharing pod goes to the GPU with the least free milli that fits
/// (first index on ties); other GPU pods take the first free GPUs.
pub(crate) fn gpus_best(node: &NodeState, pod: &PodSpec) -> Vec<u32> {
    if !wants_gpu(pod) {
        return Vec::new();
    }
    if !is_sharing(pod) {
        return first_gpus(node, pod);
    }
    let mut best: Option<(u32, u32)> = None;
    for (g, &f) in (0u32..).zip(&node.gpu_free) {
        if f >= pod.gpu_milli && best.is_none_or(|(_, bf)| f < bf) {
            best = Some((g, f));
        }
    }
    best.map(|(g, _)| vec![g]).unwrap_or_default()
}

/// `-gpusel random`: a sharing pod goes to a uniformly random GPU that fits; other GPU
/// pods take the first free GPUs.
pub(crate) fn gpus_random(node: &NodeState, pod: &PodSpec, rng: &mut Rng) -> Vec<u32> {
    if !wants_gpu(pod) {
        return Vec::new();
    }
    if !is_sharing(pod) {
        return first_gpus(node, pod);
    }
    let mut pick = None;
    let mut seen = 0u64;
    for (g, &f) in (0u32..).zip(&node.gpu_free) {
        if f >= pod.gpu_milli {
            seen += 1;
            if rng.below(seen) == 0 {
                pick = Some(g);
            }
        }
    }
    pick.map(|g| vec![g]).unwrap_or_default()
}

/// The free milli per GPU after `NodeResource.Sub`: the pod's share is taken from the
/// GPUs with the least free milli that fit (used only for what-if fragmentation; the
/// multiset is what matters).
pub(crate) fn sub_packed(gpu_free: &[u32], pod: &PodSpec, out: &mut Vec<u32>) {
    out.clear();
    out.extend_from_slice(gpu_free);
    if !wants_gpu(pod) {
        return;
    }
    let mut order: Vec<usize> = (0..out.len()).collect();
    order.sort_by_key(|&i| out[i]);
    let mut need = pod.num_gpu;
    for i in order {
        if need == 0 {
            break;
        }
        if out[i] >= pod.gpu_milli {
            out[i] -= pod.gpu_milli;
            need -= 1;
        }
    }
}

/// FNV-style fast hasher for the fragmentation memo (keys are small integer tuples).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct StateKey {
    class: usize,
    cpu: u64,
    gpus: [u16; 8],
    n: usize,
}

const MEMO_LIMIT: usize = 4_000_000;

/// Fragmentation of hypothetical node states, memoised on (GPU model class, free CPU,
/// sorted free milli per GPU): nodes of the same type in the same state are common.
#[derive(Debug, Clone)]
pub(crate) struct FragEval {
    index: FragIndex,
    memo: HashMap<StateKey, f64, BuildHasherDefault<FastHasher>>,
    classes: Vec<usize>,
}

impl FragEval {
    pub(crate) fn new(typical: &TypicalPods) -> Self {
        FragEval {
            index: FragIndex::new(typical),
            memo: HashMap::default(),
            classes: Vec::new(),
        }
    }

    /// Caches each node's model class (once per cluster shape).
    pub(crate) fn prepare(&mut self, cluster: &Cluster) {
        if self.classes.len() != cluster.nodes.len() {
            self.classes = cluster
                .nodes
                .iter()
                .map(|n| self.index.access_class(n.spec.model.as_deref()))
                .collect();
        }
    }

    /// The fragment of node `n` (for its model) with this free CPU and GPUs.
    pub(crate) fn frag(&mut self, n: usize, cpu_free: u64, gpu_free: &[u32]) -> f64 {
        let class = self.classes.get(n).copied().unwrap_or(0);
        if gpu_free.len() > 8 {
            return self.index.frag(class, cpu_free, gpu_free);
        }
        let mut gpus = [0u16; 8];
        for (slot, &f) in gpus.iter_mut().zip(gpu_free) {
            *slot = u16::try_from(f).unwrap_or(u16::MAX);
        }
        gpus[..gpu_free.len()].sort_unstable();
        let key = StateKey {
            class,
            cpu: cpu_free,
            gpus,
            n: gpu_free.len(),
        };
        if let Some(&v) = self.memo.get(&key) {
            return v;
        }
        let v = self.index.frag(class, cpu_free, gpu_free);
        if self.memo.len() >= MEMO_LIMIT {
            self.memo.clear();
        }
        self.memo.insert(key, v);
        v
    }
}
