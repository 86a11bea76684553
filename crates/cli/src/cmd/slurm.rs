//! `linkwise slurm`: gres.conf, the slurm.conf node line and topology.conf from the fabric.

use std::path::{Path, PathBuf};

use linkwise_core::Topology;
use linkwise_slurm::{LinksMode, Plugin, gres_conf_with, node_line_as, topology_conf};

use crate::exit::BadInput;

/// Generate Slurm configuration from the fabric (AutoDetect=off; Links from NVLink lanes).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Writing (-o FILE) is atomic. --check FILE compares instead of writing: exit 0 when the file \
is up to date, exit 1 and a diff when it differs (for config-management runs).\n\n\
Examples:\n  linkwise slurm gres --source profile:dgx1-v100\n  linkwise slurm gres -o /etc/slurm/gres.conf\n  \
linkwise slurm gres --check /etc/slurm/gres.conf\n  linkwise slurm gres --links steer --source profile:dgx1-v100\n  linkwise slurm node --source profile:dgx-h100\n  \
linkwise slurm topology --cluster snapshots/ --plugin block"
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
        /// The Slurm node name to write, when it differs from the host name.
        #[arg(long)]
        node_name: Option<String>,
        /// Links= values: NVLink lane counts, or steering ranks that make Slurm 22.05's
        /// greedy choice take the sets linkwise would (see docs/slurm.md).
        #[arg(long, value_enum, default_value_t = LinksArg::Lanes)]
        links: LinksArg,
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
        /// The Slurm node name to write, when it differs from the host name.
        #[arg(long)]
        node_name: Option<String>,
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
        out: Out,
    },
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
    /// Write to FILE atomically instead of standard output.
    #[arg(short = 'o', long = "out", conflicts_with = "check")]
    out: Option<PathBuf>,
    /// Compare with FILE: exit 1 and print a diff when it differs.
    #[arg(long)]
    check: Option<PathBuf>,
}

/// A line diff (longest common subsequence): `-` old, `+` new, context lines unmarked.
fn diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let (n, m) = (a.len(), b.len());
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

fn deliver(text: &str, out: &Out) -> anyhow::Result<()> {
    if let Some(path) = &out.check {
        let current = std::fs::read_to_string(path).unwrap_or_default();
        if current == text {
            crate::emitln!("{} is up to date", path.display())?;
            return Ok(());
        }
        crate::emit(&format!(
            "--- {}\n+++ generated\n{}",
            path.display(),
            diff(&current, text)
        ))?;
        return Err(anyhow::Error::new(crate::exit::Differs(
            path.display().to_string(),
        )));
    }
    match &out.out {
        Some(path) => crate::fsutil::write_atomic(path, text.as_bytes()),
        None => crate::emit(text),
    }
}

fn one(source: &str, host: Option<&str>) -> anyhow::Result<Topology> {
    let topo = super::discover(source)?;
    if let Some(h) = host
        && topo.host(h).is_none()
    {
        return Err(BadInput(format!("no host {h:?} in {}", topo.source)).into());
    }
    if topo.gpus.is_empty() {
        return Err(BadInput(format!("{} has no GPU: nothing to write", topo.source)).into());
    }
    Ok(topo)
}

fn cluster(dir: Option<&Path>, sources: &[String]) -> anyhow::Result<Vec<Topology>> {
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
            out.push(super::discover(&format!("snapshot:{}", f.display()))?);
        }
    }
    for s in sources {
        out.push(super::discover(s)?);
    }
    Ok(out)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.what {
        What::Gres {
            source,
            host,
            node_name,
            links,
            out,
        } => deliver(
            &gres_conf_with(
                &one(&source, host.as_deref())?,
                host.as_deref(),
                node_name.as_deref(),
                match links {
                    LinksArg::Lanes => LinksMode::Lanes,
                    LinksArg::Steer => LinksMode::Steer,
                },
            ),
            &out,
        ),
        What::Node {
            source,
            host,
            node_name,
            out,
        } => deliver(
            &node_line_as(
                &one(&source, host.as_deref())?,
                host.as_deref(),
                node_name.as_deref(),
            ),
            &out,
        ),
        What::Topology {
            cluster: dir,
            source,
            plugin,
            out,
        } => {
            let plugin = match plugin {
                PluginArg::Tree => Plugin::Tree,
                PluginArg::Block => Plugin::Block,
            };
            deliver(
                &topology_conf(&cluster(dir.as_deref(), &source)?, plugin),
                &out,
            )
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
    }
}
