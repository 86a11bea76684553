//! `linkwise validate`: expect prints the topology's expectations; check finds the
//! planted faults (exit 1, `-o json` a `findings` list naming the GPUs and the link),
//! passes clean results (exit 0), and refuses unreadable files and bad flags (exit 2).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use linkwise_testkit::cli::{bad_input, ok, run, stderr};
use serde_json::Value;

fn fixture(name: &str) -> String {
    linkwise_testkit::fixtures()
        .join("validate")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn check_finds_the_planted_faults_and_passes_clean_results() {
    let planted = fixture("nvbandwidth-h100-planted.json");
    let o = run(&[
        "validate",
        "check",
        "--source",
        "profile:dgx-h100",
        &planted,
        "-o",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = v["findings"].as_array().unwrap();
    assert_eq!(f.len(), 5, "{v:#}");
    let host = f.iter().find(|x| x["kind"] == "slow-host-link").unwrap();
    assert_eq!(host["gpus"], serde_json::json!([3]));
    assert_eq!(host["link"], "pcie");
    assert!(host["message"].as_str().unwrap().contains("GPU3"));
    assert!(
        f.iter()
            .filter(|x| x["kind"] == "slow-pair")
            .all(|x| x["link"] == "nvswitch")
    );

    let clean: Vec<String> = [
        "nvbandwidth-h100-clean.txt",
        "nccl-allreduce-h100.txt",
        "dcgm4-diag-pass.json",
    ]
    .iter()
    .map(|f| fixture(f))
    .collect();
    let mut args = vec![
        "validate",
        "check",
        "--source",
        "profile:dgx-h100",
        "-o",
        "json",
    ];
    args.extend(clean.iter().map(String::as_str));
    let v: Value = serde_json::from_str(&ok(&args)).unwrap();
    assert_eq!(v["findings"], serde_json::json!([]));
    assert_eq!(v["compared"], 129);
}

#[test]
fn expect_and_import_print_the_model() {
    let v: Value = serde_json::from_str(&ok(&[
        "validate",
        "expect",
        "--source",
        "profile:dgx-h100",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(v["pairs"].as_array().unwrap().len(), 28);
    assert_eq!(v["pairs"][0]["class"], "nvswitch");
    let table = ok(&["validate", "expect", "--source", "profile:pcie-8gpu"]);
    assert!(
        table.contains("PCIe PIX") && table.contains("HOST LINK"),
        "{table}"
    );

    let v: Value = serde_json::from_str(&ok(&[
        "validate",
        "import",
        &fixture("nccl-allreduce-h100.txt"),
    ]))
    .unwrap();
    assert_eq!(v["tool"], "nccl-tests");
    assert_eq!(v["tests"][0]["collective"]["ranks"], 8);
}

#[test]
fn unreadable_results_and_bad_flags_are_bad_input() {
    let err = bad_input(&[
        "validate",
        "import",
        &fixture("nvbandwidth-h100-truncated.txt"),
    ]);
    assert!(
        err.contains("line 41") && err.contains("truncated"),
        "{err}"
    );
    let err = bad_input(&[
        "validate",
        "check",
        "--source",
        "profile:dgx-h100",
        "--min-ratio",
        "1.5",
        &fixture("nvbandwidth-h100-clean.json"),
    ]);
    assert!(err.contains("--min-ratio"), "{err}");
}

#[test]
fn gate_exits_1_on_a_regression_and_0_without() {
    let clean = fixture("nvbandwidth-h100-clean.json");
    let planted = fixture("nvbandwidth-h100-planted.txt");
    let o = run(&[
        "validate",
        "gate",
        "--baseline",
        &clean,
        &clean,
        &clean,
        "--candidate",
        &planted,
        &planted,
        &planted,
        "-o",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["verdict"] == "regressed")
    );
    let out = ok(&[
        "validate",
        "gate",
        "--baseline",
        &clean,
        &clean,
        &clean,
        "--candidate",
        &clean,
        &clean,
        &clean,
    ]);
    assert!(out.contains("no change"), "{out}");
    // One run a side is never a verdict.
    let out = ok(&[
        "validate",
        "gate",
        "--baseline",
        &clean,
        "--candidate",
        &planted,
    ]);
    assert!(out.contains("inconclusive: need 2 more runs"), "{out}");
    let err = bad_input(&[
        "validate",
        "gate",
        "--baseline",
        &clean,
        "--candidate",
        &clean,
        "--max-regression",
        "150%",
    ]);
    assert!(
        err.contains("max-regression") || err.contains("150%"),
        "{err}"
    );
}

#[test]
fn compare_exits_0_within_tolerance_1_beyond_2_unreadable() {
    use linkwise_testkit::{Prerequisite, require};
    if !require(Prerequisite::command(
        "python3",
        &["-c", "import numpy"],
        "python3 -m pip install numpy",
    )) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let o = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, numpy as np\nd=sys.argv[1]\na=np.linspace(0,1,64,dtype=np.float32).reshape(8,8)\nnp.save(d+'/a.npy',a)\nb=a.copy(); b[2,3]=np.nan\nnp.save(d+'/b.npy',b)",
            d,
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (a, b) = (format!("{d}/a.npy"), format!("{d}/b.npy"));
    let out = ok(&["validate", "compare", &a, &a, "--ulp", "0"]);
    assert!(out.contains("within tolerance"), "{out}");
    let o = run(&["validate", "compare", &a, &b, "-o", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["tensors"][0]["nanMismatches"], 1);
    assert_eq!(
        v["tensors"][0]["firstMismatches"],
        serde_json::json!([[2, 3]])
    );
    let err = bad_input(&["validate", "compare", &a, "Cargo.toml"]);
    assert!(err.contains("Cargo.toml"), "{err}");
}

#[test]
fn bench_host_memory_feeds_the_gate_and_bench_gpu_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("run.json");
    let out = ok(&[
        "validate",
        "bench",
        "host-memory",
        "--size-mib",
        "16",
        "--repeat",
        "2",
        "-o",
        "json",
    ]);
    std::fs::write(&file, &out).unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["tool"], "linkwise");
    assert_eq!(v["tests"].as_array().unwrap().len(), 4);
    let f = file.to_str().unwrap();
    let table = ok(&[
        "validate",
        "gate",
        "--baseline",
        f,
        f,
        f,
        "--candidate",
        f,
        f,
        f,
    ]);
    assert!(
        table.contains("host_memory_triad/min") && table.contains("no change"),
        "{table}"
    );
    if !std::path::Path::new("/proc/driver/nvidia/version").exists() {
        let err = bad_input(&["validate", "bench", "gpu"]);
        assert!(err.contains("no NVIDIA driver"), "{err}");
    }
}

#[test]
fn a_baseline_stored_per_hardware_class_gates_a_candidate() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("f.db").display());
    // Three runs of the clean results (each file its own run), the candidate planted.
    let runs: Vec<String> = (0..3)
        .map(|i| {
            let p = dir.path().join(format!("before-{i}.json"));
            std::fs::copy(fixture("nvbandwidth-h100-clean.json"), &p).unwrap();
            p.display().to_string()
        })
        .collect();
    let planted = fixture("nvbandwidth-h100-planted.txt");
    // No baseline yet: bad input naming how to store one.
    let err = bad_input(&[
        "validate",
        "gate",
        "--baseline-class",
        "h100",
        "--db",
        &db,
        "--candidate",
        &planted,
    ]);
    assert!(err.contains("baseline add"), "{err}");
    // A node's class from its latest report.
    let report = ok(&[
        "report",
        "--source",
        "profile:dgx-h100",
        "--node",
        "gpu-a01",
    ]);
    let report_file = dir.path().join("report.json");
    std::fs::write(&report_file, report).unwrap();
    ok(&[
        "fleet",
        "--db",
        &db,
        "ingest",
        report_file.to_str().unwrap(),
    ]);
    let mut add = vec![
        "validate", "baseline", "add", "--node", "gpu-a01", "--db", &db,
    ];
    add.extend(runs.iter().map(String::as_str));
    ok(&add);
    // Adding the same runs again stores nothing new.
    let o = run(&add);
    assert!(stderr(&o).contains("0 runs added"), "{}", stderr(&o));
    let list: Value = serde_json::from_str(&ok(&[
        "validate", "baseline", "list", "--db", &db, "-o", "json",
    ]))
    .unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3);
    let class = list[0]["class"].as_str().unwrap().to_string();
    assert!(class.contains("H100"), "{class}");
    // A bad file stores nothing.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"nvbandwidth\": {\"testcases\": [{\"name\": 1}]}}").unwrap();
    bad_input(&[
        "validate",
        "baseline",
        "add",
        "--class",
        &class,
        "--db",
        &db,
        &runs[0],
        bad.to_str().unwrap(),
    ]);
    assert_eq!(
        serde_json::from_str::<Value>(&ok(&[
            "validate", "baseline", "list", "--db", &db, "-o", "json"
        ]))
        .unwrap()
        .as_array()
        .unwrap()
        .len(),
        3
    );
    // The stored baseline gates: the planted candidate regressed, by class or by node.
    for by in [
        ["--baseline-class", class.as_str()],
        ["--baseline-node", "gpu-a01"],
    ] {
        let o = run(&[
            "validate",
            "gate",
            by[0],
            by[1],
            "--db",
            &db,
            "--candidate",
            &planted,
            &planted,
            &planted,
            "-o",
            "json",
        ]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(
            v["metrics"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["verdict"] == "regressed")
        );
    }
    let clean = fixture("nvbandwidth-h100-clean.txt");
    let out = ok(&[
        "validate",
        "gate",
        "--baseline-node",
        "gpu-a01",
        "--db",
        &db,
        "--candidate",
        &clean,
        &clean,
        &clean,
    ]);
    assert!(out.contains("no change"), "{out}");
    // An unknown node is bad input; clearing removes the class's runs.
    let err = bad_input(&[
        "validate",
        "gate",
        "--baseline-node",
        "nope",
        "--db",
        &db,
        "--candidate",
        &clean,
    ]);
    assert!(err.contains("nope"), "{err}");
    let o = run(&[
        "validate", "baseline", "clear", "--class", &class, "--db", &db,
    ]);
    assert!(stderr(&o).contains("3 runs"), "{}", stderr(&o));
    assert_eq!(
        ok(&["validate", "baseline", "list", "--db", &db, "-o", "json"]).trim(),
        "[]"
    );
}
