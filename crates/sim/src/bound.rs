//! How far placement is from its limit: an upper bound on the GPU allocation any placement
//! of a fixed set of pods could reach, and the best placement found offline.
//!
//! **The bound** is a linear programme over node classes and pod types (`upper_bound`).
//! Nodes with the same GPU model, GPU count, CPU and memory form a class of `n_c` nodes;
//! pods with the same request form a type of `d_t` pods. `x[t][c]` is how many pods of type
//! `t` go to class `c` (a real number), only where a pod of `t` fits an empty node of `c`
//! (GPU model, GPU count, CPU, memory). Maximise the GPU milli placed,
//! `Σ g_t · x[t][c]`, subject to:
//!
//! - at most `d_t` pods of each type;
//! - per class, the sums of CPU, memory and GPU milli within `n_c` times a node's;
//! - per class, GPUs as units: every whole-GPU pod takes `num_gpu` GPUs and every sharing
//!   pod of more than half a GPU one GPU of its own (two cannot share one):
//!   `Σ num_gpu·x + Σ_{share > 500} x ≤ n_c · gpus_c`;
//! - per class and per resource, at most one pod per node of those that need more than
//!   half of a node's GPUs (whole-GPU pods), of its CPU, or of its memory.
//!
//! Every placement of the pods (one node per pod, GPUs never over-committed) gives a
//! feasible point of this programme with the same objective, so its optimum bounds every
//! placement from above. The optimum is rounded up to a whole milli-GPU (solver tolerance).
//! It is a relaxation: pods are divisible across the nodes of a class, so sharing pods
//! packed into GPUs and CPU left over on GPU-full nodes are only partly seen; the gap
//! between the bound and the best packing says how much.
//!
//! **The best packing** is the best placement found (`best_packing`): the pods sorted
//! largest first (GPU request, then CPU, then memory) and placed by FGD and by best fit —
//! offline, knowing every pod — and in arrival order by FGD and `default`. A feasible
//! placement: the limit lies between it and the bound.
//!
//! The solver is `microlp`, a pure-Rust simplex (and branch and bound, unused here): it
//! builds wherever linkwise does, the static riscv64 binary included, and needs no C
//! library; the programmes here have a few thousand variables and solve in well under a
//! second.

use std::collections::BTreeMap;

use linkwise_core::placement::frag::TypicalPods;
use linkwise_core::placement::replay;
use linkwise_core::placement::{Cluster, GPU_MILLI, NodeSpec, PodSpec, Rng, policies};

/// A node class: the nodes with this GPU model, GPU count, CPU and memory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ClassKey {
    model: Option<String>,
    gpus: u32,
    cpu_milli: u64,
    memory_mib: u64,
}

/// A pod type: the pods with this request.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct TypeKey {
    num_gpu: u32,
    gpu_milli: u32,
    cpu_milli: u64,
    memory_mib: u64,
    gpu_spec: Vec<String>,
}

/// The bound and what it was computed over.
#[derive(Debug, Clone, PartialEq)]
pub struct Bound {
    /// The upper bound on allocated milli-GPU.
    pub milli: u64,
    /// Node classes in the programme.
    pub classes: usize,
    /// Pod types in the programme.
    pub types: usize,
    /// Variables (type, class pairs where the type fits).
    pub variables: usize,
}

