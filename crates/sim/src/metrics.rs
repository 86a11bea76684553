//! Per-run metrics resampled onto the paper's x-axis (arrived GPU request as a whole
//! percentage of capacity, 0..=130; reference §2.1 step 6 and §2.3), and their mean and
//! sample standard deviation over seeds.

use linkwise_core::placement::replay::LogPoint;

/// The last column of the x-axis.
pub const MAX_K: usize = 130;

/// Sums over the log points whose arrived % rounds to one integer.
#[derive(Debug, Default, Clone, Copy)]
struct Bucket {
    n: u64,
    alloc: f64,
    frag: f64,
    rate: f64,
    rate_n: u64,
}

impl Bucket {
    fn add(&mut self, o: &Bucket) {
        self.n += o.n;
        self.alloc += o.alloc;
        self.frag += o.frag;
        self.rate += o.rate;
        self.rate_n += o.rate_n;
    }
}

/// Collects one run's log points.
#[derive(Debug)]
pub struct RunCollector {
    capacity_milli: f64,
    total_gpus: u64,
    // Columns 0..=MAX_K + 1: the last one only serves column MAX_K's fallback.
    buckets: Vec<Bucket>,
    pods: u64,
    failed: u64,
    multi_placed: u64,
    single_island: u64,
}

/// One run, resampled: `None` where a column has no data.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// GPU allocation ratio, % of capacity.
    pub alloc: Vec<Option<f64>>,
    /// Fragmentation amount, % of capacity.
    pub frag: Vec<Option<f64>>,
    /// Fragmentation rate, % of idle GPU.
    pub rate: Vec<Option<f64>>,
    /// Unallocated GPUs.
    pub unalloc: Vec<Option<f64>>,
    /// Pods tried.
    pub pods: u64,
    /// Pods that did not fit.
    pub failed: u64,
    /// Placed multi-GPU pods whose GPUs share one NVLink island, as a share of the placed
    /// multi-GPU pods; `None` when none was placed.
    pub single_island_share: Option<f64>,
}

/// Mean and sample standard deviation (0 with a single value) over `n` values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    pub mean: f64,
    pub sd: f64,
    pub n: usize,
}

/// One policy over all seeds: per column, the statistic over the seeds with data there.
#[derive(Debug, Clone)]
pub struct PolicySummary {
    pub alloc: Vec<Option<Stat>>,
    pub frag: Vec<Option<Stat>>,
    pub rate: Vec<Option<Stat>>,
    pub unalloc: Vec<Option<Stat>>,
    pub failed: Stat,
    pub single_island_share: Option<Stat>,
}

// === impl RunCollector ===

impl RunCollector {
    /// A collector for a cluster of `total_gpus` GPUs (> 0).
    pub fn new(total_gpus: u64) -> Self {
        RunCollector {
            capacity_milli: total_gpus.max(1) as f64 * 1000.0,
            total_gpus,
            buckets: vec![Bucket::default(); MAX_K + 2],
            pods: 0,
            failed: 0,
            multi_placed: 0,
            single_island: 0,
        }
    }

    /// Adds the point logged after one pod.
    pub fn push(&mut self, p: &LogPoint) {
        self.pods += 1;
        if p.failed {
            self.failed += 1;
        }
        if let Some(single) = p.single_island {
            self.multi_placed += 1;
            if single {
                self.single_island += 1;
            }
        }
        // Python's round(): half to even.
        let pct = (100.0 * p.arrived_milli as f64 / self.capacity_milli).round_ties_even();
        if !(0.0..=(MAX_K + 1) as f64).contains(&pct) {
            return;
        }
        // In 0..=131 (checked above).
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let b = &mut self.buckets[pct as usize];
        b.n += 1;
        b.alloc += 100.0 * p.allocated_milli as f64 / self.capacity_milli;
        b.frag += 100.0 * p.frag_milli / self.capacity_milli;
        if p.idle_milli > 0 {
            b.rate += 100.0 * p.frag_milli / p.idle_milli as f64;
            b.rate_n += 1;
        }
    }

