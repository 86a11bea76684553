//! Debian's real kernel configurations (riscv64, amd64, arm64; fixtures/kconfig) judged
//! for each role: the verdicts are golden files (tests/golden/ROLE-ARCH.json, rewritten
//! with UPDATE_GOLDEN=1), and the facts the issue names are asserted on their own: RISC-V
//! fails passthrough on the IOMMU backend, naming both routes and the fix; amd64 and
//! arm64 pass it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use linkwise_preflight::run::{Options, file_checks};
use linkwise_preflight::{Arch, Check, KernelConfig, Report, Spec, Status};
use linkwise_testkit::{fixtures, golden};

const CONFIGS: [(&str, &str, Arch); 3] = [
    (
        "riscv64",
        "debian-6.12.117-riscv64.config.xz",
        Arch::Riscv64,
    ),
    ("amd64", "debian-6.12.118-amd64.config.xz", Arch::X86_64),
    ("arm64", "debian-6.12.117-arm64.config.xz", Arch::Arm64),
];

const ROLES: [&str; 3] = ["gpu-host", "vfio-host", "rdma"];

fn config_path(file: &str) -> PathBuf {
    fixtures().join("kconfig").join(file)
}

/// The file checks of `role` on a config alone (no node read).
fn judge(file: &str, role: &str) -> Report {
    let opts = Options {
        roles: vec![role.to_string()],
        root: None,
        kernel_config: Some(config_path(file)),
        cmdline: None,
        modules_dir: None,
    };
    let (checks, context) = file_checks(&Spec::built_in(), &opts).unwrap();
    assert_eq!(
        context.kernel_config.as_deref(),
        Some(config_path(file).as_path())
    );
    Report::new(checks)
}

fn find<'a>(r: &'a Report, id: &str) -> &'a Check {
    r.checks
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no check {id}"))
}

#[test]
fn the_architecture_is_read_from_each_real_config() {
    for (_, file, arch) in CONFIGS {
        let bytes = std::fs::read(config_path(file)).unwrap();
        let c = KernelConfig::parse_bytes(&bytes, file).unwrap();
        assert_eq!(c.arch(), Some(arch), "{file}");
        assert!(
            c.options.len() > 5000,
            "{file}: {} options",
            c.options.len()
        );
    }
}

#[test]
fn each_role_on_each_real_config_matches_its_golden_verdicts() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    for (name, file, _) in CONFIGS {
        for role in ROLES {
            let report = judge(file, role);
            // Paths differ between checkouts: the golden file holds everything else.
            let mut v = serde_json::to_value(&report).unwrap();
            v["checks"][0]["message"] = serde_json::Value::String(format!("read {file}"));
            golden::assert_json(&dir.join(format!("{role}-{name}.json")), &v);
            for c in &report.checks {
                assert!(!c.message.is_empty(), "{role}/{name}: {}", c.id);
                assert!(
                    c.status == Status::Pass || c.fix.is_some(),
                    "{role}/{name}: {} has no fix",
                    c.id
                );
            }
        }
    }
}

#[test]
fn riscv_fails_passthrough_on_the_iommu_backend_and_amd64_arm64_pass() {
    let riscv = judge(CONFIGS[0].1, "vfio-host");
    assert!(!riscv.ready);
    let backend = find(&riscv, "kernel.vfio-iommu-backend");
    assert_eq!(backend.status, Status::Fail);
    for option in [
        "CONFIG_VFIO_IOMMU_TYPE1=not set",
        "CONFIG_IOMMUFD=not set",
        "CONFIG_VFIO_DEVICE_CDEV=not set",
    ] {
        assert!(backend.message.contains(option), "{}", backend.message);
    }
    let fix = backend.fix.as_deref().unwrap();
    assert!(
        fix.contains("CONFIG_IOMMUFD=y") && fix.contains("CONFIG_VFIO_DEVICE_CDEV=y"),
        "{fix}"
    );
    assert_eq!(backend.option.as_deref(), Some("CONFIG_IOMMUFD"));
    assert_eq!(backend.alternatives, ["CONFIG_VFIO_IOMMU_TYPE1"]);
    // Debian's 6.12 has no RISC-V IOMMU driver either (it first appears in 6.13).
    assert_eq!(find(&riscv, "kernel.iommu-driver").status, Status::Fail);
    assert_eq!(find(&riscv, "kernel.vfio").status, Status::Pass);

    for (_, file, _) in &CONFIGS[1..] {
        let r = judge(file, "vfio-host");
        assert!(r.ready, "{file}: {:?}", r.checks);
        assert_eq!(
            find(&r, "kernel.vfio-iommu-backend").message,
            "CONFIG_VFIO_IOMMU_TYPE1=m"
        );
    }
}

#[test]
fn the_fragment_makes_a_failing_config_pass() {
    // Merging the fragment into Debian's riscv64 config (later lines win, as in
    // merge_config.sh) turns every required vfio-host check into a pass.
    let spec = Spec::built_in();
    let roles = vec!["vfio-host".to_string()];
    let base = std::fs::read(config_path(CONFIGS[0].1)).unwrap();
    let base =
        String::from_utf8(linkwise_preflight::kconfig::decompress(&base, "riscv64").unwrap())
            .unwrap();
    let fragment = linkwise_preflight::kernel::fragment(&spec, &roles, Arch::Riscv64).unwrap();
    let merged = KernelConfig::parse_text(&format!("{base}\n{fragment}"), "merged").unwrap();
    let checks = linkwise_preflight::kernel::checks(&spec, &roles, &merged).unwrap();
    let failed: Vec<&Check> = checks.iter().filter(|c| c.status == Status::Fail).collect();
    assert!(failed.is_empty(), "{failed:?}");
}
