//! Exit codes: 0 success, 1 a runtime failure, 2 bad input (a file, a flag value).

use linkwise_discovery::Error as DiscoveryError;

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

/// The exit code for an error: [`BAD_INPUT`] when any cause is a discovery input error
/// or [`BadInput`], [`FAILURE`] otherwise (an [`Infeasible`] request included).
pub fn code_for(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.downcast_ref::<BadInput>().is_some() {
            return BAD_INPUT;
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
