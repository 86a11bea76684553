//! `linkwise-discovery`: every source of facts about the GPU fabric, behind one trait.
//!
//! What it is: [`TopologySource`] and its implementations —
//! [`SysfsSource`] (Linux `/sys` and `/proc`, root path injectable),
//! `NvmlSource` (cargo feature `nvml`; `libnvidia-ml.so.1` loaded at run time),
//! [`TopoTextSource`] (`nvidia-smi topo -m` text), [`SnapshotSource`] (JSON / YAML
//! snapshots), [`ProfileSource`] (built-in profiles embedded in the binary) and
//! [`AutoSource`] (NVML when it loads, sysfs otherwise, each enriching the other).
//! All of them fill the same [`linkwise_core::Topology`].
//!
//! What it is not: a decision maker. Allocation, labels and reports live elsewhere;
//! this crate is the only one that touches `/sys`, `/proc` or NVML.
//!
//! Where to start: [`SourceSpec`] parses `--source` values and opens the backend.
#![warn(missing_docs)]

mod auto;
mod error;
pub mod merge;
#[cfg(feature = "nvml")]
mod nvml;
pub mod profiles;
mod snapshot;
pub mod sysfs;
mod throughput;
pub mod topotext;

use std::fmt;
use std::path::PathBuf;

use linkwise_core::Topology;

pub use auto::AutoSource;
pub use error::{Error, Result};
#[cfg(feature = "nvml")]
pub use nvml::{DEFAULT_IGNORED_XIDS, NvmlSource, nvlink_throughput_kib, watch_xids};
pub use profiles::ProfileSource;
pub use snapshot::SnapshotSource;
pub use sysfs::SysfsSource;
pub use topotext::TopoTextSource;

/// A source of facts about the fabric.
pub trait TopologySource: fmt::Debug + Send + Sync {
    /// Discovers the topology. Facts the source cannot see are recorded as
    /// [`linkwise_core::Gap`]s, not errors; an error means nothing usable was found
    /// (a file that does not parse, a profile that does not exist).
    fn discover(&self) -> Result<Topology>;
}

/// A parsed `--source` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// `auto`: NVML when it loads, sysfs otherwise.
    Auto,
    /// `sysfs` or `sysfs:ROOT`.
    Sysfs(PathBuf),
    /// `nvml`.
    Nvml,
    /// `topo-text:FILE` (`-` reads standard input).
    TopoText(PathBuf),
    /// `snapshot:FILE` (`-` reads standard input).
    Snapshot(PathBuf),
    /// `profile:NAME`.
    Profile(String),
}

// === impl SourceSpec ===

impl SourceSpec {
    /// Parses `auto`, `sysfs[:ROOT]`, `nvml`, `topo-text:FILE`, `snapshot:FILE`, `profile:NAME`.
    pub fn parse(s: &str) -> Result<Self> {
        let (kind, arg) = match s.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (s, None),
        };
        let need = |what: &str| -> Result<String> {
            match arg {
                Some(a) if !a.is_empty() => Ok(a.to_string()),
                _ => Err(Error::BadSource {
                    spec: s.to_string(),
                    reason: format!("{kind} needs {what}, as in {kind}:{}", what.to_uppercase()),
                }),
            }
        };
        Ok(match kind {
            "auto" => SourceSpec::Auto,
            "sysfs" => {
                SourceSpec::Sysfs(PathBuf::from(arg.filter(|a| !a.is_empty()).unwrap_or("/")))
            }
            "nvml" => SourceSpec::Nvml,
            "topo-text" => SourceSpec::TopoText(PathBuf::from(need("file")?)),
            "snapshot" => SourceSpec::Snapshot(PathBuf::from(need("file")?)),
            "profile" => SourceSpec::Profile(need("name")?),
            _ => {
                return Err(Error::BadSource {
                    spec: s.to_string(),
                    reason: "expected auto, sysfs[:ROOT], nvml, topo-text:FILE, snapshot:FILE or profile:NAME"
                        .to_string(),
                });
            }
        })
    }

    /// Opens the backend the spec names.
    pub fn open(&self) -> Result<Box<dyn TopologySource>> {
        Ok(match self {
            SourceSpec::Auto => Box::new(AutoSource::new()),
            SourceSpec::Sysfs(root) => Box::new(SysfsSource::new(root)),
            SourceSpec::Nvml => open_nvml()?,
            SourceSpec::TopoText(p) => Box::new(TopoTextSource::new(p)),
            SourceSpec::Snapshot(p) => Box::new(SnapshotSource::new(p)),
            SourceSpec::Profile(name) => Box::new(ProfileSource::new(name)?),
        })
    }
}

/// Reads a whole input file (`-` is standard input), bounded by
/// [`linkwise_fsio::max_input_bytes`].
pub(crate) fn read_input(path: &std::path::Path) -> Result<Vec<u8>> {
    linkwise_fsio::read_capped(path).map_err(|e| Error::Read {
        path: e.path,
        error: e.error,
    })
}

#[cfg(feature = "nvml")]
fn open_nvml() -> Result<Box<dyn TopologySource>> {
    Ok(Box::new(NvmlSource::new()))
}

#[cfg(not(feature = "nvml"))]
fn open_nvml() -> Result<Box<dyn TopologySource>> {
    Err(Error::NvmlUnavailable {
        reason:
            "this linkwise was built without the `nvml` feature; rebuild with `--features nvml`"
                .to_string(),
    })
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::Auto => f.write_str("auto"),
            SourceSpec::Sysfs(r) => write!(f, "sysfs:{}", r.display()),
            SourceSpec::Nvml => f.write_str("nvml"),
            SourceSpec::TopoText(p) => write!(f, "topo-text:{}", p.display()),
            SourceSpec::Snapshot(p) => write!(f, "snapshot:{}", p.display()),
            SourceSpec::Profile(n) => write!(f, "profile:{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_source_kind() {
        assert_eq!(SourceSpec::parse("auto").unwrap(), SourceSpec::Auto);
        assert_eq!(
            SourceSpec::parse("sysfs").unwrap(),
            SourceSpec::Sysfs("/".into())
        );
        assert_eq!(
            SourceSpec::parse("sysfs:/tmp/x").unwrap(),
            SourceSpec::Sysfs("/tmp/x".into())
        );
        assert_eq!(
            SourceSpec::parse("profile:dgx-h100").unwrap(),
            SourceSpec::Profile("dgx-h100".into())
        );
        assert_eq!(
            SourceSpec::parse("topo-text:a:b.txt").unwrap(),
            SourceSpec::TopoText("a:b.txt".into())
        );
        for bad in ["profile", "profile:", "snapshot:", "gpu:0", ""] {
            assert!(
                SourceSpec::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }
}
