//! What the extender decides: the pod's GPU need, each node's verdict and score.
//! Pure functions of the request and the node annotations (`docs/extender.md`).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use linkwise_core::GpuId;
use linkwise_core::alloc::{AllocRequest, Allocator};
use linkwise_core::annotation::NodeFabric;
use linkwise_core::placement::GPU_MILLI;
use linkwise_core::placement::frag::{FragIndex, TypicalPods, TypicalShape};
use linkwise_core::placement::policies::fgd_score;

use crate::Error;
use crate::types::Pod;

/// Pod annotation: a fraction of one GPU, in thousandths (`"500"` = half a GPU).
pub const MILLI_KEY: &str = "linkwise.dev/gpu-milli";
/// Pod annotation: `required` or `preferred` (the default).
pub const NVLINK_KEY: &str = "linkwise.dev/nvlink";
/// The resources managed when `--resource` is not given.
pub const DEFAULT_RESOURCES: [&str; 2] = linkwise_core::conventions::resources::GPU_RESOURCES;
/// The highest extender score.
pub const MAX_SCORE: i64 = 10;

/// The target workload when none is given: whole-GPU pods of 1, 2, 4 and 8 GPUs in the
/// proportions of the openb default trace's whole-GPU pods (3,911, 16, 15 and 44 of
/// 3,986). CPU is not part of it: the extender sees no node's free CPU.
pub fn default_typical() -> TypicalPods {
    let shape = |num_gpu: u32, count: f64| TypicalShape {
        cpu_milli: 0,
        gpu_milli: GPU_MILLI,
        num_gpu,
        gpu_spec: BTreeSet::new(),
        p: count / 3986.0,
    };
    TypicalPods {
        shapes: vec![
            shape(1, 3911.0),
            shape(8, 44.0),
            shape(2, 16.0),
            shape(4, 15.0),
        ],
    }
}

/// What the pod asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// No managed GPU: linkwise has no opinion.
    None,
    /// `k` whole GPUs.
    Whole(usize),
    /// A share of one GPU, in thousandths (1..=999).
    Fraction(u64),
}

/// The pod's need and its NVLink requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodNeed {
    /// GPUs.
    pub need: Need,
    /// `linkwise.dev/nvlink: required`.
    pub nvlink_required: bool,
}

fn quantity(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::String(s) => s.trim().parse().ok(),
        serde_json::Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// Reads the pod's need: the sum over its containers of the managed resources' limits
/// (else requests), replaced by [`MILLI_KEY`] when the pod has it. `Err` names the bad
/// value ([`Error::Pod`]).
pub fn pod_need(pod: &Pod, resources: &[String]) -> Result<PodNeed, Error> {
    let mut whole: u64 = 0;
    let containers = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.as_deref())
        .unwrap_or_default();
    for c in containers {
        let Some(res) = &c.resources else { continue };
        for r in resources {
            let v = res
                .limits
                .as_ref()
                .and_then(|l| l.get(r))
                .or_else(|| res.requests.as_ref().and_then(|q| q.get(r)));
            if let Some(v) = v {
                let n = quantity(v).ok_or_else(|| {
                    Error::Pod(format!(
                        "pod {} container {:?}: {r} quantity {v} is not a whole number of GPUs",
                        pod.key(),
                        c.name.as_deref().unwrap_or("")
                    ))
                })?;
                whole = whole.saturating_add(n);
            }
        }
    }
    let mut need = match usize::try_from(whole) {
        Ok(0) => Need::None,
        Ok(k) => Need::Whole(k),
        Err(_) => Need::Whole(usize::MAX),
    };
    if let Some(m) = pod.annotation(MILLI_KEY) {
        let milli: u64 = m.trim().parse().ok().filter(|&v| v > 0).ok_or_else(|| {
            Error::Pod(format!(
                "pod {}: annotation {MILLI_KEY} {m:?} is not a positive whole number of milli-GPUs",
                pod.key()
            ))
        })?;
        need = if milli < 1000 {
            Need::Fraction(milli)
        } else {
            Need::Whole(usize::try_from(milli.div_ceil(1000)).unwrap_or(usize::MAX))
        };
    }
    let nvlink_required = match pod.annotation(NVLINK_KEY).map(str::trim) {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("preferred") => false,
        Some(v) if v.eq_ignore_ascii_case("required") => true,
        Some(v) => {
            return Err(Error::Pod(format!(
                "pod {}: annotation {NVLINK_KEY} {v:?} is neither \"required\" nor \"preferred\"",
                pod.key()
            )));
        }
    };
    Ok(PodNeed {
        need,
        nvlink_required,
    })
}

