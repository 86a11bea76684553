//! `linkwise slurm`: gres.conf, the slurm.conf node line and topology.conf from the fabric;
//! the `prolog`/`epilog` hooks that record which Slurm job holds which GPU.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use linkwise_core::Topology;
use linkwise_core::conventions::jobdir;
use linkwise_slurm::{
    LinksMode, Plugin, TopologyLayout, check_node_name, cluster_conflicts, gres_conf_regenerate,
    gres_lines, node_fields, topology_conf_regenerate, topology_layout, without_version,
};

use anyhow::Context;
use serde_json::json;

use crate::exit::BadInput;

/// Generate Slurm configuration from the fabric (AutoDetect=off; Links from NVLink lanes).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "-o/--output selects the format: text (the Slurm configuration) or json (the same \
facts as JSON). --out FILE writes atomically (a symlink is written through to its target; the file keeps \
its mode and owner) and says on stderr what it wrote. --check FILE compares instead of writing: exit 0 \
when the file is up to date (the linkwise version in its header comment aside), exit 1 and a diff when it \
differs or does not exist (for config-management runs).\n\n\
Examples:\n  linkwise slurm gres --source profile:dgx1-v100\n  linkwise slurm gres --out /etc/slurm/gres.conf\n  \
linkwise slurm gres --check /etc/slurm/gres.conf\n  linkwise slurm gres --source profile:dgx1-v100 -o json\n  \
linkwise slurm gres --links steer --source profile:dgx1-v100\n  linkwise slurm node --source profile:dgx-h100\n  \
linkwise slurm gres --source topo-text:topo.txt --node-name gpu07\n  \
linkwise slurm topology --cluster snapshots/ --plugin block\n  \
linkwise slurm prolog    (from slurm.conf Prolog=; see `linkwise slurm prolog --help`)"
)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// gres.conf for one node: one line per GPU in PCI bus order with Type, File, Cores, Links.
    Gres {
        #[arg(long, default_value = "auto", help = super::SOURCE_HELP)]
        source: String,
        /// The host (default: the source's first).
        #[arg(long)]
        host: Option<String>,
        /// The Slurm node name to write, when it differs from the host name (required for
        /// sources that do not name the host, such as topo-text).
        #[arg(long)]
        node_name: Option<String>,
        /// Links= values: NVLink lane counts, or steering ranks that make Slurm 22.05's
        /// greedy choice take the sets linkwise would (see docs/slurm.md).
        #[arg(long, value_enum, default_value_t = LinksArg::Lanes)]
        links: LinksArg,
        #[command(flatten)]
        nvlink: super::NvlinkArgs,
        #[command(flatten)]
        out: Out,
    },
    /// The slurm.conf NodeName= line for one node.
    Node {
        #[arg(long, default_value = "auto", help = super::SOURCE_HELP)]
        source: String,
        /// The host (default: the source's first).
        #[arg(long)]
        host: Option<String>,
        /// The Slurm node name to write, when it differs from the host name (required for
        /// sources that do not name the host, such as topo-text).
        #[arg(long)]
        node_name: Option<String>,
        #[command(flatten)]
        nvlink: super::NvlinkArgs,
        #[command(flatten)]
        out: Out,
    },
    /// topology.conf grouping nodes by NVLink domain, then rack.
    Topology {
        /// A directory of node snapshots (`linkwise discover -o json|yaml`), one per node or domain.
        #[arg(long, required_unless_present = "source")]
        cluster: Option<PathBuf>,
        /// Sources to include (repeatable), in addition to the cluster directory.
        #[arg(long)]
        source: Vec<String>,
        /// tree (any Slurm) or block (Slurm 23.11+, for NVLink domains).
        #[arg(long, value_enum, default_value_t = PluginArg::Tree)]
        plugin: PluginArg,
        #[command(flatten)]
        nvlink: super::NvlinkArgs,
        #[command(flatten)]
        out: Out,
    },
    /// Slurm Prolog hook: record the job as holding its GPUs (exporter attribution).
    #[command(after_help = HOOK_HELP)]
    Prolog {
        #[command(flatten)]
        hook: Hook,
    },
    /// Slurm Epilog hook: remove the job from every GPU's job list.
    #[command(after_help = HOOK_HELP)]
    Epilog {
        #[command(flatten)]
        hook: Hook,
    },
}

