//! The kernel configuration judged against the spec's rules for the asked roles, and the
//! config fragment a kernel build merges to meet them.

use crate::Error;
use crate::kconfig::{Arch, KernelConfig};
use crate::report::Check;
use crate::spec::{Alternative, Level, Rule, Spec};

/// One check per rule of `roles` (each rule once, with every role that asked for it).
pub fn checks(spec: &Spec, roles: &[String], config: &KernelConfig) -> Result<Vec<Check>, Error> {
    let arch = config.arch();
    let mut out = Vec::new();
    for (rule, rule_roles) in spec.rules_for(roles)? {
        let check = match arch {
            Some(a) if !rule.applies(a) => continue,
            None if !rule.arch.is_empty() => Check::skip(
                rule.id.clone(),
                format!(
                    "the config names no architecture (no CONFIG_X86_64, CONFIG_ARM64 or CONFIG_RISCV), and this check is for {}",
                    arch_list(&rule.arch)
                ),
            )
            .with_fix("check a complete kernel config (make olddefconfig writes one)"),
            _ => judge(rule, config, arch),
        };
        out.push(check.with_roles(rule_roles));
    }
    Ok(out)
}

fn judge(rule: &Rule, config: &KernelConfig, arch: Option<Arch>) -> Check {
    let alternatives: Vec<Alternative> = rule
        .alternatives()
        .into_iter()
        .filter(|a| a.applies(arch))
        .collect();
    let preferred = arch
        .and_then(|a| alternatives.iter().find(|alt| alt.buildable(a)))
        .or_else(|| alternatives.first());
    let option = preferred
        .and_then(|p| p.options().first())
        .map(|o| format!("CONFIG_{o}"));
    let others: Vec<String> = alternatives
        .iter()
        .filter(|a| preferred.is_none_or(|p| p.options() != a.options()))
        .map(|a| join(a.options(), " + ", |o| format!("CONFIG_{o}")))
        .collect();
    let settings = |alt: &Alternative| {
        join(alt.options(), ", ", |o| {
            format!("CONFIG_{o}={}", config.describe(o))
        })
    };
    let met = alternatives
        .iter()
        .find(|a| a.options().iter().all(|o| config.enabled(o)));
    let fix = rule.fix_for(arch).to_string();
    let mut check = match (rule.level, met) {
        (Level::Forbidden, _) => {
            let on: Vec<&String> = alternatives
                .iter()
                .flat_map(|a| a.options())
                .filter(|o| config.enabled(o))
                .collect();
            if on.is_empty() {
                Check::pass(
                    rule.id.clone(),
                    format!(
                        "{} (forbidden: {})",
                        all_settings(&alternatives, config),
                        rule.why
                    ),
                )
            } else {
                Check::fail(
                    rule.id.clone(),
                    format!(
                        "{} is set, and is forbidden: {}",
                        join(&on, ", ", |o| format!("CONFIG_{o}={}", config.describe(o))),
                        rule.why
                    ),
                    fix,
                )
            }
        }
        (_, Some(alt)) => Check::pass(rule.id.clone(), settings(alt)),
        (level, None) => {
            let found = if alternatives.len() == 1 {
                settings(&alternatives[0])
            } else {
                format!(
                    "none of the alternatives is set: {}",
                    join(&alternatives, "; or ", settings)
                )
            };
            let message = format!("{found} ({}: {})", level.as_str(), rule.why);
            if level == Level::Required {
                Check::fail(rule.id.clone(), message, fix)
            } else {
                Check::warn(rule.id.clone(), message, fix)
            }
        }
    };
    check.option = option;
    check.alternatives = others;
    check
}

fn all_settings(alternatives: &[Alternative], config: &KernelConfig) -> String {
    let names: Vec<&String> = alternatives.iter().flat_map(|a| a.options()).collect();
    join(&names, ", ", |o| {
        format!("CONFIG_{o}={}", config.describe(o))
    })
}

fn join<T>(items: &[T], sep: &str, f: impl Fn(&T) -> String) -> String {
    items.iter().map(f).collect::<Vec<_>>().join(sep)
}

fn arch_list(arch: &[Arch]) -> String {
    join(arch, ", ", |a| a.as_str().to_string())
}

