//! A fake Kubernetes API server behind a real `kube::Client`: it records every request
//! (method, path and query, content type, body) and answers as the API server does for
//! the objects it holds:
//!
//! - `GET`/`PATCH` of `/api/v1/nodes/NAME`: that Node back, a JSON merge patch applied
//!   (labels, annotations, `spec.unschedulable`, `spec.taints`);
//! - `GET /api/v1/pods?fieldSelector=spec.nodeName=NODE` (and without the selector): a
//!   `PodList`; `GET /api/v1/namespaces/NS/pods/NAME`: the Pod or `404`;
//! - `POST /api/v1/namespaces/NS/pods/NAME/eviction` (the Eviction API): the pod is
//!   deleted and `201` answered — unless a PodDisruptionBudget of its namespace selects
//!   it (`matchLabels`) and allows no disruption (`minAvailable` of the selected pods
//!   would no longer be met), when the answer is `429 TooManyRequests`, as the API
//!   server's;
//! - `resource.k8s.io/v1` ResourceClaims: `GET .../namespaces/NS/resourceclaims/NAME`
//!   answers a claim added with [`FakeApi::add_claim`] (its allocation results); other
//!   API versions of the group answer `404`, as a server without them does;
//! - `resource.k8s.io/v1` ResourceSlices (cluster-scoped): server-side apply (`PATCH`
//!   with `application/apply-patch+yaml`; `fieldManager` required, the object's name,
//!   `apiVersion` and `kind` must match, as the API server checks) creating or replacing
//!   the slice and stamping `metadata.uid` and a rising `resourceVersion`; `GET` of one;
//!   the list with `fieldSelector` on `spec.nodeName` and `spec.driver`; `DELETE`;
//! - anything else `404` with a Kubernetes `Status`.

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
    /// Pods by `NS/NAME`.
    pods: Arc<Mutex<BTreeMap<String, Value>>>,
    pdbs: Arc<Mutex<Vec<Pdb>>>,
    /// ResourceClaims by `NS/NAME`.
    claims: Arc<Mutex<BTreeMap<String, Value>>>,
    /// ResourceSlices by name, and the last resourceVersion given.
    slices: Arc<Mutex<(BTreeMap<String, Value>, u64)>>,
}

/// One allocated device of a claim, for [`FakeApi::add_claim`].
#[derive(Debug, Clone, Copy)]
pub struct AllocatedDevice<'a> {
    /// The claim's request it serves.
    pub request: &'a str,
    /// The driver.
    pub driver: &'a str,
    /// The pool (the node's name).
    pub pool: &'a str,
    /// The device name.
    pub device: &'a str,
}

/// A PodDisruptionBudget: namespace, `matchLabels`, `minAvailable`.
type Pdb = (String, BTreeMap<String, String>, usize);

