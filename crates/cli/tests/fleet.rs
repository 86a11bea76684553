//! `linkwise fleet` over reports made by `linkwise report`.
//!
//! From files: drift and attest find the planted difference (exit 1); a clean fleet exits
//! 0; each node's latest report counts; a bad report or allow-list is bad input naming
//! the file.
//!
//! Over the database, on SQLite and a real PostgreSQL (`.ci/run` starts one): ingest
//! stores the good reports and rejects a bad one by file and field (exit 1); drift,
//! attest, nodes, show and history read the store; `fleet serve` takes reports pushed by
//! `linkwise report --push` and refuses a request without the token; a server killed with
//! SIGKILL in the middle of ingest leaves a database that opens and holds only whole
//! reports, every acknowledged one among them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use linkwise_fleet::NodeReport;
use linkwise_fleet::store::Store;
use linkwise_testkit::cli::{bad_input, linkwise, ok, run, stderr, stdout};
use linkwise_testkit::http::request;
use linkwise_testkit::process::Spawned;
use serde_json::Value;

fn report_json(node: &str, rack: &str, kernel: &str, at: &str) -> Value {
    let mut v: Value = serde_json::from_str(&ok(&[
        "report",
        "--source",
        "profile:dgx-h100",
        "--node",
        node,
        "--labels",
        &format!("rack={rack}"),
    ]))
    .unwrap();
    v["host"]["kernel"] = kernel.into();
    v["collectedAt"] = at.into();
    v
}

/// `fleet attest --allow-list ALLOW EXTRA... -o json`, which must exit 1: the nodes found.
fn attested(allow: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "fleet",
        "attest",
        "--allow-list",
        allow.to_str().unwrap(),
        "-o",
        "json",
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x["node"].as_str().unwrap().to_string())
        .collect()
}

fn report(dir: &Path, node: &str, rack: &str, kernel: &str, at: &str) {
    let v = report_json(node, rack, kernel, at);
    std::fs::write(dir.join(format!("{node}-{at}.json")), v.to_string()).unwrap();
}

