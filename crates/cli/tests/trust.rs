//! Trust on a real node: NVLink facts are never published as absent when they are only
//! unknown, every input is bounded, impossible values are refused (exit 2), devices are
//! named as operators name them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Output, Stdio};

use linkwise_testkit::cli::{linkwise as bin, run, stderr, stdout};
use linkwise_testkit::repo_root as repo;

/// Runs with standard input read from `/dev/zero` (an endless stream).
fn linkwise_zero_stdin(args: &[&str]) -> Output {
    let zero = std::fs::File::open("/dev/zero").expect("/dev/zero");
    bin()
        .args(args)
        .stdin(Stdio::from(zero))
        .output()
        .expect("run linkwise")
}

/// A captured DGX H100 sysfs tree: eight H100s and four NVSwitches, no NVML.
fn dgx_sysfs() -> String {
    format!(
        "sysfs:{}",
        repo().join("fixtures/sysfs/x86_64-dgx-h100").display()
    )
}

#[test]
fn version_names_the_features_built_in() {
    let o = run(&["--version"]);
    assert!(o.status.success());
    let v = stdout(&o);
    // Release builds load NVML at run time by default.
    assert!(
        v.contains("features:") && v.contains("nvml"),
        "--version should list the features: {v}"
    );
}

#[test]
fn nvlink_unknown_is_refused_by_every_command_that_publishes_fabric_facts() {
    // Regression: on a real NVSwitch node without NVML, `labels` said nvlink=false,
    // `slurm gres` wrote Links=0 everywhere and `alloc` chose by PCIe alone.
    let src = dgx_sysfs();
    let kubelet = tempfile::tempdir().unwrap();
    let kdir = kubelet.path().to_str().unwrap();
    let commands: Vec<Vec<&str>> = vec![
        vec!["labels", "--source", &src],
        vec!["labels", "--source", &src, "-o", "nfd"],
        vec!["alloc", "--source", &src, "--count", "2"],
        vec!["dra", "slices", "--source", &src],
        vec!["slurm", "gres", "--source", &src],
        vec!["slurm", "node", "--source", &src],
        vec!["slurm", "topology", "--source", &src],
        vec![
            "exporter",
            "--source",
            &src,
            "--metrics-addr",
            "127.0.0.1:0",
        ],
        vec![
            "agent",
            "--source",
            &src,
            "--kubelet-dir",
            kdir,
            "--nfd-features-dir",
            "none",
            "--metrics-addr",
            "none",
        ],
    ];
    for args in &commands {
        let o = run(args);
        assert!(
            !o.status.success(),
            "linkwise {args:?} published without NVLink facts: {}",
            stdout(&o)
        );
        assert!(
            stdout(&o).is_empty(),
            "{args:?} printed facts: {}",
            stdout(&o)
        );
        assert!(
            stderr(&o).contains("--allow-missing-nvlink"),
            "{args:?} should say how to override: {}",
            stderr(&o)
        );
    }
    // With the override: published, with a warning on stderr.
    for args in [
        vec!["labels", "--source", &src, "--allow-missing-nvlink"],
        vec![
            "alloc",
            "--source",
            &src,
            "--count",
            "2",
            "--allow-missing-nvlink",
        ],
        vec!["slurm", "gres", "--source", &src, "--allow-missing-nvlink"],
    ] {
        let o = run(&args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        assert!(!stdout(&o).is_empty());
        assert!(
            stderr(&o).contains("warning") && stderr(&o).contains("NVLink"),
            "{args:?} should warn: {}",
            stderr(&o)
        );
    }
    // Sources whose NVLink facts are known (present or absent) publish without a word.
    for src in ["profile:dgx-h100", "profile:pcie-8gpu"] {
        let o = run(&["labels", "--source", src]);
        assert!(o.status.success(), "{src}: {}", stderr(&o));
        assert!(stderr(&o).is_empty(), "{src}: {}", stderr(&o));
    }
    // Discovery itself reports what it saw, gap included, without refusing.
    let o = run(&["discover", "--source", &src]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("nvlink"), "{}", stdout(&o));
}

#[test]
fn every_file_and_stdin_input_stops_at_the_size_cap() {
    // Regression: `discover --source snapshot:/dev/zero` grew memory without bound.
    let dir = tempfile::tempdir().unwrap();
    let cluster = dir.path().join("cluster");
    std::fs::create_dir(&cluster).unwrap();
    std::os::unix::fs::symlink("/dev/zero", cluster.join("node.json")).unwrap();
    let cluster = cluster.to_str().unwrap();
    let cap = ["--max-input-bytes", "1M"];
    let files: Vec<Vec<&str>> = vec![
        vec!["discover", "--source", "snapshot:/dev/zero"],
        vec!["discover", "--source", "topo-text:/dev/zero"],
        vec!["topo", "--source", "snapshot:/dev/zero"],
        vec![
            "alloc",
            "--source",
            "profile:dgx-h100",
            "--batch",
            "/dev/zero",
        ],
        vec![
            "slurm",
            "topology",
            "--cluster",
            cluster,
            "--plugin",
            "block",
        ],
        vec![
            "slurm",
            "gres",
            "--source",
            "profile:dgx-h100",
            "--check",
            "/dev/zero",
        ],
        vec![
            "extender",
            "--listen",
            "127.0.0.1:0",
            "--nodes-file",
            "/dev/zero",
        ],
        vec![
            "sim",
            "--nodes",
            "/dev/zero",
            "--pods",
            "/dev/zero",
            "--seeds",
            "1",
        ],
    ];
    for args in &files {
        let all: Vec<&str> = cap.iter().copied().chain(args.iter().copied()).collect();
        let o = run(&all);
        assert_eq!(o.status.code(), Some(2), "{all:?}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains("input limit") || e.contains("longer than"),
            "{all:?} should name the cap: {e}"
        );
    }
    let nodes = repo()
        .join("fixtures/openb-mini/nodes.csv")
        .display()
        .to_string();
    let stdin: Vec<Vec<&str>> = vec![
        vec!["discover", "--source", "snapshot:-"],
        vec!["discover", "--source", "topo-text:-"],
        vec!["alloc", "--source", "profile:dgx-h100", "--batch", "-"],
        vec!["slurm", "gres", "--source", "snapshot:-"],
        vec![
            "slurm",
            "gres",
            "--source",
            "profile:dgx-h100",
            "--check",
            "-",
        ],
        vec!["sim", "--nodes", &nodes, "--pods", "-", "--seeds", "1"],
    ];
    for args in &stdin {
        let all: Vec<&str> = cap.iter().copied().chain(args.iter().copied()).collect();
        let o = linkwise_zero_stdin(&all);
        assert_eq!(o.status.code(), Some(2), "{all:?}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains("input limit") || e.contains("longer than"),
            "{all:?} should name the cap: {e}"
        );
    }
    // A bad cap is bad input.
    for bad in ["0", "12X", "-5"] {
        let o = run(&["--max-input-bytes", bad, "profiles"]);
        assert_eq!(o.status.code(), Some(2), "--max-input-bytes {bad}");
    }
}

#[test]
fn impossible_values_are_bad_input_with_what_is_allowed() {
    let kubelet = tempfile::tempdir().unwrap();
    let kdir = kubelet.path().to_str().unwrap();
    let agent = |extra: &[&'static str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "agent",
            "--source",
            "profile:dgx-h100",
            "--kubelet-dir",
            kdir,
            "--nfd-features-dir",
            "none",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if !extra.contains(&"--metrics-addr") {
            v.extend(["--metrics-addr".to_string(), "none".to_string()]);
        }
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        // (arguments, a fragment of the message saying what is allowed)
        (
            s(&["discover", "--source", "sysfs:/nonexistent"]),
            "sysfs:/nonexistent",
        ),
        (
            s(&["labels", "--source", "sysfs:/nonexistent"]),
            "sysfs:/nonexistent",
        ),
        (
            s(&[
                "alloc",
                "--source",
                "profile:dgx-h100",
                "--count",
                "2",
                "--numa",
                "99",
            ]),
            "NUMA node(s) 0, 1",
        ),
        (
            s(&["alloc", "--source", "profile:dgx-h100", "--count", "0"]),
            "at least 1",
        ),
        (
            s(&["alloc", "--source", "profile:dgx-h100", "--count", "9"]),
            "has 8 GPU",
        ),
        (
            s(&[
                "alloc",
                "--source",
                "profile:dgx-h100",
                "--count",
                "2",
                "--available",
                "",
            ]),
            "names no GPU",
        ),
        (
            s(&[
                "alloc",
                "--source",
                "profile:dgx-h100",
                "--count",
                "2",
                "--available",
                "1,2,1",
            ]),
            "twice",
        ),
        (
            s(&[
                "alloc",
                "--source",
                "profile:dgx-h100",
                "--count",
                "2",
                "--available",
                "0-3",
                "--must-include",
                "5",
            ]),
            "not among the available",
        ),
        (
            s(&[
                "alloc",
                "--source",
                "profile:dgx-h100",
                "--count",
                "1",
                "--must-include",
                "0,1",
            ]),
            "--count is 1",
        ),
        (
            s(&[
                "alloc",
                "--source",
                "profile:dgx-h100",
                "--count",
                "2",
                "--cpus",
                "900-901",
            ]),
            "not on profile:dgx-h100",
        ),
        (
            s(&[
                "alloc",
                "--source",
                "profile:dgx-h100",
                "--count",
                "2",
                "--available",
                "3-1",
            ]),
            "backwards",
        ),
        (
            s(&[
                "alloc",
                "--source",
                "profile:dgx-h100",
                "--milli",
                "500",
                "--available",
                "",
            ]),
            "names no GPU",
        ),
        (
            s(&[
                "alloc",
                "--source",
                "profile:degraded",
                "--count",
                "2",
                "--available",
                "3,4",
            ]),
            "--allow-unhealthy",
        ),
        (
            s(&[
                "alloc",
                "--source",
                "profile:degraded",
                "--milli",
                "500",
                "--available",
                "3",
            ]),
            "--allow-unhealthy",
        ),
        (
            s(&[
                "alloc",
                "--source",
                "profile:pcie-8gpu",
                "--milli",
                "500",
                "--used",
                "0:250,0:300",
            ]),
            "twice",
        ),
        (
            s(&[
                "alloc",
                "--source",
                "profile:pcie-8gpu",
                "--milli",
                "500",
                "--numa",
                "0",
            ]),
            "cannot be used with",
        ),
        (
            s(&[
                "alloc",
                "--source",
                "profile:pcie-8gpu",
                "--batch",
                "-",
                "--available",
                "0",
            ]),
            "cannot be used with",
        ),
        (
            s(&["dra", "claim", "--name", "Bad Name;"]),
            "not a Kubernetes object name",
        ),
        (
            s(&[
                "dra",
                "slices",
                "--source",
                "profile:dgx-h100",
                "--driver",
                "nodots",
            ]),
            "DNS subdomain",
        ),
        (
            s(&["labels", "--source", "profile:nvl72", "--host", "nowhere"]),
            "hosts:",
        ),
        (agent(&["--resource-name", "gpu"]), "<vendor-domain>/<name>"),
        (
            agent(&["--resource-name", "Nvidia.com/gpu"]),
            "<vendor-domain>/<name>",
        ),
        (agent(&["--socket-name", "a/b.sock"]), "plain file name"),
        (agent(&["--socket-name", "kubelet.sock"]), "plain file name"),
        (agent(&["--annotate-every", "0"]), "at least 1"),
        (
            agent(&[
                "--metrics-addr",
                "127.0.0.1:9460",
                "--metrics-interval",
                "0",
            ]),
            "at least 0.05",
        ),
        (agent(&["--metrics-addr", "nonsense"]), "HOST:PORT"),
        (
            agent(&["--node-name", "Node_1"]),
            "not a Kubernetes node name",
        ),
        (agent(&["--label-prefix", "Bad Prefix"]), "DNS subdomain"),
    ];
    for (args, says) in &cases {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = run(&refs);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).is_empty(), "{args:?} printed {}", stdout(&o));
        assert!(
            stderr(&o).contains(says),
            "{args:?}: expected {says:?} in {}",
            stderr(&o)
        );
    }
    // Unhealthy GPUs go out only when asked for explicitly.
    let o = run(&[
        "alloc",
        "--source",
        "profile:degraded",
        "--count",
        "2",
        "--available",
        "3,4",
        "--allow-unhealthy",
        "-o",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["devices"], serde_json::json!([3, 4]));
    // Without --available, an unhealthy GPU is never chosen (degraded's GPU3 has XID 79).
    let o = run(&[
        "alloc",
        "--source",
        "profile:degraded",
        "--count",
        "7",
        "-o",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(
        !v["devices"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(3)),
        "{v}"
    );
}

#[test]
fn the_allocation_time_budget_is_a_checked_flag_and_reported_in_json() {
    // A budget that is not spent leaves the exact answer exact (and says so).
    let o = run(&[
        "alloc",
        "--source",
        "profile:dgx-h100",
        "--count",
        "4",
        "--time-budget",
        "0",
        "-o",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        (v["exact"].as_bool(), v["timedOut"].as_bool()),
        (Some(true), Some(false)),
        "{v}"
    );
    for bad in ["2x", "-1", "", "nan"] {
        let o = run(&[
            "alloc",
            "--source",
            "profile:dgx-h100",
            "--count",
            "4",
            "--time-budget",
            bad,
        ]);
        assert_eq!(
            o.status.code(),
            Some(2),
            "--time-budget {bad:?}: {}",
            stderr(&o)
        );
    }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn devices(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["alloc", "-o", "json"];
    all.extend_from_slice(args);
    let o = run(&all);
    assert!(o.status.success(), "{all:?}: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    v["devices"].clone()
}

#[test]
fn devices_are_named_as_operators_name_them() {
    // dgx-h100: GPU1 is at PCI 0000:2a:00.0.
    let h100 = ["--source", "profile:dgx-h100"];
    let with = |extra: &[&str]| {
        let mut v = h100.to_vec();
        v.extend_from_slice(extra);
        devices(&v)
    };
    // nvidia-smi's PCI form, upper case, 8-digit domain.
    assert_eq!(
        with(&["--count", "1", "--available", "00000000:2A:00.0"]),
        serde_json::json!([1])
    );
    // Any case for labels.
    assert_eq!(
        with(&["--count", "2", "--available", "gpu2,Gpu5"]),
        serde_json::json!([2, 5])
    );
    // Ranges.
    assert_eq!(
        with(&["--count", "4", "--available", "4-7"]),
        serde_json::json!([4, 5, 6, 7])
    );
    assert_eq!(
        with(&["--count", "3", "--available", "GPU0-2"]),
        serde_json::json!([0, 1, 2])
    );
    // host/GPU on a multi-host source, as the help text writes it; positions come back.
    let host = {
        let o = run(&["discover", "--source", "profile:nvl72", "-o", "json"]);
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        v["gpus"][4]["host"].as_str().unwrap().to_string()
    };
    let list = format!("{host}/GPU0,{host}/gpu1,{}/2-3", host.to_uppercase());
    let got = devices(&[
        "--source",
        "profile:nvl72",
        "--count",
        "4",
        "--available",
        &list,
    ]);
    assert_eq!(got, serde_json::json!([4, 5, 6, 7]), "{list}");
}
