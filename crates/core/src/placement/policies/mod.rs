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

/// For a sharing pod on node `n` (fragment `before`): FGD's score on each GPU that fits
/// and the best GPU — highest score, then highest `tie(free milli of the GPU)`, then the
/// first index — with its `tie` value; `None` when no GPU fits. `scratch` is working
/// space.
pub(crate) fn best_share_gpu(
    eval: &mut FragEval,
    n: usize,
    node: &NodeState,
    pod: &PodSpec,
    before: f64,
    scratch: &mut Vec<u32>,
    tie: impl Fn(u32) -> i64,
) -> Option<(i64, u32, i64)> {
    let cpu_after = node.cpu_free.saturating_sub(pod.cpu_milli);
    let mut best: Option<(i64, u32, i64)> = None;
    for (g, &f) in (0u32..).zip(&node.gpu_free) {
        if f < pod.gpu_milli {
            continue;
        }
        scratch.clear();
        scratch.extend_from_slice(&node.gpu_free);
        scratch[g as usize] -= pod.gpu_milli;
        let s = fgd_score(before - eval.frag(n, cpu_after, scratch));
        let t = tie(f);
        if best.is_none_or(|(bs, _, bt)| s > bs || (s == bs && t > bt)) {
            best = Some((s, g, t));
        }
    }
    best
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

/// The most pod shapes [`ScoreCache`] keeps per node; pods of other shapes are scored
/// afresh.
const CACHE_SHAPES: usize = 512;

/// One cached score: the node's state it was computed for, and the result.
#[derive(Debug, Clone)]
struct Cached<R> {
    cpu_free: u64,
    gpu_free: Vec<u32>,
    result: R,
}

/// A policy's per-node results by pod shape (CPU, per-GPU milli, GPU count), kept while
/// the node's free CPU and free milli per GPU stay the same. A node changes only when a pod
/// lands on it, so between two pods of a shape almost every node's result still holds:
/// FGD's fragment differences are computed once per node state rather than once per pod.
/// The result must depend on nothing but the node's free CPU and GPUs and the pod's shape
/// (feasibility, which also reads memory and the GPU model, is checked apart, every time).
#[derive(Debug, Clone)]
pub(crate) struct ScoreCache<R> {
    shapes: HashMap<(u64, u32, u32), usize, BuildHasherDefault<FastHasher>>,
    nodes: Vec<Vec<Option<Cached<R>>>>,
}

impl<R: Clone> ScoreCache<R> {
    pub(crate) fn new() -> Self {
        ScoreCache {
            shapes: HashMap::default(),
            nodes: Vec::new(),
        }
    }

    /// The pod's shape slot (`None` past [`CACHE_SHAPES`] shapes); resets the cache when
    /// the node count changed (another cluster).
    pub(crate) fn shape(&mut self, nodes: usize, pod: &PodSpec) -> Option<usize> {
        if self.nodes.len() != nodes {
            self.nodes = vec![Vec::new(); nodes];
            self.shapes.clear();
        }
        let key = (pod.cpu_milli, pod.gpu_milli, pod.num_gpu);
        let next = self.shapes.len();
        if next >= CACHE_SHAPES && !self.shapes.contains_key(&key) {
            return None;
        }
        Some(*self.shapes.entry(key).or_insert(next))
    }

    /// Node `n`'s result for `shape`, when computed for its current state.
    pub(crate) fn get(&self, n: usize, shape: Option<usize>, node: &NodeState) -> Option<&R> {
        let c = self.nodes.get(n)?.get(shape?)?.as_ref()?;
        (c.cpu_free == node.cpu_free && c.gpu_free == node.gpu_free).then_some(&c.result)
    }

    /// Keeps node `n`'s result for `shape` in its current state.
    pub(crate) fn put(&mut self, n: usize, shape: Option<usize>, node: &NodeState, result: R) {
        let (Some(shape), Some(slots)) = (shape, self.nodes.get_mut(n)) else {
            return;
        };
        if slots.len() <= shape {
            slots.resize(shape + 1, None);
        }
        match &mut slots[shape] {
            Some(c) => {
                c.cpu_free = node.cpu_free;
                c.gpu_free.clear();
                c.gpu_free.extend_from_slice(&node.gpu_free);
                c.result = result;
            }
            slot => {
                *slot = Some(Cached {
                    cpu_free: node.cpu_free,
                    gpu_free: node.gpu_free.clone(),
                    result,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::frag::TypicalShape;
    use crate::placement::{NodeSpec, Placement};
    use std::collections::BTreeSet;

    fn pod(i: u64, rng: &mut Rng) -> PodSpec {
        let (num_gpu, gpu_milli) = match rng.below(4) {
            0 => (
                1,
                [230u32, 470, 810][usize::try_from(rng.below(3)).unwrap_or(0)],
            ),
            1 => (1, GPU_MILLI),
            2 => (2, GPU_MILLI),
            _ => (0, 0),
        };
        PodSpec {
            name: format!("p{i}"),
            cpu_milli: 1000 * (1 + rng.below(12)),
            memory_mib: 1024,
            num_gpu,
            gpu_milli,
            gpu_spec: BTreeSet::new(),
        }
    }

    /// The regression the score cache guards: a policy that keeps results between pods
    /// decides exactly as one that scores every node afresh — also when a node's state is
    /// changed behind the policy's back (tests and callers may edit `Cluster::nodes`).
    #[test]
    fn cached_scores_decide_as_fresh_ones() {
        let shape = |cpu: u64, milli: u32, num: u32, p: f64| TypicalShape {
            cpu_milli: cpu,
            gpu_milli: milli,
            num_gpu: num,
            gpu_spec: BTreeSet::new(),
            p,
        };
        let typical = TypicalPods {
            shapes: vec![
                shape(4000, 470, 1, 0.4),
                shape(8000, GPU_MILLI, 1, 0.4),
                shape(8000, GPU_MILLI, 2, 0.2),
            ],
        };
        let specs: Vec<NodeSpec> = (0..12)
            .map(|i| NodeSpec {
                name: format!("n{i}"),
                cpu_milli: if i % 3 == 0 { 32_000 } else { 96_000 },
                memory_mib: 262_144,
                gpus: if i % 2 == 0 { 8 } else { 2 },
                model: Some("G2".into()),
                islands: if i % 4 == 0 {
                    vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7]]
                } else {
                    Vec::new()
                },
            })
            .collect();
        for name in ["fgd", "default"] {
            let mut cached = by_name(name, &typical).unwrap();
            let mut cluster = Cluster::new(specs.clone());
            let mut rng = Rng::new(3);
            let mut draw = Rng::new(11);
            let mut placed = 0;
            for i in 0..200 {
                if i % 37 == 36 {
                    // Behind the policy's back: free one node entirely.
                    let n = usize::try_from(draw.below(12)).unwrap_or(0);
                    let node = &mut cluster.nodes[n];
                    node.cpu_free = node.spec.cpu_milli;
                    node.gpu_free.iter_mut().for_each(|f| *f = GPU_MILLI);
                }
                let p = pod(i, &mut draw);
                let mut fresh = by_name(name, &typical).unwrap();
                // Same node order: the fresh policy draws it from the same stream.
                let mut rng_fresh = Rng::new(3);
                let want: Option<Placement> = fresh.place(&cluster, &p, &mut rng_fresh);
                let got = cached.place(&cluster, &p, &mut rng);
                assert_eq!(got, want, "{name}, pod {i} ({p:?})");
                if let Some(pl) = got {
                    cluster.apply(&p, &pl);
                    placed += 1;
                }
            }
            assert!(placed > 50, "{name}: only {placed} pods placed");
        }
    }
}
