//! Cluster placement: which node a pod goes to (and which GPUs on it), pure and
//! deterministic. The simulator (`linkwise sim`) and the scheduler extender share it.
//!
//! What it is: a cluster model ([`Cluster`]: nodes with CPU, memory, GPU model, per-GPU
//! free milli-GPU and NVLink islands), pod requests ([`PodSpec`]), the filter
//! ([`Cluster::fits`]), the fragmentation measure of the FGD paper ([`frag`]), and the
//! placement policies ([`policies`]): the paper's baselines (Random, DotProd,
//! GpuClustering, GpuPacking, BestFit, FGD) and linkwise's default (`docs/placement.md`).
//! What it is not: I/O (the CLI reads the trace CSVs), time, or an RNG source: random
//! choices use the seeded [`Rng`] the caller passes.

pub mod frag;
pub mod policies;
pub mod replay;
mod rng;

pub use rng::Rng;

use std::collections::BTreeSet;

/// Milli-GPU of one whole GPU.
pub const GPU_MILLI: u32 = 1000;

/// A node as the trace lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// Node name.
    pub name: String,
    /// CPU capacity, milli-CPU.
    pub cpu_milli: u64,
    /// Memory capacity, MiB.
    pub memory_mib: u64,
    /// GPU count.
    pub gpus: u32,
    /// GPU model (`G2`, `T4`, `V100M16`, ...); `None` for CPU-only nodes.
    pub model: Option<String>,
    /// NVLink islands as sets of GPU indices (each GPU in exactly one; a GPU alone when it
    /// has no NVLink). Empty means every GPU is its own island.
    pub islands: Vec<Vec<u32>>,
}

/// A pod request as the trace lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSpec {
    /// Pod name.
    pub name: String,
    /// CPU request, milli-CPU.
    pub cpu_milli: u64,
    /// Memory request, MiB.
    pub memory_mib: u64,
    /// GPUs requested (0 for CPU-only pods).
    pub num_gpu: u32,
    /// Share of each requested GPU, milli-GPU (1000 = whole GPUs; < 1000 only when
    /// `num_gpu == 1`: a GPU-sharing pod).
    pub gpu_milli: u32,
    /// Allowed GPU models; empty = any.
    pub gpu_spec: BTreeSet<String>,
}

impl PodSpec {
    /// Total GPU request, milli-GPU.
    pub fn gpu_request_milli(&self) -> u64 {
        u64::from(self.num_gpu) * u64::from(self.gpu_milli)
    }
}

/// A node's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    /// The node.
    pub spec: NodeSpec,
    /// Free CPU, milli-CPU.
    pub cpu_free: u64,
    /// Free memory, MiB.
    pub memory_free: u64,
    /// Free milli-GPU per GPU (1000 = untouched).
    pub gpu_free: Vec<u32>,
}

/// Where a pod goes: the node and the GPUs on it (one GPU for a sharing pod, `num_gpu`
/// distinct GPUs otherwise, none for a CPU-only pod).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Node position in [`Cluster::nodes`].
    pub node: usize,
    /// GPU indices on that node.
    pub gpus: Vec<u32>,
}

/// The cluster: every node's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// Nodes in trace order.
    pub nodes: Vec<NodeState>,
}

impl Cluster {
    /// An empty cluster of these nodes.
    pub fn new(specs: Vec<NodeSpec>) -> Self {
        Cluster {
            nodes: specs
                .into_iter()
                .map(|spec| NodeState {
                    cpu_free: spec.cpu_milli,
                    memory_free: spec.memory_mib,
                    gpu_free: vec![GPU_MILLI; spec.gpus as usize],
                    spec,
                })
                .collect(),
        }
    }

    /// Total GPUs.
    pub fn total_gpus(&self) -> u64 {
        self.nodes.iter().map(|n| u64::from(n.spec.gpus)).sum()
    }

    /// Allocated milli-GPU over the cluster.
    pub fn allocated_milli(&self) -> u64 {
        self.nodes
            .iter()
            .flat_map(|n| &n.gpu_free)
            .map(|&f| u64::from(GPU_MILLI - f))
            .sum()
    }

    /// Whether `pod` fits on node `n` at all: CPU, memory, GPU model, and enough GPUs with
    /// enough free milli-GPU each.
    pub fn fits(&self, n: usize, pod: &PodSpec) -> bool {
        self.nodes.get(n).is_some_and(|node| node.fits(pod))
    }

    /// Applies a placement. Panics in debug builds when it does not fit (a policy bug).
    pub fn apply(&mut self, pod: &PodSpec, p: &Placement) {
        let node = &mut self.nodes[p.node];
        node.cpu_free = node.cpu_free.saturating_sub(pod.cpu_milli);
        node.memory_free = node.memory_free.saturating_sub(pod.memory_mib);
        for &g in &p.gpus {
            let f = &mut node.gpu_free[g as usize];
            debug_assert!(*f >= pod.gpu_milli, "{}: GPU {g} over-committed", pod.name);
            *f = f.saturating_sub(pod.gpu_milli);
        }
    }
}

impl NodeState {
    /// Whether the GPU model is allowed by the pod's spec.
    pub fn model_allowed(&self, pod: &PodSpec) -> bool {
        pod.gpu_spec.is_empty()
            || self
                .spec
                .model
                .as_ref()
                .is_some_and(|m| pod.gpu_spec.contains(m))
    }

    /// Whether `pod` fits: CPU, memory, GPU model, enough GPUs with the per-GPU share free.
    pub fn fits(&self, pod: &PodSpec) -> bool {
        if self.cpu_free < pod.cpu_milli || self.memory_free < pod.memory_mib {
            return false;
        }
        if pod.num_gpu == 0 {
            return true;
        }
        if !self.model_allowed(pod) {
            return false;
        }
        let enough = self
            .gpu_free
            .iter()
            .filter(|&&f| f >= pod.gpu_milli)
            .count();
        enough >= pod.num_gpu as usize
    }

    /// The island of GPU `g` (its own when islands are not modelled).
    pub fn island_of(&self, g: u32) -> Vec<u32> {
        self.spec
            .islands
            .iter()
            .find(|i| i.contains(&g))
            .cloned()
            .unwrap_or_else(|| vec![g])
    }
}

/// Chooses a node and GPUs for a pod, or `None` when no node fits.
///
/// A policy may keep state between calls for one cluster — the node order drawn at its
/// first call, per-node scores valid while a node's free CPU and GPUs are unchanged — so
/// one instance serves one cluster: the nodes' states may change between calls (also
/// behind the policy's back), their specs and count may not. Use a fresh instance
/// ([`policies::by_name`]) for another cluster; a different node count is detected and
/// starts over, different specs of the same count are not.
pub trait Policy {
    /// The policy's name (`random`, `dotprod`, `gpu-clustering`, `gpu-packing`, `bestfit`,
    /// `fgd`, `default`).
    fn name(&self) -> &'static str;
    /// The placement for `pod` on `cluster`; must fit ([`Cluster::fits`]).
    fn place(&mut self, cluster: &Cluster, pod: &PodSpec, rng: &mut Rng) -> Option<Placement>;
}
