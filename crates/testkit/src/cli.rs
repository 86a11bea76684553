//! Running the `linkwise` binary from a test: where it is, one run with its output, and
//! the assertions every CLI test makes (it succeeded; it was refused as bad input).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The environment variable naming the binary under test (the RISC-V lab points it at
/// the cross-built riscv64 `linkwise`).
pub const BIN_ENV: &str = "LINKWISE_BIN";

/// The `linkwise` binary under test: `$LINKWISE_BIN` when set, else the one cargo built
/// beside the running test (`target/<profile>/linkwise`; a test binary lives in
/// `target/<profile>/deps/`). Cargo builds it before the `linkwise` package's
/// integration tests run.
///
/// # Panics
///
/// When neither exists: the message says how to build it.
pub fn linkwise_bin() -> PathBuf {
    if let Some(p) = std::env::var_os(BIN_ENV) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the running test's path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("a test binary in target/<profile>/deps");
    let bin = dir.join(format!("linkwise{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p linkwise` or set {BIN_ENV}",
        bin.display()
    );
    bin
}

/// `linkwise` as a command: `RUST_LOG` removed (tests see the default verbosity) and
/// standard input empty.
pub fn linkwise() -> Command {
    let mut c = Command::new(linkwise_bin());
    c.env_remove("RUST_LOG").stdin(Stdio::null());
    c
}

/// Runs `linkwise ARGS` to the end.
///
/// # Panics
///
/// When the binary cannot be started.
pub fn run(args: &[&str]) -> Output {
    linkwise().args(args).output().expect("run linkwise")
}

/// Standard output as text (lossy).
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text (lossy).
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `linkwise ARGS`, asserts exit 0 and returns standard output.
///
/// # Panics
///
/// When the command fails: the message has the arguments, the exit code and stderr.
pub fn ok(args: &[&str]) -> String {
    stdout(&run_ok(args))
}

/// Runs `linkwise ARGS`, asserts exit 0 and returns the whole output.
///
/// # Panics
///
/// When the command fails: the message has the arguments, the exit code and stderr.
pub fn run_ok(args: &[&str]) -> Output {
    let o = run(args);
    assert!(
        o.status.success(),
        "linkwise {args:?}: exit {:?}: {}",
        o.status.code(),
        stderr(&o)
    );
    o
}

/// Runs `linkwise ARGS`, asserts exit 2 (bad input) and returns standard error.
///
/// # Panics
///
/// When the exit code is not 2.
pub fn bad_input(args: &[&str]) -> String {
    let o = run(args);
    assert_eq!(
        o.status.code(),
        Some(2),
        "linkwise {args:?} is bad input: {}{}",
        stdout(&o),
        stderr(&o)
    );
    stderr(&o)
}

/// The built-in profile names, from `linkwise profiles` (one per line, name first).
pub fn profiles() -> Vec<String> {
    ok(&["profiles"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect()
}
