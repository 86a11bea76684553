//! Trace replay the way the FGD paper's simulator does it: pods shuffled per seed,
//! inflated (sampled with replacement) or pruned to `tune` x the cluster's GPU capacity,
//! scheduled one at a time in that order, never departing, failures not retried.

use super::frag::{TypicalPods, node_frag};
use super::{Cluster, Placement, PodSpec, Policy, Rng};

/// Replay settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplayConfig {
    /// Target total GPU request as a multiple of the cluster's GPU capacity (1.3 in the paper).
    pub tune: f64,
}

/// The cluster after one pod was tried.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LogPoint {
    /// GPU request of every pod tried so far (placed or not), milli-GPU.
    pub arrived_milli: u64,
    /// Allocated milli-GPU.
    pub allocated_milli: u64,
    /// Fragmentation amount, milli-GPU (sum of [`node_frag`] over nodes).
    pub frag_milli: f64,
    /// Free milli-GPU.
    pub idle_milli: u64,
    /// Whether this pod failed to place.
    pub failed: bool,
    /// GPUs the pod asked for.
    pub num_gpu: u32,
    /// For a placed multi-GPU pod: whether all its GPUs are in one NVLink island.
    pub single_island: Option<bool>,
}

/// The pod list a seed replays: `pods` sorted by name and shuffled, then inflated by
/// drawing uniformly with replacement (appended at the end) until the next draw's
/// per-GPU milli would pass `tune` x capacity (`TunePodsByNodeTotalResource`), or pruned
/// by removing uniformly random pods until at or below it.
pub fn prepare(
    pods: &[PodSpec],
    capacity_milli: u64,
    cfg: ReplayConfig,
    rng: &mut Rng,
) -> Vec<PodSpec> {
    let mut list: Vec<PodSpec> = pods.to_vec();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    rng.shuffle(&mut list);
    // tune is a small positive factor and capacity far below 2^52: the product is exact
    // enough and in range.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let target = (cfg.tune.max(0.0) * capacity_milli as f64) as u64;
    let mut total: u64 = list.iter().map(PodSpec::gpu_request_milli).sum();
    if total < target && !pods.is_empty() {
        let mut i = 0usize;
        loop {
            let k = usize::try_from(rng.below(pods.len() as u64)).unwrap_or(0);
            let p = &pods[k];
            // The simulator's `tuneUpPods` stops when the drawn pod's *per-GPU* milli
            // would pass the target (then adds its total request), so the list can
            // overshoot the target by up to one multi-GPU pod. Kept as is.
            if total + u64::from(p.gpu_milli) > target {
                break;
            }
            total += p.gpu_request_milli();
            let mut p = p.clone();
            p.name = format!("{}-tuned-{i}", p.name);
            list.push(p);
            i += 1;
        }
    } else {
        while total > target && !list.is_empty() {
            let k = usize::try_from(rng.below(list.len() as u64)).unwrap_or(0);
            total -= list.remove(k).gpu_request_milli();
        }
    }
    list
}

/// Replays `pods` (already prepared) on `cluster` with `policy`, calling `on_point` after
/// every pod. Returns the final cluster.
pub fn replay(
    mut cluster: Cluster,
    pods: &[PodSpec],
    policy: &mut dyn Policy,
    typical: &TypicalPods,
    rng: &mut Rng,
    mut on_point: impl FnMut(&LogPoint),
) -> Cluster {
    let mut frag: Vec<f64> = cluster
        .nodes
        .iter()
        .map(|n| node_frag(n, typical))
        .collect();
    let mut frag_total: f64 = frag.iter().sum();
    let capacity = cluster.total_gpus() * u64::from(super::GPU_MILLI);
    let mut allocated = cluster.allocated_milli();
    let mut arrived = 0u64;
    for pod in pods {
        arrived += pod.gpu_request_milli();
        let placed: Option<Placement> = policy
            .place(&cluster, pod, rng)
            .filter(|p| cluster.fits(p.node, pod) && p.gpus.len() == pod.num_gpu as usize);
        let mut point = LogPoint {
            arrived_milli: arrived,
            failed: placed.is_none(),
            num_gpu: pod.num_gpu,
            ..LogPoint::default()
        };
        if let Some(p) = &placed {
            cluster.apply(pod, p);
            allocated += pod.gpu_request_milli();
            let n = &cluster.nodes[p.node];
            frag_total -= frag[p.node];
            frag[p.node] = node_frag(n, typical);
            frag_total += frag[p.node];
            if pod.num_gpu > 1 {
                let island = n.island_of(p.gpus[0]);
                point.single_island = Some(p.gpus.iter().all(|g| island.contains(g)));
            }
        }
        point.allocated_milli = allocated;
        point.idle_milli = capacity - allocated;
        point.frag_milli = frag_total;
        on_point(&point);
    }
    cluster
}

/// The allocation ratio (%) at `k`% arrived, as the paper's analysis scripts resample a
/// run: the mean of the log points whose `round(100 · arrived / capacity)` is `k`, or, if
/// none, of those within `k ± 1`. `None` when no point is near `k`.
pub fn alloc_ratio_at(points: &[LogPoint], capacity_milli: u64, k: u32) -> Option<f64> {
    if capacity_milli == 0 {
        return None;
    }
    let cap = capacity_milli as f64;
    let pct = |p: &LogPoint| (100.0 * p.arrived_milli as f64 / cap).round();
    let k = f64::from(k);
    let mean = |pred: &dyn Fn(f64) -> bool| {
        let (sum, n) = points
            .iter()
            .filter(|p| pred(pct(p)))
            .fold((0.0, 0u32), |(s, n), p| {
                (s + 100.0 * p.allocated_milli as f64 / cap, n + 1)
            });
        (n > 0).then(|| sum / f64::from(n))
    };
    mean(&|x| x == k).or_else(|| mean(&|x| (x - k).abs() <= 1.0))
}
