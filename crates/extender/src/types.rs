//! The kube-scheduler extender v1 wire types (PascalCase, `null`s as Go sends them) and
//! the few Pod and Node fields linkwise reads (normal Kubernetes camelCase JSON).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `ExtenderArgs`: the body of a filter or prioritize call.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExtenderArgs {
    /// The pod being scheduled.
    #[serde(default)]
    pub pod: Option<Pod>,
    /// The candidate nodes, in full (`nodeCacheCapable: false`); kept as received.
    #[serde(default)]
    pub nodes: Option<Value>,
    /// The candidate node names (`nodeCacheCapable: true`).
    #[serde(default)]
    pub node_names: Option<Vec<String>>,
}

/// `ExtenderFilterResult`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FilterResult {
    /// Surviving nodes when they came as `Nodes`.
    pub nodes: Option<Value>,
    /// Surviving node names when they came as `NodeNames`.
    pub node_names: Option<Vec<String>>,
    /// Node → reason; preemption might help.
    pub failed_nodes: BTreeMap<String, String>,
    /// Node → reason; preemption would not help.
    pub failed_and_unresolvable_nodes: BTreeMap<String, String>,
    /// Non-empty fails the call.
    pub error: String,
}

/// `HostPriority`; prioritize answers a bare array of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostPriority {
    /// The node.
    pub host: String,
    /// 0..=10.
    pub score: i64,
}

/// The error body of a 4xx answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorBody {
    /// What was wrong.
    pub error: String,
}

/// Object metadata: only what linkwise reads.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Meta {
    /// `metadata.name`.
    pub name: Option<String>,
    /// `metadata.namespace`.
    pub namespace: Option<String>,
    /// `metadata.annotations`.
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A Pod: only what linkwise reads.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Pod {
    /// `metadata`.
    pub metadata: Meta,
    /// `spec`.
    pub spec: Option<PodSpec>,
}

/// `spec`: only the containers.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PodSpec {
    /// `spec.containers`.
    pub containers: Option<Vec<Container>>,
}

/// A container: only its resources.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Container {
    /// `name`.
    pub name: Option<String>,
    /// `resources`.
    pub resources: Option<Resources>,
}

/// `resources`: quantities as received (strings, or numbers).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Resources {
    /// `limits`.
    pub limits: Option<BTreeMap<String, Value>>,
    /// `requests`.
    pub requests: Option<BTreeMap<String, Value>>,
}

impl Pod {
    /// `namespace/name` for messages.
    pub fn key(&self) -> String {
        format!(
            "{}/{}",
            self.metadata.namespace.as_deref().unwrap_or("default"),
            self.metadata.name.as_deref().unwrap_or("?")
        )
    }

    /// One annotation.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .map(String::as_str)
    }
}
