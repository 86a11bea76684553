//! `linkwise validate`: what the fabric should deliver, the results of the tools teams
//! already run read into one model, and measured against expected. The logic is
//! `linkwise-validate`'s; this is the arguments and the printing.

use std::io::Write;
use std::path::PathBuf;

use linkwise_validate::check::{DEFAULT_MIN_RATIO, Options, check};
use linkwise_validate::expect::{Expectations, expect};
use linkwise_validate::results::Results;

use crate::exit::BadInput;

/// Validate the fabric: expected bandwidth from the topology, results of nvbandwidth,
/// nccl-tests and dcgmi diag, and the check of one against the other.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  linkwise validate expect --source profile:dgx-h100\n  \
nvbandwidth -j > nvb.json; linkwise validate check nvb.json\n  \
linkwise validate check --source snapshot:node.json nvb.json all_reduce.txt dcgm.json -o json\n  \
linkwise validate import nccl.txt -o json\n\n\
Results: nvbandwidth (-j JSON or its text), nccl-tests (the text table of *_perf), dcgmi diag -j\n\
(DCGM 3.x and 4.x); the format is recognised. GPU numbers are the tools' CUDA device ordinals,\n\
matched to the topology's GPUs in index order: run the tools with CUDA_DEVICE_ORDER=PCI_BUS_ID.\n\
Compare: linkwise validate compare ref.safetensors out.safetensors --rtol 1e-3 --atol 1e-5\n\
Gate: linkwise validate gate --baseline before/*.json --candidate after/*.json --max-regression 5%\n\
Details, sources of every expected number, the gate's statistics: docs/validation.md.\n\
Exit: 0 all as expected, 1 findings, 2 unreadable input."
)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Per GPU pair and per GPU, the bandwidth the topology allows and what a copy reaches.
    Expect {
        #[arg(long, default_value = "auto", help = super::SOURCE_HELP)]
        source: String,
        #[command(flatten)]
        nvlink: super::NvlinkArgs,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Read results into linkwise's model (the format is recognised).
    Import {
        /// Result files (`-` for standard input).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        #[arg(short, long, value_enum, default_value_t = Output::Json)]
        output: Output,
    },
    /// Measured against expected: every pair or GPU that falls short, with a diagnosis.
    Check {
        #[arg(long, default_value = "auto", help = super::SOURCE_HELP)]
        source: String,
        #[command(flatten)]
        nvlink: super::NvlinkArgs,
        /// A value below this share of its expected bandwidth is a finding.
        #[arg(long, default_value_t = DEFAULT_MIN_RATIO, value_name = "RATIO")]
        min_ratio: f64,
        /// Result files (`-` for standard input).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Compare a reference's tensors with a device's output (.npy, .safetensors):
    /// within tolerance exit 0, not 1, unreadable 2.
    Compare {
        /// The reference (expected values).
        reference: PathBuf,
        /// The output to judge.
        output_file: PathBuf,
        /// Relative tolerance (with --atol; default: per dtype, as torch.testing.assert_close).
        #[arg(long, requires = "atol", conflicts_with = "ulp")]
        rtol: Option<f64>,
        /// Absolute tolerance (with --rtol).
        #[arg(long, requires = "rtol", conflicts_with = "ulp")]
        atol: Option<f64>,
        /// At most N units in the last place instead (the same float dtype on both sides).
        #[arg(long, value_name = "N")]
        ulp: Option<u64>,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Native benchmarks: host memory (STREAM-style, per NUMA node), GPU copies.
    Bench {
        #[command(subcommand)]
        what: Bench,
    },
    /// Baselines per hardware class in the fleet database, for `gate --baseline-class`.
    #[command(after_help = "Examples:\n  \
linkwise validate baseline add --node gpu-a01 run1.json run2.json run3.json\n  \
linkwise validate baseline list\n  \
linkwise validate gate --baseline-node gpu-a01 --candidate after/*.json\n\n\
A hardware class is what `linkwise fleet drift` groups by (GPU models and count, topology).")]
    Baseline {
        #[command(subcommand)]
        what: BaselineCmd,
        /// The fleet database: sqlite:PATH or postgres://USER@HOST/DB.
        #[arg(long, global = true, env = linkwise_fleet::store::DB_ENV, default_value = linkwise_fleet::store::DEFAULT_DB, value_name = "URL")]
        db: String,
    },
    /// Repeated runs before and after a change: per metric regressed, improved, no change or
    /// inconclusive, beyond noise (exit 1 on a regression).
    Gate {
        /// The runs before the change (one result file per run, any supported format).
        #[arg(long, num_args = 1.., value_name = "FILE", required_unless_present_any = ["baseline_class", "baseline_node"])]
        baseline: Vec<PathBuf>,
        /// Instead: the baseline stored for this hardware class (`validate baseline add`).
        #[arg(long, value_name = "CLASS", conflicts_with_all = ["baseline", "baseline_node"])]
        baseline_class: Option<String>,
        /// Instead: the stored baseline of this node's hardware class (from its latest report).
        #[arg(long, value_name = "NODE", conflicts_with = "baseline")]
        baseline_node: Option<String>,
        /// The fleet database holding stored baselines: sqlite:PATH or postgres://USER@HOST/DB.
        #[arg(long, env = linkwise_fleet::store::DB_ENV, default_value = linkwise_fleet::store::DEFAULT_DB, value_name = "URL")]
        db: String,
        /// The runs after it.
        #[arg(long, required = true, num_args = 1.., value_name = "FILE")]
        candidate: Vec<PathBuf>,
        /// The tolerated change (`5%` or `0.05`).
        #[arg(long, default_value = "5%", value_parser = share, value_name = "SHARE")]
        max_regression: f64,
        /// The confidence of the intervals.
        #[arg(long, default_value = "95%", value_parser = share, value_name = "SHARE")]
        confidence: f64,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

/// `5%` or `0.05`.
fn share(s: &str) -> Result<f64, String> {
    let (v, scale) = match s.trim().strip_suffix('%') {
        Some(p) => (p, 100.0),
        None => (s.trim(), 1.0),
    };
    let v: f64 = v
        .parse()
        .map_err(|_| format!("{s:?}: give a share, e.g. 5% or 0.05"))?;
    let v = v / scale;
    if v.is_finite() && (0.0..1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{s:?}: give a share below 100%, e.g. 5%"))
    }
}

#[derive(Debug, clap::Subcommand)]
enum Bench {
    /// STREAM copy, scale, add and triad per NUMA node, one pinned thread per CPU
    /// (`-o json`: the results model, which `validate gate` reads).
    HostMemory {
        /// MiB per array (default: four times the last-level cache, at most a quarter of
        /// the available memory for the three).
        #[arg(long, value_name = "MIB")]
        size_mib: Option<u64>,
        /// Runs of each kernel; the first is discarded, the best of the rest reported.
        #[arg(long, default_value_t = 10)]
        repeat: usize,
        /// Only these NUMA nodes (repeatable).
        #[arg(long = "numa", value_name = "NODE")]
        numa: Vec<u32>,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// GPU copy-engine bandwidth and latency: host to device, device to host, every pair
    /// read and write (as nvbandwidth's *_memcpy_ce tests), and the latency of a small copy.
    /// Needs the NVIDIA driver; libcuda is loaded at run time.
    #[command(after_help = "Examples:\n  linkwise validate bench gpu\n  \
linkwise validate bench gpu -o json > run1.json; linkwise validate check run1.json\n  \
linkwise validate bench gpu --gpu 0 --gpu 1 --size-mib 1024 -o nvbandwidth\n\n\
GPU numbers are CUDA ordinals; set CUDA_DEVICE_ORDER=PCI_BUS_ID so they match the topology's.")]
    Gpu {
        /// MiB per copy.
        #[arg(long, default_value_t = 256, value_name = "MIB")]
        size_mib: usize,
        /// Timed copies per measurement (after one untimed warm-up).
        #[arg(long, default_value_t = 8)]
        iterations: u32,
        /// 8-byte copies per latency measurement.
        #[arg(long, default_value_t = 1000)]
        latency_iterations: u32,
        /// Only these GPUs, by CUDA ordinal (repeatable).
        #[arg(long = "gpu", value_name = "N")]
        gpus: Vec<u32>,
        /// `json`: the results model (`validate check` and `gate` read it);
        /// `nvbandwidth`: nvbandwidth's -j JSON.
        #[arg(short, long, value_enum, default_value_t = GpuOutput::Table)]
        output: GpuOutput,
    },
}

/// Which hardware class: named, or a node's.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
struct ClassArg {
    /// The hardware class, as `fleet drift` names it.
    #[arg(long, value_name = "CLASS")]
    class: Option<String>,
    /// The class of this node's latest report in the fleet database.
    #[arg(long, value_name = "NODE")]
    node: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
enum BaselineCmd {
    /// Store benchmark runs (any format `import` reads) as the class's baseline.
    Add {
        #[command(flatten)]
        class: ClassArg,
        /// One result file per run.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// The stored baselines: class, runs, when added.
    List {
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Remove a class's baseline.
    Clear {
        #[command(flatten)]
        class: ClassArg,
    },
}

/// The class named, or that of `node`'s latest report.
async fn class_of(
    store: &linkwise_fleet::store::Store,
    class: Option<String>,
    node: Option<String>,
) -> anyhow::Result<String> {
    if let Some(c) = class {
        return Ok(c);
    }
    let node = node.unwrap_or_default();
    let stored = store.show(&node).await?.ok_or_else(|| {
        BadInput(format!(
            "node {node} has no report in the fleet database (`linkwise report --push` or `fleet ingest` adds one)"
        ))
    })?;
    Ok(linkwise_fleet::drift::class_of(&stored.report))
}

/// The runs of a stored baseline, read back into the results model.
fn stored_runs(
    class: &str,
    runs: &[linkwise_fleet::store::Baseline],
) -> anyhow::Result<Vec<Results>> {
    if runs.is_empty() {
        return Err(BadInput(format!(
            "no baseline is stored for class {class:?} (`linkwise validate baseline add` stores one; `baseline list` shows what is there)"
        ))
        .into());
    }
    runs.iter()
        .map(|b| {
            linkwise_validate::import::parse(&b.body, &format!("baseline {} ({})", b.id, b.source))
                .map_err(|e| anyhow::anyhow!("stored {e}"))
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum GpuOutput {
    Table,
    Json,
    Nvbandwidth,
}

/// Each matrix of each test as a table.
fn matrices_table(r: &Results) -> String {
    use linkwise_validate::results::{Axis, Unit};
    let mut out = format!("{}\n", r.devices.join("\n"));
    for t in &r.tests {
        for m in &t.matrices {
            out.push_str(&format!("\n{}: {}\n", t.name, m.description));
            let label = |a: Axis, i: usize| match a {
                Axis::Cpu => "CPU".to_string(),
                Axis::Gpu => format!("GPU{i}"),
                Axis::All => "ALL".to_string(),
            };
            let mut rows = vec![{
                let mut h = vec![String::new()];
                h.extend((0..m.values.first().map_or(0, Vec::len)).map(|j| label(m.columns, j)));
                h
            }];
            for (i, row) in m.values.iter().enumerate() {
                let mut line = vec![label(m.rows, i)];
                line.extend(row.iter().map(|v| match (v, m.unit) {
                    (None, _) => "N/A".into(),
                    (Some(v), Unit::Ns) => format!("{v:.0}"),
                    (Some(v), Unit::GBps) => format!("{v:.1}"),
                }));
                rows.push(line);
            }
            out.push_str(&crate::render::columns(&rows));
        }
        if let Some(msg) = &t.message {
            out.push_str(&format!("note: {msg}\n"));
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Table,
    Json,
}

fn emit(text: String) -> anyhow::Result<()> {
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

fn read(files: &[PathBuf]) -> anyhow::Result<Vec<Results>> {
    files
        .iter()
        .map(|f| {
            let (name, text) = super::fleet::read_text(f)?;
            linkwise_validate::import::parse(&text, &name)
                .map_err(|e| BadInput(e.to_string()).into())
        })
        .collect()
}

fn expectations(source: &str, nvlink: super::NvlinkArgs) -> anyhow::Result<Expectations> {
    let spec = linkwise_discovery::SourceSpec::parse(source)?;
    let topo = super::discover_spec_published(&spec, nvlink, "expectations")?;
    if topo.gpus.is_empty() {
        return Err(BadInput(format!(
            "{source}: no GPU in the topology, nothing to expect"
        ))
        .into());
    }
    Ok(expect(&topo))
}

fn expect_table(e: &Expectations) -> String {
    let mut rows = vec![{
        let mut h = vec![String::new()];
        h.extend(e.gpus.iter().map(|g| format!("GPU{g}")));
        h.push("HOST LINK".into());
        h
    }];
    for (i, g) in e.gpus.iter().enumerate() {
        let mut row = vec![format!("GPU{g}")];
        for j in 0..e.gpus.len() {
            row.push(match e.pair(i, j) {
                Some(p) if i != j => format!("{:.0}", p.expected_gbps),
                _ => "X".into(),
            });
        }
        let h = &e.host[i];
        row.push(format!(
            "{:.1} ({}{})",
            h.expected_gbps,
            h.link,
            if h.assumed { ", assumed" } else { "" }
        ));
        rows.push(row);
    }
    let mut out = format!(
        "Expected copy bandwidth, GB/s per direction (topology {}):\n",
        e.source
    );
    out.push_str(&crate::render::columns(&rows));
    let mut paths: Vec<(String, f64, f64)> = e
        .pairs
        .iter()
        .map(|p| (p.path.clone(), p.peak_gbps, p.expected_gbps))
        .collect();
    paths.sort_by(|a, b| a.0.cmp(&b.0));
    paths.dedup_by(|a, b| a.0 == b.0 && (a.1 - b.1).abs() < 1e-9);
    out.push_str("\nPaths (peak -> expected, GB/s per direction):\n");
    for (path, peak, expected) in paths {
        out.push_str(&format!("  {path}: {peak:.1} -> {expected:.1}\n"));
    }
    out
}

pub fn run(a: Args) -> anyhow::Result<()> {
    match a.what {
        What::Expect {
            source,
            nvlink,
            output,
        } => {
            let e = expectations(&source, nvlink)?;
            emit(match output {
                Output::Json => serde_json::to_string_pretty(&e)? + "\n",
                Output::Table => expect_table(&e),
            })
        }
        What::Import { files, output } => {
            let results = read(&files)?;
            emit(match output {
                Output::Json if results.len() == 1 => {
                    serde_json::to_string_pretty(&results[0])? + "\n"
                }
                Output::Json => serde_json::to_string_pretty(&results)? + "\n",
                Output::Table => {
                    let mut rows = vec![
                        ["FILE", "TOOL", "TEST", "STATUS", "VALUES"]
                            .map(String::from)
                            .to_vec(),
                    ];
                    for r in &results {
                        for t in &r.tests {
                            let values = if let Some(c) = &t.collective {
                                format!("{} sizes on {} ranks", c.sizes.len(), c.ranks)
                            } else if !t.entities.is_empty() {
                                format!("{} entities", t.entities.len())
                            } else {
                                t.matrices
                                    .iter()
                                    .map(|m| {
                                        format!(
                                            "{}x{}",
                                            m.values.len(),
                                            m.values.first().map_or(0, Vec::len)
                                        )
                                    })
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            };
                            rows.push(vec![
                                r.source.clone(),
                                serde_json::to_value(r.tool)?
                                    .as_str()
                                    .unwrap_or_default()
                                    .to_string(),
                                t.name.clone(),
                                serde_json::to_value(t.status)?
                                    .as_str()
                                    .unwrap_or_default()
                                    .to_string(),
                                values,
                            ]);
                        }
                    }
                    crate::render::columns(&rows)
                }
            })
        }
        What::Compare {
            reference,
            output_file,
            rtol,
            atol,
            ulp,
            output,
        } => {
            use linkwise_validate::compare::{Tolerance, compare};
            let tolerance = match (rtol, atol, ulp) {
                (_, _, Some(max)) => Tolerance::Ulp { max },
                (Some(rtol), Some(atol), None) => {
                    if !(rtol >= 0.0 && atol >= 0.0 && rtol.is_finite() && atol.is_finite()) {
                        return Err(BadInput(
                            "--rtol and --atol must be finite and not negative".into(),
                        )
                        .into());
                    }
                    Tolerance::Close { rtol, atol }
                }
                _ => Tolerance::Default,
            };
            let c = compare(&reference, &output_file, tolerance)
                .map_err(|e| BadInput(e.to_string()))?;
            emit(match output {
                Output::Json => serde_json::to_string_pretty(&c)? + "\n",
                Output::Table => {
                    let mut rows = vec![
                        [
                            "TENSOR",
                            "DTYPE",
                            "SHAPE",
                            "MISMATCHES",
                            "NAN",
                            "INF",
                            "MAX ABS",
                            "MAX REL",
                            "MAX ULP",
                            "FIRST",
                        ]
                        .map(String::from)
                        .to_vec(),
                    ];
                    for t in &c.tensors {
                        rows.push(vec![
                            t.name.clone(),
                            serde_json::to_value(t.dtype)?
                                .as_str()
                                .unwrap_or_default()
                                .to_string(),
                            format!("{:?}", t.shape),
                            match &t.problem {
                                Some(p) => format!("not compared: {p}"),
                                None => format!("{} of {}", t.mismatches, t.elements),
                            },
                            t.nan_mismatches.to_string(),
                            t.inf_mismatches.to_string(),
                            format!("{:.3e}", t.max_abs_error),
                            format!("{:.3e}", t.max_rel_error),
                            t.ulp.as_ref().map_or("-".into(), |u| u.max.to_string()),
                            t.first_mismatches
                                .iter()
                                .take(3)
                                .map(|i| format!("{i:?}"))
                                .collect::<Vec<_>>()
                                .join(" "),
                        ]);
                    }
                    let mut out = crate::render::columns(&rows);
                    for m in &c.missing {
                        out.push_str(&format!("missing: {m}\n"));
                    }
                    out.push_str(if c.pass {
                        "within tolerance\n"
                    } else {
                        "NOT within tolerance\n"
                    });
                    out
                }
            })?;
            if !c.pass {
                anyhow::bail!(
                    "compare: {} differs from {} beyond tolerance",
                    c.output,
                    c.reference
                );
            }
            Ok(())
        }
        What::Bench {
            what:
                Bench::HostMemory {
                    size_mib,
                    repeat,
                    numa,
                    output,
                },
        } => {
            let o = linkwise_validate::bench::HostMemoryOptions {
                elements: size_mib
                    .map(|m| usize::try_from(m.saturating_mul(1 << 20) / 8).unwrap_or(usize::MAX)),
                repeat,
                nodes: numa,
                ..Default::default()
            };
            if o.elements == Some(0) {
                return Err(BadInput("--size-mib must be at least 1".into()).into());
            }
            eprintln!(
                "linkwise: measuring host memory bandwidth ({repeat} runs of each kernel per NUMA node)..."
            );
            let nodes = linkwise_validate::bench::host_memory(&o).map_err(BadInput)?;
            emit(match output {
                Output::Json => {
                    serde_json::to_string_pretty(&linkwise_validate::bench::host_memory_results(
                        &nodes,
                    ))? + "\n"
                }
                Output::Table => {
                    let mut rows = vec![
                        [
                            "NUMA NODE",
                            "THREADS",
                            "ARRAY",
                            "COPY",
                            "SCALE",
                            "ADD",
                            "TRIAD",
                        ]
                        .map(String::from)
                        .to_vec(),
                    ];
                    for n in &nodes {
                        rows.push(vec![
                            format!("{}{}", n.node, if n.pinned { "" } else { " (not pinned)" }),
                            n.cpus.len().to_string(),
                            format!("{} MiB", (n.elements * 8) >> 20),
                            format!("{:.1}", n.copy),
                            format!("{:.1}", n.scale),
                            format!("{:.1}", n.add),
                            format!("{:.1}", n.triad),
                        ]);
                    }
                    crate::render::columns(&rows) + "GB/s, best of the runs after the first\n"
                }
            })
        }
        What::Bench {
            what:
                Bench::Gpu {
                    size_mib,
                    iterations,
                    latency_iterations,
                    gpus,
                    output,
                },
        } => {
            // The kernel driver first: its absence is the common case and says most.
            if let Err(why) = linkwise_validate::bench::gpu_probe(std::path::Path::new("/"))
                && why.contains("/proc/driver/nvidia")
            {
                return Err(BadInput(format!("bench gpu: {why}")).into());
            }
            let o = linkwise_validate::cuda::GpuOptions {
                bytes: size_mib
                    .checked_mul(1 << 20)
                    .ok_or_else(|| BadInput(format!("--size-mib {size_mib}: too large")))?,
                iterations,
                latency_iterations,
                devices: gpus,
            };
            let r = linkwise_validate::cuda::gpu(&o, |what| {
                eprintln!("linkwise: measuring {what}...");
            })
            .map_err(|e| match e {
                linkwise_validate::cuda::GpuError::Call { .. } => {
                    anyhow::anyhow!("bench gpu: {e}")
                }
                _ => BadInput(format!("bench gpu: {e}")).into(),
            })?;
            emit(match output {
                GpuOutput::Json => serde_json::to_string_pretty(&r)? + "\n",
                GpuOutput::Nvbandwidth => {
                    serde_json::to_string_pretty(&linkwise_validate::nvbandwidth::to_json(&r))?
                        + "\n"
                }
                GpuOutput::Table => matrices_table(&r),
            })
        }
        What::Baseline { what, db } => super::serve::block_on(async {
            let store = super::fleet::open(&db).await?;
            let done = baseline(&store, what).await;
            store.close().await;
            done
        })?,
        What::Gate {
            baseline,
            baseline_class,
            baseline_node,
            db,
            candidate,
            max_regression,
            confidence,
            output,
        } => {
            let c = read(&candidate)?;
            let b = if baseline_class.is_some() || baseline_node.is_some() {
                super::serve::block_on(async {
                    let store = super::fleet::open(&db).await?;
                    let class = class_of(&store, baseline_class, baseline_node).await;
                    let runs = match class {
                        Ok(class) => store
                            .baselines(Some(&class))
                            .await
                            .map_err(anyhow::Error::from)
                            .and_then(|runs| stored_runs(&class, &runs)),
                        Err(e) => Err(e),
                    };
                    store.close().await;
                    runs
                })??
            } else {
                read(&baseline)?
            };
            let options = linkwise_validate::gate::GateOptions {
                max_regression,
                confidence,
                ..Default::default()
            };
            let g = linkwise_validate::gate::gate(&b, &c, options);
            if g.metrics.is_empty() {
                return Err(BadInput(
                    "no metric is in both the baseline and the candidate (are they runs of the same benchmarks?)".into(),
                )
                .into());
            }
            emit(match output {
                Output::Json => serde_json::to_string_pretty(&g)? + "\n",
                Output::Table => {
                    let mut rows = vec![
                        ["METRIC", "BASELINE", "CANDIDATE", "VERDICT"]
                            .map(String::from)
                            .to_vec(),
                    ];
                    for m in &g.metrics {
                        rows.push(vec![
                            m.name.clone(),
                            format!(
                                "{:.2} {} ({} runs)",
                                m.baseline_median, m.unit, m.baseline_runs
                            ),
                            format!(
                                "{:.2} {} ({} runs)",
                                m.candidate_median, m.unit, m.candidate_runs
                            ),
                            m.message.clone(),
                        ]);
                    }
                    let mut out = crate::render::columns(&rows);
                    for u in &g.unmatched {
                        out.push_str(&format!("not compared: {u}\n"));
                    }
                    out
                }
            })?;
            if g.regressed() {
                let n = g
                    .metrics
                    .iter()
                    .filter(|m| m.verdict == linkwise_validate::gate::Verdict::Regressed)
                    .count();
                anyhow::bail!(
                    "gate: {n} metric{} regressed beyond {:.1}%",
                    if n == 1 { "" } else { "s" },
                    max_regression * 100.0
                );
            }
            Ok(())
        }
        What::Check {
            source,
            nvlink,
            min_ratio,
            files,
            output,
        } => {
            if !(min_ratio.is_finite() && min_ratio > 0.0 && min_ratio <= 1.0) {
                return Err(BadInput(format!(
                    "--min-ratio {min_ratio}: give a share in (0, 1], e.g. 0.8"
                ))
                .into());
            }
            let results = read(&files)?;
            let e = expectations(&source, nvlink)?;
            let report = check(&e, &results, Options { min_ratio });
            emit(match output {
                Output::Json => serde_json::to_string_pretty(&report)? + "\n",
                Output::Table => {
                    let mut out = String::new();
                    for f in &report.findings {
                        out.push_str(&format!("{}: {}\n", f.test, f.message));
                    }
                    out.push_str(&format!(
                        "{} values compared in {} tests against {}: {} findings\n",
                        report.compared,
                        report.tests,
                        report.topology,
                        report.findings.len()
                    ));
                    out
                }
            })?;
            if !report.findings.is_empty() {
                anyhow::bail!(
                    "validate: {} finding{} (above)",
                    report.findings.len(),
                    if report.findings.len() == 1 { "" } else { "s" }
                );
            }
            Ok(())
        }
    }
}

async fn baseline(store: &linkwise_fleet::store::Store, what: BaselineCmd) -> anyhow::Result<()> {
    match what {
        BaselineCmd::Add { class, files } => {
            let class = class_of(store, class.class, class.node).await?;
            // Every file read before any is stored: a bad one stores nothing.
            let runs = read(&files)?;
            let mut added = 0;
            for (f, r) in files.iter().zip(&runs) {
                if store
                    .add_baseline(&class, &f.display().to_string(), &serde_json::to_string(r)?)
                    .await?
                {
                    added += 1;
                }
            }
            let total = store.baselines(Some(&class)).await?.len();
            eprintln!(
                "linkwise: {added} run{} added to the baseline of {class} ({} already there); it has {total}",
                if added == 1 { "" } else { "s" },
                runs.len() - added
            );
            Ok(())
        }
        BaselineCmd::List { output } => {
            let all = store.baselines(None).await?;
            emit(match output {
                Output::Json => serde_json::to_string_pretty(&all)? + "\n",
                Output::Table => {
                    let mut rows = vec![
                        ["CLASS", "RUN", "SOURCE", "ADDED"]
                            .map(String::from)
                            .to_vec(),
                    ];
                    for b in &all {
                        rows.push(vec![
                            b.class.clone(),
                            b.id.chars().take(12).collect(),
                            b.source.clone(),
                            b.added_at.clone(),
                        ]);
                    }
                    crate::render::columns(&rows)
                }
            })
        }
        BaselineCmd::Clear { class } => {
            let class = class_of(store, class.class, class.node).await?;
            let n = store.clear_baseline(&class).await?;
            eprintln!(
                "linkwise: {n} run{} of {class}'s baseline removed",
                if n == 1 { "" } else { "s" }
            );
            Ok(())
        }
    }
}
