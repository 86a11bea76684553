//! The search: exhaustive where the candidates are few, decomposition where they are not.

use std::cell::Cell;
use std::collections::BTreeMap;

use super::{
    AllocRequest, Allocation, Allocator, EXACT_BUDGET, EXACT_GPUS, LARGE_BUDGET, Policy, Score,
    Scoring, ring_bottleneck,
};

type Key = [i128; 8];

/// Host groups tried per island when the island is too large to enumerate.
const MAX_HOST_GROUPS: usize = 16;

/// One request against one allocator.
pub(super) struct Ctx<'a> {
    al: &'a Allocator,
    req: &'a AllocRequest,
    avail: Vec<usize>,
    /// Per GPU, its bandwidth to every available GPU (for the cut in O(k)).
    to_avail: Vec<u64>,
    in_avail: Vec<bool>,
    /// Per available GPU, its best available partner's bandwidth (0 when alone).
    best_partner: Vec<u64>,
    /// Per GPU, the available GPUs whose best available partner it is.
    dependents: Vec<Vec<usize>>,
    /// Sum of `best_partner` over the available GPUs.
    potential: u64,
    must: Vec<usize>,
    local: Vec<bool>,
    intact_island: Vec<bool>,
    intact_host: Vec<bool>,
    multi_host: bool,
    /// The caller's "out of time" probe, when the search has a time budget.
    out_of_time: Option<&'a dyn Fn() -> bool>,
    /// Set once the probe said so; the search then stops at the next place it may.
    stopped: Cell<bool>,
}

/// The best and the runner-up found so far.
struct Best {
    set: Option<(Vec<usize>, Score, Key)>,
    runner: Option<(Vec<usize>, Score, Key)>,
    evaluated: u64,
}

impl Best {
    fn new() -> Self {
        Best {
            set: None,
            runner: None,
            evaluated: 0,
        }
    }

    /// Offers a set; ties keep the earlier (lexicographically smaller) set.
    fn offer(&mut self, set: &[usize], score: Score, key: Key) {
        let better = match &self.set {
            None => true,
            Some((s, _, k)) => key > *k || (key == *k && set < s.as_slice()),
        };
        if better {
            self.runner = self.set.take();
            self.set = Some((set.to_vec(), score, key));
        } else if self
            .runner
            .as_ref()
            .is_none_or(|(s, _, k)| key > *k || (key == *k && set < s.as_slice()))
        {
            self.runner = Some((set.to_vec(), score, key));
        }
    }

    fn merge(&mut self, other: Best) {
        self.evaluated += other.evaluated;
        for (s, sc, k) in other.set.into_iter().chain(other.runner) {
            self.offer(&s, sc, k);
        }
    }
}

// === impl Ctx ===

impl<'a> Ctx<'a> {
    pub(super) fn new(
        al: &'a Allocator,
        req: &'a AllocRequest,
        avail: &[usize],
        must: &[usize],
        out_of_time: Option<&'a dyn Fn() -> bool>,
    ) -> Self {
        let n = al.n;
        let to_avail: Vec<u64> = (0..n)
            .map(|p| avail.iter().map(|&r| al.w(p, r)).sum())
            .collect();
        let mut in_avail = vec![false; n];
        for &p in avail {
            in_avail[p] = true;
        }
        let mut best_partner = vec![0u64; n];
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        for &r in avail {
            if let Some(&b) = al.partners[r].iter().find(|&&b| in_avail[b]) {
                best_partner[r] = al.w(r, b);
                dependents[b].push(r);
            }
        }
        let potential = avail.iter().map(|&r| best_partner[r]).sum();
        let local = (0..n)
            .map(|p| match (&req.numa, &req.cpus) {
                (None, None) => true,
                (numa, cpus) => {
                    numa.is_some_and(|x| al.numa[p].contains(&x))
                        || cpus.as_ref().is_some_and(|want| {
                            al.cpus[p]
                                .as_ref()
                                .is_some_and(|have| have.cpus().iter().any(|c| want.contains(*c)))
                        })
                }
            })
            .collect();
        let mut free_island = vec![0usize; al.island_size.len()];
        let mut free_host = vec![0usize; al.host_size.len()];
        for &p in avail {
            free_island[al.island[p]] += 1;
            free_host[al.host[p]] += 1;
        }
        let intact_island = (0..al.island_size.len())
            .map(|i| al.island_size[i] >= 2 && free_island[i] == al.island_size[i])
            .collect();
        // Hosts without GPUs do not make a topology multi-host.
        let multi_host = al.host_size.iter().filter(|&&c| c > 0).count() > 1;
        let intact_host = (0..al.host_size.len())
            .map(|h| multi_host && al.host_size[h] > 0 && free_host[h] == al.host_size[h])
            .collect();
        let mut must = must.to_vec();
        must.sort_unstable();
        Ctx {
            al,
            req,
            avail: avail.to_vec(),
            to_avail,
            in_avail,
            best_partner,
            dependents,
            potential,
            must,
            local,
            intact_island,
            intact_host,
            multi_host,
            out_of_time,
            stopped: Cell::new(false),
        }
    }

