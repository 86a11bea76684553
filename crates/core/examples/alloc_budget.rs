//! Time to answer on large irregular single-host NVLink meshes, with and without a time
//! budget (`SPEC.md`, "Bounded answer time"). Run with
//! `cargo run --release -p linkwise-core --example alloc_budget`.
//!
//! The meshes are deterministic: GPU `p` has an NVLink to `p + 1` (so the mesh is one
//! island) and two more to GPUs drawn by a seeded SplitMix64, each with 1-4 lanes of
//! NVLink generation 2, 3 or 4, so pair bandwidths take many distinct values.

// An example program: a failed unwrap is a failed measurement.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use linkwise_core::alloc::{AllocRequest, Allocation, Allocator};
use linkwise_core::{Endpoint, Gpu, GpuId, Host, Link, LinkKind, NumaNode, Topology};

/// SplitMix64: a few lines, deterministic on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }
}

/// An irregular single-host NVLink mesh of `n` GPUs on two NUMA nodes.
fn mesh(n: usize, seed: u64) -> Topology {
    let mut rng = Rng(seed);
    let mut t = Topology {
        source: format!("mesh:{n}:{seed}"),
        ..Topology::default()
    };
    let mut host = Host::named("mesh");
    host.numa_nodes = (0..2)
        .map(|id| NumaNode {
            id,
            cpus: linkwise_core::CpuSet::range(id * 32, id * 32 + 31),
            memory_bytes: None,
        })
        .collect();
    t.hosts.push(host);
    for p in 0..n {
        let mut g = Gpu::new(
            format!("GPU-{p:03}"),
            u32::try_from(p).unwrap(),
            "mesh",
            "mesh",
        );
        g.numa_node = Some(u32::try_from(2 * p / n).unwrap());
        t.gpus.push(g);
    }
    let id = |p: usize| Endpoint::Gpu(GpuId(format!("GPU-{p:03}")));
    let mut link = |a: usize, b: usize, rng: &mut Rng| {
        let lanes = 1 + u32::try_from(rng.below(4)).unwrap();
        let generation = Some(2 + u32::try_from(rng.below(3)).unwrap());
        t.links.push(Link::new(
            id(a),
            id(b),
            LinkKind::Nvlink { lanes, generation },
        ));
    };
    for p in 0..n {
        link(p, (p + 1) % n, &mut rng);
        for _ in 0..2 {
            let q = rng.below(n);
            if q != p && q != (p + 1) % n && (q + 1) % n != p {
                link(p, q, &mut rng);
            }
        }
    }
    t.validate().unwrap();
    t
}

/// One answer and how long it took.
fn timed(al: &Allocator, req: &AllocRequest, budget: Option<Duration>) -> (Allocation, Duration) {
    let start = Instant::now();
    let a = match budget {
        None => al.allocate(req),
        Some(b) => {
            let deadline = start + b;
            al.allocate_within(req, &|| Instant::now() >= deadline)
        }
    }
    .unwrap();
    (a, start.elapsed())
}

fn ratio(got: u64, want: u64) -> f64 {
    if want == 0 {
        1.0
    } else {
        got as f64 / want as f64
    }
}

/// Usage: `alloc_budget [GPUS,..] [SEEDS,..]`, or `alloc_budget --snapshot GPUS SEED FILE`
/// to write one mesh as a snapshot for `linkwise alloc --source snapshot:FILE`.
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let list = |i: usize, default: &[u64]| -> Vec<u64> {
        args.get(i).map_or_else(
            || default.to_vec(),
            |s| s.split(',').map(|x| x.parse().unwrap()).collect(),
        )
    };
    if args.first().map(String::as_str) == Some("--snapshot") {
        let n: usize = args[1].parse().unwrap();
        let seed: u64 = args[2].parse().unwrap();
        let text = linkwise_core::snapshot::to_string(
            &mesh(n, seed),
            linkwise_core::snapshot::Format::Json,
        )
        .unwrap();
        std::fs::write(&args[3], text).unwrap();
        return;
    }
    let sizes = list(0, &[16, 64, 128, 512]);
    let seeds = list(1, &[42]);
    let budgets = [
        Duration::ZERO,
        Duration::from_millis(10),
        Duration::from_millis(100),
        Duration::from_secs(1),
    ];
    println!(
        "GPUs seed  k | unbounded: time      sets exact | budget: time     sets timed-out ring-ratio total-ratio same-set"
    );
    for &n in &sizes {
        for &seed in &seeds {
            let topo = mesh(usize::try_from(n).unwrap(), seed);
            let al = Allocator::new(&topo);
            let ks: Vec<usize> = if n <= 16 {
                vec![8, 14, 15, 16]
            } else {
                vec![14, 15, 16]
            };
            for k in ks {
                let req = AllocRequest {
                    available: al.healthy(),
                    size: k,
                    ..AllocRequest::default()
                };
                let (u, ut) = timed(&al, &req, None);
                println!(
                    "{n:4} {seed:4} {k:2} | {:>9.3} s {:>9} {:5} |",
                    ut.as_secs_f64(),
                    u.evaluated,
                    u.exact
                );
                for b in budgets {
                    let (a, t) = timed(&al, &req, Some(b));
                    assert_eq!(a.positions.len(), k);
                    println!(
                        "{:>38} {:>6} ms: {:>7.1} ms {:>7} {:9} {:>10.3} {:>11.3} {}",
                        "",
                        b.as_millis(),
                        t.as_secs_f64() * 1000.0,
                        a.evaluated,
                        a.timed_out,
                        ratio(a.score.bottleneck_mbps, u.score.bottleneck_mbps),
                        ratio(a.score.total_mbps, u.score.total_mbps),
                        a.positions == u.positions,
                    );
                }
            }
        }
    }
}
