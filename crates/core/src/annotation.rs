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

    /// A minimal [`Topology`] of the annotated node, enough for
    /// [`crate::alloc::Allocator::new`]: one host named `node` (with the NUMA nodes the
    /// annotation names), one GPU per entry of `gpus` (index = position, NUMA node from
    /// `numa`, unhealthy positions marked unhealthy) and one NVLink link per pair with
    /// lanes (generation unknown). Pairs without NVLink take the pair matrix's fallback
    /// class (`NODE` on one NUMA node, `SYS` across). Islands follow from the links.
    pub fn to_topology(&self, node: &str) -> Topology {
        let mut host = crate::Host::named(node);
        let numa: BTreeSet<u32> = self.numa.iter().flatten().copied().collect();
        host.numa_nodes = numa
            .into_iter()
            .map(|id| crate::NumaNode {
                id,
                cpus: crate::CpuSet::default(),
                memory_bytes: None,
            })
            .collect();
        let gpus = self
            .gpus
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let mut g = crate::Gpu::new(
                    id.clone(),
                    u32::try_from(i).unwrap_or(u32::MAX),
                    node,
                    "unknown",
                );
                g.numa_node = self.numa.get(i).copied().flatten();
                if self.unhealthy.contains(&i) {
                    g.health = crate::Health::Unhealthy {
                        reason: "unhealthy in the node annotation".to_string(),
                    };
                }
                g
            })
            .collect();
        let mut links = Vec::new();
        for (i, row) in self.lanes.iter().enumerate() {
            for (j, &lanes) in row.iter().enumerate().skip(i + 1) {
                if lanes > 0 && j < self.gpus.len() && i < self.gpus.len() {
                    links.push(crate::Link::new(
                        crate::Endpoint::Gpu(GpuId(self.gpus[i].clone())),
                        crate::Endpoint::Gpu(GpuId(self.gpus[j].clone())),
                        crate::LinkKind::Nvlink {
                            lanes,
                            generation: None,
                        },
                    ));
                }
            }
        }
        Topology {
            source: format!("annotation:{node}"),
            hosts: vec![host],
            gpus,
            links,
            ..Topology::default()
        }
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

    #[test]
    fn to_topology_rebuilds_lanes_and_islands() {
        let f = NodeFabric::parse(
            r#"{"v":1,"resource":"nvidia.com/gpu","gpus":["a","b","c","d"],"numa":[0,0,1,1],"lanes":[[0,4,0,0],[4,0,0,0],[0,0,0,4],[0,0,4,0]],"islands":[[0,1],[2,3]],"free":[0,2,3],"unhealthy":[1]}"#,
        )
        .expect("valid annotation");
        let t = f.to_topology("n1");
        assert_eq!(t.validate(), Ok(()));
        assert_eq!(t.gpus.len(), 4);
        assert!(!t.gpus[1].health.is_healthy());
        let m = t.pair_matrix();
        assert_eq!(m.cell(0, 1).nvlink_lanes(), 4);
        assert_eq!(m.cell(0, 2).label(), "SYS");
        let islands: Vec<Vec<String>> = t
            .islands_of(&m)
            .iter()
            .map(|i| i.gpus.iter().map(|g| g.0.clone()).collect())
            .collect();
        assert_eq!(islands, vec![vec!["a", "b"], vec!["c", "d"]]);
        // The allocator works on it and picks the free NVLink pair.
        let al = crate::alloc::Allocator::new(&t);
        let a = al
            .allocate(&crate::alloc::AllocRequest {
                available: ["a", "c", "d"]
                    .iter()
                    .map(|s| GpuId((*s).to_string()))
                    .collect(),
                size: 2,
                ..Default::default()
            })
            .expect("fits");
        assert_eq!(a.positions, vec![2, 3]);
        assert_eq!(a.score.islands, 1);
    }
}
