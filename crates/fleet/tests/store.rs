//! The store on SQLite and on a real PostgreSQL (`.ci/run` starts one; elsewhere the
//! PostgreSQL half skips loudly): the planted-drift fleet ingested with history gives
//! exactly the planted findings from the store; the same report twice is stored once;
//! an older report that arrives late does not replace a node's latest; history says what
//! changed; the schema is migrated once and reopened without change.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{assert_attested, assert_planted, fleet};
use linkwise_fleet::NodeReport;
use linkwise_fleet::drift::drift;
use linkwise_fleet::store::{Backend, Store};

/// Every node reported three times: a week ago with an older kernel, yesterday as now,
/// and today; plus one report from two weeks ago arriving last.
async fn fill(store: &Store) -> Vec<NodeReport> {
    let now = fleet();
    for (day, kernel) in [("2026-11-20", Some("6.1.0-old")), ("2026-11-26", None)] {
        for r in &now {
            let mut r = r.clone();
            r.collected_at = Some(format!("{day}T10:00:00Z"));
            if let Some(k) = kernel {
                r.host.kernel = k.into();
            }
            let got = store.ingest(&r).await.unwrap();
            assert!(got.stored && got.latest, "{got:?}");
        }
    }
    let mut today = Vec::new();
    for r in &now {
        let mut r = r.clone();
        r.collected_at = Some("2026-11-27T10:00:00+01:00".into());
        store.ingest(&r).await.unwrap();
        today.push(r);
    }
    // Late: an old report of a01 arrives after today's; it is kept, but not latest.
    let mut late = now[0].clone();
    late.collected_at = Some("2026-11-13T10:00:00Z".into());
    late.host.kernel = "5.10.0-ancient".into();
    let got = store.ingest(&late).await.unwrap();
    assert!(got.stored && !got.latest, "{got:?}");
    today
}

