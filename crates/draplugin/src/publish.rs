//! The node's ResourceSlices, published through the API server: the pool `linkwise dra
//! slices` renders for this node, applied with server-side apply (field manager
//! [`FIELD_MANAGER`](crate::FIELD_MANAGER), forced), owned by the Node object so that
//! they go when the node does. The pool's generation goes up whenever what it publishes
//! changes: a device turning unhealthy leaves the pool, and comes back when healthy; a
//! plugin started on a changed topology publishes the new pool at the next generation.
//! Slices of this driver and node that the pool no longer has are deleted.

use std::collections::BTreeSet;
use std::time::Duration;

use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams};
use kube::api::{Patch, PatchParams};
use linkwise_dra::api::ResourceSlice;
use serde_json::{Value, json};

use tokio::sync::watch;

use crate::{Health, NodeDevices};

/// First and largest wait between attempts while the API server fails.
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Publishes one node's pool.
#[derive(Clone)]
pub struct Publisher {
    api: Api<DynamicObject>,
    nodes: Api<DynamicObject>,
    node: watch::Receiver<NodeDevices>,
    driver: String,
    health: Health,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("node", &self.node.borrow().node())
            .field("driver", &self.driver)
            .finish_non_exhaustive()
    }
}

/// What one publication did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The pool's generation now.
    pub generation: u64,
    /// Slices applied (0 when the server already had this pool).
    pub applied: usize,
    /// Stale slices deleted.
    pub deleted: usize,
    /// Devices left out as unhealthy.
    pub unhealthy: Vec<String>,
}

impl Publisher {
    /// A publisher of the node's pool (`node`: the devices now, and later after a
    /// rediscovery) for `driver` through `client`.
    pub fn new(
        client: kube::Client,
        node: watch::Receiver<NodeDevices>,
        driver: &str,
        health: Health,
    ) -> Self {
        let gvk = GroupVersionKind::gvk("resource.k8s.io", "v1", "ResourceSlice");
        let ar = ApiResource::from_gvk_with_plural(&gvk, "resourceslices");
        let node_ar =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Node"), "nodes");
        Publisher {
            api: Api::all_with(client.clone(), &ar),
            nodes: Api::all_with(client, &node_ar),
            node,
            driver: driver.to_string(),
            health,
        }
    }

    /// The node's devices now and the names of those that are unhealthy.
    fn now(&self) -> (NodeDevices, Vec<String>) {
        let node = self.node.borrow().clone();
        let unhealthy = node
            .devices()
            .filter(|d| !self.health.is_healthy(&d.gpu))
            .map(|d| d.name.clone())
            .collect();
        (node, unhealthy)
    }

    /// The pool to publish now, at generation 0.
    fn wanted(&self) -> Vec<ResourceSlice> {
        let (node, unhealthy) = self.now();
        node.slices_at(0, &unhealthy)
    }

    /// This driver's slices of this node on the server.
    async fn on_server(&self, node: &str) -> Result<Vec<DynamicObject>, kube::Error> {
        let lp = ListParams::default()
            .fields(&format!("spec.nodeName={node},spec.driver={}", self.driver));
        Ok(self.api.list(&lp).await?.items)
    }

    /// Publishes the pool as it is now. `last` is the generation this publisher last
    /// wrote (None at start: the server's slices decide).
    pub async fn publish(&self, last: Option<u64>) -> Result<Published, kube::Error> {
        let (node, unhealthy) = self.now();
        let existing = self.on_server(node.node()).await?;
        let server_generation = existing
            .iter()
            .filter_map(|o| {
                o.data
                    .pointer("/spec/pool/generation")
                    .and_then(Value::as_u64)
            })
            .max();
        let base = last.max(server_generation).unwrap_or(0);
        // The same content at the server's generation: nothing to write.
        let same = node.slices_at(base, &unhealthy);
        if last.is_none() && matches(&existing, &same) {
            return Ok(Published {
                generation: base,
                applied: 0,
                deleted: 0,
                unhealthy,
            });
        }
        let generation = base + 1;
        let slices = node.slices_at(generation, &unhealthy);
        let owner = self.owner(node.node()).await;
        let pp = PatchParams::apply(crate::FIELD_MANAGER).force();
        for s in &slices {
            let mut body = serde_json::to_value(s).unwrap_or_default();
            if let Some(o) = &owner {
                body["metadata"]["ownerReferences"] = json!([o]);
            }
            self.api
                .patch(&s.metadata.name, &pp, &Patch::Apply(&body))
                .await?;
        }
        let keep: BTreeSet<&str> = slices.iter().map(|s| s.metadata.name.as_str()).collect();
        let mut deleted = 0;
        for o in &existing {
            let name = o.metadata.name.as_deref().unwrap_or_default();
            if !keep.contains(name) {
                self.delete(name).await?;
                deleted += 1;
            }
        }
        Ok(Published {
            generation,
            applied: slices.len(),
            deleted,
            unhealthy,
        })
    }