/// The job id, in the Prolog and Epilog environment.
const JOB_ID_ENV: &str = "SLURM_JOB_ID";
/// The job's GPUs on this node as GRES indices, in the Prolog and Epilog environment.
const JOB_GPUS_ENV: &str = "SLURM_JOB_GPUS";
/// Read when [`JOB_GPUS_ENV`] is absent or empty (older Slurm, other launchers).
const CUDA_VISIBLE_DEVICES_ENV: &str = "CUDA_VISIBLE_DEVICES";
/// The highest GPU index a hook accepts (a typo like `0-99999` must not create 100k files).
const MAX_GPU_INDEX: u32 = 1023;

const HOOK_HELP: &str = "The job-mapping directory holds one file per GPU, named by its GRES index (the \
line number in gres.conf, which `linkwise slurm gres` writes in PCI bus order, so it is also the NVML \
index), with the id of each job holding the GPU on its own line: the HPC job mapping format of \
dcgm-exporter (--hpc-job-mapping-dir), which the linkwise exporter reads for its slurm_job label.\n\n\
prolog reads SLURM_JOB_ID (required) and SLURM_JOB_GPUS (else CUDA_VISIBLE_DEVICES: a comma list of \
indices and ranges, e.g. 0,2-3; absent or empty: nothing to do) and adds the job id to the file of each \
GPU. epilog removes the job id from every file and deletes the files left empty. Both hold an exclusive \
lock on DIR/.lock while they update, and replace each file atomically. Exit 2 when SLURM_JOB_ID is \
missing or the GPU list is malformed; a failing Prolog drains the node, so test the hooks first.\n\n\
Slurm runs Prolog and Epilog on the compute node as root (SlurmdUser), with SLURM_JOB_ID and \
SLURM_JOB_GPUS in the environment and no PATH: give full paths.\n\n\
Examples:\n  \
# /usr/local/sbin/linkwise-prolog (chmod 755)\n  \
#!/bin/sh\n  \
exec /usr/local/bin/linkwise slurm prolog\n\n  \
# /usr/local/sbin/linkwise-epilog (chmod 755)\n  \
#!/bin/sh\n  \
exec /usr/local/bin/linkwise slurm epilog\n\n  \
# slurm.conf (PrologFlags=Alloc runs the prolog when the job is allocated, not at its first step)\n  \
Prolog=/usr/local/sbin/linkwise-prolog\n  \
Epilog=/usr/local/sbin/linkwise-epilog\n  \
PrologFlags=Alloc\n\n  \
# by hand\n  \
SLURM_JOB_ID=42 SLURM_JOB_GPUS=0,2-3 linkwise slurm prolog --dir /tmp/jobs\n  \
SLURM_JOB_ID=42 linkwise slurm epilog --dir /tmp/jobs";