/// A pod for [`FakeApi::add_pod`].
#[derive(Debug, Clone, Default)]
pub struct PodSpec<'a> {
    /// Its namespace.
    pub namespace: &'a str,
    /// Its name.
    pub name: &'a str,
    /// The node it runs on.
    pub node: &'a str,
    /// Its labels.
    pub labels: &'a [(&'a str, &'a str)],
    /// GPUs its container asks for (`nvidia.com/gpu` limits), 0 for none.
    pub gpus: u32,
    /// The kind of its controller (`DaemonSet`, `ReplicaSet`), if any.
    pub owner: Option<&'a str>,
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
                    json!({"apiVersion": "v1", "kind": "Node",
                           "metadata": {"name": n, "uid": format!("uid-node-{n}")}}),
                );
            }
        }
        api
    }

    /// Adds a running pod.
    pub fn add_pod(&self, p: &PodSpec<'_>) {
        let labels: serde_json::Map<String, Value> = p
            .labels
            .iter()
            .map(|(k, v)| ((*k).to_string(), Value::from(*v)))
            .collect();
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": p.name, "namespace": p.namespace, "labels": labels,
                         "uid": format!("uid-{}-{}", p.namespace, p.name)},
            "spec": {"nodeName": p.node, "containers": [{"name": "main", "image": "cuda"}]},
            "status": {"phase": "Running"},
        });
        if p.gpus > 0 {
            pod["spec"]["containers"][0]["resources"] =
                json!({"limits": {"nvidia.com/gpu": p.gpus.to_string()}});
        }
        if let Some(kind) = p.owner {
            pod["metadata"]["ownerReferences"] = json!([{
                "apiVersion": "apps/v1", "kind": kind, "name": format!("{}-owner", p.name),
                "uid": format!("owner-{}", p.name), "controller": true}]);
        }
        self.pods
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(format!("{}/{}", p.namespace, p.name), pod);
    }

    /// Adds a PodDisruptionBudget: at least `min_available` of the pods of `namespace`
    /// with all of `labels` must keep running.
    pub fn add_pdb(&self, namespace: &str, labels: &[(&str, &str)], min_available: usize) {
        self.pdbs.lock().unwrap_or_else(|p| p.into_inner()).push((
            namespace.to_string(),
            labels
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            min_available,
        ));
    }

    /// Adds (or replaces) the ResourceClaim `namespace/name` with `uid`, allocated
    /// `devices` (`None`: not allocated, no `status.allocation`).
    pub fn add_claim(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        devices: Option<&[AllocatedDevice<'_>]>,
    ) {
        let mut claim = json!({
            "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
            "metadata": {"name": name, "namespace": namespace, "uid": uid},
            "spec": {"devices": {"requests": []}},
        });
        if let Some(devices) = devices {
            let results: Vec<Value> = devices
                .iter()
                .map(|d| json!({"request": d.request, "driver": d.driver, "pool": d.pool, "device": d.device}))
                .collect();
            claim["status"] = json!({"allocation": {"devices": {"results": results}}});
        }
        self.claims
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(format!("{namespace}/{name}"), claim);
    }

    /// The ResourceSlices held, in name order.
    pub fn slices(&self) -> Vec<Value> {
        self.slices
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .values()
            .cloned()
            .collect()
    }

    /// The names (`NS/NAME`) of the pods running on `node`.
    pub fn pods_on(&self, node: &str) -> Vec<String> {
        self.pods
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, p)| p["spec"]["nodeName"] == node)
            .map(|(k, _)| k.clone())
            .collect()
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

    /// Serves this fake over HTTP/1.1 on 127.0.0.1 (a free port), for a process under
    /// test (`KUBECONFIG` from [`kubeconfig`]); its base URL. Call inside a tokio runtime;
    /// it serves until the runtime stops.
    ///
    /// # Panics
    ///
    /// When no port can be bound.
    pub async fn serve_http(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind 127.0.0.1:0: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("local address: {e}"));
        let api = self.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let api = api.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let r = api.answer_parts(&parts, &body);
                let (p, b) = r.into_parts();
                axum::response::Response::from_parts(p, axum::body::Body::new(b))
            }
        });
        tokio::spawn(linkwise_http::serve(
            listener,
            linkwise_http::ServeOptions::default(),
            app,
            std::future::pending(),
        ));
        format!("http://{addr}")
    }

    async fn answer(
        &self,
        req: http::Request<kube::client::Body>,
    ) -> http::Response<http_body_util::Full<bytes::Bytes>> {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        self.answer_parts(&parts, &body)
    }

    fn answer_parts(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
    ) -> http::Response<http_body_util::Full<bytes::Bytes>> {
        let method = parts.method.to_string();
        let uri = parts.uri.to_string();
        let path = parts.uri.path().to_string();
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = String::from_utf8_lossy(body).into_owned();
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Seen {
                method: method.clone(),
                uri: uri.clone(),
                content_type: content_type.clone(),
                body: body.clone(),
            });
        if let Some(r) = self.pod_request(&method, &path, &uri) {
            return r;
        }
        if let Some(r) = self.dra_request(&method, &path, &uri, &content_type, &body) {
            return r;
        }
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

impl FakeApi {
    /// Pods, their list and their eviction; `None` for other paths.
    fn pod_request(
        &self,
        method: &str,
        path: &str,
        uri: &str,
    ) -> Option<http::Response<http_body_util::Full<bytes::Bytes>>> {
        let mut pods = self.pods.lock().unwrap_or_else(|p| p.into_inner());
        if path == "/api/v1/pods" && method == "GET" {
            let query = uri.split_once('?').map_or("", |(_, q)| q);
            let node = query.split('&').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k == "fieldSelector").then(|| decode(v))
            });
            let node = node
                .as_deref()
                .and_then(|f| f.strip_prefix("spec.nodeName="));
            let items: Vec<Value> = pods
                .values()
                .filter(|p| node.is_none_or(|n| p["spec"]["nodeName"] == n))
                .cloned()
                .collect();
            return Some(respond(
                200,
                &json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": items}),
            ));
        }
        let rest = path.strip_prefix("/api/v1/namespaces/")?;
        let (ns, rest) = rest.split_once("/pods/")?;
        let (name, sub) = match rest.split_once('/') {
            Some((n, s)) => (n, Some(s)),
            None => (rest, None),
        };
        let key = format!("{ns}/{name}");
        let Some(pod) = pods.get(&key).cloned() else {
            return Some(respond(404, &not_found(path)));
        };
        match (method, sub) {
            ("GET", None) => Some(respond(200, &pod)),
            ("POST", Some("eviction")) => {
                let pdbs = self.pdbs.lock().unwrap_or_else(|p| p.into_inner());
                let selects = |labels: &BTreeMap<String, String>, p: &Value| {
                    p["metadata"]["namespace"] == ns
                        && labels
                            .iter()
                            .all(|(k, v)| p["metadata"]["labels"][k].as_str() == Some(v))
                };
                for (pdb_ns, labels, min) in pdbs.iter() {
                    if pdb_ns != ns || !selects(labels, &pod) {
                        continue;
                    }
                    let healthy = pods.values().filter(|p| selects(labels, p)).count();
                    if healthy <= *min {
                        return Some(respond(
                            429,
                            &status(
                                429,
                                "TooManyRequests",
                                "Cannot evict pod as it would violate the pod's disruption budget.",
                            ),
                        ));
                    }
                }
                pods.remove(&key);
                Some(respond(
                    201,
                    &json!({"apiVersion": "v1", "kind": "Status", "status": "Success", "code": 201}),
                ))
            }
            _ => Some(respond(405, &status(405, "MethodNotAllowed", method))),
        }
    }
}

