//! The running exporter over the real HTTP server: scrapes, PodResources and Slurm
//! attribution (with a fake kubelet that answers, hangs or fails), health events from link
//! loss, GPU loss and XIDs, and external health changes. Real time with short intervals;
//! every wait has a deadline, so a missing update fails the test instead of hanging it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use linkwise_core::{GpuId, Topology, profiles};
use linkwise_exporter::attribution::slurm_order;
use linkwise_exporter::{
    CONTENT_TYPE, Collect, CollectError, Exporter, ExporterConfig, ExporterHandle, HealthLink,
    Readings, Synthetic,
};
use linkwise_kubelet::podresources_api as pr;
use linkwise_testkit::http::request_async;
use linkwise_testkit::kubelet::{FakePodResources, ListMode, container, devices, listing, pod};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WITHIN: Duration = Duration::from_secs(1);
const WAIT: Duration = Duration::from_secs(5);
const FAST: Duration = Duration::from_millis(50);

/// A [`Synthetic`] source the test can steer while the exporter owns it.
#[derive(Clone)]
struct Steered(Arc<Mutex<Synthetic>>);

impl Steered {
    fn new(topo: &Topology) -> Self {
        Steered(Arc::new(Mutex::new(Synthetic::new(topo))))
    }
}

impl Collect for Steered {
    fn collect(&mut self) -> Result<Readings, CollectError> {
        self.0.lock().unwrap().collect()
    }
    fn synthetic(&self) -> bool {
        true
    }
}

fn config() -> ExporterConfig {
    ExporterConfig {
        interval: FAST,
        hostname: "node-a".into(),
        source: "profile:test".into(),
        ..ExporterConfig::default()
    }
}

/// The exporter plus its HTTP server on 127.0.0.1.
struct Running {
    handle: ExporterHandle,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn start(exporter: Exporter, health: Option<HealthLink>) -> Self {
        let handle = exporter.spawn(health);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(linkwise_exporter::serve(listener, handle.clone(), async {
            let _ = rx.await;
        }));
        Running {
            handle,
            addr,
            stop: Some(tx),
            server,
        }
    }

    async fn metrics(&self) -> String {
        let r = request_async(self.addr, "GET", "/metrics", &[], b"").await;
        assert_eq!(r.status, 200, "{}", r.head);
        r.text()
    }

    /// Scrapes until `pred` holds; fails after `within`.
    async fn until(&self, within: Duration, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        loop {
            let body = self.metrics().await;
            if pred(&body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not seen within {within:?}; last scrape:\n{body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(WAIT, self.server)
            .await
            .expect("server stops")
            .unwrap();
        self.handle.shutdown();
    }
}

fn has_label(line: &str, key: &str, value: &str) -> bool {
    let kv = format!("{key}=\"{value}\"");
    line.contains(&format!("{{{kv}")) || line.contains(&format!(",{kv}"))
}

/// The sample lines of `name` (a sample name) carrying every `labels` pair.
fn samples<'a>(body: &'a str, name: &str, labels: &[(&str, &str)]) -> Vec<&'a str> {
    body.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|(k, v)| has_label(l, k, v)))
        .collect()
}

/// The value of the one sample of `name` with `labels`, if there is exactly one.
fn value(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let s = samples(body, name, labels);
    let [line] = s.as_slice() else {
        return None;
    };
    let rest = line.rsplit_once('}').map_or(*line, |(_, r)| r);
    rest.split_whitespace().next()?.parse().ok()
}

fn gpu_label(topo: &Topology, pos: usize) -> String {
    topo.gpus[pos].index.to_string()
}

/// One pod `ml/train`, container `main`, holding `ids` of `resource`.
fn one_pod(resource: &str, ids: &[&str]) -> pr::ListPodResourcesResponse {
    listing(vec![pod(
        "ml",
        "train",
        vec![container("main", vec![devices(resource, ids)])],
    )])
}

/// Serves a fake PodResources on `<dir>/kubelet.sock`.
fn fake_kubelet(dir: &std::path::Path, mode: ListMode) -> FakePodResources {
    FakePodResources::start(&dir.join("kubelet.sock"), mode)
}

/// The other end of a [`HealthLink`]: a per-GPU health store that tells listeners only
/// about changes, the role the device plugin's health handle plays when the CLI links the
/// two (the exporter depends on no other adapter, so its tests play that role themselves).
#[derive(Clone)]
struct HealthStore(Arc<tokio::sync::watch::Sender<BTreeMap<GpuId, bool>>>);

