//! The FGD paper's fragmentation measure: typical pods (the target workload) and the
//! fragment of a node with respect to them.
//!
//! Follows the simulator (hkust-adsl/kubernetes-scheduler-simulator, `pkg/utils/frag.go`):
//! `GetTypicalPods` for [`TypicalPods::from_trace`] and `NodeGpuShareFragAmountScore` for
//! [`node_frag`]. [`FragIndex`] is the same function regrouped so that a policy can
//! evaluate it for thousands of hypothetical node states per pod.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use super::{NodeState, PodSpec};

/// One typical pod shape and its frequency.
#[derive(Debug, Clone, PartialEq)]
pub struct TypicalShape {
    /// CPU request, milli-CPU.
    pub cpu_milli: u64,
    /// Per-GPU share, milli-GPU (0 for CPU-only).
    pub gpu_milli: u32,
    /// GPUs requested.
    pub num_gpu: u32,
    /// Allowed GPU models (empty: any).
    pub gpu_spec: BTreeSet<String>,
    /// Frequency (the shapes' frequencies sum to 1).
    pub p: f64,
}

/// The target workload: the most popular shapes of the original (un-inflated) trace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TypicalPods {
    /// The shapes, most popular first.
    pub shapes: Vec<TypicalShape>,
}

type ShapeKey = (u64, u32, u32, String);

impl TypicalPods {
    /// Shapes in descending popularity until they cover `threshold` (0..1) of the pods,
    /// renormalised (the paper's simulator: threshold 0.95, CPU-only pods included).
    ///
    /// As `GetTypicalPods` with `isInvolvedCpuPods: true`, `podIncreaseStep: 1`,
    /// `gpuResWeight: 0`: a shape is (milli-CPU, per-GPU milli, GPU count, GPU models);
    /// ties in popularity go to the larger shape (CPU, then milli, count, models).
    pub fn from_trace(pods: &[PodSpec], threshold: f64) -> Self {
        let mut counts: BTreeMap<ShapeKey, u64> = BTreeMap::new();
        for pod in pods {
            let (milli, num) = if pod.num_gpu == 0 || pod.gpu_milli == 0 {
                (0, 0)
            } else {
                (pod.gpu_milli, pod.num_gpu)
            };
            let spec = if num == 0 {
                String::new()
            } else {
                spec_key(&pod.gpu_spec)
            };
            *counts.entry((pod.cpu_milli, milli, num, spec)).or_default() += 1;
        }
        let total = pods.len() as f64;
        let mut list: Vec<(ShapeKey, u64)> = counts.into_iter().collect();
        // Descending count, then descending (cpu, milli, num, spec): Go's
        // sort.Reverse over TargetPodList.Less.
        list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
        let expected = threshold * total;
        let mut cum = 0.0f64;
        let mut taken = 0usize;
        while cum < expected && taken < list.len() {
            cum += list[taken].1 as f64;
            taken += 1;
        }
        let denom = if taken >= list.len() { total } else { cum };
        let shapes = list
            .into_iter()
            .take(taken)
            .map(|((cpu_milli, gpu_milli, num_gpu, spec), c)| TypicalShape {
                cpu_milli,
                gpu_milli,
                num_gpu,
                gpu_spec: spec
                    .split('|')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
                p: c as f64 / denom,
            })
            .collect();
        TypicalPods { shapes }
    }
}

fn spec_key(spec: &BTreeSet<String>) -> String {
    spec.iter().cloned().collect::<Vec<_>>().join("|")
}

/// Whether a node of `model` may host a pod restricted to `spec`.
fn accessible(model: Option<&str>, spec: &BTreeSet<String>) -> bool {
    spec.is_empty() || model.is_some_and(|m| spec.contains(m))
}

/// The fragment of `node` with respect to `typical`, in milli-GPU (the expected free GPU
/// milli that a pod drawn from the target workload could not use).
///
/// For each shape `t` with frequency `p_t`: when the node can host `t` (GPU model
/// allowed, enough GPUs with free milli ≥ `t`'s per-GPU share, enough free CPU) the
/// fragment is the free milli of the GPUs below that share; otherwise (including
/// CPU-only shapes) it is all the node's free GPU milli.
pub fn node_frag(node: &NodeState, typical: &TypicalPods) -> f64 {
    let total: u64 = node.gpu_free.iter().map(|&f| u64::from(f)).sum();
    let model = node.spec.model.as_deref();
    let mut frag = 0.0;
    for t in &typical.shapes {
        let hosted = t.gpu_milli > 0
            && accessible(model, &t.gpu_spec)
            && node.cpu_free >= t.cpu_milli
            && node.gpu_free.iter().filter(|&&f| f >= t.gpu_milli).count() >= t.num_gpu as usize;
        let amount = if hosted {
            node.gpu_free
                .iter()
                .filter(|&&f| f < t.gpu_milli)
                .map(|&f| u64::from(f))
                .sum::<u64>()
        } else {
            total
        };
        frag += t.p * amount as f64;
    }
    frag
}

