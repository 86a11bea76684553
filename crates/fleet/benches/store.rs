//! The fleet store's throughput, beside the floor of merely parsing the same reports.
//!
//! `cargo bench -p linkwise-fleet --bench store [-- NODES]` (default 10,000 nodes). For
//! each database — SQLite in a temporary directory, and PostgreSQL when
//! `LINKWISE_TEST_POSTGRES` names a server (a fresh database is created on it; `.ci/run`
//! and `scripts/postgres.sh` start one) — it measures:
//!
//! - parse: `NodeReport::parse` of every report's JSON (what any ingest must do);
//! - ingest, 1 writer: one transaction per report, one after another;
//! - ingest, 16 writers: the same reports (a second generation, so every one is new) from
//!   16 tasks at once, as `fleet serve` sees a fleet's agents;
//! - latest: reading every node's latest report back (what drift and attest read);
//! - drift: the analysis over those reports alone;
//! - drift from the store: latest + drift, what `linkwise fleet drift` does.
//!
//! Each is one timed pass over the whole fleet (a pass is seconds, not microseconds, so
//! repetition is left to the caller); the table gives reports per second and the ratio to
//! parse-only. Not criterion: a database that grows with every iteration is not a
//! stationary sample.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use linkwise_core::profiles;
use linkwise_fleet::collect::{Inputs, collect};
use linkwise_fleet::drift::drift;
use linkwise_fleet::store::Store;
use linkwise_fleet::{Artifact, NodeReport};

/// A realistic report: a built-in profile's GPUs, five modules and twenty firmware files.
fn fleet(nodes: usize, generation: usize) -> Vec<String> {
    let profiles = ["dgx-h100", "pcie-8gpu", "riscv-fusion"];
    (0..nodes)
        .map(|i| {
            let topo = profiles::get(profiles[i % profiles.len()]).unwrap();
            let mut r = collect(&Inputs {
                topology: &topo,
                root: None,
                node: Some(format!("node-{i:05}")),
                labels: BTreeMap::from([
                    ("rack".into(), format!("r{:03}", i / 32)),
                    ("batch".into(), format!("b{}", i % 4)),
                ]),
                hash: vec![],
                preflight: None,
                collected_at: Some(format!("2026-12-{:02}T10:00:00Z", 1 + generation)),
            })
            .unwrap();
            r.host.kernel = if i % 97 == 0 {
                "6.8.0-62-generic"
            } else {
                "6.8.0-60-generic"
            }
            .into();
            r.driver.version = Some("550.54.15".into());
            let digest = |n: usize| {
                linkwise_fleet::report::sha256_hex(format!("{n}-{}", i % 500 == 0).as_bytes())
            };
            r.artifacts = (0..25)
                .map(|a| Artifact {
                    name: if a < 5 {
                        format!("module:nvidia-{a}")
                    } else {
                        format!("firmware:nvidia/550.54.15/gsp_{a}.bin")
                    },
                    path: None,
                    sha256: digest(a),
                })
                .collect();
            serde_json::to_string(&r).unwrap()
        })
        .collect()
}

fn parse(texts: &[String]) -> Vec<NodeReport> {
    texts
        .iter()
        .map(|t| NodeReport::parse(t, "bench").unwrap())
        .collect()
}

struct Row {
    what: String,
    seconds: f64,
    reports: usize,
}

async fn measure(url: &str, name: &str, first: &[String], second: &[String], rows: &mut Vec<Row>) {
    let store = Store::open(url).await.unwrap();
    let n = first.len();

    let t = Instant::now();
    for text in first {
        let r = NodeReport::parse(text, "bench").unwrap();
        store.ingest(&r).await.unwrap();
    }
    rows.push(Row {
        what: format!("{name}: ingest (parse + store), 1 writer"),
        seconds: t.elapsed().as_secs_f64(),
        reports: n,
    });

    let reports = Arc::new(second.to_vec());
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..16 {
        let (store, reports) = (store.clone(), reports.clone());
        tasks.spawn(async move {
            for text in reports.iter().skip(w).step_by(16) {
                let r = NodeReport::parse(text, "bench").unwrap();
                store.ingest(&r).await.unwrap();
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    rows.push(Row {
        what: format!("{name}: ingest (parse + store), 16 writers"),
        seconds: t.elapsed().as_secs_f64(),
        reports: n,
    });
    assert_eq!(store.counts().await.unwrap(), (2 * n as i64, n as i64));

    let t = Instant::now();
    let latest = store.latest().await.unwrap();
    let latest_s = t.elapsed().as_secs_f64();
    rows.push(Row {
        what: format!("{name}: latest report of every node"),
        seconds: latest_s,
        reports: n,
    });
    let t = Instant::now();
    let d = drift(&latest, &["rack".to_string()]);
    let drift_s = t.elapsed().as_secs_f64();
    rows.push(Row {
        what: format!("{name}: fleet drift (latest + drift)"),
        seconds: latest_s + drift_s,
        reports: n,
    });
    eprintln!(
        "{name}: {} classes, {} findings",
        d.classes.len(),
        d.findings.len()
    );
    store.close().await;
}

fn main() {
    let nodes: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let first = fleet(nodes, 0);
    let second = fleet(nodes, 1);
    let bytes: usize = first.iter().map(String::len).sum();
    eprintln!(
        "{nodes} reports, {:.1} KiB each on average",
        bytes as f64 / nodes as f64 / 1024.0
    );

    let t = Instant::now();
    let parsed = parse(&first);
    let parse_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let d = drift(&parsed, &["rack".to_string()]);
    let drift_only = t.elapsed().as_secs_f64();
    eprintln!(
        "in memory: {} classes, {} findings",
        d.classes.len(),
        d.findings.len()
    );
    let mut rows = vec![
        Row {
            what: "parse only (the floor)".into(),
            seconds: parse_s,
            reports: nodes,
        },
        Row {
            what: "drift over parsed reports (no store)".into(),
            seconds: drift_only,
            reports: nodes,
        },
    ];

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("bench.db").display());
    rt.block_on(measure(&url, "SQLite", &first, &second, &mut rows));
    match std::env::var("LINKWISE_TEST_POSTGRES")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(_) => {
            let url = rt
                .block_on(linkwise_testkit::postgres::fresh_database())
                .unwrap();
            rt.block_on(measure(&url, "PostgreSQL", &first, &second, &mut rows));
        }
        None => eprintln!(
            "PostgreSQL: skipped (set LINKWISE_TEST_POSTGRES, e.g. from scripts/postgres.sh start DIR)"
        ),
    }

    println!(
        "| {:<48} | {:>9} | {:>11} | {:>13} |",
        "what", "seconds", "reports/s", "x parse-only"
    );
    println!("|{:-<50}|{:->11}|{:->13}|{:->15}|", "", "", "", "");
    for r in &rows {
        println!(
            "| {:<48} | {:>9.3} | {:>11.0} | {:>13.1} |",
            r.what,
            r.seconds,
            r.reports as f64 / r.seconds,
            r.seconds / parse_s
        );
    }
}
