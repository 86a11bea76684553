//! `linkwise sim`: replay a placement trace (Alibaba openb CSVs) the way the FGD paper's
//! simulator does, for several policies and seeds, and report the paper's metrics.

use std::path::{Path, PathBuf};

use linkwise_core::placement::frag::TypicalPods;
use linkwise_core::placement::policies;
use linkwise_sim::metrics::{MAX_K, PolicySummary, Stat};
use linkwise_sim::plot::{self, Chart, Series};
use linkwise_sim::run::{Inputs, Job, run_all};
use linkwise_sim::topomap::{self, TopologyMap};
use linkwise_sim::{csv, metrics};
use serde_json::{Map, Value, json};

use crate::exit::BadInput;

/// Replay a trace for several policies and seeds; report allocation and fragmentation.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Method (the FGD paper's simulator, ATC '23): for each seed the pods are \
sorted by name and shuffled, then inflated by drawing pods with replacement (or pruned) to --tune x the \
cluster's GPU capacity, and scheduled one at a time, never departing, failures not retried. Each run is \
resampled onto the x-axis \"arrived GPU request, % of capacity\" (0..130: the mean of the points whose \
rounded arrived % equals k, else of those within k±1); the table and JSON give the mean and sample sd over \
seeds (with one seed there is no spread, and none is shown). Metrics: allocation ratio (% of capacity allocated), unallocated GPUs, fragmentation amount (% of \
capacity, against the trace's typical pods) and rate (% of idle GPU), failed pods.\n\n\
Output: -o table prints, per policy, the allocation ratio at 100% and 130% arrived, unallocated GPUs, \
fragmentation amount and rate at 100%, failed pods, and unallocated GPUs relative to fgd; -o json gives \
every metric at every column with data (keys \"0\"..\"130\"), each as {mean, sd, n}: n is the number of \
seeds with data in that column (a cell marked (n/N) in the table; sd is 0 when n is 1).\n\n\
Plot: --plot FILE.svg or FILE.png (repeat for both) draws the allocation ratio; the axes zoom to where the \
policies differ, and each policy has its own colour, dash pattern and marker.\n\n\
Exit codes: 0 done, 1 a run failed, 2 bad input (a CSV error names the file, line and column).\n\n\
Examples:\n  \
linkwise sim --nodes ../shared/data/openb/openb_node_list_gpu_node.csv --pods ../shared/data/openb/openb_pod_list_default.csv\n  \
linkwise sim --nodes ../shared/data/openb/openb_node_list_gpu_node.csv --pods ../shared/data/openb/openb_pod_list_default.csv \\\n    \
--policy fgd,bestfit,dotprod --seeds 42..44 --plot alloc.svg --plot alloc.png\n  \
linkwise sim --nodes ../shared/data/openb/openb_node_list_gpu_node.csv --pods ../shared/data/openb/openb_pod_list_gpushare100.csv \\\n    \
--policy bestfit --seeds 42 -o json > bestfit.json\n  \
linkwise sim --nodes ../shared/data/openb/openb_node_list_gpu_node.csv --pods ../shared/data/openb/openb_pod_list_multigpu50.csv \\\n    \
--policy fgd,default --seeds 42,43 --topology-map default"
)]
pub struct Args {
    /// Node list CSV (columns sn,cpu_milli,memory_mib,gpu,model; empty or `nan` model = CPU-only).
    /// `-` reads standard input.
    #[arg(long, value_name = "NODES.csv")]
    nodes: PathBuf,
    /// Pod list CSV (columns name, cpu_milli, memory_mib, num_gpu, gpu_milli, optionally gpu_spec; others ignored).
    /// `-` reads standard input (not both lists).
    #[arg(long, value_name = "PODS.csv")]
    pods: PathBuf,
    /// Policies, comma-separated, each once (default: all): random, dotprod, gpu-clustering,
    /// gpu-packing, bestfit, fgd, default.
    #[arg(long, value_delimiter = ',', value_name = "P[,P...]")]
    policy: Vec<String>,
    /// Seeds: a range `42..51` (inclusive), a list `42,43`, or one seed; ranges and lists
    /// combine, each seed once, at most 100000 in all.
    #[arg(long, default_value = "42..51", allow_negative_numbers = true)]
    seeds: String,
    /// Inflate (or prune) the trace to this multiple of the cluster's GPU capacity, from
    /// 0.1 to 10 (the x-axis ends at 1.3).
    #[arg(long, default_value_t = 1.3, allow_negative_numbers = true)]
    tune: f64,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    output: Output,
    /// Also draw the allocation ratio against arrived workload to FILE: SVG or PNG
    /// (960x600) by its extension, `.svg` or `.png`; repeat the flag for both.
    #[arg(long, value_name = "FILE.svg|FILE.png")]
    plot: Vec<PathBuf>,
    /// The same as `--plot FILE.png`.
    #[arg(long, value_name = "FILE.png")]
    plot_png: Vec<PathBuf>,
    #[arg(long, value_name = "MAP", help = topomap::HELP)]
    topology_map: Option<String>,
    /// Worker threads, at least 1 (default: the available parallelism). Results do not
    /// depend on it.
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Also give the limit at 100% arrived, per seed: an upper bound on the allocation any
    /// placement of the arrived pods could reach (a linear programme over node classes, pod
    /// types and the patterns that pack shares into a GPU) and the best packing found.
    #[arg(long)]
    bound: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Output {
    Table,
    Json,
}

/// The most seeds one run takes.
const MAX_SEEDS: usize = 100_000;

/// Parses `--seeds`: `A..B` or `A..=B` (inclusive), `A,B,...`, or `A`; items combine.
/// An empty range, a seed given twice (ranges included) and more than [`MAX_SEEDS`]
/// seeds are bad input.
pub fn parse_seeds(s: &str) -> Result<Vec<u64>, BadInput> {
    let bad = |why: String| {
        BadInput(format!(
            "--seeds {s:?}: {why} (expected a range 42..51, a list 42,43 or one seed 42; each seed once)"
        ))
    };
    let num = |t: &str| {
        t.trim()
            .parse::<u64>()
            .map_err(|_| bad(format!("{:?} is not a non-negative integer", t.trim())))
    };
    let mut out: Vec<u64> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for item in s.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(bad("empty item".into()));
        }
        let (a, b) = match item.split_once("..") {
            Some((a, b)) => {
                let b = b.strip_prefix('=').unwrap_or(b);
                let (a, b) = (num(a)?, num(b)?);
                if b < a {
                    return Err(bad(format!("range {a}..{b} is empty")));
                }
                (a, b)
            }
            None => {
                let a = num(item)?;
                (a, a)
            }
        };
        if b - a >= (MAX_SEEDS - out.len()) as u64 {
            return Err(bad(format!("more than {MAX_SEEDS} seeds")));
        }
        for seed in a..=b {
            if !seen.insert(seed) {
                return Err(bad(format!("seed {seed} is given twice")));
            }
            out.push(seed);
        }
    }
    Ok(out)
}

