//! The planted-drift fleet shared by the drift tests (reports in memory) and the store
//! tests (the same reports through SQLite and PostgreSQL): a kernel on three nodes of one
//! class, a VBIOS on one rack of another class, a module digest on one node.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;

use linkwise_core::profiles;
use linkwise_fleet::attest::{AllowList, attest};
use linkwise_fleet::collect::{Inputs, collect};
use linkwise_fleet::drift::Drift;
use linkwise_fleet::{Artifact, NodeReport};

pub const GOOD: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
pub const ODD: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

pub fn node(profile: &str, name: &str, rack: &str, batch: &str) -> NodeReport {
    let topo = profiles::get(profile).unwrap();
    let mut r = collect(&Inputs {
        topology: &topo,
        root: None,
        node: Some(name.into()),
        labels: BTreeMap::from([("rack".into(), rack.into()), ("batch".into(), batch.into())]),
        hash: vec![],
        preflight: None,
        collected_at: None,
    })
    .unwrap();
    r.host.kernel = "6.8.0-60-generic".into();
    r.driver.version = Some("550.54.15".into());
    r.artifacts = vec![Artifact {
        name: "module:nvidia".into(),
        path: None,
        sha256: GOOD.into(),
    }];
    r
}

/// 12 HGX nodes in racks r01-r03, 8 PCIe nodes in r07 (3) and r08 (5), drift planted.
pub fn fleet() -> Vec<NodeReport> {
    let mut f = Vec::new();
    for i in 1..=12 {
        let rack = format!("r0{}", 1 + (i - 1) / 4);
        let mut r = node(
            "dgx-h100",
            &format!("a{i:02}"),
            &rack,
            if i % 2 == 0 { "b2" } else { "b1" },
        );
        if [2, 5, 9].contains(&i) {
            r.host.kernel = "6.8.0-62-generic".into();
        }
        if i == 7 {
            r.artifacts[0].sha256 = ODD.into();
        }
        f.push(r);
    }
    for i in 1..=8 {
        let rack = if i <= 3 { "r07" } else { "r08" };
        let mut r = node("pcie-8gpu", &format!("b{i:02}"), rack, "b1");
        if rack == "r07" {
            for g in &mut r.gpus {
                g.vbios = Some("95.02.5C.00.02".into());
            }
        }
        f.push(r);
    }
    f
}

/// Asserts that `d` (drift by rack over [`fleet`]) holds exactly the planted findings.
pub fn assert_planted(d: &Drift) {
    assert_eq!(d.classes.len(), 2, "{:?}", d.classes);
    let got: Vec<(String, String, String, String)> = d
        .findings
        .iter()
        .map(|f| {
            (
                f.node.clone(),
                f.field.clone(),
                f.value.clone(),
                f.expected.clone(),
            )
        })
        .collect();
    let pcie_model = profiles::get("pcie-8gpu").unwrap().gpus[0].model.clone();
    let pcie_vbios = node("pcie-8gpu", "x", "r", "b").gpus[0]
        .vbios
        .clone()
        .unwrap();
    let mut want = vec![
        (
            "a02".to_string(),
            "kernel".to_string(),
            "6.8.0-62-generic".to_string(),
            "6.8.0-60-generic".to_string(),
        ),
        (
            "a05".into(),
            "kernel".into(),
            "6.8.0-62-generic".into(),
            "6.8.0-60-generic".into(),
        ),
        (
            "a07".into(),
            "artifact/module:nvidia".into(),
            ODD.into(),
            GOOD.into(),
        ),
        (
            "a09".into(),
            "kernel".into(),
            "6.8.0-62-generic".into(),
            "6.8.0-60-generic".into(),
        ),
    ];
    for n in ["b01", "b02", "b03"] {
        want.push((
            n.into(),
            format!("vbios/{pcie_model}"),
            "95.02.5C.00.02".into(),
            pcie_vbios.clone(),
        ));
    }
    want.sort();
    let mut got = got;
    got.sort();
    assert_eq!(got, want);
    assert!(
        d.findings
            .iter()
            .filter(|f| f.node.starts_with('b'))
            .all(|f| f.labels["rack"] == "r07")
    );

    // By rack: the VBIOS only r07 has, and the digest only a07's rack has.
    let by: Vec<(String, String, Vec<String>)> = d
        .by_label
        .iter()
        .map(|l| (l.label_value.clone(), l.field.clone(), l.nodes.clone()))
        .collect();
    assert_eq!(
        by,
        [
            (
                "r02".to_string(),
                "artifact/module:nvidia".to_string(),
                vec!["a07".to_string()]
            ),
            (
                "r07".to_string(),
                format!("vbios/{pcie_model}"),
                vec!["b01".into(), "b02".into(), "b03".into()]
            ),
        ]
    );
}

/// Asserts that the allow-list of the module digest flags exactly a07 among `latest`.
pub fn assert_attested(latest: &[NodeReport]) {
    let allow = AllowList::parse(
        &format!("artifacts:\n  - name: module:nvidia\n    sha256: {GOOD}\n"),
        "allow.yaml",
    )
    .unwrap();
    let found = attest(latest, &allow);
    let got: Vec<(&str, &str, &str)> = found
        .iter()
        .map(|f| (f.node.as_str(), f.what.as_str(), f.value.as_str()))
        .collect();
    assert_eq!(got, [("a07", "artifact/module:nvidia", ODD)]);
}
