//! linkwise's default placement policy (design and measurements: `docs/placement.md`).

use super::super::frag::TypicalPods;
use super::super::{Cluster, GPU_MILLI, NodeState, Placement, PodSpec, Policy, Rng};
use super::{
    FragEval, MaxPicker, NodeOrder, ScoreCache, best_share_gpu, feasible, fgd_score, first_gpus,
    is_sharing, sub_packed,
};

/// linkwise's default: fragmentation gradient descent (FGD's score against the typical
/// pods) with a tie-break that depends on the pod's kind, then a node order fixed for the
/// run (consolidation); multi-GPU pods stay inside one NVLink island when the node models
/// islands.
///
/// Ranking, highest first: (1) the pod's GPUs share one island (only meaningful with
/// islands), (2) FGD's score `s = int(100·sigmoid(Δfrag/1000))`, coarsened to `s / 3`
/// (integer division) for single-GPU pods (whole or shared) and used as is for the
/// others, (3) the placement does not strand the node's idle GPUs — before it, the
/// node's free CPU covered every idle GPU at the CPU per GPU that typical whole-GPU pods
/// ask for; after it, it no longer does — (4) for sharing and CPU-only pods only, the
/// node already hosts a pod, (5) for sharing pods, how little the share adds to the part
/// of its GPU's free milli that no sum of typical single-GPU requests fills (an exact
/// unbounded knapsack over 0..=1000 milli, computed once), (6) the node's rank in a
/// random order drawn once per run. A sharing pod's GPU on the node is the one with the
/// best FGD score, then the best (5), then the first.
///
/// Why (measured in `docs/placement.md`, 5 traces × 10 seeds, paired by seed against
/// FGD): among placements that FGD scores almost alike, the fixed node order packs
/// whole-GPU pods onto the same nodes, leaving other nodes whole; on GPU-dense nodes the
/// CPU runs out before the GPUs do, so a pod that takes the CPU the idle GPUs need goes
/// elsewhere when it can; sharing and CPU-only pods gain from going to a node already in
/// use; for whole-GPU pods "in use" loses (it spends the nodes that 8-GPU and
/// model-restricted pods need), and a finer score than FGD's (the exact Δfrag) loses
/// everywhere. Shares that leave their GPU fillable pair up instead of leaving
/// remainders that no typical pod can use; coarsening their score as for whole single
/// GPUs lets that decide more often.
#[derive(Debug, Clone)]
pub struct LinkwiseDefault {
    eval: FragEval,
    order: NodeOrder,
    scratch: Vec<u32>,
    cache: ScoreCache<Rank>,
    /// CPU a whole GPU brings with it in the target workload: over the typical whole-GPU
    /// shapes (one GPU or more), frequency-weighted CPU over frequency-weighted GPUs (0
    /// when there are none).
    cpu_per_gpu: f64,
    /// Per free milli `r` of a GPU (0..=1000): the part of `r` that no combination of
    /// the typical single-GPU requests (shares and whole GPUs) fills — the unbounded
    /// knapsack's shortfall.
    waste: Vec<u32>,
}

/// [`LinkwiseDefault`]'s keys of one placement: GPUs in one island, score, CPU kept for
/// the idle GPUs, node in use, how well a share leaves its GPU fillable (minus the
/// growth of [`LinkwiseDefault::waste`]; 0 for other pods), and the GPU of a sharing pod.
type Rank = (u8, i64, u8, u8, i64, Option<u32>);

/// Per free milli `r` (0..=1000), the part of `r` that sums of `sizes` (each usable any
/// number of times) cannot fill: `r` minus the best fill, by an exact unbounded knapsack.
fn unfillable(sizes: &[u32]) -> Vec<u32> {
    let cap = GPU_MILLI as usize;
    let mut fill = vec![0u32; cap + 1];
    for r in 1..=cap {
        let mut best = fill[r - 1];
        for &z in sizes {
            let zu = z as usize;
            if zu > 0 && zu <= r {
                best = best.max(fill[r - zu] + z);
            }
        }
        fill[r] = best;
    }
    (0u32..).zip(fill).map(|(r, f)| r - f).collect()
}

impl LinkwiseDefault {
    /// The default policy against this target workload.
    pub fn new(typical: &TypicalPods) -> Self {
        LinkwiseDefault {
            eval: FragEval::new(typical),
            order: NodeOrder::default(),
            scratch: Vec::new(),
            cache: ScoreCache::new(),
            waste: unfillable(
                &typical
                    .shapes
                    .iter()
                    .filter(|t| t.num_gpu == 1 && t.gpu_milli <= GPU_MILLI)
                    .map(|t| t.gpu_milli)
                    .collect::<Vec<_>>(),
            ),
            cpu_per_gpu: {
                let (mut cpu, mut p) = (0.0, 0.0);
                for t in &typical.shapes {
                    if t.num_gpu >= 1 && t.gpu_milli >= GPU_MILLI {
                        cpu += t.p * t.cpu_milli as f64;
                        p += t.p * f64::from(t.num_gpu);
                    }
                }
                if p > 0.0 { cpu / p } else { 0.0 }
            },
        }
    }
}

