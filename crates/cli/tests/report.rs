//! `linkwise report`: on a built-in profile, a report with every GPU; on this machine
//! (no GPU), a report valid against docs/node-report.schema.json with the preflight
//! summary; labels and `--out`; bad labels are bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use linkwise_testkit::cli::{bad_input, ok};
use linkwise_testkit::repo_root;
use serde_json::Value;

fn valid(v: &Value) {
    let text = std::fs::read_to_string(repo_root().join("docs/node-report.schema.json")).unwrap();
    let schema = jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap();
    let errors: Vec<String> = schema
        .iter_errors(v)
        .map(|e| format!("{}: {e}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn a_profile_report_has_every_gpu_and_reads_no_machine() {
    let v: Value = serde_json::from_str(&ok(&[
        "report",
        "--source",
        "profile:nvl72",
        "--labels",
        "rack=r07,batch=b2",
    ]))
    .unwrap();
    valid(&v);
    assert_eq!(v["gpus"].as_array().unwrap().len(), 72);
    assert_eq!(v["labels"]["rack"], "r07");
    assert!(
        v.get("preflight").is_none(),
        "a profile is no machine to preflight"
    );
    assert!(
        v["topologyFingerprint"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    let again: Value = serde_json::from_str(&ok(&["report", "--source", "profile:nvl72"])).unwrap();
    assert_eq!(again["topologyFingerprint"], v["topologyFingerprint"]);
    bad_input(&["report", "--source", "profile:nvl72", "--labels", "rack"]);
    bad_input(&[
        "report",
        "--source",
        "profile:nvl72",
        "--hash",
        "/no/such/file",
    ]);
}

#[test]
fn this_machine_reports_validly_with_its_preflight_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.json");
    ok(&["report", "--node", "dev-1", "--out", out.to_str().unwrap()]);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    valid(&v);
    assert_eq!(v["node"], "dev-1");
    assert_eq!(v["host"]["arch"], std::env::consts::ARCH);
    assert!(!v["host"]["kernel"].as_str().unwrap().is_empty());
    let p = &v["preflight"];
    assert_eq!(p["roles"], serde_json::json!(["gpu-host"]));
    assert_eq!(p["ready"], p["fail"] == 0);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temp file left"
    );
}
