//! The regression gate: repeated runs of the same benchmarks before and after a change,
//! and per metric a verdict that accounts for noise.
//!
//! Per metric, the ratio of the candidate's median to the baseline's (inverted for
//! latencies, so below 1 is always worse) and a bootstrap confidence interval of that
//! ratio: both sides resampled with replacement `resamples` times (a fixed-seed
//! generator, so a verdict is reproducible), the ratio of medians of each resample, the
//! central `confidence` share of them. With `t` the tolerated change:
//!
//! - **regressed**: the whole interval is below 1 (worse, beyond noise) and the ratio is
//!   below `1 − t` (by more than the tolerance): significance and effect size together;
//! - **improved**: the same the other way (interval above 1, ratio above `1 + t`);
//! - **no change**: the interval lies within `[1 − t, 1 + t]`;
//! - **inconclusive**: anything else, or fewer than [`MIN_RUNS`] runs on a side; the
//!   verdict says how many more runs would narrow the interval enough (the width shrinks
//!   with the square root of the runs).
//!
//! Never a verdict from one noisy sample. The false-alarm and detection rates on
//! simulated runs are measured in the tests and given in `docs/validation.md`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::results::{Direction, Results, Status, Unit};

/// Fewer runs than this on either side give "inconclusive".
pub const MIN_RUNS: usize = 3;

/// One measured quantity of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metric {
    /// Its name, stable across runs (`device_to_device_memcpy_read_ce/sum`).
    pub name: String,
    /// The value.
    pub value: f64,
    /// The unit (`GB/s`, `ns`).
    pub unit: String,
    /// Larger is better (bandwidth) or not (latency).
    pub higher_is_better: bool,
}

/// The numbers of a run worth gating on: per nvbandwidth test the sum and the smallest
/// value of each matrix (a single slow pair moves the minimum even when the sum hides
/// it); per nccl-tests collective the bus bandwidth at the largest size and the average.
/// Tests that did not pass give none.
pub fn metrics(results: &Results) -> Vec<Metric> {
    let mut out = Vec::new();
    for t in results.tests.iter().filter(|t| t.status == Status::Passed) {
        for (k, m) in t.matrices.iter().enumerate() {
            if m.direction == Direction::Unknown && m.values.is_empty() {
                continue;
            }
            let (unit, higher) = match m.unit {
                Unit::GBps => ("GB/s", true),
                Unit::Ns => ("ns", false),
            };
            let suffix = if t.matrices.len() > 1 {
                format!("[{k}]")
            } else {
                String::new()
            };
            let cells: Vec<f64> = m.values.iter().flatten().flatten().copied().collect();
            if cells.is_empty() {
                continue;
            }
            let sum = m.sum.unwrap_or_else(|| cells.iter().sum());
            let (min, max) = cells
                .iter()
                .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
            out.push(Metric {
                name: format!("{}{suffix}/sum", t.name),
                value: sum,
                unit: unit.into(),
                higher_is_better: higher,
            });
            out.push(Metric {
                name: format!("{}{suffix}/{}", t.name, if higher { "min" } else { "max" }),
                value: if higher { min } else { max },
                unit: unit.into(),
                higher_is_better: higher,
            });
        }
        if let Some(c) = &t.collective {
            if let Some(last) = c.sizes.iter().max_by_key(|s| s.bytes) {
                out.push(Metric {
                    name: format!("{}/busbw@{}", t.name, last.bytes),
                    value: last.out_of_place.bus_bw,
                    unit: "GB/s".into(),
                    higher_is_better: true,
                });
            }
            if let Some(avg) = c.avg_bus_bandwidth {
                out.push(Metric {
                    name: format!("{}/avg-busbw", t.name),
                    value: avg,
                    unit: "GB/s".into(),
                    higher_is_better: true,
                });
            }
        }
    }
    out
}

/// A metric's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Worse than the tolerance, beyond noise.
    Regressed,
    /// Better than the tolerance, beyond noise.
    Improved,
    /// Within the tolerance, beyond noise.
    NoChange,
    /// Noise leaves it open.
    Inconclusive,
}

/// How the gate decides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateOptions {
    /// The tolerated change as a share (0.05 = 5 %).
    pub max_regression: f64,
    /// The confidence of the interval (0.95).
    pub confidence: f64,
    /// Bootstrap resamples.
    pub resamples: usize,
    /// The generator's seed.
    pub seed: u64,
}

impl Default for GateOptions {
    fn default() -> Self {
        GateOptions {
            max_regression: 0.05,
            confidence: 0.95,
            resamples: 2000,
            seed: 0x6c69_6e6b_7769_7365,
        }
    }
}

/// One metric judged.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricVerdict {
    /// The metric.
    pub name: String,
    /// Its unit.
    pub unit: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Runs on each side.
    pub baseline_runs: usize,
    /// Runs of the candidate.
    pub candidate_runs: usize,
    /// The baseline's median.
    pub baseline_median: f64,
    /// The candidate's median.
    pub candidate_median: f64,
    /// Candidate ÷ baseline, oriented so that below 1 is worse.
    pub ratio: f64,
    /// The confidence interval of the ratio.
    pub interval: [f64; 2],
    /// For an inconclusive verdict, runs to add on each side (an estimate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub more_runs: Option<usize>,
    /// The verdict in words.
    pub message: String,
}

/// Every metric judged.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Gate {
    /// The tolerated change.
    pub max_regression: f64,
    /// The interval's confidence.
    pub confidence: f64,
    /// Per metric.
    pub metrics: Vec<MetricVerdict>,
    /// Metrics one side has and the other does not.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unmatched: Vec<String>,
}