/// GPUs for a multi-GPU pod inside one island when the node models islands: the island
/// with the fewest free GPUs that still fits (best fit), lowest GPU indices within it.
fn island_gpus(node: &NodeState, pod: &PodSpec) -> Option<Vec<u32>> {
    if pod.num_gpu < 2 || node.spec.islands.is_empty() {
        return None;
    }
    let mut best: Option<(usize, Vec<u32>)> = None;
    for island in &node.spec.islands {
        let mut free: Vec<u32> = island
            .iter()
            .copied()
            .filter(|&g| {
                node.gpu_free
                    .get(g as usize)
                    .is_some_and(|&f| f >= pod.gpu_milli)
            })
            .collect();
        if free.len() >= pod.num_gpu as usize && best.as_ref().is_none_or(|(n, _)| free.len() < *n)
        {
            let n = free.len();
            free.sort_unstable();
            free.truncate(pod.num_gpu as usize);
            best = Some((n, free));
        }
    }
    best.map(|(_, g)| g)
}

/// Whether the node hosts anything.
fn in_use(node: &NodeState) -> bool {
    node.cpu_free < node.spec.cpu_milli || node.gpu_free.iter().any(|&f| f < GPU_MILLI)
}

impl Policy for LinkwiseDefault {
    fn name(&self) -> &'static str {
        "default"
    }

    fn place(&mut self, cluster: &Cluster, pod: &PodSpec, rng: &mut Rng) -> Option<Placement> {
        self.eval.prepare(cluster);
        self.order.prepare(cluster.nodes.len(), rng);
        let shape = self.cache.shape(cluster.nodes.len(), pod);
        let mut pick = MaxPicker::new();
        for (n, node) in feasible(cluster, pod) {
            let (island, s, keeps, used, fill, gpu) = match self.cache.get(n, shape, node) {
                Some(&r) => r,
                None => {
                    let r = self.rank(n, node, pod);
                    self.cache.put(n, shape, node, r);
                    r
                }
            };
            if is_sharing(pod) && gpu.is_none() {
                continue;
            }
            pick.offer((island, s, keeps, used, fill), self.order.rank(n), (n, gpu));
        }
        let (n, gpu) = pick.into_best()?;
        let node = &cluster.nodes[n];
        let gpus = match gpu {
            Some(g) => vec![g],
            None => island_gpus(node, pod).unwrap_or_else(|| first_gpus(node, pod)),
        };
        Some(Placement { node: n, gpus })
    }
}

impl LinkwiseDefault {
    /// Whether the placement strands the node's idle GPUs: before it, the free CPU covered
    /// [`LinkwiseDefault::cpu_per_gpu`] for every idle GPU; after it (`cpu_after`, the idle
    /// GPUs of `after`), it does not. A node already short of CPU is not held against the
    /// pod. Sharing pods pass the GPUs as they were: the GPU a share lands on keeps hosting
    /// shares, which need CPU as much as a whole-GPU pod (measured: counting it as taken
    /// halves the gain on the default trace).
    fn strands(&self, node: &NodeState, cpu_after: u64, after: &[u32]) -> bool {
        let idle = |gpus: &[u32]| gpus.iter().filter(|&&f| f >= GPU_MILLI).count() as f64;
        let covered = |cpu: u64, gpus: &[u32]| cpu as f64 >= idle(gpus) * self.cpu_per_gpu;
        covered(node.cpu_free, &node.gpu_free) && !covered(cpu_after, after)
    }