    /// The resampled run: column k is the mean over the points at k, or, when there are
    /// none, over the points at k-1..=k+1.
    pub fn finish(self) -> RunSummary {
        let mut s = RunSummary {
            alloc: vec![None; MAX_K + 1],
            frag: vec![None; MAX_K + 1],
            rate: vec![None; MAX_K + 1],
            unalloc: vec![None; MAX_K + 1],
            pods: self.pods,
            failed: self.failed,
            single_island_share: (self.multi_placed > 0)
                .then(|| self.single_island as f64 / self.multi_placed as f64),
        };
        let c = self.total_gpus as f64;
        for k in 0..=MAX_K {
            let mut b = self.buckets[k];
            if b.n == 0 {
                for j in [k.checked_sub(1), Some(k + 1)].into_iter().flatten() {
                    b.add(&self.buckets[j]);
                }
            }
            if b.n == 0 {
                continue;
            }
            let n = b.n as f64;
            let alloc = b.alloc / n;
            s.alloc[k] = Some(alloc);
            s.frag[k] = Some(b.frag / n);
            s.rate[k] = (b.rate_n > 0).then(|| b.rate / b.rate_n as f64);
            s.unalloc[k] = Some(c * (1.0 - alloc / 100.0));
        }
        s
    }
}

// === impl Stat ===

impl Stat {
    /// Mean and sample (n - 1) standard deviation; `None` for no values.
    pub fn of(values: &[f64]) -> Option<Stat> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let sd = if values.len() < 2 {
            0.0
        } else {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        };
        Some(Stat {
            mean,
            sd,
            n: values.len(),
        })
    }
}

// === impl PolicySummary ===

impl PolicySummary {
    /// The statistics over the runs of one policy (one run per seed).
    pub fn of(runs: &[&RunSummary]) -> PolicySummary {
        let column = |get: fn(&RunSummary) -> &Vec<Option<f64>>| -> Vec<Option<Stat>> {
            (0..=MAX_K)
                .map(|k| {
                    let v: Vec<f64> = runs.iter().filter_map(|r| get(r)[k]).collect();
                    Stat::of(&v)
                })
                .collect()
        };
        let failed: Vec<f64> = runs.iter().map(|r| r.failed as f64).collect();
        let single: Vec<f64> = runs.iter().filter_map(|r| r.single_island_share).collect();
        PolicySummary {
            alloc: column(|r| &r.alloc),
            frag: column(|r| &r.frag),
            rate: column(|r| &r.rate),
            unalloc: column(|r| &r.unalloc),
            failed: Stat::of(&failed).unwrap_or(Stat {
                mean: 0.0,
                sd: 0.0,
                n: 0,
            }),
            single_island_share: Stat::of(&single),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(arrived: u64, allocated: u64) -> LogPoint {
        LogPoint {
            arrived_milli: arrived,
            allocated_milli: allocated,
            frag_milli: 100.0,
            idle_milli: 10_000 - allocated,
            ..LogPoint::default()
        }
    }

    #[test]
    fn resampling_uses_the_exact_column_then_its_neighbours() {
        // 10 GPUs: 100 milli-GPU is 1%.
        let mut c = RunCollector::new(10);
        c.push(&point(100, 100)); // 1%
        c.push(&point(100, 300)); // 1%
        c.push(&point(300, 300)); // 3%
        c.push(&point(250, 250)); // 2.5% rounds to 2 (half to even)
        c.push(&point(450, 400)); // 4.5% rounds to 4
        let s = c.finish();
        assert_eq!(s.alloc[1], Some(2.0));
        assert_eq!(s.alloc[2], Some(2.5));
        assert_eq!(s.alloc[3], Some(3.0));
        assert_eq!(s.alloc[4], Some(4.0));
        // Column 0 has no point of its own: its neighbour 1 gives the value.
        assert_eq!(s.alloc[0], Some(2.0));
        // Column 5 borrows 4; column 7 has nothing within one.
        assert_eq!(s.alloc[5], Some(4.0));
        assert_eq!(s.alloc[7], None);
        assert_eq!(s.unalloc[1], Some(10.0 * 0.98));
        assert_eq!(s.frag[1], Some(1.0));
        assert_eq!(s.pods, 5);
        let st = Stat::of(&[1.0, 2.0, 3.0]);
        assert_eq!(
            st,
            Some(Stat {
                mean: 2.0,
                sd: 1.0,
                n: 3
            })
        );
    }
}
