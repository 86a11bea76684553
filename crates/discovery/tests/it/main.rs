//! Integration tests of the discovery backends (one binary for the crate).

mod profiles;
mod snapshot;
mod sysfs;
mod topotext;

/// The repository root (fixtures live under `fixtures/`).
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