#[derive(Debug, clap::Args)]
struct Hook {
    /// The job-mapping directory (created when absent).
    #[arg(long, default_value = jobdir::DEFAULT_DIR)]
    dir: PathBuf,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LinksArg {
    /// NVLink lanes per pair (through NVSwitches: lanes both GPUs have to the switch).
    Lanes,
    /// Per-row ranks: the GPU linkwise would add first gets the highest value.
    Steer,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum PluginArg {
    Tree,
    Block,
}

#[derive(Debug, clap::Args)]
struct Out {
    /// Output format: text (the Slurm configuration) or json (the same facts).
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
    /// Write to FILE atomically instead of standard output (a symlink is written through;
    /// mode and owner are kept).
    #[arg(long, value_name = "FILE", conflicts_with = "check", value_parser = out_arg)]
    out: Option<PathBuf>,
    /// Compare with FILE (`-`: standard input): exit 0 when it is up to date, 1 and a
    /// diff when it differs.
    #[arg(long, value_name = "FILE", value_parser = file_arg)]
    check: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// The Slurm configuration text.
    Text,
    /// The same facts as JSON.
    Json,
}

/// Output format names of linkwise commands: given where a file is expected, they are
/// almost certainly meant for `-o`.
const FORMAT_WORDS: &[&str] = &[
    "text", "table", "json", "yaml", "yml", "nfd", "dot", "mermaid", "csv", "svg", "png",
    "markdown",
];

/// `--out`/`--check` values: a file, not empty, not a bare format word.
fn file_arg(s: &str) -> Result<PathBuf, String> {
    if s.trim().is_empty() {
        return Err("empty; give a file path".to_string());
    }
    if FORMAT_WORDS.iter().any(|w| s.eq_ignore_ascii_case(w)) {
        return Err(format!(
            "{s:?} is an output format, not a file: use -o {} to choose the format \
             (a file named {s} is ./{s})",
            s.to_ascii_lowercase()
        ));
    }
    Ok(PathBuf::from(s))
}

/// `--out` values: [`file_arg`], and not `-` (standard output is what no `--out` means).
fn out_arg(s: &str) -> Result<PathBuf, String> {
    if s == "-" {
        return Err("standard output is the default: leave --out out".to_string());
    }
    file_arg(s)
}

/// Refuses `--check -` when a source reads standard input too: one stream cannot be both.
fn check_stdin_once(out: &Out, sources: &[String]) -> anyhow::Result<()> {
    let reads_stdin = |s: &String| {
        linkwise_discovery::SourceSpec::parse(s).is_ok_and(|spec| super::reads_stdin(&spec))
    };
    if out.check.as_deref() == Some(Path::new("-")) && sources.iter().any(reads_stdin) {
        return Err(BadInput(
            "--check - and a --source reading standard input (...:-) cannot share it: give one \
             of them as a file"
                .to_string(),
        )
        .into());
    }
    Ok(())
}

/// The largest line-alignment table [`diff`] builds (old lines times new lines): 32 MiB.
const MAX_DIFF_CELLS: usize = 4 << 20;

/// A line diff (longest common subsequence): `-` old, `+` new, context lines unmarked.
fn diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let (n, m) = (a.len(), b.len());
    if n.saturating_mul(m) > MAX_DIFF_CELLS {
        // Far too different to align line by line in bounded memory: all out, all in.
        let mut out: String = a.iter().map(|l| format!("-{l}\n")).collect();
        out.extend(b.iter().map(|l| format!("+{l}\n")));
        return out;
    }
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // Removals first, as `diff -u` prints them.
            out.push_str(&format!("-{}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+{}\n", b[j]));
            j += 1;
        }
    }
    out
}

/// What a command produced: the text to print or write, and a few words for the
/// `wrote FILE (...)` line (`8 GPUs`).
struct Rendered {
    text: String,
    detail: String,
}

fn deliver(r: &Rendered, out: &Out) -> anyhow::Result<()> {
    if let Some(path) = &out.check {
        return check(path, &r.text, out.output);
    }
    match &out.out {
        Some(path) => {
            let written = linkwise_fsio::write_atomic_report(path, r.text.as_bytes())?;
            eprintln!("{}", written.line(&r.detail));
            Ok(())
        }
        None => crate::emit(&r.text),
    }
}

/// `--check FILE`: up to date when the file says what would be written, the linkwise
/// version in a text header aside.
fn check(path: &Path, text: &str, format: Format) -> anyhow::Result<()> {
    let current = match linkwise_fsio::read_to_string_capped(path) {
        Ok(t) => Some(t),
        Err(linkwise_fsio::ReadError { error, .. })
            if error.kind() == std::io::ErrorKind::NotFound =>
        {
            None
        }
        // Unreadable, too large, a directory, not text: an error, not "empty".
        Err(e) => return Err(e.into()),
    };
    let same = |a: &str| match format {
        Format::Text => without_version(a) == without_version(text),
        Format::Json => a == text,
    };
    match &current {
        Some(c) if c == text => {
            crate::emitln!("{} is up to date", path.display())?;
            Ok(())
        }
        Some(c) if same(c) => {
            crate::emitln!(
                "{} is up to date (written by another linkwise version)",
                path.display()
            )?;
            Ok(())
        }
        Some(c) => {
            crate::emit(&format!(
                "--- {}\n+++ generated\n{}",
                path.display(),
                diff(c, text)
            ))?;
            Err(anyhow::Error::new(crate::exit::Differs(
                path.display().to_string(),
            )))
        }
        None => {
            crate::emit(&format!(
                "--- {} (does not exist)\n+++ generated\n{}",
                path.display(),
                diff("", text)
            ))?;
            Err(anyhow::Error::new(crate::exit::Differs(format!(
                "{} (file does not exist)",
                path.display()
            ))))
        }
    }
}

