//! The weakest link on a set's best ring: the bottleneck Hamiltonian cycle.
//!
//! For a threshold `t`, a ring whose every hop carries at least `t` exists exactly when
//! the graph of pairs with bandwidth `>= t` has a Hamiltonian cycle. The answer is the
//! largest such `t`, searched over the distinct pair bandwidths of the set from an upper
//! bound down: every GPU on a ring uses two of its links, so no ring beats the smallest
//! "second-best link" over the set's GPUs. Each threshold is checked by Dirac's theorem
//! (every vertex joined to at least half the others: a cycle exists) and otherwise by an
//! exact dynamic programme over subsets with bit-set rows, `O(2^k * k)` words for up to
//! [`EXACT_RING_MAX`] GPUs. Larger sets (never asked for by the promises) use Dirac alone
//! and so return a lower bound; sets over 32 GPUs return their weakest pair.

/// Largest set whose ring is computed exactly.
pub const EXACT_RING_MAX: usize = 16;

/// The bottleneck of the best ring through `set`, with `w(a, b)` the pair bandwidth:
/// 0 for fewer than two GPUs, the pair's bandwidth for two.
pub fn ring_bottleneck(set: &[usize], w: impl Fn(usize, usize) -> u64) -> u64 {
    let k = set.len();
    match k {
        0 | 1 => return 0,
        2 => return w(set[0], set[1]),
        _ => {}
    }
    if k > 32 {
        // Rows are 32-bit masks; beyond that only the weakest pair is a safe answer.
        let mut min = u64::MAX;
        for (x, &a) in set.iter().enumerate() {
            for &b in &set[x + 1..] {
                min = min.min(w(a, b));
            }
        }
        return min;
    }
    let mut weights = Vec::with_capacity(k * (k - 1) / 2);
    let mut upper = u64::MAX;
    for (x, &a) in set.iter().enumerate() {
        let (mut best, mut second) = (0u64, 0u64);
        for (y, &b) in set.iter().enumerate() {
            if x == y {
                continue;
            }
            let v = w(a, b);
            if y > x {
                weights.push(v);
            }
            if v > best {
                second = best;
                best = v;
            } else if v > second {
                second = v;
            }
        }
        upper = upper.min(second);
    }
    weights.sort_unstable_by(|a, b| b.cmp(a));
    weights.dedup();
    weights.retain(|&t| t <= upper);
    let ring_at = |t: u64| {
        let adj: Vec<u32> = (0..k)
            .map(|x| {
                (0..k)
                    .filter(|&y| y != x && w(set[x], set[y]) >= t)
                    .fold(0u32, |m, y| m | (1 << (y % 32)))
            })
            .collect();
        hamiltonian(&adj)
    };
    // A ring at `t` is a ring at every lower threshold (the graph only gains edges), so
    // along the descending thresholds the answer is the first `true`. Galloping from the
    // bound (checks at 0, 1, 3, 7, ...) and then binary search in the last gap: one check
    // when the bound is the answer (common), a handful when it is far down, instead of one
    // per distinct bandwidth (up to k(k-1)/2). The last threshold is the smallest weight,
    // which every pair meets: the complete graph has a ring, so the search ends there.
    let last = weights.len().saturating_sub(1);
    let (mut lo, mut next) = (0, 0);
    let mut hi = loop {
        let at = next.min(last);
        if at == last || ring_at(weights[at]) {
            break at;
        }
        lo = at + 1;
        next = 2 * next + 1;
    };
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if ring_at(weights[mid]) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    weights.get(hi).copied().unwrap_or(0)
}

