//! `linkwise alloc`: choose GPUs on a node (or an NVLink domain), with an explanation.

use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::time::Instant;

use linkwise_core::alloc::{
    AllocError, AllocRequest, Allocation, Allocator, FracPlacement, MigProfile, MigState, Policy,
    Scoring, place_fraction, place_mig,
};
use linkwise_core::{CpuSet, GpuId, Topology};
use serde::Deserialize;

use super::Resolver;
use crate::exit::{BadInput, Infeasible};

/// Choose the best GPUs for a request: NVLink- and NUMA-aware, fragmentation-aware.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Devices (--available, --must-include, --used) are GPU indices (3), labels in any case (GPU3, gpu3; \
HOST/GPU3 or HOST/3 on multi-host sources, e.g. nvl72-tray01/GPU3), ranges (0-3, GPU4-7, HOST/0-3), ids, UUIDs or PCI \
bus ids in the kernel's or nvidia-smi's form (0000:1b:00.0, 00000000:1B:00.0), comma-separated. On topologies spanning \
hosts a bare number is a position in topology order, and JSON \"devices\" answers positions too, so answers read back \
as input. Unhealthy GPUs are never chosen unless named with --allow-unhealthy.\n\n\
Exit codes: 0 an answer, 1 the request cannot be met (the reason is printed), 2 bad input.\n\n\
Examples:\n  linkwise alloc --source profile:dgx1-v100 --count 2 --explain\n  \
linkwise alloc --source profile:dgx1-v100 --count 1 --available 0,1,2,4,5,6,7\n  \
linkwise alloc --source profile:dgx-h100 --count 4 --numa 1 -o json\n  \
linkwise alloc --source profile:nvl72 --count 16 --policy pack\n  \
linkwise alloc --source profile:dgx1-v100 --count 4 --score prior-art-pairwise\n  \
linkwise alloc --source profile:pcie-8gpu --milli 500 --used 0:250,3:750\n  \
linkwise alloc --source profile:dgx-h100 --mig 3g.40gb --mig-used 0:0-3\n  \
linkwise alloc --source profile:dgx-h100 --batch requests.jsonl > answers.jsonl"
)]
pub struct Args {
    #[arg(long, default_value = "auto", help = super::SOURCE_HELP)]
    source: String,
    /// Number of whole GPUs to choose.
    #[arg(short = 'k', long, required_unless_present_any = ["milli", "mig", "batch"])]
    count: Option<usize>,
    /// GPUs that may be chosen (default: every healthy GPU).
    #[arg(long, value_delimiter = ',')]
    available: Vec<String>,
    /// GPUs that must be in the answer.
    #[arg(long, value_delimiter = ',')]
    must_include: Vec<String>,
    /// What to optimise for.
    #[arg(long, value_enum, default_value_t = PolicyArg::Default)]
    policy: PolicyArg,
    /// How to score sets: linkwise's objective, or the prior art's pair weights.
    #[arg(long = "score", value_enum, default_value_t = ScoreArg::Default)]
    scoring: ScoreArg,
    /// Prefer GPUs local to this NUMA node.
    #[arg(long)]
    numa: Option<u32>,
    /// Prefer GPUs close to these CPUs (cpulist, e.g. 0-15,32-47).
    #[arg(long)]
    cpus: Option<String>,
    /// Place a fractional share of one GPU, in milli-GPU (1..1000).
    #[arg(long, conflicts_with_all = ["count", "mig", "must_include", "numa", "cpus", "policy", "scoring"])]
    milli: Option<u32>,
    /// Milli-GPU already in use, as GPU:MILLI pairs (with --milli).
    #[arg(long, value_delimiter = ',', requires = "milli")]
    used: Vec<String>,
    /// Place a MIG profile (1g, 2g, 3g, 4g, 7g; e.g. 3g.40gb) on the MIG GPUs.
    #[arg(long, conflicts_with_all = ["count", "milli", "must_include", "numa", "cpus", "policy", "scoring"])]
    mig: Option<String>,
    /// MIG slices in use, as GPU:SLICES (slices 0-6 as a list, e.g. 0:0-3); repeatable.
    #[arg(long, requires = "mig")]
    mig_used: Vec<String>,
    /// Answer one JSON request per line of FILE (- for stdin) with one JSON line each.
    #[arg(long, conflicts_with_all = ["count", "milli", "mig", "available", "must_include", "numa", "cpus", "policy", "scoring"])]
    batch: Option<PathBuf>,
    #[command(flatten)]
    nvlink: super::NvlinkArgs,
    /// Hand out GPUs marked unhealthy when --available or --must-include names them
    /// (refused otherwise; without --available unhealthy GPUs are never chosen).
    #[arg(long)]
    allow_unhealthy: bool,
    /// Say why this set won.
    #[arg(long)]
    explain: bool,
    /// Stop searching after this long and answer the best set found so far (seconds, or
    /// with a unit: 500ms, 2s; 0 = no limit). Exact searches (every request on a node of
    /// up to 16 GPUs) always finish; --explain and -o json say when the optimum was not proven.
    #[arg(long, default_value = "2s", value_parser = parse_time_budget, value_name = "TIME")]
    time_budget: Budget,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum PolicyArg {
    Default,
    Pack,
    Spread,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum ScoreArg {
    Default,
    // The prior art's pair weights; `legacy-pairwise`, its former name, stays accepted (hidden).
    #[value(alias = "legacy-pairwise")]
    #[serde(alias = "legacy-pairwise")]
    PriorArtPairwise,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Output {
    Table,
    Json,
}

impl From<PolicyArg> for Policy {
    fn from(p: PolicyArg) -> Self {
        match p {
            PolicyArg::Default => Policy::Default,
            PolicyArg::Pack => Policy::Pack,
            PolicyArg::Spread => Policy::Spread,
        }
    }
}

impl From<ScoreArg> for Scoring {
    fn from(s: ScoreArg) -> Self {
        match s {
            ScoreArg::Default => Scoring::Default,
            ScoreArg::PriorArtPairwise => Scoring::PriorArtPairwise,
        }
    }
}

/// One request, from flags or a batch line.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Line {
    count: Option<usize>,
    #[serde(default)]
    available: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    must_include: Vec<serde_json::Value>,
    policy: Option<PolicyArg>,
    score: Option<ScoreArg>,
    numa: Option<u32>,
    cpus: Option<String>,
    milli: Option<u32>,
    #[serde(default)]
    used: Vec<(serde_json::Value, u32)>,
}

fn value_str(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A whole-GPU request as typed: device references still unresolved.
struct Wanted<'a> {
    count: usize,
    available: Option<&'a [String]>,
    must: &'a [String],
    policy: Policy,
    scoring: Scoring,
    numa: Option<u32>,
    cpus: Option<&'a str>,
}

fn whole_request(
    rs: &Resolver,
    al: &Allocator,
    lim: &Limits,
    w: Wanted<'_>,
) -> Result<AllocRequest, BadInput> {
    let Wanted {
        count,
        available,
        must,
        policy,
        scoring,
        numa,
        cpus,
    } = w;
    // No list means every healthy GPU; an explicit list must name at least one.
    let available = match available {
        Some(list) => {
            let ids = rs.all(list)?;
            if ids.is_empty() {
                return Err(BadInput(
                    "--available names no GPU; omit it to choose among every healthy GPU".into(),
                ));
            }
            lim.usable("--available", &ids)?;
            ids
        }
        None => al.healthy(),
    };
    let must_include = rs.all(must)?;
    lim.usable("--must-include", &must_include)?;
    if count == 0 {
        return Err(BadInput("--count must be at least 1".into()));
    }
    if count > lim.gpus {
        return Err(BadInput(format!(
            "--count {count}: {} has {} GPU(s)",
            lim.source, lim.gpus
        )));
    }
    if must_include.len() > count {
        return Err(BadInput(format!(
            "--must-include names {} GPUs but --count is {count}",
            must_include.len()
        )));
    }
    if let Some(m) = must_include.iter().find(|m| !available.contains(m)) {
        return Err(BadInput(format!(
            "--must-include {} is not among the available GPUs{}",
            lim.label(m),
            if lim.healthy(m) {
                ""
            } else {
                " (it is unhealthy)"
            }
        )));
    }
    if let Some(n) = numa {
        lim.numa(n)?;
    }
    let cpus = cpus
        .map(|c| {
            let set = c
                .parse::<CpuSet>()
                .map_err(|e| BadInput(format!("--cpus: {e}")))?;
            lim.cpus(&set)?;
            Ok::<_, BadInput>(set)
        })
        .transpose()?;
    Ok(AllocRequest {
        available,
        must_include,
        size: count,
        policy,
        scoring,
        numa,
        cpus,
    })
}

/// What a request may name on this topology: checked before the allocator runs, so
/// impossible values are bad input (exit 2) rather than a quiet answer.
struct Limits {
    source: String,
    gpus: usize,
    /// Unhealthy GPUs and why.
    unhealthy: std::collections::HashMap<GpuId, String>,
    labels: std::collections::HashMap<GpuId, String>,
    allow_unhealthy: bool,
    /// NUMA nodes the topology knows (hosts' nodes, GPUs' nodes and memory nodes).
    numa: std::collections::BTreeSet<u32>,
    /// CPUs the topology knows (NUMA node cpulists, GPU affinities); `None` when unknown.
    cpus: Option<CpuSet>,
}

impl Limits {
    fn new(topo: &Topology, allow_unhealthy: bool) -> Self {
        let multi = topo.is_multi_host();
        let mut numa: std::collections::BTreeSet<u32> = topo
            .hosts
            .iter()
            .flat_map(|h| h.numa_nodes.iter().map(|n| n.id))
            .collect();
        numa.extend(topo.gpus.iter().filter_map(|g| g.numa_node));
        numa.extend(topo.gpus.iter().filter_map(|g| g.gpu_numa_id));
        let cpus = topo
            .hosts
            .iter()
            .flat_map(|h| h.numa_nodes.iter().map(|n| &n.cpus))
            .chain(topo.gpus.iter().filter_map(|g| g.cpu_affinity.as_ref()))
            .fold(None, |acc: Option<CpuSet>, c| {
                Some(acc.map_or_else(|| c.clone(), |a| a.union(c)))
            });
        Limits {
            source: topo.source.clone(),
            gpus: topo.gpus.len(),
            unhealthy: topo
                .gpus
                .iter()
                .filter_map(|g| match &g.health {
                    linkwise_core::Health::Unhealthy { reason } => {
                        Some((g.id.clone(), reason.clone()))
                    }
                    linkwise_core::Health::Healthy => None,
                })
                .collect(),
            labels: topo
                .gpus
                .iter()
                .map(|g| (g.id.clone(), g.label(multi)))
                .collect(),
            allow_unhealthy,
            numa,
            cpus,
        }
    }

    /// An explicit --available list for a share or MIG slice: not empty, usable.
    fn listed(&self, rs: &Resolver, list: &[String]) -> Result<Vec<GpuId>, BadInput> {
        let ids = rs.all(list)?;
        if ids.is_empty() {
            return Err(BadInput(
                "--available names no GPU; omit it to choose among every healthy GPU".into(),
            ));
        }
        self.usable("--available", &ids)?;
        Ok(ids)
    }

    fn label(&self, id: &GpuId) -> String {
        self.labels.get(id).cloned().unwrap_or_else(|| id.0.clone())
    }

    fn healthy(&self, id: &GpuId) -> bool {
        !self.unhealthy.contains_key(id)
    }

    /// A list of devices: no duplicates, no unhealthy device unless allowed.
    fn usable(&self, flag: &str, ids: &[GpuId]) -> Result<(), BadInput> {
        let mut seen = std::collections::HashSet::new();
        for id in ids {
            if !seen.insert(id) {
                return Err(BadInput(format!(
                    "{flag} names {} ({id}) twice",
                    self.label(id)
                )));
            }
            if let Some(why) = self.unhealthy.get(id)
                && !self.allow_unhealthy
            {
                return Err(BadInput(format!(
                    "{flag}: {} ({id}) is unhealthy ({why}); pass --allow-unhealthy to hand it out anyway",
                    self.label(id)
                )));
            }
        }
        Ok(())
    }

    fn numa(&self, n: u32) -> Result<(), BadInput> {
        if self.numa.contains(&n) {
            return Ok(());
        }
        let known: Vec<String> = self.numa.iter().map(u32::to_string).collect();
        Err(BadInput(if known.is_empty() {
            format!("--numa {n}: {} records no NUMA nodes", self.source)
        } else {
            format!(
                "--numa {n}: {} has NUMA node(s) {}",
                self.source,
                known.join(", ")
            )
        }))
    }

    fn cpus(&self, set: &CpuSet) -> Result<(), BadInput> {
        if set.is_empty() {
            return Err(BadInput("--cpus names no CPU".into()));
        }
        let Some(known) = &self.cpus else {
            return Err(BadInput(format!(
                "--cpus: {} records no CPU lists to compare with",
                self.source
            )));
        };
        let missing = CpuSet::from_cpus(set.cpus().iter().copied().filter(|c| !known.contains(*c)));
        if missing.is_empty() {
            Ok(())
        } else {
            Err(BadInput(format!(
                "--cpus: CPU(s) {missing} are not on {} (its CPUs: {known})",
                self.source
            )))
        }
    }
}

fn parse_used(rs: &Resolver, list: &[String]) -> Result<Vec<(GpuId, u32)>, BadInput> {
    list.iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            let (g, m) = s
                .rsplit_once(':')
                .ok_or_else(|| BadInput(format!("--used {s:?}: expected GPU:MILLI")))?;
            let m: u32 = m
                .trim()
                .parse()
                .map_err(|_| BadInput(format!("--used {s:?}: {m:?} is not a number")))?;
            Ok((rs.one(g)?, m))
        })
        .collect::<Result<Vec<_>, BadInput>>()
        .and_then(|used| {
            for (i, (g, _)) in used.iter().enumerate() {
                if used[..i].iter().any(|(h, _)| h == g) {
                    return Err(BadInput(format!(
                        "--used names {g} twice; give each GPU's total share once"
                    )));
                }
            }
            Ok(used)
        })
}

