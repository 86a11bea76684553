//! `linkwise fleet`: drift and attestation over node reports (docs/node-report.md). The
//! analysis is `linkwise-fleet`'s; this reads the reports, keeps each node's latest, and
//! prints. (The fleet store and its server are to come; for now the reports are files.)

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use linkwise_fleet::NodeReport;
use linkwise_fleet::attest::{AllowList, attest};
use linkwise_fleet::drift::drift;

use crate::exit::BadInput;

/// Drift and attestation across a fleet's node reports.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  linkwise fleet drift --reports reports/\n  \
linkwise fleet drift --reports reports/ --by rack -o json\n  \
linkwise fleet attest --allow-list deploy/fleet/allow-list.yaml --reports reports/\n\n\
Reports are files made by `linkwise report` (or any producer of the format): JSON files,\n\
directories of them, or JSON lines on standard input (`-`). Each node's latest report\n\
(by collectedAt, else the last read) is used. Exit: 0 nothing found, 1 findings, 2 bad input."
)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
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
    /// Report files, directories of `*.json`, or `-` for JSON lines on standard input.
    #[arg(long = "reports", value_name = "PATH", required = true, num_args = 1..)]
    paths: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Table,
    Json,
}

fn read_reports(paths: &[PathBuf]) -> anyhow::Result<Vec<NodeReport>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(p)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "json"))
                .collect();
            inside.sort();
            files.extend(inside);
        } else {
            files.push(p.clone());
        }
    }
    let mut latest: BTreeMap<String, NodeReport> = BTreeMap::new();
    for f in files {
        for r in parse_file(&f)? {
            let newer = latest
                .get(&r.node)
                .is_none_or(|old| r.collected_at >= old.collected_at);
            if newer {
                latest.insert(r.node.clone(), r);
            }
        }
    }
    Ok(latest.into_values().collect())
}

/// One report per file, or JSON lines (standard input, or a file of several).
fn parse_file(path: &Path) -> anyhow::Result<Vec<NodeReport>> {
    let text = linkwise_fsio::read_to_string_capped(path)?;
    let name = path.display().to_string();
    if let Ok(one) = NodeReport::parse(&text, &name) {
        return Ok(vec![one]);
    }
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    if lines.len() <= 1 {
        return Ok(vec![
            NodeReport::parse(&text, &name).map_err(|e| BadInput(e.to_string()))?,
        ]);
    }
    lines
        .into_iter()
        .map(|(n, l)| {
            NodeReport::parse(l, &format!("{name}:{}", n + 1))
                .map_err(|e| BadInput(e.to_string()).into())
        })
        .collect()
}

fn emit(text: String) -> anyhow::Result<()> {
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

pub fn run(a: Args) -> anyhow::Result<()> {
    match a.what {
        What::Drift {
            reports,
            by,
            output,
        } => {
            let latest = read_reports(&reports.paths)?;
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
            let latest = read_reports(&reports.paths)?;
            let text = linkwise_fsio::read_to_string_capped(&allow_list)?;
            let allow = AllowList::parse(&text, &allow_list.display().to_string())
                .map_err(|e| BadInput(e.to_string()))?;
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
                let nodes: std::collections::BTreeSet<&str> =
                    found.iter().map(|f| f.node.as_str()).collect();
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
