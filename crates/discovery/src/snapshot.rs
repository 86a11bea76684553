//! `snapshot:FILE`: a topology read back from a JSON or YAML snapshot.

use std::path::{Path, PathBuf};

use linkwise_core::Topology;

use crate::{Error, Result, TopologySource};

/// Reads a snapshot file written by `linkwise discover -o json|yaml`.
#[derive(Debug, Clone)]
pub struct SnapshotSource {
    path: PathBuf,
}

impl SnapshotSource {
    /// A source reading `path`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        SnapshotSource {
            path: path.as_ref().to_path_buf(),
        }
    }

    /// Parses snapshot text; `path` names the input in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Topology> {
        linkwise_core::snapshot::from_str(text).map_err(|error| Error::Snapshot {
            path: path.to_path_buf(),
            error,
        })
    }
}

impl TopologySource for SnapshotSource {
    fn discover(&self) -> Result<Topology> {
        let bytes = crate::read_input(&self.path)?;
        let text = String::from_utf8(bytes).map_err(|e| Error::Read {
            path: self.path.clone(),
            error: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "not UTF-8 text (invalid byte at offset {})",
                    e.utf8_error().valid_up_to()
                ),
            ),
        })?;
        Self::parse(&text, &self.path)
    }
}