/// Shapes sharing (per-GPU milli, GPU count, models), sorted by CPU.
#[derive(Debug, Clone)]
struct Group {
    milli: u32,
    num: usize,
    spec: BTreeSet<String>,
    cpus: Vec<u64>,
    /// `cum_p[i]` = sum of the frequencies of shapes `0..=i`.
    cum_p: Vec<f64>,
}

/// [`node_frag`] regrouped for fast evaluation of hypothetical node states:
///
/// `frag = free·P − Σ_{g hostable} P_g(cpu_free) · (free − free_below(milli_g))`
///
/// where `P` is the total frequency, `g` ranges over the (milli, count, models) groups
/// the node's model may host and `P_g(c)` is the frequency of the group's shapes with
/// CPU ≤ `c`. Cost per evaluation: groups × GPUs, independent of the number of shapes.
#[derive(Debug, Clone)]
pub struct FragIndex {
    groups: Vec<Group>,
    p_all: f64,
    /// Models named by some group, each with the groups it may host; index 0 is any
    /// other model (only unconstrained groups).
    access: Vec<(Option<String>, Vec<usize>)>,
}

impl FragIndex {
    /// The index of `typical`.
    pub fn new(typical: &TypicalPods) -> Self {
        let mut by_key: BTreeMap<(u32, u32, String), Vec<(u64, f64)>> = BTreeMap::new();
        let mut p_all = 0.0;
        for t in &typical.shapes {
            p_all += t.p;
            if t.gpu_milli == 0 || t.num_gpu == 0 {
                continue; // CPU-only shapes: all free GPU milli is fragment.
            }
            by_key
                .entry((t.gpu_milli, t.num_gpu, spec_key(&t.gpu_spec)))
                .or_default()
                .push((t.cpu_milli, t.p));
        }
        let groups: Vec<Group> = by_key
            .into_iter()
            .map(|((milli, num, spec), mut shapes)| {
                shapes.sort_by_key(|a| a.0);
                let mut acc = 0.0;
                let cum_p = shapes
                    .iter()
                    .map(|s| {
                        acc += s.1;
                        acc
                    })
                    .collect();
                Group {
                    milli,
                    num: num as usize,
                    spec: spec
                        .split('|')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    cpus: shapes.iter().map(|s| s.0).collect(),
                    cum_p,
                }
            })
            .collect();
        let models: BTreeSet<String> = groups.iter().flat_map(|g| g.spec.iter().cloned()).collect();
        let mut access = vec![(None, Self::hostable(&groups, None))];
        for m in models {
            let list = Self::hostable(&groups, Some(&m));
            access.push((Some(m), list));
        }
        FragIndex {
            groups,
            p_all,
            access,
        }
    }

    fn hostable(groups: &[Group], model: Option<&str>) -> Vec<usize> {
        (0..groups.len())
            .filter(|&g| accessible(model, &groups[g].spec))
            .collect()
    }

    /// The access class of a GPU model (pass it to [`FragIndex::frag`]).
    pub fn access_class(&self, model: Option<&str>) -> usize {
        model
            .and_then(|m| {
                self.access
                    .iter()
                    .position(|(k, _)| k.as_deref() == Some(m))
            })
            .unwrap_or(0)
    }

    /// The fragment, milli-GPU, of a node of access class `class` with this free CPU and
    /// free milli per GPU (equals [`node_frag`] up to float rounding).
    pub fn frag(&self, class: usize, cpu_free: u64, gpu_free: &[u32]) -> f64 {
        let total: u64 = gpu_free.iter().map(|&f| u64::from(f)).sum();
        if total == 0 {
            return 0.0;
        }
        let Some((_, groups)) = self.access.get(class) else {
            return total as f64 * self.p_all;
        };
        let mut saved = 0.0;
        for &gi in groups {
            let g = &self.groups[gi];
            let mut count = 0usize;
            let mut below = 0u64;
            for &f in gpu_free {
                if f >= g.milli {
                    count += 1;
                } else {
                    below += u64::from(f);
                }
            }
            if count < g.num {
                continue;
            }
            let k = g.cpus.partition_point(|&c| c <= cpu_free);
            if k > 0 {
                saved += g.cum_p[k - 1] * (total - below) as f64;
            }
        }
        total as f64 * self.p_all - saved
    }

    /// [`FragIndex::frag`] of a node's current state.
    pub fn node_frag(&self, node: &NodeState) -> f64 {
        self.frag(
            self.access_class(node.spec.model.as_deref()),
            node.cpu_free,
            &node.gpu_free,
        )
    }

    /// The typical shapes' (per-GPU milli, GPU count) pairs, with their total frequency,
    /// most frequent first (for look-ahead heuristics).
    pub fn gpu_demand(&self) -> Vec<(u32, u32, f64)> {
        let mut v: Vec<(u32, u32, f64)> = self
            .groups
            .iter()
            .map(|g| {
                let n = u32::try_from(g.num).unwrap_or(u32::MAX);
                (g.milli, n, g.cum_p.last().copied().unwrap_or(0.0))
            })
            .collect();
        v.sort_by(|a, b| b.2.partial_cmp(&a.2).unwrap_or(Ordering::Equal));
        v
    }
}
