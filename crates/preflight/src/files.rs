//! Checks of the node's files that are not live state: where the kernel config is, the
//! kernel command line, and the modules installed for the running kernel.

use std::path::{Path, PathBuf};

use crate::kconfig::{Arch, KernelConfig};
use crate::report::Check;
pub use linkwise_modsig::find_modules;

/// Where the running kernel's config may be, relative to the root, in the order they
/// are searched (`RELEASE` is the kernel release, `uname -r`).
pub const CONFIG_PLACES: &[&str] = &[
    "proc/config.gz",
    "boot/config-RELEASE",
    "usr/src/linux-RELEASE/.config",
    "usr/src/linux/.config",
    "usr/lib/modules/RELEASE/config",
    "usr/lib/ostree-boot/config-RELEASE",
    "usr/lib/kernel/config-RELEASE",
    "usr/src/linux-headers-RELEASE/.config",
    "lib/modules/RELEASE/build/.config",
];

/// The running kernel's release under `root` (`ROOT/proc/sys/kernel/osrelease`).
pub fn release(root: &Path) -> Option<String> {
    std::fs::read_to_string(root.join("proc/sys/kernel/osrelease"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && !s.contains('/'))
}

/// The places searched for `release` under `root`, in order (the release-less ones
/// only when it is unknown).
pub fn config_candidates(root: &Path, release: Option<&str>) -> Vec<PathBuf> {
    CONFIG_PLACES
        .iter()
        .filter_map(|p| match release {
            Some(r) => Some(root.join(p.replace("RELEASE", r))),
            None if !p.contains("RELEASE") => Some(root.join(p)),
            None => None,
        })
        .collect()
}

/// The kernel command line judged for `roles`: IOMMU switched off (vfio-host), module
/// signature enforcement (gpu-host). `source` names where it came from.
pub fn cmdline_checks(
    cmdline: &str,
    source: &str,
    roles: &[String],
    arch: Option<Arch>,
) -> Vec<Check> {
    let words: Vec<&str> = cmdline.split_whitespace().collect();
    let value = |key: &str| {
        words
            .iter()
            .rev()
            .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    };
    let has = |r: &str| roles.iter().any(|x| x == r);
    let mut out = Vec::new();
    if has("vfio-host") {
        let off: Vec<String> = ["intel_iommu", "amd_iommu", "iommu"]
            .iter()
            .filter_map(|k| {
                value(k)
                    .filter(|v| v.split(',').any(|p| p == "off"))
                    .map(|v| format!("{k}={v}"))
            })
            .collect();
        let on: Vec<String> = ["intel_iommu", "amd_iommu", "iommu", "iommu.passthrough"]
            .iter()
            .filter_map(|k| value(k).map(|v| format!("{k}={v}")))
            .collect();
        let check = if !off.is_empty() {
            Check::fail(
                "cmdline.iommu",
                format!("{source} switches the IOMMU off ({})", off.join(" ")),
                "remove the parameter from the boot loader's kernel command line and reboot",
            )
        } else if on.is_empty() {
            let default = match arch {
                Some(Arch::X86_64) => {
                    " (on Intel the IOMMU is on only when the kernel was built with CONFIG_INTEL_IOMMU_DEFAULT_ON; add intel_iommu=on to be sure)"
                }
                _ => "",
            };
            Check::pass(
                "cmdline.iommu",
                format!("{source} sets no IOMMU parameter: the kernel's default applies{default}"),
            )
        } else {
            Check::pass("cmdline.iommu", format!("{source} sets {}", on.join(" ")))
        };
        out.push(check.with_roles(["vfio-host"]));
    }
    if has("gpu-host") {
        let check = match value("module.sig_enforce") {
            Some("1") => Check::pass(
                "cmdline.sig-enforce",
                format!(
                    "{source} sets module.sig_enforce=1: only validly signed modules load, so the NVIDIA modules must be signed with a key the kernel trusts (check them with linkwise modsig)"
                ),
            ),
            Some(v) => Check::pass(
                "cmdline.sig-enforce",
                format!(
                    "{source} sets module.sig_enforce={v}: signatures are not enforced by the command line"
                ),
            ),
            None => Check::pass(
                "cmdline.sig-enforce",
                format!(
                    "{source} does not set module.sig_enforce: enforcement follows CONFIG_MODULE_SIG_FORCE and lockdown"
                ),
            ),
        };
        out.push(check.with_roles(["gpu-host"]));
    }
    out
}

/// The modules the roles need, in `dir` (the running kernel's modules directory):
/// `nvidia` for gpu-host, `vfio-pci` for vfio-host (or built in, per `config`).
pub fn module_checks(dir: &Path, roles: &[String], config: Option<&KernelConfig>) -> Vec<Check> {
    let has = |r: &str| roles.iter().any(|x| x == r);
    let mut out = Vec::new();
    if !dir.is_dir() {
        let why = format!(
            "{} does not exist: the modules for this kernel cannot be checked",
            dir.display()
        );
        for (id, role) in [
            ("modules.nvidia", "gpu-host"),
            ("modules.vfio-pci", "vfio-host"),
        ] {
            if has(role) {
                out.push(
                    Check::skip(id, why.clone())
                        .with_fix("pass --modules-dir DIR (the kernel's /lib/modules/RELEASE)")
                        .with_roles([role]),
                );
            }
        }
        return out;
    }
    let shown = |found: &[PathBuf]| {
        found
            .iter()
            .map(|p| p.strip_prefix(dir).unwrap_or(p).display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if has("gpu-host") {
        let found = find_modules(
            dir,
            &["nvidia", "nvidia-uvm", "nvidia-modeset", "nvidia-drm"],
        );
        let check = if found.iter().any(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("nvidia.ko"))
        }) {
            Check::pass(
                "modules.nvidia",
                format!("NVIDIA modules in {}: {}", dir.display(), shown(&found)),
            )
        } else {
            Check::fail(
                "modules.nvidia",
                format!("no nvidia.ko under {}", dir.display()),
                "install the NVIDIA driver's kernel modules for this kernel (the distribution's precompiled package, or DKMS), then run depmod",
            )
        };
        out.push(check.with_roles(["gpu-host"]));
    }
    if has("vfio-host") {
        let built_in =
            config.is_some_and(|c| matches!(c.get("VFIO_PCI"), Some(crate::kconfig::Setting::Yes)));
        let found = find_modules(dir, &["vfio-pci"]);
        let check = if built_in {
            Check::pass(
                "modules.vfio-pci",
                "vfio-pci is built into the kernel (CONFIG_VFIO_PCI=y)",
            )
        } else if !found.is_empty() {
            Check::pass(
                "modules.vfio-pci",
                format!("vfio-pci in {}: {}", dir.display(), shown(&found)),
            )
        } else {
            Check::fail(
                "modules.vfio-pci",
                format!(
                    "no vfio-pci module under {} and not built in",
                    dir.display()
                ),
                "install the kernel's modules package (vfio-pci ships with the kernel when CONFIG_VFIO_PCI=m)",
            )
        };
        out.push(check.with_roles(["vfio-host"]));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::report::Status;

    fn roles(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn the_cmdline_iommu_off_fails_passthrough() {
        let c = cmdline_checks(
            "BOOT_IMAGE=/vmlinuz root=/dev/sda1 intel_iommu=off quiet",
            "cmdline",
            &roles(&["vfio-host"]),
            Some(Arch::X86_64),
        );
        assert_eq!(c[0].status, Status::Fail);
        assert!(c[0].message.contains("intel_iommu=off"));
        let c = cmdline_checks(
            "root=/dev/sda1 intel_iommu=on iommu=pt",
            "cmdline",
            &roles(&["vfio-host"]),
            Some(Arch::X86_64),
        );
        assert_eq!(c[0].status, Status::Pass);
        assert!(c[0].message.contains("intel_iommu=on") && c[0].message.contains("iommu=pt"));
        let c = cmdline_checks(
            "root=/dev/vda module.sig_enforce=1",
            "cmdline",
            &roles(&["gpu-host"]),
            None,
        );
        assert_eq!(c.len(), 1);
        assert!(c[0].message.contains("must be signed"));
    }

    #[test]
    fn modules_are_found_compressed_and_with_either_separator() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("kernel/drivers/vfio/pci");
        std::fs::create_dir_all(&kernel).unwrap();
        std::fs::write(kernel.join("vfio-pci.ko.xz"), b"x").unwrap();
        let updates = dir.path().join("updates/dkms");
        std::fs::create_dir_all(&updates).unwrap();
        std::fs::write(updates.join("nvidia.ko.zst"), b"x").unwrap();
        std::fs::write(updates.join("nvidia-uvm.ko"), b"x").unwrap();
        let c = module_checks(dir.path(), &roles(&["gpu-host", "vfio-host"]), None);
        assert_eq!(c[0].status, Status::Pass, "{}", c[0].message);
        assert!(
            c[0].message.contains("updates/dkms/nvidia.ko.zst"),
            "{}",
            c[0].message
        );
        assert_eq!(c[1].status, Status::Pass, "{}", c[1].message);
        std::fs::remove_file(updates.join("nvidia.ko.zst")).unwrap();
        let c = module_checks(dir.path(), &roles(&["gpu-host"]), None);
        assert_eq!(
            c[0].status,
            Status::Fail,
            "nvidia-uvm alone is not the driver"
        );
        let gone = module_checks(&dir.path().join("absent"), &roles(&["gpu-host"]), None);
        assert_eq!(gone[0].status, Status::Skip);
    }

    #[test]
    fn config_places_follow_the_release() {
        let c = config_candidates(Path::new("/r"), Some("6.12.1"));
        assert_eq!(c[0], Path::new("/r/proc/config.gz"));
        assert_eq!(c[1], Path::new("/r/boot/config-6.12.1"));
        assert_eq!(config_candidates(Path::new("/r"), None).len(), 2);
    }
}
