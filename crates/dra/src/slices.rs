//! ResourceSlices from the topology: one pool per node, its GPUs with their fabric
//! attributes, at most [`MAX_DEVICES_PER_SLICE`] devices per slice.

use std::collections::BTreeMap;

use linkwise_core::{Gpu, GpuId, Host, Topology};

use crate::api::{
    Attribute, Capacity, Device, ObjectMeta, ResourcePool, ResourceSlice, ResourceSliceSpec,
};
use crate::names::{dns_label, quantity, semver};
use crate::{API_VERSION, Driver};

/// Devices per ResourceSlice (the API's limit).
pub const MAX_DEVICES_PER_SLICE: usize = 128;

/// Characters in a string attribute (the API's limit); longer values are cut.
const MAX_STRING: usize = 64;

/// Where each GPU sits in the fabric: its NVLink island and domain names.
struct Fabric {
    island_of: BTreeMap<GpuId, String>,
    domain_of: BTreeMap<GpuId, String>,
}

impl Fabric {
    fn new(topo: &Topology) -> Self {
        let island_of = topo.island_names();
        let domain_of = topo
            .domains()
            .into_iter()
            .flat_map(|d| {
                let id = d.id;
                d.gpus.into_iter().map(move |g| (g, id.clone()))
            })
            .collect();
        Self {
            island_of,
            domain_of,
        }
    }

    /// The device for GPU `g` of host `h`, named `gpu-<index>`.
    fn device(&self, h: &Host, g: &Gpu) -> Device {
        let s = |v: &str| Attribute::String(v.chars().take(MAX_STRING).collect());
        let mut attrs: Vec<(String, Attribute)> = Vec::new();
        let mut add = |k: &str, v: Attribute| attrs.push((k.to_string(), v));
        add("index", Attribute::Int(i64::from(g.index)));
        if let Some(u) = &g.uuid {
            add("uuid", s(u));
        }
        add("productName", s(&g.model));
        if let Some(p) = g.pci_bus_id {
            add("resource.kubernetes.io/pciBusID", s(&p.to_string()));
        }
        if let Some(r) = &g.pcie_root {
            add("resource.kubernetes.io/pcieRoot", s(r));
        }
        if let Some(nn) = g.numa_node {
            add("numaNode", Attribute::Int(i64::from(nn)));
        }
        if let Some(is) = self.island_of.get(&g.id) {
            add("nvlinkIsland", s(&format!("{}-{is}", h.name)));
        }
        if let Some(d) = self.domain_of.get(&g.id) {
            // Islands are per host; cliques span hosts and keep their own id.
            let v = if g.fabric.is_some() {
                d.clone()
            } else {
                format!("{}-{d}", h.name)
            };
            add("nvlinkDomain", s(&v));
        }
        if let Some(f) = &g.fabric {
            add("clique", s(&f.clique()));
        }
        if let Some(v) = g.driver_version.as_deref().and_then(semver) {
            add("driverVersion", Attribute::Version(v));
        }
        let capacity = g
            .memory_bytes
            .map(|m| vec![("memory".to_string(), Capacity { value: quantity(m) })])
            .unwrap_or_default();
        Device {
            name: format!("gpu-{}", g.index),
            attributes: attrs,
            capacity,
        }
    }
}

/// The ResourceSlices for every host of `topo`: one pool per host named after it, its
/// GPUs in topology order in slices of at most [`MAX_DEVICES_PER_SLICE`], named
/// `<node>-<driver>-<n>` in DNS-label form. A host without GPUs has no slice.
pub fn slices(topo: &Topology, driver: &Driver) -> Vec<ResourceSlice> {
    let fabric = Fabric::new(topo);
    let mut out = Vec::new();
    for h in &topo.hosts {
        let gpus: Vec<&Gpu> = topo.gpus.iter().filter(|g| g.host == h.name).collect();
        let chunks: Vec<&[&Gpu]> = gpus.chunks(MAX_DEVICES_PER_SLICE).collect();
        let count = chunks.len().max(1);
        let node = dns_label(&h.name);
        for (n, chunk) in chunks.iter().enumerate() {
            out.push(ResourceSlice {
                api_version: API_VERSION,
                kind: "ResourceSlice",
                metadata: ObjectMeta {
                    name: format!("{node}-{}-{n}", dns_label(driver.as_str())),
                },
                spec: ResourceSliceSpec {
                    driver: driver.to_string(),
                    node_name: h.name.clone(),
                    pool: ResourcePool {
                        name: h.name.clone(),
                        generation: 1,
                        resource_slice_count: count,
                    },
                    devices: chunk.iter().map(|g| fabric.device(h, g)).collect(),
                },
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn driver() -> Driver {
        Driver::new("gpu.linkwise.dev").unwrap()
    }

    #[test]
    fn one_pool_per_host_and_every_gpu_once() {
        for (p, _) in linkwise_core::profiles::PROFILES {
            let topo = linkwise_core::profiles::get(p).unwrap();
            let slices = slices(&topo, &driver());
            let devices: usize = slices.iter().map(|s| s.spec.devices.len()).sum();
            assert_eq!(devices, topo.gpus.len(), "{p}");
            for s in &slices {
                assert_eq!(s.spec.pool.name, s.spec.node_name, "{p}");
                assert!(s.spec.devices.len() <= MAX_DEVICES_PER_SLICE);
                for d in &s.spec.devices {
                    assert!(d.attributes.len() + d.capacity.len() <= 32, "{p}");
                    for (_, a) in &d.attributes {
                        if let Attribute::String(v) = a {
                            assert!(v.chars().count() <= MAX_STRING);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn bridged_pairs_are_different_islands() {
        let topo = linkwise_core::profiles::get("nvlink-bridge-pairs").unwrap();
        let s = &slices(&topo, &driver())[0];
        let island = |d: &Device| {
            d.attributes
                .iter()
                .find(|(k, _)| k == "nvlinkIsland")
                .map(|(_, v)| v.clone())
        };
        let islands: Vec<_> = s.spec.devices.iter().map(island).collect();
        assert!(islands[0].is_some());
        assert_eq!(islands[0], islands[1]);
        assert_ne!(islands[1], islands[2]);
    }

    #[test]
    fn a_device_is_written_in_the_api_shape() {
        let topo = linkwise_core::profiles::get("dgx-h100").unwrap();
        let s = &slices(&topo, &driver())[0];
        let v = serde_json::to_value(&s.spec.devices[0]).unwrap();
        assert_eq!(v["name"], "gpu-0");
        assert_eq!(v["attributes"]["index"], serde_json::json!({ "int": 0 }));
        assert!(v["attributes"]["productName"]["string"].is_string());
        assert!(v["capacity"]["memory"]["value"].is_string());
        assert_eq!(s.api_version, "resource.k8s.io/v1");
        assert_eq!(s.spec.pool.resource_slice_count, 1);
    }
}