fn parse_mig_used(rs: &Resolver, list: &[String]) -> Result<Vec<(GpuId, MigState)>, BadInput> {
    let mut out: Vec<(GpuId, MigState)> = Vec::new();
    for s in list {
        let (g, slices) = s.rsplit_once(':').ok_or_else(|| {
            BadInput(format!("--mig-used {s:?}: expected GPU:SLICES, e.g. 0:0-3"))
        })?;
        let set: CpuSet = slices
            .parse()
            .map_err(|e| BadInput(format!("--mig-used {s:?}: {e}")))?;
        if set.cpus().iter().any(|&c| c > 6) {
            return Err(BadInput(format!("--mig-used {s:?}: slices are 0..6")));
        }
        let mask = set.cpus().iter().fold(0u8, |m, &c| m | (1 << c));
        let id = rs.one(g)?;
        match out.iter_mut().find(|(i, _)| *i == id) {
            Some((_, st)) => st.0 |= mask,
            None => out.push((id, MigState(mask))),
        }
    }
    Ok(out)
}

fn answer_json(
    topo: &Topology,
    al: &Allocator,
    req: &AllocRequest,
    a: &Allocation,
) -> serde_json::Value {
    let multi = topo.is_multi_host();
    let gpus: Vec<&linkwise_core::Gpu> = a.positions.iter().map(|&p| &topo.gpus[p]).collect();
    // Numbers that read back as input: indices on one host, positions across hosts.
    let numbers: Vec<usize> = if multi {
        a.positions.clone()
    } else {
        gpus.iter()
            .map(|g| usize::try_from(g.index).unwrap_or(usize::MAX))
            .collect()
    };
    serde_json::json!({
        "devices": numbers,
        "ids": a.devices,
        "labels": gpus.iter().map(|g| g.label(multi)).collect::<Vec<_>>(),
        "score": a.score,
        "exact": a.exact,
        "timedOut": a.timed_out,
        "explain": al.explain(a, req),
    })
}

