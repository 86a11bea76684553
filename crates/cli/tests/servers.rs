//! The servers (`linkwise exporter`, `linkwise extender`) as an operator meets them: the
//! "serving on ADDR" line at default verbosity with the port really bound, gzip on
//! `/metrics`, the same exit code for the same failure in both (a port in use: 1; a
//! malformed address: 2), JSON errors under `-o json`, and the extender logging what it
//! refuses. Every wait polls against a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::net::TcpListener;
use std::process::Output;
use std::time::Duration;

use linkwise_testkit::cli::linkwise;
use linkwise_testkit::http;
use linkwise_testkit::process::Spawned;
use linkwise_testkit::wait::poll_until;

const DEADLINE: Duration = Duration::from_secs(30);

/// Starts `linkwise ARGS` (default verbosity), collecting its stderr.
fn start(args: &[&str]) -> Spawned {
    let mut cmd = linkwise();
    cmd.args(args);
    Spawned::start(cmd)
}

fn exporter(dir: &std::path::Path, addr: &str) -> Spawned {
    start(&[
        "exporter",
        "--source",
        "profile:dgx1-v100",
        "--metrics-addr",
        addr,
        // One collection at start and none after: every scrape serves the same render.
        "--metrics-interval",
        "3600",
        "--pod-resources-socket",
        "none",
        "--slurm-job-dir",
        dir.join("jobs").to_str().unwrap(),
    ])
}

fn nodes_file(dir: &std::path::Path, nodes: &serde_json::Value) -> String {
    let f = dir.join("nodes.json");
    std::fs::write(&f, nodes.to_string()).unwrap();
    f.to_str().unwrap().to_string()
}

fn extender(nodes: &str, addr: &str) -> Spawned {
    start(&["extender", "--listen", addr, "--nodes-file", nodes])
}

/// Regression (issue 12, item 8): the servers said nothing at the default verbosity; now
/// each prints "serving on ADDR" with the address really bound (port 0 shows the port).
#[test]
fn each_server_says_where_it_serves_at_default_verbosity() {
    let dir = tempfile::tempdir().unwrap();
    let e = exporter(dir.path(), "127.0.0.1:0");
    let addr = e.serving_addr(DEADLINE);
    assert_ne!(addr.port(), 0);
    let r = http::get(addr, "/healthz");
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));

    let nodes = nodes_file(dir.path(), &serde_json::json!({ "items": [] }));
    let x = extender(&nodes, "127.0.0.1:0");
    let addr = x.serving_addr(DEADLINE);
    assert_ne!(addr.port(), 0);
    let r = http::get(addr, "/healthz");
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    assert!(x.stderr().contains("/filter"), "{}", x.stderr());
}

/// Regression (issue 12, item 8): `/metrics` was always plain (2.1 MB on nvl72); with
/// `Accept-Encoding: gzip` it is compressed, decodes to the plain page, and says so.
#[test]
fn metrics_are_gzipped_when_asked_and_plain_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let e = exporter(dir.path(), "127.0.0.1:0");
    let addr = e.serving_addr(DEADLINE);
    let get = |accept: Option<&str>| {
        let headers: Vec<(&str, &str)> =
            accept.map(|a| ("Accept-Encoding", a)).into_iter().collect();
        http::request(addr, "GET", "/metrics", &headers, b"")
    };
    let lower = |r: &http::Response, name: &str| r.header(name).map(str::to_ascii_lowercase);
    // Wait for the first collection (before it the page has no GPU samples).
    let plain = poll_until(DEADLINE, "collection", || {
        let r = get(None);
        assert_eq!(r.status, 200, "{}", r.head);
        r.text().contains("gpu=\"").then(|| {
            assert_eq!(r.header("content-encoding"), None, "{}", r.head);
            assert_eq!(
                lower(&r, "vary").as_deref(),
                Some("accept-encoding"),
                "{}",
                r.head
            );
            r.body
        })
    })
    .unwrap();
    for accept in ["gzip", "deflate, gzip;q=0.5, br", "*"] {
        let r = get(Some(accept));
        assert_eq!(r.status, 200, "{}", r.head);
        assert_eq!(
            lower(&r, "content-encoding").as_deref(),
            Some("gzip"),
            "{accept}: {}",
            r.head
        );
        assert_eq!(
            lower(&r, "vary").as_deref(),
            Some("accept-encoding"),
            "{}",
            r.head
        );
        assert!(
            r.body.len() < plain.len() / 3,
            "{} vs {}",
            r.body.len(),
            plain.len()
        );
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(r.body.as_slice())
            .read_to_end(&mut decoded)
            .unwrap();
        assert!(
            decoded == plain,
            "{accept}: the gzip body does not decode to the plain page"
        );
    }
    for accept in ["identity", "gzip;q=0", "br, *;q=0"] {
        let r = get(Some(accept));
        assert_eq!(r.header("content-encoding"), None, "{accept}: {}", r.head);
        assert!(r.body == plain, "{accept}: not the plain page");
    }
}

