//! Plans over a fleet of several hardware classes and racks: one canary per class in
//! wave 0 on distinct racks, growing waves, no wave above the per-class limit, every
//! eligible node exactly once, the others held out with the reason; the same plan for
//! the same inputs; a plan read back (also with plain node names) as written.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use linkwise_fleet::NodeReport;
use linkwise_rollout::plan::{Amount, Executor, Options, Plan, plan};
use proptest::prelude::*;

fn report(
    node: &str,
    model: &str,
    gpus: usize,
    rack: &str,
    kernel: &str,
    ready: Option<bool>,
) -> NodeReport {
    let gpus: Vec<serde_json::Value> = (0..gpus)
        .map(|i| serde_json::json!({"index": i, "uuid": null, "model": model, "vbios": "96.00.89.00.01"}))
        .collect();
    let mut v = serde_json::json!({
        "schemaVersion": 1,
        "node": node,
        "labels": {"rack": rack},
        "host": {"arch": "x86_64", "kernel": kernel},
        "driver": {"version": "550.54.15"},
        "gpus": gpus,
    });
    if let Some(ready) = ready {
        v["preflight"] = serde_json::json!({"roles": ["gpu-host"], "ready": ready, "pass": 10, "warn": 0,
            "fail": u32::from(!ready), "skip": 0, "failed": if ready { vec![] } else { vec!["iommu.enabled"] }});
    }
    NodeReport::parse(&v.to_string(), node).unwrap()
}

/// 20 HGX nodes in r01-r04, 9 PCIe nodes in r05-r06, 3 Grace nodes in r07; a01 drifted,
/// b03 failing preflight, a05 quarantined.
fn fleet() -> Vec<NodeReport> {
    let mut f = Vec::new();
    for i in 1..=20 {
        let kernel = if i == 1 {
            "6.8.0-62-generic"
        } else {
            "6.8.0-60-generic"
        };
        f.push(report(
            &format!("a{i:02}"),
            "NVIDIA H100 80GB HBM3",
            8,
            &format!("r0{}", 1 + (i - 1) % 4),
            kernel,
            None,
        ));
    }
    for i in 1..=9 {
        let ready = Some(i != 3);
        f.push(report(
            &format!("b{i:02}"),
            "NVIDIA L40S",
            8,
            if i <= 5 { "r05" } else { "r06" },
            "6.8.0-60-generic",
            ready,
        ));
    }
    for i in 1..=3 {
        f.push(report(
            &format!("c{i:02}"),
            "NVIDIA GH200 480GB",
            1,
            "r07",
            "6.8.0-60-generic",
            None,
        ));
    }
    f
}

fn options(max: &str) -> Options {
    Options {
        change: "driver-570".into(),
        apply: "ssh {node} apt-get install -y nvidia-driver-570".into(),
        rollback: Some("ssh {node} apt-get install -y nvidia-driver-550".into()),
        verify: vec!["ssh {node} linkwise preflight".into()],
        gates: vec![],
        prometheus: None,
        gate_interval_seconds: 10,
        executor: Executor::Slurm,
        labels: BTreeMap::new(),
        only: BTreeSet::new(),
        max_unavailable: Amount::parse(max, "--max-unavailable").unwrap(),
        canaries_per_class: 1,
        waves: vec![],
        bake_seconds: 0,
    }
}

fn quarantine() -> BTreeMap<String, String> {
    BTreeMap::from([(
        "a05".to_string(),
        "XID 79 on GPU3 after the last change".to_string(),
    )])
}

#[test]
fn canaries_cover_every_class_waves_grow_within_the_limit_and_every_node_once() {
    let p = plan(&fleet(), &quarantine(), &options("25%")).unwrap();
    // Held out, with reasons.
    let held: Vec<(&str, &str)> = p
        .held_out
        .iter()
        .map(|h| (h.node.as_str(), h.reason.as_str()))
        .collect();
    assert_eq!(held.len(), 3, "{held:?}");
    assert!(
        held[0].0 == "a01" && held[0].1.contains("drift") && held[0].1.contains("6.8.0-62-generic"),
        "{held:?}"
    );
    assert!(
        held[1].0 == "a05" && held[1].1.starts_with("quarantined: XID 79"),
        "{held:?}"
    );
    assert!(
        held[2].0 == "b03"
            && held[2].1.contains("preflight not ready")
            && held[2].1.contains("iommu.enabled")
    );

    // Wave 0: one canary per class, on distinct racks.
    let w0 = &p.waves[0];
    assert_eq!(w0.len(), 3);
    let classes: BTreeSet<&str> = w0.iter().map(|n| n.class.as_str()).collect();
    assert_eq!(classes.len(), 3);
    let racks: BTreeSet<&str> = w0.iter().filter_map(|n| n.rack.as_deref()).collect();
    assert_eq!(racks.len(), 3);

    // Limits: 25% rounded up of each class (20 -> 5, 9 -> 3, 3 -> 1).
    let limit: BTreeMap<&str, usize> = p
        .classes
        .iter()
        .map(|c| (c.class.as_str(), c.per_wave))
        .collect();
    assert_eq!(
        limit.values().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([5, 3, 1])
    );
    for w in &p.waves {
        let mut per: BTreeMap<&str, usize> = BTreeMap::new();
        for n in w {
            *per.entry(n.class.as_str()).or_default() += 1;
        }
        for (c, k) in per {
            assert!(k <= limit[c], "{c}: {k} in a wave");
        }
    }
    // Growing: 3, then 6, then as much as the limits allow (5 + 3 + 1 = 9).
    let sizes: Vec<usize> = p.waves.iter().map(Vec::len).collect();
    assert_eq!(&sizes[..3], &[3, 6, 9], "{sizes:?}");
    // Every eligible node exactly once.
    let all: Vec<&str> = p.nodes().map(|n| n.node.as_str()).collect();
    let set: BTreeSet<&str> = all.iter().copied().collect();
    assert_eq!(all.len(), set.len());
    assert_eq!(all.len(), 32 - 3);
    // Deterministic, and the file reads back as written.
    assert_eq!(plan(&fleet(), &quarantine(), &options("25%")).unwrap(), p);
    let yaml = serde_yaml_ng::to_string(&p).unwrap();
    assert_eq!(Plan::parse(&yaml, "plan.yaml").unwrap(), p);
}

