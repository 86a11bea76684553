//! `linkwise rollout plan` over a fleet store: canaries of both hardware classes in wave
//! 0, every eligible node once, the quarantined node held out with its reason, the plan
//! written atomically and read back; bad flags are bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use linkwise_rollout::plan::Plan;
use linkwise_testkit::cli::{bad_input, ok};

#[test]
fn a_plan_from_the_store_holds_out_the_quarantined_and_covers_every_class() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("f.db").display());
    for (profile, names) in [
        ("dgx-h100", ["h1", "h2", "h3", "h4"]),
        ("pcie-8gpu", ["p1", "p2", "p3", "p4"]),
    ] {
        for (i, n) in names.iter().enumerate() {
            let report = ok(&[
                "report",
                "--source",
                &format!("profile:{profile}"),
                "--node",
                n,
                "--labels",
                &format!("rack=r{i}"),
            ]);
            let f = dir.path().join(format!("{n}.json"));
            std::fs::write(&f, report).unwrap();
            ok(&["fleet", "--db", &db, "ingest", f.to_str().unwrap()]);
        }
    }
    ok(&[
        "fleet",
        "--db",
        &db,
        "quarantine",
        "h3",
        "--reason",
        "XID 79 on GPU2",
    ]);
    let out = dir.path().join("plan.json");
    ok(&[
        "rollout",
        "plan",
        "--db",
        &db,
        "--change",
        "drv-570",
        "--apply",
        "ssh {node} true",
        "--executor",
        "slurm",
        "--max-unavailable",
        "2",
        "-o",
        "json",
        "--out",
        out.to_str().unwrap(),
    ]);
    let plan = Plan::parse(&std::fs::read_to_string(&out).unwrap(), "plan.json").unwrap();
    assert_eq!(plan.waves[0].len(), 2);
    assert!(
        plan.waves[0].iter().any(|n| n.node.starts_with('h'))
            && plan.waves[0].iter().any(|n| n.node.starts_with('p'))
    );
    let mut all: Vec<&str> = plan.nodes().map(|n| n.node.as_str()).collect();
    all.sort_unstable();
    assert_eq!(all, ["h1", "h2", "h4", "p1", "p2", "p3", "p4"]);
    assert_eq!(plan.held_out.len(), 1);
    assert_eq!(plan.held_out[0].node, "h3");
    assert!(plan.held_out[0].reason.contains("XID 79 on GPU2"));
    assert!(
        plan.waves
            .iter()
            .all(|w| w.iter().filter(|n| n.node.starts_with('h')).count() <= 2)
    );

    let err = bad_input(&[
        "rollout",
        "plan",
        "--db",
        &db,
        "--change",
        "x",
        "--apply",
        "y",
        "--max-unavailable",
        "0",
    ]);
    assert!(err.contains("--max-unavailable"), "{err}");
    let err = bad_input(&[
        "rollout", "plan", "--db", &db, "--change", "x", "--apply", "y", "--nodes", "nowhere",
    ]);
    assert!(err.contains("nowhere"), "{err}");
}