fn frac_json(topo: &Topology, p: &FracPlacement, what: serde_json::Value) -> serde_json::Value {
    let g = &topo.gpus[p.position];
    let number = if topo.is_multi_host() {
        p.position
    } else {
        usize::try_from(g.index).unwrap_or(usize::MAX)
    };
    serde_json::json!({
        "devices": [number],
        "ids": [p.device],
        "labels": [g.label(topo.is_multi_host())],
        "placement": what,
        "usedAfter": p.used_after,
        "migStart": p.mig_start,
        "explain": p.reason,
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let topo = super::discover_published(&args.source, args.nvlink, "an allocation")?;
    let al = Allocator::new(&topo);
    let rs = Resolver::new(&topo);
    let lim = Limits::new(&topo, args.allow_unhealthy);
    if let Some(path) = &args.batch {
        return batch(&topo, &rs, &al, &lim, path, args.time_budget);
    }
    if let Some(milli) = args.milli {
        let available = if args.available.is_empty() {
            al.healthy()
        } else {
            lim.listed(&rs, &args.available)?
        };
        let used = parse_used(&rs, &args.used)?;
        let p = place_fraction(&al, &available, &used, milli).map_err(|e| match e {
            linkwise_core::alloc::FracError::NoFit { .. } => {
                anyhow::Error::new(Infeasible(e.to_string()))
            }
            other => anyhow::Error::new(BadInput(other.to_string())),
        })?;
        return print_frac(&topo, &p, serde_json::json!({"milli": milli}), args.output);
    }
    if let Some(profile) = &args.mig {
        let prof = MigProfile::parse(profile).ok_or_else(|| {
            BadInput(format!(
                "--mig {profile:?}: expected 1g, 2g, 3g, 4g or 7g (e.g. 3g.40gb)"
            ))
        })?;
        let available = if args.available.is_empty() {
            let mig: Vec<GpuId> = topo
                .gpus
                .iter()
                .filter(|g| {
                    g.health.is_healthy() && g.mig_mode != Some(linkwise_core::MigMode::Unsupported)
                })
                .map(|g| g.id.clone())
                .collect();
            mig
        } else {
            lim.listed(&rs, &args.available)?
        };
        let state = parse_mig_used(&rs, &args.mig_used)?;
        let p = place_mig(&al, &available, &state, prof).map_err(|e| match e {
            linkwise_core::alloc::FracError::NoFit { .. } => {
                anyhow::Error::new(Infeasible(e.to_string()))
            }
            other => anyhow::Error::new(BadInput(other.to_string())),
        })?;
        return print_frac(
            &topo,
            &p,
            serde_json::json!({"mig": format!("{}g", prof.slices)}),
            args.output,
        );
    }
    let count = args.count.unwrap_or(1);
    let req = whole_request(
        &rs,
        &al,
        &lim,
        Wanted {
            count,
            available: (!args.available.is_empty()).then_some(args.available.as_slice()),
            must: &args.must_include,
            policy: args.policy.into(),
            scoring: args.scoring.into(),
            numa: args.numa,
            cpus: args.cpus.as_deref(),
        },
    )?;
    let a = allocate_timed(&al, &req, args.time_budget).map_err(alloc_error)?;
    if a.timed_out && !args.explain && matches!(args.output, Output::Table) {
        eprintln!(
            "linkwise alloc: stopped at the time budget after {} candidate sets: the best set found, optimum not proven (--time-budget 0 searches to the end)",
            a.evaluated
        );
    }
    match args.output {
        Output::Json => crate::emitln!(
            "{}",
            serde_json::to_string_pretty(&answer_json(&topo, &al, &req, &a))?
        )?,
        Output::Table => {
            let multi = topo.is_multi_host();
            let names: Vec<String> = a
                .positions
                .iter()
                .map(|&p| topo.gpus[p].label(multi))
                .collect();
            crate::emitln!("{}", names.join(" "))?;
            for &p in &a.positions {
                let g = &topo.gpus[p];
                crate::emitln!("  {}  {}", g.label(multi), g.id)?;
            }
            let s = &a.score;
            let links = if a.positions.len() > 1 {
                format!(
                    ", ring bottleneck {}, total {}",
                    crate::render::gbps(s.bottleneck_mbps),
                    crate::render::gbps(s.total_mbps)
                )
            } else {
                String::new()
            };
            crate::emitln!(
                "score: islands {}, hosts {}{links}, torn {}, broken islands/hosts {}{}{}",
                s.islands,
                s.hosts,
                crate::render::gbps(s.cut_mbps),
                s.opened,
                if req.numa.is_some() || req.cpus.is_some() {
                    format!(", NUMA misses {}", s.numa_misses)
                } else {
                    String::new()
                },
                if req.scoring == Scoring::PriorArtPairwise {
                    format!(", prior-art pairwise {}", s.prior_art_pairwise)
                } else {
                    String::new()
                },
            )?;
            if args.explain {
                crate::emitln!("{}", al.explain(&a, &req))?;
            }
        }
    }
    Ok(())
}

/// `--time-budget`: how long one whole-GPU request may search (`None`: no limit).
#[derive(Debug, Clone, Copy)]
struct Budget(Option<std::time::Duration>);

fn parse_time_budget(s: &str) -> Result<Budget, String> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else {
        (t.strip_suffix('s').unwrap_or(t), 1.0)
    };
    let secs = num
        .trim()
        .parse::<f64>()
        .ok()
        .map(|v| v * scale)
        .filter(|v| v.is_finite() && (0.0..=86_400.0).contains(v))
        .ok_or_else(|| {
            format!("{s:?}: expected seconds (2, 0.5) or a duration (500ms, 2s) up to a day; 0 means no limit")
        })?;
    Ok(Budget(
        (secs > 0.0).then(|| std::time::Duration::from_secs_f64(secs)),
    ))
}

/// Answers a whole-GPU request within the budget (the allocator has no clock: it asks).
fn allocate_timed(
    al: &Allocator,
    req: &AllocRequest,
    budget: Budget,
) -> Result<Allocation, AllocError> {
    match budget.0 {
        None => al.allocate(req),
        Some(b) => {
            let deadline = Instant::now() + b;
            al.allocate_within(req, &|| Instant::now() >= deadline)
        }
    }
}

fn alloc_error(e: AllocError) -> anyhow::Error {
    match e {
        AllocError::UnknownDevice { .. } | AllocError::Duplicate { .. } => {
            anyhow::Error::new(BadInput(e.to_string()))
        }
        other => anyhow::Error::new(Infeasible(other.to_string())),
    }
}

fn print_frac(
    topo: &Topology,
    p: &FracPlacement,
    what: serde_json::Value,
    output: Output,
) -> anyhow::Result<()> {
    match output {
        Output::Json => crate::emitln!(
            "{}",
            serde_json::to_string_pretty(&frac_json(topo, p, what))?
        )?,
        Output::Table => {
            let g = &topo.gpus[p.position];
            let at = p
                .mig_start
                .map(|s| format!(" at slice {s}"))
                .unwrap_or_default();
            crate::emitln!("{}{at}  {}", g.label(topo.is_multi_host()), g.id)?;
            crate::emitln!("{}", p.reason)?;
        }
    }
    Ok(())
}

/// Answers one request line; `Err` is the line's error object.
fn answer_line(
    topo: &Topology,
    rs: &Resolver,
    al: &Allocator,
    lim: &Limits,
    text: &str,
    alloc_time: &mut std::time::Duration,
    budget: Budget,
) -> Result<serde_json::Value, (bool, String)> {
    let line: Line =
        serde_json::from_str(text).map_err(|e| (true, format!("column {}: {e}", e.column())))?;
    let strs = |v: &[serde_json::Value]| v.iter().map(value_str).collect::<Vec<_>>();
    if let Some(milli) = line.milli {
        let available = match &line.available {
            Some(v) => lim.listed(rs, &strs(v)).map_err(|e| (true, e.0))?,
            None => al.healthy(),
        };
        let used: Vec<String> = line
            .used
            .iter()
            .map(|(g, m)| format!("{}:{m}", value_str(g)))
            .collect();
        let used = parse_used(rs, &used).map_err(|e| (true, e.0))?;
        let p = place_fraction(al, &available, &used, milli).map_err(|e| {
            let bad = !matches!(e, linkwise_core::alloc::FracError::NoFit { .. });
            (bad, e.to_string())
        })?;
        return Ok(frac_json(topo, &p, serde_json::json!({"milli": milli})));
    }
    let count = line
        .count
        .ok_or_else(|| (true, "a request needs \"count\" or \"milli\"".to_string()))?;
    let available = line.available.as_deref().map(strs);
    let must = strs(&line.must_include);
    let req = whole_request(
        rs,
        al,
        lim,
        Wanted {
            count,
            available: available.as_deref(),
            must: &must,
            policy: line.policy.unwrap_or(PolicyArg::Default).into(),
            scoring: line.score.unwrap_or(ScoreArg::Default).into(),
            numa: line.numa,
            cpus: line.cpus.as_deref(),
        },
    )
    .map_err(|e| (true, e.0))?;
    let start = Instant::now();
    let result = allocate_timed(al, &req, budget);
    *alloc_time = start.elapsed();
    let a = result.map_err(|e| {
        (
            matches!(
                e,
                AllocError::UnknownDevice { .. } | AllocError::Duplicate { .. }
            ),
            e.to_string(),
        )
    })?;
    Ok(answer_json(topo, al, &req, &a))
}

/// The longest request line `--batch` reads (a request names at most a few thousand devices).
const MAX_BATCH_LINE: usize = 1 << 20;

fn batch(
    topo: &Topology,
    rs: &Resolver,
    al: &Allocator,
    lim: &Limits,
    path: &PathBuf,
    budget: Budget,
) -> anyhow::Result<()> {
    let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let f =
            std::fs::File::open(path).map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
        Box::new(std::io::BufReader::new(f))
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut times = Vec::new();
    let mut alloc_times = Vec::new();
    let (mut malformed, mut infeasible) = (0usize, 0usize);
    let cap = linkwise_fsio::max_input_bytes();
    let mut total: u64 = 0;
    let mut reader = reader;
    let mut buf = Vec::new();
    for n in 0.. {
        buf.clear();
        let read = (&mut reader)
            .take(MAX_BATCH_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| BadInput(format!("{}: line {}: {e}", path.display(), n + 1)))?;
        if read == 0 {
            break;
        }
        total += read as u64;
        if buf.len() > MAX_BATCH_LINE {
            return Err(BadInput(format!(
                "{}: line {} is longer than {} bytes; one JSON request per line",
                path.display(),
                n + 1,
                MAX_BATCH_LINE
            ))
            .into());
        }
        if total > cap {
            return Err(BadInput(format!(
                "{}: larger than the input limit of {} (raise it with --max-input-bytes)",
                path.display(),
                linkwise_fsio::human_bytes(cap)
            ))
            .into());
        }
        let line = std::str::from_utf8(&buf)
            .map_err(|e| BadInput(format!("{}: line {}: {e}", path.display(), n + 1)))?;
        if line.trim().is_empty() {
            continue;
        }
        let start = Instant::now();
        let mut alloc_time = std::time::Duration::ZERO;
        let answer = answer_line(topo, rs, al, lim, line, &mut alloc_time, budget);
        times.push(start.elapsed());
        alloc_times.push(alloc_time);
        let v = match answer {
            Ok(v) => v,
            Err((bad, msg)) => {
                if bad {
                    malformed += 1;
                } else {
                    infeasible += 1;
                }
                serde_json::json!({"line": n + 1, "error": msg, "badInput": bad})
            }
        };
        writeln!(out, "{}", serde_json::to_string(&v)?)?;
    }
    out.flush()?;
    if !times.is_empty() {
        let summary = |times: &mut Vec<std::time::Duration>| {
            times.sort_unstable();
            let micros = |d: std::time::Duration| d.as_secs_f64() * 1e6;
            let total: f64 = times.iter().map(|d| micros(*d)).sum();
            let pct = |q: usize| micros(times[(times.len() - 1) * q / 100]);
            format!(
                "total {:.1} ms, mean {:.1} µs, p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
                total / 1000.0,
                total / times.len() as f64,
                pct(50),
                pct(99),
                micros(times[times.len() - 1])
            )
        };
        eprintln!(
            "linkwise alloc: {} requests ({infeasible} infeasible, {malformed} malformed)\n  per request, end to end (parse, resolve, allocate, explain, write): {}\n  per request, allocation alone (Allocator::allocate): {}",
            times.len(),
            summary(&mut times),
            summary(&mut alloc_times),
        );
    }
    if malformed > 0 {
        return Err(BadInput(format!(
            "{malformed} malformed request line(s) in {}; see their \"error\" answers",
            path.display()
        ))
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn the_former_scoring_name_stays_accepted_but_hidden() {
        for name in ["prior-art-pairwise", "legacy-pairwise"] {
            let arg = ScoreArg::from_str(name, false).unwrap();
            assert_eq!(Scoring::from(arg), Scoring::PriorArtPairwise);
            let line: Line = serde_json::from_str(&format!("{{\"score\":\"{name}\"}}")).unwrap();
            assert_eq!(
                line.score.map(Scoring::from),
                Some(Scoring::PriorArtPairwise)
            );
        }
        let shown: Vec<String> = ScoreArg::value_variants()
            .iter()
            .filter_map(ScoreArg::to_possible_value)
            .filter(|v| !v.is_hide_set())
            .map(|v| v.get_name().to_string())
            .collect();
        assert_eq!(shown, ["default", "prior-art-pairwise"]);
    }
}