/// `arg` as a shell word: as is when it is plainly safe, else single-quoted.
fn shell_word(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:,@%+=".contains(c))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// The command line that regenerates a file: `linkwise slurm WHAT` and the flags given
/// (name, value; an empty value for a switch), values quoted for the shell.
fn command_line(what: &str, flags: &[(&str, &str)]) -> String {
    let mut line = format!("linkwise slurm {what}");
    for (flag, value) in flags {
        line.push(' ');
        line.push_str(flag);
        if !value.is_empty() {
            line.push(' ');
            line.push_str(&shell_word(value));
        }
    }
    line
}

/// The topology of one node, the host in it, and the Slurm node name to write (checked).
fn one<'a>(
    source: &str,
    host: Option<&'a str>,
    node_name: Option<&'a str>,
    nvlink: super::NvlinkArgs,
) -> anyhow::Result<(Topology, String, String)> {
    let topo = super::discover_published(source, nvlink, "Slurm configuration")?;
    let hosts: Vec<&str> = topo.hosts.iter().map(|h| h.name.as_str()).collect();
    let host = match host {
        Some(h) if topo.host(h).is_none() => {
            return Err(BadInput(format!(
                "no host {h:?} in {}; hosts: {}",
                topo.source,
                hosts.join(", ")
            ))
            .into());
        }
        Some(h) => h.to_string(),
        None => match hosts.first() {
            Some(h) => (*h).to_string(),
            None => {
                return Err(
                    BadInput(format!("{} has no host: nothing to write", topo.source)).into(),
                );
            }
        },
    };
    if !topo.gpus.iter().any(|g| g.host == host) {
        return Err(BadInput(if hosts.len() > 1 {
            format!(
                "host {host} of {} has no GPU: nothing to write",
                topo.source
            )
        } else {
            format!("{} has no GPU: nothing to write", topo.source)
        })
        .into());
    }
    let name = match node_name {
        Some(n) => {
            check_node_name(n).map_err(|e| BadInput(format!("--node-name: {e}")))?;
            n.to_string()
        }
        None if host == UNNAMED_HOST => {
            return Err(BadInput(format!(
                "{} does not name its host (host {UNNAMED_HOST:?}, as nvidia-smi topo text gives \
                 none): give the Slurm node name with --node-name",
                topo.source
            ))
            .into());
        }
        None => {
            check_node_name(&host).map_err(|e| {
                BadInput(format!(
                    "the host name in {}: {e}; give the Slurm node name with --node-name",
                    topo.source
                ))
            })?;
            host.clone()
        }
    };
    Ok((topo, host, name))
}

/// The host name of sources that do not know it (topo-text): never a Slurm node name.
const UNNAMED_HOST: &str = "unknown";

