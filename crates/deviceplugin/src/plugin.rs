//! The `DevicePlugin` service over a cached topology.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use linkwise_core::alloc::{AllocError, AllocRequest, Allocator};
use linkwise_core::{GpuId, Topology};
use tokio::sync::watch;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::api;

/// Plugin settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The device-plugin directory holding `kubelet.sock` and the plugin's socket.
    pub kubelet_dir: PathBuf,
    /// The plugin socket's file name.
    pub socket_name: String,
    /// The extended resource name (`nvidia.com/gpu`).
    pub resource_name: String,
    /// Also answer CDI device names (`nvidia.com/gpu=<uuid>`).
    pub cdi: bool,
    /// Where device nodes live (`/dev`); only nodes that exist are passed to containers.
    pub dev_root: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            kubelet_dir: PathBuf::from(crate::DEFAULT_KUBELET_DIR),
            socket_name: crate::DEFAULT_SOCKET.to_string(),
            resource_name: crate::DEFAULT_RESOURCE.to_string(),
            cdi: false,
            dev_root: PathBuf::from("/dev"),
        }
    }
}

/// Per-device health, shared between the health source and the plugin.
#[derive(Debug, Clone)]
pub struct HealthHandle {
    tx: Arc<watch::Sender<BTreeMap<GpuId, bool>>>,
}

impl HealthHandle {
    /// Marks a device healthy or not; listeners see a new list only when something changed.
    pub fn set(&self, id: &GpuId, healthy: bool) {
        self.tx.send_if_modified(|m| match m.get_mut(id) {
            Some(h) if *h != healthy => {
                *h = healthy;
                true
            }
            _ => false,
        });
    }

    /// A receiver that wakes on every health change.
    pub fn subscribe(&self) -> watch::Receiver<BTreeMap<GpuId, bool>> {
        self.tx.subscribe()
    }

    /// The current health of every device.
    pub fn snapshot(&self) -> BTreeMap<GpuId, bool> {
        self.tx.borrow().clone()
    }
}

/// The plugin: answers every RPC from the topology it was built with.
#[derive(Debug, Clone)]
pub struct GpuPlugin {
    inner: Arc<Inner>,
    health: HealthHandle,
    /// How long one preferred allocation may search (`None`: no limit).
    alloc_budget: Option<Duration>,
}

#[derive(Debug)]
struct Inner {
    topo: Topology,
    allocator: Allocator,
    config: Config,
    island_of: HashMap<GpuId, String>,
}

// === impl GpuPlugin ===

impl GpuPlugin {
    /// The default time budget of one preferred allocation. The kubelet sets no deadline
    /// on GetPreferredAllocation (it calls with a background context) but waits for the
    /// answer while admitting the pod, so a slow answer holds up the pod's start. Every
    /// request on a node of up to 16 GPUs is searched exhaustively in well under this
    /// and is never cut; on large irregular meshes the best set found in this time is the
    /// answer (SPEC.md, "Bounded answer time").
    pub const DEFAULT_ALLOC_BUDGET: Duration = Duration::from_secs(1);

    /// A plugin for `topo`; devices start with the health the topology records.
    pub fn new(topo: Topology, config: Config) -> Self {
        let health: BTreeMap<GpuId, bool> = topo
            .gpus
            .iter()
            .map(|g| (g.id.clone(), g.health.is_healthy()))
            .collect();
        let (tx, _) = watch::channel(health);
        let island_of = topo.island_names().into_iter().collect();
        GpuPlugin {
            inner: Arc::new(Inner {
                allocator: Allocator::new(&topo),
                topo,
                config,
                island_of,
            }),
            health: HealthHandle { tx: Arc::new(tx) },
            alloc_budget: Some(Self::DEFAULT_ALLOC_BUDGET),
        }
    }

    /// The same plugin with another time budget for each preferred allocation (`None`:
    /// search to the end).
    #[must_use]
    pub fn with_alloc_budget(mut self, budget: Option<Duration>) -> Self {
        self.alloc_budget = budget;
        self
    }