/// Whether the graph (adjacency bit rows, `k >= 3`) has a Hamiltonian cycle.
fn hamiltonian(adj: &[u32]) -> bool {
    let k = adj.len();
    let min_degree = adj.iter().map(|r| r.count_ones()).min().unwrap_or(0) as usize;
    if 2 * min_degree >= k {
        return true; // Dirac
    }
    if min_degree < 2 || k > EXACT_RING_MAX {
        return false;
    }
    // paths[mask] = the set of end vertices v such that a path starts at vertex 0,
    // visits exactly `mask` (which contains 0 and v) and ends at v.
    let full = (1usize << k) - 1;
    let mut paths = vec![0u32; 1 << k];
    paths[1] = 1;
    for mask in 1..=full {
        if mask & 1 == 0 {
            continue;
        }
        let ends = paths[mask];
        if ends == 0 {
            continue;
        }
        // `mask < 2^k <= 2^16`, so it fits the 32-bit rows.
        let visited = u32::try_from(mask).unwrap_or(u32::MAX);
        for (v, row) in adj.iter().enumerate() {
            if ends & (1 << v) == 0 {
                continue;
            }
            let mut next = row & !visited;
            while next != 0 {
                let u = next.trailing_zeros() as usize;
                next &= next - 1;
                paths[mask | (1 << u)] |= 1 << u;
            }
        }
    }
    paths[full] & adj[0] != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from<'a>(m: &'a [&'a [u64]]) -> impl Fn(usize, usize) -> u64 + 'a {
        move |a, b| m[a][b]
    }

    #[test]
    fn dgx1_quad_ring_is_limited_by_an_nv1_hop() {
        // GPUs 0-3 of the hybrid cube-mesh: NV2 on 0-3, 1-2, 2-3; NV1 elsewhere.
        let m: &[&[u64]] = &[
            &[0, 25, 25, 50],
            &[25, 0, 50, 25],
            &[25, 50, 0, 50],
            &[50, 25, 50, 0],
        ];
        assert_eq!(ring_bottleneck(&[0, 1, 2, 3], from(m)), 25);
        assert_eq!(ring_bottleneck(&[0, 3], from(m)), 50);
        assert_eq!(ring_bottleneck(&[2], from(m)), 0);
    }

    #[test]
    fn a_ring_of_strong_links_beats_a_weak_chord() {
        // Ring 0-1-2-3-4-0 at 100, every chord at 10.
        let mut m = vec![vec![10u64; 5]; 5];
        for i in 0..5 {
            m[i][(i + 1) % 5] = 100;
            m[(i + 1) % 5][i] = 100;
        }
        let f = |a: usize, b: usize| m[a][b];
        assert_eq!(ring_bottleneck(&[0, 1, 2, 3, 4], f), 100);
        // Drop one ring edge: the best ring must use a chord.
        m[0][1] = 10;
        m[1][0] = 10;
        let f = |a: usize, b: usize| m[a][b];
        assert_eq!(ring_bottleneck(&[0, 1, 2, 3, 4], f), 10);
    }

    /// The best ring by trying every cycle: fix the first GPU, permute the rest.
    fn brute(m: &[Vec<u64>]) -> u64 {
        fn go(m: &[Vec<u64>], path: &mut Vec<usize>, left: &mut Vec<usize>, best: &mut u64) {
            if left.is_empty() {
                let mut min = m[path[path.len() - 1]][path[0]];
                for x in path.windows(2) {
                    min = min.min(m[x[0]][x[1]]);
                }
                *best = (*best).max(min);
                return;
            }
            for i in 0..left.len() {
                let v = left.remove(i);
                path.push(v);
                go(m, path, left, best);
                path.pop();
                left.insert(i, v);
            }
        }
        let mut best = 0;
        go(m, &mut vec![0], &mut (1..m.len()).collect(), &mut best);
        best
    }

    proptest::proptest! {
        /// Regression guard for the binary search over thresholds: it finds the same ring
        /// as trying every cycle, on random weights with many ties and many distinct values.
        #[test]
        fn binary_search_finds_the_best_ring(
            k in 3usize..=7,
            raw in proptest::collection::vec(1u64..=12, 49),
        ) {
            // Symmetric: the pair {a, b} reads raw[min * 7 + max].
            let m: Vec<Vec<u64>> = (0..k)
                .map(|a| (0..k).map(|b| if a == b { 0 } else { raw[a.min(b) * 7 + a.max(b)] }).collect())
                .collect();
            let set: Vec<usize> = (0..k).collect();
            proptest::prop_assert_eq!(ring_bottleneck(&set, |a, b| m[a][b]), brute(&m));
        }
    }

    #[test]
    fn two_cliques_joined_by_one_bridge_have_no_strong_ring() {
        // {0,1,2} and {3,4,5} at 100 inside, one 100 bridge 2-3, 1 elsewhere.
        let mut m = vec![vec![1u64; 6]; 6];
        for (a, b) in [(0, 1), (0, 2), (1, 2), (3, 4), (3, 5), (4, 5), (2, 3)] {
            m[a][b] = 100;
            m[b][a] = 100;
        }
        let f = |a: usize, b: usize| m[a][b];
        assert_eq!(ring_bottleneck(&[0, 1, 2, 3, 4, 5], f), 1);
    }
}
