//! The FGD paper's fragmentation measure: typical pods (the target workload) and the
//! fragment of a node with respect to them.

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
    pub gpu_spec: std::collections::BTreeSet<String>,
    /// Frequency (the shapes' frequencies sum to 1).
    pub p: f64,
}

/// The target workload: the most popular shapes of the original (un-inflated) trace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TypicalPods {
    /// The shapes, most popular first.
    pub shapes: Vec<TypicalShape>,
}

impl TypicalPods {
    /// Shapes in descending popularity until they cover `threshold` (0..1) of the pods,
    /// renormalised (the paper's simulator: threshold 0.95, CPU-only pods included).
    pub fn from_trace(pods: &[PodSpec], threshold: f64) -> Self {
        let _ = (pods, threshold);
        TypicalPods::default()
    }
}

/// The fragment of `node` with respect to `typical`, in milli-GPU (the expected free GPU
/// milli that a pod drawn from the target workload could not use).
pub fn node_frag(node: &NodeState, typical: &TypicalPods) -> f64 {
    let _ = (node, typical);
    0.0
}
