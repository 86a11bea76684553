//! The spec: what each role needs from the kernel configuration, as data.
//!
//! Built in from `spec/preflight.yaml` (the file documents the format), replaceable with
//! `--spec FILE`. Read strictly: an unknown field, a missing one or an inconsistent rule
//! is an error naming the field.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::Error;
use crate::kconfig::Arch;

/// The built-in spec's text.
pub const BUILT_IN: &str = include_str!("../spec/preflight.yaml");

/// The spec format version this build reads.
pub const VERSION: u32 = 1;

/// A whole spec.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The format version ([`VERSION`]).
    pub version: u32,
    /// The roles by name.
    pub roles: BTreeMap<String, Role>,
}

/// One role.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// What a node of this role is for.
    pub description: String,
    /// The kernel configuration rules.
    #[serde(default)]
    pub kernel: Vec<Rule>,
}

/// How a rule judges a missing or present option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Missing fails.
    Required,
    /// Missing warns.
    Recommended,
    /// Present fails.
    Forbidden,
}

impl Level {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Required => "required",
            Level::Recommended => "recommended",
            Level::Forbidden => "forbidden",
        }
    }
}

/// One kernel configuration rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    /// A stable id (`kernel.vfio-iommu-backend`).
    pub id: String,
    /// Required, recommended or forbidden.
    pub level: Level,
    /// The one option (without `CONFIG_`), or use `any_of`.
    #[serde(default)]
    pub option: Option<String>,
    /// Alternatives: any one satisfies the rule.
    #[serde(default)]
    pub any_of: Vec<Alternative>,
    /// The architectures the rule applies to (empty: all).
    #[serde(default)]
    pub arch: Vec<Arch>,
    /// Why it matters.
    pub why: String,
    /// What to do when it is not met.
    pub fix: String,
    /// A better fix on some architectures.
    #[serde(default)]
    pub fix_by_arch: BTreeMap<Arch, String>,
}

/// One way to satisfy a rule: every option enabled.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Alternative {
    /// `[A, B]`: the options, on every architecture.
    Options(Vec<String>),
    /// The long form.
    Full(FullAlternative),
}

/// An alternative with architecture limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FullAlternative {
    /// The options, all needed.
    pub options: Vec<String>,
    /// Counts only on these architectures (empty: all).
    #[serde(default)]
    pub arch: Vec<Arch>,
    /// Counts when present, but a mainline kernel cannot select it on these: the
    /// fragment picks another alternative there.
    #[serde(default)]
    pub not_buildable_on: Vec<Arch>,
}

impl Alternative {
    /// The options, all needed.
    pub fn options(&self) -> &[String] {
        match self {
            Alternative::Options(o) => o,
            Alternative::Full(f) => &f.options,
        }
    }

    /// Whether it counts on `arch` (`None`: unknown, every alternative counts).
    pub fn applies(&self, arch: Option<Arch>) -> bool {
        match (self, arch) {
            (Alternative::Full(f), Some(a)) => f.arch.is_empty() || f.arch.contains(&a),
            _ => true,
        }
    }

    /// Whether a mainline kernel for `arch` can select it.
    pub fn buildable(&self, arch: Arch) -> bool {
        self.applies(Some(arch))
            && match self {
                Alternative::Options(_) => true,
                Alternative::Full(f) => !f.not_buildable_on.contains(&arch),
            }
    }
}

impl Rule {
    /// The alternatives (the single `option` as one alternative).
    pub fn alternatives(&self) -> Vec<Alternative> {
        match &self.option {
            Some(o) => vec![Alternative::Options(vec![o.clone()])],
            None => self.any_of.clone(),
        }
    }

    /// Whether the rule applies on `arch`.
    pub fn applies(&self, arch: Arch) -> bool {
        self.arch.is_empty() || self.arch.contains(&arch)
    }

    /// The fix for `arch`.
    pub fn fix_for(&self, arch: Option<Arch>) -> &str {
        arch.and_then(|a| self.fix_by_arch.get(&a))
            .unwrap_or(&self.fix)
    }
}

impl Spec {
    /// The built-in spec.
    ///
    /// # Panics
    ///
    /// Never in a released build: a test parses the built-in spec.
    pub fn built_in() -> Spec {
        match Spec::parse(BUILT_IN, "built-in spec") {
            Ok(s) => s,
            Err(e) => panic!("the built-in preflight spec is invalid: {e}"),
        }
    }

