//! Safe change for a GPU fleet: kernels, drivers and firmware rolled out canary first,
//! then in growing waves, each within an unavailability limit per hardware class.
//!
//! [`plan`] makes the plan from the fleet store's latest reports: canaries covering every
//! hardware class (distinct racks where labelled), growing waves, nodes with drift, a
//! failing preflight or a quarantine held out with the reason. The plan is a file a
//! person reviews and may edit ([`plan::Plan::parse`] reads it back). [`run`] executes it
//! node by node, each step recorded in the fleet database before and after it runs, so a
//! run killed at any point resumes without skipping or re-applying a node. After each
//! wave, [`gate`]s — PromQL queries against Prometheus — are evaluated while it bakes; a
//! failing gate rolls back and quarantines the wave's nodes it names.

pub mod gate;
pub mod kubernetes;
pub mod plan;
pub mod run;