/// The config fragment for `roles` on `arch`: `CONFIG_X=y` for what is required or
/// recommended (the alternative a mainline kernel for `arch` can select),
/// `# CONFIG_X is not set` for what is forbidden, each with a comment saying why.
pub fn fragment(spec: &Spec, roles: &[String], arch: Arch) -> Result<String, Error> {
    let mut out = format!(
        "# Kernel config fragment from linkwise preflight (spec version {}): roles {} on {arch}.\n# Merge it into the default config, e.g. scripts/kconfig/merge_config.sh .config THIS_FILE\n",
        spec.version,
        roles.join(", ")
    );
    let mut written: Vec<String> = Vec::new();
    for (rule, rule_roles) in spec.rules_for(roles)? {
        if !rule.applies(arch) {
            continue;
        }
        let alternatives = rule.alternatives();
        let lines: Vec<String> = if rule.level == Level::Forbidden {
            alternatives
                .iter()
                .filter(|a| a.applies(Some(arch)))
                .flat_map(|a| {
                    a.options()
                        .iter()
                        .map(|o| format!("# CONFIG_{o} is not set"))
                })
                .collect()
        } else {
            match alternatives.iter().find(|a| a.buildable(arch)) {
                Some(alt) => alt
                    .options()
                    .iter()
                    .map(|o| format!("CONFIG_{o}=y"))
                    .collect(),
                None => {
                    out.push_str(&format!(
                        "\n# {} ({}; {}): no option a mainline {arch} kernel can select; {}\n",
                        rule.id,
                        rule_roles.join(", "),
                        rule.level.as_str(),
                        rule.fix_for(Some(arch))
                    ));
                    continue;
                }
            }
        };
        let fresh: Vec<String> = lines.into_iter().filter(|l| !written.contains(l)).collect();
        if fresh.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "\n# {} ({}; {}): {}\n",
            rule.id,
            rule_roles.join(", "),
            rule.level.as_str(),
            rule.why
        ));
        for l in fresh {
            out.push_str(&l);
            out.push('\n');
            written.push(l);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::report::Status;

    fn config(text: &str) -> KernelConfig {
        KernelConfig::parse_text(text, "t").unwrap()
    }

    fn role(r: &str) -> Vec<String> {
        vec![r.to_string()]
    }

    #[test]
    fn the_vfio_backend_accepts_type1_or_iommufd_with_the_cdev() {
        let spec = Spec::built_in();
        let backend = |text: &str| {
            checks(&spec, &role("vfio-host"), &config(text))
                .unwrap()
                .into_iter()
                .find(|c| c.id == "kernel.vfio-iommu-backend")
                .unwrap()
        };
        let type1 = backend("CONFIG_X86_64=y\nCONFIG_VFIO_IOMMU_TYPE1=m\n");
        assert_eq!(type1.status, Status::Pass);
        assert_eq!(type1.message, "CONFIG_VFIO_IOMMU_TYPE1=m");
        let cdev = backend("CONFIG_RISCV=y\nCONFIG_IOMMUFD=y\nCONFIG_VFIO_DEVICE_CDEV=y\n");
        assert_eq!(cdev.status, Status::Pass, "{}", cdev.message);
        assert_eq!(
            cdev.option.as_deref(),
            Some("CONFIG_IOMMUFD"),
            "riscv prefers iommufd"
        );
        let half = backend("CONFIG_RISCV=y\nCONFIG_IOMMUFD=y\n");
        assert_eq!(half.status, Status::Fail);
        assert!(
            half.message.contains("CONFIG_VFIO_DEVICE_CDEV=not set"),
            "{}",
            half.message
        );
        assert!(half.fix.unwrap().contains("cannot be selected"));
        // A RISC-V kernel carrying the out-of-tree patch has type1: that counts.
        let patched = backend("CONFIG_RISCV=y\nCONFIG_VFIO_IOMMU_TYPE1=y\n");
        assert_eq!(patched.status, Status::Pass);
    }

    #[test]
    fn forbidden_present_fails_and_recommended_missing_warns() {
        let spec = Spec::built_in();
        let cs = checks(
            &spec,
            &role("vfio-host"),
            &config("CONFIG_ARM64=y\nCONFIG_VFIO_NOIOMMU=y\n"),
        )
        .unwrap();
        let noiommu = cs.iter().find(|c| c.id == "kernel.vfio-noiommu").unwrap();
        assert_eq!(noiommu.status, Status::Fail);
        assert!(noiommu.message.contains("CONFIG_VFIO_NOIOMMU=y"));
        let huge = cs.iter().find(|c| c.id == "kernel.hugetlbfs").unwrap();
        assert_eq!(huge.status, Status::Warn);
        // Arch-only alternatives: an arm64 config is judged on the SMMU drivers only.
        let drv = cs.iter().find(|c| c.id == "kernel.iommu-driver").unwrap();
        assert!(
            drv.message.contains("CONFIG_ARM_SMMU_V3") && !drv.message.contains("INTEL"),
            "{}",
            drv.message
        );
    }

    #[test]
    fn without_an_architecture_arch_rules_skip_and_the_rest_is_judged() {
        let cs = checks(
            &Spec::built_in(),
            &role("vfio-host"),
            &config("CONFIG_VFIO=m\n"),
        )
        .unwrap();
        let vfio = cs.iter().find(|c| c.id == "kernel.vfio").unwrap();
        assert_eq!(vfio.status, Status::Pass);
        assert!(
            cs.iter()
                .all(|c| c.status != Status::Skip || c.fix.is_some())
        );
    }

    #[test]
    fn the_riscv_fragment_takes_iommufd_and_never_type1() {
        let f = fragment(&Spec::built_in(), &role("vfio-host"), Arch::Riscv64).unwrap();
        assert!(
            f.contains("CONFIG_IOMMUFD=y\nCONFIG_VFIO_DEVICE_CDEV=y\n"),
            "{f}"
        );
        assert!(!f.contains("CONFIG_VFIO_IOMMU_TYPE1"), "{f}");
        assert!(f.contains("CONFIG_RISCV_IOMMU=y"), "{f}");
        assert!(f.contains("# CONFIG_VFIO_NOIOMMU is not set"), "{f}");
        let x86 = fragment(&Spec::built_in(), &role("vfio-host"), Arch::X86_64).unwrap();
        assert!(
            x86.contains("CONFIG_VFIO_IOMMU_TYPE1=y") && !x86.contains("IOMMUFD"),
            "{x86}"
        );
        assert!(
            x86.contains("CONFIG_INTEL_IOMMU=y") && !x86.contains("RISCV_IOMMU"),
            "{x86}"
        );
        // Every line is a comment, blank, or an option setting a kernel config accepts.
        let back = KernelConfig::parse_text(&f, "fragment").unwrap();
        assert!(back.enabled("IOMMUFD"));
    }
}
