//! The node cache for `nodeCacheCapable: true` (requests carry only node names): node
//! name → what its `linkwise.dev/fabric` annotation says. Fed by a file or directory
//! (`--nodes-file`, re-read when it changes) or by listing Nodes from the API server.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use serde_json::Value;

use crate::Error;
use crate::logic::NodeView;
use crate::logs::AnnotationLog;

/// Node name → view.
#[derive(Debug, Default)]
pub struct NodeCache {
    nodes: RwLock<HashMap<String, NodeView>>,
    annotations: AnnotationLog,
}

impl NodeCache {
    /// The view of `node`; unknown when it is not cached.
    pub fn get(&self, node: &str) -> NodeView {
        self.nodes
            .read()
            .ok()
            .and_then(|m| m.get(node).cloned())
            .unwrap_or_else(|| NodeView::Unknown("not in the node cache".into()))
    }

    /// Replaces the contents with `nodes` (name, annotation value). A node whose
    /// annotation cannot be read is logged (once per node and annotation value).
    pub fn replace(&self, nodes: impl IntoIterator<Item = (String, Option<String>)>) {
        let map: HashMap<String, NodeView> = nodes
            .into_iter()
            .map(|(n, a)| {
                let v = NodeView::from_annotation(a.as_deref());
                self.annotations.check(&n, a.as_deref(), &v);
                (n, v)
            })
            .collect();
        if let Ok(mut m) = self.nodes.write() {
            *m = map;
        }
    }

    /// Number of cached nodes.
    pub fn len(&self) -> usize {
        self.nodes.read().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether no node is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// (name, annotation) of one Node object as JSON.
fn node_entry(v: &Value) -> Option<(String, Option<String>)> {
    let name = v.pointer("/metadata/name")?.as_str()?.to_string();
    let ann = v
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(linkwise_core::annotation::KEY))
        .and_then(Value::as_str)
        .map(str::to_string);
    Some((name, ann))
}

/// Reads a JSON or YAML NodeList (or a single Node), or a directory of such files
/// (`*.json`, `*.yaml`, `*.yml`, in name order).
pub fn read_nodes(path: &Path) -> Result<Vec<(String, Option<String>)>, Error> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| Error::nodes(path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| matches!(x, "json" | "yaml" | "yml"))
            })
            .collect();
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    };
    let mut out = Vec::new();
    for f in files {
        // Bounded by --max-input-bytes; the error names the file.
        let text = linkwise_fsio::read_to_string_capped(&f)?;
        let v: Value = if text.trim_start().starts_with('{') {
            serde_json::from_str(&text).map_err(|e| Error::nodes(&f, e))?
        } else {
            serde_yaml_ng::from_str(&text).map_err(|e| Error::nodes(&f, e))?
        };
        match v.get("items") {
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    out.push(node_entry(item).ok_or_else(|| {
                        Error::nodes(&f, format!("items[{i}] has no metadata.name"))
                    })?);
                }
            }
            _ => out.push(
                node_entry(&v).ok_or_else(|| Error::nodes(&f, "neither a NodeList nor a Node"))?,
            ),
        }
    }
    Ok(out)
}

/// What identifies a version of the file or directory: names, sizes, change times.
pub fn fingerprint(path: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let one = |p: &Path| {
        let m = std::fs::metadata(p).ok();
        (
            p.to_path_buf(),
            m.as_ref().map_or(0, std::fs::Metadata::len),
            m.and_then(|m| m.modified().ok()),
        )
    };
    if path.is_dir() {
        let mut v: Vec<_> = std::fs::read_dir(path)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| one(&e.path()))).collect())
            .unwrap_or_default();
        v.sort();
        v
    } else {
        vec![one(path)]
    }
}

/// Loads `path` into `cache` now, then re-reads it every `every` when it changed. A
/// read that fails keeps the previous contents (and is logged once per reason).
pub async fn follow_file(cache: Arc<NodeCache>, path: PathBuf, every: std::time::Duration) {
    let mut last = None;
    let mut last_error: Option<String> = None;
    loop {
        let fp = fingerprint(&path);
        if last.as_ref() != Some(&fp) {
            match read_nodes(&path) {
                Ok(nodes) => {
                    cache.replace(nodes);
                    tracing::info!(path = %path.display(), nodes = cache.len(), "node cache loaded");
                    last = Some(fp);
                    last_error = None;
                }
                Err(e) => {
                    let e = e.to_string();
                    if last_error.as_deref() != Some(&e) {
                        tracing::warn!(error = %e, "node cache not reloaded");
                        last_error = Some(e);
                    }
                }
            }
        }
        tokio::time::sleep(every).await;
    }
}