    /// The handle health sources use.
    pub fn health(&self) -> HealthHandle {
        self.health.clone()
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The device list as the kubelet sees it.
    pub fn device_list(&self) -> api::ListAndWatchResponse {
        let health = self.health.snapshot();
        let devices = self
            .inner
            .topo
            .gpus
            .iter()
            .map(|g| api::Device {
                id: g.id.0.clone(),
                health: if health.get(&g.id).copied().unwrap_or(false) {
                    "Healthy"
                } else {
                    "Unhealthy"
                }
                .to_string(),
                // No TopologyInfo when the NUMA node is unknown (common on RISC-V).
                topology: g.numa_node.map(|n| api::TopologyInfo {
                    nodes: vec![api::NumaNode { id: i64::from(n) }],
                }),
            })
            .collect();
        api::ListAndWatchResponse { devices }
    }

    fn ids(&self, list: &[String], what: &str) -> Result<Vec<GpuId>, Status> {
        list.iter()
            .map(|s| {
                let id = GpuId(s.clone());
                if self.inner.allocator.position(&id).is_some() {
                    Ok(id)
                } else {
                    Err(Status::invalid_argument(format!(
                        "unknown device {s:?} in {what}"
                    )))
                }
            })
            .collect()
    }

    /// The preferred devices for one container request, found within the plugin's time
    /// budget (the best set found when it runs out; exact searches always finish).
    pub fn preferred(
        &self,
        available: &[String],
        must: &[String],
        size: i32,
    ) -> Result<Vec<String>, Status> {
        let size = usize::try_from(size)
            .map_err(|_| Status::invalid_argument(format!("allocation size {size} is negative")))?;
        let req = AllocRequest {
            available: self.ids(available, "available_deviceIDs")?,
            must_include: self.ids(must, "must_include_deviceIDs")?,
            size,
            ..AllocRequest::default()
        };
        let al = &self.inner.allocator;
        let a = match self.alloc_budget {
            None => al.allocate(&req),
            Some(b) => {
                let deadline = Instant::now() + b;
                al.allocate_within(&req, &|| Instant::now() >= deadline)
            }
        }
        .map_err(alloc_status)?;
        if a.timed_out {
            tracing::info!(
                size,
                sets = a.evaluated,
                budget_ms = self.alloc_budget.map_or(0, |b| b.as_millis()),
                "preferred allocation stopped at the time budget: the best set found, optimum not proven"
            );
        }
        Ok(a.devices.into_iter().map(|g| g.0).collect())
    }

    /// The container settings for an allocation.
    pub fn container_allocation(
        &self,
        ids: &[String],
    ) -> Result<api::ContainerAllocateResponse, Status> {
        let ids = self.ids(ids, "devices_ids")?;
        let inner = &self.inner;
        let mut uuids = Vec::new();
        let mut devices = Vec::new();
        let mut islands: Vec<String> = Vec::new();
        let spec = |path: String| api::DeviceSpec {
            container_path: path.clone(),
            host_path: path,
            permissions: "rw".to_string(),
        };
        let present = |name: &str| inner.config.dev_root.join(name).exists();
        for id in &ids {
            let Some(g) = inner.topo.gpu(id) else {
                continue;
            };
            uuids.push(g.uuid.clone().unwrap_or_else(|| g.id.0.clone()));
            let node = format!("nvidia{}", g.index);
            if present(&node) {
                devices.push(spec(format!("/dev/{node}")));
            }
            if let Some(is) = inner.island_of.get(id)
                && !islands.contains(is)
            {
                islands.push(is.clone());
            }
        }
        for shared in ["nvidiactl", "nvidia-uvm", "nvidia-uvm-tools"] {
            if present(shared) {
                devices.push(spec(format!("/dev/{shared}")));
            }
        }
        let mut envs = HashMap::new();
        envs.insert("NVIDIA_VISIBLE_DEVICES".to_string(), uuids.join(","));
        let mut annotations = HashMap::new();
        annotations.insert(crate::ISLANDS_ANNOTATION.to_string(), islands.join(","));
        let cdi_devices = if inner.config.cdi {
            let vendor = inner.config.resource_name.clone();
            uuids
                .iter()
                .map(|u| api::CdiDevice {
                    name: format!("{vendor}={u}"),
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(api::ContainerAllocateResponse {
            envs,
            mounts: Vec::new(),
            devices,
            annotations,
            cdi_devices,
        })
    }
}

fn alloc_status(e: AllocError) -> Status {
    Status::invalid_argument(e.to_string())
}

type ListStream = Pin<Box<dyn Stream<Item = Result<api::ListAndWatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl api::device_plugin_server::DevicePlugin for GpuPlugin {
    async fn get_device_plugin_options(
        &self,
        _: Request<api::Empty>,
    ) -> Result<Response<api::DevicePluginOptions>, Status> {
        Ok(Response::new(api::DevicePluginOptions {
            pre_start_required: false,
            get_preferred_allocation_available: true,
        }))
    }

    type ListAndWatchStream = ListStream;

    #[tracing::instrument(skip_all)]
    async fn list_and_watch(
        &self,
        _: Request<api::Empty>,
    ) -> Result<Response<Self::ListAndWatchStream>, Status> {
        let mut rx = self.health.tx.subscribe();
        let me = self.clone();
        let stream = async_stream(move |tx| async move {
            if tx.send(Ok(me.device_list())).await.is_err() {
                return;
            }
            loop {
                tokio::select! {
                    changed = rx.changed() => {
                        if changed.is_err() || tx.send(Ok(me.device_list())).await.is_err() {
                            return;
                        }
                    }
                    // The kubelet hung up or the server stopped: end the task.
                    () = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(stream))
    }

    #[tracing::instrument(skip_all)]
    async fn get_preferred_allocation(
        &self,
        req: Request<api::PreferredAllocationRequest>,
    ) -> Result<Response<api::PreferredAllocationResponse>, Status> {
        // The search may take up to the budget: off the async workers.
        let me = self.clone();
        let requests = req.into_inner().container_requests;
        let answer = tokio::task::spawn_blocking(move || {
            requests
                .iter()
                .map(|c| {
                    me.preferred(
                        &c.available_device_i_ds,
                        &c.must_include_device_i_ds,
                        c.allocation_size,
                    )
                    .map(|ids| api::ContainerPreferredAllocationResponse { device_i_ds: ids })
                })
                .collect::<Result<Vec<_>, Status>>()
        })
        .await
        .map_err(|e| Status::internal(format!("preferred allocation failed: {e}")))?;
        Ok(Response::new(api::PreferredAllocationResponse {
            container_responses: answer?,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn allocate(
        &self,
        req: Request<api::AllocateRequest>,
    ) -> Result<Response<api::AllocateResponse>, Status> {
        let mut container_responses = Vec::new();
        for c in req.into_inner().container_requests {
            container_responses.push(self.container_allocation(&c.devices_ids)?);
        }
        Ok(Response::new(api::AllocateResponse {
            container_responses,
        }))
    }

    async fn pre_start_container(
        &self,
        _: Request<api::PreStartContainerRequest>,
    ) -> Result<Response<api::PreStartContainerResponse>, Status> {
        Ok(Response::new(api::PreStartContainerResponse {}))
    }
}

/// A stream fed by a task through a channel.
fn async_stream<F, Fut>(f: F) -> ListStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<api::ListAndWatchResponse, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

#[cfg(test)]
mod tests {
    // Test code: a failed unwrap is a failed test.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use linkwise_core::{Endpoint, Gpu, Host, Link, LinkKind};

    /// A 48-GPU single-host NVLink mesh with irregular lanes: too large to enumerate, so
    /// a 14-GPU request goes to the greedy search the budget can cut.
    fn mesh() -> Topology {
        let n = 48;
        let mut t = Topology {
            source: "mesh".into(),
            ..Topology::default()
        };
        t.hosts.push(Host::named("mesh"));
        let id = |p: usize| format!("GPU-{p:02}");
        for p in 0..n {
            t.gpus
                .push(Gpu::new(id(p), u32::try_from(p).unwrap(), "mesh", "m"));
        }
        for p in 0..n {
            let lanes = u32::try_from(1 + p % 4).unwrap();
            for q in [(p + 1) % n, (p * 7 + 3) % n] {
                if q != p {
                    t.links.push(Link::new(
                        Endpoint::Gpu(GpuId(id(p))),
                        Endpoint::Gpu(GpuId(id(q))),
                        LinkKind::Nvlink {
                            lanes,
                            generation: Some(3),
                        },
                    ));
                }
            }
        }
        t.validate().unwrap();
        t
    }

    fn all(t: &Topology) -> Vec<String> {
        t.gpus.iter().map(|g| g.id.0.clone()).collect()
    }

    /// A budget spent before the search starts (zero) still gives a full, valid answer:
    /// `k` distinct available devices with the must-include one, never an error.
    #[test]
    fn a_spent_budget_still_answers_k_available_devices() {
        let t = mesh();
        let plugin =
            GpuPlugin::new(t.clone(), Config::default()).with_alloc_budget(Some(Duration::ZERO));
        let available: Vec<String> = all(&t).into_iter().step_by(2).collect();
        for k in [1, 8, 14, 16] {
            let must = vec![available[3].clone()];
            let got = plugin.preferred(&available, &must, k).unwrap();
            let mut distinct = got.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), usize::try_from(k).unwrap(), "{got:?}");
            assert!(got.iter().all(|d| available.contains(d)), "{got:?}");
            assert!(got.contains(&must[0]));
        }
    }

    /// The budget never changes an answer that is exact (nodes of up to 16 GPUs): a zero
    /// budget gives the very sets no budget gives, for every size.
    #[test]
    fn the_budget_never_changes_answers_on_nodes_of_up_to_16_gpus() {
        for name in ["dgx1-v100", "dgx2-v100", "dgx-h100"] {
            let t = linkwise_core::profiles::get(name).unwrap();
            let free = GpuPlugin::new(t.clone(), Config::default()).with_alloc_budget(None);
            let spent = GpuPlugin::new(t.clone(), Config::default())
                .with_alloc_budget(Some(Duration::ZERO));
            let ids = all(&t);
            // GPU 0 is taken, so the answers depend on what stays free.
            let avail = &ids[1..];
            for k in 1..=i32::try_from(avail.len()).unwrap() {
                assert_eq!(
                    spent.preferred(avail, &[], k).unwrap(),
                    free.preferred(avail, &[], k).unwrap(),
                    "{name} k {k}"
                );
            }
        }
    }
}
