//! The allocator on the built-in profiles: the cases the allocator issue names, and the
//! rack-scale domains against their analytic optimum.

use linkwise_core::Topology;
use linkwise_core::alloc::{AllocError, AllocRequest, Allocator, Policy};
use linkwise_core::profiles;
use proptest::prelude::*;

fn req(al: &Allocator, available: &[usize], size: usize) -> AllocRequest {
    AllocRequest {
        available: available.iter().map(|&p| al.ids()[p].clone()).collect(),
        size,
        ..AllocRequest::default()
    }
}

#[test]
fn dgx1_count_2_is_a_two_link_pair() {
    let t = profiles::get("dgx1-v100").unwrap();
    let al = Allocator::new(&t);
    let a = al
        .allocate(&req(&al, &(0..8).collect::<Vec<_>>(), 2))
        .unwrap();
    assert_eq!(
        al.lanes(a.positions[0], a.positions[1]),
        2,
        "{:?}",
        a.positions
    );
    assert!(a.exact);
}

#[test]
fn dgx1_count_1_takes_the_orphan_of_a_broken_nv2_pair() {
    let t = profiles::get("dgx1-v100").unwrap();
    let al = Allocator::new(&t);
    for taken in 0..8 {
        let avail: Vec<usize> = (0..8).filter(|&p| p != taken).collect();
        let a = al.allocate(&req(&al, &avail, 1)).unwrap();
        let chosen = a.positions[0];
        assert_eq!(
            al.lanes(chosen, taken),
            2,
            "with GPU{taken} taken, GPU{chosen} is not its NV2 partner"
        );
    }
}

#[test]
fn bridge_pairs_keep_pairs_whole() {
    let t = profiles::get("nvlink-bridge-pairs").unwrap();
    let al = Allocator::new(&t);
    let a = al.allocate(&req(&al, &[0, 1, 2, 3], 2)).unwrap();
    assert_eq!(a.positions, vec![0, 1]);
    // One GPU of pair 2-3 taken: a single-GPU request takes the orphan, not half of 0-1.
    let a = al.allocate(&req(&al, &[0, 1, 3], 1)).unwrap();
    assert_eq!(a.positions, vec![3]);
}

#[test]
fn numa_preference_is_honoured_on_an_all_to_all_node() {
    let t = profiles::get("dgx-h100").unwrap();
    let al = Allocator::new(&t);
    let mut r = req(&al, &(0..8).collect::<Vec<_>>(), 4);
    r.numa = Some(1);
    assert_eq!(al.allocate(&r).unwrap().positions, vec![4, 5, 6, 7]);
}

#[test]
fn spread_covers_both_sockets_pack_keeps_islands() {
    let t = profiles::get("nvlink-bridge-pairs").unwrap();
    let al = Allocator::new(&t);
    let mut r = req(&al, &[0, 1, 2, 3], 2);
    r.policy = Policy::Spread;
    let a = al.allocate(&r).unwrap();
    assert_eq!(a.score.numa_nodes, 2, "{:?}", a.positions);
    r.policy = Policy::Pack;
    assert_eq!(al.allocate(&r).unwrap().positions, vec![0, 1]);
}

#[test]
fn unhealthy_gpus_are_not_offered_by_default() {
    let t = profiles::get("degraded").unwrap();
    let al = Allocator::new(&t);
    let healthy = al.healthy();
    assert_eq!(healthy.len(), 7);
    let r = AllocRequest {
        available: healthy,
        size: 8,
        ..AllocRequest::default()
    };
    assert_eq!(
        al.allocate(&r).unwrap_err(),
        AllocError::Insufficient {
            requested: 8,
            available: 7
        }
    );
}

/// Greedy host count: the fewest hosts whose free GPUs add up to `k`.
fn min_hosts(t: &Topology, avail: &[usize], k: usize) -> u32 {
    let mut free: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for &p in avail {
        *free.entry(t.gpus[p].host.as_str()).or_default() += 1;
    }
    let mut counts: Vec<usize> = free.into_values().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let (mut sum, mut h) = (0, 0);
    for c in counts {
        if sum >= k {
            break;
        }
        sum += c;
        h += 1;
    }
    h
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// In a rack-scale clique every pair is NV18 through the switches, so the optimum's
    /// ring bottleneck and total are known in closed form and its host count is the
    /// greedy cover: the allocator must hit all three (well within 1%).
    #[test]
    fn rack_domains_reach_the_analytic_optimum(
        big in any::<bool>(),
        free in proptest::collection::vec(proptest::bool::weighted(0.7), 144),
        k in 1usize..=16,
    ) {
        let t = profiles::get(if big { "nvl144" } else { "nvl72" }).unwrap();
        let al = Allocator::new(&t);
        let avail: Vec<usize> = (0..t.gpus.len()).filter(|&p| free[p]).collect();
        prop_assume!(avail.len() >= k);
        let a = al.allocate(&req(&al, &avail, k)).unwrap();
        prop_assert_eq!(a.positions.len(), k);
        prop_assert!(a.positions.iter().all(|p| avail.contains(p)));
        let pair = al.bandwidth(0, 1);
        let k64 = u64::try_from(k).unwrap();
        prop_assert_eq!(a.score.islands, 1);
        prop_assert_eq!(a.score.hosts, min_hosts(&t, &avail, k));
        prop_assert_eq!(a.score.bottleneck_mbps, if k == 1 { 0 } else { pair });
        prop_assert_eq!(a.score.total_mbps, pair * k64 * (k64 - 1) / 2);
    }
}
