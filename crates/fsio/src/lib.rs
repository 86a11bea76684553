//! `linkwise-fsio`: the one owner of whole-file input and of replacing files.
//!
//! What it is: bounded reads of a whole file or standard input under one process-wide
//! cap ([`read_capped`], [`read_to_string_capped`], [`set_max_input_bytes`]; 64 MiB by
//! default, `--max-input-bytes`), and atomic writes ([`write_atomic`],
//! [`write_atomic_report`]: a temporary file in the same directory, synced, renamed).
//!
//! What it is not: a parser. Callers turn the bytes into snapshots, CSV rows, node lists;
//! they wrap [`ReadError`] and [`WriteError`] in their own errors.
#![warn(missing_docs)]

mod read;
mod write;

use std::path::PathBuf;

pub use read::{
    DEFAULT_MAX_INPUT_BYTES, human_bytes, max_input_bytes, parse_size, read_bounded, read_capped,
    read_capped_at, read_to_string_capped, set_max_input_bytes,
};
pub use write::{Written, write_atomic, write_atomic_report};

/// A whole file or standard input could not be read (I/O, over the cap, a directory,
/// not UTF-8); the message names the file.
#[derive(Debug, thiserror::Error)]
#[error("reading {}: {error}", path.display())]
pub struct ReadError {
    /// The file (`-` for standard input).
    pub path: PathBuf,
    /// The I/O error (`InvalidData` naming the cap when the input is too large).
    pub error: std::io::Error,
}

/// A file could not be replaced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The target exists and is not a regular file (a directory, a device, a FIFO):
    /// renaming over it would replace it. Bad input, not a failure of the system.
    #[error("{named} is {what}; not replacing it")]
    NotAFile {
        /// The target, with the link that led to it (`T (via L)`) where there is one.
        named: String,
        /// `a directory` or `not a regular file`.
        what: &'static str,
    },
    /// An I/O step failed; `context` is `writing FILE` (`writing T (via L)`). The
    /// message is complete on its own (it includes the I/O error's text).
    #[error("{context}: {error}")]
    Io {
        /// What was being written.
        context: String,
        /// The I/O error.
        error: std::io::Error,
    },
}