fn cluster(
    dir: Option<&Path>,
    sources: &[String],
    nvlink: super::NvlinkArgs,
) -> anyhow::Result<Vec<Topology>> {
    let mut out = Vec::new();
    if let Some(dir) = dir {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| BadInput(format!("--cluster {}: {e}", dir.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                matches!(
                    p.extension().and_then(|x| x.to_str()),
                    Some("json" | "yaml" | "yml")
                )
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(BadInput(format!(
                "--cluster {}: no .json or .yaml snapshots",
                dir.display()
            ))
            .into());
        }
        for f in files {
            out.push(super::discover_spec_published(
                &linkwise_discovery::SourceSpec::Snapshot(f),
                nvlink,
                "topology.conf",
            )?);
        }
    }
    let mut given = BTreeSet::new();
    for s in sources {
        if !given.insert(s.as_str()) {
            return Err(BadInput(format!("--source {s} is given twice")).into());
        }
        out.push(super::discover_published(s, nvlink, "topology.conf")?);
    }
    for t in &out {
        for h in &t.hosts {
            if h.name == UNNAMED_HOST {
                return Err(BadInput(format!(
                    "{} does not name its host (host {UNNAMED_HOST:?}, as nvidia-smi topo text \
                     gives none); topology.conf needs node names: use snapshots taken with \
                     `linkwise discover -o yaml` on each node",
                    t.source
                ))
                .into());
            }
            check_node_name(&h.name).map_err(|e| BadInput(format!("{}: host {e}", t.source)))?;
        }
    }
    if let Some(conflict) = cluster_conflicts(&out).into_iter().next() {
        return Err(BadInput(format!("the inputs disagree: {conflict}")).into());
    }
    if out.iter().all(|t| t.hosts.is_empty()) {
        return Err(BadInput("the inputs name no node: nothing to write".to_string()).into());
    }
    Ok(out)
}

/// gres.conf, or its lines as JSON records.
fn gres(
    source: &str,
    host: Option<&str>,
    node_name: Option<&str>,
    links: LinksArg,
    nvlink: super::NvlinkArgs,
    format: Format,
) -> anyhow::Result<Rendered> {
    let (topo, host_name, name) = one(source, host, node_name, nvlink)?;
    let mode = match links {
        LinksArg::Lanes => LinksMode::Lanes,
        LinksArg::Steer => LinksMode::Steer,
    };
    let lines = gres_lines(&topo, Some(&host_name), Some(&name), mode);
    let detail = format!(
        "{} GPU{}",
        lines.len(),
        if lines.len() == 1 { "" } else { "s" }
    );
    let text = match format {
        Format::Text => {
            let mut flags = Vec::new();
            if mode == LinksMode::Steer {
                flags.push(("--links", "steer"));
            }
            flags.push(("--source", source));
            if let Some(h) = host {
                flags.push(("--host", h));
            }
            if let Some(n) = node_name {
                flags.push(("--node-name", n));
            }
            if nvlink.allow_missing_nvlink {
                flags.push(("--allow-missing-nvlink", ""));
            }
            gres_conf_regenerate(
                &topo,
                Some(&host_name),
                Some(&name),
                mode,
                &command_line("gres", &flags),
            )
        }
        Format::Json => {
            let records: Vec<serde_json::Value> = lines
                .iter()
                .map(|l| {
                    json!({
                        "node_name": l.node_name,
                        "name": l.name,
                        "type": l.gpu_type,
                        "file": l.file,
                        "cores": l.cores.map(|(lo, hi)| format!("{lo}-{hi}")),
                        "links": l.links,
                    })
                })
                .collect();
            serde_json::to_string_pretty(&records)? + "\n"
        }
    };
    Ok(Rendered { text, detail })
}

/// The slurm.conf node line, or its fields as a JSON object.
fn node(
    source: &str,
    host: Option<&str>,
    node_name: Option<&str>,
    nvlink: super::NvlinkArgs,
    format: Format,
) -> anyhow::Result<Rendered> {
    let (topo, host_name, name) = one(source, host, node_name, nvlink)?;
    let n = node_fields(&topo, Some(&host_name), Some(&name));
    let text = match format {
        Format::Text => format!("{n}\n"),
        Format::Json => {
            let v = json!({
                "node_name": n.node_name,
                "cpus": n.cpus,
                "boards": n.shape.map(|_| 1),
                "sockets_per_board": n.shape.map(|s| s.0),
                "cores_per_socket": n.shape.map(|s| s.1),
                "threads_per_core": n.shape.map(|s| s.2),
                "real_memory_mib": n.real_memory_mib,
                "gres": n.gres.as_ref().map(|(t, c)| json!({"name": "gpu", "type": t, "count": c})),
                "state": n.state,
            });
            serde_json::to_string_pretty(&v)? + "\n"
        }
    };
    Ok(Rendered {
        text,
        detail: format!("node {}", n.node_name),
    })
}

/// topology.conf, or its switches or blocks as JSON.
fn topology(
    dir: Option<&Path>,
    sources: &[String],
    plugin: PluginArg,
    nvlink: super::NvlinkArgs,
    format: Format,
) -> anyhow::Result<Rendered> {
    let (plugin, plugin_name) = match plugin {
        PluginArg::Tree => (Plugin::Tree, "tree"),
        PluginArg::Block => (Plugin::Block, "block"),
    };
    let topos = cluster(dir, sources, nvlink)?;
    let layout = topology_layout(&topos, plugin);
    let detail = match &layout {
        TopologyLayout::Tree { switches } => format!("{} switches", switches.len()),
        TopologyLayout::Block { blocks, .. } => format!("{} blocks", blocks.len()),
    };
    let text = match format {
        Format::Text => {
            let dir_text = dir.map(|d| d.display().to_string());
            let mut flags = vec![("--plugin", plugin_name)];
            if let Some(d) = &dir_text {
                flags.push(("--cluster", d));
            }
            for s in sources {
                flags.push(("--source", s));
            }
            if nvlink.allow_missing_nvlink {
                flags.push(("--allow-missing-nvlink", ""));
            }
            topology_conf_regenerate(&topos, plugin, &command_line("topology", &flags))
        }
        Format::Json => {
            let v = match &layout {
                TopologyLayout::Tree { switches } => json!({
                    "plugin": "tree",
                    "switches": switches
                        .iter()
                        .map(|s| json!({"name": s.name, "nodes": s.nodes, "switches": s.switches}))
                        .collect::<Vec<_>>(),
                }),
                TopologyLayout::Block {
                    blocks,
                    block_sizes,
                } => json!({
                    "plugin": "block",
                    "blocks": blocks
                        .iter()
                        .map(|b| json!({"name": b.name, "nodes": b.nodes}))
                        .collect::<Vec<_>>(),
                    "block_sizes": block_sizes,
                }),
            };
            serde_json::to_string_pretty(&v)? + "\n"
        }
    };
    Ok(Rendered { text, detail })
}

// === Slurm prolog / epilog hooks ===

/// The job id from the environment: required, ASCII digits (Slurm's numeric job id).
fn job_id(value: Option<String>) -> anyhow::Result<String> {
    let Some(value) = value else {
        return Err(BadInput(format!(
            "{JOB_ID_ENV} is not set: run this as a Slurm Prolog/Epilog, or set it by hand"
        ))
        .into());
    };
    let id = value.trim();
    // Slurm job ids are 32-bit, from 1; leading zeros would make "042" another job than "42".
    match id.parse::<u32>() {
        Ok(n) if n > 0 && id.bytes().all(|b| b.is_ascii_digit()) => Ok(n.to_string()),
        _ => Err(BadInput(format!(
            "{JOB_ID_ENV}={value:?} is not a Slurm job id (a number from 1 to {})",
            u32::MAX
        ))
        .into()),
    }
}

/// `--dir` of the hooks: a path that is a directory or does not exist yet.
fn check_hook_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.as_os_str().is_empty() {
        return Err(BadInput("--dir is empty; give the job-mapping directory".to_string()).into());
    }
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Err(BadInput(format!(
            "--dir {} exists and is not a directory",
            dir.display()
        ))
        .into()),
        _ => Ok(()),
    }
}