/// The picture formats `--plot` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PlotFormat {
    Svg,
    Png,
}

/// Checks the `--plot` / `--plot-png` files before any work is done: a known extension,
/// a directory that exists, not a directory or special file itself, each file once.
fn plot_targets(args: &Args) -> Result<Vec<(PathBuf, PlotFormat)>, BadInput> {
    let mut out: Vec<(PathBuf, PlotFormat)> = Vec::new();
    let given = args
        .plot
        .iter()
        .map(|p| ("--plot", p))
        .chain(args.plot_png.iter().map(|p| ("--plot-png", p)));
    for (flag, p) in given {
        let shown = p.display();
        let ext = p
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        let format = match (flag, ext.as_deref()) {
            ("--plot", Some("svg")) => PlotFormat::Svg,
            (_, Some("png")) => PlotFormat::Png,
            ("--plot", _) => {
                return Err(BadInput(format!(
                    "--plot {shown}: unknown picture format; expected a file name ending in .svg or .png"
                )));
            }
            _ => {
                return Err(BadInput(format!(
                    "--plot-png {shown}: expected a file name ending in .png (use --plot for .svg)"
                )));
            }
        };
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => {
                return Err(BadInput(format!(
                    "{flag} {shown}: is a directory; expected a file name such as {}",
                    p.join(if format == PlotFormat::Svg {
                        "alloc.svg"
                    } else {
                        "alloc.png"
                    })
                    .display()
                )));
            }
            Ok(m) if !m.is_file() => {
                return Err(BadInput(format!(
                    "{flag} {shown}: exists and is not a regular file; expected a file to create or replace"
                )));
            }
            _ => {}
        }
        let parent = p.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = parent
            && !dir.is_dir()
        {
            return Err(BadInput(format!(
                "{flag} {shown}: directory {} does not exist",
                dir.display()
            )));
        }
        let key = std::path::absolute(p).unwrap_or_else(|_| p.clone());
        if out
            .iter()
            .any(|(q, _)| std::path::absolute(q).unwrap_or_else(|_| q.clone()) == key)
        {
            return Err(BadInput(format!(
                "{flag} {shown}: the same file is given twice; give each picture its own file"
            )));
        }
        out.push((p.clone(), format));
    }
    Ok(out)
}

