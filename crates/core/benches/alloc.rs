//! Allocator benchmarks: linkwise's search per profile and request size, and in the same
//! run the prior art's exhaustive partition search on the same inputs (where it finishes
//! in seconds), so SPEC.md can quote the ratio.
//!
//! Run: `cargo bench -p linkwise-core --bench alloc`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use linkwise_core::alloc::prior_art::partition_search;
use linkwise_core::alloc::{AllocRequest, Allocator};
use linkwise_core::profiles;

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("alloc");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for name in ["dgx1-v100", "dgx-h100", "dgx2-v100", "nvl72", "nvl144"] {
        let t = profiles::get(name).expect("built-in profile");
        let al = Allocator::new(&t);
        let n = al.len();
        for k in [1usize, 2, 3, 4, 8, 16].into_iter().filter(|&k| k <= n) {
            let req = AllocRequest {
                available: al.ids().to_vec(),
                size: k,
                ..AllocRequest::default()
            };
            g.bench_with_input(
                BenchmarkId::new(format!("linkwise/{name}"), k),
                &req,
                |b, r| b.iter(|| al.allocate(black_box(r))),
            );
        }
    }
    g.finish();

    // The prior art's method on the same inputs. 16 GPUs with k = 3 or 5 enumerate tens of
    // millions of partitions (tens of seconds per call): not run.
    let mut g = c.benchmark_group("partition_search");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(2));
    for (name, ks) in [
        ("dgx1-v100", &[1usize, 2, 3, 4, 8][..]),
        ("dgx2-v100", &[1, 2, 4, 8, 16][..]),
    ] {
        let t = profiles::get(name).expect("built-in profile");
        let al = Allocator::new(&t);
        let avail: Vec<usize> = (0..al.len()).collect();
        for &k in ks {
            g.bench_with_input(
                BenchmarkId::new(format!("prior-art/{name}"), k),
                &k,
                |b, &k| b.iter(|| partition_search(&al, black_box(&avail), &[], k)),
            );
        }
    }
    g.finish();
}

criterion_group!(alloc, benches);
criterion_main!(alloc);