/// A port some other socket holds.
fn taken_port() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    (l, addr)
}

fn run(args: &[&str]) -> Output {
    linkwise().args(args).output().unwrap()
}

/// Regression (issue 12, item 8): a port in use was exit 1 in the exporter and 2 in the
/// extender; it is a runtime failure (1) in both, and a malformed address is bad input
/// (2) in both.
#[test]
fn the_same_failure_gets_the_same_exit_code_in_both_servers() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = nodes_file(dir.path(), &serde_json::json!({ "items": [] }));
    let (_held, taken) = taken_port();
    let exporter = |addr: &str| {
        run(&[
            "exporter",
            "--source",
            "profile:dgx1-v100",
            "--pod-resources-socket",
            "none",
            "--metrics-addr",
            addr,
        ])
    };
    let extender = |addr: &str| run(&["extender", "--nodes-file", &nodes, "--listen", addr]);
    for (name, out) in [
        ("exporter", exporter(&taken)),
        ("extender", extender(&taken)),
    ] {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}, port in use: {err}");
        assert!(err.contains("in use"), "{name}: {err}");
    }
    for bad in [
        "nonsense",
        "127.0.0.1",
        "127.0.0.1:99999",
        "::1:80",
        "bad host:80",
    ] {
        for (name, out) in [("exporter", exporter(bad)), ("extender", extender(bad))] {
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{name} {bad:?}: {err}");
            assert!(err.contains("HOST:PORT"), "{name} {bad:?}: {err}");
        }
    }
}

/// The one JSON object on stderr.
fn json_error(out: &Output) -> serde_json::Value {
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {err}");
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("not JSON ({e}): {err}"))
}

