//! Integration tests of the discovery backends (one binary for the crate).

// Helpers here are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod alloc;
mod profiles;
mod snapshot;
mod sysfs;
mod topotext;

/// The repository root (fixtures live under `fixtures/`).
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
