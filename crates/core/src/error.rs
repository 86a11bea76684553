//! Errors of the model crate: domain values, never I/O errors.

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can be wrong with a value handed to the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A text value (CPU list, PCI address, ...) does not parse.
    #[error("invalid {what} {value:?}: {reason}")]
    Parse {
        /// What kind of value was expected (for example "CPU list").
        what: &'static str,
        /// The text that was given.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A snapshot does not parse; `line` and `column` are 1-based.
    #[error("line {line}, column {column}: {field}{message}")]
    Syntax {
        /// Line of the offending input (1-based; 0 when unknown).
        line: usize,
        /// Column of the offending input (1-based; 0 when unknown).
        column: usize,
        /// The field path (for example `gpus[3].memoryBytes: `), or empty.
        field: String,
        /// The parser's message.
        message: String,
    },
    /// A snapshot has a `schemaVersion` this build does not read.
    #[error(
        "schemaVersion {found} is not supported (this build reads {supported}); upgrade linkwise or re-export the snapshot"
    )]
    UnsupportedVersion {
        /// The version in the file.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// A topology parses but is not consistent (duplicate ids, dangling links, ...).
    #[error("{field}: {message}")]
    Invalid {
        /// Where in the topology, as a path such as `links[4].b`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

impl Error {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}
