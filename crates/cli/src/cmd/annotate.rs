//! The agent's node annotation (`linkwise.dev/fabric`, format in `docs/node-annotation.md`),
//! patched onto its own Node through the API server with kube-rs.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use linkwise_core::annotation::{KEY, NodeFabric};
use linkwise_core::{GpuId, Topology};
use linkwise_deviceplugin::HealthHandle;

/// Patches one annotation on one Node (RBAC: get and patch on nodes).
#[derive(Clone)]
pub struct NodeAnnotator {
    api: Api<Node>,
    node: String,
}

impl std::fmt::Debug for NodeAnnotator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeAnnotator")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl NodeAnnotator {
    /// An annotator using `client`.
    pub fn new(client: kube::Client, node: &str) -> Self {
        NodeAnnotator {
            api: Api::all(client),
            node: node.to_string(),
        }
    }

    /// An annotator from the environment: the in-cluster service account, else a
    /// kubeconfig. `Err` is the one-line reason there is none.
    pub async fn from_environment(node: &str) -> Result<Self, String> {
        let config = kube::Config::infer().await.map_err(|e| e.to_string())?;
        let client = kube::Client::try_from(config).map_err(|e| e.to_string())?;
        Ok(Self::new(client, node))
    }

    /// Sets the annotation with a JSON merge patch.
    pub async fn publish(&self, value: &str) -> Result<(), String> {
        let patch = serde_json::json!({ "metadata": { "annotations": { KEY: value } } });
        self.api
            .patch(&self.node, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| format!("patching node {}: {e}", self.node))
    }
}

/// What the loop needs besides the annotator.
#[derive(Debug)]
pub struct Inputs {
    pub topo: Topology,
    pub host: String,
    pub resource: String,
    pub pod_resources: PathBuf,
    pub every: Duration,
}

/// Publishes the annotation when it changes: on every health change and every
/// `inputs.every` (pods come and go). Failures are logged, once per distinct reason.
pub async fn run(annotator: NodeAnnotator, inputs: Inputs, health: HealthHandle) {
    let mut changes = health.subscribe();
    let mut last_value: Option<String> = None;
    let mut last_error: Option<String> = None;
    loop {
        let used = match linkwise_deviceplugin::podresources::used_devices(
            &inputs.pod_resources,
            &inputs.resource,
        )
        .await
        {
            Ok(u) => u,
            Err(error) => {
                if last_error.as_deref() != Some(&error) {
                    tracing::warn!(%error, "PodResources unavailable: every healthy GPU counts as free");
                    last_error = Some(error);
                }
                BTreeSet::new()
            }
        };
        let unhealthy: BTreeSet<GpuId> = health
            .snapshot()
            .into_iter()
            .filter(|(_, h)| !h)
            .map(|(id, _)| id)
            .collect();
        let value = NodeFabric::new(
            &inputs.topo,
            &inputs.host,
            &inputs.resource,
            &used,
            &unhealthy,
        )
        .to_value();
        if last_value.as_ref() != Some(&value) {
            match annotator.publish(&value).await {
                Ok(()) => {
                    tracing::info!(node = %annotator.node, bytes = value.len(), "node annotation published");
                    last_value = Some(value);
                }
                Err(error) => {
                    if last_error.as_deref() != Some(&error) {
                        tracing::warn!(%error, "node annotation not published; retrying");
                        last_error = Some(error);
                    }
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(inputs.every) => {}
            r = changes.changed() => if r.is_err() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linkwise_testkit::kube_api::FakeApi;

    #[tokio::test]
    async fn publish_is_a_merge_patch_of_one_annotation_on_our_node() {
        let api = FakeApi::with_nodes(&["gpu-node-1"]);
        let annotator = NodeAnnotator::new(api.client(), "gpu-node-1");
        annotator.publish("{\"v\":1}").await.unwrap();
        let seen = api.seen();
        assert_eq!(seen.len(), 1);
        let req = &seen[0];
        assert_eq!(req.method, "PATCH");
        assert!(
            req.uri.starts_with("/api/v1/nodes/gpu-node-1"),
            "{}",
            req.uri
        );
        assert_eq!(req.content_type, "application/merge-patch+json");
        let v: serde_json::Value = serde_json::from_str(&req.body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"metadata": {"annotations": {"linkwise.dev/fabric": "{\"v\":1}"}}})
        );
        let node = api.node("gpu-node-1").unwrap();
        assert_eq!(
            node["metadata"]["annotations"]["linkwise.dev/fabric"], "{\"v\":1}",
            "the fake API server holds the patched annotation"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_loop_publishes_on_health_changes_and_only_when_the_value_changes() {
        let api = FakeApi::with_nodes(&["gpu-node-1"]);
        let annotator = NodeAnnotator::new(api.client(), "gpu-node-1");
        let topo = linkwise_core::profiles::get("nvlink-bridge-pairs").unwrap();
        let plugin = linkwise_deviceplugin::GpuPlugin::new(
            topo.clone(),
            linkwise_deviceplugin::Config::default(),
        );
        let health = plugin.health();
        let inputs = Inputs {
            host: topo.hosts[0].name.clone(),
            topo: topo.clone(),
            resource: "nvidia.com/gpu".into(),
            pod_resources: PathBuf::from("/nonexistent/kubelet.sock"),
            every: Duration::from_secs(10),
        };
        let task = tokio::spawn(run(annotator, inputs, health.clone()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(api.seen().len(), 1, "unchanged value: no repeated patches");
        health.set(&topo.gpus[1].id, false);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let seen_now = api.seen();
        assert_eq!(seen_now.len(), 2);
        let body: serde_json::Value = serde_json::from_str(&seen_now[1].body).unwrap();
        let value = body["metadata"]["annotations"]["linkwise.dev/fabric"]
            .as_str()
            .unwrap();
        let f = NodeFabric::parse(value).unwrap();
        assert_eq!(f.unhealthy, vec![1]);
        assert_eq!(f.free, vec![0, 2, 3]);
        assert_eq!(f.lanes[0][1], 4);
        task.abort();
    }
}