/// GRES indices from `0,2-3` style text (whitespace around items ignored). `var` names the
/// variable the text came from, for the error.
fn gpu_indices(var: &str, text: &str) -> anyhow::Result<BTreeSet<u32>> {
    let bad = |why: &str| -> anyhow::Error {
        BadInput(format!(
            "{var}={text:?}: {why} (expected GPU indices like 0,2-3)"
        ))
        .into()
    };
    let index = |s: &str| -> anyhow::Result<u32> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(&format!("{s:?} is not a GPU index")));
        }
        match s.parse::<u32>() {
            Ok(n) if n <= MAX_GPU_INDEX => Ok(n),
            _ => Err(bad(&format!(
                "{s} is above the highest index {MAX_GPU_INDEX}"
            ))),
        }
    };
    let mut out = BTreeSet::new();
    for item in text.split(',') {
        match item.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (index(lo)?, index(hi)?);
                if lo > hi {
                    return Err(bad(&format!("range {lo}-{hi} runs backwards")));
                }
                out.extend(lo..=hi);
            }
            None => {
                out.insert(index(item)?);
            }
        }
    }
    Ok(out)
}

/// The job's GPUs: `SLURM_JOB_GPUS`, else `CUDA_VISIBLE_DEVICES` (the first one set and
/// not blank); none when neither is.
fn job_gpus(slurm: Option<String>, cuda: Option<String>) -> anyhow::Result<BTreeSet<u32>> {
    let pick = [(JOB_GPUS_ENV, slurm), (CUDA_VISIBLE_DEVICES_ENV, cuda)]
        .into_iter()
        .find_map(|(var, v)| v.filter(|v| !v.trim().is_empty()).map(|v| (var, v)));
    match pick {
        Some((var, text)) => gpu_indices(var, &text),
        None => Ok(BTreeSet::new()),
    }
}

