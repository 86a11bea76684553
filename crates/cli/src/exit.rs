//! Exit codes: 0 success, 1 a runtime failure, 2 bad input (a file, a flag value).

use linkwise_discovery::Error as DiscoveryError;

/// Bad input: a malformed file or flag value.
pub const BAD_INPUT: u8 = 2;
/// Anything else that failed.
pub const FAILURE: u8 = 1;

/// The exit code for an error: [`BAD_INPUT`] when any cause is a discovery input error.
pub fn code_for(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
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