#[test]
fn drift_and_attest_find_the_planted_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for i in 1..=4 {
        report(
            d,
            &format!("n{i}"),
            if i <= 2 { "r01" } else { "r02" },
            "6.8.0-60-generic",
            "2026-12-01T00:00:00Z",
        );
    }
    // n4 moved to another kernel later; its older report is not what counts.
    report(d, "n4", "r02", "6.8.0-62-generic", "2026-12-02T00:00:00Z");
    let reports = d.to_str().unwrap();
    let o = run(&["fleet", "drift", "--reports", reports, "-o", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = v["findings"].as_array().unwrap();
    assert_eq!(f.len(), 1, "{v:#}");
    assert_eq!(
        (
            f[0]["node"].as_str(),
            f[0]["field"].as_str(),
            f[0]["value"].as_str()
        ),
        (Some("n4"), Some("kernel"), Some("6.8.0-62-generic"))
    );
    assert_eq!(f[0]["labels"]["rack"], "r02");

    let allow = d.join("allow.yaml");
    std::fs::write(&allow, "kernelReleases: [6.8.0-62-generic]\n").unwrap();
    assert_eq!(
        attested(&allow, &["--reports", reports]),
        ["n1", "n2", "n3"]
    );

    // Only the approved kernel on every node: clean.
    std::fs::write(
        &allow,
        "kernelReleases: [6.8.0-60-generic, 6.8.0-62-generic]\n",
    )
    .unwrap();
    ok(&[
        "fleet",
        "attest",
        "--allow-list",
        allow.to_str().unwrap(),
        "--reports",
        reports,
    ]);
    std::fs::write(&allow, "kernels: []\n").unwrap();
    let err = bad_input(&[
        "fleet",
        "attest",
        "--allow-list",
        allow.to_str().unwrap(),
        "--reports",
        reports,
    ]);
    assert!(
        err.contains("allow.yaml") && err.contains("kernels"),
        "{err}"
    );
}

#[test]
fn a_clean_fleet_exits_0_and_a_bad_report_is_named() {
    let dir = tempfile::tempdir().unwrap();
    for i in 1..=3 {
        report(
            dir.path(),
            &format!("n{i}"),
            "r01",
            "6.8.0-60-generic",
            "2026-12-01T00:00:00Z",
        );
    }
    let out = ok(&[
        "fleet",
        "drift",
        "--reports",
        dir.path().to_str().unwrap(),
        "--by",
        "rack",
    ]);
    assert!(out.contains("3 nodes, 1 classes, 0 findings"), "{out}");
    let bad = dir.path().join("broken.json");
    std::fs::write(&bad, r#"{"schemaVersion":1,"node":"x"}"#).unwrap();
    let err = bad_input(&["fleet", "drift", "--reports", dir.path().to_str().unwrap()]);
    assert!(err.contains("broken.json") && err.contains("host"), "{err}");
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn sqlite(dir: &Path) -> String {
    format!("sqlite:{}", dir.join("fleet.db").display())
}

fn postgres() -> Option<String> {
    rt().block_on(linkwise_testkit::postgres::fresh_database())
}

fn ingest_and_query(db: &str) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for i in 1..=4 {
        let v = report_json(
            &format!("n{i}"),
            if i <= 2 { "r01" } else { "r02" },
            "6.8.0-60-generic",
            "2026-12-01T00:00:00Z",
        );
        std::fs::write(d.join(format!("n{i}.json")), v.to_string()).unwrap();
    }
    std::fs::write(d.join("broken.json"), r#"{"schemaVersion":1,"node":"x"}"#).unwrap();
    let o = run(&[
        "fleet",
        "--db",
        db,
        "ingest",
        d.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["read"].as_u64(), v["stored"].as_u64()),
        (Some(5), Some(4))
    );
    let err = stderr(&o);
    assert!(err.contains("broken.json") && err.contains("host"), "{err}");

    // n4 moved to another kernel later: JSON lines on standard input, one of them the
    // same n1 report again (stored once).
    let later = report_json("n4", "r02", "6.8.0-62-generic", "2026-12-02T00:00:00Z");
    let n1 = std::fs::read_to_string(d.join("n1.json")).unwrap();
    let mut child = linkwise()
        .args(["fleet", "--db", db, "ingest", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{later}\n{n1}").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("2 reports read: 1 stored, 1 already stored, 0 rejected"),
        "{}",
        stdout(&o)
    );

    let o = run(&["fleet", "--db", db, "drift", "-o", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = v["findings"].as_array().unwrap();
    assert_eq!(f.len(), 1, "{v:#}");
    assert_eq!(
        (f[0]["node"].as_str(), f[0]["value"].as_str()),
        (Some("n4"), Some("6.8.0-62-generic"))
    );

    let allow = d.join("allow.yaml");
    std::fs::write(&allow, "kernelReleases: [6.8.0-62-generic]\n").unwrap();
    assert_eq!(attested(&allow, &["--db", db]), ["n1", "n2", "n3"]);

    let v: Value =
        serde_json::from_str(&ok(&["fleet", "nodes", "--db", db, "-o", "json"])).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[3]["kernel"], "6.8.0-62-generic");
    assert_eq!(rows[3]["reports"], 2);
    let table = ok(&["fleet", "nodes", "--db", db]);
    assert!(
        table.contains("rack=r02") && table.ends_with("4 nodes\n"),
        "{table}"
    );

    let v: Value =
        serde_json::from_str(&ok(&["fleet", "show", "n4", "--db", db, "-o", "json"])).unwrap();
    assert_eq!(v["report"]["host"]["kernel"], "6.8.0-62-generic");
    let v: Value =
        serde_json::from_str(&ok(&["fleet", "history", "n4", "--db", db, "-o", "json"])).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[1]["changes"][0]["field"], "kernel");
    assert_eq!(v[1]["changes"][0]["from"], "6.8.0-60-generic");
    let table = ok(&["fleet", "history", "n4", "--db", db]);
    assert!(
        table.contains("kernel: 6.8.0-60-generic -> 6.8.0-62-generic"),
        "{table}"
    );

    let o = run(&["fleet", "show", "nowhere", "--db", db]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no report of node \"nowhere\""),
        "{}",
        stderr(&o)
    );
}

#[test]
fn sqlite_ingest_and_every_query_read_the_database() {
    let dir = tempfile::tempdir().unwrap();
    ingest_and_query(&sqlite(dir.path()));
}

#[test]
fn postgres_ingest_and_every_query_read_the_database() {
    if let Some(db) = postgres() {
        ingest_and_query(&db);
    }
}

#[test]
fn a_database_url_that_is_no_store_is_bad_input() {
    let o = run(&["fleet", "nodes", "--db", "mysql://u:pw@h/db"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("sqlite:PATH") && !stderr(&o).contains("pw@"),
        "{}",
        stderr(&o)
    );
}

fn serve(db: &str, token_file: &Path) -> Spawned {
    let mut cmd = linkwise();
    cmd.args([
        "fleet",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--db",
        db,
        "--token-file",
        token_file.to_str().unwrap(),
    ]);
    Spawned::start(cmd)
}

#[test]
fn serve_takes_pushed_reports_and_refuses_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t0ken-for-the-test\n").unwrap();
    let db = sqlite(dir.path());
    let server = serve(&db, &token);
    let addr = server.serving_addr(Duration::from_secs(30));
    let url = format!("http://{addr}");
    let push = |token: &Path| {
        run(&[
            "report",
            "--source",
            "profile:dgx-h100",
            "--node",
            "p1",
            "--push",
            &url,
            "--token-file",
            token.to_str().unwrap(),
        ])
    };
    let o = push(&token);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("pushed") && stderr(&o).contains("stored"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty());

    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not-it").unwrap();
    let o = push(&wrong);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("401"), "{}", stderr(&o));

    let r = request(addr, "GET", "/v1/nodes", &[], b"");
    assert_eq!(r.status, 401);
    let r = request(
        addr,
        "GET",
        "/v1/nodes",
        &[("Authorization", "Bearer t0ken-for-the-test")],
        b"",
    );
    assert_eq!(r.status, 200);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v[0]["node"], "p1");

    // The database is shared with the CLI while the server runs.
    let out = ok(&["fleet", "nodes", "--db", &db]);
    assert!(out.contains("p1"), "{out}");

    // An empty token file is refused before serving.
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let o = run(&[
        "fleet",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--db",
        &db,
        "--token-file",
        empty.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("empty"), "{}", stderr(&o));
}

/// Agents post distinct reports as fast as they can; the server is killed with SIGKILL
/// once 150 were acknowledged. Then the database opens, every stored report is whole
/// (its body reads and hashes to its id), every node points at a stored report, and
/// every acknowledged report is there.
fn killed_mid_ingest(db: &str) {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "kill-test").unwrap();
    let mut server = serve(db, &token);
    let addr = server.serving_addr(Duration::from_secs(30));
    let base: Value = report_json("k", "r01", "6.8.0-60-generic", "2026-12-01T00:00:00Z");
    let acked = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let agents: Vec<_> = (0..8)
        .map(|a| {
            let (acked, stop, base) = (acked.clone(), stop.clone(), base.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let mut v = base.clone();
                    v["node"] = format!("k{a}-{}", i % 40).into();
                    v["collectedAt"] =
                        format!("2026-12-01T00:{:02}:{:02}Z", (i / 60) % 60, i % 60).into();
                    let body = v.to_string();
                    let outcome = std::panic::catch_unwind(|| {
                        request(
                            addr,
                            "POST",
                            "/v1/reports",
                            &[("Authorization", "Bearer kill-test")],
                            body.as_bytes(),
                        )
                    });
                    match outcome {
                        Ok(r) if r.status == 201 => {
                            let id: Value = serde_json::from_slice(&r.body).unwrap();
                            acked
                                .lock()
                                .unwrap()
                                .insert(id["id"].as_str().unwrap().to_string());
                        }
                        _ => break,
                    }
                }
            })
        })
        .collect();
    linkwise_testkit::wait::poll_until(
        Duration::from_secs(120),
        "150 acknowledged reports",
        || (acked.lock().unwrap().len() >= 150).then_some(()),
    )
    .unwrap();
    server.child().kill().unwrap(); // SIGKILL
    server.child().wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for a in agents {
        let _ = a.join();
    }
    let acked = acked.lock().unwrap().clone();

    rt().block_on(async {
        let store = Store::open(db).await.unwrap();
        let stored: BTreeSet<String> = store
            .raw_reports()
            .await
            .unwrap()
            .into_iter()
            .map(|(id, body)| {
                assert_eq!(
                    linkwise_fleet::report::sha256_hex(body.as_bytes()),
                    id,
                    "a torn report"
                );
                NodeReport::parse(&body, &id).unwrap();
                id
            })
            .collect();
        let missing: Vec<&String> = acked.difference(&stored).collect();
        assert!(
            missing.is_empty(),
            "acknowledged but not stored: {missing:?}"
        );
        for n in store.nodes().await.unwrap() {
            assert!(
                stored.contains(&n.report_id),
                "{} points at a missing report",
                n.node
            );
        }
        store.close().await;
    });
    // The CLI opens it too.
    ok(&["fleet", "nodes", "--db", db]);
}

#[test]
fn sqlite_a_server_killed_mid_ingest_leaves_only_whole_reports() {
    let dir = tempfile::tempdir().unwrap();
    killed_mid_ingest(&sqlite(dir.path()));
}

#[test]
fn postgres_a_server_killed_mid_ingest_leaves_only_whole_reports() {
    if let Some(db) = postgres() {
        killed_mid_ingest(&db);
    }
}
