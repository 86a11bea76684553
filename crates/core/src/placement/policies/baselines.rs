//! The six baselines of the FGD paper, as its simulator scores them.

use std::collections::BTreeMap;

use super::super::frag::TypicalPods;
use super::super::{Cluster, GPU_MILLI, NodeState, Placement, PodSpec, Policy, Rng};
use super::{
    FragEval, MaxPicker, NodeOrder, ScoreCache, best_share_gpu, feasible, first_gpus, free_total,
    gpus_best, gpus_random, is_sharing, sub_packed, wants_gpu,
};

/// kube-scheduler's maximum node score.
const MAX_SCORE: i64 = 100;
/// `MaxSpecCpu`, milli-CPU (normalises CPU in DotProd and BestFit).
const MAX_SPEC_CPU: f64 = 128_000.0;
/// `MaxSpecGpu`, milli-GPU (normalises GPU in DotProd, BestFit and GpuClustering).
const MAX_SPEC_GPU: f64 = 8_000.0;

/// [`MAX_SPEC_GPU`] as an integer (GpuClustering's integer arithmetic).
const MAX_SPEC_GPU_MILLI: i64 = 8_000;

/// Truncates a score the way Go's `int64(float64)` does (toward zero).
#[allow(clippy::cast_possible_truncation)] // scores are within 0..=100 (±small)
fn trunc(x: f64) -> i64 {
    x.trunc() as i64
}

/// The placement of the score-only baselines (DotProd, BestFit, GpuPacking,
/// GpuClustering): among the nodes that fit, the highest `score(index, node)` wins, ties
/// go to the first node in the run's random node `order`, and the GPUs are picked with
/// `-gpusel best`.
fn place_by_score(
    order: &mut NodeOrder,
    cluster: &Cluster,
    pod: &PodSpec,
    rng: &mut Rng,
    mut score: impl FnMut(usize, &NodeState) -> i64,
) -> Option<Placement> {
    order.prepare(cluster.nodes.len(), rng);
    let mut pick = MaxPicker::new();
    for (n, node) in feasible(cluster, pod) {
        pick.offer(score(n, node), order.rank(n), n);
    }
    let n = pick.into_best()?;
    Some(Placement {
        node: n,
        gpus: gpus_best(&cluster.nodes[n], pod),
    })
}

/// `-Random 1000 -gpusel random`: a uniformly random node that fits.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomPolicy;

impl Policy for RandomPolicy {
    fn name(&self) -> &'static str {
        "random"
    }

    fn place(&mut self, cluster: &Cluster, pod: &PodSpec, rng: &mut Rng) -> Option<Placement> {
        let mut pick = MaxPicker::new();
        // `RandomScore`: one uniformly random feasible node scores 100, the rest 0.
        for (n, _) in feasible(cluster, pod) {
            pick.offer(0i64, rng.next_u64(), n);
        }
        let n = pick.into_best()?;
        Some(Placement {
            node: n,
            gpus: gpus_random(&cluster.nodes[n], pod, rng),
        })
    }
}

/// `-DotProd 1000 -gpusel best -dimext merge -norm max` (Tetris): score
/// `100 · (1 − (free·req)/2)` with free = (CPU, total GPU milli) left and req the pod's,
/// each normalised by the largest node (128 CPUs, 8 GPUs). Prefers the node whose
/// leftover aligns least with the request: the fullest node.
#[derive(Debug, Clone, Default)]
pub struct DotProd {
    order: NodeOrder,
}

/// The DotProd score of a node with `cpu_free`, `gpu_free_total` for `pod`.
pub fn dotprod_score(cpu_free: u64, gpu_free_total: u64, pod: &PodSpec) -> i64 {
    let dot = (cpu_free as f64 / MAX_SPEC_CPU) * (pod.cpu_milli as f64 / MAX_SPEC_CPU)
        + (gpu_free_total as f64 / MAX_SPEC_GPU) * (pod.gpu_request_milli() as f64 / MAX_SPEC_GPU);
    trunc(MAX_SCORE as f64 * (1.0 - dot / 2.0))
}

impl Policy for DotProd {
    fn name(&self) -> &'static str {
        "dotprod"
    }

    fn place(&mut self, cluster: &Cluster, pod: &PodSpec, rng: &mut Rng) -> Option<Placement> {
        place_by_score(&mut self.order, cluster, pod, rng, |_, node| {
            dotprod_score(node.cpu_free, free_total(node), pod)
        })
    }
}

/// `-BestFit 1000` (GPU selection: best): score
/// `100 · (1 − ½·(cpu_free − cpu)/128 CPUs − ½·(gpu_free − gpu)/8 GPUs)`, i.e. the node
/// left with the least (normalised) CPU and GPU.
#[derive(Debug, Clone, Default)]
pub struct BestFit {
    order: NodeOrder,
}

