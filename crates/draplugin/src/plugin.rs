//! The `DRAPlugin` service (v1 and v1beta1) and the health streams over one state: the
//! node's devices, their health, the claim reader and the checkpoint.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::Arc;

use linkwise_kubelet::dra_health_v1_api as health_v1;
use linkwise_kubelet::dra_health_v1alpha1_api as health_v1alpha1;
use linkwise_kubelet::dra_v1_api as v1;
use linkwise_kubelet::dra_v1beta1_api as v1beta1;
use tokio::sync::Mutex;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::checkpoint::{Checkpoint, PreparedClaim, PreparedDevice};
use crate::claims::{ClaimReader, ClaimRef};
use crate::{Config, Error, Health, NodeDevices, cdi};

/// The plugin's RPCs. Cheap to clone: every clone shares the state.
#[derive(Debug, Clone)]
pub struct Plugin {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    /// The node's devices now (rediscovery may change them).
    node: tokio::sync::watch::Receiver<NodeDevices>,
    health: Health,
    claims: ClaimReader,
    /// Held across a whole prepare or unprepare: the kubelet may call concurrently.
    checkpoint: Mutex<Checkpoint>,
}

/// What preparing one claim gives.
type Answer = Result<Vec<PreparedDevice>, String>;

impl Plugin {
    /// A plugin for the node's devices (`node`: what they are now, and later after a
    /// rediscovery), reading claims with `claims`; the checkpoint of `config` is loaded
    /// (a bad one is an error naming it) and its directory made.
    pub fn new(
        config: Config,
        node: tokio::sync::watch::Receiver<NodeDevices>,
        health: Health,
        claims: ClaimReader,
    ) -> Result<Self, Error> {
        crate::create_dir(&config.plugin_dir())?;
        let checkpoint = Checkpoint::load(&config.checkpoint_file(), config.driver.as_str())?;
        if !checkpoint.claims.is_empty() {
            tracing::info!(
                prepared = checkpoint.claims.len(),
                file = %config.checkpoint_file().display(),
                "prepared claims restored from the checkpoint"
            );
        }
        Ok(Plugin {
            inner: Arc::new(Inner {
                config,
                node,
                health,
                claims,
                checkpoint: Mutex::new(checkpoint),
            }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The node's devices now.
    pub fn node(&self) -> NodeDevices {
        self.inner.node.borrow().clone()
    }

    /// The health the plugin reads.
    pub fn health(&self) -> &Health {
        &self.inner.health
    }

    /// The UIDs of the prepared claims.
    pub async fn prepared(&self) -> Vec<String> {
        self.inner
            .checkpoint
            .lock()
            .await
            .claims
            .keys()
            .cloned()
            .collect()
    }

    /// Prepares every claim: an answer (devices or an error) per claim UID.
    pub async fn prepare(&self, claims: Vec<ClaimRef>) -> BTreeMap<String, Answer> {
        let mut checkpoint = self.inner.checkpoint.lock().await;
        let node = self.node();
        let mut out = BTreeMap::new();
        for claim in claims {
            let answer = self.prepare_one(&mut checkpoint, &node, &claim).await;
            match &answer {
                Ok(d) => {
                    tracing::info!(claim = %format!("{}/{}", claim.namespace, claim.name), uid = %claim.uid, devices = d.len(), "prepared")
                }
                Err(error) => {
                    tracing::warn!(claim = %format!("{}/{}", claim.namespace, claim.name), uid = %claim.uid, %error, "not prepared")
                }
            }
            out.insert(claim.uid, answer);
        }
        out
    }

    async fn prepare_one(
        &self,
        checkpoint: &mut Checkpoint,
        node: &NodeDevices,
        claim: &ClaimRef,
    ) -> Answer {
        let inner = &self.inner;
        let cfg = &inner.config;
        let driver = cfg.driver.as_str();
        if !cdi::valid_uid(&claim.uid) {
            return Err(format!(
                "claim UID {:?} is not a Kubernetes UID (hex digits and dashes)",
                claim.uid
            ));
        }
        if let Some(done) = checkpoint.claims.get(&claim.uid) {
            // Prepared before (a repeated call, or before a restart): the same answer.
            return Ok(done.devices.clone());
        }
        let allocated = inner.claims.allocation(claim).await?;
        let mine: Vec<_> = allocated.iter().filter(|a| a.driver == driver).collect();
        let mut devices = Vec::new();
        let mut answer = Vec::new();
        for a in &mine {
            if a.pool != node.node() {
                return Err(format!(
                    "device {}/{} is in pool {:?}, not this node's ({:?})",
                    a.pool,
                    a.device,
                    a.pool,
                    node.node()
                ));
            }
            let Some(d) = node.device(&a.device) else {
                return Err(format!(
                    "device {:?} of pool {:?} is unknown on this node (its devices: {})",
                    a.device,
                    a.pool,
                    node.devices()
                        .map(|d| d.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            };
            if !inner.health.is_healthy(&d.gpu) {
                return Err(format!(
                    "device {} ({}) is unhealthy; the claim needs reallocation",
                    d.name, d.gpu
                ));
            }
            if !devices
                .iter()
                .any(|x: &&crate::node::NodeDevice| x.name == d.name)
            {
                devices.push(d);
            }
            answer.push(PreparedDevice {
                requests: vec![a.request.clone()],
                pool: a.pool.clone(),
                device: a.device.clone(),
                cdi_device_ids: vec![cdi::device_id(driver, &claim.uid, &a.device)],
                share_id: a.share_id.clone(),
            });
        }
        let cdi_spec = if devices.is_empty() {
            None
        } else {
            let path = cdi::spec_path(&cfg.cdi_dir, driver, &claim.uid);
            let spec = cdi::spec(
                driver,
                (&claim.namespace, &claim.name, &claim.uid),
                &devices,
                &cfg.dev_root,
            );
            crate::create_dir(&cfg.cdi_dir).map_err(|e| e.to_string())?;
            cdi::write(&path, &spec)
                .map_err(|e| format!("cannot write the CDI spec {}: {e}", path.display()))?;
            Some(path)
        };
        checkpoint.claims.insert(
            claim.uid.clone(),
            PreparedClaim {
                namespace: claim.namespace.clone(),
                name: claim.name.clone(),
                cdi_spec: cdi_spec.clone(),
                devices: answer.clone(),
            },
        );
        if let Err(e) = checkpoint.save(&cfg.checkpoint_file()) {
            // Not recorded: undo, so that nothing is left that a restart would not know.
            checkpoint.claims.remove(&claim.uid);
            if let Some(p) = &cdi_spec {
                let _ = cdi::remove(p);
            }
            return Err(e.to_string());
        }
        Ok(answer)
    }

    /// Unprepares every claim: an error or none per claim UID. A claim that is not
    /// prepared is fine (nothing to undo); its CDI spec is removed if one was left.
    pub async fn unprepare(&self, claims: Vec<ClaimRef>) -> BTreeMap<String, Option<String>> {
        let cfg = &self.inner.config;
        let mut checkpoint = self.inner.checkpoint.lock().await;
        let mut out = BTreeMap::new();
        for claim in claims {
            let error = if cdi::valid_uid(&claim.uid) {
                let spec = checkpoint
                    .claims
                    .get(&claim.uid)
                    .map(|c| c.cdi_spec.clone())
                    .unwrap_or_else(|| {
                        Some(cdi::spec_path(
                            &cfg.cdi_dir,
                            cfg.driver.as_str(),
                            &claim.uid,
                        ))
                    });
                match spec.as_deref().map(cdi::remove).transpose() {
                    Err(e) => Some(e),
                    Ok(_) => match checkpoint.claims.remove(&claim.uid) {
                        Some(was) => match checkpoint.save(&cfg.checkpoint_file()) {
                            Ok(()) => None,
                            Err(e) => {
                                checkpoint.claims.insert(claim.uid.clone(), was);
                                Some(e.to_string())
                            }
                        },
                        None => None,
                    },
                }
            } else {
                Some(format!(
                    "claim UID {:?} is not a Kubernetes UID (hex digits and dashes)",
                    claim.uid
                ))
            };
            match &error {
                None => {
                    tracing::info!(claim = %format!("{}/{}", claim.namespace, claim.name), uid = %claim.uid, "unprepared")
                }
                Some(error) => {
                    tracing::warn!(claim = %format!("{}/{}", claim.namespace, claim.name), uid = %claim.uid, %error, "not unprepared")
                }
            }
            out.insert(claim.uid, error);
        }
        out
    }

    /// The health of every device now: (device name, healthy).
    fn device_health(&self) -> Vec<(String, bool)> {
        let health = self.inner.health.snapshot();
        self.node()
            .devices()
            .map(|d| (d.name.clone(), health.get(&d.gpu).copied().unwrap_or(true)))
            .collect()
    }

    /// A stream of the complete device health: now, then after every change.
    fn health_stream<T: Send + 'static>(
        &self,
        make: impl Fn(&str, Vec<(String, bool)>) -> T + Send + 'static,
    ) -> Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>> {
        let me = self.clone();
        let mut rx = self.inner.health.subscribe();
        let mut nodes = self.inner.node.clone();
        Box::pin(async_stream(move |tx| async move {
            loop {
                rx.borrow_and_update();
                let pool = nodes.borrow_and_update().node().to_string();
                if tx.send(Ok(make(&pool, me.device_health()))).await.is_err() {
                    return;
                }
                tokio::select! {
                    r = rx.changed() => if r.is_err() { return },
                    r = nodes.changed() => if r.is_err() { return },
                }
            }
        }))
    }
}

/// A stream fed by a task through a channel (ends when the task returns or the
/// receiver is dropped).
fn async_stream<T, F, Fut>(body: F) -> impl Stream<Item = T> + Send
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(body(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

fn refs<C>(claims: Vec<C>, f: impl Fn(C) -> ClaimRef) -> Vec<ClaimRef> {
    claims.into_iter().map(f).collect()
}

macro_rules! dra_service {
    ($api:ident, $device:expr) => {
        #[tonic::async_trait]
        impl $api::dra_plugin_server::DraPlugin for Plugin {
            async fn node_prepare_resources(
                &self,
                req: Request<$api::NodePrepareResourcesRequest>,
            ) -> Result<Response<$api::NodePrepareResourcesResponse>, Status> {
                let claims = refs(req.into_inner().claims, |c| ClaimRef {
                    namespace: c.namespace,
                    name: c.name,
                    uid: c.uid,
                });
                let claims: HashMap<String, $api::NodePrepareResourceResponse> = self
                    .prepare(claims)
                    .await
                    .into_iter()
                    .map(|(uid, answer)| {
                        let r = match answer {
                            Ok(devices) => $api::NodePrepareResourceResponse {
                                devices: devices.into_iter().map($device).collect(),
                                error: String::new(),
                            },
                            Err(error) => $api::NodePrepareResourceResponse {
                                devices: Vec::new(),
                                error,
                            },
                        };
                        (uid, r)
                    })
                    .collect();
                Ok(Response::new($api::NodePrepareResourcesResponse { claims }))
            }

            async fn node_unprepare_resources(
                &self,
                req: Request<$api::NodeUnprepareResourcesRequest>,
            ) -> Result<Response<$api::NodeUnprepareResourcesResponse>, Status> {
                let claims = refs(req.into_inner().claims, |c| ClaimRef {
                    namespace: c.namespace,
                    name: c.name,
                    uid: c.uid,
                });
                let claims = self
                    .unprepare(claims)
                    .await
                    .into_iter()
                    .map(|(uid, error)| {
                        (
                            uid,
                            $api::NodeUnprepareResourceResponse {
                                error: error.unwrap_or_default(),
                            },
                        )
                    })
                    .collect();
                Ok(Response::new($api::NodeUnprepareResourcesResponse {
                    claims,
                }))
            }
        }
    };
}

dra_service!(v1, |d: PreparedDevice| v1::Device {
    request_names: d.requests,
    pool_name: d.pool,
    device_name: d.device,
    cdi_device_ids: d.cdi_device_ids,
    share_id: d.share_id,
});

dra_service!(v1beta1, |d: PreparedDevice| v1beta1::Device {
    request_names: d.requests,
    pool_name: d.pool,
    device_name: d.device,
    cdi_device_ids: d.cdi_device_ids,
});

type HealthV1Stream =
    Pin<Box<dyn Stream<Item = Result<health_v1::NodeWatchResourcesResponse, Status>> + Send>>;
type HealthV1alpha1Stream =
    Pin<Box<dyn Stream<Item = Result<health_v1alpha1::NodeWatchResourcesResponse, Status>> + Send>>;

#[tonic::async_trait]
impl health_v1::dra_resource_health_server::DraResourceHealth for Plugin {
    type NodeWatchResourcesStream = HealthV1Stream;

    async fn node_watch_resources(
        &self,
        _: Request<health_v1::NodeWatchResourcesRequest>,
    ) -> Result<Response<Self::NodeWatchResourcesStream>, Status> {
        Ok(Response::new(self.health_stream(|pool, devices| {
            let at = now_unix();
            health_v1::NodeWatchResourcesResponse {
                devices: devices
                    .into_iter()
                    .map(|(name, ok)| health_v1::DeviceHealth {
                        device: Some(health_v1::DeviceIdentifier {
                            pool_name: pool.to_string(),
                            device_name: name,
                        }),
                        health: if ok {
                            health_v1::HealthStatus::Healthy
                        } else {
                            health_v1::HealthStatus::Unhealthy
                        } as i32,
                        last_updated_time: at,
                        health_check_timeout_seconds: 0,
                        message: if ok {
                            String::new()
                        } else {
                            "marked unhealthy by linkwise's health source (XID, NVLink down, or the health file)".to_string()
                        },
                    })
                    .collect(),
            }
        })))
    }
}

#[tonic::async_trait]
impl health_v1alpha1::dra_resource_health_server::DraResourceHealth for Plugin {
    type NodeWatchResourcesStream = HealthV1alpha1Stream;

    async fn node_watch_resources(
        &self,
        _: Request<health_v1alpha1::NodeWatchResourcesRequest>,
    ) -> Result<Response<Self::NodeWatchResourcesStream>, Status> {
        Ok(Response::new(self.health_stream(|pool, devices| {
            let at = now_unix();
            health_v1alpha1::NodeWatchResourcesResponse {
                devices: devices
                    .into_iter()
                    .map(|(name, ok)| health_v1alpha1::DeviceHealth {
                        device: Some(health_v1alpha1::DeviceIdentifier {
                            pool_name: pool.to_string(),
                            device_name: name,
                        }),
                        health: if ok {
                            health_v1alpha1::HealthStatus::Healthy
                        } else {
                            health_v1alpha1::HealthStatus::Unhealthy
                        } as i32,
                        last_updated_time: at,
                    })
                    .collect(),
            }
        })))
    }
}
