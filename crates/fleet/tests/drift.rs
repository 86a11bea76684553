//! A fleet with planted drift: a kernel on three nodes of one class, a VBIOS on one rack
//! of another class, a module digest on one node. Drift finds exactly those and nothing
//! else; by rack, the VBIOS and the digest stand out; an allow-list flags exactly the
//! unapproved.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{GOOD, ODD, assert_planted, fleet, node};
use linkwise_fleet::NodeReport;
use linkwise_fleet::attest::{AllowList, attest};
use linkwise_fleet::drift::drift;

#[test]
fn planted_drift_is_found_exactly() {
    assert_planted(&drift(&fleet(), &["rack".to_string()]));
}

#[test]
fn a_fleet_without_drift_has_no_findings() {
    let clean: Vec<NodeReport> = (1..=5)
        .map(|i| node("dgx-h100", &format!("n{i}"), "r01", "b1"))
        .collect();
    let d = drift(&clean, &["batch".to_string()]);
    assert!(d.findings.is_empty() && d.by_label.is_empty(), "{d:?}");
}

#[test]
fn the_allow_list_flags_exactly_the_unapproved() {
    let f = fleet();
    let allow = AllowList::parse(
        &format!("artifacts:\n  - name: module:nvidia\n    sha256: {GOOD}\n"),
        "allow.yaml",
    )
    .unwrap();
    let found = attest(&f, &allow);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (
            found[0].node.as_str(),
            found[0].what.as_str(),
            found[0].value.as_str()
        ),
        ("a07", "artifact/module:nvidia", ODD)
    );

    let allow = AllowList::parse(
        "kernelReleases: [6.8.0-60-generic]\ndriverVersions: ['550.54.15']\n",
        "allow.yaml",
    )
    .unwrap();
    let nodes: Vec<String> = attest(&f, &allow).into_iter().map(|x| x.node).collect();
    assert_eq!(nodes, ["a02", "a05", "a09"]);

    // VBIOS per model: a model with no entry is unapproved everywhere.
    let h100 = f[0].gpus[0].model.clone();
    let allow = AllowList::parse(
        &format!(
            "vbiosVersions:\n  \"{h100}\": [\"{}\"]\n",
            f[0].gpus[0].vbios.clone().unwrap()
        ),
        "allow.yaml",
    )
    .unwrap();
    let found = attest(&f, &allow);
    assert!(
        found
            .iter()
            .all(|x| x.node.starts_with('b') && x.reason.contains("no VBIOS is approved")),
        "{found:?}"
    );
    // One finding per node and value, however many GPUs share it.
    assert_eq!(found.len(), 8, "each of the 8 PCIe nodes once");

    let err = AllowList::parse("kernelRelease: [x]\n", "allow.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("allow.yaml") && err.contains("kernelRelease"),
        "{err}"
    );
}

/// The documented example allow-list is one the reader accepts, with every list set.
#[test]
fn the_example_allow_list_parses() {
    let path = linkwise_testkit::repo_root().join("deploy/fleet/allow-list.yaml");
    let allow =
        AllowList::parse(&std::fs::read_to_string(&path).unwrap(), "allow-list.yaml").unwrap();
    assert!(allow.kernel_releases.is_some() && allow.driver_versions.is_some());
    assert!(allow.vbios_versions.is_some_and(|v| !v.is_empty()));
    assert!(
        allow
            .artifacts
            .is_some_and(|a| a.iter().all(|x| x.sha256.len() == 64))
    );
}