/// An upper bound on the milli-GPU any placement of `pods` on `nodes` can allocate (see
/// the module docs). `Err` names what the solver said when it could not solve.
pub fn upper_bound(nodes: &[NodeSpec], pods: &[PodSpec]) -> Result<Bound, String> {
    use microlp::{ComparisonOp, OptimizationDirection, Problem};

    let mut classes: BTreeMap<ClassKey, u64> = BTreeMap::new();
    for n in nodes {
        *classes
            .entry(ClassKey {
                model: n.model.clone(),
                gpus: n.gpus,
                cpu_milli: n.cpu_milli,
                memory_mib: n.memory_mib,
            })
            .or_default() += 1;
    }
    let mut types: BTreeMap<TypeKey, u64> = BTreeMap::new();
    for p in pods.iter().filter(|p| p.num_gpu > 0) {
        *types
            .entry(TypeKey {
                num_gpu: p.num_gpu,
                gpu_milli: p.gpu_milli,
                cpu_milli: p.cpu_milli,
                memory_mib: p.memory_mib,
                gpu_spec: p.gpu_spec.iter().cloned().collect(),
            })
            .or_default() += 1;
    }
    // CPU-only pods allocate no GPU; they only take CPU and memory from GPU pods. Leaving
    // them out can only raise the optimum: the bound stays a bound.
    let classes: Vec<(ClassKey, u64)> = classes.into_iter().collect();
    let types: Vec<(TypeKey, u64)> = types.into_iter().collect();

    let fits = |t: &TypeKey, c: &ClassKey| {
        t.cpu_milli <= c.cpu_milli
            && t.memory_mib <= c.memory_mib
            && t.num_gpu <= c.gpus
            && (t.gpu_spec.is_empty() || c.model.as_ref().is_some_and(|m| t.gpu_spec.contains(m)))
    };
    let mut lp = Problem::new(OptimizationDirection::Maximize);
    // x[t][c] for the pairs that fit, per type and per class.
    let mut by_type: Vec<Vec<(usize, microlp::Variable)>> = vec![Vec::new(); types.len()];
    let mut by_class: Vec<Vec<(usize, microlp::Variable)>> = vec![Vec::new(); classes.len()];
    let mut variables = 0;
    for (ti, (t, d)) in types.iter().enumerate() {
        let g = f64::from(t.num_gpu) * f64::from(t.gpu_milli);
        for (ci, (c, _)) in classes.iter().enumerate() {
            if fits(t, c) {
                let v = lp.add_var(g, (0.0, *d as f64));
                by_type[ti].push((ci, v));
                by_class[ci].push((ti, v));
                variables += 1;
            }
        }
    }
    for (ti, (_, d)) in types.iter().enumerate() {
        if by_type[ti].len() > 1 {
            let expr: Vec<(microlp::Variable, f64)> =
                by_type[ti].iter().map(|&(_, v)| (v, 1.0)).collect();
            lp.add_constraint(expr.as_slice(), ComparisonOp::Le, *d as f64);
        }
    }
    for (ci, (c, n)) in classes.iter().enumerate() {
        let vars = &by_class[ci];
        if vars.is_empty() {
            continue;
        }
        let n = *n as f64;
        let row = |f: &dyn Fn(&TypeKey) -> f64| -> Vec<(microlp::Variable, f64)> {
            vars.iter()
                .map(|&(ti, v)| (v, f(&types[ti].0)))
                .filter(|&(_, a)| a != 0.0)
                .collect()
        };
        let mut add = |expr: Vec<(microlp::Variable, f64)>, rhs: f64| {
            if !expr.is_empty() {
                lp.add_constraint(expr.as_slice(), ComparisonOp::Le, rhs);
            }
        };
        let gpus = f64::from(c.gpus);
        add(row(&|t| t.cpu_milli as f64), n * c.cpu_milli as f64);
        add(row(&|t| t.memory_mib as f64), n * c.memory_mib as f64);
        add(
            row(&|t| f64::from(t.num_gpu) * f64::from(t.gpu_milli)),
            n * gpus * f64::from(GPU_MILLI),
        );
        // GPUs as units: whole-GPU pods and sharing pods of more than half a GPU.
        add(
            row(&|t| {
                if t.gpu_milli >= GPU_MILLI {
                    f64::from(t.num_gpu)
                } else if 2 * t.gpu_milli > GPU_MILLI {
                    1.0
                } else {
                    0.0
                }
            }),
            n * gpus,
        );
        // One per node of the pods that need more than half of a node's GPUs (whole-GPU
        // pods; sharing pods are counted by the row above), and likewise for CPU and for
        // memory — each resource on its own: a pod big in CPU and one big in memory can
        // share a node.
        let whole_big =
            |t: &TypeKey| t.gpu_milli >= GPU_MILLI && 2 * u64::from(t.num_gpu) > u64::from(c.gpus);
        add(row(&|t| if whole_big(t) { 1.0 } else { 0.0 }), n);
        add(
            row(&|t| {
                if 2 * t.cpu_milli > c.cpu_milli {
                    1.0
                } else {
                    0.0
                }
            }),
            n,
        );
        add(
            row(&|t| {
                if 2 * t.memory_mib > c.memory_mib {
                    1.0
                } else {
                    0.0
                }
            }),
            n,
        );
    }
    let solution = match lp.solve() {
        Ok(microlp::SolveOutcome::Solution(s)) => s,
        Ok(other) => return Err(format!("the bound's programme was not solved: {other:?}")),
        Err(e) => return Err(format!("the bound's programme could not be solved: {e}")),
    };
    let objective = solution.objective().max(0.0);
    // Within the solver's tolerance of the optimum: rounded up, never down.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let milli = (objective - 1e-6 * objective.max(1.0)).ceil().max(0.0) as u64;
    let requested: u64 = pods.iter().map(PodSpec::gpu_request_milli).sum();
    let capacity: u64 = nodes.iter().map(|n| u64::from(n.gpus)).sum::<u64>() * u64::from(GPU_MILLI);
    Ok(Bound {
        milli: milli.min(requested).min(capacity),
        classes: classes.len(),
        types: types.len(),
        variables,
    })
}

