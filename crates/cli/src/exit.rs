//! Exit codes: 0 success, 1 a runtime failure, 2 bad input (a file, a flag value).

use linkwise_discovery::Error as DiscoveryError;
use linkwise_sim::Error as SimError;

/// Bad input: a malformed file or flag value.
pub const BAD_INPUT: u8 = 2;
/// Anything else that failed.
pub const FAILURE: u8 = 1;

/// Bad input found by the CLI itself (a device reference, a flag value).
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// A well-formed request that cannot be met (exit 1, with the reason).
#[derive(Debug)]
pub struct Infeasible(pub String);

impl std::fmt::Display for Infeasible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot satisfy the request: {}", self.0)
    }
}

impl std::error::Error for Infeasible {}

/// `--check`: the file on disk differs from what would be written (exit 1, diff printed).
#[derive(Debug)]
pub struct Differs(pub String);

impl std::fmt::Display for Differs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} differs from the generated file (diff above)", self.0)
    }
}

impl std::error::Error for Differs {}

/// The exit code for an error: [`BAD_INPUT`] when any cause is a discovery input error,
/// a simulator input error (a trace CSV, a topology map), an unreadable input file, a
/// write target that is not a regular file or [`BadInput`], [`FAILURE`]
/// otherwise (an [`Infeasible`] request included).
pub fn code_for(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.downcast_ref::<BadInput>().is_some()
            || cause.downcast_ref::<linkwise_fsio::ReadError>().is_some()
            || cause.downcast_ref::<linkwise_preflight::Error>().is_some()
            || cause.downcast_ref::<linkwise_fleet::Error>().is_some()
            || cause.downcast_ref::<linkwise_validate::Error>().is_some()
        {
            return BAD_INPUT;
        }
        if let Some(w) = cause.downcast_ref::<linkwise_fsio::WriteError>() {
            return match w {
                linkwise_fsio::WriteError::NotAFile { .. } => BAD_INPUT,
                _ => FAILURE,
            };
        }
        if let Some(s) = cause.downcast_ref::<SimError>() {
            return match s {
                SimError::Input(_) => BAD_INPUT,
                SimError::Run(_) => FAILURE,
            };
        }
        if let Some(d) = cause.downcast_ref::<DiscoveryError>() {
            return match d {
                DiscoveryError::BadSource { .. }
                | DiscoveryError::UnknownProfile { .. }
                | DiscoveryError::Read { .. }
                | DiscoveryError::Snapshot { .. }
                | DiscoveryError::TopoText { .. } => BAD_INPUT,
                _ => FAILURE,
            };
        }
    }
    FAILURE
}

/// Whether the command line asked for JSON output: `-o json` / `--output json` (any
/// spelling clap accepts) on the subcommand or any subcommand below it. Then errors are
/// written as JSON too ([`print_error`]).
pub fn json_requested(matches: &clap::ArgMatches) -> bool {
    let mut m = Some(matches);
    while let Some(level) = m {
        for id in ["output", "format"] {
            if let Ok(Some(mut values)) = level.try_get_raw(id)
                && values.any(|v| v.to_str().is_some_and(|v| v.eq_ignore_ascii_case("json")))
            {
                return true;
            }
        }
        m = level.subcommand().map(|(_, sub)| sub);
    }
    false
}

/// [`json_requested`] for a command line clap refused (so there are no matches): scans
/// the words for `-o json`, `-ojson`, `-o=json`, `--output json` and `--output=json`
/// before any `--`.
pub fn json_requested_in<I, S>(args: I) -> bool
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut previous_is_flag = false;
    for arg in args {
        let Some(arg) = arg.as_ref().to_str() else {
            previous_is_flag = false;
            continue;
        };
        if arg == "--" {
            return false;
        }
        if previous_is_flag && arg == "json" {
            return true;
        }
        if matches!(arg, "-ojson" | "-o=json" | "--output=json") {
            return true;
        }
        previous_is_flag = matches!(arg, "-o" | "--output");
    }
    false
}

/// Writes the final error to stderr: `linkwise: error: <chain>`, or with `json` one
/// JSON object `{"error": "<chain>", "exit_code": N}` on one line.
pub fn print_error(message: &str, code: u8, json: bool) {
    if json {
        let v = serde_json::json!({ "error": message, "exit_code": code });
        eprintln!("{v}");
    } else {
        eprintln!("linkwise: error: {message}");
    }
}

#[cfg(test)]
mod tests {
    use super::json_requested_in;

    #[test]
    fn json_is_found_in_every_spelling_and_not_after_double_dash() {
        for args in [
            &["alloc", "-o", "json"][..],
            &["alloc", "-ojson"],
            &["alloc", "-o=json"],
            &["alloc", "--output", "json"],
            &["alloc", "--output=json"],
            &["slurm", "gres", "-o", "json"],
        ] {
            assert!(json_requested_in(args), "{args:?}");
        }
        for args in [
            &["alloc", "-o", "table"][..],
            &["alloc", "json"],
            &["alloc", "--", "-o", "json"],
            &["alloc", "--source", "json"],
        ] {
            assert!(!json_requested_in(args), "{args:?}");
        }
    }
}