    /// Whether the time budget is spent: asks the caller's probe until it says yes once.
    /// Only the parts of the search that are not exhaustive ask (greedy growth, swaps,
    /// the next pool of a decomposition), so exhaustive answers never depend on it.
    fn out_of_time(&self) -> bool {
        if !self.stopped.get() && self.out_of_time.is_some_and(|probe| probe()) {
            self.stopped.set(true);
        }
        self.stopped.get()
    }

    fn key(&self, s: &Score) -> Key {
        s.key(self.req.policy, self.req.scoring)
    }

    /// Every component but the ring bottleneck, which is returned as an upper bound.
    fn score_bounded(&self, set: &[usize]) -> (Score, u64) {
        let al = self.al;
        let mut s = Score::default();
        let mut islands: Vec<usize> = Vec::with_capacity(set.len());
        let mut hosts: Vec<usize> = Vec::with_capacity(set.len());
        let mut numas: Vec<u32> = Vec::with_capacity(set.len());
        let mut upper = u64::MAX;
        for (x, &a) in set.iter().enumerate() {
            if !islands.contains(&al.island[a]) {
                islands.push(al.island[a]);
            }
            if !hosts.contains(&al.host[a]) {
                hosts.push(al.host[a]);
            }
            let nn = al.numa[a].first().copied().unwrap_or(u32::MAX);
            if !numas.contains(&nn) {
                numas.push(nn);
            }
            if !self.local[a] {
                s.numa_misses += 1;
            }
            let (mut best, mut second) = (0u64, 0u64);
            for (y, &b) in set.iter().enumerate() {
                if x == y {
                    continue;
                }
                let v = al.w(a, b);
                if y > x {
                    s.total_mbps = s.total_mbps.saturating_add(v);
                    s.prior_art_pairwise = s
                        .prior_art_pairwise
                        .saturating_add(al.prior_art[a * al.n + b]);
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
        // The set lies inside the available GPUs: its bandwidth to all of them, less the
        // pairs inside it (counted from both ends).
        let to_all: u64 = set.iter().map(|&a| self.to_avail[a]).sum();
        s.cut_mbps = to_all.saturating_sub(s.total_mbps.saturating_mul(2));
        // What stays: every available GPU's best-partner bandwidth, less the set's own,
        // less what the GPUs whose best partner the set takes lose.
        let mut lost: u64 = set.iter().map(|&a| self.best_partner[a]).sum();
        for &a in set {
            for &r in &self.dependents[a] {
                if set.contains(&r) {
                    continue;
                }
                let next = al.partners[r]
                    .iter()
                    .find(|&&b| self.in_avail[b] && !set.contains(&b))
                    .map_or(0, |&b| al.w(r, b));
                lost += self.best_partner[r] - next.min(self.best_partner[r]);
            }
        }
        s.leftover_mbps = self.potential.saturating_sub(lost);
        let count = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        s.islands = count(islands.len());
        s.hosts = count(hosts.len());
        s.numa_nodes = count(numas.len());
        let island_opened = islands
            .iter()
            .filter(|&&i| {
                self.intact_island[i]
                    && set.iter().filter(|&&p| al.island[p] == i).count() < al.island_size[i]
            })
            .count();
        let host_opened = if self.multi_host {
            hosts
                .iter()
                .filter(|&&h| {
                    self.intact_host[h]
                        && set.iter().filter(|&&p| al.host[p] == h).count() < al.host_size[h]
                })
                .count()
        } else {
            0
        };
        s.opened = count(island_opened + host_opened);
        let upper = match set.len() {
            0 | 1 => 0,
            2 => al.w(set[0], set[1]),
            _ => upper,
        };
        (s, upper)
    }

    /// The full score of a set.
    pub(super) fn score(&self, set: &[usize]) -> Score {
        let (mut s, _) = self.score_bounded(set);
        s.bottleneck_mbps = ring_bottleneck(set, |a, b| self.al.w(a, b));
        s
    }

    /// Scores `set` into `best`, computing the ring only when the bound could win.
    fn consider(&self, set: &[usize], best: &mut Best) {
        best.evaluated += 1;
        let (mut s, upper) = self.score_bounded(set);
        if self.req.scoring == Scoring::Default {
            s.bottleneck_mbps = upper;
            let optimistic = self.key(&s);
            // The ring can only lower the key; ties go to the lower set.
            let beaten = |(bs, _, bk): &(Vec<usize>, Score, Key)| {
                optimistic < *bk || (optimistic == *bk && set > bs.as_slice())
            };
            if best.set.as_ref().is_some_and(beaten) && best.runner.as_ref().is_some_and(beaten) {
                return;
            }
            s.bottleneck_mbps = ring_bottleneck(set, |a, b| self.al.w(a, b));
        }
        let key = self.key(&s);
        best.offer(set, s, key);
    }

    /// The pool's free GPUs (not must-include) grouped into classes of twins that are
    /// also alike for this request (local or not), each sorted.
    fn classes(&self, pool: &[usize]) -> Vec<Vec<usize>> {
        let twins = if self.req.scoring == Scoring::PriorArtPairwise {
            &self.al.twins_prior_art
        } else {
            &self.al.twins
        };
        let mut by: BTreeMap<(usize, bool), Vec<usize>> = BTreeMap::new();
        for &p in pool.iter().filter(|p| !self.must.contains(p)) {
            by.entry((twins[p], self.local[p])).or_default().push(p);
        }
        by.into_values().collect()
    }

    /// How many canonical sets [`Ctx::exhaustive`] would score on `pool` (saturating).
    fn canonical_count(&self, pool: &[usize]) -> u64 {
        let m = self.req.size - self.must.len();
        let mut ways = vec![0u64; m + 1];
        ways[0] = 1;
        for class in self.classes(pool) {
            let mut next = vec![0u64; m + 1];
            for (r, &w) in ways.iter().enumerate() {
                if w == 0 {
                    continue;
                }
                for c in 0..=class.len().min(m - r) {
                    next[r + c] = next[r + c].saturating_add(w);
                }
            }
            ways = next;
        }
        ways[m]
    }

    /// Enumerates every set of `must` plus `size - must` of `pool`, one per orbit of
    /// twins: a count per class, filled with the class's lowest GPUs (the orbit's
    /// lexicographically smallest set, so ties still go to the lowest set).
    fn exhaustive(&self, pool: &[usize]) -> Best {
        let mut best = Best::new();
        let classes = self.classes(pool);
        let m = self.req.size - self.must.len();
        let mut suffix = vec![0usize; classes.len() + 1];
        for j in (0..classes.len()).rev() {
            suffix[j] = suffix[j + 1] + classes[j].len();
        }
        if suffix[0] < m {
            return best;
        }
        let mut chosen: Vec<usize> = self.must.clone();
        self.walk(&classes, &suffix, 0, m, &mut chosen, &mut best);
        best
    }

    fn walk(
        &self,
        classes: &[Vec<usize>],
        suffix: &[usize],
        j: usize,
        left: usize,
        chosen: &mut Vec<usize>,
        best: &mut Best,
    ) {
        if left == 0 {
            let mut set = chosen.clone();
            set.sort_unstable();
            self.consider(&set, best);
            return;
        }
        if j == classes.len() || suffix[j] < left {
            return;
        }
        let top = classes[j].len().min(left);
        for c in (0..=top).rev() {
            if suffix[j + 1] + c < left {
                break;
            }
            let before = chosen.len();
            chosen.extend(classes[j].iter().take(c));
            self.walk(classes, suffix, j + 1, left - c, chosen, best);
            chosen.truncate(before);
        }
    }

    /// The key of `set` when it beats `floor` (strictly), else `None`. The ring is computed
    /// only when the set's optimistic key (ring replaced by its upper bound) beats the
    /// floor, so the answer is the one full scoring would give, without most rings.
    fn key_above(&self, set: &[usize], floor: Option<&Key>) -> Option<Key> {
        let (mut s, upper) = self.score_bounded(set);
        if self.req.scoring == Scoring::Default {
            s.bottleneck_mbps = upper;
            if floor.is_some_and(|f| self.key(&s) <= *f) {
                return None;
            }
            s.bottleneck_mbps = ring_bottleneck(set, |a, b| self.al.w(a, b));
        }
        // Prior-art pairwise scoring's key has no ring in it.
        let key = self.key(&s);
        floor.is_none_or(|f| key > *f).then_some(key)
    }

    /// The pool GPU a greedy step takes once the time budget is spent, without scoring:
    /// the most bandwidth to the set so far, then to its best free partner, then the
    /// lowest position.
    fn cheap_pick(&self, pool: &[usize], set: &[usize]) -> Option<usize> {
        pool.iter()
            .copied()
            .filter(|c| !set.contains(c))
            .max_by(|&a, &b| {
                let to_set = |c: usize| set.iter().map(|&s| self.al.w(c, s)).sum::<u64>();
                (to_set(a), self.best_partner[a])
                    .cmp(&(to_set(b), self.best_partner[b]))
                    .then(b.cmp(&a))
            })
    }

    /// Greedy growth from the must-include devices, then pairwise swaps until no swap helps.
    /// When the time budget runs out, growth finishes with [`Ctx::cheap_pick`] and the
    /// swaps stop: the set so far is the answer.
    fn greedy(&self, pool: &[usize]) -> Best {
        let mut best = Best::new();
        let k = self.req.size;
        let mut set = self.must.clone();
        while set.len() < k {
            let mut pick: Option<(usize, Key)> = None;
            for &c in pool.iter().filter(|c| !set.contains(c)) {
                if self.out_of_time() {
                    break;
                }
                let mut t = set.clone();
                t.push(c);
                t.sort_unstable();
                best.evaluated += 1;
                if let Some(key) = self.key_above(&t, pick.as_ref().map(|(_, k)| k)) {
                    pick = Some((c, key));
                }
            }
            let Some(c) = pick.map(|(c, _)| c).or_else(|| self.cheap_pick(pool, &set)) else {
                return best;
            };
            set.push(c);
            set.sort_unstable();
        }
        let mut cur = self.key(&self.score(&set));
        'rounds: for _round in 0..4 {
            let mut improved = false;
            for out in set.clone().into_iter().filter(|p| !self.must.contains(p)) {
                for &inn in pool.iter().filter(|p| !set.contains(p)) {
                    if self.out_of_time() {
                        break 'rounds;
                    }
                    let mut t: Vec<usize> = set.iter().copied().filter(|&p| p != out).collect();
                    t.push(inn);
                    t.sort_unstable();
                    best.evaluated += 1;
                    if let Some(key) = self.key_above(&t, Some(&cur)) {
                        set = t;
                        cur = key;
                        improved = true;
                        break;
                    }
                }
            }
            if !improved {
                break;
            }
        }
        let s = self.score(&set);
        best.offer(&set, s, cur);
        best
    }

    /// Exhaustive when small enough, else greedy.
    fn solve_pool(&self, pool: &[usize]) -> (Best, bool) {
        if self.canonical_count(pool) <= EXACT_BUDGET {
            (self.exhaustive(pool), true)
        } else {
            (self.greedy(pool), false)
        }
    }

    /// Candidate host groups of an island for the request: the fewest hosts that can hold
    /// it (hosts of must-include devices always among them). Hosts with the same shape —
    /// free GPU count, intactness, and the bandwidths of their free GPUs among themselves
    /// and to everything available — are interchangeable, so one group is tried per
    /// multiset of shapes, best (fewest intact hosts broken, least spare room) first, at
    /// most [`MAX_HOST_GROUPS`]. Returns each group's available GPUs.
    fn host_pools(&self, island_pool: &[usize]) -> Vec<Vec<usize>> {
        let al = self.al;
        let mut free: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &p in island_pool {
            free.entry(al.host[p]).or_default().push(p);
        }
        let mut forced: Vec<usize> = self.must.iter().map(|&p| al.host[p]).collect();
        forced.sort_unstable();
        forced.dedup();
        let have: usize = forced.iter().map(|h| free.get(h).map_or(0, Vec::len)).sum();
        let k = self.req.size;
        let pool_of = |hosts: &[usize]| -> Vec<usize> {
            let mut pool: Vec<usize> = hosts
                .iter()
                .flat_map(|h| free.get(h).cloned().unwrap_or_default())
                .collect();
            pool.sort_unstable();
            pool
        };
        if have >= k {
            return vec![pool_of(&forced)];
        }
        let need = k - have;
        // Shapes of interchangeable hosts.
        type Shape = (usize, bool, Vec<u64>, Vec<(u64, bool)>);
        let mut shapes: BTreeMap<Shape, Vec<usize>> = BTreeMap::new();
        for (&h, ps) in &free {
            if forced.contains(&h) {
                continue;
            }
            let mut inner: Vec<u64> = Vec::new();
            for (x, &a) in ps.iter().enumerate() {
                for &b in &ps[x + 1..] {
                    inner.push(al.w(a, b));
                }
            }
            inner.sort_unstable();
            let mut outer: Vec<(u64, bool)> = ps
                .iter()
                .map(|&a| (self.to_avail[a], self.local[a]))
                .collect();
            outer.sort_unstable();
            shapes
                .entry((ps.len(), self.intact_host[h], inner, outer))
                .or_default()
                .push(h);
        }
        let list: Vec<(usize, bool, usize)> = shapes
            .iter()
            .map(|((c, intact, _, _), hs)| (*c, *intact, hs.len()))
            .collect();
        let mut counts: Vec<usize> = list
            .iter()
            .flat_map(|(c, _, m)| std::iter::repeat_n(*c, *m))
            .collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let (mut sum, mut h_min) = (0, 0);
        for c in counts {
            if sum >= need {
                break;
            }
            sum += c;
            h_min += 1;
        }
        let mut groups: Vec<((usize, usize), Vec<usize>)> = Vec::new();
        let mut take = vec![0usize; list.len()];
        fn walk(
            i: usize,
            left: usize,
            list: &[(usize, bool, usize)],
            take: &mut Vec<usize>,
            need: usize,
            out: &mut Vec<((usize, usize), Vec<usize>)>,
        ) {
            if out.len() >= 4 * MAX_HOST_GROUPS {
                return;
            }
            if i == list.len() {
                let cap: usize = list
                    .iter()
                    .zip(take.iter())
                    .map(|((c, _, _), t)| c * t)
                    .sum();
                if left == 0 && cap >= need {
                    let opened: usize = list
                        .iter()
                        .zip(take.iter())
                        .filter(|((_, intact, _), _)| *intact)
                        .map(|(_, t)| t)
                        .sum();
                    out.push(((opened, cap - need), take.clone()));
                }
                return;
            }
            for t in (0..=left.min(list[i].2)).rev() {
                take[i] = t;
                walk(i + 1, left - t, list, take, need, out);
            }
            take[i] = 0;
        }
        walk(0, h_min, &list, &mut take, need, &mut groups);
        groups.sort();
        let shape_hosts: Vec<&Vec<usize>> = shapes.values().collect();
        groups
            .into_iter()
            .take(MAX_HOST_GROUPS)
            .map(|(_, take)| {
                let mut hosts = forced.clone();
                for (hs, t) in shape_hosts.iter().zip(take) {
                    hosts.extend(hs.iter().take(t));
                }
                pool_of(&hosts)
            })
            .collect()
    }

    pub(super) fn solve(&self) -> Allocation {
        let al = self.al;
        let k = self.req.size;
        let exhaustive = match self.al.budget {
            Some(b) => self.canonical_count(&self.avail) <= b,
            None => al.n <= EXACT_GPUS || self.canonical_count(&self.avail) <= LARGE_BUDGET,
        };
        let (mut best, exact) = if exhaustive {
            (self.exhaustive(&self.avail), true)
        } else {
            // Islands that can hold the whole request (with every must-include device).
            let mut by_island: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
            for &p in &self.avail {
                by_island.entry(al.island[p]).or_default().push(p);
            }
            let must_islands: Vec<usize> = self.must.iter().map(|&p| al.island[p]).collect();
            let candidates: Vec<&Vec<usize>> = if self.req.policy == Policy::Spread
                || self.req.scoring == Scoring::PriorArtPairwise
            {
                Vec::new()
            } else {
                by_island
                    .iter()
                    .filter(|(i, ps)| ps.len() >= k && must_islands.iter().all(|m| m == *i))
                    .map(|(_, ps)| ps)
                    .collect()
            };
            if candidates.is_empty() {
                (self.greedy(&self.avail), false)
            } else {
                // Islands come first in the key, so the best single-island set beats every
                // set spanning islands: solving each candidate island whole is exact.
                let mut all = Best::new();
                let mut exact = true;
                for pool in candidates {
                    let whole = !self.multi_host || self.canonical_count(pool) <= LARGE_BUDGET;
                    let pools = if whole {
                        vec![pool.clone()]
                    } else {
                        self.host_pools(pool)
                    };
                    for pool in pools {
                        // Between pools the budget may end the search (with an answer).
                        if all.set.is_some() && self.out_of_time() {
                            break;
                        }
                        let (b, exhaustive) = self.solve_pool(&pool);
                        exact &= whole && exhaustive;
                        all.merge(b);
                    }
                }
                (all, exact)
            }
        };
        let (set, _, _) = best.set.take().unwrap_or_else(|| {
            // Unreachable for valid requests; fall back to the first k (must first).
            let mut s = self.must.clone();
            s.extend(
                self.avail
                    .iter()
                    .copied()
                    .filter(|p| !self.must.contains(p))
                    .take(k - self.must.len()),
            );
            s.sort_unstable();
            let sc = self.score(&s);
            let key = self.key(&sc);
            (s, sc, key)
        });
        // Rings over more than 16 GPUs are bounds, not exact values.
        let timed_out = self.stopped.get();
        let exact = exact
            && !timed_out
            && (k <= super::ring::EXACT_RING_MAX || self.req.scoring == Scoring::PriorArtPairwise);
        // The winner's full score (prior-art pairwise scoring skips the ring during the search).
        let score = self.score(&set);
        Allocation {
            devices: Vec::new(),
            positions: set,
            score,
            exact,
            timed_out,
            evaluated: best.evaluated,
            runner_up: best.runner.map(|(s, sc, _)| (s, sc)),
        }
    }
}
