//! `linkwise report`: this node's inventory report (docs/node-report.md). The report
//! format and its collection are `linkwise-fleet`'s; the preflight summary comes from
//! `linkwise-preflight`; this is the arguments, discovery and writing.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use linkwise_discovery::SourceSpec;
use linkwise_fleet::PreflightSummary;
use linkwise_fleet::collect::{Inputs, collect};

use crate::exit::BadInput;

/// Print this node's inventory report: host, driver, GPUs, artefact digests, fabric
/// fingerprint and preflight verdict, as JSON (docs/node-report.md).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  linkwise report --labels rack=r07,batch=2026-11 > $(hostname).json\n  \
linkwise report --hash /boot/vmlinuz-$(uname -r) --hash /lib/firmware/nvidia/gsp.bin\n  \
linkwise report --source profile:dgx-h100 --node demo-1 -o table\n  \
linkwise report --out /var/lib/linkwise/report.json\n  \
linkwise report --push http://fleet.example:9470 --token-file /etc/linkwise/fleet-token"
)]
pub struct Args {
    #[arg(long, default_value = "auto", help = super::SOURCE_HELP)]
    source: String,
    /// The root the node's files are read under (default `/` for auto, nvml and sysfs
    /// sources; a profile, snapshot or topo text reads no machine unless --root is given).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// The node's name (default: the host name discovery found).
    #[arg(long)]
    node: Option<String>,
    /// Labels, `key=value`, comma-separated or repeated (rack, batch, site, ...).
    #[arg(long, value_delimiter = ',', value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Also hash this file (repeatable); named by the path as given.
    #[arg(long = "hash", value_name = "PATH")]
    hash: Vec<PathBuf>,
    /// The roles for the preflight summary.
    #[arg(long = "role", value_delimiter = ',', default_value = "gpu-host")]
    roles: Vec<String>,
    /// Leave the preflight summary out.
    #[arg(long)]
    no_preflight: bool,
    /// Write the report to FILE (atomically) instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Post the report to a fleet server (`linkwise fleet serve`) instead of printing it;
    /// retried with backoff while the server is unreachable.
    #[arg(long, value_name = "URL", requires = "token_file")]
    push: Option<String>,
    /// The bearer token for --push, in a file.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// A PEM CA certificate trusted for an https --push URL, besides the system's.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Tries for --push before giving up (0.5 s doubling to 30 s between them).
    #[arg(long, default_value_t = 6, value_name = "N")]
    push_attempts: u32,
    /// Output format: the JSON report, or a short table.
    #[arg(short, long, value_enum, default_value_t = Output::Json)]
    output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Json,
    Table,
}

