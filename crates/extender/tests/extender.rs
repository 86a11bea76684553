//! `linkwise extender`: golden request/response pairs driven through the handler
//! in-process, plus one round trip over real HTTP. `UPDATE_GOLDEN=1` rewrites the files
//! under `tests/golden/extender/`.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use linkwise_core::GpuId;
use linkwise_core::annotation::{KEY, NodeFabric};
use linkwise_extender::Extender;
use linkwise_extender::cache::{NodeCache, read_nodes};
use linkwise_testkit::golden;
use serde_json::{Value, json};

/// The annotation of a `profile` node whose GPUs outside `free` are held by containers
/// and whose `unhealthy` GPUs (by index) are unhealthy.
fn annotation(profile: &str, free: &[usize], unhealthy: &[usize]) -> String {
    let topo = linkwise_core::profiles::get(profile).unwrap();
    let host = topo.hosts[0].name.clone();
    let gpus: Vec<_> = topo.gpus.iter().filter(|g| g.host == host).collect();
    let used: BTreeSet<String> = gpus
        .iter()
        .enumerate()
        .filter(|(i, _)| !free.contains(i))
        .map(|(_, g)| g.id.0.clone())
        .collect();
    let bad: BTreeSet<GpuId> = unhealthy.iter().map(|&i| gpus[i].id.clone()).collect();
    NodeFabric::new(&topo, &host, "nvidia.com/gpu", &used, &bad).to_value()
}

fn node(name: &str, annotation: Option<String>) -> Value {
    let mut meta = json!({ "name": name, "labels": { "kubernetes.io/hostname": name } });
    if let Some(a) = annotation {
        meta["annotations"] = json!({ KEY: a });
    }
    json!({ "metadata": meta, "status": { "allocatable": { "nvidia.com/gpu": "8" } } })
}

fn node_list(nodes: &[Value]) -> Value {
    json!({ "kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": nodes })
}

fn pod(name: &str, gpus: u32, annotations: &[(&str, &str)]) -> Value {
    let ann: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| ((*k).to_string(), json!(v)))
        .collect();
    let mut resources = json!({ "requests": { "cpu": "1" } });
    if gpus > 0 {
        resources["limits"] = json!({ "nvidia.com/gpu": gpus.to_string() });
    }
    json!({
        "metadata": { "name": name, "namespace": "ml", "uid": "0000", "annotations": ann },
        "spec": { "containers": [ { "name": "main", "image": "train:1", "resources": resources } ] }
    })
}

/// The scenario's nodes: a DGX-1 with a free NV2 pair, one whose two free GPUs are only
/// SYS-connected, a full one, one without the annotation and one with no GPUs.
fn nodes() -> Vec<Value> {
    let none = NodeFabric {
        v: 1,
        resource: "nvidia.com/gpu".into(),
        gpus: vec![],
        numa: vec![],
        lanes: vec![],
        islands: vec![],
        clique: None,
        free: vec![],
        unhealthy: vec![],
    };
    vec![
        node("nv-pair", Some(annotation("dgx1-v100", &[0, 3], &[]))),
        node("sys-pair", Some(annotation("dgx1-v100", &[0, 5], &[]))),
        node("full", Some(annotation("dgx1-v100", &[], &[]))),
        node("cpu-only", None),
        node("no-gpus", Some(none.to_value())),
    ]
}

fn names(nodes: &[Value]) -> Vec<String> {
    nodes
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/extender")
}

/// A node cache holding `nodes`, loaded the way `--nodes-file` loads it.
fn cached(nodes: &[Value]) -> Arc<NodeCache> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nodes.json");
    std::fs::write(&file, serde_json::to_string(&node_list(nodes)).unwrap()).unwrap();
    let cache = Arc::new(NodeCache::default());
    cache.replace(read_nodes(&file).unwrap());
    cache
}

fn ext(nodes: &[Value]) -> Extender {
    Extender::new("/linkwise", Vec::new(), Some(cached(nodes)))
}