async fn the_store_holds_the_fleet(url: &str, backend: Backend) {
    let store = Store::open(url).await.unwrap();
    assert_eq!(store.backend(), backend);
    let today = fill(&store).await;
    let n = today.len() as i64;
    assert_eq!(store.counts().await.unwrap(), (3 * n + 1, n));

    // Drift and attestation read each node's latest, which is today's report.
    let latest = store.latest().await.unwrap();
    let mut want = today.clone();
    want.sort_by(|a, b| a.node.cmp(&b.node));
    assert_eq!(latest, want);
    assert_planted(&drift(&latest, &["rack".to_string()]));
    assert_attested(&latest);

    // Idempotent: every report again stores nothing and changes no latest.
    for r in &today {
        let again = store.ingest(r).await.unwrap();
        assert!(!again.stored && !again.latest, "{again:?}");
        assert_eq!(again.id, r.id());
    }
    assert_eq!(store.counts().await.unwrap(), (3 * n + 1, n));

    // Inventory and history.
    let nodes = store.nodes().await.unwrap();
    assert_eq!(nodes.len(), today.len());
    let a01 = nodes.iter().find(|r| r.node == "a01").unwrap();
    assert_eq!(a01.reports, 4);
    assert_eq!(a01.kernel, "6.8.0-60-generic");
    assert_eq!(a01.gpus, format!("8x {}", today[0].gpus[0].model));
    let shown = store.show("a02").await.unwrap().unwrap();
    assert_eq!(shown.report.host.kernel, "6.8.0-62-generic");
    assert_eq!(shown.id, shown.report.id());
    assert!(store.show("nowhere").await.unwrap().is_none());
    assert!(store.history("nowhere").await.unwrap().is_empty());

    let h = store.history("a02").await.unwrap();
    assert_eq!(h.len(), 3);
    assert!(
        h[0].changes
            .iter()
            .any(|c| c.field == "kernel" && c.from.is_none())
    );
    let kernel: Vec<(Option<&str>, Option<&str>)> = h[1]
        .changes
        .iter()
        .map(|c| (c.from.as_deref(), c.to.as_deref()))
        .collect();
    assert_eq!(kernel, [(Some("6.1.0-old"), Some("6.8.0-62-generic"))]);
    assert!(h[2].changes.is_empty(), "{:?}", h[2]);
    // a01's history is ordered by when each report was made, the late one first.
    let h = store.history("a01").await.unwrap();
    assert_eq!(h.len(), 4);
    assert_eq!(h[0].collected_at.as_deref(), Some("2026-11-13T10:00:00Z"));

    // Stored bodies are whole, canonical reports whose digest is their id.
    for (id, body) in store.raw_reports().await.unwrap() {
        assert_eq!(linkwise_fleet::report::sha256_hex(body.as_bytes()), id);
        NodeReport::parse(&body, &id).unwrap();
    }
    // Quarantine: kept, updated, listed, released.
    store
        .quarantine("a02", "XID 79", Some("driver-570"))
        .await
        .unwrap();
    store
        .quarantine("a02", "XID 79 twice", Some("driver-570"))
        .await
        .unwrap();
    store.quarantine("b01", "fan", None).await.unwrap();
    let q = store.quarantined().await.unwrap();
    assert_eq!(q.len(), 2);
    assert_eq!(
        (
            q[0].node.as_str(),
            q[0].reason.as_str(),
            q[0].change.as_deref()
        ),
        ("a02", "XID 79 twice", Some("driver-570"))
    );
    assert!(store.release("b01").await.unwrap());
    assert!(!store.release("b01").await.unwrap());
    assert_eq!(store.quarantined().await.unwrap().len(), 1);

    // Baselines per hardware class (migration 4): a run stored once, per class, in order.
    assert!(
        store
            .add_baseline("h100", "run1.json", "{\"a\":1}")
            .await
            .unwrap()
    );
    assert!(
        !store
            .add_baseline("h100", "again.json", "{\"a\":1}")
            .await
            .unwrap()
    );
    assert!(
        store
            .add_baseline("h100", "run2.json", "{\"a\":2}")
            .await
            .unwrap()
    );
    assert!(
        store
            .add_baseline("a100", "run1.json", "{\"a\":1}")
            .await
            .unwrap()
    );
    let h100 = store.baselines(Some("h100")).await.unwrap();
    assert_eq!(
        h100.iter()
            .map(|b| (b.source.as_str(), b.body.as_str()))
            .collect::<Vec<_>>(),
        [("run1.json", "{\"a\":1}"), ("run2.json", "{\"a\":2}")]
    );
    assert_eq!(store.baselines(None).await.unwrap().len(), 3);
    assert_eq!(store.clear_baseline("h100").await.unwrap(), 2);
    assert!(store.baselines(Some("h100")).await.unwrap().is_empty());

    store.close().await;

    // Reopened: the schema is current (no migration reapplied) and the rows are there.
    let store = Store::open(url).await.unwrap();
    assert_eq!(store.counts().await.unwrap(), (3 * n + 1, n));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_holds_the_fleet_with_history() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("fleet.db").display());
    the_store_holds_the_fleet(&url, Backend::Sqlite).await;
    // The file is in WAL mode: a write goes to the write-ahead log beside it.
    let store = Store::open(&url).await.unwrap();
    let mut r = fleet()[0].clone();
    r.node = "wal-probe".into();
    store.ingest(&r).await.unwrap();
    assert!(dir.path().join("fleet.db-wal").exists());
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_holds_the_fleet_with_history() {
    let Some(url) = linkwise_testkit::postgres::fresh_database().await else {
        return;
    };
    the_store_holds_the_fleet(&url, Backend::Postgres).await;
}

#[tokio::test]
async fn an_unreachable_or_unknown_database_is_a_clear_error() {
    let e = Store::open("mysql://u:pw@h/db")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("sqlite:PATH") && !e.contains("pw"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let e = Store::open(&format!("sqlite:{}/no/such/dir/f.db", dir.path().display()))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no/such/dir"), "{e}");
    // Nothing listens on port 1.
    let e = Store::open("postgres://u:secret@127.0.0.1:1/fleet")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("127.0.0.1:1") && !e.contains("secret"), "{e}");
}