/// The BestFit score of a node with `cpu_free`, `gpu_free_total` for `pod`.
pub fn bestfit_score(cpu_free: u64, gpu_free_total: u64, pod: &PodSpec) -> i64 {
    let cpu_left = cpu_free.saturating_sub(pod.cpu_milli) as f64;
    let gpu_left = gpu_free_total.saturating_sub(pod.gpu_request_milli()) as f64;
    let s = 0.5 * cpu_left / MAX_SPEC_CPU + 0.5 * gpu_left / MAX_SPEC_GPU;
    trunc((1.0 - s) * MAX_SCORE as f64)
}

impl Policy for BestFit {
    fn name(&self) -> &'static str {
        "bestfit"
    }

    fn place(&mut self, cluster: &Cluster, pod: &PodSpec, rng: &mut Rng) -> Option<Placement> {
        // The plugin min-max normalises scores across nodes; with scores in 0..=100 that
        // keeps the set of maxima, which is all the choice depends on.
        place_by_score(&mut self.order, cluster, pod, rng, |_, node| {
            bestfit_score(node.cpu_free, free_total(node), pod)
        })
    }
}

/// `-GpuPacking 1000` (GPU selection: best): prefer (1) GPUs already shared, then (2)
/// free GPUs on a node already in use, then (3) an idle node, fewer GPUs first.
#[derive(Debug, Clone, Default)]
pub struct GpuPacking {
    order: NodeOrder,
}

/// The GpuPacking score of `gpu_free` (per GPU) for `pod` (`getPackingScore`).
pub fn packing_score(gpu_free: &[u32], pod: &PodSpec) -> i64 {
    if !wants_gpu(pod) {
        return 0;
    }
    let gpus = gpu_free.len() as i64;
    let fully_free = gpu_free.iter().filter(|&&f| f == GPU_MILLI).count() as i64;
    if fully_free == gpus {
        return (MAX_SCORE / 3 - fully_free).max(fully_free);
    }
    let mut order: Vec<usize> = (0..gpu_free.len()).collect();
    order.sort_by_key(|&i| gpu_free[i]); // stable: index order among equals
    let mut need = pod.num_gpu;
    let mut free_used = 0i64;
    let mut used: Vec<usize> = Vec::new();
    for i in order {
        if need == 0 {
            break;
        }
        if pod.gpu_milli <= gpu_free[i] {
            need -= 1;
            used.push(i);
            if gpu_free[i] == GPU_MILLI {
                free_used += 1;
            }
        }
    }
    if need != 0 {
        return 0;
    }
    if free_used > 0 {
        return (MAX_SCORE / 2 - free_used).max(MAX_SCORE / 3);
    }
    let ratio: i64 = used
        .iter()
        .map(|&i| i64::from(gpu_free[i]) * 100 / i64::from(GPU_MILLI))
        .sum();
    (MAX_SCORE - ratio / 10).max(MAX_SCORE / 2)
}

impl Policy for GpuPacking {
    fn name(&self) -> &'static str {
        "gpu-packing"
    }

    fn place(&mut self, cluster: &Cluster, pod: &PodSpec, rng: &mut Rng) -> Option<Placement> {
        place_by_score(&mut self.order, cluster, pod, rng, |_, node| {
            packing_score(&node.gpu_free, pod)
        })
    }
}

/// `-GpuClustering 1000` (GPU selection: best): keep pods of the same GPU kind
/// (`share-gpu`, `1-gpu`, `2-gpu`, ...) together. Score bands: node hosting only that
/// kind (75..100], hosting it among others (50..75], idle (25..50], others [0..25], each
/// band ordered by how full the node's GPUs are.
///
/// The kinds hosted per node are the policy's own record of its placements; a node seen
/// untouched (all CPU and GPU free) is reset, so one value can replay several runs.
#[derive(Debug, Clone, Default)]
pub struct GpuClustering {
    kinds: Vec<BTreeMap<u32, u32>>,
    order: NodeOrder,
}

/// The pod's GPU kind: `None` for CPU-only, 0 for sharing, else the GPU count.
fn gpu_kind(pod: &PodSpec) -> Option<u32> {
    if !wants_gpu(pod) {
        None
    } else if is_sharing(pod) {
        Some(0)
    } else {
        Some(pod.num_gpu)
    }
}