/// Regression (issue 12, item 8): under `-o json` the final error was plain text; it is
/// one JSON object with the full message and the exit code, in every spelling of the flag
/// and for clap's own refusals too.
#[test]
fn errors_are_json_when_json_output_was_asked_for() {
    for o in [
        &["-o", "json"][..],
        &["-ojson"],
        &["--output=json"],
        &["--output", "json"],
    ] {
        let mut args = vec!["alloc", "--source", "profile:nope", "--count", "2"];
        args.extend_from_slice(o);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{o:?}");
        let v = json_error(&out);
        assert_eq!(v["exit_code"], 2, "{v}");
        let msg = v["error"].as_str().unwrap();
        assert!(msg.contains("unknown profile \"nope\""), "{msg}");
    }
    // Another failure, another command: the object carries the process's exit code.
    let out = run(&[
        "alloc",
        "--source",
        "profile:dgx1-v100",
        "--count",
        "99",
        "-o",
        "json",
    ]);
    let v = json_error(&out);
    assert_eq!(v["exit_code"], out.status.code().unwrap(), "{v}");
    assert!(v["error"].as_str().unwrap().contains("99"), "{v}");
    // clap's refusal of a flag value.
    let out = run(&[
        "topo",
        "--source",
        "profile:dgx1-v100",
        "-o",
        "json",
        "--bogus",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let v = json_error(&out);
    assert!(v["error"].as_str().unwrap().contains("--bogus"), "{v}");
    // Without JSON output the error stays text.
    let out = run(&["alloc", "--source", "profile:nope", "--count", "2"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("linkwise: error: unknown profile"), "{err}");
}

/// Regression (issue 12, item 8): the extender refused requests and ignored unreadable
/// node annotations silently; both are warnings at the default verbosity, the annotation
/// once per node and value however often it is seen.
#[test]
fn the_extender_logs_refused_requests_and_unreadable_annotations_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = |name: &str, ann: &str| serde_json::json!({ "metadata": { "name": name, "annotations": { "linkwise.dev/fabric": ann } } });
    let nodes = nodes_file(
        dir.path(),
        &serde_json::json!({ "items": [node("bad-in-file", "v=1;garbage")] }),
    );
    let x = extender(&nodes, "127.0.0.1:0");
    let addr = x.serving_addr(DEADLINE);
    let line = x.wait_for_line(DEADLINE, "naming the node with a bad annotation", |l| {
        l.contains("WARN") && l.contains("bad-in-file")
    });
    assert!(line.contains("linkwise.dev/fabric"), "{line}");

    let post = |body: &[u8]| http::request(addr, "POST", "/filter", &[], body).status;
    let pod = serde_json::json!({
        "metadata": { "name": "p", "namespace": "ml" },
        "spec": { "containers": [ { "name": "c", "resources": { "limits": { "nvidia.com/gpu": "1" } } } ] }
    });
    let args = serde_json::json!({
        "Pod": pod,
        "Nodes": { "items": [node("bad-in-request", "not an annotation")] },
    });
    for _ in 0..3 {
        assert_eq!(post(args.to_string().as_bytes()), 200);
    }
    assert_eq!(post(b"{{{"), 400);
    let refused = x.wait_for_line(DEADLINE, "about the refused request", |l| {
        l.contains("WARN") && l.contains("refused")
    });
    assert!(refused.contains("400"), "{refused}");
    assert!(refused.contains("/filter"), "{refused}");
    assert!(refused.contains("invalid ExtenderArgs JSON"), "{refused}");
    // The refusal was logged after the three requests, so their lines are in already.
    let stderr = x.stderr();
    let mentions = stderr.matches("bad-in-request").count();
    assert_eq!(mentions, 1, "logged once per node and value:\n{stderr}");
}

/// `--typical-pods`: a malformed pod list, or one without GPU pods, is bad input (2)
/// naming the file, before anything is served.
#[test]
fn the_extender_refuses_a_typical_pod_list_it_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = nodes_file(dir.path(), &serde_json::json!({ "items": [] }));
    let header = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n";
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, format!("{header}p0,4000,1024,one,1000,\n")).unwrap();
    let cpu_only = dir.path().join("cpu.csv");
    std::fs::write(&cpu_only, format!("{header}p0,4000,1024,0,0,\n")).unwrap();
    for (file, says) in [(&bad, "num_gpu"), (&cpu_only, "no GPU pod")] {
        let f = file.to_str().unwrap();
        let out = run(&[
            "extender",
            "--nodes-file",
            &nodes,
            "--listen",
            "127.0.0.1:0",
            "--typical-pods",
            f,
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{f}: {err}");
        assert!(err.contains(f) && err.contains(says), "{f}: {err}");
    }
}

/// `--typical-pods` reaches the scores: against a workload of 4-GPU pods, a 2-GPU pod
/// scores higher on the node with 6 free GPUs than on the one with 4 (the default
/// workload, nearly all single GPUs, scores them alike).
#[test]
fn the_extender_scores_against_the_typical_pods_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let fabric = |used: &[usize]| {
        let topo = linkwise_core::profiles::get("dgx-h100").unwrap();
        let host = topo.hosts[0].name.clone();
        let used = used.iter().map(|&i| topo.gpus[i].id.0.clone()).collect();
        let none = std::collections::BTreeSet::new();
        linkwise_core::annotation::NodeFabric::new(&topo, &host, "nvidia.com/gpu", &used, &none)
            .to_value()
    };
    let node = |name: &str, used: &[usize]| serde_json::json!({ "metadata": { "name": name, "annotations": { "linkwise.dev/fabric": fabric(used) } } });
    let nodes = nodes_file(dir.path(), &serde_json::json!({ "items": [] }));
    let pods = dir.path().join("pods.csv");
    std::fs::write(
        &pods,
        "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\np0,8000,1024,4,1000,\np1,8000,1024,4,1000,\n",
    )
    .unwrap();
    let args = serde_json::json!({
        "Pod": {
            "metadata": { "name": "pair", "namespace": "ml" },
            "spec": { "containers": [ { "name": "c", "resources": { "limits": { "nvidia.com/gpu": "2" } } } ] }
        },
        "Nodes": { "items": [node("six-free", &[0, 1]), node("four-free", &[0, 1, 2, 3])] },
    });
    let scores = |extra: &[&str]| {
        let mut a = vec![
            "extender",
            "--listen",
            "127.0.0.1:0",
            "--nodes-file",
            &nodes,
        ];
        a.extend_from_slice(extra);
        let x = start(&a);
        let addr = x.serving_addr(DEADLINE);
        let r = http::request(
            addr,
            "POST",
            "/prioritize",
            &[],
            args.to_string().as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let v: serde_json::Value = serde_json::from_str(&r.text()).unwrap();
        let s = |i: usize| v[i]["Score"].as_i64().unwrap();
        (s(0), s(1))
    };
    let (six, four) = scores(&["--typical-pods", pods.to_str().unwrap()]);
    assert!(six > four, "6 free {six}, 4 free {four}");
    let (six, four) = scores(&[]);
    assert_eq!(six, four, "default workload");
}