/// Holds the exclusive lock on `DIR/.lock` (created with the directory) until dropped.
fn lock_dir(dir: &Path) -> anyhow::Result<File> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the job-mapping directory {}", dir.display()))?;
    let path = dir.join(jobdir::LOCK_FILE);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    lock.lock()
        .with_context(|| format!("locking {}", path.display()))?;
    Ok(lock)
}

/// The job ids in a mapping file, in file order (blank lines dropped); none when absent.
fn read_jobs(path: &Path) -> anyhow::Result<Vec<String>> {
    match linkwise_fsio::read_to_string_capped(path) {
        Ok(text) => Ok(jobdir::parse(&text).map(str::to_string).collect()),
        Err(linkwise_fsio::ReadError { error, .. })
            if error.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(Vec::new())
        }
        Err(e) => Err(e.into()),
    }
}

fn write_jobs(path: &Path, jobs: &[String]) -> anyhow::Result<()> {
    let text = jobdir::render(jobs);
    Ok(linkwise_fsio::write_atomic(path, text.as_bytes())?)
}

/// Adds `job` to the file of each GPU in `gpus` (once), under the directory lock.
fn prolog(dir: &Path, job: &str, gpus: &BTreeSet<u32>) -> anyhow::Result<()> {
    let _lock = lock_dir(dir)?;
    for gpu in gpus {
        let path = dir.join(jobdir::file_name(*gpu));
        let mut jobs = read_jobs(&path)?;
        if !jobs.iter().any(|j| j == job) {
            jobs.push(job.to_string());
            write_jobs(&path, &jobs)?;
        }
    }
    tracing::info!(job, gpus = ?gpus, dir = %dir.display(), "job recorded on its GPUs");
    Ok(())
}

