//! The `linkwise` binary, run as a user runs it.

// Helpers here are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use linkwise_testkit::cli::{linkwise, ok, profiles, run, stderr, stdout};
use linkwise_testkit::repo_root as repo;
use linkwise_testkit::{Prerequisite, require};

#[test]
fn profiles_prints_one_name_per_line_without_a_header() {
    let out = ok(&["profiles"]);
    let names = profiles();
    for required in [
        "dgx-h100",
        "dgx1-v100",
        "pcie-8gpu",
        "nvlink-bridge-pairs",
        "riscv-fusion",
        "nvl72",
        "degraded",
    ] {
        assert!(
            names.iter().any(|n| n == required),
            "{required} missing from:\n{out}"
        );
    }
    for line in out.lines() {
        let mut words = line.split_whitespace();
        let name = words.next().unwrap();
        assert!(words.next().is_some(), "no description on {line:?}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{name}"
        );
    }
    let json: serde_json::Value = serde_json::from_str(&ok(&["profiles", "-o", "json"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), names.len());
}

#[test]
fn the_readme_quickstart_runs() {
    let out = ok(&["discover", "--source", "profile:dgx-h100"]);
    assert!(out.contains("GPUs (8)"), "{out}");
    assert!(out.contains("NVLink islands (1)"), "{out}");
    assert!(out.contains("at least NV18"), "{out}");
}

#[test]
fn discover_snapshot_out_and_in_is_identical_for_every_profile() {
    let dir = tempfile::tempdir().unwrap();
    for p in profiles() {
        let src = format!("profile:{p}");
        let json = ok(&["discover", "--source", &src, "-o", "json"]);
        let yaml = ok(&["discover", "--source", &src, "-o", "yaml"]);
        let f = dir.path().join(format!("{p}.yaml"));
        std::fs::write(&f, &yaml).unwrap();
        let back = ok(&[
            "discover",
            "--source",
            &format!("snapshot:{}", f.display()),
            "-o",
            "json",
        ]);
        assert_eq!(
            back, json,
            "{p}: YAML snapshot did not read back to the same JSON"
        );
    }
}

#[test]
fn topo_json_has_the_documented_shape() {
    let v: serde_json::Value = serde_json::from_str(&ok(&[
        "topo",
        "--source",
        "profile:dgx1-v100",
        "-o",
        "json",
    ]))
    .unwrap();
    let obj = v.as_object().unwrap();
    assert_eq!(obj.keys().collect::<Vec<_>>(), ["gpus", "matrix"]);
    assert_eq!(v["gpus"][0], "GPU0");
    assert_eq!(v["matrix"][0][0], "X");
    assert_eq!(v["matrix"][0][3], "NV2");
    assert_eq!(v["matrix"][0][5], "SYS");
    assert_eq!(v["matrix"].as_array().unwrap().len(), 8);
}

/// The GPU-to-GPU matrix of an `nvidia-smi topo -m` text, read independently of the
/// importer: the header's GPU columns, then the first N whitespace-separated cells of
/// each GPU row (cells never contain spaces), with the old `SOC` read as `SYS`.
fn sample_matrix(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = text
        .lines()
        .skip_while(|l| !l.split_whitespace().any(|w| w == "GPU0"));
    let header = lines.next().unwrap();
    let gpus: Vec<String> = header
        .split_whitespace()
        .filter(|w| {
            w.len() > 3 && w.starts_with("GPU") && w[3..].chars().all(|c| c.is_ascii_digit())
        })
        .map(String::from)
        .collect();
    let mut rows = Vec::new();
    for l in lines {
        let mut w = l.split_whitespace();
        let Some(label) = w.next() else { break };
        if !gpus.iter().any(|g| g == label) {
            if rows.len() == gpus.len() {
                break;
            }
            continue;
        }
        // Drivers before 2017 spelled SYS as SOC; linkwise prints today's vocabulary.
        rows.push(
            w.take(gpus.len())
                .map(|c| {
                    if c == "SOC" {
                        "SYS".to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect(),
        );
    }
    (gpus, rows)
}

#[test]
fn every_topo_sample_imports_and_reproduces_its_matrix_cell_for_cell() {
    let dir = repo().join("fixtures/topo");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().and_then(|x| x.to_str()) != Some("txt") {
            continue;
        }
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        let (gpus, expected) = sample_matrix(&text);
        let src = format!("topo-text:{}", path.display());
        let v: serde_json::Value =
            serde_json::from_str(&ok(&["topo", "--source", &src, "-o", "json"])).unwrap();
        let got_gpus: Vec<String> = serde_json::from_value(v["gpus"].clone()).unwrap();
        let got: Vec<Vec<String>> = serde_json::from_value(v["matrix"].clone()).unwrap();
        assert_eq!(got_gpus, gpus, "{}", path.display());
        assert_eq!(got, expected, "{}", path.display());
        n += 1;
    }
    assert!(
        n >= 5,
        "expected the five reference samples and more, found {n}"
    );
}

#[test]
fn topo_table_imports_back_as_topo_text() {
    let dir = tempfile::tempdir().unwrap();
    for p in ["dgx1-v100", "pcie-8gpu", "riscv-fusion", "degraded"] {
        let src = format!("profile:{p}");
        let table = ok(&["topo", "--source", &src]);
        let f = dir.path().join(format!("{p}.txt"));
        std::fs::write(&f, &table).unwrap();
        let direct = ok(&["topo", "--source", &src, "-o", "json"]);
        let again = ok(&[
            "topo",
            "--source",
            &format!("topo-text:{}", f.display()),
            "-o",
            "json",
        ]);
        assert_eq!(
            again, direct,
            "{p}: table does not import back to the same matrix"
        );
    }
}

/// Tags open and close in order: enough to catch broken markup.
fn assert_well_formed(svg: &str) {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let end = rest.find('>').expect("unclosed tag");
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
        } else if !tag.ends_with('/') && !tag.starts_with('?') && !tag.starts_with('!') {
            stack.push(tag.split_whitespace().next().unwrap().to_string());
        }
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
}

#[test]
fn topo_svg_is_a_well_formed_picture_of_every_gpu() {
    for p in profiles() {
        let svg = ok(&["topo", "--source", &format!("profile:{p}"), "-o", "svg"]);
        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
            "{p}"
        );
        assert_well_formed(&svg);
        let n: usize = serde_json::from_str::<serde_json::Value>(&ok(&[
            "topo",
            "--source",
            &format!("profile:{p}"),
            "-o",
            "json",
        ]))
        .unwrap()["gpus"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(
            svg.matches("<title>").count(),
            n,
            "{p}: one titled box per GPU"
        );
    }
    let degraded = ok(&["topo", "--source", "profile:degraded", "-o", "svg"]);
    assert!(
        degraded.contains("UNHEALTHY") && degraded.contains("DOWN"),
        "degraded state is visible"
    );
}

#[test]
fn topo_dot_draws_links_weighted_by_lanes() {
    let dot = ok(&["topo", "--source", "profile:dgx1-v100", "-o", "dot"]);
    assert!(dot.starts_with("graph linkwise {") && dot.trim_end().ends_with('}'));
    assert_eq!(
        dot.matches(" -- ").count(),
        16,
        "16 NVLink pairs in the cube-mesh"
    );
    assert!(dot.contains("label=\"NV2\", penwidth=1.8"));
    let nvl = ok(&["topo", "--source", "profile:nvl72", "-o", "dot"]);
    assert_eq!(
        nvl.lines()
            .filter(|l| l.starts_with("  \"fabric\" ["))
            .count(),
        1,
        "switch trays collapse into one fabric node"
    );
    assert_eq!(
        nvl.matches("-- \"fabric\"").count(),
        72,
        "one fabric edge per GPU"
    );
}

#[test]
fn bad_input_exits_2_naming_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("broken.json");
    std::fs::write(&f, "{\n  \"schemaVersion\": 1,\n  \"source\": 7\n}\n").unwrap();
    let o = run(&["discover", "--source", &format!("snapshot:{}", f.display())]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("broken.json") && e.contains("line 3") && e.contains("source"),
        "{e}"
    );
    assert!(!e.contains("panicked"), "{e}");
    for args in [
        vec!["discover", "--source", "profile:nope"],
        vec!["discover", "--source", "bogus:x"],
        vec!["topo", "--source", "topo-text:/nonexistent/topo.txt"],
        vec!["topo", "--source", "snapshot:"],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stdout(&o).is_empty(),
            "{args:?} printed to stdout on failure"
        );
    }
}

