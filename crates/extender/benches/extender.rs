//! The extender's filter and prioritize on 1,000 and 5,000 full Node objects (Nodes
//! mode: `nodeCacheCapable: false`), DGX H100 annotations with random GPUs in use, a
//! 4-GPU pod; against merely parsing and re-serialising the same request
//! (`serde_json::Value` round trip), the floor any extender pays. `filter` and
//! `prioritize` repeat one request, as the scheduler does between node updates (parsed
//! annotations are cached by node while their text is unchanged); the `-cold` variants
//! answer each request with a new extender (every annotation parsed).
//!
//! Run: `cargo bench -p linkwise-extender --bench extender`.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use linkwise_core::annotation::{KEY, NodeFabric};
use serde_json::{Value, json};

/// A request with `n` DGX H100 nodes, each with a pseudo-random set of GPUs in use.
fn request(n: usize) -> Vec<u8> {
    let Ok(topo) = linkwise_core::profiles::get("dgx-h100") else {
        return Vec::new();
    };
    let host = topo
        .hosts
        .first()
        .map(|h| h.name.clone())
        .unwrap_or_default();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let items: Vec<Value> = (0..n)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let used: BTreeSet<String> = topo
                .gpus
                .iter()
                .enumerate()
                .filter(|(g, _)| (state >> g) & 1 == 1)
                .map(|(_, g)| g.id.0.clone())
                .collect();
            let ann =
                NodeFabric::new(&topo, &host, "nvidia.com/gpu", &used, &BTreeSet::new()).to_value();
            json!({
                "metadata": { "name": format!("node-{i:05}"), "annotations": { KEY: ann },
                              "labels": { "kubernetes.io/hostname": format!("node-{i:05}") } },
                "status": { "allocatable": { "nvidia.com/gpu": "8", "cpu": "224" } }
            })
        })
        .collect();
    let pod = json!({
        "metadata": { "name": "train", "namespace": "ml" },
        "spec": { "containers": [ { "name": "main",
            "resources": { "limits": { "nvidia.com/gpu": "4" } } } ] }
    });
    serde_json::to_vec(&json!({
        "Pod": pod,
        "Nodes": { "kind": "NodeList", "apiVersion": "v1", "items": items },
        "NodeNames": null
    }))
    .unwrap_or_default()
}

/// Latency percentiles (p50, p99) of `f` over `runs` calls.
fn percentiles(runs: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    let mut t: Vec<Duration> = (0..runs)
        .map(|_| {
            let t0 = std::time::Instant::now();
            f();
            t0.elapsed()
        })
        .collect();
    t.sort();
    let at = |q: usize| t[(t.len() * q / 100).min(t.len() - 1)];
    (at(50), at(99))
}

/// Before timing: p50 and p99 of 100 warm filter, prioritize and round-trip calls at
/// 5,000 nodes, and their ratio to the round trip (the promise is on p99).
fn print_p99() {
    let ext = linkwise_extender::Extender::new("", Vec::new(), None);
    let body = request(5_000);
    let (f50, f99) = percentiles(100, || {
        black_box(ext.handle("POST", "/filter", black_box(&body)));
    });
    let (p50, p99) = percentiles(100, || {
        black_box(ext.handle("POST", "/prioritize", black_box(&body)));
    });
    let (r50, r99) = percentiles(100, || {
        let v: Value = serde_json::from_slice(black_box(&body)).unwrap_or_default();
        black_box(serde_json::to_vec(&v).unwrap_or_default());
    });
    let ratio = |a: Duration| a.as_secs_f64() / r99.as_secs_f64();
    println!(
        "5000 nodes, 100 warm calls each: filter p50 {f50:.1?} p99 {f99:.1?} ({:.2}x), \
         prioritize p50 {p50:.1?} p99 {p99:.1?} ({:.2}x), round trip p50 {r50:.1?} p99 {r99:.1?}",
        ratio(f99),
        ratio(p99)
    );
}

fn bench(c: &mut Criterion) {
    print_p99();
    let ext = linkwise_extender::Extender::new("", Vec::new(), None);
    let mut g = c.benchmark_group("extender");
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    for n in [1_000usize, 5_000] {
        let body = request(n);
        g.bench_with_input(BenchmarkId::new("filter", n), &body, |b, body| {
            b.iter(|| ext.handle("POST", "/filter", black_box(body)));
        });
        g.bench_with_input(BenchmarkId::new("prioritize", n), &body, |b, body| {
            b.iter(|| ext.handle("POST", "/prioritize", black_box(body)));
        });
        g.bench_with_input(BenchmarkId::new("filter-cold", n), &body, |b, body| {
            b.iter(|| {
                linkwise_extender::Extender::new("", Vec::new(), None).handle(
                    "POST",
                    "/filter",
                    black_box(body),
                )
            });
        });
        g.bench_with_input(BenchmarkId::new("prioritize-cold", n), &body, |b, body| {
            b.iter(|| {
                linkwise_extender::Extender::new("", Vec::new(), None).handle(
                    "POST",
                    "/prioritize",
                    black_box(body),
                )
            });
        });
        g.bench_with_input(BenchmarkId::new("json-roundtrip", n), &body, |b, body| {
            b.iter(|| {
                let v: Value = serde_json::from_slice(black_box(body)).unwrap_or_default();
                serde_json::to_vec(&v).unwrap_or_default()
            });
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
