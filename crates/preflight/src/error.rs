//! What can go wrong before any check runs: an input that cannot be read or parsed.

/// Bad input: the CLI exits 2 with this message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A kernel config, cmdline or spec file could not be parsed; `line` 0 is the whole
    /// file (not text, not decompressible).
    #[error("{source_name}{}: {message}", if *line > 0 { format!(":{line}") } else { String::new() })]
    Parse {
        /// The file (or `built-in spec`).
        source_name: String,
        /// The 1-based line, 0 when it is about the whole file.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A spec file is valid YAML but says something inconsistent.
    #[error("{source_name}: {path}: {message}")]
    Spec {
        /// The spec file.
        source_name: String,
        /// The field (`roles.vfio-host.kernel[3].anyOf`).
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A role no spec rule knows.
    #[error("unknown role {role:?}: the spec defines {known}")]
    UnknownRole {
        /// The role asked for.
        role: String,
        /// The roles the spec has, comma-separated.
        known: String,
    },
}
