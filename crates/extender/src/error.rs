//! The extender's error type.

use std::path::{Path, PathBuf};

/// What the extender refuses or cannot read. A request error is answered with 400 and
/// its message as the `Error` of the body.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request body is not a usable `ExtenderArgs`.
    #[error("{0}")]
    Request(String),
    /// The pod's managed resources or linkwise annotations cannot be read.
    #[error("{0}")]
    Pod(String),
    /// A node file (`--nodes-file`, or a file of its directory) is not a NodeList or Node.
    #[error("{}: {message}", path.display())]
    Nodes {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A node file cannot be read (I/O, size cap, encoding); the message names the file.
    #[error(transparent)]
    Input(#[from] linkwise_fsio::ReadError),
}

impl Error {
    pub(crate) fn request(message: &str) -> Error {
        Error::Request(message.to_string())
    }

    pub(crate) fn nodes(path: &Path, message: impl std::fmt::Display) -> Error {
        Error::Nodes {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }
}
