//! `topo-text:FILE`: import of `nvidia-smi topo -m` text.

use std::path::{Path, PathBuf};

use linkwise_core::Topology;

use crate::{Error, Result, TopologySource};

/// Reads a saved `nvidia-smi topo -m` output.
#[derive(Debug, Clone)]
pub struct TopoTextSource {
    path: PathBuf,
}

impl TopoTextSource {
    /// A source reading `path`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        TopoTextSource {
            path: path.as_ref().to_path_buf(),
        }
    }
}

impl TopologySource for TopoTextSource {
    fn discover(&self) -> Result<Topology> {
        let text = std::fs::read_to_string(&self.path).map_err(|source| Error::Read {
            path: self.path.clone(),
            source,
        })?;
        parse(&text, &self.path)
    }
}

/// Parses `nvidia-smi topo -m` text; `path` names the input in errors.
pub fn parse(_text: &str, path: &Path) -> Result<Topology> {
    Err(Error::TopoText {
        path: path.to_path_buf(),
        line: 1,
        message: "not implemented yet".to_string(),
    })
}