/// Removes `job` from every mapping file in `dir`, deleting files left empty, under the
/// directory lock. Hidden files (the lock, temporary files) are not mapping files.
fn epilog(dir: &Path, job: &str) -> anyhow::Result<()> {
    if !dir.is_dir() {
        tracing::info!(job, dir = %dir.display(), "no job-mapping directory: nothing to remove");
        return Ok(());
    }
    let _lock = lock_dir(dir)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| !jobdir::is_hidden(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    files.sort();
    for path in files {
        let jobs = read_jobs(&path)?;
        let kept: Vec<String> = jobs.iter().filter(|j| *j != job).cloned().collect();
        if kept.is_empty() {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(
                        anyhow::Error::new(e).context(format!("removing {}", path.display()))
                    );
                }
            }
        } else if kept.len() != jobs.len() {
            write_jobs(&path, &kept)?;
        }
    }
    tracing::info!(job, dir = %dir.display(), "job removed from its GPUs");
    Ok(())
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.what {
        What::Prolog { hook } => {
            check_hook_dir(&hook.dir)?;
            let job = job_id(env(JOB_ID_ENV))?;
            let gpus = job_gpus(env(JOB_GPUS_ENV), env(CUDA_VISIBLE_DEVICES_ENV))?;
            if gpus.is_empty() {
                tracing::info!(job, "the job has no GPU on this node: nothing to record");
                return Ok(());
            }
            prolog(&hook.dir, &job, &gpus)
        }
        What::Epilog { hook } => {
            check_hook_dir(&hook.dir)?;
            epilog(&hook.dir, &job_id(env(JOB_ID_ENV))?)
        }
        What::Gres {
            source,
            host,
            node_name,
            links,
            nvlink,
            out,
        } => {
            check_stdin_once(&out, std::slice::from_ref(&source))?;
            let r = gres(
                &source,
                host.as_deref(),
                node_name.as_deref(),
                links,
                nvlink,
                out.output,
            )?;
            deliver(&r, &out)
        }
        What::Node {
            source,
            host,
            node_name,
            nvlink,
            out,
        } => {
            check_stdin_once(&out, std::slice::from_ref(&source))?;
            let r = node(
                &source,
                host.as_deref(),
                node_name.as_deref(),
                nvlink,
                out.output,
            )?;
            deliver(&r, &out)
        }
        What::Topology {
            cluster: dir,
            source,
            plugin,
            nvlink,
            out,
        } => {
            check_stdin_once(&out, &source)?;
            let r = topology(dir.as_deref(), &source, plugin, nvlink, out.output)?;
            deliver(&r, &out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_marks_changed_lines() {
        assert_eq!(diff("a\nb\nc\n", "a\nx\nc\n"), "-b\n+x\n");
        assert_eq!(diff("", "a\n"), "+a\n");
        assert_eq!(diff("a\n", "a\n"), "");
        // A huge file (e.g. --check on the wrong file) is not aligned in quadratic memory.
        let huge = "x\n".repeat(MAX_DIFF_CELLS + 1);
        let d = diff(&huge, "x\ny\n");
        assert!(d.starts_with("-x\n") && d.ends_with("+x\n+y\n"));
    }

    #[test]
    fn gpu_lists_take_indices_and_ranges() {
        let set = |v: &[u32]| v.iter().copied().collect::<BTreeSet<u32>>();
        assert_eq!(gpu_indices("V", "0,2-3").unwrap(), set(&[0, 2, 3]));
        assert_eq!(gpu_indices("V", " 1 , 1,0-1 ").unwrap(), set(&[0, 1]));
        assert_eq!(gpu_indices("V", "5").unwrap(), set(&[5]));
        for bad in ["a,b", "0,", "3-1", "1-", "-1", "0-99999", "GPU-1234", "1.5"] {
            let e = gpu_indices("V", bad).unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{bad}: {e}");
        }
        assert!(job_gpus(None, None).unwrap().is_empty());
        assert!(job_gpus(Some(" ".into()), None).unwrap().is_empty());
        assert_eq!(job_gpus(None, Some("1".into())).unwrap(), set(&[1]));
        assert_eq!(
            job_gpus(Some("0".into()), Some("1".into())).unwrap(),
            set(&[0])
        );
    }

    #[test]
    fn regenerate_lines_quote_for_the_shell() {
        assert_eq!(
            command_line(
                "gres",
                &[
                    ("--source", "snapshot:/srv/my snaps/a.yaml"),
                    ("--node-name", "gpu07"),
                    ("--allow-missing-nvlink", ""),
                ]
            ),
            "linkwise slurm gres --source 'snapshot:/srv/my snaps/a.yaml' --node-name gpu07 \
             --allow-missing-nvlink"
        );
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn job_ids_are_digits() {
        assert_eq!(job_id(Some("42".into())).unwrap(), "42");
        assert_eq!(job_id(Some(" 42\n".into())).unwrap(), "42");
        assert!(job_id(None).unwrap_err().to_string().contains(JOB_ID_ENV));
        assert!(job_id(Some("".into())).is_err());
        assert!(job_id(Some("4 2".into())).is_err());
        // Out of Slurm's range, or another spelling of the same job.
        assert!(job_id(Some("0".into())).is_err());
        assert!(job_id(Some("4294967296".into())).is_err());
        assert!(job_id(Some("+42".into())).is_err());
        assert_eq!(job_id(Some("042".into())).unwrap(), "42");
    }
}
