//! The live checks over captured node trees for three architectures
//! (fixtures/preflight/{x86_64,aarch64,riscv64}, written by make-trees.py there), and
//! over mutated copies for the failure paths: the verdict and the facts in each message.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use linkwise_core::{Topology, profiles};
use linkwise_preflight::live::{LiveInput, checks};
use linkwise_preflight::{Check, Status};
use linkwise_testkit::fixtures;

fn tree(arch: &str) -> PathBuf {
    fixtures().join("preflight").join(arch)
}

fn run(root: &Path, role: &str, topology: Option<&Topology>) -> Vec<Check> {
    let roles = vec![role.to_string()];
    checks(&LiveInput {
        root,
        roles: &roles,
        topology,
    })
}

fn get<'a>(cs: &'a [Check], id: &str) -> &'a Check {
    cs.iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no {id} in {cs:?}"))
}

fn assert_check(cs: &[Check], id: &str, status: Status, says: &[&str]) {
    let c = get(cs, id);
    assert_eq!(c.status, status, "{id}: {}", c.message);
    for s in says {
        assert!(c.message.contains(s), "{id}: {:?} lacks {s:?}", c.message);
    }
    assert!(status == Status::Pass || c.fix.is_some(), "{id} has no fix");
}

/// A copy of a fixture tree (symlinks kept) to mutate.
fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let kind = e.file_type().unwrap();
        let target = to.join(e.file_name());
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), &target).unwrap();
        } else if kind.is_dir() {
            copy(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

#[test]
fn an_x86_nvswitch_gpu_host_is_ready() {
    let topo = profiles::get("dgx-h100").unwrap();
    let cs = run(&tree("x86_64"), "gpu-host", Some(&topo));
    assert_check(
        &cs,
        "live.gpus",
        Status::Pass,
        &["8 NVIDIA GPUs", "0000:18:00.0", "0000:db:00.0"],
    );
    assert_check(&cs, "live.gpu-driver", Status::Pass, &["bound to nvidia"]);
    assert_check(
        &cs,
        "live.secure-boot",
        Status::Pass,
        &["Secure Boot is on", "must be signed"],
    );
    assert_check(&cs, "live.lockdown", Status::Pass, &["integrity"]);
    assert_check(&cs, "live.sig-enforce", Status::Pass, &["enforced"]);
    assert_check(
        &cs,
        "live.gpu-numa",
        Status::Pass,
        &["2 NUMA nodes", "0000:18:00.0 node 0", "0000:db:00.0 node 1"],
    );
    assert_check(&cs, "live.hugepages", Status::Pass, &["512 x 2048kB"]);
    assert_check(&cs, "live.nvidia-driver", Status::Pass, &["550.54.15"]);
    // comm is cut at 15 characters: "nv-fabricmanage" is the fabric manager.
    assert_check(
        &cs,
        "live.fabric-manager",
        Status::Pass,
        &["nv-fabricmanager runs", "4 NVSwitches"],
    );
    assert_check(
        &cs,
        "live.persistence-mode",
        Status::Pass,
        &["nvidia-persistenced runs"],
    );
    assert_check(
        &cs,
        "live.kernel-taint",
        Status::Pass,
        &["4097 (PO)", "proprietary", "out-of-tree"],
    );
    assert!(cs.iter().all(|c| c.status != Status::Fail));
}

#[test]
fn an_arm64_passthrough_host_is_ready_and_not_as_a_gpu_host() {
    let root = tree("aarch64");
    let cs = run(&root, "vfio-host", None);
    // 0009:01:00.1 (audio) shares the first GPU's group, a bridge the second's: both fine.
    assert_check(
        &cs,
        "live.iommu-groups",
        Status::Pass,
        &["3 IOMMU groups", "only its own functions"],
    );
    assert_check(
        &cs,
        "live.gpu-driver",
        Status::Pass,
        &["vfio-pci", "0009:01:00.0", "0019:01:00.0"],
    );
    assert_check(&cs, "live.gpu-numa", Status::Pass, &["one NUMA node", "-1"]);
    assert_check(&cs, "live.hugepages", Status::Pass, &["64 x 1048576kB"]);
    assert_check(
        &cs,
        "live.nvidia-driver",
        Status::Pass,
        &["left for passthrough"],
    );
    assert_check(
        &cs,
        "live.fabric-manager",
        Status::Skip,
        &["topology is unknown"],
    );
    // The same node as a gpu-host: the GPUs are on the wrong driver and no driver runs.
    let cs = run(&root, "gpu-host", None);
    assert_check(
        &cs,
        "live.gpu-driver",
        Status::Fail,
        &["needs its GPUs on nvidia", "0009:01:00.0 vfio-pci"],
    );
    assert_check(
        &cs,
        "live.nvidia-driver",
        Status::Fail,
        &["no NVIDIA driver is loaded"],
    );
    assert_check(&cs, "live.persistence-mode", Status::Warn, &["not running"]);
}

#[test]
fn a_riscv_board_warns_on_numa_hugepages_and_the_unsigned_module() {
    let root = tree("riscv64");
    let topo = profiles::get("riscv-fusion").unwrap();
    let cs = run(&root, "gpu-host", Some(&topo));
    assert_check(
        &cs,
        "live.gpu-numa",
        Status::Warn,
        &["2 NUMA nodes", "0000:01:00.0", "0001:01:00.0", "-1"],
    );
    assert!(
        get(&cs, "live.gpu-numa")
            .fix
            .as_deref()
            .unwrap()
            .contains("numa-node-id")
    );
    assert_check(&cs, "live.hugepages", Status::Warn, &["0 x 2048 kB"]);
    assert_check(
        &cs,
        "live.kernel-taint",
        Status::Warn,
        &["12289 (POE)", "unsigned module"],
    );
    assert!(
        get(&cs, "live.kernel-taint")
            .fix
            .as_deref()
            .unwrap()
            .contains("modsig")
    );
    assert_check(&cs, "live.nvidia-driver", Status::Pass, &["570.86.15"]);
    assert_check(
        &cs,
        "live.secure-boot",
        Status::Skip,
        &["not booted through EFI"],
    );
    assert_check(&cs, "live.iommu-groups", Status::Pass, &["no IOMMU groups"]);
    assert_check(&cs, "live.persistence-mode", Status::Warn, &["not running"]);
    // Passthrough on this board fails: no IOMMU groups at all.
    let cs = run(&root, "vfio-host", None);
    assert_check(&cs, "live.iommu-groups", Status::Fail, &["no IOMMU groups"]);
    assert!(
        get(&cs, "live.iommu-groups")
            .fix
            .as_deref()
            .unwrap()
            .contains("CONFIG_RISCV_IOMMU")
    );
}

#[test]
fn a_multi_node_fabric_without_imex_fails() {
    let topo = profiles::get("nvl72").unwrap();
    assert!(
        topo.gpus.iter().any(|g| g.fabric.is_some()),
        "nvl72 is one clique"
    );
    let cs = run(&tree("x86_64"), "gpu-host", Some(&topo));
    assert_check(
        &cs,
        "live.fabric-manager",
        Status::Fail,
        &["nv-fabricmanager runs", "no nvidia-imex"],
    );
    let dir = tempfile::tempdir().unwrap();
    copy(&tree("x86_64"), dir.path());
    std::fs::remove_dir_all(dir.path().join("proc/2211")).unwrap();
    let cs = run(
        dir.path(),
        "gpu-host",
        Some(&profiles::get("dgx-h100").unwrap()),
    );
    assert_check(
        &cs,
        "live.fabric-manager",
        Status::Fail,
        &["4 NVSwitches but no nv-fabricmanager"],
    );
    let plain = run(
        &tree("x86_64"),
        "gpu-host",
        Some(&profiles::get("pcie-8gpu").unwrap()),
    );
    assert_check(
        &plain,
        "live.fabric-manager",
        Status::Skip,
        &["no NVSwitch"],
    );
}

#[test]
fn a_gpu_sharing_its_group_with_a_stranger_fails_passthrough() {
    let dir = tempfile::tempdir().unwrap();
    copy(&tree("aarch64"), dir.path());
    // The NIC joins the first GPU's group.
    std::os::unix::fs::symlink(
        "../../../../bus/pci/devices/000a:01:00.0",
        dir.path()
            .join("sys/kernel/iommu_groups/7/devices/000a:01:00.0"),
    )
    .unwrap();
    let cs = run(dir.path(), "vfio-host", None);
    assert_check(
        &cs,
        "live.iommu-groups",
        Status::Fail,
        &["0009:01:00.0 (group 7) with 000a:01:00.0"],
    );
    assert!(
        get(&cs, "live.iommu-groups")
            .fix
            .as_deref()
            .unwrap()
            .contains("ACS")
    );
}

#[test]
fn odd_contents_warn_naming_the_file_and_absent_state_skips() {
    let dir = tempfile::tempdir().unwrap();
    copy(&tree("x86_64"), dir.path());
    let root = dir.path();
    std::fs::write(
        root.join("sys/bus/pci/devices/0000:18:00.0/numa_node"),
        "zero\n",
    )
    .unwrap();
    std::fs::write(root.join("proc/sys/kernel/tainted"), "lots\n").unwrap();
    std::fs::write(
        root.join("sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"),
        [6u8, 0],
    )
    .unwrap();
    std::fs::write(root.join("sys/kernel/security/lockdown"), "integrity\n").unwrap();
    std::fs::write(
        root.join("sys/module/module/parameters/sig_enforce"),
        "maybe\n",
    )
    .unwrap();
    let cs = run(root, "gpu-host", None);
    assert_check(
        &cs,
        "live.gpu-numa",
        Status::Warn,
        &["0000:18:00.0/numa_node holds \"zero\""],
    );
    assert_check(
        &cs,
        "live.kernel-taint",
        Status::Warn,
        &["tainted holds \"lots\""],
    );
    assert_check(&cs, "live.secure-boot", Status::Warn, &["2 bytes"]);
    assert_check(&cs, "live.lockdown", Status::Warn, &["no bracketed mode"]);
    assert_check(&cs, "live.sig-enforce", Status::Warn, &["\"maybe\""]);
    // An empty root: every check skips or passes, each with its reason.
    let empty = tempfile::tempdir().unwrap();
    for role in ["gpu-host", "vfio-host", "rdma"] {
        for c in run(empty.path(), role, None) {
            assert!(
                matches!(c.status, Status::Skip | Status::Pass | Status::Fail),
                "{c:?}"
            );
            assert!(!c.message.is_empty());
            assert!(c.status == Status::Pass || c.fix.is_some(), "{c:?}");
        }
    }
}

#[test]
fn this_machine_gets_every_live_check_explained() {
    for role in ["gpu-host", "vfio-host"] {
        for c in run(Path::new("/"), role, None) {
            assert!(!c.message.is_empty(), "{c:?}");
            assert!(
                c.status == Status::Pass || c.fix.as_deref().is_some_and(|f| !f.is_empty()),
                "{c:?}"
            );
        }
    }
}

/// A node tree with `module` installed as the NVIDIA driver for kernel 6.1.0-57-amd64,
/// and, when given, a kernel image holding `builtin` as its built-in key.
fn with_module(module: &[u8], builtin: Option<&[u8]>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy(&tree("x86_64"), dir.path());
    let root = dir.path();
    std::fs::write(root.join("proc/sys/kernel/osrelease"), "6.1.0-57-amd64\n").unwrap();
    let dkms = root.join("lib/modules/6.1.0-57-amd64/updates/dkms");
    std::fs::create_dir_all(&dkms).unwrap();
    std::fs::write(dkms.join("nvidia.ko"), module).unwrap();
    if let Some(cert) = builtin {
        // A vmlinux-like image: the certificate list somewhere inside.
        let image = [vec![0u8; 4096], cert.to_vec(), vec![0u8; 4096]].concat();
        std::fs::create_dir_all(root.join("boot")).unwrap();
        std::fs::write(root.join("boot/vmlinuz-6.1.0-57-amd64"), image).unwrap();
    }
    dir
}

#[test]
fn the_nvidia_modules_are_checked_against_the_kernels_own_keys() {
    let modsig = fixtures().join("modsig");
    let debian_module = std::fs::read(modsig.join("debian-6.1.0-57-crc7.ko")).unwrap();
    let debian_key = std::fs::read(modsig.join("debian-6.1.0-57-signing-key.der")).unwrap();
    let id = "live.nvidia-module-signature";

    let node = with_module(&debian_module, Some(&debian_key));
    let cs = run(node.path(), "gpu-host", None);
    assert_check(
        &cs,
        id,
        Status::Pass,
        &[
            "nvidia.ko signed by Build time autogenerated kernel key",
            "verified with the kernel's built-in key",
        ],
    );

    // Signed by a key the kernel does not have built in: it must be enrolled.
    let other = std::fs::read(modsig.join("rsa-sha256.ko")).unwrap();
    let node = with_module(&other, Some(&debian_key));
    assert_check(
        &run(node.path(), "gpu-host", None),
        id,
        Status::Pass,
        &["linkwise test RSA key", "must be enrolled"],
    );

    // No kernel image: signed, not verified.
    let node = with_module(&debian_module, None);
    assert_check(
        &run(node.path(), "gpu-host", None),
        id,
        Status::Pass,
        &["not verified"],
    );

    // A changed byte under Secure Boot (the x86_64 tree has it on): fails.
    let mut tampered = debian_module.clone();
    tampered[200] ^= 1;
    let node = with_module(&tampered, Some(&debian_key));
    assert_check(
        &run(node.path(), "gpu-host", None),
        id,
        Status::Fail,
        &["changed", "will not load"],
    );

    // Unsigned, signatures not enforced and no Secure Boot: a warning (taint E).
    let sig_len = u32::from_be_bytes(
        debian_module[debian_module.len() - 32..debian_module.len() - 28]
            .try_into()
            .unwrap(),
    ) as usize;
    let unsigned = &debian_module[..debian_module.len() - 40 - sig_len];
    let node = with_module(unsigned, None);
    std::fs::remove_file(
        node.path()
            .join("sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"),
    )
    .unwrap();
    std::fs::write(
        node.path().join("sys/module/module/parameters/sig_enforce"),
        "N\n",
    )
    .unwrap();
    assert_check(
        &run(node.path(), "gpu-host", None),
        id,
        Status::Warn,
        &["nvidia.ko is not signed", "taint"],
    );
    // Not a gpu-host: not checked.
    assert_check(
        &run(node.path(), "vfio-host", None),
        id,
        Status::Skip,
        &["only a gpu-host"],
    );
}