/// The GpuClustering score of a node hosting `kinds` with `gpu_free_total` left.
pub fn clustering_score(kinds: &BTreeMap<u32, u32>, gpu_free_total: u64, kind: u32) -> i64 {
    let quarter = MAX_SCORE / 4;
    let used = MAX_SPEC_GPU_MILLI - i64::try_from(gpu_free_total).unwrap_or(i64::MAX);
    let base = quarter * used / MAX_SPEC_GPU_MILLI;
    if kinds.get(&kind).is_some_and(|&c| c > 0) {
        if kinds.len() == 1 {
            base + MAX_SCORE * 3 / 4
        } else {
            base + MAX_SCORE * 2 / 4
        }
    } else if kinds.is_empty() {
        base + MAX_SCORE / 4
    } else {
        base
    }
}

impl Policy for GpuClustering {
    fn name(&self) -> &'static str {
        "gpu-clustering"
    }

    fn place(&mut self, cluster: &Cluster, pod: &PodSpec, rng: &mut Rng) -> Option<Placement> {
        self.kinds.resize_with(cluster.nodes.len(), BTreeMap::new);
        for (k, node) in self.kinds.iter_mut().zip(&cluster.nodes) {
            if !k.is_empty()
                && node.cpu_free == node.spec.cpu_milli
                && node.gpu_free.iter().all(|&f| f == GPU_MILLI)
            {
                k.clear();
            }
        }
        let kind = gpu_kind(pod);
        let kinds = &self.kinds;
        let placed = place_by_score(&mut self.order, cluster, pod, rng, |n, node| match kind {
            None => 0,
            Some(kind) => clustering_score(&kinds[n], free_total(node), kind),
        })?;
        if let Some(kind) = kind {
            *self.kinds[placed.node].entry(kind).or_default() += 1;
        }
        Some(placed)
    }
}

/// `-FGD 1000 -gpusel FGD -dimext share -norm max`: fragmentation gradient descent. The
/// score of a node is `int(100 · sigmoid((frag_before − frag_after)/1000))` with frag the
/// node's fragment against the typical pods ([`super::super::frag::node_frag`]); a
/// sharing pod tries each GPU that fits and keeps the first best one, other pods take
/// the first free GPUs.
#[derive(Debug, Clone)]
pub struct Fgd {
    eval: FragEval,
    order: NodeOrder,
    scratch: Vec<u32>,
    /// Per node and pod shape: the score and, for a sharing pod, the GPU.
    cache: ScoreCache<(i64, Option<u32>)>,
}

impl Fgd {
    /// FGD against this target workload.
    pub fn new(typical: &TypicalPods) -> Self {
        Fgd {
            eval: FragEval::new(typical),
            order: NodeOrder::default(),
            scratch: Vec::new(),
            cache: ScoreCache::new(),
        }
    }
}

/// FGD's integer score of a fragmentation decrease `delta` (milli-GPU).
pub fn fgd_score(delta: f64) -> i64 {
    trunc(MAX_SCORE as f64 / (1.0 + (-delta / 1000.0).exp()))
}

impl Policy for Fgd {
    fn name(&self) -> &'static str {
        "fgd"
    }

    fn place(&mut self, cluster: &Cluster, pod: &PodSpec, rng: &mut Rng) -> Option<Placement> {
        self.eval.prepare(cluster);
        self.order.prepare(cluster.nodes.len(), rng);
        let shape = self.cache.shape(cluster.nodes.len(), pod);
        let mut pick = MaxPicker::new();
        for (n, node) in feasible(cluster, pod) {
            let (score, gpu) = match self.cache.get(n, shape, node) {
                Some(&r) => r,
                None => {
                    let r = self.score(n, node, pod);
                    self.cache.put(n, shape, node, r);
                    r
                }
            };
            if is_sharing(pod) && gpu.is_none() {
                continue;
            }
            pick.offer(score, self.order.rank(n), (n, gpu));
        }
        let (node, gpu) = pick.into_best()?;
        let gpus = match gpu {
            Some(g) => vec![g],
            None => first_gpus(&cluster.nodes[node], pod),
        };
        Some(Placement { node, gpus })
    }
}

impl Fgd {
    /// FGD's score of `pod` on node `n` (which fits it) and, for a sharing pod, the GPU:
    /// the one with the best score, the first on ties.
    fn score(&mut self, n: usize, node: &NodeState, pod: &PodSpec) -> (i64, Option<u32>) {
        let before = self.eval.frag(n, node.cpu_free, &node.gpu_free);
        let cpu_after = node.cpu_free - pod.cpu_milli;
        let mut scratch = std::mem::take(&mut self.scratch);
        let r = if is_sharing(pod) {
            let best = best_share_gpu(&mut self.eval, n, node, pod, before, &mut scratch, |_| 0);
            best.map_or((0, None), |(s, g, _)| (s, Some(g)))
        } else {
            sub_packed(&node.gpu_free, pod, &mut scratch);
            (
                fgd_score(before - self.eval.frag(n, cpu_after, &scratch)),
                None,
            )
        };
        self.scratch = scratch;
        r
    }
}