    async fn delete(&self, name: &str) -> Result<(), kube::Error> {
        match self.api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The owner reference to this node's Node object, when it can be read.
    async fn owner(&self, node: &str) -> Option<Value> {
        match self.nodes.get(node).await {
            Ok(n) => n.metadata.uid.map(|uid| {
                json!({"apiVersion": "v1", "kind": "Node", "name": node, "uid": uid, "controller": true})
            }),
            Err(error) => {
                tracing::debug!(%error, "no owner reference: the Node could not be read");
                None
            }
        }
    }

    /// Deletes every slice of this driver and node.
    pub async fn remove_all(&self) -> Result<usize, kube::Error> {
        let node = self.node.borrow().node().to_string();
        let existing = self.on_server(&node).await?;
        for o in &existing {
            self.delete(o.metadata.name.as_deref().unwrap_or_default())
                .await?;
        }
        Ok(existing.len())
    }

    /// Publishes now and after every change of health or devices until `shutdown`,
    /// retrying with backoff while the API server fails; on shutdown the slices are
    /// deleted when `remove_on_exit`.
    pub async fn run(self, remove_on_exit: bool, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut changes = self.health.subscribe();
        let mut nodes = self.node.clone();
        let mut last: Option<u64> = None;
        let mut published: Option<Vec<ResourceSlice>> = None;
        let mut backoff = RETRY_FIRST;
        loop {
            changes.borrow_and_update();
            nodes.borrow_and_update();
            let wanted = self.wanted();
            if published.as_ref() != Some(&wanted) {
                match self.publish(last).await {
                    Ok(p) => {
                        tracing::info!(
                            node = %self.node.borrow().node(), generation = p.generation, applied = p.applied,
                            deleted = p.deleted, unhealthy = ?p.unhealthy, "ResourceSlices published"
                        );
                        last = Some(p.generation);
                        published = Some(wanted);
                        backoff = RETRY_FIRST;
                    }
                    Err(error) => {
                        tracing::warn!(%error, retry_in_ms = backoff.as_millis(), "ResourceSlices not published; retrying");
                        tokio::select! {
                            () = &mut shutdown => break,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(RETRY_MAX);
                        continue;
                    }
                }
            }
            tokio::select! {
                () = &mut shutdown => break,
                r = changes.changed() => if r.is_err() {
                    // The health source is gone: nothing will change any more.
                    (&mut shutdown).await;
                    break;
                },
                r = nodes.changed() => if r.is_err() {
                    (&mut shutdown).await;
                    break;
                },
            }
        }
        if remove_on_exit {
            match self.remove_all().await {
                Ok(n) => tracing::info!(deleted = n, "ResourceSlices removed on exit"),
                Err(error) => tracing::warn!(%error, "ResourceSlices not removed on exit"),
            }
        }
    }
}

/// Whether the server's slices are exactly `want` (names, specs).
fn matches(existing: &[DynamicObject], want: &[ResourceSlice]) -> bool {
    existing.len() == want.len()
        && want.iter().all(|w| {
            existing.iter().any(|o| {
                o.metadata.name.as_deref() == Some(w.metadata.name.as_str())
                    && serde_json::to_value(&w.spec).ok().as_ref() == o.data.get("spec")
            })
        })
}
