//! Discovery and model benchmarks, each beside the simplest baseline for the same input
//! so SPEC.md can quote ratios:
//!
//! - `pair_matrix/*` vs `pair_matrix_naive/*`: the matrix from one pass over the links
//!   vs the obvious per-pair scan of every link.
//! - `snapshot_read/*` vs `json_value/*`: reading and validating a snapshot vs merely
//!   parsing the same text into a `serde_json::Value`.
//! - `topo_text/*` vs `split_lines/*`: importing `nvidia-smi topo -m` text vs splitting
//!   it into whitespace-separated words.
//! - `sysfs/x86_64-dgx-h100`: discovery over the captured fixture tree.
//!
//! Run: `cargo bench -p linkwise-discovery --bench discovery`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use linkwise_core::profiles;
use linkwise_core::snapshot::{self, Format};
use linkwise_core::{Endpoint, LinkKind, Topology};
use linkwise_discovery::{SysfsSource, TopologySource, topotext};

/// The per-pair scan a first implementation would write: for every pair, walk every
/// link once, collecting direct lanes and each end's switch ports, then intersect.
fn naive_lanes(t: &Topology) -> u32 {
    let mut total = 0;
    for a in &t.gpus {
        for b in &t.gpus {
            if a.id == b.id {
                continue;
            }
            let ea = Endpoint::Gpu(a.id.clone());
            let eb = Endpoint::Gpu(b.id.clone());
            let mut ports_a: Vec<(&Endpoint, u32)> = Vec::new();
            let mut ports_b: Vec<(&Endpoint, u32)> = Vec::new();
            for l in &t.links {
                match l.kind {
                    LinkKind::Nvlink { lanes, .. }
                        if (l.a == ea && l.b == eb) || (l.a == eb && l.b == ea) =>
                    {
                        total += lanes;
                    }
                    LinkKind::NvswitchPort { lanes, .. } => {
                        if l.a == ea {
                            ports_a.push((&l.b, lanes));
                        } else if l.a == eb {
                            ports_b.push((&l.b, lanes));
                        }
                    }
                    _ => {}
                }
            }
            for (sa, la) in &ports_a {
                for (sb, lb) in &ports_b {
                    if sa == sb {
                        total += la.min(lb);
                    }
                }
            }
        }
    }
    total
}

fn benches(c: &mut Criterion) {
    for name in ["dgx-h100", "dgx1-v100", "nvl72"] {
        let t = profiles::get(name).expect("built-in profile");
        c.bench_function(&format!("pair_matrix/{name}"), |b| {
            b.iter(|| black_box(&t).pair_matrix())
        });
        c.bench_function(&format!("pair_matrix_naive/{name}"), |b| {
            b.iter(|| naive_lanes(black_box(&t)))
        });
        c.bench_function(&format!("islands/{name}"), |b| {
            b.iter(|| black_box(&t).islands())
        });
        let text = snapshot::to_string(&t, Format::Json).expect("write");
        c.bench_function(&format!("snapshot_read/{name}"), |b| {
            b.iter(|| snapshot::from_str(black_box(&text)))
        });
        c.bench_function(&format!("json_value/{name}"), |b| {
            b.iter(|| serde_json::from_str::<serde_json::Value>(black_box(&text)))
        });
    }
    let fixtures = linkwise_testkit::fixtures();
    for sample in ["s1-h100-nv18-spaces", "s5-rtx4090-pcie-tabs"] {
        let path = fixtures.join(format!("topo/{sample}.txt"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        c.bench_function(&format!("topo_text/{sample}"), |b| {
            b.iter(|| topotext::parse(black_box(&text), &path))
        });
        c.bench_function(&format!("split_lines/{sample}"), |b| {
            b.iter(|| {
                black_box(&text)
                    .lines()
                    .map(|l| l.split_whitespace().count())
                    .sum::<usize>()
            })
        });
    }
    let tree = fixtures.join("sysfs/x86_64-dgx-h100");
    if tree.exists() {
        let src = SysfsSource::new(&tree);
        c.bench_function("sysfs/x86_64-dgx-h100", |b| b.iter(|| src.discover()));
    }
}

criterion_group!(discovery, benches);
criterion_main!(discovery);
