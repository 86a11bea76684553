//! One preflight run: find and read the inputs, run every part's checks, gather the report.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::kconfig::{Arch, KernelConfig};
use crate::report::{Check, Report};
use crate::spec::Spec;
use crate::{Error, files, kernel};

/// What a run reads.
#[derive(Debug, Clone)]
pub struct Options {
    /// The roles (`gpu-host`, `vfio-host`, `rdma`).
    pub roles: Vec<String>,
    /// `/` on the node; a captured tree otherwise; `None` to read no node at all, only
    /// the files given (a kernel config in a build pipeline).
    pub root: Option<PathBuf>,
    /// A kernel config given explicitly (else the running kernel's, found under `root`).
    pub kernel_config: Option<PathBuf>,
    /// The kernel command line given explicitly (else `ROOT/proc/cmdline`).
    pub cmdline: Option<PathBuf>,
    /// The modules directory given explicitly (else `ROOT/lib/modules/RELEASE`).
    pub modules_dir: Option<PathBuf>,
}

/// The facts a run found besides its checks.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Context {
    /// The roles checked.
    pub roles: Vec<String>,
    /// The kernel release under the root, when readable.
    pub release: Option<String>,
    /// The kernel config read, when one was.
    pub kernel_config: Option<PathBuf>,
    /// The architecture the config is for.
    pub arch: Option<Arch>,
}

/// Reads an input the user named: unreadable or unparsable is an [`Error`] (exit 2).
fn read_given(path: &Path) -> Result<Vec<u8>, Error> {
    linkwise_fsio::read_capped(path).map_err(|e| Error::Parse {
        source_name: path.display().to_string(),
        line: 0,
        message: e.error.to_string(),
    })
}

/// The kernel config: the given file (errors are bad input) or the first found under the
/// root (a check says which, or why none).
fn kernel_config(
    opts: &Options,
    release: Option<&str>,
) -> Result<(Option<(PathBuf, KernelConfig)>, Check), Error> {
    if let Some(path) = &opts.kernel_config {
        let bytes = read_given(path)?;
        let config = KernelConfig::parse_bytes(&bytes, &path.display().to_string())?;
        let check = Check::pass("kernel.config", describe(path, &config));
        return Ok((Some((path.clone(), config)), check));
    }
    let Some(root) = &opts.root else {
        return Ok((
            None,
            Check::skip(
                "kernel.config",
                "no kernel config given and no node root to find one under",
            )
            .with_fix("pass --kernel-config FILE or --root DIR"),
        ));
    };
    let places = files::config_candidates(root, release);
    for place in &places {
        let Ok(bytes) = linkwise_fsio::read_capped(place) else {
            continue;
        };
        return Ok(
            match KernelConfig::parse_bytes(&bytes, &place.display().to_string()) {
                Ok(config) => {
                    let check = Check::pass("kernel.config", describe(place, &config));
                    (Some((place.clone(), config)), check)
                }
                Err(e) => (
                    None,
                    Check::fail(
                        "kernel.config",
                        format!("the running kernel's config cannot be read: {e}"),
                        "pass a readable config with --kernel-config FILE",
                    ),
                ),
            },
        );
    }
    let looked = places
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    Ok((
        None,
        Check::skip("kernel.config", format!("no kernel config found (looked in {looked}); the kernel option checks did not run"))
            .with_fix("pass --kernel-config FILE, or load the configs module (modprobe configs) to get /proc/config.gz"),
    ))
}

fn describe(path: &Path, config: &KernelConfig) -> String {
    let arch = config
        .arch()
        .map_or_else(|| "architecture unknown".to_string(), |a| a.to_string());
    format!(
        "read {} ({arch}, {} options)",
        path.display(),
        config.options.len()
    )
}

/// Runs the file checks (kernel config, command line, modules) for `opts` against
/// `spec`; the live checks are added by the caller. Bad explicit input is an [`Error`].
pub fn file_checks(spec: &Spec, opts: &Options) -> Result<(Vec<Check>, Context), Error> {
    spec.rules_for(&opts.roles)?;
    let release = opts.root.as_deref().and_then(files::release);
    let (config, found) = kernel_config(opts, release.as_deref())?;
    let mut checks = vec![found];
    let arch = config.as_ref().and_then(|(_, c)| c.arch());
    if let Some((_, c)) = &config {
        checks.extend(kernel::checks(spec, &opts.roles, c)?);
    }
    let cmdline = match &opts.cmdline {
        Some(path) => {
            let text = String::from_utf8_lossy(&read_given(path)?).into_owned();
            Some((text, path.display().to_string()))
        }
        None => opts.root.as_ref().and_then(|root| {
            let path = root.join("proc/cmdline");
            std::fs::read_to_string(&path)
                .ok()
                .map(|t| (t, path.display().to_string()))
        }),
    };
    match cmdline {
        Some((text, source)) => {
            checks.extend(files::cmdline_checks(&text, &source, &opts.roles, arch))
        }
        None if opts.root.is_none() => {}
        None => checks.push(
            Check::skip(
                "cmdline",
                "no kernel command line to read (ROOT/proc/cmdline is absent)",
            )
            .with_fix("pass --cmdline FILE (a copy of /proc/cmdline)"),
        ),
    }
    let modules = opts.modules_dir.clone().or_else(|| {
        let root = opts.root.as_ref()?;
        release.as_ref().map(|r| root.join("lib/modules").join(r))
    });
    match modules {
        Some(dir) => checks.extend(files::module_checks(&dir, &opts.roles, config.as_ref().map(|(_, c)| c))),
        None if opts.root.is_none() => {}
        None => checks.push(
            Check::skip("modules", "the kernel release is unknown (ROOT/proc/sys/kernel/osrelease), so its modules directory is too")
                .with_fix("pass --modules-dir DIR"),
        ),
    }
    let context = Context {
        roles: opts.roles.clone(),
        release,
        kernel_config: config.map(|(p, _)| p),
        arch,
    };
    Ok((checks, context))
}

/// The JSON document `linkwise preflight -o json` prints.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    /// The checks, summary and verdict.
    #[serde(flatten)]
    pub report: Report,
    /// What was read.
    #[serde(flatten)]
    pub context: Context,
}
