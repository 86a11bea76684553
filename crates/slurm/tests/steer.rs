//! `--links steer`: the levels make Slurm 22.05's GPU choice take linkwise's sets.
//!
//! `slurm_gres` / `slurm_gpus` model select/cons_tres's choice on one node for
//! `--gres=gpu:N` and `--gpus=N` (docs/slurm.md). The model is pinned to what a real
//! slurmctld 22.05.8 did (the measured rows in docs/slurm.md; `scripts/slurm-it.sh`
//! re-measures): if it drifts from Slurm, the first test fails before the steering tests
//! can mislead.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use linkwise_core::Topology;
use linkwise_core::alloc::{AllocRequest, Allocator, Policy, Scoring};
use linkwise_core::profiles::{self, PROFILES};
use linkwise_slurm::{LinksMode, STEER_TOP, gres_conf_with};

/// The Links rows of a gres.conf, in line order.
fn links(text: &str) -> Vec<Vec<i64>> {
    text.lines()
        .filter(|l| l.starts_with("NodeName="))
        .map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("Links="))
                .unwrap()
                .split(',')
                .map(|v| v.parse().unwrap())
                .collect()
        })
        .collect()
}

/// `--gres=gpu:N`: the lowest free GPU, then by its row (scaled when above 4), ties low.
fn slurm_gres(l: &[Vec<i64>], free: &[usize], n: usize) -> Vec<usize> {
    let first = free[0];
    let mut score: Vec<(usize, i64)> = free[1..].iter().map(|&g| (g, l[first][g])).collect();
    let max = score.iter().map(|s| s.1).max().unwrap_or(0);
    if max > 4 {
        let d = (max + 3) / 4;
        for s in &mut score {
            s.1 /= d;
        }
    }
    score.sort_by_key(|&(g, v)| (std::cmp::Reverse(v), g));
    let mut out: Vec<usize> = std::iter::once(first)
        .chain(score.iter().map(|s| s.0))
        .take(n)
        .collect();
    out.sort_unstable();
    out
}

/// `--gpus=N`: anchor on the first pair with the largest value, keep its row's best,
/// ties keeping the higher index.
fn slurm_gpus(l: &[Vec<i64>], free: &[usize], n: usize) -> Vec<usize> {
    let mut anchor = free[0];
    let mut best = -1;
    for (a, &s) in free.iter().enumerate() {
        for &g in &free[a + 1..] {
            if l[s][g] > best {
                best = l[s][g];
                anchor = s;
            }
        }
    }
    let mut rest: Vec<usize> = free.iter().copied().filter(|&g| g != anchor).collect();
    rest.sort_by_key(|&g| (std::cmp::Reverse(l[anchor][g]), std::cmp::Reverse(g)));
    let mut out: Vec<usize> = std::iter::once(anchor).chain(rest).take(n).collect();
    out.sort_unstable();
    out
}

fn lanes_and_steer(name: &str) -> (Topology, Vec<Vec<i64>>, Vec<Vec<i64>>) {
    let t = profiles::get(name).unwrap();
    let lanes = links(&gres_conf_with(&t, None, None, LinksMode::Lanes));
    let steer = links(&gres_conf_with(&t, None, None, LinksMode::Steer));
    (t, lanes, steer)
}

/// Guards the model: these are the sets slurmctld 22.05.8 handed out (docs/slurm.md).
#[test]
fn the_slurm_model_reproduces_the_measured_choices() {
    let (_, lanes, steer) = lanes_and_steer("dgx1-v100");
    let all: Vec<usize> = (0..8).collect();
    let gres: Vec<Vec<usize>> = (2..=6).map(|n| slurm_gres(&lanes, &all, n)).collect();
    assert_eq!(
        gres,
        [
            vec![0, 3],
            vec![0, 3, 4],
            vec![0, 1, 3, 4],
            vec![0, 1, 2, 3, 4],
            vec![0, 1, 2, 3, 4, 5]
        ]
    );
    let gpus: Vec<Vec<usize>> = (2..=7).map(|n| slurm_gpus(&lanes, &all, n)).collect();
    assert_eq!(
        gpus,
        [
            vec![0, 4],
            vec![0, 3, 4],
            vec![0, 2, 3, 4],
            vec![0, 1, 2, 3, 4],
            vec![0, 1, 2, 3, 4, 7],
            vec![0, 1, 2, 3, 4, 6, 7]
        ]
    );
    let busy0: Vec<usize> = (1..8).collect();
    assert_eq!(slurm_gres(&lanes, &busy0, 3), vec![1, 2, 5]);
    assert_eq!(slurm_gpus(&lanes, &busy0, 2), vec![1, 5]);
    // Steered, measured: 2, 3 and 4 GPUs on a free node are linkwise's sets.
    assert_eq!(slurm_gres(&steer, &all, 2), vec![0, 3]);
    assert_eq!(slurm_gres(&steer, &all, 3), vec![0, 2, 3]);
    assert_eq!(slurm_gpus(&steer, &all, 4), vec![0, 1, 2, 3]);
    let (_, pairs, _) = lanes_and_steer("nvlink-bridge-pairs");
    assert_eq!(slurm_gres(&pairs, &[1, 2, 3], 2), vec![1, 2]);
    assert_eq!(slurm_gpus(&pairs, &[1, 2, 3], 2), vec![2, 3]);
}

