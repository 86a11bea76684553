//! Rendering a snapshot with synthetic readings to OpenMetrics text:
//!
//! - `render/oneshot/<profile>`: the one-shot [`render`], which also derives the topology's labels
//!   (islands, domains, escaping) every time.
//! - `render/renderer/<profile>`: a [`Renderer`] that keeps those labels between renders, which
//!   is what the exporter does once per collection.
//!
//! Before timing, prints the allocations, allocated bytes and output size of one render
//! of `nvl72` (72 GPUs, 1296 NVLink links), counted by a global allocator.
//!
//! Run: `cargo bench -p linkwise-exporter --bench render`.
// The counting allocator forwards to `System`; it is the only unsafe code and only here.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use linkwise_exporter::render::render;
use linkwise_exporter::{Collect, Renderer, Snapshot, Synthetic, nvlink_ports};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call forwards to `System` with the caller's arguments unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn snapshot(profile: &str) -> Snapshot {
    let topo = linkwise_core::profiles::get(profile).expect("built-in profile");
    let mut synth = Synthetic::new(&topo);
    let readings = synth.collect().expect("synthetic readings");
    Snapshot {
        ports: nvlink_ports(&topo),
        hostname: "bench".to_string(),
        source: format!("profile:{profile}"),
        synthetic: true,
        readings,
        healthy: vec![true; topo.gpus.len()],
        topo: Arc::new(topo),
        ..Snapshot::default()
    }
}

/// Allocations and bytes allocated while running `f`, and its result.
fn counted<T>(f: impl FnOnce() -> T) -> (u64, u64, T) {
    let (a, b) = (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    let out = f();
    (
        ALLOCS.load(Ordering::Relaxed) - a,
        BYTES.load(Ordering::Relaxed) - b,
        out,
    )
}

fn benches(c: &mut Criterion) {
    let nvl72 = snapshot("nvl72");
    let (allocs, bytes, out) = counted(|| render(&nvl72));
    eprintln!(
        "render/nvl72 (one-shot): {allocs} allocations, {bytes} bytes allocated, {} bytes of output, {} lines",
        out.len(),
        out.iter().filter(|&&b| b == b'\n').count()
    );
    let mut r = Renderer::new();
    r.render(&nvl72);
    let (allocs, bytes, out) = counted(|| r.render(&nvl72));
    eprintln!(
        "renderer/nvl72 (labels kept): {allocs} allocations, {bytes} bytes allocated, {} bytes of output",
        out.len()
    );

    let mut g = c.benchmark_group("render");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for profile in ["nvl72", "dgx-h100"] {
        let s = snapshot(profile);
        g.bench_function(format!("oneshot/{profile}"), |b| {
            b.iter(|| render(black_box(&s)))
        });
        let mut r = Renderer::new();
        g.bench_function(format!("renderer/{profile}"), |b| {
            b.iter(|| r.render(black_box(&s)))
        });
    }
    g.finish();
}

criterion_group!(render_benches, benches);
criterion_main!(render_benches);