/// Posts `body` to `path`, checks the status, and compares the answer with the golden
/// file `<name>.response.json` (the request is kept next to it as `<name>.request.json`).
fn golden(ext: &Extender, name: &str, path: &str, body: &[u8], status: u16) -> Value {
    let reply = ext.handle("POST", path, body);
    let text = String::from_utf8(reply.body.clone()).unwrap();
    assert_eq!(reply.status, status, "{name}: {text}");
    assert_eq!(reply.content_type, "application/json");
    let got: Value = serde_json::from_str(&text).unwrap();
    let dir = golden_dir();
    let req_file = dir.join(format!("{name}.request.json"));
    let resp_file = dir.join(format!("{name}.response.json"));
    if golden::updating() {
        // Error messages carry line and column: bad requests are kept byte for byte.
        let req = match serde_json::from_slice::<Value>(body) {
            Ok(v) if status == 200 => serde_json::to_string_pretty(&v).unwrap() + "\n",
            _ => String::from_utf8_lossy(body).into_owned(),
        };
        golden::write(&req_file, &req);
    } else {
        // The stored request still produces the stored answer.
        let stored_req = std::fs::read(&req_file)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", req_file.display()));
        let again = ext.handle("POST", path, &stored_req);
        assert_eq!(again.status, status, "{name}: stored request");
        let again: Value = serde_json::from_slice(&again.body).unwrap();
        golden::assert_json(&resp_file, &again);
    }
    golden::assert_json(&resp_file, &got);
    got
}

fn args(pod: &Value, nodes: Option<&[Value]>, names: Option<&[String]>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "Pod": pod,
        "Nodes": nodes.map(node_list),
        "NodeNames": names,
    }))
    .unwrap()
}

