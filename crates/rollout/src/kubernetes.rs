//! The `kubernetes` executor: a node is drained by cordoning it and evicting its GPU pods
//! through the Eviction API — which the API server refuses (`429`) while a
//! PodDisruptionBudget allows no disruption; the eviction is then retried until the drain
//! timeout — and returned by uncordoning it. A quarantined node stays cordoned and gets
//! the [`QUARANTINE`] taint (`NoSchedule`) and label, valued with the change.
//!
//! GPU pods: pods on the node, not finished, that ask for a resource whose name has
//! `gpu` in it (`nvidia.com/gpu`, `linkwise.dev/gpu`, ...) in any container's limits or
//! requests; pods of a DaemonSet (they would come straight back, and the GPU's own
//! agents are among them) and static (mirror) pods are left alone, as `kubectl drain
//! --ignore-daemonsets` leaves them.

use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use kube::api::{Api, EvictParams, ListParams, Patch, PatchParams};
use serde_json::json;

/// The taint key and label of a quarantined node.
pub const QUARANTINE: &str = "linkwise.dev/quarantine";

/// A Kubernetes API client for the executor.
#[derive(Clone)]
pub struct Kube(pub kube::Client);

impl std::fmt::Debug for Kube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kube").finish_non_exhaustive()
    }
}

/// A pod to evict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its uid (a pod of the same name created again is another pod).
    pub uid: String,
}

impl std::fmt::Display for PodRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What an eviction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evicted {
    /// The API server took it (or the pod was already gone).
    Done,
    /// Refused for now: a PodDisruptionBudget allows no disruption (the message says).
    Blocked(String),
}

fn api_error(what: &str, e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{what}: {} ({})", s.message, s.code),
        e => format!("{what}: {e}"),
    }
}

/// A label value made of `value`: at most 63 characters of `[A-Za-z0-9._-]`, starting
/// and ending with a letter or digit.
pub fn label_value(value: &str) -> String {
    let cleaned: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    let trimmed = cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed.is_empty() {
        "true".into()
    } else {
        trimmed.to_string()
    }
}

impl Kube {
    fn nodes(&self) -> Api<Node> {
        Api::all(self.0.clone())
    }

    /// Marks `node` unschedulable (`spec.unschedulable`), or schedulable again.
    ///
    /// # Errors
    ///
    /// The API server's answer, as a sentence.
    pub async fn set_unschedulable(&self, node: &str, unschedulable: bool) -> Result<(), String> {
        let patch = json!({"spec": {"unschedulable": unschedulable}});
        self.nodes()
            .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop)
            .map_err(|e| api_error(&format!("PATCH node {node}"), &e))
    }

    /// The GPU pods on `node` that a drain evicts.
    ///
    /// # Errors
    ///
    /// The API server's answer, as a sentence.
    pub async fn gpu_pods(&self, node: &str) -> Result<Vec<PodRef>, String> {
        let pods: Api<Pod> = Api::all(self.0.clone());
        let list = pods
            .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
            .await
            .map_err(|e| api_error(&format!("list pods on {node}"), &e))?;
        Ok(list
            .items
            .iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
            .filter(|p| {
                !matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded" | "Failed")
                )
            })
            .filter(|p| {
                let m = &p.metadata;
                let daemon = m
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.kind == "DaemonSet");
                let mirror = m
                    .annotations
                    .as_ref()
                    .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
                !daemon && !mirror
            })
            .filter(|p| {
                p.spec
                    .iter()
                    .flat_map(|s| {
                        s.containers
                            .iter()
                            .chain(s.init_containers.iter().flatten())
                    })
                    .any(|c| {
                        c.resources.as_ref().is_some_and(|r| {
                            r.limits
                                .iter()
                                .chain(r.requests.iter())
                                .flat_map(|m| m.keys())
                                .any(|k| k.contains("gpu"))
                        })
                    })
            })
            .map(|p| PodRef {
                namespace: p.metadata.namespace.clone().unwrap_or_default(),
                name: p.metadata.name.clone().unwrap_or_default(),
                uid: p.metadata.uid.clone().unwrap_or_default(),
            })
            .collect())
    }

    /// Asks the Eviction API to evict `pod`.
    ///
    /// # Errors
    ///
    /// Any refusal but a disruption budget's (`429`) and the pod being gone (`404`).
    pub async fn evict(&self, pod: &PodRef) -> Result<Evicted, String> {
        let pods: Api<Pod> = Api::namespaced(self.0.clone(), &pod.namespace);
        match pods.evict(&pod.name, &EvictParams::default()).await {
            Ok(_) => Ok(Evicted::Done),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(Evicted::Done),
            Err(kube::Error::Api(s)) if s.code == 429 => Ok(Evicted::Blocked(s.message)),
            Err(e) => Err(api_error(&format!("evict {pod}"), &e)),
        }
    }

    /// Whether `pod` is gone (no pod of its name, or one with another uid).
    ///
    /// # Errors
    ///
    /// The API server's answer, as a sentence.
    pub async fn gone(&self, pod: &PodRef) -> Result<bool, String> {
        let pods: Api<Pod> = Api::namespaced(self.0.clone(), &pod.namespace);
        match pods.get_opt(&pod.name).await {
            Ok(None) => Ok(true),
            Ok(Some(p)) => Ok(p.metadata.uid.as_deref() != Some(pod.uid.as_str())),
            Err(e) => Err(api_error(&format!("get {pod}"), &e)),
        }
    }

    /// Quarantines `node`: cordoned, the [`QUARANTINE`] taint (`NoSchedule`) and label
    /// set to the change (other taints kept).
    ///
    /// # Errors
    ///
    /// The API server's answer, as a sentence.
    pub async fn quarantine(&self, node: &str, change: &str) -> Result<(), String> {
        let current = self
            .nodes()
            .get(node)
            .await
            .map_err(|e| api_error(&format!("GET node {node}"), &e))?;
        let value = label_value(change);
        let mut taints: Vec<Taint> = current
            .spec
            .and_then(|s| s.taints)
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.key != QUARANTINE)
            .collect();
        taints.push(Taint {
            key: QUARANTINE.into(),
            value: Some(value.clone()),
            effect: "NoSchedule".into(),
            time_added: None,
        });
        let patch = json!({
            "metadata": {"labels": {QUARANTINE: value}},
            "spec": {"unschedulable": true, "taints": taints},
        });
        self.nodes()
            .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop)
            .map_err(|e| api_error(&format!("PATCH node {node}"), &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_valid() {
        assert_eq!(label_value("driver-570"), "driver-570");
        assert_eq!(label_value("kernel 6.8/rc1!"), "kernel-6.8-rc1");
        assert_eq!(label_value("--"), "true");
        assert_eq!(label_value(&"x".repeat(80)).len(), 63);
    }
}
