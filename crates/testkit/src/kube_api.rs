//! A fake Kubernetes API server behind a real `kube::Client`: it records every request
//! (method, path and query, content type, body) and answers with the object the path
//! names: `GET`/`PATCH`/`PUT` of `/api/v1/nodes/NAME` get that Node back (with the
//! annotations and labels of the last merge patch applied), anything else `404` with a
//! Kubernetes `Status`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http_body_util::BodyExt;
use serde_json::{Value, json};

/// One request the fake API server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// `GET`, `PATCH`, ...
    pub method: String,
    /// Path and query, e.g. `/api/v1/nodes/gpu-node-1?fieldManager=linkwise`.
    pub uri: String,
    /// The `Content-Type` header (empty when absent).
    pub content_type: String,
    /// The body as text.
    pub body: String,
}

/// The fake API server's state: what it saw and the Nodes it holds.
#[derive(Debug, Clone, Default)]
pub struct FakeApi {
    seen: Arc<Mutex<Vec<Seen>>>,
    nodes: Arc<Mutex<BTreeMap<String, Value>>>,
}

impl FakeApi {
    /// A fake API server holding one Node per name in `nodes` (no labels or
    /// annotations).
    pub fn with_nodes(nodes: &[&str]) -> Self {
        let api = FakeApi::default();
        {
            let mut held = api.nodes.lock().unwrap_or_else(|p| p.into_inner());
            for n in nodes {
                held.insert(
                    (*n).to_string(),
                    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": n}}),
                );
            }
        }
        api
    }

    /// A client whose every request this fake answers (no network involved).
    pub fn client(&self) -> kube::Client {
        let api = self.clone();
        let svc = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let api = api.clone();
            async move { Ok::<_, Infallible>(api.answer(req).await) }
        });
        kube::Client::new(svc, "default")
    }

    /// Every request so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The Node `name` as the fake holds it now.
    pub fn node(&self, name: &str) -> Option<Value> {
        self.nodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    async fn answer(
        &self,
        req: http::Request<kube::client::Body>,
    ) -> http::Response<http_body_util::Full<bytes::Bytes>> {
        let method = req.method().to_string();
        let uri = req.uri().to_string();
        let path = req.uri().path().to_string();
        let content_type = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let body = String::from_utf8_lossy(&body).into_owned();
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Seen {
                method: method.clone(),
                uri,
                content_type: content_type.clone(),
                body: body.clone(),
            });
        let name = path
            .strip_prefix("/api/v1/nodes/")
            .filter(|n| !n.contains('/'));
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let Some(node) = name.and_then(|n| nodes.get_mut(n)) else {
            return respond(404, &not_found(&path));
        };
        if method == "PATCH" && content_type == "application/merge-patch+json" {
            match serde_json::from_str::<Value>(&body) {
                Ok(patch) => merge(node, &patch),
                Err(e) => return respond(400, &bad_request(&e.to_string())),
            }
        }
        respond(200, node)
    }
}

/// RFC 7386 JSON merge patch of `patch` into `target`.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn not_found(path: &str) -> Value {
    status(404, "NotFound", &format!("{path} not found"))
}

fn bad_request(message: &str) -> Value {
    status(400, "BadRequest", message)
}

fn respond(code: u16, body: &Value) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    let mut r = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(
        body.to_string(),
    )));
    *r.status_mut() =
        http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_sets_and_removes_keys() {
        let mut node = json!({"metadata": {"name": "a", "annotations": {"x": "1", "y": "2"}}});
        merge(
            &mut node,
            &json!({"metadata": {"annotations": {"x": null, "z": "3"}}}),
        );
        assert_eq!(
            node,
            json!({"metadata": {"name": "a", "annotations": {"y": "2", "z": "3"}}})
        );
    }
}