fn scores(v: &Value) -> Vec<(String, i64)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["Host"].as_str().unwrap().to_string(),
                h["Score"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn score_of(v: &Value, host: &str) -> i64 {
    scores(v)
        .into_iter()
        .find(|(h, _)| h == host)
        .map(|(_, s)| s)
        .unwrap()
}

#[test]
fn filter_with_full_nodes() {
    let ns = nodes();
    let e = ext(&[]);
    let got = golden(
        &e,
        "filter-nodes",
        "/linkwise/filter",
        &args(&pod("train-2", 2, &[]), Some(&ns), None),
        200,
    );
    assert!(got["NodeNames"].is_null());
    let kept = names(got["Nodes"]["items"].as_array().unwrap());
    assert_eq!(kept, ["nv-pair", "sys-pair", "cpu-only"]);
    assert_eq!(got["FailedNodes"]["full"], "2 GPUs requested, 0 free");
    assert_eq!(
        got["FailedAndUnresolvableNodes"]["no-gpus"],
        "node has no GPUs"
    );
    assert_eq!(got["Error"], "");
    // Survivors come back exactly as received.
    assert_eq!(got["Nodes"]["items"][0], ns[0]);
    assert_eq!(got["Nodes"]["kind"], "NodeList");
}

#[test]
fn filter_with_node_names_and_a_nodes_file() {
    let ns = nodes();
    let e = ext(&ns);
    let mut list = names(&ns);
    list.push("not-cached".into());
    let got = golden(
        &e,
        "filter-names",
        "/linkwise/filter",
        &args(&pod("train-2", 2, &[]), None, Some(&list)),
        200,
    );
    assert!(got["Nodes"].is_null());
    assert_eq!(
        got["NodeNames"],
        json!(["nv-pair", "sys-pair", "cpu-only", "not-cached"])
    );
    assert_eq!(
        got["FailedNodes"],
        json!({ "full": "2 GPUs requested, 0 free" })
    );
    assert_eq!(
        got["FailedAndUnresolvableNodes"],
        json!({ "no-gpus": "node has no GPUs" })
    );
}

#[test]
fn prioritize_prefers_a_free_nvlink_pair_in_both_modes() {
    let ns = nodes();
    let e = ext(&ns);
    let p = pod("train-2", 2, &[]);
    let full = golden(
        &e,
        "prioritize-nodes",
        "/linkwise/prioritize",
        &args(&p, Some(&ns), None),
        200,
    );
    let by_name = golden(
        &e,
        "prioritize-names",
        "/prioritize",
        &args(&p, None, Some(&names(&ns))),
        200,
    );
    assert_eq!(full, by_name);
    assert!(
        score_of(&full, "nv-pair") > score_of(&full, "sys-pair"),
        "{full}"
    );
    assert_eq!(score_of(&full, "nv-pair"), 10);
    for h in ["full", "cpu-only", "no-gpus"] {
        assert_eq!(score_of(&full, h), 0, "{h}");
    }
    for (_, s) in scores(&full) {
        assert!((0..=10).contains(&s));
    }
}

#[test]
fn prioritize_is_fragmentation_aware_for_one_gpu() {
    // A 1-GPU pod: a node whose NVLink pair is already broken beats a fresh node.
    let ns = vec![
        node(
            "fresh",
            Some(annotation("nvlink-bridge-pairs", &[0, 1, 2, 3], &[])),
        ),
        node(
            "orphan",
            Some(annotation("nvlink-bridge-pairs", &[0, 2, 3], &[])),
        ),
    ];
    let e = ext(&[]);
    let got = golden(
        &e,
        "prioritize-one-gpu",
        "/prioritize",
        &args(&pod("single", 1, &[]), Some(&ns), None),
        200,
    );
    assert!(score_of(&got, "orphan") > score_of(&got, "fresh"), "{got}");
}

/// The extender's prioritize ranks by the placement policy's fragmentation score against
/// the typical pods (`with_typical`), not by the tightest fit: with a workload of 4-GPU
/// pods, a 2-GPU pod goes to the node with 6 free GPUs (both nodes keep a 4-GPU slot)
/// rather than the one with 4 (the tightest fit, which the old score preferred: it left
/// no 4-GPU slot there).
#[test]
fn prioritize_follows_the_placement_policy_against_the_typical_pods() {
    use linkwise_core::placement::GPU_MILLI;
    use linkwise_core::placement::frag::{TypicalPods, TypicalShape};
    let ns = vec![
        node(
            "six-free",
            Some(annotation("dgx-h100", &[2, 3, 4, 5, 6, 7], &[])),
        ),
        node(
            "four-free",
            Some(annotation("dgx-h100", &[4, 5, 6, 7], &[])),
        ),
    ];
    let fours = TypicalPods {
        shapes: vec![TypicalShape {
            cpu_milli: 8000,
            gpu_milli: GPU_MILLI,
            num_gpu: 4,
            gpu_spec: BTreeSet::new(),
            p: 1.0,
        }],
    };
    let e = Extender::new("", Vec::new(), None).with_typical(&fours);
    let reply = e.handle(
        "POST",
        "/prioritize",
        &args(&pod("pair", 2, &[]), Some(&ns), None),
    );
    assert_eq!(reply.status, 200);
    let got: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(score_of(&got, "six-free"), 10, "{got}");
    assert!(score_of(&got, "four-free") < 10, "{got}");
}

#[test]
fn nvlink_required_filters_by_island() {
    // Two NV4 pairs: GPUs 0-1 and 2-3.
    let ns = vec![
        node(
            "pairs-free",
            Some(annotation("nvlink-bridge-pairs", &[0, 1, 2, 3], &[])),
        ),
        node(
            "split",
            Some(annotation("nvlink-bridge-pairs", &[0, 2], &[])),
        ),
        node(
            "h100",
            Some(annotation("dgx-h100", &[0, 1, 2, 3, 4, 5, 6, 7], &[])),
        ),
    ];
    let e = ext(&[]);
    let two = golden(
        &e,
        "filter-nvlink-required-2",
        "/filter",
        &args(
            &pod("pair", 2, &[("linkwise.dev/nvlink", "required")]),
            Some(&ns),
            None,
        ),
        200,
    );
    assert_eq!(
        names(two["Nodes"]["items"].as_array().unwrap()),
        ["pairs-free", "h100"]
    );
    assert_eq!(
        two["FailedNodes"]["split"],
        "no 2-GPU NVLink-connected set free"
    );
    let four = golden(
        &e,
        "filter-nvlink-required-4",
        "/filter",
        &args(
            &pod("quad", 4, &[("linkwise.dev/nvlink", "required")]),
            Some(&ns),
            None,
        ),
        200,
    );
    assert_eq!(names(four["Nodes"]["items"].as_array().unwrap()), ["h100"]);
    assert!(
        four["FailedAndUnresolvableNodes"]["pairs-free"]
            .as_str()
            .unwrap()
            .starts_with("no 4-GPU NVLink island"),
        "{four}"
    );
    // No 4-GPU island on it either: preemption would not help.
    assert!(
        four["FailedAndUnresolvableNodes"]["split"].is_string(),
        "{four}"
    );
    // Preferred (the default): the split node stays, scored below the free pairs.
    let preferred = e.handle(
        "POST",
        "/filter",
        &args(&pod("pair", 2, &[]), Some(&ns), None),
    );
    let v: Value = serde_json::from_slice(&preferred.body).unwrap();
    assert_eq!(v["Nodes"]["items"].as_array().unwrap().len(), 3);
}

#[test]
fn fractional_gpus_share_a_used_gpu_first() {
    let ns = vec![
        node("busy", Some(annotation("dgx-h100", &[4, 5, 6, 7], &[]))),
        node(
            "idle",
            Some(annotation("dgx-h100", &[0, 1, 2, 3, 4, 5, 6, 7], &[])),
        ),
        node(
            "broken",
            Some(annotation("nvlink-bridge-pairs", &[], &[0, 1, 2, 3])),
        ),
    ];
    let e = ext(&[]);
    let p = pod("half", 0, &[("linkwise.dev/gpu-milli", "500")]);
    let f = golden(
        &e,
        "filter-fraction",
        "/filter",
        &args(&p, Some(&ns), None),
        200,
    );
    assert_eq!(
        names(f["Nodes"]["items"].as_array().unwrap()),
        ["busy", "idle"]
    );
    assert_eq!(
        f["FailedAndUnresolvableNodes"]["broken"],
        "node has no healthy GPU"
    );
    let s = golden(
        &e,
        "prioritize-fraction",
        "/prioritize",
        &args(&p, Some(&ns), None),
        200,
    );
    assert_eq!(score_of(&s, "busy"), 10);
    assert!(score_of(&s, "idle") < 10);
    assert_eq!(score_of(&s, "broken"), 0);
    // 1500 milli-GPUs is two whole GPUs.
    let big = pod("one-and-a-half", 0, &[("linkwise.dev/gpu-milli", "1500")]);
    let r = e.handle(
        "POST",
        "/filter",
        &args(
            &big,
            Some(&[node("one-free", Some(annotation("dgx-h100", &[3], &[])))]),
            None,
        ),
    );
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["FailedNodes"]["one-free"], "2 GPUs requested, 1 free");
}