impl HealthStore {
    fn new(topo: &Topology) -> Self {
        let all = topo.gpus.iter().map(|g| (g.id.clone(), true)).collect();
        HealthStore(Arc::new(tokio::sync::watch::Sender::new(all)))
    }

    fn set(&self, id: &GpuId, healthy: bool) {
        self.0.send_if_modified(|m| match m.get_mut(id) {
            Some(h) if *h != healthy => {
                *h = healthy;
                true
            }
            _ => false,
        });
    }

    fn snapshot(&self) -> BTreeMap<GpuId, bool> {
        self.0.borrow().clone()
    }

    fn link(&self) -> HealthLink {
        let store = self.clone();
        HealthLink::new(
            move |id, healthy| store.set(id, healthy),
            self.0.subscribe(),
        )
    }
}

// --- tests ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_serves_the_cache_as_openmetrics() {
    let topo = Arc::new(profiles::get("dgx-h100").unwrap());
    // A long interval: the first answers come from the render made before any collection.
    let cfg = ExporterConfig {
        interval: Duration::from_secs(3600),
        ..config()
    };
    let exporter = Exporter::new(topo.clone(), Box::new(Synthetic::new(&topo)), cfg);
    let run = Running::start(exporter, None).await;
    let first = run.handle.latest();
    assert!(first.ends_with(b"# EOF\n"), "initial render exists");

    let r = request_async(run.addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(r.status, 200);
    let head = r.head.to_ascii_lowercase();
    assert!(
        head.contains(&format!("content-type: {CONTENT_TYPE}")),
        "{}",
        r.head
    );
    let body = r.text();
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(body.contains("linkwise_gpu_healthy{"), "{body}");

    let h = request_async(run.addr, "GET", "/healthz", &[], b"").await;
    assert_eq!((h.status, h.text().as_str()), (200, "ok"));
    let q = request_async(run.addr, "GET", "/metrics?x=1", &[], b"").await;
    assert_eq!(q.status, 200, "a query string is ignored");
    assert_eq!(
        request_async(run.addr, "GET", "/nope", &[], b"")
            .await
            .status,
        404
    );
    let post = request_async(run.addr, "POST", "/metrics", &[], b"").await;
    assert_eq!(post.status, 405);
    assert!(
        post.header("allow").map(str::to_ascii_lowercase).as_deref() == Some("get, head"),
        "{}",
        post.head
    );
    assert_eq!(
        request_async(run.addr, "DELETE", "/healthz", &[], b"")
            .await
            .status,
        405
    );

    // Garbage gets a 400 (or a closed connection), and the server keeps serving.
    let mut s = TcpStream::connect(run.addr).await.unwrap();
    s.write_all(b"\x00\x01 not http at all\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut buf)).await;
    let garbage = String::from_utf8_lossy(&buf);
    assert!(
        garbage.is_empty() || garbage.starts_with("HTTP/1.1 400"),
        "{garbage}"
    );
    assert_eq!(
        request_async(run.addr, "GET", "/metrics", &[], b"")
            .await
            .status,
        200
    );

    // A keep-alive client gets several answers on one connection.
    let mut s = TcpStream::connect(run.addr).await.unwrap();
    for _ in 0..3 {
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut got = vec![0u8; 512];
        let n = s.read(&mut got).await.unwrap();
        assert!(got[..n].starts_with(b"HTTP/1.1 200"));
    }
    drop(s);
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_fills_the_scrape_and_the_source_health() {
    let topo = Arc::new(profiles::get("dgx-h100").unwrap());
    let exporter = Exporter::new(topo.clone(), Box::new(Synthetic::new(&topo)), config());
    let run = Running::start(exporter, None).await;
    let body = run
        .until(WAIT, "a collected utilization", |b| {
            !samples(b, "linkwise_gpu_utilization_ratio", &[]).is_empty()
        })
        .await;
    assert_eq!(
        samples(&body, "linkwise_gpu_utilization_ratio", &[]).len(),
        topo.gpus.len()
    );
    assert!(
        value(
            &body,
            "linkwise_exporter_last_success_timestamp_seconds",
            &[("source", "gpu")]
        )
        .is_some_and(|t| t > 1.0e9),
        "{body}"
    );
    assert_eq!(
        value(
            &body,
            "linkwise_exporter_collection_errors_total",
            &[("source", "gpu")]
        ),
        Some(0.0)
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podresources_attributes_the_gpu_a_pod_holds() {
    let topo = Arc::new(profiles::get("dgx-h100").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let held = 2;
    let uuid = topo.gpus[held].uuid.clone().unwrap();
    let fake = fake_kubelet(
        dir.path(),
        ListMode::Answer(one_pod("nvidia.com/gpu", &[&uuid])),
    );
    let sock = fake.socket().to_path_buf();
    let cfg = ExporterConfig {
        podresources_socket: Some(sock),
        podresources_every: Duration::from_millis(100),
        ..config()
    };
    let exporter = Exporter::new(topo.clone(), Box::new(Synthetic::new(&topo)), cfg);
    let run = Running::start(exporter, None).await;
    let body = run
        .until(WAIT, "pod attribution", |b| {
            !samples(b, "linkwise_gpu_utilization_ratio", &[("pod", "train")]).is_empty()
        })
        .await;
    let lines = samples(&body, "linkwise_gpu_utilization_ratio", &[("pod", "train")]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let gpu = gpu_label(&topo, held);
    assert!(has_label(lines[0], "gpu", &gpu), "{}", lines[0]);
    assert!(has_label(lines[0], "namespace", "ml"), "{}", lines[0]);
    assert!(has_label(lines[0], "container", "main"), "{}", lines[0]);
    assert_eq!(
        samples(&body, "linkwise_gpu_utilization_ratio", &[]).len(),
        topo.gpus.len(),
        "the other GPUs keep their series, unattributed"
    );
    assert_eq!(
        value(
            &body,
            "linkwise_exporter_collection_errors_total",
            &[("source", "podresources")]
        ),
        Some(0.0)
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_kubelet_never_slows_a_scrape() {
    let topo = Arc::new(profiles::get("dgx-h100").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let fake = fake_kubelet(dir.path(), ListMode::Hang);
    let sock = fake.socket().to_path_buf();
    let cfg = ExporterConfig {
        podresources_socket: Some(sock),
        podresources_every: Duration::from_millis(100),
        podresources_timeout: Duration::from_millis(300),
        ..config()
    };
    let exporter = Exporter::new(topo.clone(), Box::new(Synthetic::new(&topo)), cfg);
    let run = Running::start(exporter, None).await;
    // 20 scrapes while List hangs: each answers (1 s is a generous bound; the point is
    // that nothing waits for the kubelet).
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        let r = tokio::time::timeout(WITHIN, request_async(run.addr, "GET", "/metrics", &[], b""))
            .await
            .expect("a scrape answers while PodResources hangs");
        assert_eq!(r.status, 200);
        assert!(r.text().ends_with("# EOF\n"));
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(slowest < WITHIN, "slowest scrape {slowest:?}");
    // Collection goes on meanwhile.
    let body = run
        .until(WAIT, "podresources errors after the timeout", |b| {
            value(
                b,
                "linkwise_exporter_collection_errors_total",
                &[("source", "podresources")],
            )
            .is_some_and(|v| v >= 1.0)
        })
        .await;
    assert!(
        !samples(&body, "linkwise_gpu_utilization_ratio", &[]).is_empty(),
        "GPU collection is not held up"
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_kubelet_counts_errors_and_keeps_the_last_attribution() {
    let topo = Arc::new(profiles::get("dgx-h100").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let uuid = topo.gpus[5].uuid.clone().unwrap();
    let fake = fake_kubelet(
        dir.path(),
        ListMode::Answer(one_pod("linkwise.dev/gpu", &[&uuid])),
    );
    let sock = fake.socket().to_path_buf();
    let cfg = ExporterConfig {
        podresources_socket: Some(sock),
        podresources_every: Duration::from_millis(50),
        ..config()
    };
    let exporter = Exporter::new(topo.clone(), Box::new(Synthetic::new(&topo)), cfg);
    let run = Running::start(exporter, None).await;
    run.until(WAIT, "pod attribution", |b| {
        !samples(b, "linkwise_gpu_utilization_ratio", &[("pod", "train")]).is_empty()
    })
    .await;
    fake.set(ListMode::Fail);
    let body = run
        .until(WAIT, "errors from a failing List", |b| {
            value(
                b,
                "linkwise_exporter_collection_errors_total",
                &[("source", "podresources")],
            )
            .is_some_and(|v| v >= 2.0)
        })
        .await;
    let lines = samples(&body, "linkwise_gpu_utilization_ratio", &[("pod", "train")]);
    assert_eq!(lines.len(), 1, "the last good attribution stays");
    assert!(has_label(lines[0], "gpu", &gpu_label(&topo, 5)));
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_down_marks_its_gpu_unhealthy_across_the_link_and_in_the_scrape() {
    let topo = Arc::new(profiles::get("dgx-h100").unwrap());
    let health = HealthStore::new(&topo);
    let source = Steered::new(&topo);
    let ports = source.0.lock().unwrap().ports().to_vec();
    let port = ports.iter().position(|p| p.gpu == 4).unwrap();
    let exporter = Exporter::new(topo.clone(), Box::new(source.clone()), config());
    let run = Running::start(exporter, Some(health.link())).await;
    let gpu = gpu_label(&topo, 4);
    // Let a collection see the link up first.
    run.until(WAIT, "a first collection", |b| {
        let up = samples(b, "linkwise_nvlink_up", &[("gpu", &gpu)]);
        !up.is_empty() && up.iter().all(|l| l.ends_with(" 1"))
    })
    .await;

    source.0.lock().unwrap().set_link_up(port, false);
    let started = Instant::now();
    let body = run
        .until(WITHIN, "link_down in the scrape", |b| {
            value(b, "linkwise_gpu_healthy", &[("gpu", &gpu)]) == Some(0.0)
                && value(
                    b,
                    "linkwise_gpu_health_events_total",
                    &[("gpu", &gpu), ("reason", "link_down")],
                ) == Some(1.0)
        })
        .await;
    assert!(started.elapsed() < WITHIN);
    assert!(
        !health.snapshot()[&topo.gpus[4].id],
        "the other end sees it"
    );
    assert_eq!(
        samples(&body, "linkwise_gpu_healthy", &[])
            .iter()
            .filter(|l| l.ends_with(" 1"))
            .count(),
        topo.gpus.len() - 1,
        "only that GPU"
    );
    assert!(
        samples(
            &body,
            "linkwise_gpu_health_events_total",
            &[("reason", "external")]
        )
        .is_empty(),
        "the exporter's own mark is not external:\n{body}"
    );

    // A link that stays down is one event, not one per collection. No fixed sleep: wait
    // until the scrape shows three more collections (GPU 0's links stay up, so every
    // collection moves their transmit counters), each of which would have counted the
    // event again.
    let gpu0 = gpu_label(&topo, 0);
    let transmitted = |b: &str| -> f64 {
        samples(b, "linkwise_nvlink_transmit_bytes_total", &[("gpu", &gpu0)])
            .iter()
            .filter_map(|l| {
                l.rsplit_once('}')?
                    .1
                    .split_whitespace()
                    .next()?
                    .parse::<f64>()
                    .ok()
            })
            .sum()
    };
    let mut body = body;
    for _ in 0..3 {
        let before = transmitted(&body);
        body = run
            .until(WAIT, "a later collection", |b| transmitted(b) > before)
            .await;
    }
    assert!(transmitted(&body) > 0.0);
    assert_eq!(
        value(
            &body,
            "linkwise_gpu_health_events_total",
            &[("gpu", &gpu), ("reason", "link_down")]
        ),
        Some(1.0)
    );

    // A GPU that stops answering.
    source.0.lock().unwrap().set_present(6, false);
    let gpu6 = gpu_label(&topo, 6);
    run.until(WITHIN, "gpu_lost", |b| {
        value(b, "linkwise_gpu_healthy", &[("gpu", &gpu6)]) == Some(0.0)
            && value(
                b,
                "linkwise_gpu_health_events_total",
                &[("gpu", &gpu6), ("reason", "gpu_lost")],
            ) == Some(1.0)
    })
    .await;
    assert!(!health.snapshot()[&topo.gpus[6].id]);
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_health_change_shows_at_once() {
    let topo = Arc::new(profiles::get("dgx-h100").unwrap());
    let health = HealthStore::new(&topo);
    // No collection during the test: the change must re-render by itself.
    let cfg = ExporterConfig {
        interval: Duration::from_secs(3600),
        ..config()
    };
    let exporter = Exporter::new(topo.clone(), Box::new(Synthetic::new(&topo)), cfg);
    let run = Running::start(exporter, Some(health.link())).await;
    let gpu = gpu_label(&topo, 1);
    run.until(WAIT, "healthy at start", |b| {
        value(b, "linkwise_gpu_healthy", &[("gpu", &gpu)]) == Some(1.0)
    })
    .await;
    health.set(&topo.gpus[1].id, false);
    run.until(WITHIN, "the external mark", |b| {
        value(b, "linkwise_gpu_healthy", &[("gpu", &gpu)]) == Some(0.0)
            && value(
                b,
                "linkwise_gpu_health_events_total",
                &[("gpu", &gpu), ("reason", "external")],
            ) == Some(1.0)
    })
    .await;
    // Healed elsewhere: healthy again, no new event.
    health.set(&topo.gpus[1].id, true);
    let body = run
        .until(WITHIN, "the external heal", |b| {
            value(b, "linkwise_gpu_healthy", &[("gpu", &gpu)]) == Some(1.0)
        })
        .await;
    assert_eq!(
        value(
            &body,
            "linkwise_gpu_health_events_total",
            &[("gpu", &gpu), ("reason", "external")]
        ),
        Some(1.0)
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xids_count_and_only_hardware_ones_mark_unhealthy() {
    let topo = Arc::new(profiles::get("dgx-h100").unwrap());
    let cfg = ExporterConfig {
        interval: Duration::from_secs(3600),
        ..config()
    };
    let exporter = Exporter::new(topo.clone(), Box::new(Synthetic::new(&topo)), cfg);
    // No HealthHandle: the exporter's own health map.
    let run = Running::start(exporter, None).await;
    let (a, b) = (gpu_label(&topo, 0), gpu_label(&topo, 3));
    run.handle.record_xid(&topo.gpus[0].id, 13);
    run.handle
        .record_xid(&GpuId(topo.gpus[3].uuid.clone().unwrap()), 79);
    run.handle.record_xid(&GpuId("GPU-unknown".into()), 79);
    let body = run
        .until(WITHIN, "XID counts", |body| {
            value(
                body,
                "linkwise_gpu_xid_events_total",
                &[("gpu", &b), ("xid", "79")],
            ) == Some(1.0)
        })
        .await;
    assert_eq!(
        value(
            &body,
            "linkwise_gpu_xid_events_total",
            &[("gpu", &a), ("xid", "13")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&body, "linkwise_gpu_healthy", &[("gpu", &a)]),
        Some(1.0),
        "XID 13 is an application error"
    );
    assert_eq!(
        value(&body, "linkwise_gpu_healthy", &[("gpu", &b)]),
        Some(0.0)
    );
    assert_eq!(
        value(
            &body,
            "linkwise_gpu_health_events_total",
            &[("gpu", &b), ("reason", "xid")]
        ),
        Some(1.0)
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slurm_job_files_attribute_by_bus_order() {
    let topo = Arc::new(profiles::get("dgx-h100").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let jobs = dir.path().join("slurm");
    std::fs::create_dir(&jobs).unwrap();
    std::fs::write(jobs.join("0"), "1234\n").unwrap();
    let cfg = ExporterConfig {
        slurm_dir: Some(jobs.clone()),
        slurm_every: Duration::from_millis(50),
        ..config()
    };
    let exporter = Exporter::new(topo.clone(), Box::new(Synthetic::new(&topo)), cfg);
    let run = Running::start(exporter, None).await;
    let body = run
        .until(WAIT, "the Slurm job label", |b| {
            !samples(
                b,
                "linkwise_gpu_utilization_ratio",
                &[("slurm_job", "1234")],
            )
            .is_empty()
        })
        .await;
    let lines = samples(
        &body,
        "linkwise_gpu_utilization_ratio",
        &[("slurm_job", "1234")],
    );
    assert_eq!(lines.len(), 1);
    let first = slurm_order(&topo)[0];
    assert!(
        has_label(lines[0], "gpu", &gpu_label(&topo, first)),
        "{}",
        lines[0]
    );
    // The job ends: the file goes, and so does the label.
    std::fs::remove_file(jobs.join("0")).unwrap();
    run.until(WAIT, "the label gone", |b| {
        samples(
            b,
            "linkwise_gpu_utilization_ratio",
            &[("slurm_job", "1234")],
        )
        .is_empty()
    })
    .await;
    run.stop().await;
}