/// The policies asked for: each known, each once, none empty; all of them by default.
fn policy_names(given: &[String]) -> Result<Vec<String>, BadInput> {
    let known = || policies::NAMES.join(", ");
    if given.is_empty() {
        return Ok(policies::NAMES.iter().map(|s| (*s).to_string()).collect());
    }
    let mut names: Vec<String> = Vec::new();
    for n in given.iter().map(|s| s.trim()) {
        if n.is_empty() {
            return Err(BadInput(format!(
                "--policy: empty item; expected policy names separated by commas: {}",
                known()
            )));
        }
        if !policies::NAMES.contains(&n) {
            return Err(BadInput(format!(
                "--policy {n:?}: unknown policy; known: {}",
                known()
            )));
        }
        if names.iter().any(|m| m == n) {
            return Err(BadInput(format!(
                "--policy: {n} is given twice; name each policy once"
            )));
        }
        names.push(n.to_string());
    }
    Ok(names)
}

/// The smallest and largest `--tune`.
const TUNE_RANGE: (f64, f64) = (0.1, 10.0);

/// Rounds for output: 4 decimals is well below any seed-to-seed spread.
fn r4(v: f64) -> f64 {
    (v * 1e4).round() / 1e4
}

fn stat_json(s: &Stat) -> Value {
    json!({"mean": r4(s.mean), "sd": r4(s.sd), "n": s.n})
}

fn column_json(col: &[Option<Stat>]) -> Value {
    let mut m = Map::new();
    for (k, s) in col.iter().enumerate() {
        if let Some(s) = s {
            m.insert(k.to_string(), stat_json(s));
        }
    }
    Value::Object(m)
}

/// `mean ± sd`, with `(n/N)` when fewer than all `of` seeds have data there; the mean
/// alone when one seed has data (a single run has no spread).
fn pm(s: Option<&Stat>, decimals: usize, of: usize) -> String {
    match s {
        Some(s) => {
            let mut t = format!("{:.*}", decimals, s.mean);
            if s.n >= 2 {
                t.push_str(&format!(" ± {:.*}", decimals, s.sd));
            }
            if s.n < of {
                t.push_str(&format!(" ({}/{of})", s.n));
            }
            t
        }
        None => "-".into(),
    }
}

fn file_stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