#[test]
fn pods_without_gpus_pass_everywhere_and_score_zero() {
    let ns = nodes();
    let e = ext(&[]);
    let p = pod("web", 0, &[]);
    let f = golden(
        &e,
        "filter-no-gpu",
        "/filter",
        &args(&p, Some(&ns), None),
        200,
    );
    assert_eq!(f["Nodes"]["items"].as_array().unwrap().len(), ns.len());
    assert_eq!(f["FailedNodes"], json!({}));
    let s = e.handle("POST", "/prioritize", &args(&p, Some(&ns), None));
    let v: Value = serde_json::from_slice(&s.body).unwrap();
    assert!(scores(&v).iter().all(|(_, s)| *s == 0));
}

#[test]
fn bad_requests_are_400_with_an_error_body() {
    let e = ext(&[]);
    let ns = nodes();
    for (name, body, needle) in [
        (
            "bad-json",
            b"{\"Pod\": {".to_vec(),
            "invalid ExtenderArgs JSON",
        ),
        (
            "bad-not-an-object",
            b"[1]".to_vec(),
            "must be a JSON object",
        ),
        (
            "bad-no-pod",
            serde_json::to_vec(&json!({ "Nodes": null, "NodeNames": ["a"] })).unwrap(),
            "Pod is missing",
        ),
        (
            "bad-no-nodes",
            serde_json::to_vec(
                &json!({ "Pod": pod("p", 1, &[]), "Nodes": null, "NodeNames": null }),
            )
            .unwrap(),
            "both null",
        ),
        (
            "bad-node-names-shape",
            serde_json::to_vec(
                &json!({ "Pod": pod("p", 1, &[]), "Nodes": null, "NodeNames": "a" }),
            )
            .unwrap(),
            "invalid type",
        ),
        (
            "bad-nvlink-annotation",
            args(
                &pod("p", 2, &[("linkwise.dev/nvlink", "always")]),
                Some(&ns),
                None,
            ),
            "neither",
        ),
        (
            "bad-gpu-quantity",
            serde_json::to_vec(&json!({
                "Pod": { "metadata": { "name": "p" }, "spec": { "containers": [
                    { "name": "c", "resources": { "limits": { "nvidia.com/gpu": "1.5" } } } ] } },
                "Nodes": null, "NodeNames": ["a"] }))
            .unwrap(),
            "not a whole number",
        ),
    ] {
        for path in ["/linkwise/filter", "/prioritize"] {
            let r = e.handle("POST", path, &body);
            assert_eq!(r.status, 400, "{name} {path}");
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            let msg = v["Error"].as_str().unwrap();
            assert!(msg.contains(needle), "{name}: {msg}");
        }
        golden(&e, name, "/linkwise/filter", &body, 400);
    }
    // Paths, methods and sizes.
    assert_eq!(e.handle("GET", "/linkwise/filter", b"").status, 405);
    assert_eq!(e.handle("POST", "/nope", b"{}").status, 404);
    assert_eq!(e.handle("GET", "/healthz", b"").status, 200);
    assert_eq!(e.handle("GET", "/linkwise/healthz", b"").status, 200);
    let huge = vec![b' '; linkwise_extender::MAX_BODY + 1];
    assert_eq!(e.handle("POST", "/filter", &huge).status, 413);
}

