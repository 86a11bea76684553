//! `linkwise rollout plan` over a fleet store: canaries of both hardware classes in wave
//! 0, every eligible node once, the quarantined node held out with its reason, the plan
//! written atomically and read back; bad flags are bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

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

fn write_plan(
    dir: &std::path::Path,
    change: &str,
    apply: &str,
    nodes: usize,
) -> std::path::PathBuf {
    let applied = dir.join("applied");
    let names: Vec<String> = (0..nodes).map(|i| format!("n{i:02}")).collect();
    let waves: Vec<String> = names
        .chunks(4)
        .map(|w| format!("  - [{}]", w.join(", ")))
        .collect();
    // Commands as JSON strings, which YAML reads as double-quoted scalars.
    let quote = |s: &str| serde_json::to_string(s).unwrap();
    let plan = format!(
        "change: {change}\nexecutor: none\napply: {apply}\nverify:\n  - {verify}\nwaves:\n{}\n",
        waves.join("\n"),
        apply = quote(&apply.replace("APPLIED", &applied.display().to_string())),
        verify = quote(&format!("grep -qx {{node}} {}", applied.display()))
    );
    let path = dir.join(format!("{change}.yaml"));
    std::fs::write(&path, plan).unwrap();
    path
}

fn applied_counts(dir: &std::path::Path) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for l in std::fs::read_to_string(dir.join("applied"))
        .unwrap_or_default()
        .lines()
    {
        *counts.entry(l.to_string()).or_insert(0) += 1;
    }
    counts
}

/// Regression guard for crash safety: a run killed with SIGKILL at random points (seeded)
/// and resumed each time applies every node exactly once — an apply in flight at the kill
/// is waited for and verified, never run twice.
fn postgres() -> Option<String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(linkwise_testkit::postgres::fresh_database())
}

#[test]
fn a_rollout_killed_at_random_points_applies_every_node_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    killed_at_random_points(
        dir.path(),
        &format!("sqlite:{}", dir.path().join("f.db").display()),
    );
}

#[test]
fn postgres_a_rollout_killed_at_random_points_applies_every_node_exactly_once() {
    let Some(db) = postgres() else { return };
    let dir = tempfile::tempdir().unwrap();
    killed_at_random_points(dir.path(), &db);
}

fn killed_at_random_points(dir: &std::path::Path, db: &str) {
    let db = db.to_string();
    let plan = write_plan(dir, "crash", "sleep 0.03; echo {node} >> APPLIED", 16);
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut kills = 0;
    loop {
        // `run` until the rollout is in the store (a run killed before it registered the
        // plan left nothing to resume), `resume` after.
        let registered = linkwise_testkit::cli::run(&["rollout", "status", "crash", "--db", &db])
            .status
            .success();
        let mut cmd = linkwise_testkit::cli::linkwise();
        if registered {
            cmd.args(["rollout", "resume", "crash", "--db", &db]);
        } else {
            cmd.args(["rollout", "run", plan.to_str().unwrap(), "--db", &db]);
        }
        let mut child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut killed = false;
        if kills < 25 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            std::thread::sleep(std::time::Duration::from_millis(20 + seed % 300));
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL
                kills += 1;
                killed = true;
            }
        }
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            break;
        }
        // Regression: a run that was not killed and failed (once: a resume before the
        // plan was registered) made this loop spin for ever.
        assert!(
            killed,
            "a run that was not killed failed: {:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // In-flight applies of the last killed run may still be finishing; they are waited for by
    // the resume, so by now they are done.
    let counts = applied_counts(dir);
    assert_eq!(counts.len(), 16, "{counts:?}");
    assert!(
        counts.values().all(|c| *c == 1),
        "a node applied twice or never: {counts:?} after {kills} kills"
    );
    let v: serde_json::Value = serde_json::from_str(&ok(&[
        "rollout", "status", "crash", "--db", &db, "-o", "json",
    ]))
    .unwrap();
    assert_eq!(v["state"], "succeeded");
    assert!(
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["state"] == "done")
    );
    eprintln!("killed {kills} times");
}

