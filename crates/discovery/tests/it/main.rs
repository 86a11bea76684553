//! Integration tests of the discovery backends (one binary for the crate).

// Helpers here are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod alloc;
mod profiles;
mod snapshot;
mod sysfs;
mod topotext;
