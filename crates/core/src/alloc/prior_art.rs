//! The prior art's best-effort search, reproduced as a baseline: exhaustive enumeration
//! of partitions of all available GPUs into groups of size `k`, scored by summed pair
//! weights, returning the best set of the best partition (first found wins ties).
//!
//! It exists to be measured against (benchmarks) and to show, on its own objective, that
//! the best set of the best partition is often not the best set (tests). It keeps the
//! prior art's defects on purpose, including the padded-set answer, which is reported as
//! `None` entries.

use super::Allocator;

/// Runs the partition search over `available` (positions) for `size` devices including
/// `required`. Returns `None` where the prior art returns an empty answer; a `None` entry
/// inside the answer is a padding slot (an invalid answer the prior art can return).
pub fn partition_search(
    al: &Allocator,
    available: &[usize],
    required: &[usize],
    size: usize,
) -> Option<Vec<Option<usize>>> {
    if size == 0
        || available.len() < size
        || required.len() > size
        || required.len() > available.len()
    {
        return None;
    }
    if size == 1 {
        // Shortcut: every single device, in order; all score 0, the first wins.
        return available
            .iter()
            .find(|d| required.iter().all(|r| r == *d))
            .map(|&d| vec![Some(d)]);
    }
    let pads = (size - available.len() % size) % size;
    let mut devices: Vec<Option<usize>> = available.iter().copied().map(Some).collect();
    devices.extend(std::iter::repeat_n(None, pads));
    let score = |set: &[Option<usize>]| -> u64 {
        let mut s = 0;
        for (x, a) in set.iter().enumerate() {
            for b in &set[x + 1..] {
                if let (Some(a), Some(b)) = (a, b) {
                    s += al.prior_art_weight(*a, *b);
                }
            }
        }
        s
    };
    let holds_required = |set: &[Option<usize>]| required.iter().all(|r| set.contains(&Some(*r)));
    let mut best: Option<(u64, Vec<Vec<Option<usize>>>)> = None;
    let mut stack: Vec<Vec<Option<usize>>> = Vec::new();
    let mut visit = |partition: &[Vec<Option<usize>>]| {
        if !partition
            .iter()
            .any(|s| !s.contains(&None) && holds_required(s))
        {
            return;
        }
        let total: u64 = partition.iter().map(|s| score(s)).sum();
        if best.as_ref().is_none_or(|(b, _)| total > *b) {
            best = Some((total, partition.to_vec()));
        }
    };
    recurse(&devices, size, pads, &mut stack, &mut visit);
    let (_, partition) = best?;
    partition
        .into_iter()
        .filter(|s| holds_required(s))
        .fold(None::<(u64, Vec<Option<usize>>)>, |acc, s| {
            let sc = score(&s);
            match acc {
                Some((b, _)) if sc <= b => acc,
                _ => Some((sc, s)),
            }
        })
        .map(|(_, s)| s)
}

fn recurse(
    devices: &[Option<usize>],
    k: usize,
    pads: usize,
    stack: &mut Vec<Vec<Option<usize>>>,
    visit: &mut impl FnMut(&[Vec<Option<usize>>]),
) {
    if devices.is_empty() {
        visit(stack);
        return;
    }
    let first = devices[0];
    let rest = &devices[1..];
    let m = k - 1;
    if rest.len() < m {
        return;
    }
    let mut idx: Vec<usize> = (0..m).collect();
    loop {
        let mut set = Vec::with_capacity(k);
        set.push(first);
        set.extend(idx.iter().map(|&i| rest[i]));
        let n_pads = set.iter().filter(|d| d.is_none()).count();
        if n_pads == 0 || n_pads == pads {
            let remainder: Vec<Option<usize>> = rest
                .iter()
                .enumerate()
                .filter(|(i, _)| !idx.contains(i))
                .map(|(_, d)| *d)
                .collect();
            stack.push(set);
            recurse(&remainder, k, pads, stack, visit);
            stack.pop();
        }
        // Next (k-1)-combination of `rest`, lexicographic.
        let mut i = m;
        loop {
            if i == 0 {
                return;
            }
            i -= 1;
            if idx[i] < i + rest.len() - m {
                break;
            }
        }
        idx[i] += 1;
        for j in i + 1..m {
            idx[j] = idx[j - 1] + 1;
        }
    }
}