#[test]
fn a_failing_apply_rolls_back_quarantines_and_leaves_later_waves_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("f.db").display());
    let plan = write_plan(
        dir.path(),
        "bad",
        "[ {node} != n05 ] && echo {node} >> APPLIED",
        12,
    );
    let text = std::fs::read_to_string(&plan).unwrap().replace(
        "verify:",
        &format!(
            "rollback: echo {{node}} >> {}\nverify:",
            dir.path().join("rolled-back").display()
        ),
    );
    std::fs::write(&plan, text).unwrap();
    let o = linkwise_testkit::cli::run(&["rollout", "run", plan.to_str().unwrap(), "--db", &db]);
    assert_eq!(o.status.code(), Some(1));
    let err = linkwise_testkit::cli::stderr(&o);
    assert!(
        err.contains("n05 at apply") && err.contains("quarantined"),
        "{err}"
    );
    // Wave 0 (n00-n03) done, n04 done, n05 failed; n06.. and wave 2 untouched.
    let counts = applied_counts(dir.path());
    assert_eq!(
        counts.keys().cloned().collect::<Vec<_>>(),
        ["n00", "n01", "n02", "n03", "n04"]
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("rolled-back")).unwrap(),
        "n05\n"
    );
    let q = ok(&["fleet", "quarantine", "--db", &db, "-o", "json"]);
    assert!(
        q.contains("\"n05\"") && q.contains("bad failed at apply"),
        "{q}"
    );
    let v: serde_json::Value = serde_json::from_str(&ok(&[
        "rollout", "status", "bad", "--db", &db, "-o", "json",
    ]))
    .unwrap();
    assert_eq!(v["state"], "failed");
    let states: Vec<&str> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["state"].as_str().unwrap())
        .collect();
    assert_eq!(&states[4..7], &["done", "quarantined", "pending"]);
    // A failed rollout is not resumed; the log says what ran.
    let o = linkwise_testkit::cli::run(&["rollout", "resume", "bad", "--db", &db]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        v["log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["step"] == "rollback" && l["command"].as_str().unwrap().contains("n05"))
    );
}

#[test]
fn two_runs_of_one_rollout_cannot_proceed_at_once_and_a_dead_holder_is_taken_over() {
    // Regression: this test once polled `rollout status` for the two seconds in which
    // the first run held the lease, and missed them under load. Now the first node's
    // apply marks that it started (the run holds the lease then) and waits for the
    // test's go.
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("f.db").display());
    let started = dir.path().join("started");
    let go = dir.path().join("go");
    let apply = format!(
        "echo {{node}} >> {}; while [ ! -e {} ]; do sleep 0.05; done; echo {{node}} >> APPLIED",
        started.display(),
        go.display()
    );
    let plan = write_plan(dir.path(), "lease", &apply, 2);
    let mut first = linkwise_testkit::cli::linkwise()
        .args(["rollout", "run", plan.to_str().unwrap(), "--db", &db])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    linkwise_testkit::wait::poll_until(
        std::time::Duration::from_secs(60),
        "the first run's first apply to start",
        || started.exists().then_some(()),
    )
    .unwrap();
    let o = linkwise_testkit::cli::run(&["rollout", "resume", "lease", "--db", &db]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        linkwise_testkit::cli::stderr(&o).contains("is being run by"),
        "{}",
        linkwise_testkit::cli::stderr(&o)
    );
    first.kill().unwrap();
    first.wait().unwrap();
    // The holder is dead: the next run takes over at once, waits for the apply it left
    // in flight (which the go lets finish), verifies it and finishes.
    std::fs::write(&go, "").unwrap();
    ok(&["rollout", "resume", "lease", "--db", &db]);
    let counts = applied_counts(dir.path());
    assert_eq!(counts.len(), 2);
    assert!(counts.values().all(|c| *c == 1), "{counts:?}");
}

#[test]
fn an_abort_stops_a_running_rollout_before_its_next_node() {
    // Regression: this test once polled `rollout status` for a half-second
    // window in which the first node was applying and missed it under load.
    // Now the apply waits for the test: it marks that it started, then
    // blocks until the test has aborted and says go.
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("f.db").display());
    let started = dir.path().join("started");
    let go = dir.path().join("go");
    let apply = format!(
        "echo {{node}} >> {}; while [ ! -e {} ]; do sleep 0.05; done; echo {{node}} >> APPLIED",
        started.display(),
        go.display()
    );
    let plan = write_plan(dir.path(), "stop", &apply, 4);
    let run = linkwise_testkit::cli::linkwise()
        .args(["rollout", "run", plan.to_str().unwrap(), "--db", &db])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    linkwise_testkit::wait::poll_until(
        std::time::Duration::from_secs(60),
        "the first node's apply to start",
        || started.exists().then_some(()),
    )
    .unwrap();
    ok(&["rollout", "abort", "stop", "--db", &db]);
    std::fs::write(&go, "").unwrap();
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("aborted"));
    // The node in flight finished; no other started.
    assert_eq!(
        std::fs::read_to_string(&started).unwrap().lines().count(),
        1,
        "only the first node's apply may start"
    );
    assert_eq!(applied_counts(dir.path()).len(), 1);
}