fn key(alloc: &Allocator, set: &[usize], free: &[usize]) -> [i128; 4] {
    let req = AllocRequest {
        available: free.iter().map(|&p| alloc.ids()[p].clone()).collect(),
        ..AllocRequest::default()
    };
    let k = alloc
        .score(set, free, &req)
        .key(Policy::Default, Scoring::Default);
    // islands, hosts, NUMA misses, ring bottleneck: what the measured table ranks first.
    [k[0], k[1], k[2], k[3]]
}

fn best(alloc: &Allocator, free: &[usize], n: usize) -> [i128; 4] {
    let req = AllocRequest {
        available: free.iter().map(|&p| alloc.ids()[p].clone()).collect(),
        size: n,
        ..AllocRequest::default()
    };
    let a = alloc.allocate(&req).unwrap();
    key(alloc, &a.positions, free)
}

/// The point of steering: on a free DGX-1, jobs of 2, 3, 4, 6, 7 and 8 GPUs get a set
/// with linkwise's ring bottleneck under both request forms; with lane counts 3 and 4
/// get a PCIe hop.
#[test]
fn steered_dgx1_jobs_get_optimal_rings_where_lanes_do_not() {
    let (t, lanes, steer) = lanes_and_steer("dgx1-v100");
    let alloc = Allocator::new(&t);
    let all: Vec<usize> = (0..8).collect();
    for n in [2, 3, 4, 6, 7, 8] {
        let opt = best(&alloc, &all, n);
        for pick in [slurm_gres(&steer, &all, n), slurm_gpus(&steer, &all, n)] {
            assert_eq!(
                key(&alloc, &pick, &all),
                opt,
                "N={n}: steered pick {pick:?}"
            );
        }
    }
    for n in [3, 4] {
        let opt = best(&alloc, &all, n);
        let pick = slurm_gres(&lanes, &all, n);
        assert!(key(&alloc, &pick, &all) < opt, "N={n}: lanes pick {pick:?}");
    }
}

/// Steering never makes a free-node choice worse than lane counts, on any profile and
/// size, and never writes a value Slurm would rescale.
#[test]
fn steering_is_never_worse_than_lanes_and_stays_unscaled() {
    for (name, _) in PROFILES {
        let t = profiles::get(name).unwrap();
        let host = t.hosts[0].name.clone();
        let alloc = Allocator::new(&t);
        let lanes = links(&gres_conf_with(&t, Some(&host), None, LinksMode::Lanes));
        let steer = links(&gres_conf_with(&t, Some(&host), None, LinksMode::Steer));
        let pos: Vec<usize> = t
            .gpus
            .iter()
            .enumerate()
            .filter(|(_, g)| g.host == host)
            .map(|(i, _)| i)
            .collect();
        // Bus order is index order in every profile.
        let n = pos.len();
        for (i, row) in steer.iter().enumerate() {
            assert_eq!(row.len(), n, "{name}");
            assert_eq!(row[i], -1, "{name}: diagonal");
            assert!(
                row.iter()
                    .all(|&v| (-1..=i64::from(STEER_TOP)).contains(&v)),
                "{name}: row {i} {row:?}"
            );
        }
        let free: Vec<usize> = (0..n).collect();
        let map = |s: Vec<usize>| s.into_iter().map(|b| pos[b]).collect::<Vec<_>>();
        for k in 2..=n {
            for (s, l) in [
                (slurm_gres(&steer, &free, k), slurm_gres(&lanes, &free, k)),
                (slurm_gpus(&steer, &free, k), slurm_gpus(&lanes, &free, k)),
            ] {
                let (s, l) = (key(&alloc, &map(s), &pos), key(&alloc, &map(l), &pos));
                assert!(s >= l, "{name}: N={k}: steered {s:?} < lanes {l:?}");
            }
        }
    }
}
