//! Verdicts: one [`Check`] per thing examined, gathered in a [`Report`].

use serde::{Deserialize, Serialize};

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// What the role needs is there.
    Pass,
    /// Recommended but missing, or worth a look; the node is still ready.
    Warn,
    /// Required and missing (or forbidden and present): the node is not ready.
    Fail,
    /// Not applicable here, or not readable; the message says which.
    Skip,
}

impl Status {
    /// The lowercase name (`pass`, `warn`, `fail`, `skip`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// A stable dotted id: `kernel.vfio-iommu-backend`, `live.iommu-groups`, ...
    pub id: String,
    /// The verdict.
    pub status: Status,
    /// What was found, in one sentence.
    pub message: String,
    /// What to do; present whenever the status is not `pass`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// The kernel option (`CONFIG_...`) a kernel-option check is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub option: Option<String>,
    /// Options that satisfy the check instead of `option` (any one of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<String>,
    /// The roles that asked for this check (empty: every role).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

impl Check {
    /// A check with `id`, `status` and `message`, no fix, option or roles.
    pub fn new(id: impl Into<String>, status: Status, message: impl Into<String>) -> Self {
        Check {
            id: id.into(),
            status,
            message: message.into(),
            fix: None,
            option: None,
            alternatives: Vec::new(),
            roles: Vec::new(),
        }
    }

    /// A pass.
    pub fn pass(id: impl Into<String>, message: impl Into<String>) -> Self {
        Check::new(id, Status::Pass, message)
    }

    /// A skip: `why` says what was not applicable or not readable.
    pub fn skip(id: impl Into<String>, why: impl Into<String>) -> Self {
        Check::new(id, Status::Skip, why)
    }

    /// A warning with its fix.
    pub fn warn(id: impl Into<String>, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Check::new(id, Status::Warn, message).with_fix(fix)
    }

    /// A failure with its fix.
    pub fn fail(id: impl Into<String>, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Check::new(id, Status::Fail, message).with_fix(fix)
    }

    /// The same check with `fix`.
    #[must_use]
    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    /// The same check about kernel option `option`.
    #[must_use]
    pub fn with_option(mut self, option: impl Into<String>) -> Self {
        self.option = Some(option.into());
        self
    }

    /// The same check asked for by `roles`.
    #[must_use]
    pub fn with_roles<I, S>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.roles = roles.into_iter().map(Into::into).collect();
        self
    }
}

/// How many checks ended in each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Passes.
    pub pass: usize,
    /// Warnings.
    pub warn: usize,
    /// Failures.
    pub fail: usize,
    /// Skips.
    pub skip: usize,
}

/// Every check of one run, with the summary and the readiness verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
    /// Counts per status.
    pub summary: Summary,
    /// `true` when no check failed (warnings allowed).
    pub ready: bool,
}

impl Report {
    /// The report over `checks`.
    pub fn new(checks: Vec<Check>) -> Self {
        let mut summary = Summary::default();
        for c in &checks {
            match c.status {
                Status::Pass => summary.pass += 1,
                Status::Warn => summary.warn += 1,
                Status::Fail => summary.fail += 1,
                Status::Skip => summary.skip += 1,
            }
        }
        Report {
            ready: summary.fail == 0,
            checks,
            summary,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn one_failure_makes_the_node_not_ready_and_warnings_do_not() {
        let warned = Report::new(vec![
            Check::pass("a", "ok"),
            Check::warn("b", "no hugepages", "set vm.nr_hugepages"),
            Check::skip("c", "no GPU"),
        ]);
        assert!(warned.ready);
        assert_eq!(
            warned.summary,
            Summary {
                pass: 1,
                warn: 1,
                fail: 0,
                skip: 1
            }
        );
        let failed = Report::new(vec![Check::fail("d", "no IOMMU", "enable it")]);
        assert!(!failed.ready);
        assert_eq!(failed.summary.fail, 1);
    }

    #[test]
    fn json_names_the_status_lowercase_and_leaves_out_what_is_empty() {
        let c = Check::fail(
            "kernel.vfio",
            "CONFIG_VFIO is not set",
            "enable CONFIG_VFIO",
        )
        .with_option("CONFIG_VFIO")
        .with_roles(["vfio-host"]);
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["status"], "fail");
        assert_eq!(v["option"], "CONFIG_VFIO");
        assert_eq!(v["roles"][0], "vfio-host");
        assert!(v.get("alternatives").is_none());
        let p = serde_json::to_value(Check::pass("x", "fine")).unwrap();
        assert!(p.get("fix").is_none() && p.get("option").is_none());
    }
}
