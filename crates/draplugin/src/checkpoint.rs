//! The checkpoint: which claims are prepared, with the answer given and the CDI spec
//! written, so that a restarted plugin answers the same and unprepares exactly what it
//! wrote. JSON, written atomically (temporary file and rename) after every change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The checkpoint's format version.
pub const VERSION: u32 = 1;

/// Why the checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// It exists and cannot be read.
    #[error("cannot read the checkpoint {}: {reason}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// It is not a checkpoint of this plugin.
    #[error(
        "the checkpoint {} is not a linkwise DRA checkpoint: {reason} (move it away to start afresh; \
         claims it listed are then prepared again by the kubelet)",
        path.display()
    )]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line and column.
        reason: String,
    },
    /// It could not be written.
    #[error("cannot write the checkpoint {}: {reason}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// One device of a prepared claim, as the answer named it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreparedDevice {
    /// The claim's requests this device serves.
    pub requests: Vec<String>,
    /// The pool.
    pub pool: String,
    /// The device name.
    pub device: String,
    /// Its CDI device ids.
    pub cdi_device_ids: Vec<String>,
    /// The share id, for a device allocated more than once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_id: Option<String>,
}

/// A prepared claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreparedClaim {
    /// The claim's namespace.
    pub namespace: String,
    /// The claim's name.
    pub name: String,
    /// The CDI spec written for it (none when it has no device of this driver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdi_spec: Option<PathBuf>,
    /// The devices answered.
    pub devices: Vec<PreparedDevice>,
}

/// Every prepared claim, by UID.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Checkpoint {
    /// [`VERSION`].
    pub version: u32,
    /// The driver that wrote it.
    pub driver: String,
    /// Prepared claims by UID.
    pub claims: BTreeMap<String, PreparedClaim>,
}

impl Checkpoint {
    /// An empty checkpoint of `driver`.
    pub fn new(driver: &str) -> Self {
        Checkpoint {
            version: VERSION,
            driver: driver.to_string(),
            claims: BTreeMap::new(),
        }
    }

    /// The checkpoint at `path`; an empty one of `driver` when there is no file. A file of
    /// another version or driver, or not JSON of this shape, is an error naming it.
    pub fn load(path: &Path, driver: &str) -> Result<Self, Error> {
        let text = match linkwise_fsio::read_to_string_capped(path) {
            Ok(t) => t,
            Err(e) if !path.exists() => {
                tracing::debug!(error = %e, file = %path.display(), "no checkpoint: none prepared");
                return Ok(Checkpoint::new(driver));
            }
            Err(e) => {
                return Err(Error::Read {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                });
            }
        };
        let parse = |reason: String| Error::Parse {
            path: path.to_path_buf(),
            reason,
        };
        let c: Checkpoint = serde_json::from_str(&text)
            .map_err(|e| parse(format!("line {}, column {}: {e}", e.line(), e.column())))?;
        if c.version != VERSION {
            return Err(parse(format!(
                "version {} (this plugin reads version {VERSION})",
                c.version
            )));
        }
        if c.driver != driver {
            return Err(parse(format!(
                "written by driver {:?}, not {driver:?}",
                c.driver
            )));
        }
        Ok(c)
    }

    /// Writes the checkpoint to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let write = |reason: String| Error::Write {
            path: path.to_path_buf(),
            reason,
        };
        let mut text = serde_json::to_string_pretty(self).map_err(|e| write(e.to_string()))?;
        text.push('\n');
        linkwise_fsio::write_atomic(path, text.as_bytes()).map_err(|e| write(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.json");
        assert_eq!(
            Checkpoint::load(&path, "gpu.linkwise.dev").unwrap(),
            Checkpoint::new("gpu.linkwise.dev")
        );
        let mut c = Checkpoint::new("gpu.linkwise.dev");
        c.claims.insert(
            "uid-1".into(),
            PreparedClaim {
                namespace: "ns".into(),
                name: "c".into(),
                cdi_spec: Some(dir.path().join("x.json")),
                devices: vec![PreparedDevice {
                    requests: vec!["gpus".into()],
                    pool: "n".into(),
                    device: "gpu-0".into(),
                    cdi_device_ids: vec!["gpu.linkwise.dev/gpu=uid-1-gpu-0".into()],
                    share_id: None,
                }],
            },
        );
        c.save(&path).unwrap();
        assert_eq!(Checkpoint::load(&path, "gpu.linkwise.dev").unwrap(), c);
        let other = Checkpoint::load(&path, "gpu.other.dev").unwrap_err();
        assert!(
            other.to_string().contains("not \"gpu.other.dev\""),
            "{other}"
        );
        std::fs::write(&path, "{\"version\": 1,\n \"driver\": 3}").unwrap();
        let bad = Checkpoint::load(&path, "gpu.linkwise.dev").unwrap_err();
        assert!(bad.to_string().contains("line 2"), "{bad}");
        assert!(bad.to_string().contains("checkpoint.json"), "{bad}");
    }
}