/// A gated plan over `waves` (node names), every command writing beside `dir`.
fn gated_plan(
    dir: &std::path::Path,
    change: &str,
    waves: &[&[&str]],
    apply: &str,
    prometheus: &str,
    bake: u64,
) -> std::path::PathBuf {
    let quote = |s: &str| serde_json::to_string(s).unwrap();
    let applied = dir.join("applied");
    let plan = format!(
        "change: {change}\nexecutor: none\napply: {apply}\nrollback: {rollback}\nverify:\n  - {verify}\n\
         gates:\n  - {gate}\nprometheus: {prometheus}\nbakeSeconds: {bake}\ngateIntervalSeconds: 1\nwaves:\n{waves}\n",
        apply = quote(&apply.replace("APPLIED", &applied.display().to_string())),
        rollback = quote(&format!(
            "echo {{node}} >> {}",
            dir.join("rolledback").display()
        )),
        verify = quote(&format!("grep -qx {{node}} {}", applied.display())),
        gate = quote("linkwise_gpu_healthy{node=~\"{nodes}\"} == 0"),
        waves = waves
            .iter()
            .map(|w| format!("  - [{}]", w.join(", ")))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let path = dir.join(format!("{change}.yaml"));
    std::fs::write(&path, plan).unwrap();
    path
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The Prometheus gate on a real Prometheus scraping a real `linkwise exporter` per node:
/// a clean rollout passes every wave's gate; a GPU health failure injected by one node's
/// apply (through the exporter's health file) fails its wave's gate, and that node — only
/// it — is rolled back and quarantined, the later wave untouched, exit 1.
#[test]
fn a_gpu_health_failure_seen_by_prometheus_fails_the_gate_and_rolls_back() {
    use linkwise_testkit::process::Spawned;
    use linkwise_testkit::prometheus::{self, Target};
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let nodes = ["n00", "n01", "n02", "n03"];
    let mut exporters = Vec::new();
    let mut targets = Vec::new();
    for n in nodes {
        let mut cmd = linkwise_testkit::cli::linkwise();
        cmd.args([
            "exporter",
            "--source",
            "profile:dgx-h100",
            "--metrics-addr",
            "127.0.0.1:0",
            "--metrics-interval",
            "1",
            "--pod-resources-socket",
            "none",
            "--health-file",
        ])
        .arg(dir.path().join(format!("health-{n}")));
        let e = Spawned::start(cmd);
        targets.push(Target {
            addr: e.serving_addr(Duration::from_secs(30)),
            labels: vec![("node".into(), n.into())],
        });
        exporters.push(e);
    }
    let Some(prom) = prometheus::start(dir.path(), &targets) else {
        return;
    };
    prom.wait_for_series("linkwise_gpu_healthy == 1", 4 * 8, Duration::from_secs(60));
    let db = format!("sqlite:{}", dir.path().join("f.db").display());

    // Clean: every wave's gate passes.
    let waves: &[&[&str]] = &[&["n00"], &["n01", "n02"], &["n03"]];
    let clean = gated_plan(
        dir.path(),
        "clean",
        waves,
        "echo {node} >> APPLIED",
        &prom.url,
        2,
    );
    ok(&["rollout", "run", clean.to_str().unwrap(), "--db", &db]);
    let v: serde_json::Value = serde_json::from_str(&ok(&[
        "rollout", "status", "clean", "--db", &db, "-o", "json",
    ]))
    .unwrap();
    assert_eq!(v["state"], "succeeded", "{v:#}");
    let passed = v["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["step"] == "gates-passed")
        .count();
    assert_eq!(passed, 3, "{v:#}");
    std::fs::remove_file(dir.path().join("applied")).unwrap();

    // n02's apply marks its GPU3 unhealthy: the exporter shows it, Prometheus scrapes it.
    let health = dir.path().join("health-{node}");
    let inject = format!(
        "echo {{node}} >> APPLIED; if [ {{node}} = n02 ]; then echo 'GPU3 unhealthy XID 79' > {}; fi",
        health.display()
    );
    let bad = gated_plan(dir.path(), "bad", waves, &inject, &prom.url, 10);
    let o = linkwise_testkit::cli::run(&["rollout", "run", bad.to_str().unwrap(), "--db", &db]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("n02") && err.contains("linkwise_gpu_healthy"),
        "{err}"
    );
    assert_eq!(
        lines(&dir.path().join("applied")),
        ["n00", "n01", "n02"],
        "n03 untouched"
    );
    assert_eq!(
        lines(&dir.path().join("rolledback")),
        ["n02"],
        "only the node the gate names"
    );
    let v: serde_json::Value = serde_json::from_str(&ok(&[
        "rollout", "status", "bad", "--db", &db, "-o", "json",
    ]))
    .unwrap();
    assert_eq!(v["state"], "failed");
    let state = |n: &str| {
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["node"] == n)
            .unwrap()["state"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        [state("n00"), state("n01"), state("n02"), state("n03")],
        ["done", "done", "quarantined", "pending"]
    );
    let q: serde_json::Value =
        serde_json::from_str(&ok(&["fleet", "--db", &db, "quarantine", "-o", "json"])).unwrap();
    let quarantined: Vec<&str> = q
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["node"].as_str().unwrap())
        .collect();
    assert_eq!(quarantined, ["n02"], "{q:#}");
    assert!(
        q[0]["reason"].as_str().unwrap().contains("GPU-999cdd48"),
        "{q:#}"
    );
}

#[test]
fn a_gate_that_cannot_be_evaluated_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("f.db").display());
    // Nothing listens on port 1: no answer, so the gate does not pass.
    let plan = gated_plan(
        dir.path(),
        "closed",
        &[&["n00"], &["n01"]],
        "echo {node} >> APPLIED",
        "http://127.0.0.1:1",
        0,
    );
    let o = linkwise_testkit::cli::run(&["rollout", "run", plan.to_str().unwrap(), "--db", &db]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("could not be evaluated"), "{err}");
    assert_eq!(lines(&dir.path().join("applied")), ["n00"]);
    assert_eq!(lines(&dir.path().join("rolledback")), ["n00"]);
    // Gates without a Prometheus to ask are refused before anything runs.
    let text = std::fs::read_to_string(&plan)
        .unwrap()
        .replace("prometheus: http://127.0.0.1:1\n", "");
    let nowhere = dir.path().join("nowhere.yaml");
    std::fs::write(&nowhere, text.replace("change: closed", "change: nowhere")).unwrap();
    let o = linkwise_testkit::cli::run(&["rollout", "run", nowhere.to_str().unwrap(), "--db", &db]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("prometheus"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn rollback_undoes_the_change_everywhere_it_reached_last_first() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("f.db").display());
    let rolled = dir.path().join("rolledback");
    let with_rollback = |change: &str, apply: &str| {
        let p = write_plan(dir.path(), change, apply, 6);
        let text = std::fs::read_to_string(&p).unwrap().replace(
            "executor: none\n",
            &format!(
                "executor: none\nrollback: {}\n",
                serde_json::to_string(&format!("echo {{node}} >> {}", rolled.display())).unwrap()
            ),
        );
        std::fs::write(&p, text).unwrap();
        p
    };
    // A rollout that stopped at n04: n00..n03 done, n04 rolled back and quarantined, n05
    // never touched.
    let plan = with_rollback("undo", "[ {node} != n04 ] && echo {node} >> APPLIED");
    let o = linkwise_testkit::cli::run(&["rollout", "run", plan.to_str().unwrap(), "--db", &db]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(lines(&rolled), ["n04"]);
    let dry = ok(&["rollout", "rollback", "undo", "--db", &db, "--dry-run"]);
    assert_eq!(dry.lines().count(), 4, "{dry}");
    assert!(!dry.contains("n04") && !dry.contains("n05"), "{dry}");
    ok(&["rollout", "rollback", "undo", "--db", &db]);
    assert_eq!(lines(&rolled), ["n04", "n03", "n02", "n01", "n00"]);
    let v: serde_json::Value = serde_json::from_str(&ok(&[
        "rollout", "status", "undo", "--db", &db, "-o", "json",
    ]))
    .unwrap();
    assert_eq!(v["state"], "rolled-back");
    let states: Vec<&str> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        [
            "rolled-back",
            "rolled-back",
            "rolled-back",
            "rolled-back",
            "quarantined",
            "pending"
        ]
    );
    // Nothing left to undo: a second rollback rolls back nothing; resume is refused.
    ok(&["rollout", "rollback", "undo", "--db", &db]);
    assert_eq!(lines(&rolled).len(), 5);
    let o = linkwise_testkit::cli::run(&["rollout", "resume", "undo", "--db", &db]);
    assert_ne!(o.status.code(), Some(0));
    assert!(linkwise_testkit::cli::stderr(&o).contains("rolled-back"));
    // A plan without a rollback command cannot be rolled back.
    let plain = write_plan(dir.path(), "plain", "echo {node} >> APPLIED", 1);
    ok(&["rollout", "run", plain.to_str().unwrap(), "--db", &db]);
    let o = linkwise_testkit::cli::run(&["rollout", "rollback", "plain", "--db", &db]);
    assert_ne!(o.status.code(), Some(0));
    assert!(linkwise_testkit::cli::stderr(&o).contains("no rollback command"));
}