fn labels(raw: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for l in raw.iter().map(|l| l.trim()).filter(|l| !l.is_empty()) {
        let (k, v) = l
            .split_once('=')
            .filter(|(k, _)| !k.trim().is_empty())
            .ok_or_else(|| BadInput(format!("label {l:?} is not KEY=VALUE")))?;
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

fn preflight(
    root: &std::path::Path,
    roles: &[String],
    topo: &linkwise_core::Topology,
) -> anyhow::Result<PreflightSummary> {
    let spec = linkwise_preflight::Spec::built_in();
    let opts = linkwise_preflight::run::Options {
        roles: roles.to_vec(),
        root: Some(root.to_path_buf()),
        kernel_config: None,
        cmdline: None,
        modules_dir: None,
    };
    let (mut checks, _) = linkwise_preflight::run::file_checks(&spec, &opts)?;
    checks.extend(linkwise_preflight::live::checks(
        &linkwise_preflight::live::LiveInput {
            root,
            roles,
            topology: Some(topo),
        },
    ));
    let report = linkwise_preflight::Report::new(checks);
    Ok(PreflightSummary {
        roles: roles.to_vec(),
        ready: report.ready,
        pass: report.summary.pass,
        warn: report.summary.warn,
        fail: report.summary.fail,
        skip: report.summary.skip,
        failed: report
            .checks
            .iter()
            .filter(|c| c.status == linkwise_preflight::Status::Fail)
            .map(|c| c.id.clone())
            .collect(),
    })
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let spec = SourceSpec::parse(&a.source)?;
    let machine = matches!(
        spec,
        SourceSpec::Auto | SourceSpec::Nvml | SourceSpec::Sysfs(_)
    );
    let root = a.root.clone().or_else(|| match &spec {
        SourceSpec::Sysfs(r) => Some(r.clone()),
        _ if machine => Some(PathBuf::from("/")),
        _ => None,
    });
    let topo = super::discover_spec(&spec)?;
    let summary = match (&root, a.no_preflight) {
        (Some(r), false) => Some(preflight(r, &a.roles, &topo)?),
        _ => None,
    };
    let inputs = Inputs {
        topology: &topo,
        root: root.as_deref(),
        node: a.node.clone(),
        labels: labels(&a.labels)?,
        hash: a.hash.clone(),
        preflight: summary,
        collected_at: Some(
            jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string(),
        ),
    };
    let report = collect(&inputs)?;
    if let Some(url) = &a.push {
        let token_file = a
            .token_file
            .as_deref()
            .ok_or_else(|| BadInput("--push needs --token-file".into()))?;
        let options = linkwise_fleet::push::PushOptions {
            attempts: a.push_attempts.max(1),
            ca_file: a.ca_file.clone(),
            ..linkwise_fleet::push::PushOptions::new(
                url.clone(),
                super::fleet::read_token(token_file)?,
            )
        };
        let body = serde_json::to_string(&report)?;
        let pushed = super::serve::block_on(linkwise_fleet::push::push(body, &options))?.map_err(
            |e| match e {
                linkwise_fleet::push::PushError::Setup(m) => anyhow::Error::from(BadInput(m)),
                e => anyhow::Error::from(e),
            },
        )?;
        eprintln!(
            "linkwise: report of {} pushed to {url}: {} (id {}, {} tr{})",
            report.node,
            if pushed.ingested.stored {
                "stored"
            } else {
                "already stored"
            },
            pushed.ingested.id,
            pushed.attempts,
            if pushed.attempts == 1 { "y" } else { "ies" }
        );
        if let Some(path) = &a.out {
            linkwise_fsio::write_atomic(
                path,
                (serde_json::to_string_pretty(&report)? + "\n").as_bytes(),
            )?;
        }
        return Ok(());
    }
    let text = match a.output {
        Output::Json => serde_json::to_string_pretty(&report)? + "\n",
        Output::Table => table(&report),
    };
    match &a.out {
        Some(path) => linkwise_fsio::write_atomic(path, text.as_bytes())?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(())
}

pub fn table(r: &linkwise_fleet::NodeReport) -> String {
    let mut rows = vec![
        vec!["node".to_string(), r.node.clone()],
        vec![
            "labels".into(),
            r.labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
        ],
        vec![
            "host".into(),
            format!(
                "{} {} {}",
                r.host.arch,
                r.host.kernel,
                r.host.board.as_deref().unwrap_or("")
            ),
        ],
        vec![
            "driver".into(),
            r.driver.version.clone().unwrap_or_else(|| "none".into()),
        ],
        vec!["gpus".into(), r.gpus.len().to_string()],
        vec!["artifacts".into(), r.artifacts.len().to_string()],
        vec![
            "fingerprint".into(),
            r.topology_fingerprint.clone().unwrap_or_default(),
        ],
    ];
    if let Some(p) = &r.preflight {
        rows.push(vec![
            "preflight".into(),
            format!(
                "{} ({} pass, {} warn, {} fail, {} skip)",
                if p.ready { "ready" } else { "NOT READY" },
                p.pass,
                p.warn,
                p.fail,
                p.skip
            ),
        ]);
    }
    crate::render::columns(&rows)
}
