//! `linkwise fleet`: the fleet's inventory in a database (`--db`: embedded SQLite by
//! default, PostgreSQL at scale): ingest reports, serve agents and readers over HTTP,
//! list nodes, show one, its history, drift and attestation. The store, the server and
//! the analysis are `linkwise-fleet`'s; this is the arguments and the printing.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use linkwise_fleet::NodeReport;
use linkwise_fleet::attest::{AllowList, attest};
use linkwise_fleet::drift::drift;
use linkwise_fleet::store::{self, Store};

use crate::exit::BadInput;

/// The fleet inventory: ingest node reports into a database, serve agents, and ask it
/// about nodes, history, drift and attestation.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  linkwise fleet ingest reports/\n  \
linkwise report --source profile:dgx-h100 --node n1 | linkwise fleet ingest -\n  \
linkwise fleet nodes\n  linkwise fleet show n1 -o json\n  linkwise fleet history n1\n  \
linkwise fleet drift --by rack\n  \
linkwise fleet attest --allow-list deploy/fleet/allow-list.yaml\n  \
linkwise fleet serve --listen 0.0.0.0:9470 --token-file /etc/linkwise/fleet-token\n  \
LINKWISE_DB=postgres://linkwise@db.example/fleet linkwise fleet drift\n\n\
The database: --db or LINKWISE_DB, `sqlite:PATH` (the default, linkwise-fleet.db here; WAL mode)\n\
or `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`. The schema is created and migrated on first use.\n\
Reports are the format of `linkwise report` (docs/node-report.md): JSON files, directories of\n\
*.json, or JSON lines (`-` is standard input). drift and attest read each node's latest report\n\
from the database, or from files with --reports. Exit: 0 nothing found, 1 findings (or a\n\
rejected report, or a database failure), 2 bad input.")]
pub struct Args {
    /// The database: sqlite:PATH or postgres://USER@HOST/DB.
    #[arg(long, global = true, env = store::DB_ENV, default_value = store::DEFAULT_DB, value_name = "URL")]
    db: String,
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Store reports: files, directories of *.json, JSON lines, `-` for standard input.
    Ingest {
        /// Report files, directories, or `-`.
        #[arg(required = true, value_name = "FILE")]
        paths: Vec<PathBuf>,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Serve agents (POST /v1/reports) and readers (GET /v1/nodes, /v1/drift, ...) over HTTP.
    Serve {
        /// Address to serve on.
        #[arg(long, default_value = "0.0.0.0:9470")]
        listen: String,
        /// A file holding the bearer token every /v1 request must present.
        #[arg(long, value_name = "FILE")]
        token_file: PathBuf,
        /// The largest request body (K, M suffixes).
        #[arg(long, default_value = "4M", value_name = "BYTES")]
        max_body: String,
    },
    /// One row per node from its latest report.
    Nodes {
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// A node's latest report.
    Show {
        /// The node.
        node: String,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// A node's reports, oldest first, with what changed in each.
    History {
        /// The node.
        node: String,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Keep a node out of service and out of rollouts (`linkwise rollout plan` holds it
    /// out); without NODE, list the quarantined nodes.
    Quarantine {
        /// The node.
        node: Option<String>,
        /// Why (required with NODE).
        #[arg(long)]
        reason: Option<String>,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Take a node out of quarantine.
    Release {
        /// The node.
        node: String,
    },
    /// Group nodes by hardware class and report every value that differs from the class's majority.
    Drift {
        #[command(flatten)]
        reports: Reports,
        /// Also report values that only one value of this label has (repeatable: rack, batch).
        #[arg(long = "by", value_name = "LABEL")]
        by: Vec<String>,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Check the nodes against an allow-list of kernels, drivers, VBIOS versions and artefacts.
    Attest {
        #[command(flatten)]
        reports: Reports,
        /// The allow-list (YAML or JSON; see deploy/fleet/allow-list.yaml).
        #[arg(long, value_name = "FILE")]
        allow_list: PathBuf,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

#[derive(Debug, clap::Args)]
struct Reports {
    /// Read these report files (directories of `*.json`, `-` for JSON lines on standard
    /// input) instead of the database.
    #[arg(long = "reports", value_name = "PATH", num_args = 1..)]
    paths: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Table,
    Json,
}

/// The files named: a directory's `*.json` in name order, `-` as it is.
fn expand(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| BadInput(format!("{}: {e}", p.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "json"))
                .collect();
            inside.sort();
            files.extend(inside);
        } else {
            files.push(p.clone());
        }
    }
    Ok(files)
}

/// A file's text (standard input for `-`), capped like every input.
pub fn read_text(path: &Path) -> anyhow::Result<(String, String)> {
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .take(linkwise_fsio::max_input_bytes() + 1)
            .read_to_end(&mut bytes)?;
        if bytes.len() as u64 > linkwise_fsio::max_input_bytes() {
            return Err(BadInput(format!(
                "standard input: over {}",
                linkwise_fsio::human_bytes(linkwise_fsio::max_input_bytes())
            ))
            .into());
        }
        let text =
            String::from_utf8(bytes).map_err(|_| BadInput("standard input: not UTF-8".into()))?;
        return Ok(("-".into(), text));
    }
    Ok((
        path.display().to_string(),
        linkwise_fsio::read_to_string_capped(path)?,
    ))
}

/// Each node's latest report from files (by collectedAt, else the last read); any bad
/// report is an error naming it.
fn read_reports(paths: &[PathBuf]) -> anyhow::Result<Vec<NodeReport>> {
    let mut latest: std::collections::BTreeMap<String, NodeReport> = Default::default();
    for f in expand(paths)? {
        let (name, text) = read_text(&f)?;
        for r in NodeReport::parse_documents(&text, &name) {
            let r = r.map_err(|e| BadInput(e.to_string()))?;
            let newer = latest
                .get(&r.node)
                .is_none_or(|old| r.collected_us() >= old.collected_us());
            if newer {
                latest.insert(r.node.clone(), r);
            }
        }
    }
    Ok(latest.into_values().collect())
}

pub async fn open(db: &str) -> anyhow::Result<Store> {
    Store::open(db).await.map_err(|e| match e {
        store::StoreError::Url { .. } => BadInput(e.to_string()).into(),
        e => anyhow::Error::from(e),
    })
}

/// The latest reports: from files when named, else from the database.
fn latest(db: &str, reports: &Reports) -> anyhow::Result<Vec<NodeReport>> {
    if !reports.paths.is_empty() {
        return read_reports(&reports.paths);
    }
    super::serve::block_on(async {
        let store = open(db).await?;
        let latest = store.latest().await?;
        store.close().await;
        Ok::<_, anyhow::Error>(latest)
    })?
}

fn emit(text: String) -> anyhow::Result<()> {
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

/// The bearer token in `path`: its content without surrounding white space.
pub fn read_token(path: &Path) -> anyhow::Result<String> {
    let text = linkwise_fsio::read_to_string_capped(path)?;
    let token = text.trim();
    if token.is_empty() {
        return Err(BadInput(format!("{}: the token file is empty", path.display())).into());
    }
    if token.contains(char::is_whitespace) {
        return Err(BadInput(format!(
            "{}: a token is one word (no spaces or lines inside)",
            path.display()
        ))
        .into());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0) {
            tracing::warn!(file = %path.display(), "the token file is readable by every user; chmod 600 it");
        }
    }
    Ok(token.to_string())
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct IngestSummary {
    read: usize,
    stored: usize,
    already_stored: usize,
    rejected: Vec<Rejected>,
    reports: Vec<linkwise_fleet::store::Ingested>,
}

#[derive(serde::Serialize)]
struct Rejected {
    source: String,
    error: String,
}

fn ingest(db: &str, paths: &[PathBuf], output: Output) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let files = expand(paths)?;
    // Progress on a terminal only (a log or a pipe gets the summary alone).
    let progress = std::io::stderr().is_terminal() && files.len() > 100;
    let summary = super::serve::block_on(async {
        let store = open(db).await?;
        let mut s = IngestSummary {
            read: 0,
            stored: 0,
            already_stored: 0,
            rejected: Vec::new(),
            reports: Vec::new(),
        };
        for (i, f) in files.iter().enumerate() {
            if progress && i % 100 == 0 {
                eprint!(
                    "\rlinkwise: {i}/{} files, {} reports stored",
                    files.len(),
                    s.stored
                );
            }
            let (name, text) = match read_text(f) {
                Ok(t) => t,
                Err(e) => {
                    s.rejected.push(Rejected {
                        source: f.display().to_string(),
                        error: e.to_string(),
                    });
                    continue;
                }
            };
            for r in NodeReport::parse_documents(&text, &name) {
                s.read += 1;
                match r {
                    Ok(r) => {
                        let done = store.ingest(&r).await?;
                        if done.stored {
                            s.stored += 1;
                        } else {
                            s.already_stored += 1;
                        }
                        s.reports.push(done);
                    }
                    Err(e) => s.rejected.push(Rejected {
                        source: name.clone(),
                        error: e.to_string(),
                    }),
                }
            }
        }
        store.close().await;
        if progress {
            eprint!("\r\x1b[K");
        }
        Ok::<_, anyhow::Error>(s)
    })??;
    for r in &summary.rejected {
        eprintln!("linkwise: rejected: {}", r.error);
    }
    emit(match output {
        Output::Json => serde_json::to_string_pretty(&summary)? + "\n",
        Output::Table => format!(
            "{} report{} read: {} stored, {} already stored, {} rejected\n",
            summary.read,
            if summary.read == 1 { "" } else { "s" },
            summary.stored,
            summary.already_stored,
            summary.rejected.len()
        ),
    })?;
    if !summary.rejected.is_empty() {
        anyhow::bail!(
            "ingest: {} report{} rejected (above); the others are stored",
            summary.rejected.len(),
            if summary.rejected.len() == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

fn serve(db: &str, listen: &str, token_file: &Path, max_body: &str) -> anyhow::Result<()> {
    super::serve::check_listen_addr("--listen", listen)?;
    let token = read_token(token_file)?;
    let max_body = linkwise_fsio::parse_size(max_body)
        .map_err(|e| BadInput(format!("--max-body {max_body:?}: {e}")))?;
    let max_body = usize::try_from(max_body).unwrap_or(usize::MAX).max(1024);
    super::serve::block_on(async move {
        let store = open(db).await?;
        let listener = super::serve::bind("--listen", listen).await?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, db = store.name(), "fleet serving");
        crate::serving(
            addr,
            &format!(
                "fleet: POST /v1/reports; GET /v1/nodes, /v1/nodes/NODE[/history], /v1/drift; POST /v1/attest; store {}",
                store.name()
            ),
        );
        let config = linkwise_fleet::server::Config {
            token,
            max_body,
            read_timeout: Duration::from_secs(30),
        };
        linkwise_fleet::server::serve(
            listener,
            store.clone(),
            config,
            linkwise_http::ServeOptions::default(),
            super::serve::shutdown_signal(),
        )
        .await;
        store.close().await;
        Ok::<_, anyhow::Error>(())
    })?
}

fn labels_text(labels: &std::collections::BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn query(db: &str, what: What) -> anyhow::Result<()> {
    super::serve::block_on(async move {
        let store = open(db).await?;
        let result = match what {
            What::Nodes { output } => {
                let nodes = store.nodes().await?;
                emit(match output {
                    Output::Json => serde_json::to_string_pretty(&nodes)? + "\n",
                    Output::Table => {
                        let mut rows = vec![
                            [
                                "NODE",
                                "ARCH",
                                "KERNEL",
                                "DRIVER",
                                "GPUS",
                                "LABELS",
                                "REPORTS",
                                "COLLECTED",
                            ]
                            .map(String::from)
                            .to_vec(),
                        ];
                        rows.extend(nodes.iter().map(|n| {
                            vec![
                                n.node.clone(),
                                n.arch.clone(),
                                n.kernel.clone(),
                                n.driver.clone(),
                                if n.gpus.is_empty() {
                                    "-".into()
                                } else {
                                    n.gpus.clone()
                                },
                                labels_text(&n.labels),
                                n.reports.to_string(),
                                n.collected_at
                                    .clone()
                                    .unwrap_or_else(|| n.ingested_at.clone()),
                            ]
                        }));
                        format!("{}{} nodes\n", crate::render::columns(&rows), nodes.len())
                    }
                })
            }
            What::Show { node, output } => match store.show(&node).await? {
                None => Err(anyhow::anyhow!(
                    "no report of node {node:?} in {} (`linkwise fleet nodes` lists them)",
                    store.name()
                )),
                Some(s) => emit(match output {
                    Output::Json => serde_json::to_string_pretty(&s)? + "\n",
                    Output::Table => format!(
                        "{}report {} ingested {}\n",
                        super::report::table(&s.report),
                        s.id,
                        s.ingested_at
                    ),
                }),
            },
            What::History { node, output } => {
                let h = store.history(&node).await?;
                if h.is_empty() {
                    Err(anyhow::anyhow!(
                        "no report of node {node:?} in {} (`linkwise fleet nodes` lists them)",
                        store.name()
                    ))
                } else {
                    emit(match output {
                        Output::Json => serde_json::to_string_pretty(&h)? + "\n",
                        Output::Table => {
                            let mut rows = vec![
                                ["COLLECTED", "INGESTED", "REPORT", "CHANGES"]
                                    .map(String::from)
                                    .to_vec(),
                            ];
                            for (i, e) in h.iter().enumerate() {
                                let changes = if i == 0 {
                                    format!("first report ({} fields)", e.changes.len())
                                } else if e.changes.is_empty() {
                                    "-".into()
                                } else {
                                    e.changes
                                        .iter()
                                        .map(|c| {
                                            format!(
                                                "{}: {} -> {}",
                                                c.field,
                                                c.from.as_deref().unwrap_or("(absent)"),
                                                c.to.as_deref().unwrap_or("(absent)")
                                            )
                                        })
                                        .collect::<Vec<_>>()
                                        .join("; ")
                                };
                                rows.push(vec![
                                    e.collected_at.clone().unwrap_or_else(|| "-".into()),
                                    e.ingested_at.clone(),
                                    e.id.chars().take(12).collect(),
                                    changes,
                                ]);
                            }
                            crate::render::columns(&rows)
                        }
                    })
                }
            }
            What::Quarantine {
                node: Some(node),
                reason,
                ..
            } => {
                let reason = reason
                    .filter(|r| !r.trim().is_empty())
                    .ok_or_else(|| BadInput("fleet quarantine NODE needs --reason".into()))?;
                store.quarantine(&node, &reason, None).await?;
                eprintln!("linkwise: {node} quarantined: {reason}");
                Ok(())
            }
            What::Quarantine {
                node: None, output, ..
            } => {
                let q = store.quarantined().await?;
                emit(match output {
                    Output::Json => serde_json::to_string_pretty(&q)? + "\n",
                    Output::Table => {
                        let mut rows = vec![
                            ["NODE", "SINCE", "CHANGE", "REASON"]
                                .map(String::from)
                                .to_vec(),
                        ];
                        rows.extend(q.iter().map(|x| {
                            vec![
                                x.node.clone(),
                                x.since.clone(),
                                x.change.clone().unwrap_or_else(|| "-".into()),
                                x.reason.clone(),
                            ]
                        }));
                        format!("{}{} quarantined\n", crate::render::columns(&rows), q.len())
                    }
                })
            }
            What::Release { node } => {
                if store.release(&node).await? {
                    eprintln!("linkwise: {node} released from quarantine");
                    Ok(())
                } else {
                    Err(anyhow::anyhow!(
                        "{node} is not in quarantine (`linkwise fleet quarantine` lists them)"
                    ))
                }
            }
            _ => unreachable!("query is called for nodes, show, history, quarantine and release"),
        };
        store.close().await;
        result
    })?
}

pub fn run(a: Args) -> anyhow::Result<()> {
    match a.what {
        What::Ingest { paths, output } => ingest(&a.db, &paths, output)?,
        What::Serve {
            listen,
            token_file,
            max_body,
        } => serve(&a.db, &listen, &token_file, &max_body)?,
        w @ (What::Nodes { .. }
        | What::Show { .. }
        | What::History { .. }
        | What::Quarantine { .. }
        | What::Release { .. }) => query(&a.db, w)?,
        What::Drift {
            reports,
            by,
            output,
        } => {
            let latest = latest(&a.db, &reports)?;
            let d = drift(&latest, &by);
            let found = d.findings.len() + d.by_label.len();
            emit(match output {
                Output::Json => serde_json::to_string_pretty(&d)? + "\n",
                Output::Table => drift_table(&d, latest.len()),
            })?;
            if found > 0 {
                anyhow::bail!(
                    "drift: {} node value{} differ from their class",
                    d.findings.len(),
                    if d.findings.len() == 1 { "" } else { "s" }
                );
            }
        }
        What::Attest {
            reports,
            allow_list,
            output,
        } => {
            let text = linkwise_fsio::read_to_string_capped(&allow_list)?;
            let allow = AllowList::parse(&text, &allow_list.display().to_string())
                .map_err(|e| BadInput(e.to_string()))?;
            let latest = latest(&a.db, &reports)?;
            let found = attest(&latest, &allow);
            emit(match output {
                Output::Json => serde_json::to_string_pretty(&found)? + "\n",
                Output::Table => {
                    let mut rows =
                        vec![["NODE", "WHAT", "VALUE", "WHY"].map(String::from).to_vec()];
                    rows.extend(found.iter().map(|f| {
                        vec![
                            f.node.clone(),
                            f.what.clone(),
                            f.value.clone(),
                            f.reason.clone(),
                        ]
                    }));
                    format!(
                        "{}{} nodes checked, {} findings\n",
                        crate::render::columns(&rows),
                        latest.len(),
                        found.len()
                    )
                }
            })?;
            if !found.is_empty() {
                let nodes: BTreeSet<&str> = found.iter().map(|f| f.node.as_str()).collect();
                anyhow::bail!(
                    "attest: {} of {} nodes run something the allow-list does not approve",
                    nodes.len(),
                    latest.len()
                );
            }
        }
    }
    Ok(())
}

fn drift_table(d: &linkwise_fleet::drift::Drift, nodes: usize) -> String {
    let mut out = String::new();
    for c in &d.classes {
        out.push_str(&format!("class {} ({} nodes)\n", c.class, c.nodes.len()));
    }
    let mut rows = vec![
        ["NODE", "FIELD", "VALUE", "EXPECTED", "LABELS"]
            .map(String::from)
            .to_vec(),
    ];
    for f in &d.findings {
        rows.push(vec![
            f.node.clone(),
            f.field.clone(),
            f.value.clone(),
            f.expected.clone(),
            f.labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
        ]);
    }
    out.push_str(&crate::render::columns(&rows));
    for l in &d.by_label {
        out.push_str(&format!(
            "only {}={} has {} = {} ({})\n",
            l.label,
            l.label_value,
            l.field,
            l.value,
            l.nodes.join(", ")
        ));
    }
    out.push_str(&format!(
        "{nodes} nodes, {} classes, {} findings\n",
        d.classes.len(),
        d.findings.len()
    ));
    out
}
