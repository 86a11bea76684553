//! `linkwise preflight`: is this node ready for its role? The checks are
//! `linkwise-preflight`'s; this is the arguments, the topology for the fabric checks and
//! the printing.

use std::io::Write;
use std::path::PathBuf;

use linkwise_preflight::run::{Document, Options};
use linkwise_preflight::{Arch, Check, KernelConfig, Report, Spec, Status};

use crate::exit::BadInput;

/// Check a node (or its files) for a role: kernel options, command line, modules, and the
/// live state of IOMMU, drivers, Secure Boot, NUMA, hugepages and the fabric.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Roles: gpu-host (NVIDIA driver on bare metal), vfio-host (GPU passthrough to VMs), \
rdma (GPUDirect RDMA). Exit: 0 ready (warnings allowed), 1 a required check failed, 2 bad input.\n\n\
Examples:\n  linkwise preflight                                   # this node, as a gpu-host\n  \
linkwise preflight --role vfio-host --role rdma\n  \
linkwise preflight --kernel-config /boot/config-6.12.38 --role vfio-host   # a config, before the kernel exists\n  \
linkwise preflight --kernel-config config.gz -o json | jq '.checks[] | select(.status==\"fail\")'\n  \
linkwise preflight --root /mnt/captured-node --role gpu-host\n  \
linkwise preflight --emit-kconfig-fragment --role vfio-host --arch riscv64 > vfio.config"
)]
pub struct Args {
    /// The node's role; repeat or comma-separate for several.
    #[arg(
        long = "role",
        value_name = "ROLE",
        value_delimiter = ',',
        default_value = "gpu-host"
    )]
    roles: Vec<String>,
    /// A kernel config to check (plain, .gz or .xz) instead of the running kernel's.
    #[arg(long, value_name = "FILE")]
    kernel_config: Option<PathBuf>,
    /// The kernel command line to check (default ROOT/proc/cmdline).
    #[arg(long, value_name = "FILE")]
    cmdline: Option<PathBuf>,
    /// The kernel's modules directory (default ROOT/lib/modules/RELEASE).
    #[arg(long, value_name = "DIR")]
    modules_dir: Option<PathBuf>,
    /// The root the node's files are read under: `/` on the node, a captured tree
    /// elsewhere. Default `/`, except with --kernel-config, which alone reads no node.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// A spec file replacing the built-in rules (same format; see docs/preflight.md).
    #[arg(long, value_name = "FILE")]
    spec: Option<PathBuf>,
    /// Only the file checks (kernel config, command line, modules): no live state.
    #[arg(long)]
    no_live: bool,
    /// Print the kernel config fragment the roles need, for --arch, and exit.
    #[arg(long)]
    emit_kconfig_fragment: bool,
    /// The architecture of the fragment: riscv64, x86_64 or arm64 (default: the
    /// --kernel-config's, else this machine's).
    #[arg(long, value_name = "ARCH")]
    arch: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Table,
    Json,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let spec = match &a.spec {
        Some(path) => {
            let text = linkwise_fsio::read_to_string_capped(path)?;
            Spec::parse(&text, &path.display().to_string())?
        }
        None => Spec::built_in(),
    };
    let roles: Vec<String> = a
        .roles
        .iter()
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .collect();
    spec.rules_for(&roles)?;
    if a.emit_kconfig_fragment {
        let arch = fragment_arch(&a)?;
        print!(
            "{}",
            linkwise_preflight::kernel::fragment(&spec, &roles, arch)?
        );
        return Ok(());
    }
    let opts = Options {
        roles,
        root: a
            .root
            .clone()
            .or_else(|| a.kernel_config.is_none().then(|| PathBuf::from("/"))),
        kernel_config: a.kernel_config.clone(),
        cmdline: a.cmdline.clone(),
        modules_dir: a.modules_dir.clone(),
    };
    let (mut checks, context) = linkwise_preflight::run::file_checks(&spec, &opts)?;
    if let Some(root) = opts.root.as_ref().filter(|_| !a.no_live) {
        checks.extend(live_checks(root, &opts));
    }
    let report = Report::new(checks);
    let ready = report.ready;
    let failed = report.summary.fail;
    let text = match a.output {
        Output::Json => {
            let mut t = serde_json::to_string_pretty(&Document { report, context })?;
            t.push('\n');
            t
        }
        Output::Table => table(&report),
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    if ready {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "not ready: {failed} check{} failed (each says how to fix it)",
            if failed == 1 { "" } else { "s" }
        ))
    }
}

/// The live checks (IOMMU groups, drivers, Secure Boot, NUMA, hugepages, NVIDIA driver,
/// fabric manager) under the root, with the topology discovered there (NVML on the
/// node, sysfs under a captured root) for the fabric expectations.
fn live_checks(root: &std::path::Path, opts: &Options) -> Vec<Check> {
    let source = if root == std::path::Path::new("/") {
        linkwise_discovery::SourceSpec::Auto
    } else {
        linkwise_discovery::SourceSpec::Sysfs(root.to_path_buf())
    };
    let topology = match super::discover_spec(&source) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!(source = %source, error = %format!("{e:#}"), "no topology for the fabric checks");
            None
        }
    };
    let input = linkwise_preflight::live::LiveInput {
        root,
        roles: &opts.roles,
        topology: topology.as_ref(),
    };
    linkwise_preflight::live::checks(&input)
}

fn fragment_arch(a: &Args) -> anyhow::Result<Arch> {
    if let Some(name) = &a.arch {
        return Arch::parse(name).ok_or_else(|| {
            anyhow::Error::new(BadInput(format!(
                "unknown architecture {name:?} (use riscv64, x86_64 or arm64)"
            )))
        });
    }
    if let Some(path) = &a.kernel_config {
        let bytes = linkwise_fsio::read_capped(path)?;
        if let Some(arch) = KernelConfig::parse_bytes(&bytes, &path.display().to_string())?.arch() {
            return Ok(arch);
        }
    }
    Arch::parse(std::env::consts::ARCH).ok_or_else(|| {
        anyhow::Error::new(BadInput(format!(
            "this machine's architecture ({}) has no rules; pass --arch riscv64, x86_64 or arm64",
            std::env::consts::ARCH
        )))
    })
}

fn table(report: &Report) -> String {
    let mut rows = vec![vec![
        "STATUS".to_string(),
        "CHECK".to_string(),
        "ROLES".to_string(),
        "FOUND".to_string(),
    ]];
    for c in &report.checks {
        rows.push(vec![
            c.status.as_str().to_string(),
            c.id.clone(),
            if c.roles.is_empty() {
                "-".to_string()
            } else {
                c.roles.join(",")
            },
            c.message.clone(),
        ]);
        if let Some(fix) = c.fix.as_ref().filter(|_| c.status != Status::Pass) {
            rows.push(vec![
                String::new(),
                String::new(),
                String::new(),
                format!("fix: {fix}"),
            ]);
        }
    }
    let s = &report.summary;
    format!(
        "{}\n{} pass, {} warn, {} fail, {} skip: {}\n",
        crate::render::columns(&rows).trim_end(),
        s.pass,
        s.warn,
        s.fail,
        s.skip,
        if report.ready { "ready" } else { "NOT READY" }
    )
}
