//! Dev-only helpers shared by linkwise's tests (a dev-dependency only, never published).
//!
//! - [`require`]: a test that needs something the environment may lack (the trace data in
//!   `../shared/data`, a validator on `PATH`, a Python module) asks for it first. When it
//!   is missing the test prints `SKIP: <test>: needs <what>` on the real stderr (visible
//!   even though the harness captures test output) and returns early; when the
//!   environment variable [`REQUIRE_ALL`] (`LINKWISE_REQUIRE_ALL`) is set, as `.ci/run`
//!   sets it (CI installs everything), the test panics with the same message instead, so
//!   no test passes by returning early there.
//! - [`repo_root`], [`fixtures`], [`shared_data`]: paths the tests read.
//! - [`cli`]: the `linkwise` binary under test, one run, and the assertions every CLI
//!   test makes; [`process::Spawned`]: a server started by a test, killed on drop, its
//!   stderr collected and its "serving on ADDR" line and sockets awaited.
//! - [`golden`]: golden files compared, or rewritten under `UPDATE_GOLDEN`.
//! - [`http`]: a raw HTTP/1.1 client for the servers' tests.
//! - [`wait`]: polling against a deadline instead of fixed sleeps.
//! - [`yaml`]: YAML read back by PyYAML (YAML 1.1), compared as JSON.
//! - [`postgres`]: a fresh database on the real PostgreSQL `.ci/run` starts.
//! - [`prometheus`]: a real Prometheus scraping the targets a test names.
//! - [`kubelet`]: a fake kubelet from the real protos (device plugin registration,
//!   PodResources); [`dra_kubelet`]: the kubelet's side of a DRA plugin (plugin watcher
//!   registration, prepare/unprepare, health); [`kube_api`]: a fake Kubernetes API server
//!   behind a `kube::Client`.
//!
//! ```no_run
//! use linkwise_testkit::{Prerequisite, require, shared_data};
//!
//! let nodes = shared_data().join("openb/openb_node_list_gpu_node.csv");
//! if !require(Prerequisite::file(&nodes)) {
//!     return;
//! }
//! // ... read `nodes`
//! ```

pub mod cli;
pub mod dra_kubelet;
pub mod golden;
pub mod http;
pub mod kube_api;
pub mod kubelet;
pub mod postgres;
pub mod process;
pub mod prometheus;
pub mod wait;
pub mod yaml;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The environment variable that turns a missing prerequisite into a failure: set to
/// anything but the empty string or `0`.
pub const REQUIRE_ALL: &str = "LINKWISE_REQUIRE_ALL";

/// The repository root (the workspace directory).
pub fn repo_root() -> PathBuf {
    // This crate is `crates/testkit`; its manifest directory is fixed at build time.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The repository's `fixtures/` directory.
pub fn fixtures() -> PathBuf {
    repo_root().join("fixtures")
}

/// `../shared/data` next to the checkout: the real traces, which are not part of the
/// repository (tests that read them [`require`] them).
pub fn shared_data() -> PathBuf {
    repo_root().join("../shared/data")
}

/// Something a test needs from its environment, and whether it is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prerequisite {
    what: String,
    present: bool,
}

// === impl Prerequisite ===

impl Prerequisite {
    /// A prerequisite described by `what` (completes "needs ..."), present or not.
    pub fn new(what: impl Into<String>, present: bool) -> Self {
        Prerequisite {
            what: what.into(),
            present,
        }
    }

    /// The file (or directory) at `path`.
    pub fn file(path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        Prerequisite::new(path.display().to_string(), path.exists())
    }

    /// `program args...` runs and exits 0 (e.g. `kubernetes-validate --version`);
    /// `hint` says how to install it.
    pub fn command(program: &str, args: &[&str], hint: &str) -> Self {
        let ok = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        Prerequisite::new(format!("`{program}` ({hint})"), ok)
    }

    /// `python3` can import `module`; `hint` says how to install it.
    pub fn python_module(module: &str, hint: &str) -> Self {
        let ok = Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        Prerequisite::new(format!("python3 with `{module}` ({hint})"), ok)
    }

    /// Whether it is there.
    pub fn is_present(&self) -> bool {
        self.present
    }

    /// What is needed, as in "needs ...".
    pub fn what(&self) -> &str {
        &self.what
    }
}

/// `true` when `needed` is present. When it is missing: prints
/// `SKIP: <test>: needs <what>` and returns `false` (the test then returns early), or,
/// when [`REQUIRE_ALL`] is set, panics with that message.
#[must_use = "the test must return (or skip the part) when this is false"]
pub fn require(needed: Prerequisite) -> bool {
    let all = std::env::var_os(REQUIRE_ALL).is_some_and(|v| !v.is_empty() && v != "0");
    require_with(&needed, all)
}

/// [`require`] with the environment variable read by the caller.
fn require_with(needed: &Prerequisite, require_all: bool) -> bool {
    if needed.present {
        return true;
    }
    let message = format!("SKIP: {}: needs {}", test_name(), needed.what);
    if require_all {
        panic!("{message} ({REQUIRE_ALL} is set: a missing prerequisite fails the test)");
    }
    // Straight to the process's stderr: the harness captures `eprintln!` of passing
    // tests, and a skip must be seen.
    let _ = writeln!(std::io::stderr(), "{message}");
    false
}

/// The running test's name: the test harness names each test's thread after it.
fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_present_prerequisite_passes_either_way() {
        let p = Prerequisite::file(repo_root().join("Cargo.toml"));
        assert!(p.is_present());
        assert!(require_with(&p, false));
        assert!(require_with(&p, true));
    }

    #[test]
    fn a_missing_prerequisite_skips_without_require_all() {
        let p = Prerequisite::file(repo_root().join("no/such/file"));
        assert!(!p.is_present());
        assert!(!require_with(&p, false));
    }

    #[test]
    fn a_missing_prerequisite_fails_under_require_all() {
        let p = Prerequisite::new("a thing that is not there", false);
        let err = std::panic::catch_unwind(|| require_with(&p, true)).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(
            msg.starts_with(
                "SKIP: tests::a_missing_prerequisite_fails_under_require_all: \
                 needs a thing that is not there"
            ),
            "{msg}"
        );
        assert!(msg.contains(REQUIRE_ALL), "{msg}");
    }

    #[test]
    fn a_command_that_fails_or_is_absent_is_missing() {
        assert!(
            !Prerequisite::command("linkwise-testkit-no-such-program", &[], "none").is_present()
        );
        assert!(Prerequisite::command("sh", &["-c", "exit 0"], "POSIX").is_present());
        assert!(!Prerequisite::command("sh", &["-c", "exit 3"], "POSIX").is_present());
    }

    #[test]
    fn paths_point_into_the_repository() {
        assert!(repo_root().join("Cargo.toml").is_file());
        assert!(fixtures().join("openb-mini/nodes.csv").is_file());
    }
}