    /// Parses and checks a spec; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Spec, Error> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let spec: Spec = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let line = inner.location().map_or(0, |l| l.line());
            Error::Parse {
                source_name: source.to_string(),
                line,
                message: if path == "." {
                    inner.to_string()
                } else {
                    format!("{path}: {inner}")
                },
            }
        })?;
        spec.check(source)?;
        Ok(spec)
    }

    fn check(&self, source: &str) -> Result<(), Error> {
        let bad = |path: String, message: String| Error::Spec {
            source_name: source.to_string(),
            path,
            message,
        };
        if self.version != VERSION {
            return Err(bad(
                "version".into(),
                format!(
                    "this linkwise reads spec version {VERSION}, not {}",
                    self.version
                ),
            ));
        }
        for (name, role) in &self.roles {
            let mut ids = std::collections::BTreeSet::new();
            for (i, rule) in role.kernel.iter().enumerate() {
                let at = format!("roles.{name}.kernel[{i}]");
                if !ids.insert(rule.id.as_str()) {
                    return Err(bad(
                        format!("{at}.id"),
                        format!("{} appears twice", rule.id),
                    ));
                }
                match (&rule.option, rule.any_of.is_empty()) {
                    (Some(_), false) => {
                        return Err(bad(at, "give either option or anyOf, not both".into()));
                    }
                    (None, true) => {
                        return Err(bad(at, "give option or anyOf".into()));
                    }
                    _ => {}
                }
                for (j, alt) in rule.alternatives().iter().enumerate() {
                    if alt.options().is_empty() {
                        return Err(bad(format!("{at}.anyOf[{j}]"), "no options".into()));
                    }
                    for o in alt.options() {
                        if o.is_empty()
                            || o.starts_with("CONFIG_")
                            || !o.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        {
                            return Err(bad(
                                format!("{at}.anyOf[{j}]"),
                                format!(
                                    "{o:?} is not an option name (write VFIO, not CONFIG_VFIO)"
                                ),
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The role names, comma-separated.
    pub fn role_names(&self) -> String {
        self.roles.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    /// The rules of `roles`, each id once with every role that asked for it, in the
    /// order the roles and their rules are given.
    pub fn rules_for(&self, roles: &[String]) -> Result<Vec<(&Rule, Vec<String>)>, Error> {
        let mut out: Vec<(&Rule, Vec<String>)> = Vec::new();
        for role in roles {
            let spec = self.roles.get(role).ok_or_else(|| Error::UnknownRole {
                role: role.clone(),
                known: self.role_names(),
            })?;
            for rule in &spec.kernel {
                match out.iter_mut().find(|(r, _)| r.id == rule.id) {
                    Some((_, rs)) => {
                        if !rs.contains(role) {
                            rs.push(role.clone());
                        }
                    }
                    None => out.push((rule, vec![role.clone()])),
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_built_in_spec_parses_and_has_the_three_roles() {
        let s = Spec::built_in();
        assert_eq!(s.role_names(), "gpu-host, rdma, vfio-host");
        let rules = s
            .rules_for(&["gpu-host".into(), "vfio-host".into()])
            .unwrap();
        let huge = rules
            .iter()
            .find(|(r, _)| r.id == "kernel.hugetlbfs")
            .unwrap();
        assert_eq!(huge.1, ["gpu-host", "vfio-host"], "one check, both roles");
    }

    #[test]
    fn a_bad_spec_names_the_field() {
        for (text, says) in [
            (
                "version: 1\nroles:\n  r:\n    description: d\n    kernel:\n      - id: a\n        level: sometimes\n        option: A\n        why: w\n        fix: f\n",
                "roles.r.kernel[0].level",
            ),
            (
                "version: 1\nroles:\n  r:\n    description: d\n    kernel:\n      - id: a\n        level: required\n        why: w\n        fix: f\n",
                "roles.r.kernel[0]: give option or anyOf",
            ),
            (
                "version: 1\nroles:\n  r:\n    description: d\n    kernel:\n      - id: a\n        level: required\n        option: CONFIG_A\n        why: w\n        fix: f\n",
                "not an option name",
            ),
            ("version: 2\nroles: {}\n", "version"),
            (
                "version: 1\nroles:\n  r:\n    descripton: d\n",
                "unknown field",
            ),
        ] {
            let err = Spec::parse(text, "my-spec.yaml").unwrap_err().to_string();
            assert!(err.contains("my-spec.yaml"), "{err}");
            assert!(err.contains(says), "{says}: {err}");
        }
        let err = Spec::built_in()
            .rules_for(&["gpu-hots".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("gpu-hots") && err.contains("gpu-host, rdma, vfio-host"),
            "{err}"
        );
    }
}