/// What linkwise knows about one node.
#[derive(Debug, Clone)]
pub enum NodeView {
    /// The node's parsed `linkwise.dev/fabric` annotation.
    Known(Arc<NodeFabric>),
    /// Nothing usable, and why (not cached, no annotation, unreadable annotation).
    Unknown(String),
}

impl NodeView {
    /// The view of an annotation value (`None`: the node has none).
    pub fn from_annotation(value: Option<&str>) -> NodeView {
        match value {
            None => NodeView::Unknown(format!("no {} annotation", linkwise_core::annotation::KEY)),
            Some(v) => match NodeFabric::parse(v) {
                Ok(f) => {
                    let distinct: BTreeSet<&String> = f.gpus.iter().collect();
                    if distinct.len() == f.gpus.len() {
                        NodeView::Known(Arc::new(f))
                    } else {
                        NodeView::Unknown("unreadable annotation: a GPU id appears twice".into())
                    }
                }
                Err(e) => NodeView::Unknown(format!("unreadable annotation: {e}")),
            },
        }
    }
}

/// Parsed annotations by node: a node whose annotation text is unchanged since the last
/// request reuses its parsed view, so a request pays one string comparison per such node
/// instead of a JSON parse (the annotation changes only when the node's GPUs do).
#[derive(Debug, Default)]
pub struct ViewCache {
    map: Mutex<HashMap<String, (String, NodeView)>>,
}

/// Nodes remembered before the view cache starts over (far above any cluster's size).
const VIEWS: usize = 1 << 17;

impl ViewCache {
    /// The view of `node`'s annotation `value`, parsed only when it differs from the
    /// value last seen for that node.
    pub fn view(&self, node: &str, value: Option<&str>) -> NodeView {
        let Some(v) = value else {
            return NodeView::from_annotation(None);
        };
        if let Ok(m) = self.map.lock()
            && let Some((seen, view)) = m.get(node)
            && seen == v
        {
            return view.clone();
        }
        let view = NodeView::from_annotation(Some(v));
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= VIEWS && !m.contains_key(node) {
                m.clear();
            }
            m.insert(node.to_string(), (v.to_string(), view.clone()));
        }
        view
    }
}

/// The filter's answer for one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The node stays.
    Pass,
    /// Fails now; preemption could free GPUs.
    Fail(String),
    /// Fails whatever is preempted.
    Unresolvable(String),
}

/// Positions of healthy GPUs, free healthy GPUs, and per island the free healthy count.
struct Counts {
    healthy: usize,
    free: Vec<usize>,
    largest_island: usize,
    largest_free_island: usize,
}

fn counts(f: &NodeFabric) -> Counts {
    let unhealthy: BTreeSet<usize> = f.unhealthy.iter().copied().collect();
    let free: BTreeSet<usize> = f
        .free
        .iter()
        .copied()
        .filter(|p| !unhealthy.contains(p) && *p < f.gpus.len())
        .collect();
    let healthy_in = |is: &Vec<usize>| {
        is.iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|p| !unhealthy.contains(p))
            .count()
    };
    let free_in = |is: &Vec<usize>| {
        is.iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|p| free.contains(p))
            .count()
    };
    Counts {
        healthy: f.gpus.len().saturating_sub(unhealthy.len()),
        largest_island: f.islands.iter().map(healthy_in).max().unwrap_or(0),
        largest_free_island: f.islands.iter().map(free_in).max().unwrap_or(0),
        free: free.into_iter().collect(),
    }
}

