//! `fleet serve`'s API on SQLite and on a real PostgreSQL: 50 concurrent agents pushing
//! 2,000 reports (some twice) lose none and store none twice; requests without the
//! token, with a wrong one, with bad JSON, a bad field or an oversized body are refused
//! and store nothing; the read endpoints answer the CLI's queries; the push client
//! retries what may pass and stops at what will not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use linkwise_fleet::NodeReport;
use linkwise_fleet::push::{PushError, PushOptions, Pusher, push};
use linkwise_fleet::server::{self, Config};
use linkwise_fleet::store::Store;
use linkwise_http::ServeOptions;
use linkwise_testkit::http::request_async;

const TOKEN: &str = "s3cret-token-for-tests";

struct Server {
    addr: SocketAddr,
    store: Store,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(url: &str, max_body: usize) -> Server {
        let store = Store::open(url).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let config = Config {
            token: TOKEN.into(),
            max_body,
            read_timeout: Duration::from_secs(10),
        };
        let task = tokio::spawn(server::serve(
            listener,
            store.clone(),
            config,
            ServeOptions::default(),
            async {
                let _ = rx.await;
            },
        ));
        Server {
            addr,
            store,
            stop: Some(tx),
            task,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap();
        self.store.close().await;
    }
}

/// 2,000 distinct reports: 500 nodes, four reports each a day apart.
fn reports() -> Vec<NodeReport> {
    let base = common::fleet();
    (0..2000)
        .map(|i| {
            let mut r = base[i % base.len()].clone();
            r.node = format!("n{:04}", i % 500);
            r.collected_at = Some(format!("2026-11-{:02}T08:00:00Z", 20 + i / 500));
            r.host.kernel = format!("6.8.0-{}-generic", 60 + i / 500);
            r
        })
        .collect()
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

async fn counts(s: &Server) -> (i64, i64) {
    s.store.counts().await.unwrap()
}

async fn fifty_agents_lose_nothing_and_store_nothing_twice(url: &str) {
    let s = Server::start(url, server::MAX_BODY).await;
    let all = reports();
    let mut agents = tokio::task::JoinSet::new();
    for a in 0..50 {
        let mine: Vec<NodeReport> = all.iter().skip(a).step_by(50).cloned().collect();
        let options = PushOptions {
            first_delay: Duration::from_millis(50),
            ..PushOptions::new(format!("http://{}", s.addr), TOKEN)
        };
        agents.spawn(async move {
            let pusher = Pusher::new(options).unwrap();
            let mut stored = 0;
            for (i, r) in mine.iter().enumerate() {
                let json = serde_json::to_string(r).unwrap();
                let pushed = pusher.push(json.clone()).await.unwrap();
                assert_eq!(pushed.ingested.id, r.id());
                stored += usize::from(pushed.ingested.stored);
                // Every fifth report is sent again, as an agent retrying after a lost
                // answer would: the server stores it once.
                if i % 5 == 0 {
                    let again = pusher.push(json).await.unwrap();
                    assert!(!again.ingested.stored && again.status == 200, "{again:?}");
                }
            }
            stored
        });
    }
    let mut stored = 0;
    while let Some(n) = agents.join_next().await {
        stored += n.unwrap();
    }
    assert_eq!(stored, 2000);
    assert_eq!(counts(&s).await, (2000, 500));
    let ids: BTreeSet<String> = s
        .store
        .raw_reports()
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let want: BTreeSet<String> = all.iter().map(NodeReport::id).collect();
    assert_eq!(ids, want);
    // Each node's latest is its last day's report, whatever order the agents sent in.
    for r in s.store.latest().await.unwrap() {
        assert_eq!(r.host.kernel, "6.8.0-63-generic", "{}", r.node);
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_fifty_agents_lose_nothing_and_store_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    fifty_agents_lose_nothing_and_store_nothing_twice(&format!(
        "sqlite:{}",
        dir.path().join("fleet.db").display()
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_fifty_agents_lose_nothing_and_store_nothing_twice() {
    let Some(url) = linkwise_testkit::postgres::fresh_database().await else {
        return;
    };
    fifty_agents_lose_nothing_and_store_nothing_twice(&url).await;
}

async fn refusals_store_nothing(url: &str) {
    let s = Server::start(url, 64 * 1024).await;
    let good = serde_json::to_string(&common::fleet()[0]).unwrap();
    let post = |headers: Vec<(&'static str, String)>, body: Vec<u8>| {
        let addr = s.addr;
        async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            request_async(addr, "POST", "/v1/reports", &h, &body).await
        }
    };
    let auth = || vec![("Authorization", bearer())];

    let r = post(vec![], good.clone().into_bytes()).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(
        r.header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer"))
    );
    let r = post(
        vec![("Authorization", "Bearer not-the-token".into())],
        good.clone().into_bytes(),
    )
    .await;
    assert_eq!(r.status, 401);
    let r = post(
        vec![("Authorization", format!("Basic {TOKEN}"))],
        good.clone().into_bytes(),
    )
    .await;
    assert_eq!(r.status, 401);

    let r = post(auth(), b"{\"schemaVersion\": 1, \"node\": ".to_vec()).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
    v["gpus"][0]["model"] = serde_json::json!(7);
    let r = post(auth(), serde_json::to_vec(&v).unwrap()).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("gpus[0].model"), "{}", r.text());
    let r = post(auth(), vec![0xff, 0xfe]).await;
    assert_eq!(r.status, 400);

    let mut big = v.clone();
    big["gpus"][0]["model"] = serde_json::json!("x".repeat(100 * 1024));
    let r = post(auth(), serde_json::to_vec(&big).unwrap()).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(
        counts(&s).await,
        (0, 0),
        "nothing stored by a refused request"
    );

    // The token also guards the reads; health does not need it.
    let r = request_async(s.addr, "GET", "/v1/nodes", &[], b"").await;
    assert_eq!(r.status, 401);
    let r = request_async(s.addr, "GET", "/healthz", &[], b"").await;
    assert_eq!(r.status, 200);

    // And the server still serves.
    let r = post(auth(), good.into_bytes()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(counts(&s).await, (1, 1));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_refused_requests_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    refusals_store_nothing(&format!("sqlite:{}", dir.path().join("f.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refused_requests_store_nothing() {
    let Some(url) = linkwise_testkit::postgres::fresh_database().await else {
        return;
    };
    refusals_store_nothing(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_endpoints_answer_the_inventory_queries() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        &format!("sqlite:{}", dir.path().join("f.db").display()),
        server::MAX_BODY,
    )
    .await;
    for r in common::fleet() {
        s.store.ingest(&r).await.unwrap();
    }
    let auth = bearer();
    let get = |path: &'static str| {
        let (addr, auth) = (s.addr, auth.clone());
        async move {
            let r = request_async(addr, "GET", path, &[("Authorization", &auth)], b"").await;
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            (r.status, v)
        }
    };
    let (status, nodes) = get("/v1/nodes").await;
    assert_eq!(status, 200);
    assert_eq!(nodes.as_array().unwrap().len(), 20);
    let (status, a02) = get("/v1/nodes/a02").await;
    assert_eq!(status, 200);
    assert_eq!(a02["report"]["host"]["kernel"], "6.8.0-62-generic");
    let (status, h) = get("/v1/nodes/a02/history").await;
    assert_eq!((status, h.as_array().unwrap().len()), (200, 1));
    let (status, e) = get("/v1/nodes/zz9/history").await;
    assert_eq!(status, 404, "{e}");
    assert!(e["error"].as_str().unwrap().contains("zz9"));

    // Drift over HTTP is drift over the store: the planted findings, by rack.
    let (status, d) = get("/v1/drift?by=rack").await;
    assert_eq!(status, 200);
    let want = linkwise_fleet::drift::drift(&s.store.latest().await.unwrap(), &["rack".into()]);
    assert_eq!(d, serde_json::to_value(&want).unwrap());
    common::assert_planted(&want);

    let allow = format!(
        "artifacts:\n  - name: module:nvidia\n    sha256: {}\n",
        common::GOOD
    );
    let r = request_async(
        s.addr,
        "POST",
        "/v1/attest",
        &[("Authorization", &auth)],
        allow.as_bytes(),
    )
    .await;
    let found: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["node"], "a07");
    let r = request_async(
        s.addr,
        "POST",
        "/v1/attest",
        &[("Authorization", &auth)],
        b"kernelRelease: [x]",
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());

    let r = request_async(
        s.addr,
        "DELETE",
        "/v1/nodes",
        &[("Authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(r.status, 405);
    let r = request_async(s.addr, "GET", "/v2/nodes", &[("Authorization", &auth)], b"").await;
    assert_eq!(r.status, 404);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_stops_at_a_refusal_and_gives_up_on_a_dead_server() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        &format!("sqlite:{}", dir.path().join("f.db").display()),
        server::MAX_BODY,
    )
    .await;
    let body = serde_json::to_string(&common::fleet()[0]).unwrap();
    let wrong = PushOptions::new(format!("http://{}", s.addr), "wrong");
    match push(body.clone(), &wrong).await {
        Err(PushError::Refused { status: 401, .. }) => {}
        other => panic!("{other:?}"),
    }
    let addr = s.addr;
    s.stop().await;

    // Nothing listens any more: every try fails to connect, then it gives up.
    let dead = PushOptions {
        attempts: 3,
        first_delay: Duration::from_millis(20),
        ..PushOptions::new(format!("http://{addr}"), TOKEN)
    };
    let started = std::time::Instant::now();
    match push(body, &dead).await {
        Err(PushError::GaveUp {
            attempts: 3, last, ..
        }) => {
            assert!(last.to_lowercase().contains("connect"), "{last}");
        }
        other => panic!("{other:?}"),
    }
    // Two backoff delays of at least half of 20 ms and 40 ms were slept.
    assert!(started.elapsed() >= Duration::from_millis(30));
}
