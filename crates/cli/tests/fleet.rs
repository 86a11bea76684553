//! `linkwise fleet drift` and `attest` over reports made by `linkwise report`: the planted
//! difference is the one finding, exit 1; a clean fleet exits 0; each node's latest report
//! counts; a bad report or allow-list is bad input naming the file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use linkwise_testkit::cli::{bad_input, ok, run, stdout};
use serde_json::Value;

fn report(dir: &Path, node: &str, rack: &str, kernel: &str, at: &str) {
    let mut v: Value = serde_json::from_str(&ok(&[
        "report",
        "--source",
        "profile:dgx-h100",
        "--node",
        node,
        "--labels",
        &format!("rack={rack}"),
    ]))
    .unwrap();
    v["host"]["kernel"] = kernel.into();
    v["collectedAt"] = at.into();
    std::fs::write(dir.join(format!("{node}-{at}.json")), v.to_string()).unwrap();
}

#[test]
fn drift_and_attest_find_the_planted_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for i in 1..=4 {
        report(
            d,
            &format!("n{i}"),
            if i <= 2 { "r01" } else { "r02" },
            "6.8.0-60-generic",
            "2026-12-01T00:00:00Z",
        );
    }
    // n4 moved to another kernel later; its older report is not what counts.
    report(d, "n4", "r02", "6.8.0-62-generic", "2026-12-02T00:00:00Z");
    let reports = d.to_str().unwrap();
    let o = run(&["fleet", "drift", "--reports", reports, "-o", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = v["findings"].as_array().unwrap();
    assert_eq!(f.len(), 1, "{v:#}");
    assert_eq!(
        (
            f[0]["node"].as_str(),
            f[0]["field"].as_str(),
            f[0]["value"].as_str()
        ),
        (Some("n4"), Some("kernel"), Some("6.8.0-62-generic"))
    );
    assert_eq!(f[0]["labels"]["rack"], "r02");

    let allow = d.join("allow.yaml");
    std::fs::write(&allow, "kernelReleases: [6.8.0-62-generic]\n").unwrap();
    let o = run(&[
        "fleet",
        "attest",
        "--allow-list",
        allow.to_str().unwrap(),
        "--reports",
        reports,
        "-o",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let nodes: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["n1", "n2", "n3"]);

    // Only the approved kernel on every node: clean.
    std::fs::write(
        &allow,
        "kernelReleases: [6.8.0-60-generic, 6.8.0-62-generic]\n",
    )
    .unwrap();
    ok(&[
        "fleet",
        "attest",
        "--allow-list",
        allow.to_str().unwrap(),
        "--reports",
        reports,
    ]);
    std::fs::write(&allow, "kernels: []\n").unwrap();
    let err = bad_input(&[
        "fleet",
        "attest",
        "--allow-list",
        allow.to_str().unwrap(),
        "--reports",
        reports,
    ]);
    assert!(
        err.contains("allow.yaml") && err.contains("kernels"),
        "{err}"
    );
}

#[test]
fn a_clean_fleet_exits_0_and_a_bad_report_is_named() {
    let dir = tempfile::tempdir().unwrap();
    for i in 1..=3 {
        report(
            dir.path(),
            &format!("n{i}"),
            "r01",
            "6.8.0-60-generic",
            "2026-12-01T00:00:00Z",
        );
    }
    let out = ok(&[
        "fleet",
        "drift",
        "--reports",
        dir.path().to_str().unwrap(),
        "--by",
        "rack",
    ]);
    assert!(out.contains("3 nodes, 1 classes, 0 findings"), "{out}");
    let bad = dir.path().join("broken.json");
    std::fs::write(&bad, r#"{"schemaVersion":1,"node":"x"}"#).unwrap();
    let err = bad_input(&["fleet", "drift", "--reports", dir.path().to_str().unwrap()]);
    assert!(err.contains("broken.json") && err.contains("host"), "{err}");
}