/// The filter verdict for a node (unknown nodes pass: linkwise cannot judge them).
pub fn verdict(need: PodNeed, node: &NodeView) -> Verdict {
    let NodeView::Known(f) = node else {
        return Verdict::Pass;
    };
    if need.need == Need::None {
        return Verdict::Pass;
    }
    if f.gpus.is_empty() {
        return Verdict::Unresolvable("node has no GPUs".into());
    }
    let c = counts(f);
    match need.need {
        Need::None => Verdict::Pass,
        Need::Fraction(_) if c.healthy == 0 => {
            Verdict::Unresolvable("node has no healthy GPU".into())
        }
        Need::Fraction(_) => Verdict::Pass,
        Need::Whole(k) => {
            if c.healthy < k {
                return Verdict::Unresolvable(format!(
                    "node has {} healthy GPUs, the pod needs {k}",
                    c.healthy
                ));
            }
            let required = need.nvlink_required && k > 1;
            if required && c.largest_island < k {
                return Verdict::Unresolvable(format!(
                    "no {k}-GPU NVLink island on the node (largest has {} healthy GPUs)",
                    c.largest_island
                ));
            }
            if c.free.len() < k {
                return Verdict::Fail(format!("{k} GPUs requested, {} free", c.free.len()));
            }
            if required && c.largest_free_island < k {
                return Verdict::Fail(format!("no {k}-GPU NVLink-connected set free"));
            }
            Verdict::Pass
        }
    }
}

/// Allocators by node shape (GPU count, lanes, NUMA): nodes of one model share one.
#[derive(Debug, Default)]
pub struct AllocCache {
    map: Mutex<HashMap<Vec<u32>, Arc<Allocator>>>,
}

/// Shapes kept before the cache starts over.
const SHAPES: usize = 256;

impl AllocCache {
    /// The allocator of `f`'s shape; its GPU ids are the positions (`"0"`, `"1"`, ...).
    pub fn get(&self, f: &NodeFabric) -> Arc<Allocator> {
        let mut key = Vec::with_capacity(1 + f.gpus.len() * (f.gpus.len() + 1));
        key.push(u32::try_from(f.gpus.len()).unwrap_or(u32::MAX));
        key.extend(f.lanes.iter().flatten().copied());
        key.extend(f.numa.iter().map(|n| n.unwrap_or(u32::MAX)));
        if let Ok(m) = self.map.lock()
            && let Some(a) = m.get(&key)
        {
            return a.clone();
        }
        let shape = NodeFabric {
            gpus: (0..f.gpus.len()).map(|p| p.to_string()).collect(),
            free: Vec::new(),
            unhealthy: Vec::new(),
            clique: None,
            ..f.clone()
        };
        let a = Arc::new(Allocator::new(&shape.to_topology("node")));
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= SHAPES {
                m.clear();
            }
            m.insert(key, a.clone());
        }
        a
    }
}

/// The best set's quality on one node (inputs to the score).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fit {
    /// The placement policy's score of taking the set ([`policy_score`]).
    policy: i64,
    /// Ring bottleneck of the best set, MB/s.
    bottleneck: u64,
    /// The set is connected by NVLink links among its own GPUs.
    nvlink_connected: bool,
    /// Intact islands the set breaks into.
    opened: u32,
}

/// Best fits already found in one request, by allocator (node shape), free set and size: nodes
/// of one model in the same state share one search (and one policy score). The allocator is kept with its
/// entries, so its address cannot be reused by another shape while the memo lives.
type FitMemo = HashMap<(usize, Vec<usize>, usize), (Arc<Allocator>, Option<Fit>)>;