impl Gate {
    /// True when any metric regressed.
    pub fn regressed(&self) -> bool {
        self.metrics.iter().any(|m| m.verdict == Verdict::Regressed)
    }
}

/// SplitMix64: small, fast, and the same sequence everywhere for a seed.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from((u128::from(self.next_u64()) * n as u128) >> 64).unwrap_or(0)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `x` rounded to the nearest whole number in `0..=max` (NaN is 0).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // clamped first
fn clamped_index(x: f64, max: usize) -> usize {
    if x.is_nan() {
        return 0;
    }
    x.round().clamp(0.0, max as f64) as usize
}

/// The median of `v` (not empty).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Judges one metric from its baseline and candidate values.
pub fn judge(
    name: &str,
    unit: &str,
    higher_is_better: bool,
    baseline: &[f64],
    candidate: &[f64],
    o: GateOptions,
) -> MetricVerdict {
    let t = o.max_regression;
    let orient = |b: f64, c: f64| {
        let r = if higher_is_better { c / b } else { b / c };
        if r.is_finite() { r } else { 0.0 }
    };
    let bm = median(&mut baseline.to_vec());
    let cm = median(&mut candidate.to_vec());
    let ratio = orient(bm, cm);
    let mut out = MetricVerdict {
        name: name.to_string(),
        unit: unit.to_string(),
        verdict: Verdict::Inconclusive,
        baseline_runs: baseline.len(),
        candidate_runs: candidate.len(),
        baseline_median: bm,
        candidate_median: cm,
        ratio,
        interval: [ratio, ratio],
        more_runs: None,
        message: String::new(),
    };
    let fewest = baseline.len().min(candidate.len());
    if fewest < MIN_RUNS {
        out.more_runs = Some(MIN_RUNS - fewest);
        out.message = format!(
            "inconclusive: need {} more runs (at least {MIN_RUNS} on each side; one run says nothing about noise)",
            MIN_RUNS - fewest
        );
        return out;
    }
    let mut rng = SplitMix::new(
        o.seed
            ^ name
                .bytes()
                .fold(0u64, |h, b| h.rotate_left(5) ^ u64::from(b)),
    );
    let mut ratios = Vec::with_capacity(o.resamples);
    let (mut bs, mut cs) = (vec![0.0; baseline.len()], vec![0.0; candidate.len()]);
    for _ in 0..o.resamples.max(100) {
        for x in bs.iter_mut() {
            *x = baseline[rng.below(baseline.len())];
        }
        for x in cs.iter_mut() {
            *x = candidate[rng.below(candidate.len())];
        }
        ratios.push(orient(median(&mut bs), median(&mut cs)));
    }
    ratios.sort_by(f64::total_cmp);
    let tail = (1.0 - o.confidence) / 2.0;
    let at = |q: f64| ratios[clamped_index(q * (ratios.len() - 1) as f64, ratios.len() - 1)];
    let (lo, hi) = (at(tail), at(1.0 - tail));
    out.interval = [lo, hi];
    let pct = |r: f64| (r - 1.0) * 100.0;
    let range = format!("{:+.1}% [{:+.1}%, {:+.1}%]", pct(ratio), pct(lo), pct(hi));
    if hi < 1.0 && ratio < 1.0 - t {
        out.verdict = Verdict::Regressed;
        out.message = format!(
            "regressed: {range}, worse than the tolerated {:.1}%",
            t * 100.0
        );
    } else if lo > 1.0 && ratio > 1.0 + t {
        out.verdict = Verdict::Improved;
        out.message = format!("improved: {range}");
    } else if lo >= 1.0 - t && hi <= 1.0 + t {
        out.verdict = Verdict::NoChange;
        out.message = format!("no change: {range}, within ±{:.1}%", t * 100.0);
    } else {
        // The interval straddles a boundary: it must shrink to fit on one side of it.
        let half = (hi - lo) / 2.0;
        let room = [(ratio - (1.0 - t)).abs(), (ratio - (1.0 + t)).abs()]
            .into_iter()
            .fold(f64::MAX, f64::min)
            .max(half / 10.0);
        let n = fewest as f64;
        let needed = clamped_index((n * (half / room).powi(2)).ceil(), 1_000_000);
        let more = needed.saturating_sub(fewest).max(1);
        out.more_runs = Some(more);
        out.message = format!("inconclusive: {range}; need about {more} more runs on each side");
    }
    out
}

/// Judges every metric the runs have: `baseline` and `candidate` are repeated runs of
/// the same benchmarks, one [`Results`] per run.
pub fn gate(baseline: &[Results], candidate: &[Results], o: GateOptions) -> Gate {
    type Side = BTreeMap<String, (String, bool, Vec<f64>)>;
    let collect = |runs: &[Results]| -> Side {
        let mut m: Side = BTreeMap::new();
        for r in runs {
            for x in metrics(r) {
                m.entry(x.name)
                    .or_insert_with(|| (x.unit, x.higher_is_better, Vec::new()))
                    .2
                    .push(x.value);
            }
        }
        m
    };
    let (b, c) = (collect(baseline), collect(candidate));
    let mut metrics = Vec::new();
    let mut unmatched = Vec::new();
    for (name, (unit, higher, bv)) in &b {
        match c.get(name) {
            Some((_, _, cv)) => metrics.push(judge(name, unit, *higher, bv, cv, o)),
            None => unmatched.push(format!("{name}: only in the baseline")),
        }
    }
    for name in c.keys().filter(|n| !b.contains_key(*n)) {
        unmatched.push(format!("{name}: only in the candidate"));
    }
    Gate {
        max_regression: o.max_regression,
        confidence: o.confidence,
        metrics,
        unmatched,
    }
}
