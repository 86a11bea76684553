//! This node's devices: the host of the topology that is this node, its GPUs under their
//! device names, and its pool of ResourceSlices as `linkwise dra slices` renders it.

use std::collections::BTreeMap;

use linkwise_core::{GpuId, Topology};
use linkwise_dra::Driver;
use linkwise_dra::api::ResourceSlice;

use crate::Error;

/// One GPU of the node as a DRA device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDevice {
    /// The device name in the pool (`gpu-<index>`).
    pub name: String,
    /// The GPU.
    pub gpu: GpuId,
    /// The GPU's index (`/dev/nvidia<index>`).
    pub index: u32,
    /// The GPU's UUID, else its id: what `NVIDIA_VISIBLE_DEVICES` names.
    pub visible_id: String,
    /// The NVLink island, prefixed with the node name as the slices publish it.
    pub island: Option<String>,
}

/// The node's devices and its pool.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeDevices {
    node: String,
    devices: BTreeMap<String, NodeDevice>,
    slices: Vec<ResourceSlice>,
}

impl NodeDevices {
    /// The devices of `node` in `topo`: the host named `node`, else the only host of a
    /// single-host topology (published under `node`'s name). A topology of several hosts
    /// none of which is `node` is an error naming them.
    pub fn new(topo: &Topology, driver: &Driver, node: &str) -> Result<Self, Error> {
        let host = if topo.host(node).is_some() {
            node.to_string()
        } else if let [only] = topo.hosts.as_slice() {
            only.name.clone()
        } else if topo.hosts.is_empty() {
            return Err(Error::Node(format!(
                "the topology ({}) has no host",
                topo.source
            )));
        } else {
            let names: Vec<&str> = topo.hosts.iter().map(|h| h.name.as_str()).collect();
            return Err(Error::Node(format!(
                "the topology ({}) has hosts {}, none named {node:?}: give --node-name one of them",
                topo.source,
                names.join(", ")
            )));
        };
        let islands = topo.island_names();
        let devices = topo
            .gpus
            .iter()
            .filter(|g| g.host == host)
            .map(|g| {
                let d = NodeDevice {
                    name: format!("gpu-{}", g.index),
                    gpu: g.id.clone(),
                    index: g.index,
                    visible_id: g.uuid.clone().unwrap_or_else(|| g.id.0.clone()),
                    island: islands.get(&g.id).map(|i| format!("{node}-{i}")),
                };
                (d.name.clone(), d)
            })
            .collect();
        let label = linkwise_dra::names::dns_label;
        let slices = linkwise_dra::slices(topo, driver)
            .into_iter()
            .filter(|s| s.spec.node_name == host)
            .map(|mut s| {
                if host != node {
                    // The pool and slice names follow the node, as `dra slices` would
                    // name them for a host called `node`.
                    s.metadata.name = s.metadata.name.replacen(&label(&host), &label(node), 1);
                    s.spec.node_name = node.to_string();
                    s.spec.pool.name = node.to_string();
                    for d in &mut s.spec.devices {
                        for (k, v) in &mut d.attributes {
                            if let linkwise_dra::api::Attribute::String(text) = v
                                && (k == "nvlinkIsland" || k == "nvlinkDomain")
                                && let Some(rest) = text.strip_prefix(&format!("{host}-"))
                            {
                                *text = format!("{node}-{rest}");
                            }
                        }
                    }
                }
                s
            })
            .collect();
        Ok(NodeDevices {
            node: node.to_string(),
            devices,
            slices,
        })
    }

    /// The node's name (the pool's).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The device named `name` (`gpu-3`).
    pub fn device(&self, name: &str) -> Option<&NodeDevice> {
        self.devices.get(name)
    }

    /// Every device, by name.
    pub fn devices(&self) -> impl Iterator<Item = &NodeDevice> {
        self.devices.values()
    }

    /// The pool with every device (all healthy), as `linkwise dra slices` renders it.
    pub fn slices(&self) -> &[ResourceSlice] {
        &self.slices
    }

    /// The pool at `generation` without the devices `unhealthy` names.
    pub fn slices_at(&self, generation: u64, unhealthy: &[String]) -> Vec<ResourceSlice> {
        self.slices
            .iter()
            .cloned()
            .map(|mut s| {
                s.spec.pool.generation = generation;
                s.spec.devices.retain(|d| !unhealthy.contains(&d.name));
                s
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn driver() -> Driver {
        Driver::new("gpu.linkwise.dev").unwrap()
    }

    #[test]
    fn a_single_host_is_published_under_the_node_name() {
        let topo = linkwise_core::profiles::get("dgx-h100").unwrap();
        let host = topo.hosts[0].name.clone();
        let same = NodeDevices::new(&topo, &driver(), &host).unwrap();
        assert_eq!(
            same.slices(),
            linkwise_dra::slices(&topo, &driver()).as_slice()
        );
        let other = NodeDevices::new(&topo, &driver(), "node-a").unwrap();
        let s = &other.slices()[0];
        assert_eq!(s.spec.node_name, "node-a");
        assert_eq!(s.spec.pool.name, "node-a");
        assert!(
            s.metadata.name.starts_with("node-a-"),
            "{}",
            s.metadata.name
        );
        assert_eq!(other.devices().count(), 8);
        assert!(other.device("gpu-7").is_some());
        assert!(other.device("gpu-8").is_none());
        let island = other.device("gpu-0").unwrap().island.clone().unwrap();
        assert!(island.starts_with("node-a-"), "{island}");
    }

    #[test]
    fn several_hosts_need_the_node_name_of_one() {
        let topo = linkwise_core::profiles::get("nvl72").unwrap();
        assert!(topo.hosts.len() > 1);
        let err = NodeDevices::new(&topo, &driver(), "elsewhere").unwrap_err();
        assert!(
            err.to_string().contains("none named \"elsewhere\""),
            "{err}"
        );
        let host = topo.hosts[1].name.clone();
        let nd = NodeDevices::new(&topo, &driver(), &host).unwrap();
        assert_eq!(nd.slices().len(), 1);
        assert_eq!(nd.slices()[0].spec.node_name, host);
    }

    #[test]
    fn unhealthy_devices_leave_the_pool() {
        let topo = linkwise_core::profiles::get("dgx-h100").unwrap();
        let nd = NodeDevices::new(&topo, &driver(), "n").unwrap();
        let s = nd.slices_at(4, &["gpu-3".to_string()]);
        assert_eq!(s[0].spec.pool.generation, 4);
        assert_eq!(s[0].spec.devices.len(), 7);
        assert!(s[0].spec.devices.iter().all(|d| d.name != "gpu-3"));
    }
}