/// The pods of `pods` (in replay order) that have arrived when `round(100 · arrived /
/// capacity)` is at most `pct`: the prefix behind the allocation ratio at `pct`%.
pub fn arrived_at(pods: &[PodSpec], capacity_milli: u64, pct: u32) -> &[PodSpec] {
    if capacity_milli == 0 {
        return &pods[..0];
    }
    let mut arrived = 0u64;
    let mut end = 0;
    for (i, p) in pods.iter().enumerate() {
        arrived += p.gpu_request_milli();
        let at = (100.0 * arrived as f64 / capacity_milli as f64).round();
        if at > f64::from(pct) {
            break;
        }
        end = i + 1;
    }
    &pods[..end]
}

/// The best feasible placement found for `pods`: sorted largest first (GPU request, CPU,
/// memory; then by name) and placed by FGD and by best fit, which knows every pod in
/// advance, and in arrival order by FGD and linkwise's `default` (what the online
/// policies reach on the same pods). The allocated milli-GPU of the best, and its name.
pub fn best_packing(
    nodes: &[NodeSpec],
    pods: &[PodSpec],
    typical: &TypicalPods,
) -> (u64, &'static str) {
    let mut sorted = pods.to_vec();
    sorted.sort_by(|a, b| {
        b.gpu_request_milli()
            .cmp(&a.gpu_request_milli())
            .then(b.cpu_milli.cmp(&a.cpu_milli))
            .then(b.memory_mib.cmp(&a.memory_mib))
            .then(a.name.cmp(&b.name))
    });
    let mut best = (0u64, "none");
    for (name, order, label) in [
        ("fgd", &sorted, "fgd, largest first"),
        ("bestfit", &sorted, "bestfit, largest first"),
        ("fgd", &pods.to_vec(), "fgd, arrival order"),
        ("default", &pods.to_vec(), "default, arrival order"),
    ] {
        let Some(mut policy) = policies::by_name(name, typical) else {
            continue;
        };
        let mut rng = Rng::new(0);
        let cluster = replay::replay(
            Cluster::new(nodes.to_vec()),
            order,
            policy.as_mut(),
            typical,
            &mut rng,
            |_| {},
        );
        let got = cluster.allocated_milli();
        if got > best.0 {
            best = (got, label);
        }
    }
    best
}

