//! `linkwise rollout`: safe change across the fleet. `plan` reads the fleet store and
//! writes the plan; `run` executes it node by node with every step recorded in the fleet
//! database, `resume`, `status`, `abort` and `rollback` act on that record
//! (`linkwise-rollout`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;

use linkwise_rollout::plan::{Amount, Executor, Options, plan};

use crate::exit::BadInput;

/// Roll a driver, firmware or kernel change out: canaries per hardware class, then
/// growing waves within an unavailability limit.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  linkwise rollout plan --change driver-570 --apply 'ssh {node} apt-get install -y nvidia-driver-570' \\\n      \
--rollback 'ssh {node} apt-get install -y nvidia-driver-550' --verify 'ssh {node} linkwise preflight' \\\n      \
--executor slurm --max-unavailable 25% -o yaml --out driver-570.plan.yaml\n  \
linkwise rollout plan --change fw-2 --apply 'fwupd {node}' --nodes rack=r07 --waves 1,4,50%\n  \
linkwise rollout run driver-570.plan.yaml --dry-run; linkwise rollout run driver-570.plan.yaml\n  \
linkwise rollout status driver-570 -o json; linkwise rollout resume driver-570\n  \
linkwise rollout abort driver-570; linkwise rollout rollback driver-570\n\n\
The plan comes from each node's latest report in the fleet store (--db, LINKWISE_DB): wave 0 holds one canary\n\
per hardware class (--canaries-per-class), on distinct racks where the `rack` label allows; each later wave\n\
doubles the one before (or --waves sizes, the last repeating); no wave takes more than --max-unavailable of a\n\
class (a share rounds up: at least one node). Nodes with drift from their class, a failing preflight summary or\n\
in quarantine (`linkwise fleet quarantine`) are held out and listed with why. The plan is YAML or JSON for a\n\
person to review and edit; waves may list node names. See docs/rollout.md."
)]
pub struct Args {
    /// The database: sqlite:PATH or postgres://USER@HOST/DB.
    #[arg(long, global = true, env = linkwise_fleet::store::DB_ENV, default_value = linkwise_fleet::store::DEFAULT_DB, value_name = "URL")]
    db: String,
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Write the plan: canaries, waves, held-out nodes, commands and gates.
    Plan(Box<PlanArgs>),
    /// Run a plan: per node drain, apply, verify, return to service; a failure rolls the
    /// node back, quarantines it and stops (exit 1).
    Run {
        /// The plan (YAML or JSON, as `rollout plan` writes it).
        plan: PathBuf,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Continue a rollout that stopped (killed, or the machine went down).
    Resume {
        /// The change.
        change: String,
        #[command(flatten)]
        run: RunArgs,
    },
    /// A rollout's state: every node's step and the log of what ran.
    Status {
        /// The change.
        change: String,
        #[arg(short, long, value_enum, default_value_t = StatusOutput::Table)]
        output: StatusOutput,
    },
    /// End a rollout: no further node is touched.
    Abort {
        /// The change.
        change: String,
    },
    /// Undo a change everywhere it reached, last changed first: each node drained, its
    /// rollback command run, returned to service (the rollout ends `rolled-back`).
    Rollback {
        /// The change.
        change: String,
        #[command(flatten)]
        run: RunArgs,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Print every command and call that would run; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// The limit of one command, seconds (its process group is killed after).
    #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
    command_timeout: u64,
    /// How long a drain may wait for jobs to end (slurm) or for evictions that a
    /// PodDisruptionBudget refuses (kubernetes), seconds.
    #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
    drain_timeout: u64,
}

/// The Kubernetes API as kube-rs finds it (in-cluster service account, else
/// KUBECONFIG), or why not: for the `kubernetes` executor.
async fn kube_access() -> Result<linkwise_rollout::kubernetes::Kube, String> {
    kube::Client::try_default()
        .await
        .map(linkwise_rollout::kubernetes::Kube)
        .map_err(|e| e.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum StatusOutput {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
struct PlanArgs {
    /// The change's name (the rollout's key).
    #[arg(long)]
    change: String,
    /// The command that applies the change on a node (`{node}` is replaced).
    #[arg(long, value_name = "CMD")]
    apply: String,
    /// The command that undoes it.
    #[arg(long, value_name = "CMD")]
    rollback: Option<String>,
    /// A check after apply (repeatable); failing fails the node.
    #[arg(long = "verify", value_name = "CMD")]
    verify: Vec<String>,
    /// A PromQL gate each wave must pass (repeatable): it selects what is wrong, so it
    /// fails when it returns a series. `{nodes}` (a regex of the wave's nodes), `{wave}`
    /// and `{since}` (the wave's age, e.g. `95s`) are filled in.
    #[arg(long = "gate", value_name = "QUERY", requires = "prometheus")]
    gates: Vec<String>,
    /// The Prometheus server the gates ask (its root URL, e.g. http://prometheus:9090).
    #[arg(long, value_name = "URL")]
    prometheus: Option<String>,
    /// Seconds between gate evaluations while a wave bakes.
    #[arg(long, default_value_t = linkwise_rollout::plan::DEFAULT_GATE_INTERVAL, value_name = "SECONDS")]
    gate_interval: u64,
    /// How nodes are drained and returned to service.
    #[arg(long, value_enum, default_value_t = ExecutorArg::None)]
    executor: ExecutorArg,
    /// Only these nodes: names, or `label=value` selectors (all must match), comma-separated or repeated.
    #[arg(long = "nodes", value_delimiter = ',', value_name = "FILTER")]
    nodes: Vec<String>,
    /// The most nodes of one hardware class changed at once: N or P%.
    #[arg(long, default_value = "25%", value_name = "N|P%")]
    max_unavailable: String,
    /// Canaries per hardware class in wave 0.
    #[arg(long, default_value_t = 1, value_name = "N")]
    canaries_per_class: usize,
    /// Sizes of the waves after the canaries (N or P% of the eligible nodes; the last repeats). Default: doubling.
    #[arg(long, value_delimiter = ',', value_name = "SIZES")]
    waves: Vec<String>,
    /// Seconds each wave bakes while its gates are evaluated.
    #[arg(long = "bake", default_value_t = 0, value_name = "SECONDS")]
    bake_seconds: u64,
    /// Write the plan to FILE (atomically) instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    #[arg(short, long, value_enum, default_value_t = Output::Yaml)]
    output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ExecutorArg {
    Slurm,
    Kubernetes,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Yaml,
    Json,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    use linkwise_rollout::run::{Outcome, RunOptions};
    let options = |r: &RunArgs| RunOptions {
        dry_run: r.dry_run,
        command_timeout: std::time::Duration::from_secs(r.command_timeout.max(1)),
        drain_timeout: std::time::Duration::from_secs(r.drain_timeout.max(1)),
        ..RunOptions::default()
    };
    let db = a.db.clone();
    let outcome = match a.what {
        What::Plan(p) => return plan_cmd(&a.db, *p),
        What::Run { plan, run } => {
            let text = linkwise_fsio::read_to_string_capped(&plan)?;
            let plan = linkwise_rollout::plan::Plan::parse(&text, &plan.display().to_string())
                .map_err(|e| BadInput(e.to_string()))?;
            let mut o = options(&run);
            super::serve::block_on(async move {
                if plan.executor == linkwise_rollout::plan::Executor::Kubernetes && !o.dry_run {
                    o.kube = kube_access().await;
                }
                let store = super::fleet::open(&db).await?;
                let r = linkwise_rollout::run::run(&store, &plan, o).await;
                store.close().await;
                Ok::<_, anyhow::Error>(r?)
            })??
        }
        What::Resume { change, run } => {
            let mut o = options(&run);
            super::serve::block_on(async move {
                if !o.dry_run {
                    o.kube = kube_access().await;
                }
                let store = super::fleet::open(&db).await?;
                let r = linkwise_rollout::run::resume(&store, &change, o).await;
                store.close().await;
                Ok::<_, anyhow::Error>(r?)
            })??
        }
        What::Rollback { change, run } => {
            let mut o = options(&run);
            super::serve::block_on(async move {
                if !o.dry_run {
                    o.kube = kube_access().await;
                }
                let store = super::fleet::open(&db).await?;
                let r = linkwise_rollout::run::rollback(&store, &change, o).await;
                store.close().await;
                Ok::<_, anyhow::Error>(r?)
            })??
        }
        What::Status { change, output } => {
            let st = super::serve::block_on(async move {
                let store = super::fleet::open(&db).await?;
                let r = linkwise_rollout::run::status(&store, &change).await;
                store.close().await;
                Ok::<_, anyhow::Error>(r?)
            })??;
            let text = match output {
                StatusOutput::Json => serde_json::to_string_pretty(&st)? + "\n",
                StatusOutput::Table => {
                    let mut out = format!(
                        "rollout {}: {}{}\n",
                        st.change,
                        st.state,
                        st.message
                            .as_deref()
                            .map(|m| format!(" ({m})"))
                            .unwrap_or_default()
                    );
                    let mut rows = vec![["WAVE", "NODE", "STATE"].map(String::from).to_vec()];
                    rows.extend(
                        st.nodes
                            .iter()
                            .map(|n| vec![n.wave.to_string(), n.node.clone(), n.state.clone()]),
                    );
                    out.push_str(&crate::render::columns(&rows));
                    out.push_str("\nlog:\n");
                    for l in &st.log {
                        out.push_str(&format!(
                            "{} {} {}{}{}\n",
                            l.at,
                            l.node.as_deref().unwrap_or("-"),
                            l.step,
                            l.command
                                .as_deref()
                                .map(|c| format!(" `{c}`"))
                                .unwrap_or_default(),
                            l.exit_code
                                .map(|c| format!(" exit {c}"))
                                .unwrap_or_default()
                        ));
                    }
                    out
                }
            };
            std::io::stdout().lock().write_all(text.as_bytes())?;
            return Ok(());
        }
        What::Abort { change } => {
            super::serve::block_on(async move {
                let store = super::fleet::open(&db).await?;
                let r = linkwise_rollout::run::abort(&store, &change).await;
                store.close().await;
                Ok::<_, anyhow::Error>(r?)
            })??;
            eprintln!("linkwise: rollout aborted");
            return Ok(());
        }
    };
    match outcome {
        Outcome::Succeeded { nodes } => {
            eprintln!("linkwise: rollout succeeded: {nodes} nodes done");
            Ok(())
        }
        Outcome::RolledBack { nodes } => {
            eprintln!("linkwise: rollout rolled back: {nodes} nodes");
            Ok(())
        }
        Outcome::DryRun { actions } => {
            let mut out = std::io::stdout().lock();
            for a in actions {
                writeln!(out, "{a}")?;
            }
            Ok(())
        }
        Outcome::Failed {
            node,
            step,
            message,
        } => {
            anyhow::bail!(
                "rollout failed: {node} at {step}: {message}; it is rolled back and quarantined, later nodes untouched"
            )
        }
    }
}

fn plan_cmd(db: &str, p: PlanArgs) -> anyhow::Result<()> {
    let bad = |e: linkwise_rollout::plan::Error| anyhow::Error::from(BadInput(e.to_string()));
    if p.change.trim().is_empty() || p.apply.trim().is_empty() {
        return Err(BadInput("--change and --apply must not be empty".into()).into());
    }
    let mut labels = BTreeMap::new();
    let mut only = BTreeSet::new();
    for n in p.nodes.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        match n.split_once('=') {
            Some((k, v)) => {
                labels.insert(k.trim().to_string(), v.trim().to_string());
            }
            None => {
                only.insert(n.to_string());
            }
        }
    }
    let options = Options {
        change: p.change,
        apply: p.apply,
        rollback: p.rollback,
        verify: p.verify,
        gates: p.gates,
        prometheus: p.prometheus,
        gate_interval_seconds: p.gate_interval,
        executor: match p.executor {
            ExecutorArg::Slurm => Executor::Slurm,
            ExecutorArg::Kubernetes => Executor::Kubernetes,
            ExecutorArg::None => Executor::None,
        },
        labels,
        only,
        max_unavailable: Amount::parse(&p.max_unavailable, "--max-unavailable").map_err(bad)?,
        canaries_per_class: p.canaries_per_class,
        waves: p
            .waves
            .iter()
            .map(|w| Amount::parse(w, "--waves"))
            .collect::<Result<_, _>>()
            .map_err(bad)?,
        bake_seconds: p.bake_seconds,
    };
    let (latest, quarantined) = super::serve::block_on(async {
        let store = super::fleet::open(db).await?;
        let latest = store.latest().await?;
        let q = store.quarantined().await?;
        store.close().await;
        Ok::<_, anyhow::Error>((latest, q))
    })??;
    let quarantined: BTreeMap<String, String> = quarantined
        .into_iter()
        .map(|q| (q.node, q.reason))
        .collect();
    let plan = plan(&latest, &quarantined, &options).map_err(bad)?;
    let text = match p.output {
        Output::Yaml => serde_yaml_ng::to_string(&plan)?,
        Output::Json => serde_json::to_string_pretty(&plan)? + "\n",
    };
    match &p.out {
        Some(path) => linkwise_fsio::write_atomic(path, text.as_bytes())?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    eprintln!(
        "linkwise: plan {}: {} nodes in {} waves ({} canaries), {} held out",
        plan.change,
        plan.nodes().count(),
        plan.waves.len(),
        plan.waves.first().map_or(0, Vec::len),
        plan.held_out.len()
    );
    Ok(())
}
