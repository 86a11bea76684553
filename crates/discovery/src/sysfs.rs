//! `sysfs[:ROOT]`: discovery from Linux `/sys` and `/proc`, with the root injectable.

use std::path::{Path, PathBuf};

use linkwise_core::Topology;

use crate::{Result, TopologySource};

/// Reads `ROOT/sys` and `ROOT/proc` (ROOT is `/` on a live host).
#[derive(Debug, Clone)]
pub struct SysfsSource {
    root: PathBuf,
}

impl SysfsSource {
    /// A source reading below `root`.
    pub fn new(root: impl AsRef<Path>) -> Self {
        SysfsSource {
            root: root.as_ref().to_path_buf(),
        }
    }
}

impl TopologySource for SysfsSource {
    fn discover(&self) -> Result<Topology> {
        let mut t = Topology {
            source: format!("sysfs:{}", self.root.display()),
            ..Topology::default()
        };
        t.gap("everything", "sysfs discovery is not implemented yet");
        Ok(t)
    }
}