    /// The ranking keys of `pod` on node `n` (which fits it): one island, score, in use;
    /// and for a sharing pod the GPU (each GPU that fits is scored, the first index wins
    /// among equal scores, as FGD).
    fn rank(&mut self, n: usize, node: &NodeState, pod: &PodSpec) -> Rank {
        let sharing = is_sharing(pod);
        let before = self.eval.frag(n, node.cpu_free, &node.gpu_free);
        let cpu_after = node.cpu_free - pod.cpu_milli;
        let mut scratch = std::mem::take(&mut self.scratch);
        let r = if sharing {
            let used = u8::from(in_use(node));
            // The GPU: FGD's score, then the share that leaves its GPU most fillable.
            let waste = &self.waste;
            let fillable = |f: u32| {
                let at = |m: u32| i64::from(waste.get(m as usize).copied().unwrap_or(m));
                at(f) - at(f.saturating_sub(pod.gpu_milli))
            };
            let best = best_share_gpu(&mut self.eval, n, node, pod, before, &mut scratch, fillable);
            best.map_or((0, 0, 0, 0, 0, None), |(s, g, fill)| {
                let keeps = u8::from(!self.strands(node, cpu_after, &node.gpu_free));
                (0, s / 3, keeps, used, fill, Some(g))
            })
        } else {
            // Single whole-GPU pods: FGD's score coarsened; CPU-only pods: a node in use
            // first (see the type's docs).
            let coarse = if pod.num_gpu == 1 { 3 } else { 1 };
            let used = u8::from(pod.num_gpu == 0 && in_use(node));
            sub_packed(&node.gpu_free, pod, &mut scratch);
            let s = fgd_score(before - self.eval.frag(n, cpu_after, &scratch)) / coarse;
            let keeps = u8::from(!self.strands(node, cpu_after, &scratch));
            (
                u8::from(island_gpus(node, pod).is_some()),
                s,
                keeps,
                used,
                0,
                None,
            )
        };
        self.scratch = scratch;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::frag::TypicalShape;
    use crate::placement::{Cluster, NodeSpec};
    use std::collections::BTreeSet;

    fn whole(cpu_milli: u64, num_gpu: u32, p: f64) -> TypicalShape {
        TypicalShape {
            cpu_milli,
            gpu_milli: GPU_MILLI,
            num_gpu,
            gpu_spec: BTreeSet::new(),
            p,
        }
    }

    #[test]
    fn unfillable_is_the_knapsack_shortfall() {
        let w = unfillable(&[500, 300]);
        assert_eq!(w.len(), 1001);
        // 200: nothing fits; 700: 300 + 300 leaves 100; 800 and 1000 fill exactly.
        assert_eq!((w[0], w[200], w[299], w[300]), (0, 200, 299, 0));
        assert_eq!((w[700], w[800], w[1000]), (100, 0, 0));
        assert_eq!(unfillable(&[])[1000], 1000);
    }

    /// Guards the share's GPU choice: among GPUs FGD scores alike, the share goes where
    /// what it leaves can still be filled by typical requests (it once took the first
    /// index: here the whole GPU, leaving 700 that 300 + 300 fills only to 600).
    #[test]
    fn a_share_leaves_its_gpu_fillable() {
        let share = |gpu_milli: u32| TypicalShape {
            cpu_milli: 1000,
            gpu_milli,
            num_gpu: 1,
            gpu_spec: BTreeSet::new(),
            p: 0.5,
        };
        let typical = TypicalPods {
            shapes: vec![share(500), share(300)],
        };
        let mut policy = LinkwiseDefault::new(&typical);
        let mut cluster = Cluster::new(vec![NodeSpec {
            name: "n0".into(),
            cpu_milli: 32_000,
            memory_mib: 65_536,
            gpus: 2,
            model: None,
            islands: Vec::new(),
        }]);
        cluster.nodes[0].gpu_free = vec![1000, 800];
        policy.eval.prepare(&cluster);
        let pod = PodSpec {
            name: "p".into(),
            cpu_milli: 1000,
            memory_mib: 1024,
            num_gpu: 1,
            gpu_milli: 300,
            gpu_spec: BTreeSet::new(),
        };
        let r = policy.rank(0, &cluster.nodes[0], &pod);
        assert_eq!(r.5, Some(1), "{r:?}");
        assert_eq!(r.4, 0, "800 - 300 = 500 fills exactly");
    }

    /// Guards the CPU check of multi-GPU pods (it once covered pods of at most one GPU,
    /// and priced a GPU at the single-GPU shapes' CPU only, which let multi-GPU pods take
    /// the CPU the node's idle GPUs need).
    #[test]
    fn a_multi_gpu_pod_that_takes_the_idle_gpus_cpu_strands_them() {
        // 1 GPU with 8 CPUs and 4 GPUs with 48 CPUs, equally often: 28 CPUs per 2.5 GPUs.
        let typical = TypicalPods {
            shapes: vec![whole(8000, 1, 0.5), whole(48_000, 4, 0.5)],
        };
        let mut policy = LinkwiseDefault::new(&typical);
        assert!(
            (policy.cpu_per_gpu - 11_200.0).abs() < 1e-6,
            "{}",
            policy.cpu_per_gpu
        );
        let cluster = Cluster::new(vec![NodeSpec {
            name: "n0".into(),
            cpu_milli: 96_000,
            memory_mib: 262_144,
            gpus: 8,
            model: Some("G2".into()),
            islands: Vec::new(),
        }]);
        policy.eval.prepare(&cluster);
        let node = &cluster.nodes[0];
        let pod = |cpu_milli: u64| PodSpec {
            name: "p".into(),
            cpu_milli,
            memory_mib: 1024,
            num_gpu: 2,
            gpu_milli: GPU_MILLI,
            gpu_spec: BTreeSet::new(),
        };
        // 96 CPUs cover 8 idle GPUs at 11.2. Taking 30 leaves 66 for 6 idle GPUs (67.2
        // needed): stranded. Taking 20 leaves 76: not.
        let keeps = |policy: &mut LinkwiseDefault, cpu| policy.rank(0, node, &pod(cpu)).2;
        assert_eq!(keeps(&mut policy, 30_000), 0);
        assert_eq!(keeps(&mut policy, 20_000), 1);
    }
}