fn seeds_text(seeds: &[u64]) -> String {
    let contiguous = seeds.windows(2).all(|w| w[1] == w[0] + 1);
    match seeds {
        [one] => one.to_string(),
        [first, .., last] if contiguous => format!("{first}..{last}"),
        _ => seeds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(","),
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (lo, hi) = TUNE_RANGE;
    if !(args.tune.is_finite() && (lo..=hi).contains(&args.tune)) {
        return Err(BadInput(format!(
            "--tune {}: expected a factor from {lo} to {hi}, such as 1.3 (the trace is inflated or pruned to that multiple of the cluster's GPU capacity)",
            args.tune
        ))
        .into());
    }
    if args.threads == Some(0) {
        return Err(BadInput("--threads 0: expected at least 1".into()).into());
    }
    if args.nodes.as_os_str() == "-" && args.pods.as_os_str() == "-" {
        return Err(BadInput(
            "--nodes - and --pods -: standard input can hold only one of the two lists; give the other as a file".into(),
        )
        .into());
    }
    let seeds = parse_seeds(&args.seeds)?;
    let names = policy_names(&args.policy)?;
    let plots = plot_targets(&args)?;
    let map = args
        .topology_map
        .as_deref()
        .map(TopologyMap::parse)
        .transpose()?;
    let mut nodes = csv::read_nodes(&args.nodes)?;
    let trace = csv::read_pods(&args.pods)?;
    let total_gpus: u64 = nodes.iter().map(|n| u64::from(n.gpus)).sum();
    if total_gpus == 0 {
        return Err(BadInput(format!(
            "{}: no GPUs in the node list (use a list with a `gpu` column above 0, e.g. openb_node_list_gpu_node.csv)",
            args.nodes.display()
        ))
        .into());
    }
    let typical = TypicalPods::from_trace(&trace, 0.95);
    if let Some(m) = &map {
        let covered = m.apply(&mut nodes);
        tracing::info!(covered, nodes = nodes.len(), "topology map applied");
    }
    let jobs: Vec<Job> = names
        .iter()
        .flat_map(|p| {
            seeds.iter().map(move |&seed| Job {
                policy: p.clone(),
                seed,
            })
        })
        .collect();
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let started = std::time::Instant::now();
    let runs = run_all(
        &Inputs {
            nodes: &nodes,
            trace: &trace,
            typical: &typical,
            tune: args.tune,
        },
        &jobs,
        threads,
    )?;
    tracing::info!(
        runs = runs.len(),
        secs = format_args!("{:.2}", started.elapsed().as_secs_f64()),
        "simulation done"
    );
    let summaries: Vec<(String, PolicySummary)> = names
        .iter()
        .map(|n| {
            let of: Vec<&metrics::RunSummary> = jobs
                .iter()
                .zip(&runs)
                .filter(|(j, _)| &j.policy == n)
                .map(|(_, r)| r)
                .collect();
            (n.clone(), PolicySummary::of(&of))
        })
        .collect();
    let limits = if args.bound {
        let t0 = std::time::Instant::now();
        let l =
            linkwise_sim::bound::limits(&nodes, &trace, &typical, args.tune, &seeds, 100, threads)?;
        tracing::info!(
            seeds = l.len(),
            secs = format_args!("{:.2}", t0.elapsed().as_secs_f64()),
            "bounds done"
        );
        Some(l)
    } else {
        None
    };
    let trace_name = file_stem(&args.pods);
    let report = Report {
        trace: &trace_name,
        seeds: &seeds,
        tune: args.tune,
        total_gpus,
        nodes: nodes.len(),
        pods: trace.len(),
        islands: map.is_some(),
        summaries: &summaries,
        limits: limits.as_deref(),
    };
    match args.output {
        Output::Json => crate::emitln!("{}", serde_json::to_string_pretty(&report.json())?)?,
        Output::Table => crate::emit(&report.table())?,
    }
    if !plots.is_empty() {
        let chart = report.chart();
        for (p, format) in &plots {
            let bytes = match format {
                PlotFormat::Svg => chart.svg().into_bytes(),
                PlotFormat::Png => chart.png()?,
            };
            linkwise_fsio::write_atomic(p, &bytes)?;
            tracing::info!(path = %p.display(), bytes = bytes.len(), "wrote plot");
        }
    }
    Ok(())
}

/// Everything the outputs show.
struct Report<'a> {
    trace: &'a str,
    seeds: &'a [u64],
    tune: f64,
    total_gpus: u64,
    nodes: usize,
    pods: usize,
    islands: bool,
    summaries: &'a [(String, PolicySummary)],
    limits: Option<&'a [linkwise_sim::bound::Limit]>,
}

// === impl Report ===