#[test]
fn discover_on_this_machine_exits_0() {
    let o = run(&["discover"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("Host "), "{out}");
    let o = run(&["discover", "-o", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["schemaVersion"], 1);
}

#[test]
fn sources_read_standard_input_with_a_dash() {
    use std::io::Write;
    use std::process::Stdio;
    let table = ok(&["topo", "--source", "profile:nvlink-bridge-pairs"]);
    let mut child = linkwise()
        .args(["topo", "--source", "topo-text:-", "-o", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(table.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["matrix"][0][1], "NV4");
    assert_eq!(v["matrix"][0][2], "SYS");
}

#[test]
fn alloc_json_has_devices_ids_score_and_explain() {
    let v: serde_json::Value = serde_json::from_str(&ok(&[
        "alloc",
        "--source",
        "profile:dgx1-v100",
        "--count",
        "2",
        "-o",
        "json",
    ]))
    .unwrap();
    let devices: Vec<u64> = serde_json::from_value(v["devices"].clone()).unwrap();
    assert_eq!(devices.len(), 2);
    assert_eq!(v["ids"].as_array().unwrap().len(), 2);
    assert!(
        v["score"]["bottleneckMbps"].as_u64().unwrap() >= 50_000,
        "an NV2 pair: {v}"
    );
    assert!(v["explain"].as_str().unwrap().contains("exact optimum"));
    // Devices print both ways: the ids are those of the indices.
    let topo: serde_json::Value = serde_json::from_str(&ok(&[
        "discover",
        "--source",
        "profile:dgx1-v100",
        "-o",
        "json",
    ]))
    .unwrap();
    for (d, id) in devices.iter().zip(v["ids"].as_array().unwrap()) {
        let g = topo["gpus"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["index"] == *d)
            .unwrap();
        assert_eq!(&g["id"], id);
    }
}

#[test]
fn alloc_accepts_indices_labels_and_ids() {
    let topo: serde_json::Value = serde_json::from_str(&ok(&[
        "discover",
        "--source",
        "profile:dgx1-v100",
        "-o",
        "json",
    ]))
    .unwrap();
    let id3 = topo["gpus"][3]["id"].as_str().unwrap().to_string();
    let out = ok(&[
        "alloc",
        "--source",
        "profile:dgx1-v100",
        "--count",
        "2",
        "--available",
        &format!("GPU0,1,{id3}"),
        "--must-include",
        "1",
    ]);
    assert!(
        out.starts_with("GPU0 GPU1") || out.starts_with("GPU1 GPU3"),
        "{out}"
    );
}

#[test]
fn alloc_infeasible_exits_1_and_bad_input_exits_2() {
    for (args, code) in [
        // More GPUs than the node has, or none: impossible values, bad input.
        (
            vec!["alloc", "--source", "profile:dgx1-v100", "--count", "9"],
            2,
        ),
        (
            vec!["alloc", "--source", "profile:dgx1-v100", "--count", "0"],
            2,
        ),
        // Possible on the node, not with these GPUs: infeasible.
        (
            vec![
                "alloc",
                "--source",
                "profile:dgx1-v100",
                "--count",
                "3",
                "--available",
                "0,1",
            ],
            1,
        ),
        (
            vec![
                "alloc",
                "--source",
                "profile:dgx1-v100",
                "--count",
                "2",
                "--available",
                "0",
                "--must-include",
                "0",
            ],
            1,
        ),
        (
            vec![
                "alloc",
                "--source",
                "profile:dgx1-v100",
                "--count",
                "1",
                "--available",
                "0,1",
                "--must-include",
                "2",
            ],
            2,
        ),
        (
            vec![
                "alloc",
                "--source",
                "profile:dgx1-v100",
                "--count",
                "2",
                "--available",
                "0,99",
            ],
            2,
        ),
        (
            vec![
                "alloc",
                "--source",
                "profile:dgx1-v100",
                "--count",
                "2",
                "--cpus",
                "x",
            ],
            2,
        ),
        (
            vec!["alloc", "--source", "profile:dgx1-v100", "--mig", "5g"],
            2,
        ),
        (
            vec!["alloc", "--source", "profile:dgx1-v100", "--milli", "2000"],
            2,
        ),
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
        assert!(
            !stderr(&o).is_empty() && !stderr(&o).contains("panicked"),
            "{args:?}"
        );
    }
}

#[test]
fn alloc_batch_answers_every_line_and_reports_timing() {
    use std::io::Write;
    use std::process::Stdio;
    let input = "{\"count\":2}\n{\"count\":1,\"available\":[0,1,2,4,5,6,7]}\n{\"count\":3,\"available\":[0,1]}\n\n{\"milli\":500,\"used\":[[0,250]]}\n";
    let mut child = linkwise()
        .args(["alloc", "--source", "profile:dgx1-v100", "--batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "one answer per non-empty line");
    assert_eq!(lines[0]["devices"].as_array().unwrap().len(), 2);
    let orphan = lines[1]["devices"][0].as_u64().unwrap();
    assert!(
        orphan == 0 || orphan == 2,
        "the orphan of GPU3's NV2 pairs, got {orphan}"
    );
    assert_eq!(lines[2]["line"], 3);
    assert!(lines[2]["error"].as_str().unwrap().contains("only 2"));
    assert_eq!(lines[2]["badInput"], false, "infeasible, not malformed");
    assert_eq!(
        lines[3]["devices"][0], 0,
        "the share goes to the partly used GPU"
    );
    assert!(stderr(&o).contains("p99"), "{}", stderr(&o));
    // A malformed line is answered with an error and makes the run exit 2.
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), "{\"count\":2}\nnot json\n").unwrap();
    let o = run(&[
        "alloc",
        "--source",
        "profile:dgx1-v100",
        "--batch",
        f.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stdout(&o).lines().count(), 2);
}

#[test]
fn alloc_places_fractions_and_mig_slices_on_partly_used_gpus() {
    let out = ok(&[
        "alloc",
        "--source",
        "profile:pcie-8gpu",
        "--milli",
        "500",
        "--used",
        "0:250,3:750",
        "-o",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["devices"][0], 0,
        "best fit: GPU0 has 750 free, GPU3 only 250"
    );
    assert_eq!(v["usedAfter"], 750);
    let v: serde_json::Value = serde_json::from_str(&ok(&[
        "alloc",
        "--source",
        "profile:dgx-h100",
        "--mig",
        "3g.40gb",
        "--mig-used",
        "2:0-3",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(v["devices"][0], 2);
    assert_eq!(v["migStart"], 4);
    let v: serde_json::Value = serde_json::from_str(&ok(&[
        "alloc",
        "--source",
        "profile:dgx-h100",
        "--mig",
        "3g",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(
        v["migStart"], 4,
        "on an empty GPU 3g goes to slices 4-6, keeping 0-3 for a 4g"
    );
}

/// Regression: in batch mode an explicit empty "available" list meant "every healthy
/// GPU" (a busy node got GPUs twice); a bad milli share was counted as infeasible.
#[test]
fn batch_empty_available_and_bad_shares_are_bad_input() {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = linkwise()
        .args(["alloc", "--source", "profile:dgx1-v100", "--batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"count\":1,\"available\":[]}\n{\"milli\":0}\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // An explicit empty list names no GPU: bad input, not an infeasible request.
    assert!(
        lines[0]["error"].as_str().unwrap().contains("names no GPU"),
        "{}",
        lines[0]
    );
    assert_eq!(lines[0]["badInput"], true);
    assert_eq!(lines[1]["badInput"], true);
    assert_eq!(o.status.code(), Some(2));
}

/// Regression: on multi-host topologies "devices" printed per-host indices, which read
/// back as positions and named other GPUs.
#[test]
fn multi_host_answers_read_back_as_the_same_gpus() {
    let v: serde_json::Value = serde_json::from_str(&ok(&[
        "alloc",
        "--source",
        "profile:nvl72",
        "--count",
        "2",
        "--available",
        "5,6,7,40",
        "-o",
        "json",
    ]))
    .unwrap();
    let numbers: Vec<String> = v["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.to_string())
        .collect();
    let again: serde_json::Value = serde_json::from_str(&ok(&[
        "alloc",
        "--source",
        "profile:nvl72",
        "--count",
        "2",
        "--available",
        &numbers.join(","),
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(again["ids"], v["ids"]);
}

/// Regression: `--mig-used` split at the first colon, so PCI bus ids were rejected; a `1g`
/// on an empty GPU went to slice 4 and blocked a later `2g` at slice 4.
#[test]
fn mig_used_takes_pci_ids_and_1g_keeps_room_for_2g() {
    let topo: serde_json::Value = serde_json::from_str(&ok(&[
        "discover",
        "--source",
        "profile:dgx-h100",
        "-o",
        "json",
    ]))
    .unwrap();
    let pci = topo["gpus"][2]["pciBusId"].as_str().unwrap().to_string();
    let v: serde_json::Value = serde_json::from_str(&ok(&[
        "alloc",
        "--source",
        "profile:dgx-h100",
        "--mig",
        "1g",
        "--mig-used",
        &format!("{pci}:0-3"),
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(v["devices"][0], 2);
    let v: serde_json::Value = serde_json::from_str(&ok(&[
        "alloc",
        "--source",
        "profile:dgx-h100",
        "--mig",
        "1g",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(v["migStart"], 6);
}

/// The agent as deployed: serves its socket before any kubelet exists, turns a line in
/// the health file into a ListAndWatch update within 1 s, and on SIGTERM removes its
/// socket and exits 0.
#[test]
fn agent_serves_follows_the_health_file_and_stops_on_sigterm() {
    use linkwise_deviceplugin::api;
    use linkwise_deviceplugin::api::device_plugin_client::DevicePluginClient;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let health = d.join("health");
    let mut child = linkwise()
        .args(["agent", "--source", "profile:dgx1-v100", "--kubelet-dir"])
        .arg(&d)
        .arg("--health-file")
        .arg(&health)
        .arg("--nfd-features-dir")
        .arg(&d)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let sock = d.join("linkwise-gpu.sock");
    let features = d.join("linkwise");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !sock.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "agent did not create its socket"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let channel = linkwise_deviceplugin::uds::connect(&sock).await.unwrap();
        let mut client = DevicePluginClient::new(channel);
        let mut stream = client
            .list_and_watch(api::Empty {})
            .await
            .unwrap()
            .into_inner();
        let first = stream.message().await.unwrap().unwrap();
        assert!(first.devices.iter().all(|d| d.health == "Healthy"));
        std::fs::write(&health, "GPU3 unhealthy XID 79\n").unwrap();
        let next = tokio::time::timeout(std::time::Duration::from_secs(1), stream.message())
            .await
            .expect("update within 1 s")
            .unwrap()
            .unwrap();
        assert_eq!(
            next.devices
                .iter()
                .filter(|d| d.health == "Unhealthy")
                .count(),
            1
        );
        assert_eq!(next.devices[3].health, "Unhealthy");
    });
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(!sock.exists(), "socket removed on SIGTERM");
    let nfd = std::fs::read_to_string(&features).expect("the agent wrote the NFD feature file");
    assert!(
        nfd.contains("linkwise.feature.node.kubernetes.io/fabric=direct"),
        "{nfd}"
    );
    assert!(
        std::fs::read_dir(&d).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("linkwise-tmp")),
        "no temp file left"
    );
}

#[test]
fn labels_are_valid_kubernetes_labels_for_every_profile() {
    for p in profiles() {
        let v: serde_json::Value = serde_json::from_str(&ok(&[
            "labels",
            "--source",
            &format!("profile:{p}"),
            "-o",
            "json",
        ]))
        .unwrap();
        let labels = v.as_object().unwrap();
        assert!(labels.len() >= 9, "{p}: {labels:?}");
        for (k, v) in labels {
            assert!(linkwise_core::labels::is_label_key(k), "{p}: bad key {k}");
            assert!(
                k.starts_with("linkwise.feature.node.kubernetes.io/"),
                "{p}: one prefix: {k}"
            );
            assert!(
                linkwise_core::labels::is_label_value(v.as_str().unwrap()),
                "{p}: bad value {v}"
            );
        }
    }
    let fabric = |p: &str| {
        let v: serde_json::Value = serde_json::from_str(&ok(&[
            "labels",
            "--source",
            &format!("profile:{p}"),
            "-o",
            "json",
        ]))
        .unwrap();
        v["linkwise.feature.node.kubernetes.io/fabric"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(fabric("dgx-h100"), "nvswitch");
    assert_eq!(fabric("dgx1-v100"), "direct");
    assert_eq!(fabric("riscv-fusion"), "c2c-fusion");
    assert_eq!(fabric("pcie-8gpu"), "pcie-only");
    let tray: serde_json::Value = serde_json::from_str(&ok(&[
        "labels",
        "--source",
        "profile:nvl72",
        "--host",
        "nvl72-tray03",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(
        tray["linkwise.feature.node.kubernetes.io/nvlink.domain-gpus"],
        "72"
    );
    assert!(
        tray["linkwise.feature.node.kubernetes.io/nvlink.clique"]
            .as_str()
            .unwrap()
            .ends_with(".1")
    );
    let nfd = ok(&["labels", "--source", "profile:dgx-h100", "-o", "nfd"]);
    assert!(nfd.starts_with("# Generated by linkwise"));
    assert!(nfd.lines().skip(1).all(|l| l.split_once('=').is_some()));
    assert_eq!(
        run(&["labels", "--source", "profile:nvl72", "--host", "nope"])
            .status
            .code(),
        Some(2)
    );
}

/// The committed DRA examples are what the commands print, so they cannot drift.
#[test]
fn committed_dra_examples_match_the_generator() {
    let dir = repo().join("deploy/dra");
    for (file, args) in [
        ("deviceclass.yaml", vec!["dra", "class"]),
        (
            "resourceclaim-one-island.yaml",
            vec!["dra", "claim", "--count", "4"],
        ),
        (
            "resourceslice-dgx1-v100.example.yaml",
            vec!["dra", "slices", "--source", "profile:dgx1-v100"],
        ),
    ] {
        let committed = std::fs::read_to_string(dir.join(file)).unwrap();
        assert_eq!(
            committed,
            ok(&args),
            "deploy/dra/{file} is stale: regenerate it with linkwise {}",
            args.join(" ")
        );
    }
}

/// Every manifest in deploy/ validates against the Kubernetes 1.34 schemas, strictly.
/// Needs `kubernetes-validate` (PyPI; `.ci/run` installs it); skips loudly without it,
/// and fails without it under LINKWISE_REQUIRE_ALL.
#[test]
fn manifests_validate_against_kubernetes_schemas() {
    if !require(Prerequisite::command(
        "kubernetes-validate",
        &["--version"],
        "pip install kubernetes-validate",
    )) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut files: Vec<PathBuf> = Vec::new();
    for sub in ["deploy/kubernetes", "deploy/dra"] {
        for e in std::fs::read_dir(repo().join(sub)).unwrap() {
            files.push(e.unwrap().path());
        }
    }
    for p in ["dgx-h100", "riscv-fusion", "nvl72"] {
        let f = dir.path().join(format!("{p}.yaml"));
        std::fs::write(
            &f,
            ok(&["dra", "slices", "--source", &format!("profile:{p}")]),
        )
        .unwrap();
        files.push(f);
    }
    let out = Command::new("kubernetes-validate")
        .args(["-k", "1.34.0", "--strict"])
        .args(&files)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}

#[test]
fn slurm_files_write_atomically_and_check_reports_drift() {
    let dir = tempfile::tempdir().unwrap();
    let gres = dir.path().join("gres.conf");
    ok(&[
        "slurm",
        "gres",
        "--source",
        "profile:dgx1-v100",
        "--out",
        gres.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&gres).unwrap();
    assert!(text.starts_with("# gres.conf generated by linkwise"));
    assert_eq!(
        text.lines().filter(|l| l.starts_with("NodeName=")).count(),
        8
    );
    let o = run(&[
        "slurm",
        "gres",
        "--source",
        "profile:dgx1-v100",
        "--check",
        gres.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::write(
        &gres,
        text.replace("Links=-1,1,1,2,2,0,0,0", "Links=-1,0,0,0,0,0,0,0"),
    )
    .unwrap();
    let o = run(&[
        "slurm",
        "gres",
        "--source",
        "profile:dgx1-v100",
        "--check",
        gres.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("-NodeName=dgx1-v100 Name=gpu Type=v100 File=/dev/nvidia0 Cores=0-19 Links=-1,0,0,0,0,0,0,0"), "{}", stdout(&o));
    assert!(stdout(&o).contains(
        "+NodeName=dgx1-v100 Name=gpu Type=v100 File=/dev/nvidia0 Cores=0-19 Links=-1,1,1,2,2,0,0,0"
    ));
    // topology.conf from a directory of snapshots.
    let snaps = dir.path().join("snaps");
    std::fs::create_dir(&snaps).unwrap();
    for p in ["nvl72", "dgx-h100"] {
        std::fs::write(
            snaps.join(format!("{p}.yaml")),
            ok(&[
                "discover",
                "--source",
                &format!("profile:{p}"),
                "-o",
                "yaml",
            ]),
        )
        .unwrap();
    }
    let block = ok(&[
        "slurm",
        "topology",
        "--cluster",
        snaps.to_str().unwrap(),
        "--plugin",
        "block",
    ]);
    assert!(
        block.contains("Nodes=nvl72-tray[01-18]") && block.contains("Nodes=dgx-h100"),
        "{block}"
    );
    assert_eq!(
        run(&["slurm", "gres", "--source", "sysfs:/nonexistent"])
            .status
            .code(),
        Some(2),
        "no GPU: bad input"
    );
    // --links steer: the levels the steering tests check, with the regenerate line.
    let steer = ok(&[
        "slurm",
        "gres",
        "--links",
        "steer",
        "--source",
        "profile:dgx1-v100",
    ]);
    assert!(
        steer.contains("# Regenerate: linkwise slurm gres --links steer")
            && steer.contains("File=/dev/nvidia0 Cores=0-19 Links=-1,2,3,4,1,0,0,0"),
        "{steer}"
    );
}

#[test]
fn man_pages_and_completions_cover_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let man = dir.path().join("man1");
    let o = linkwise_testkit::cli::run(&["manpages", man.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pages: Vec<String> = std::fs::read_dir(&man)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // One page per command and subcommand, help excepted.
    for want in [
        "linkwise.1",
        "linkwise-rollout-run.1",
        "linkwise-fleet-serve.1",
        "linkwise-validate-bench-gpu.1",
    ] {
        assert!(
            pages.iter().any(|p| p == want),
            "{want} missing from {pages:?}"
        );
    }
    assert!(!pages.iter().any(|p| p.contains("-help")), "{pages:?}");
    let run = std::fs::read_to_string(man.join("linkwise-rollout-run.1")).unwrap();
    assert!(
        run.starts_with(".ie") || run.contains(".TH"),
        "not roff: {}",
        &run[..run.len().min(200)]
    );
    assert!(
        run.contains("drain\\-timeout") || run.contains("drain-timeout"),
        "the page lists the options"
    );
    for (shell, marker) in [
        ("bash", "_linkwise()"),
        ("zsh", "#compdef linkwise"),
        ("fish", "complete -c linkwise"),
    ] {
        let o = linkwise_testkit::cli::run(&["completions", shell]);
        assert!(o.status.success());
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            text.contains(marker),
            "{shell}: {}",
            &text[..text.len().min(200)]
        );
        assert!(text.contains("rollout"), "{shell} completes subcommands");
    }
    // A shell clap does not know is bad input.
    assert_eq!(
        linkwise_testkit::cli::run(&["completions", "tcsh"])
            .status
            .code(),
        Some(2)
    );
}

/// `linkwise dra plugin` refuses what cannot work before it serves anything: no API
/// credentials (it reads claims from the API server), a bad node or driver name, a
/// node the topology does not have — exit 2, naming what to fix, no socket left.
#[test]
fn dra_plugin_refuses_bad_setups_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let kubelet = dir.path().join("kubelet");
    let base = |extra: &[&str], kubeconfig: &str| {
        let mut c = linkwise();
        c.args(["dra", "plugin", "--source", "profile:dgx-h100"])
            .arg("--kubelet-dir")
            .arg(&kubelet)
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST");
        c.output().unwrap()
    };
    let missing = dir.path().join("no-kubeconfig");
    let out = base(&["--node-name", "n1"], missing.to_str().unwrap());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no Kubernetes API credentials"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("KUBECONFIG"), "{}", stderr(&out));

    let cfg = dir.path().join("kubeconfig");
    linkwise_testkit::kube_api::kubeconfig("http://127.0.0.1:9", &cfg);
    for (args, says) in [
        (
            vec!["--node-name", "Not_A_Node"],
            "not a Kubernetes node name",
        ),
        (
            vec!["--node-name", "n1", "--driver", "gpu"],
            "--driver \"gpu\"",
        ),
    ] {
        let out = base(&args, cfg.to_str().unwrap());
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    let out = linkwise()
        .args([
            "dra",
            "plugin",
            "--source",
            "profile:nvl72",
            "--node-name",
            "elsewhere",
        ])
        .arg("--kubelet-dir")
        .arg(&kubelet)
        .env("KUBECONFIG", &cfg)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("none named \"elsewhere\""),
        "{}",
        stderr(&out)
    );
    assert!(
        !kubelet.join("plugins_registry").exists()
            || std::fs::read_dir(kubelet.join("plugins_registry"))
                .unwrap()
                .next()
                .is_none()
    );
}
