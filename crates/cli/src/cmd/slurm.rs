//! `linkwise slurm`: gres.conf, the slurm.conf node line and topology.conf from the fabric;
//! the `prolog`/`epilog` hooks that record which Slurm job holds which GPU.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use linkwise_core::Topology;
use linkwise_slurm::{LinksMode, Plugin, gres_conf_with, node_line_as, topology_conf};

use anyhow::Context;

use crate::exit::BadInput;

/// Generate Slurm configuration from the fabric (AutoDetect=off; Links from NVLink lanes).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Writing (-o FILE) is atomic. --check FILE compares instead of writing: exit 0 when the file \
is up to date, exit 1 and a diff when it differs (for config-management runs).\n\n\
Examples:\n  linkwise slurm gres --source profile:dgx1-v100\n  linkwise slurm gres -o /etc/slurm/gres.conf\n  \
linkwise slurm gres --check /etc/slurm/gres.conf\n  linkwise slurm gres --links steer --source profile:dgx1-v100\n  linkwise slurm node --source profile:dgx-h100\n  \
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

/// The job-mapping directory the hooks write and the exporter reads by default.
pub const DEFAULT_JOB_DIR: &str = "/run/linkwise/slurm-jobs";
/// The job id, in the Prolog and Epilog environment.
const JOB_ID_ENV: &str = "SLURM_JOB_ID";
/// The job's GPUs on this node as GRES indices, in the Prolog and Epilog environment.
const JOB_GPUS_ENV: &str = "SLURM_JOB_GPUS";
/// Read when [`JOB_GPUS_ENV`] is absent or empty (older Slurm, other launchers).
const CUDA_VISIBLE_DEVICES_ENV: &str = "CUDA_VISIBLE_DEVICES";
/// The lock every hook holds for its read-modify-write (slurmd runs the prologs of
/// different jobs concurrently). Hidden, like the temporary files, so that readers
/// looking for GPU index names skip it.
const LOCK_FILE: &str = ".lock";
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
    #[arg(long, default_value = DEFAULT_JOB_DIR)]
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
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadInput(format!(
            "{JOB_ID_ENV}={value:?} is not a Slurm job id (digits)"
        ))
        .into());
    }
    Ok(id.to_string())
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
    let path = dir.join(LOCK_FILE);
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
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(anyhow::Error::new(e).context(format!("reading {}", path.display()))),
    }
}

fn write_jobs(path: &Path, jobs: &[String]) -> anyhow::Result<()> {
    let mut text = jobs.join("\n");
    text.push('\n');
    crate::fsutil::write_atomic(path, text.as_bytes())
}

/// Adds `job` to the file of each GPU in `gpus` (once), under the directory lock.
fn prolog(dir: &Path, job: &str, gpus: &BTreeSet<u32>) -> anyhow::Result<()> {
    let _lock = lock_dir(dir)?;
    for gpu in gpus {
        let path = dir.join(gpu.to_string());
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
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
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
            let job = job_id(env(JOB_ID_ENV))?;
            let gpus = job_gpus(env(JOB_GPUS_ENV), env(CUDA_VISIBLE_DEVICES_ENV))?;
            if gpus.is_empty() {
                tracing::info!(job, "the job has no GPU on this node: nothing to record");
                return Ok(());
            }
            prolog(&hook.dir, &job, &gpus)
        }
        What::Epilog { hook } => epilog(&hook.dir, &job_id(env(JOB_ID_ENV))?),
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
    fn job_ids_are_digits() {
        assert_eq!(job_id(Some("42".into())).unwrap(), "42");
        assert_eq!(job_id(Some(" 42\n".into())).unwrap(), "42");
        assert!(job_id(None).unwrap_err().to_string().contains(JOB_ID_ENV));
        assert!(job_id(Some("".into())).is_err());
        assert!(job_id(Some("4 2".into())).is_err());
    }
}