#[test]
fn nodes_file_directory_and_unknown_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let ns = nodes();
    for n in &ns {
        let name = n["metadata"]["name"].as_str().unwrap();
        std::fs::write(
            dir.path().join(format!("{name}.json")),
            serde_json::to_string(n).unwrap(),
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("README.txt"), "ignored").unwrap();
    let read = read_nodes(dir.path()).unwrap();
    assert_eq!(read.len(), ns.len());
    let yaml = dir.path().join("list.yaml");
    std::fs::write(
        &yaml,
        "apiVersion: v1\nkind: NodeList\nitems:\n- metadata:\n    name: y1\n",
    )
    .unwrap();
    assert_eq!(read_nodes(&yaml).unwrap(), vec![("y1".to_string(), None)]);
    // Without a cache, NodeNames pass through unjudged.
    let e = Extender::new("", Vec::new(), None);
    let r = e.handle(
        "POST",
        "/filter",
        &args(&pod("p", 8, &[]), None, Some(&["a".to_string()])),
    );
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["NodeNames"], json!(["a"]));
}

#[test]
fn custom_resources_are_counted() {
    let e = Extender::new("", vec!["example.com/gpu".into()], None);
    let p = json!({ "metadata": { "name": "p" }, "spec": { "containers": [
        { "name": "a", "resources": { "requests": { "example.com/gpu": "2" } } },
        { "name": "b", "resources": { "limits": { "example.com/gpu": 1, "nvidia.com/gpu": "8" } } } ] } });
    let ns = [node("one", Some(annotation("dgx-h100", &[0, 1], &[])))];
    let r = e.handle("POST", "/filter", &args(&p, Some(&ns), None));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["FailedNodes"]["one"], "3 GPUs requested, 2 free");
}