/// The limit of one seed at `pct`% arrived: the bound and the best packing of the pods
/// that seed's replay has arrived by then, in milli-GPU.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    /// The seed.
    pub seed: u64,
    /// Pods arrived (the prefix [`arrived_at`] takes).
    pub pods: usize,
    /// Their GPU request, milli-GPU.
    pub arrived_milli: u64,
    /// The upper bound, milli-GPU.
    pub bound_milli: u64,
    /// The best packing found, milli-GPU, and by what.
    pub packing_milli: u64,
    /// The heuristic that found it.
    pub packing_by: &'static str,
    /// The programme's size.
    pub programme: Bound,
}

/// [`Limit`] for each seed at `pct`% arrived, the seeds on up to `threads` threads
/// (results in seed order).
pub fn limits(
    nodes: &[NodeSpec],
    trace: &[PodSpec],
    typical: &TypicalPods,
    tune: f64,
    seeds: &[u64],
    pct: u32,
    threads: usize,
) -> crate::Result<Vec<Limit>> {
    let capacity = nodes.iter().map(|n| u64::from(n.gpus)).sum::<u64>() * u64::from(GPU_MILLI);
    let one = |seed: u64| -> Result<Limit, String> {
        let mut rng = Rng::new(seed);
        let pods = replay::prepare(trace, capacity, replay::ReplayConfig { tune }, &mut rng);
        let arrived = arrived_at(&pods, capacity, pct);
        let programme = upper_bound(nodes, arrived)?;
        let (packing_milli, packing_by) = best_packing(nodes, arrived, typical);
        Ok(Limit {
            seed,
            pods: arrived.len(),
            arrived_milli: arrived.iter().map(PodSpec::gpu_request_milli).sum(),
            bound_milli: programme.milli,
            packing_milli,
            packing_by,
            programme,
        })
    };
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<Result<Limit, String>>>> =
        std::sync::Mutex::new(vec![None; seeds.len()]);
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, seeds.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&seed) = seeds.get(i) else { break };
                    let r = one(seed);
                    if let Ok(mut all) = results.lock() {
                        all[i] = Some(r);
                    }
                }
            });
        }
    });
    results
        .into_inner()
        .map_err(|_| crate::Error::Run("a bound worker panicked".into()))?
        .into_iter()
        .zip(seeds)
        .map(|(r, seed)| match r {
            Some(Ok(l)) => Ok(l),
            Some(Err(e)) => Err(crate::Error::Run(format!("bound, seed {seed}: {e}"))),
            None => Err(crate::Error::Run(format!("bound, seed {seed}: no result"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The largest allocation any placement reaches, by trying every one: each pod
    /// unplaced, or on any node it fits, on each distinct choice of GPUs (whole-GPU pods
    /// on idle GPUs, which are interchangeable; a sharing pod on each GPU with a distinct
    /// free amount).
    fn exhaustive(cluster: &mut Cluster, pods: &[PodSpec]) -> u64 {
        let Some((pod, rest)) = pods.split_first() else {
            return cluster.allocated_milli();
        };
        let mut best = exhaustive(cluster, rest);
        for n in 0..cluster.nodes.len() {
            if !cluster.fits(n, pod) {
                continue;
            }
            let choices: Vec<Vec<u32>> = if pod.num_gpu == 0 {
                vec![Vec::new()]
            } else if pod.gpu_milli >= GPU_MILLI {
                let idle: Vec<u32> = (0u32..)
                    .zip(&cluster.nodes[n].gpu_free)
                    .filter(|(_, f)| **f >= GPU_MILLI)
                    .map(|(g, _)| g)
                    .take(pod.num_gpu as usize)
                    .collect();
                vec![idle]
            } else {
                let mut seen = BTreeSet::new();
                (0u32..)
                    .zip(&cluster.nodes[n].gpu_free)
                    .filter(|(_, f)| **f >= pod.gpu_milli && seen.insert(**f))
                    .map(|(g, _)| vec![g])
                    .collect()
            };
            for gpus in choices {
                let saved = cluster.nodes[n].clone();
                cluster.apply(pod, &linkwise_core::placement::Placement { node: n, gpus });
                best = best.max(exhaustive(cluster, rest));
                cluster.nodes[n] = saved;
            }
        }
        best
    }

    fn instance(rng: &mut Rng) -> (Vec<NodeSpec>, Vec<PodSpec>) {
        let pick =
            |rng: &mut Rng, v: &[u64]| v[usize::try_from(rng.below(v.len() as u64)).unwrap_or(0)];
        let nodes: Vec<NodeSpec> = (0..1 + rng.below(3))
            .map(|i| NodeSpec {
                name: format!("n{i}"),
                cpu_milli: pick(rng, &[4000, 8000, 16000]),
                memory_mib: pick(rng, &[16384, 65536]),
                gpus: u32::try_from(pick(rng, &[1, 2, 4])).unwrap_or(1),
                model: Some(if rng.below(2) == 0 { "A" } else { "B" }.to_string()),
                islands: Vec::new(),
            })
            .collect();
        let pods: Vec<PodSpec> = (0..3 + rng.below(5))
            .map(|i| {
                let kind = rng.below(3);
                let (num_gpu, gpu_milli) = match kind {
                    0 => (
                        1,
                        u32::try_from(pick(rng, &[200, 300, 500, 600, 800])).unwrap_or(500),
                    ),
                    1 => (u32::try_from(pick(rng, &[1, 2, 4])).unwrap_or(1), GPU_MILLI),
                    _ => (0, 0),
                };
                let mut gpu_spec = BTreeSet::new();
                if rng.below(4) == 0 {
                    gpu_spec.insert("A".to_string());
                }
                PodSpec {
                    name: format!("p{i}"),
                    cpu_milli: pick(rng, &[1000, 2000, 4000, 6000]),
                    memory_mib: pick(rng, &[1024, 8192, 40000]),
                    num_gpu,
                    gpu_milli,
                    gpu_spec,
                }
            })
            .collect();
        (nodes, pods)
    }

    /// The regression the bound guards: it is a true bound — never below the best
    /// placement found by trying them all — and the best packing is a placement (never
    /// above it), on 300 small random instances.
    #[test]
    fn the_bound_is_never_below_the_exhaustive_optimum() {
        let mut rng = Rng::new(7);
        let (mut tight, mut total) = (0, 0);
        for i in 0..300 {
            let (nodes, pods) = instance(&mut rng);
            let opt = exhaustive(&mut Cluster::new(nodes.clone()), &pods);
            let bound = upper_bound(&nodes, &pods).unwrap();
            assert!(
                bound.milli >= opt,
                "instance {i}: bound {} below the optimum {opt}\nnodes {nodes:?}\npods {pods:?}",
                bound.milli
            );
            let typical = TypicalPods::from_trace(&pods, 0.95);
            let (packed, _) = best_packing(&nodes, &pods, &typical);
            assert!(
                packed <= opt,
                "instance {i}: packing {packed} above the optimum {opt}"
            );
            total += 1;
            if bound.milli == opt {
                tight += 1;
            }
        }
        // Not a property, a sanity check that the bound is not trivially loose.
        assert!(
            tight * 2 > total,
            "the bound is tight on only {tight} of {total}"
        );
    }

    #[test]
    fn arrived_at_takes_the_prefix_up_to_the_percentage() {
        let pod = |m: u32| PodSpec {
            name: String::new(),
            cpu_milli: 0,
            memory_mib: 0,
            num_gpu: 1,
            gpu_milli: m,
            gpu_spec: BTreeSet::new(),
        };
        let pods: Vec<PodSpec> = [500, 400, 90, 20, 500].into_iter().map(pod).collect();
        // Capacity 1000: 50%, 90%, 99%, 101% (rounds to 101), 151%.
        assert_eq!(arrived_at(&pods, 1000, 100).len(), 3);
        assert_eq!(arrived_at(&pods, 1000, 50).len(), 1);
        assert_eq!(arrived_at(&pods, 0, 100).len(), 0);
    }
}