#[test]
fn a_hand_written_plan_reads_with_plain_names_and_a_repeated_node_is_refused() {
    let p = Plan::parse(
        "change: fw-2\napply: ssh {node} fwupd\nexecutor: none\nwaves:\n  - [n1]\n  - [n2, {node: n3}]\n",
        "p.yaml",
    )
    .unwrap();
    assert_eq!(
        p.nodes().map(|n| n.node.as_str()).collect::<Vec<_>>(),
        ["n1", "n2", "n3"]
    );
    let e = Plan::parse(
        "change: x\napply: y\nexecutor: none\nwaves: [[n1], [n1]]\n",
        "p.yaml",
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("n1") && e.to_string().contains("two waves"),
        "{e}"
    );
    let e = Plan::parse("change: x\napply: y\nexecutor: ssh\nwaves: []\n", "p.yaml").unwrap_err();
    assert!(e.to_string().contains("executor"), "{e}");
}

#[test]
fn scope_sizes_and_bad_values() {
    let mut o = options("2");
    o.labels = BTreeMap::from([("rack".to_string(), "r05".to_string())]);
    let p = plan(&fleet(), &BTreeMap::new(), &o).unwrap();
    assert!(p.nodes().all(|n| n.rack.as_deref() == Some("r05")));
    assert_eq!(p.nodes().count() + p.held_out.len(), 5);
    let mut o = options("50%");
    o.waves = vec![Amount::Count(4), Amount::Share(0.5)];
    let p = plan(&fleet(), &BTreeMap::new(), &o).unwrap();
    assert_eq!(p.waves[1].len(), 4);
    assert!(Amount::parse("0", "--max-unavailable").is_err());
    assert!(Amount::parse("150%", "--max-unavailable").is_err());
    assert_eq!(Amount::parse("25%", "x").unwrap().of(9), 3);
    let mut o = options("1");
    o.only = BTreeSet::from(["zz".to_string()]);
    assert!(
        plan(&fleet(), &BTreeMap::new(), &o)
            .unwrap_err()
            .to_string()
            .contains("zz")
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any fleet: every eligible node exactly once, no wave above a class's limit, wave 0
    /// with a canary of every class that has an eligible node.
    #[test]
    fn plans_keep_their_invariants(
        sizes in proptest::collection::vec(1usize..25, 1..4),
        racks in 1usize..5,
        max in prop_oneof![(1usize..6).prop_map(|n| n.to_string()), (5u32..100).prop_map(|p| format!("{p}%"))],
    ) {
        let models = ["NVIDIA H100 80GB HBM3", "NVIDIA L40S", "NVIDIA A100-SXM4-80GB", "NVIDIA B200"];
        let mut f = Vec::new();
        for (c, n) in sizes.iter().enumerate() {
            for i in 0..*n {
                f.push(report(&format!("n{c}-{i:03}"), models[c], 8, &format!("r{}", i % racks), "k", None));
            }
        }
        let p = plan(&f, &BTreeMap::new(), &options(&max)).unwrap();
        let all: Vec<&str> = p.nodes().map(|n| n.node.as_str()).collect();
        let set: BTreeSet<&str> = all.iter().copied().collect();
        prop_assert_eq!(all.len(), set.len());
        prop_assert_eq!(all.len() + p.held_out.len(), f.len());
        let limit: BTreeMap<&str, usize> = p.classes.iter().map(|c| (c.class.as_str(), c.per_wave)).collect();
        for w in &p.waves {
            let mut per: BTreeMap<&str, usize> = BTreeMap::new();
            for n in w { *per.entry(n.class.as_str()).or_default() += 1; }
            for (c, k) in per { prop_assert!(k <= limit[c]); }
        }
        let canary_classes: BTreeSet<&str> = p.waves[0].iter().map(|n| n.class.as_str()).collect();
        prop_assert_eq!(canary_classes.len(), p.classes.len());
    }
}
