//! `linkwise preflight` as an operator and a build pipeline meet it: exit 0 ready, 1 not
//! ready, 2 bad input naming the file and line; JSON with checks, summary and verdict;
//! the kernel config fragment per architecture; and a run on this machine (whatever it
//! is) that explains every check and never calls its own files bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use linkwise_testkit::cli::{bad_input, ok, run, stdout};
use linkwise_testkit::fixtures;
use serde_json::Value;

fn config(arch: &str) -> String {
    let dir = fixtures().join("kconfig");
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains(&format!("-{arch}.config")))
        .unwrap();
    file.display().to_string()
}

fn json(args: &[&str]) -> (Option<i32>, Value) {
    let o = run(args);
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", stdout(&o)));
    (o.status.code(), v)
}

#[test]
fn exit_codes_say_ready_not_ready_and_bad_input() {
    let amd64 = config("amd64");
    let riscv = config("riscv64");
    let (code, v) = json(&[
        "preflight",
        "--kernel-config",
        &amd64,
        "--role",
        "vfio-host",
        "-o",
        "json",
    ]);
    assert_eq!(code, Some(0));
    assert_eq!(v["ready"], true);
    assert_eq!(v["arch"], "x86_64");
    assert_eq!(v["roles"], serde_json::json!(["vfio-host"]));
    let (code, v) = json(&[
        "preflight",
        "--kernel-config",
        &riscv,
        "--role",
        "vfio-host",
        "-o",
        "json",
    ]);
    assert_eq!(code, Some(1));
    assert_eq!(v["ready"], false);
    assert_eq!(v["summary"]["fail"], 2);
    let failed: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["option"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["CONFIG_RISCV_IOMMU", "CONFIG_IOMMUFD"]);

    // Bad input: a config with a broken line names the file and the line.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("config");
    std::fs::write(&broken, "CONFIG_A=y\nCONFIG_B=maybe\n").unwrap();
    let err = bad_input(&["preflight", "--kernel-config", broken.to_str().unwrap()]);
    assert!(err.contains(&format!("{}:2", broken.display())), "{err}");
    let err = bad_input(&["preflight", "--kernel-config", "/no/such/config"]);
    assert!(err.contains("/no/such/config"), "{err}");
    let err = bad_input(&["preflight", "--kernel-config", &amd64, "--role", "gpu-hots"]);
    assert!(
        err.contains("gpu-hots") && err.contains("vfio-host"),
        "{err}"
    );
    let spec = dir.path().join("spec.yaml");
    std::fs::write(&spec, "version: 1\nroles:\n  r:\n    description: d\n    kernel:\n      - id: a\n        level: often\n        option: A\n        why: w\n        fix: f\n").unwrap();
    let err = bad_input(&[
        "preflight",
        "--kernel-config",
        &amd64,
        "--spec",
        spec.to_str().unwrap(),
        "--role",
        "r",
    ]);
    assert!(err.contains("roles.r.kernel[0].level"), "{err}");
}

#[test]
fn a_spec_file_replaces_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.yaml");
    std::fs::write(&spec, "version: 1\nroles:\n  lab:\n    description: a lab node\n    kernel:\n      - id: kernel.kvm\n        level: required\n        option: KVM\n        why: VMs\n        fix: enable KVM\n").unwrap();
    let (code, v) = json(&[
        "preflight",
        "--kernel-config",
        &config("riscv64"),
        "--spec",
        spec.to_str().unwrap(),
        "--role",
        "lab",
        "-o",
        "json",
    ]);
    let kvm = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "kernel.kvm")
        .unwrap()
        .clone();
    // Debian's riscv64 kernel has KVM as a module.
    assert_eq!(
        (code, kvm["status"].as_str()),
        (Some(0), Some("pass")),
        "{kvm}"
    );
    assert_eq!(kvm["message"], "CONFIG_KVM=m");
}

#[test]
fn the_fragment_follows_the_architecture() {
    let riscv = ok(&[
        "preflight",
        "--emit-kconfig-fragment",
        "--role",
        "vfio-host",
        "--arch",
        "riscv64",
    ]);
    assert!(
        riscv.contains("CONFIG_IOMMUFD=y") && riscv.contains("CONFIG_VFIO_DEVICE_CDEV=y"),
        "{riscv}"
    );
    assert!(!riscv.contains("CONFIG_VFIO_IOMMU_TYPE1"), "{riscv}");
    let arm = ok(&[
        "preflight",
        "--emit-kconfig-fragment",
        "--role",
        "vfio-host",
        "--kernel-config",
        &config("arm64"),
    ]);
    assert!(
        arm.contains("CONFIG_VFIO_IOMMU_TYPE1=y") && arm.contains("CONFIG_ARM_SMMU_V3=y"),
        "{arm}"
    );
    let both = ok(&[
        "preflight",
        "--emit-kconfig-fragment",
        "--role",
        "gpu-host,rdma",
        "--arch",
        "x86_64",
    ]);
    assert_eq!(
        both.matches("CONFIG_PCI=y").count(),
        1,
        "one line per option:\n{both}"
    );
    bad_input(&["preflight", "--emit-kconfig-fragment", "--arch", "mips"]);
}

/// This development machine has no GPU; whatever its kernel, every check is explained
/// and nothing on it is "bad input".
#[test]
fn this_machine_gets_every_check_explained_and_never_exit_2() {
    for role in ["gpu-host", "vfio-host", "rdma"] {
        let (code, v) = json(&["preflight", "--role", role, "-o", "json"]);
        assert!(matches!(code, Some(0 | 1)), "{role}: exit {code:?}");
        assert_eq!(v["ready"], code == Some(0));
        let checks = v["checks"].as_array().unwrap();
        assert!(!checks.is_empty());
        for c in checks {
            assert!(!c["message"].as_str().unwrap().is_empty(), "{c}");
            if c["status"] != "pass" {
                assert!(c["fix"].as_str().is_some_and(|f| !f.is_empty()), "{c}");
            }
        }
    }
}