impl Report<'_> {
    fn json(&self) -> Value {
        let mut policies = Map::new();
        for (name, s) in self.summaries {
            policies.insert(
                name.clone(),
                json!({
                    "alloc_ratio": column_json(&s.alloc),
                    "frag_amount": column_json(&s.frag),
                    "frag_rate": column_json(&s.rate),
                    "unallocated_gpus": column_json(&s.unalloc),
                    "failed_pods": stat_json(&s.failed),
                    "single_island_share": if self.islands {
                        s.single_island_share.as_ref().map_or(Value::Null, stat_json)
                    } else {
                        Value::Null
                    },
                }),
            );
        }
        let mut out = json!({
            "trace": self.trace,
            "seeds": self.seeds,
            "tune": self.tune,
            "totalGpus": self.total_gpus,
            "nodes": self.nodes,
            "pods": self.pods,
            "policies": policies,
        });
        if let Some(limits) = self.limits {
            let (bound, packing) = self.limit_stats(limits);
            out["limit"] = json!({
                "arrivedPct": 100,
                "method": "bound: LP over node classes, pod types and GPU share patterns, solved as its dual with cutting planes (docs/placement.md); bestPacking: the best of the offline and online packings tried",
                "bound": bound.as_ref().map_or(Value::Null, stat_json),
                "bestPacking": packing.as_ref().map_or(Value::Null, stat_json),
                "perSeed": limits.iter().map(|l| json!({
                    "seed": l.seed,
                    "pods": l.pods,
                    "arrivedMilli": l.arrived_milli,
                    "boundMilli": l.bound_milli,
                    "bestPackingMilli": l.packing_milli,
                    "bestPackingBy": l.packing_by,
                    "nodeClasses": l.programme.classes,
                    "podTypes": l.programme.types,
                    "variables": l.programme.variables,
                    "patterns": l.programme.patterns,
                    "converged": l.programme.converged,
                })).collect::<Vec<_>>(),
            });
        }
        out
    }

    /// The bound and the best packing as allocation ratios (%) over the seeds.
    fn limit_stats(&self, limits: &[linkwise_sim::bound::Limit]) -> (Option<Stat>, Option<Stat>) {
        let cap = self.total_gpus as f64 * 1000.0;
        let pct = |m: u64| 100.0 * m as f64 / cap;
        (
            Stat::of(
                &limits
                    .iter()
                    .map(|l| pct(l.bound_milli))
                    .collect::<Vec<_>>(),
            ),
            Stat::of(
                &limits
                    .iter()
                    .map(|l| pct(l.packing_milli))
                    .collect::<Vec<_>>(),
            ),
        )
    }

    fn table(&self) -> String {
        let at = |col: &[Option<Stat>], k: usize| col.get(k).copied().flatten();
        let fgd = self
            .summaries
            .iter()
            .find(|(n, _)| n == "fgd")
            .and_then(|(_, s)| at(&s.unalloc, 100));
        let mut header: Vec<String> = [
            "policy",
            "alloc% @100",
            "alloc% @130",
            "unalloc GPUs @100",
            "frag% @100",
            "frag rate% @100",
            "failed pods",
        ]
        .map(String::from)
        .to_vec();
        if self.islands {
            header.push("single-island".into());
        }
        if fgd.is_some() {
            header.push("unalloc / fgd".into());
        }
        let mut rows = vec![header];
        for (name, s) in self.summaries {
            let of = self.seeds.len();
            let mut row = vec![
                name.clone(),
                pm(at(&s.alloc, 100).as_ref(), 2, of),
                pm(at(&s.alloc, MAX_K).as_ref(), 2, of),
                pm(at(&s.unalloc, 100).as_ref(), 0, of),
                pm(at(&s.frag, 100).as_ref(), 2, of),
                pm(at(&s.rate, 100).as_ref(), 1, of),
                pm(Some(&s.failed), 0, of),
            ];
            if self.islands {
                row.push(match &s.single_island_share {
                    Some(st) if st.n >= 2 => {
                        format!("{:.1}% ± {:.1}", 100.0 * st.mean, 100.0 * st.sd)
                    }
                    Some(st) => format!("{:.1}%", 100.0 * st.mean),
                    None => "-".into(),
                });
            }
            if let Some(f) = fgd {
                row.push(match at(&s.unalloc, 100) {
                    Some(u) if f.mean > 0.0 => format!("{:.2}×", u.mean / f.mean),
                    _ => "-".into(),
                });
            }
            rows.push(row);
        }
        if let Some(limits) = self.limits {
            let (bound, packing) = self.limit_stats(limits);
            let of = self.seeds.len();
            let gpus = |s: &Option<Stat>| {
                s.map(|s| Stat {
                    mean: self.total_gpus as f64 * (1.0 - s.mean / 100.0),
                    sd: self.total_gpus as f64 * s.sd / 100.0,
                    n: s.n,
                })
            };
            for (name, st) in [("best packing", &packing), ("bound", &bound)] {
                let mut row = vec![
                    name.to_string(),
                    pm(st.as_ref(), 2, of),
                    "-".into(),
                    pm(gpus(st).as_ref(), 0, of),
                ];
                row.resize(rows[0].len(), "-".into());
                rows.push(row);
            }
        }
        format!(
            "trace {}: {} pods on {} nodes, {} GPUs; tune {}; seeds {} ({} run{} per policy)\n{}",
            self.trace,
            self.pods,
            self.nodes,
            self.total_gpus,
            self.tune,
            seeds_text(self.seeds),
            self.seeds.len(),
            if self.seeds.len() == 1 { "" } else { "s" },
            crate::render::columns(&rows)
        )
    }

    fn chart(&self) -> Chart {
        let series: Vec<Series> = self
            .summaries
            .iter()
            .map(|(name, s)| Series {
                name: name.clone(),
                points: s
                    .alloc
                    .iter()
                    .enumerate()
                    .filter_map(|(k, st)| st.map(|st| (k as f64, st.mean, st.sd)))
                    .collect(),
            })
            .collect();
        let spread = self.seeds.len() > 1;
        let (x, y) = plot::auto_axes(&series, (0.0, MAX_K as f64), (0.0, 100.0), spread);
        let runs = if spread {
            format!(
                "seeds {} (mean and ± 1 sd over {} runs)",
                seeds_text(self.seeds),
                self.seeds.len()
            )
        } else {
            format!("seed {} (one run per policy)", seeds_text(self.seeds))
        };
        let zoomed = if x.0 > 0.0 || y.0 > 0.0 || y.1 < 100.0 {
            "; axes zoomed to where the policies differ"
        } else {
            ""
        };
        Chart {
            title: format!("GPU allocation ratio - {}", self.trace),
            subtitle: format!(
                "{} GPUs, {} nodes; tune {}; {runs}{zoomed}",
                self.total_gpus, self.nodes, self.tune,
            ),
            x_label: "Arrived GPU request (% of cluster GPU capacity)".into(),
            y_label: "GPU allocation ratio (%)".into(),
            x,
            y,
            spread,
            series,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_parse_ranges_lists_and_single_values() {
        assert_eq!(parse_seeds("42..51").map(|v| v.len()).ok(), Some(10));
        assert_eq!(parse_seeds("42..=44").ok(), Some(vec![42, 43, 44]));
        assert_eq!(parse_seeds("42,43").ok(), Some(vec![42, 43]));
        assert_eq!(parse_seeds("7").ok(), Some(vec![7]));
        assert_eq!(parse_seeds("1,3..4").ok(), Some(vec![1, 3, 4]));
        for bad in [
            "",
            "x",
            "5..3",
            "1,,2",
            "-1",
            "1..x",
            "1,3..4,1",
            "1..5,3",
            "0..100000",
        ] {
            assert!(parse_seeds(bad).is_err(), "{bad}");
        }
        assert!(parse_seeds("0..99999").is_ok());
        assert!(parse_seeds("0..50000,60000..110000").is_err());
    }

    #[test]
    fn one_run_shows_no_spread() {
        let one = Stat {
            mean: 88.4,
            sd: 0.0,
            n: 1,
        };
        assert_eq!(pm(Some(&one), 2, 1), "88.40");
        assert_eq!(pm(Some(&one), 2, 3), "88.40 (1/3)");
        let two = Stat {
            mean: 88.4,
            sd: 0.5,
            n: 2,
        };
        assert_eq!(pm(Some(&two), 1, 3), "88.4 ± 0.5 (2/3)");
    }
}