fn best_fit(
    f: &NodeFabric,
    k: usize,
    allocs: &AllocCache,
    frag: &FragIndex,
    memo: &mut FitMemo,
) -> Option<Fit> {
    let c = counts(f);
    if c.free.len() < k || k == 0 {
        return None;
    }
    let al = allocs.get(f);
    let key = (Arc::as_ptr(&al) as usize, c.free, k);
    if let Some((_, fit)) = memo.get(&key) {
        return *fit;
    }
    let fit = search_fit(&al, f.gpus.len(), &key.1, k, frag);
    memo.insert(key, (al, fit));
    fit
}

fn search_fit(
    al: &Allocator,
    gpus: usize,
    free: &[usize],
    k: usize,
    frag: &FragIndex,
) -> Option<Fit> {
    let req = AllocRequest {
        available: free.iter().map(|p| GpuId(p.to_string())).collect(),
        size: k,
        ..AllocRequest::default()
    };
    let a = al.allocate(&req).ok()?;
    let set = &a.positions;
    // NVLink-connected: a search over the set's own NVLink links reaches every GPU.
    let mut seen = vec![false; set.len()];
    let mut stack = vec![0usize];
    if let Some(s) = seen.first_mut() {
        *s = true;
    }
    while let Some(x) = stack.pop() {
        for y in 0..set.len() {
            if !seen[y] && al.lanes(set[x], set[y]) > 0 {
                seen[y] = true;
                stack.push(y);
            }
        }
    }
    Some(Fit {
        policy: policy_score(gpus, free, set, k, frag),
        bottleneck: a.score.bottleneck_mbps,
        nvlink_connected: seen.iter().all(|&s| s),
        opened: a.score.opened,
    })
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The placement policy's score for taking `set` out of the node's `free` GPUs (of `n`):
/// FGD's integer score of the fragmentation change against the typical pods, as
/// `default` scores whole-GPU pods — coarsened to a third for a single GPU — on the GPUs
/// alone (the annotation carries no CPU: every typical pod's CPU is taken to fit).
fn policy_score(n: usize, free: &[usize], set: &[usize], k: usize, frag: &FragIndex) -> i64 {
    let mut gpu_free = vec![0u32; n];
    for &p in free {
        if let Some(g) = gpu_free.get_mut(p) {
            *g = GPU_MILLI;
        }
    }
    let before = frag.frag(0, u64::MAX, &gpu_free);
    for &p in set {
        if let Some(g) = gpu_free.get_mut(p) {
            *g = 0;
        }
    }
    let s = fgd_score(before - frag.frag(0, u64::MAX, &gpu_free));
    if k == 1 { s / 3 } else { s }
}

/// Scores 0..=10 for the nodes, in their order (formula in `docs/extender.md`); `frag` is
/// the placement policy's view of the typical pods.
pub fn scores(
    need: PodNeed,
    nodes: &[NodeView],
    allocs: &AllocCache,
    frag: &FragIndex,
) -> Vec<i64> {
    let whole = |k: usize| -> Vec<Option<Fit>> {
        let mut memo = FitMemo::new();
        nodes
            .iter()
            .map(|n| match n {
                NodeView::Known(f) if verdict(need, n) == Verdict::Pass => {
                    best_fit(f, k, allocs, frag, &mut memo)
                }
                _ => None,
            })
            .collect()
    };
    let rank = |k: usize, fits: &[Option<Fit>]| -> Vec<i64> {
        // The two best distinct policy scores among the candidates.
        let mut top: Vec<i64> = fits.iter().flatten().map(|f| f.policy).collect();
        top.sort_unstable_by(|a, b| b.cmp(a));
        top.dedup();
        let bmax = fits
            .iter()
            .flatten()
            .map(|f| f.bottleneck)
            .max()
            .unwrap_or(0);
        fits.iter()
            .map(|f| {
                let Some(f) = f else { return 0 };
                let fabric = if k <= 1 {
                    7
                } else {
                    let ring = if bmax == 0 {
                        0
                    } else {
                        to_i64(
                            (3 * u128::from(f.bottleneck) + u128::from(bmax) / 2)
                                .checked_div(u128::from(bmax))
                                .map_or(0, |v| u64::try_from(v).unwrap_or(3)),
                        )
                    };
                    let base = if f.nvlink_connected { 4 } else { 0 };
                    base + ring.min(3)
                };
                let whole_islands = i64::from(f.opened == 0);
                let tier = match top.iter().position(|&t| t == f.policy) {
                    Some(0) => 2,
                    Some(1) => 1,
                    _ => 0,
                };
                let fit = whole_islands + tier;
                (fabric + fit).clamp(0, MAX_SCORE)
            })
            .collect()
    };
    match need.need {
        Need::None => vec![0; nodes.len()],
        Need::Whole(k) => rank(k, &whole(k)),
        Need::Fraction(_) => {
            let one = rank(1, &whole(1));
            nodes
                .iter()
                .zip(one)
                .map(|(n, s)| match n {
                    NodeView::Known(f) if verdict(need, n) == Verdict::Pass => {
                        let c = counts(f);
                        if c.healthy > c.free.len() {
                            // A healthy GPU is in use: the share can go there and every
                            // free GPU stays whole.
                            MAX_SCORE
                        } else {
                            (s - 3).max(0)
                        }
                    }
                    _ => 0,
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    fn fabric(profile: &str, used: &[usize]) -> String {
        let topo = linkwise_core::profiles::get(profile).unwrap();
        let used = used.iter().map(|&p| topo.gpus[p].id.0.clone()).collect();
        NodeFabric::new(
            &topo,
            &topo.hosts[0].name,
            "nvidia.com/gpu",
            &used,
            &BTreeSet::new(),
        )
        .to_value()
    }

    fn free(v: &NodeView) -> Vec<usize> {
        match v {
            NodeView::Known(f) => f.free.clone(),
            NodeView::Unknown(why) => panic!("unknown: {why}"),
        }
    }

    /// Regression (issue 13, item 2): the view cache must never serve a node's old
    /// annotation once it has changed.
    #[test]
    fn a_changed_annotation_is_parsed_again() {
        let cache = ViewCache::default();
        let (a, b) = (fabric("dgx-h100", &[]), fabric("dgx-h100", &[0, 1]));
        assert_eq!(free(&cache.view("n1", Some(&a))).len(), 8);
        assert_eq!(free(&cache.view("n1", Some(&b))), vec![2, 3, 4, 5, 6, 7]);
        assert_eq!(free(&cache.view("n2", Some(&a))).len(), 8, "per node");
        assert_eq!(free(&cache.view("n1", Some(&b))), vec![2, 3, 4, 5, 6, 7]);
        assert!(matches!(cache.view("n1", None), NodeView::Unknown(_)));
        assert!(matches!(cache.view("n1", Some("{")), NodeView::Unknown(_)));
    }

    /// The per-request fit memo gives every node the fit a search of its own finds.
    #[test]
    fn shared_searches_find_what_each_node_finds_alone() {
        let nodes = [
            ("dgx1-v100", &[][..]),
            ("dgx1-v100", &[0, 5][..]),
            ("dgx-h100", &[1][..]),
            ("dgx1-v100", &[0, 5][..]),
            ("pcie-8gpu", &[][..]),
            ("dgx1-v100", &[][..]),
            ("dgx1-v100", &[0, 6][..]),
        ];
        let allocs = AllocCache::default();
        let frag = FragIndex::new(&default_typical());
        let mut memo = FitMemo::new();
        for k in 1..=4 {
            for (p, used) in nodes {
                let NodeView::Known(f) = NodeView::from_annotation(Some(&fabric(p, used))) else {
                    panic!("{p}: unreadable");
                };
                let shared = best_fit(&f, k, &allocs, &frag, &mut memo);
                let alone = search_fit(
                    &AllocCache::default().get(&f),
                    f.gpus.len(),
                    &counts(&f).free,
                    k,
                    &frag,
                );
                assert_eq!(shared, alone, "{p} {used:?} k={k}");
            }
        }
        assert_eq!(
            memo.len(),
            4 * 5,
            "four sizes of five distinct shapes and free sets"
        );
    }
}
