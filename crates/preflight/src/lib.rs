//! Node readiness: is this node fit for the role it is meant for, before a job lands on it?
//!
//! Every check ends in a [`Check`]: a [`Status`] (`pass`, `warn`, `fail`, `skip`), what
//! was found, and, when it is not a pass, the fix. A [`Report`] gathers them with a
//! summary; a node is ready when no check failed (warnings allowed).
//!
//! Pure where it can be: the checks read files under a root directory given by the
//! caller (`/` on the node, a captured tree in tests), never the process's own view.

pub mod error;
pub mod files;
pub mod kconfig;
pub mod kernel;
pub mod live;
pub mod report;
pub mod run;
pub mod spec;

pub use error::Error;
pub use kconfig::{Arch, KernelConfig};
pub use report::{Check, Report, Status, Summary};
pub use spec::Spec;
