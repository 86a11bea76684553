//! The node report: built from a topology and a node's files (the loaded NVIDIA modules,
//! the GPU firmware, named paths, each with its SHA-256), valid against
//! docs/node-report.schema.json, and readable from any producer that writes the required
//! fields; a malformed report names the field.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use linkwise_core::profiles;
use linkwise_fleet::NodeReport;
use linkwise_fleet::collect::{Inputs, collect};
use linkwise_testkit::repo_root;

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(repo_root().join("docs/node-report.schema.json")).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

fn assert_valid(report: &NodeReport) {
    let v = serde_json::to_value(report).unwrap();
    let errors: Vec<String> = validator()
        .iter_errors(&v)
        .map(|e| format!("{}: {e}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{errors:?}\n{v:#}");
}

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// SHA-256 of "abc" (FIPS 180-2, appendix B.1).
const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
/// SHA-256 of the empty string.
const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

#[test]
fn a_report_from_a_node_tree_hashes_its_modules_firmware_and_named_files() {
    let topo = profiles::get("dgx-h100").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "proc/sys/kernel/osrelease", b"6.8.0-60-generic\n");
    write(root, "sys/class/dmi/id/bios_version", b"1.6.7\n");
    write(root, "sys/module/nvidia/version", b"550.54.15\n");
    write(
        root,
        "lib/modules/6.8.0-60-generic/updates/dkms/nvidia.ko.zst",
        b"abc",
    );
    // Installed but not loaded: not in the report.
    write(
        root,
        "lib/modules/6.8.0-60-generic/updates/dkms/nvidia-peermem.ko",
        b"x",
    );
    write(root, "lib/firmware/nvidia/550.54.15/gsp_ga10x.bin", b"abc");
    write(root, "extra.bin", b"");
    let extra = root.join("extra.bin");
    let inputs = Inputs {
        topology: &topo,
        root: Some(root),
        node: Some("gpu-017".into()),
        labels: BTreeMap::from([("rack".into(), "r07".into())]),
        hash: vec![extra.clone()],
        preflight: None,
        collected_at: None,
    };
    let r = collect(&inputs).unwrap();
    assert_valid(&r);
    assert_eq!(r.node, "gpu-017");
    assert_eq!(r.labels["rack"], "r07");
    assert_eq!(r.gpus.len(), 8);
    assert!(
        r.gpus
            .iter()
            .all(|g| g.uuid.is_some() && !g.model.is_empty())
    );
    assert_eq!(r.host.firmware["bios"], "1.6.7");
    let names: Vec<(&str, &str)> = r
        .artifacts
        .iter()
        .map(|a| (a.name.as_str(), a.sha256.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            (extra.to_str().unwrap(), EMPTY),
            ("firmware:nvidia/550.54.15/gsp_ga10x.bin", ABC),
            ("module:nvidia", ABC),
        ]
    );
    // An unreadable named file is an error naming it.
    let missing = Inputs {
        hash: vec![root.join("nope")],
        ..inputs
    };
    let err = collect(&missing).unwrap_err().to_string();
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn every_profile_makes_a_valid_report_with_every_gpu() {
    for (name, _) in profiles::PROFILES {
        let topo = profiles::get(name).unwrap();
        let r = collect(&Inputs {
            topology: &topo,
            root: None,
            node: None,
            labels: BTreeMap::new(),
            hash: vec![],
            preflight: None,
            collected_at: None,
        })
        .unwrap();
        assert_valid(&r);
        assert_eq!(r.gpus.len(), topo.gpus.len(), "{name}");
        let back = NodeReport::parse(&serde_json::to_string(&r).unwrap(), name).unwrap();
        assert_eq!(back, r, "{name} round-trips");
        assert_eq!(back.id(), r.id());
    }
}

#[test]
fn another_producers_minimal_report_is_read_and_bad_ones_name_the_field() {
    let minimal = r#"{"schemaVersion":1,"node":"n1","labels":{"batch":"b3"},
        "host":{"arch":"aarch64","kernel":"6.12.38"},"driver":{"version":"570.86.15"},
        "gpus":[{"uuid":"GPU-1","model":"NVIDIA GH200","vbios":"96.00.A1"}],
        "artifacts":[{"name":"module:nvidia","sha256":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}],
        "producer":"ansible-facts"}"#;
    let v: serde_json::Value = serde_json::from_str(minimal).unwrap();
    assert!(validator().is_valid(&v));
    let r = NodeReport::parse(minimal, "n1.json").unwrap();
    assert_eq!(
        (r.gpus[0].model.as_str(), r.driver.version.as_deref()),
        ("NVIDIA GH200", Some("570.86.15"))
    );
    for (text, says) in [
        (minimal.replace(r#""model":"NVIDIA GH200","#, ""), "gpus[0]"),
        (
            minimal.replace("\"schemaVersion\":1", "\"schemaVersion\":2"),
            "schemaVersion 2",
        ),
        (
            minimal.replace("ba7816bf", "BA7816BF"),
            "artifacts[0].sha256",
        ),
        (minimal.replace("\"node\":\"n1\"", "\"node\":\" \""), "node"),
        (minimal.replace("\"arch\":\"aarch64\",", ""), "host"),
        ("{\"schemaVersion\":1".to_string(), "EOF"),
    ] {
        let err = NodeReport::parse(&text, "n1.json").unwrap_err().to_string();
        assert!(
            err.starts_with("n1.json: ") && err.contains(says),
            "{says}: {err}"
        );
    }
}