#[test]
fn serves_over_http() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ns = nodes();
    let ext = Arc::new(ext(&ns));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(linkwise_extender::server::serve(
        listener,
        ext.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    use linkwise_testkit::http::{exchange, request};
    let body = args(&pod("train-2", 2, &[]), None, Some(&names(&ns)));
    let json = [("Content-Type", "application/json")];
    let r = request(addr, "POST", "/linkwise/prioritize", &json, &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let want = ext.handle("POST", "/linkwise/prioritize", &body);
    assert_eq!(r.body, want.body);
    let r = request(addr, "GET", "/healthz", &[], b"");
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    // Bad JSON: 400, and the server keeps serving.
    let r = request(addr, "POST", "/filter", &[], b"{{{");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("\"Error\""), "{}", r.text());
    // A declared body over the limit is refused before it is read.
    let r = exchange(
        addr,
        b"POST /filter HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 413);
    assert_eq!(request(addr, "GET", "/healthz", &[], b"").status, 200);
    stop.send(()).unwrap();
    rt.block_on(server).unwrap();
}

/// Regression (issue 12, item 8): a client that sent part of a request and stopped held
/// its connection forever (300 such stayed open). With 1 s limits every kind of stall
/// ends in a closed connection well within the deadline; a stalled body is answered 408.
#[test]
fn stalled_clients_are_disconnected() {
    use std::io::{Read, Write};
    use std::time::Duration;
    const DEADLINE: Duration = Duration::from_secs(20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ext = Arc::new(ext(&nodes()));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let options = linkwise_http::ServeOptions {
        header_timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(1),
        max_connections: 64,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(linkwise_extender::server::serve_with(
        listener,
        ext,
        options,
        async {
            let _ = stopped.await;
        },
    ));
    // Many stalled clients at once, each kind several times.
    let kinds: [&[u8]; 4] = [
        b"",
        b"POST /linkwise/filter HTTP/1.1\r\nHost: x\r\nContent-Le",
        b"POST /linkwise/filter HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"Pod\":",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    ];
    let mut clients = Vec::new();
    for round in 0..5 {
        for (kind, bytes) in kinds.iter().enumerate() {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(bytes).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            clients.push((round, kind, s, Vec::new(), false));
        }
    }
    let start = std::time::Instant::now();
    while clients.iter().any(|c| !c.4) {
        assert!(
            start.elapsed() < DEADLINE,
            "still open after {DEADLINE:?}: {:?}",
            clients
                .iter()
                .filter(|c| !c.4)
                .map(|c| (c.0, c.1))
                .collect::<Vec<_>>()
        );
        for (_, _, s, got, closed) in clients.iter_mut().filter(|c| !c.4) {
            let mut buf = [0u8; 4096];
            match s.read(&mut buf) {
                Ok(0) => *closed = true,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => *closed = true,
            }
        }
    }
    for (round, kind, _, got, _) in &clients {
        let said = String::from_utf8_lossy(got);
        match kind {
            2 => assert!(said.starts_with("HTTP/1.1 408"), "{round}: {said}"),
            3 => assert!(said.starts_with("HTTP/1.1 200"), "{round}: {said}"),
            _ => assert!(!said.starts_with("HTTP/1.1 200"), "{round}: {said}"),
        }
    }
    stop.send(()).unwrap();
    rt.block_on(server).unwrap();
}