impl FakeApi {
    /// ResourceClaims and ResourceSlices of `resource.k8s.io`; `None` for other paths.
    fn dra_request(
        &self,
        method: &str,
        path: &str,
        uri: &str,
        content_type: &str,
        body: &str,
    ) -> Option<http::Response<http_body_util::Full<bytes::Bytes>>> {
        let rest = path.strip_prefix("/apis/resource.k8s.io/")?;
        let (version, rest) = rest.split_once('/')?;
        if version != "v1" {
            return Some(respond(404, &not_found(path)));
        }
        let query = uri.split_once('?').map_or("", |(_, q)| q);
        let param = |key: &str| {
            query.split('&').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k == key).then(|| decode(v))
            })
        };
        if let Some(rest) = rest.strip_prefix("namespaces/") {
            let (ns, name) = rest.split_once("/resourceclaims/")?;
            let claims = self.claims.lock().unwrap_or_else(|p| p.into_inner());
            return Some(match (method, claims.get(&format!("{ns}/{name}"))) {
                ("GET", Some(c)) => respond(200, c),
                ("GET", None) => respond(404, &not_found(path)),
                _ => respond(405, &status(405, "MethodNotAllowed", method)),
            });
        }
        let mut held = self.slices.lock().unwrap_or_else(|p| p.into_inner());
        if rest == "resourceslices" && method == "GET" {
            let selector = param("fieldSelector").unwrap_or_default();
            let wanted: Vec<(&str, &str)> = selector
                .split(',')
                .filter_map(|t| t.split_once('='))
                .collect();
            let items: Vec<Value> = held
                .0
                .values()
                .filter(|s| {
                    wanted.iter().all(|(k, v)| match *k {
                        "spec.nodeName" => s["spec"]["nodeName"] == *v,
                        "spec.driver" => s["spec"]["driver"] == *v,
                        _ => false,
                    })
                })
                .cloned()
                .collect();
            return Some(respond(
                200,
                &json!({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSliceList",
                        "metadata": {"resourceVersion": held.1.to_string()}, "items": items}),
            ));
        }
        let name = rest.strip_prefix("resourceslices/")?.to_string();
        Some(match method {
            "GET" => match held.0.get(&name) {
                Some(s) => respond(200, s),
                None => respond(404, &not_found(path)),
            },
            "DELETE" => match held.0.remove(&name) {
                Some(s) => respond(200, &s),
                None => respond(404, &not_found(path)),
            },
            "PATCH" if content_type == "application/apply-patch+yaml" => {
                if param("fieldManager").is_none_or(|m| m.is_empty()) {
                    return Some(respond(
                        400,
                        &bad_request("PATCH: fieldManager is required for apply requests"),
                    ));
                }
                let mut obj: Value = match serde_json::from_str(body) {
                    Ok(v) => v,
                    Err(e) => return Some(respond(400, &bad_request(&e.to_string()))),
                };
                if obj["apiVersion"] != "resource.k8s.io/v1" || obj["kind"] != "ResourceSlice" {
                    return Some(respond(
                        400,
                        &bad_request("apiVersion/kind must be resource.k8s.io/v1 ResourceSlice"),
                    ));
                }
                if obj["metadata"]["name"] != name.as_str() {
                    return Some(respond(
                        400,
                        &bad_request("the name of the object does not match the name on the URL"),
                    ));
                }
                held.1 += 1;
                let uid = held.0.get(&name).map_or_else(
                    || format!("uid-slice-{name}"),
                    |old| {
                        old["metadata"]["uid"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string()
                    },
                );
                obj["metadata"]["uid"] = json!(uid);
                obj["metadata"]["resourceVersion"] = json!(held.1.to_string());
                held.0.insert(name, obj.clone());
                respond(200, &obj)
            }
            _ => respond(405, &status(405, "MethodNotAllowed", method)),
        })
    }
}

/// A kubeconfig for a client of `server` (a URL from [`FakeApi::serve_http`]), written to
/// `path`: one cluster, one user with a token, one context, as `kubectl` writes them.
///
/// # Panics
///
/// When the file cannot be written.
pub fn kubeconfig(server: &str, path: &std::path::Path) {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {server}\n\
         users:\n- name: test\n  user:\n    token: fake-token\n\
         contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: test\n\
         current-context: fake\n"
    );
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// `%XX` decoded (query values).
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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
