//! The node annotation the agent publishes for the scheduler extender: what the node's
//! fabric is and which GPUs are free, compact and versioned (`docs/node-annotation.md`).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::{Error, GpuId, Result, Topology};

/// The annotation key.
pub const KEY: &str = "linkwise.dev/fabric";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;

/// The node's fabric and free GPUs. GPUs are referred to by their position in `gpus`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeFabric {
    /// Format version ([`VERSION`]).
    pub v: u32,
    /// The extended resource the GPUs are advertised as.
    pub resource: String,
    /// GPU ids (as the device plugin advertises them), in index order.
    pub gpus: Vec<String>,
    /// NUMA node per GPU (`null` when unknown).
    pub numa: Vec<Option<u32>>,
    /// NVLink lanes between every pair (the pair matrix's `NV#`, 0 without NVLink).
    pub lanes: Vec<Vec<u32>>,
    /// NVLink islands of the node, as position lists (islands of one included).
    pub islands: Vec<Vec<usize>>,
    /// The multi-node NVLink clique (`<clusterUUID>.<cliqueId>`), when every GPU has the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clique: Option<String>,
    /// Positions of the GPUs no container holds and that are healthy.
    pub free: Vec<usize>,
    /// Positions of the unhealthy GPUs.
    pub unhealthy: Vec<usize>,
}

impl NodeFabric {
    /// The annotation for `host` of `topo`: `used` are the device ids containers hold,
    /// `unhealthy` those marked unhealthy.
    pub fn new(
        topo: &Topology,
        host: &str,
        resource: &str,
        used: &BTreeSet<String>,
        unhealthy: &BTreeSet<GpuId>,
    ) -> Self {
        let m = topo.pair_matrix();
        let pos: Vec<usize> = topo
            .gpus
            .iter()
            .enumerate()
            .filter(|(_, g)| g.host == host)
            .map(|(i, _)| i)
            .collect();
        let gpus: Vec<&crate::Gpu> = pos.iter().map(|&i| &topo.gpus[i]).collect();
        let local = |id: &GpuId| gpus.iter().position(|g| &g.id == id);
        let islands = topo
            .islands_of(&m)
            .iter()
            .map(|is| is.gpus.iter().filter_map(local).collect::<Vec<_>>())
            .filter(|v| !v.is_empty())
            .collect();
        let cliques: BTreeSet<Option<String>> = gpus
            .iter()
            .map(|g| g.fabric.as_ref().map(|f| f.clique()))
            .collect();
        let clique = match cliques.into_iter().collect::<Vec<_>>().as_slice() {
            [Some(c)] => Some(c.clone()),
            _ => None,
        };
        NodeFabric {
            v: VERSION,
            resource: resource.to_string(),
            gpus: gpus.iter().map(|g| g.id.0.clone()).collect(),
            numa: gpus.iter().map(|g| g.numa_node).collect(),
            lanes: pos
                .iter()
                .map(|&i| pos.iter().map(|&j| m.cell(i, j).nvlink_lanes()).collect())
                .collect(),
            islands,
            clique,
            free: gpus
                .iter()
                .enumerate()
                .filter(|(_, g)| !used.contains(&g.id.0) && !unhealthy.contains(&g.id))
                .map(|(i, _)| i)
                .collect(),
            unhealthy: gpus
                .iter()
                .enumerate()
                .filter(|(_, g)| unhealthy.contains(&g.id))
                .map(|(i, _)| i)
                .collect(),
        }
    }

    /// The annotation value: compact JSON.
    pub fn to_value(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads an annotation value, checking the version and that every position and
    /// matrix row fits the GPU list.
    pub fn parse(s: &str) -> Result<Self> {
        let f: NodeFabric = serde_json::from_str(s).map_err(|e| Error::Syntax {
            line: e.line(),
            column: e.column(),
            field: String::new(),
            message: e.to_string(),
        })?;
        if f.v != VERSION {
            return Err(Error::UnsupportedVersion {
                found: f.v,
                supported: VERSION,
            });
        }
        let n = f.gpus.len();
        let bad = |field: &str, m: &str| Err(Error::invalid(field, m));
        if f.numa.len() != n {
            return bad("numa", "one entry per GPU");
        }
        if f.lanes.len() != n || f.lanes.iter().any(|r| r.len() != n) {
            return bad("lanes", "an n x n matrix over the GPUs");
        }
        for (field, list) in [("free", &f.free), ("unhealthy", &f.unhealthy)] {
            if list.iter().any(|&p| p >= n) {
                return bad(field, "a position past the GPU list");
            }
        }
        if f.islands.iter().flatten().any(|&p| p >= n) {
            return bad("islands", "a position past the GPU list");
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_annotations_are_rejected() {
        for bad in [
            "",
            "{}",
            r#"{"v":2,"resource":"r","gpus":[],"numa":[],"lanes":[],"islands":[],"free":[],"unhealthy":[]}"#,
            r#"{"v":1,"resource":"r","gpus":["a"],"numa":[null],"lanes":[[0]],"islands":[[0]],"free":[3],"unhealthy":[]}"#,
            r#"{"v":1,"resource":"r","gpus":["a"],"numa":[null],"lanes":[[0,1]],"islands":[[0]],"free":[],"unhealthy":[]}"#,
        ] {
            assert!(NodeFabric::parse(bad).is_err(), "{bad}");
        }
    }
}
