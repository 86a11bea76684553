//! `linkwise sim` on the miniature openb trace (fixtures/openb-mini), run as a user runs it.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use linkwise_core::placement::policies::NAMES;
use serde_json::Value;

fn linkwise(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_linkwise"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run linkwise")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(args: &[&str]) -> String {
    let o = linkwise(args);
    assert!(
        o.status.success(),
        "linkwise {args:?} failed: {}",
        stderr(&o)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/openb-mini")
        .join(name)
        .display()
        .to_string()
}

/// `sim` on the fixture with extra arguments.
fn sim(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "sim".into(),
        "--nodes".into(),
        fixture("nodes.csv"),
        "--pods".into(),
        fixture("pods.csv"),
    ];
    v.extend(extra.iter().map(|s| (*s).to_string()));
    v
}

fn run_sim(extra: &[&str]) -> String {
    let args = sim(extra);
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn json(extra: &[&str]) -> Value {
    let mut e = extra.to_vec();
    e.extend(["-o", "json"]);
    serde_json::from_str(&run_sim(&e)).unwrap()
}

fn is_stat(v: &Value) -> bool {
    v["mean"].as_f64().is_some_and(f64::is_finite)
        && v["sd"].as_f64().is_some_and(|s| s >= 0.0)
        && v["n"].as_u64().is_some_and(|n| n >= 1)
}

#[test]
fn json_has_every_policy_and_a_mean_and_sd_per_column() {
    let j = json(&["--seeds", "42..44"]);
    assert_eq!(j["trace"], "pods");
    assert_eq!(j["seeds"], serde_json::json!([42, 43, 44]));
    assert_eq!(j["tune"], 1.3);
    assert_eq!(j["totalGpus"], 35);
    let policies = j["policies"].as_object().unwrap();
    let names: Vec<&str> = policies.keys().map(String::as_str).collect();
    assert_eq!(names, NAMES, "every policy by default, in NAMES order");
    for (name, p) in policies {
        let alloc = p["alloc_ratio"].as_object().unwrap();
        assert!(alloc.len() >= 20, "{name}: only {} columns", alloc.len());
        for metric in [
            "alloc_ratio",
            "frag_amount",
            "unallocated_gpus",
            "frag_rate",
        ] {
            let cols = p[metric].as_object().unwrap();
            for (k, v) in cols {
                let k: usize = k.parse().unwrap();
                assert!(k <= 130, "{name} {metric}: column {k}");
                assert!(is_stat(v), "{name} {metric} {k}: {v}");
            }
        }
        // Unallocated GPUs are the allocation ratio's complement, column by column.
        let unalloc = p["unallocated_gpus"].as_object().unwrap();
        assert_eq!(
            alloc.keys().collect::<Vec<_>>(),
            unalloc.keys().collect::<Vec<_>>()
        );
        for (k, a) in alloc {
            let a = a["mean"].as_f64().unwrap();
            assert!((0.0..=100.0).contains(&a), "{name} {k}: {a}");
            let u = unalloc[k]["mean"].as_f64().unwrap();
            assert!((u - 35.0 * (1.0 - a / 100.0)).abs() < 0.01, "{name} {k}");
        }
        // The allocation ratio never falls as more pods arrive (compared across the
        // columns where every seed has data, so that the means are over the same runs).
        let mut last = 0.0;
        for k in 0..=130 {
            if let Some(v) = alloc.get(&k.to_string())
                && v["n"] == 3
            {
                let m = v["mean"].as_f64().unwrap();
                assert!(m + 1e-9 >= last, "{name}: {m} at {k} after {last}");
                last = m;
            }
        }
        assert!(is_stat(&p["failed_pods"]), "{name}");
        assert!(p["single_island_share"].is_null(), "no topology map");
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let one = run_sim(&["--seeds", "42..45", "--threads", "1", "-o", "json"]);
    let two = run_sim(&["--seeds", "42..45", "--threads", "2", "-o", "json"]);
    let many = run_sim(&["--seeds", "42..45", "--threads", "7", "-o", "json"]);
    assert_eq!(one, two);
    assert_eq!(one, many);
    // And seeds matter.
    let other = run_sim(&["--seeds", "46..49", "--threads", "2", "-o", "json"]);
    assert_ne!(
        serde_json::from_str::<Value>(&one).unwrap()["policies"],
        serde_json::from_str::<Value>(&other).unwrap()["policies"]
    );
}

#[test]
fn seeds_accept_a_range_a_list_or_one_seed() {
    for (arg, want) in [
        ("42..44", serde_json::json!([42, 43, 44])),
        ("42,43", serde_json::json!([42, 43])),
        ("42", serde_json::json!([42])),
    ] {
        let j = json(&["--policy", "bestfit", "--seeds", arg]);
        assert_eq!(j["seeds"], want, "{arg}");
    }
    for bad in ["5..3", "x", "1,,2"] {
        let args = sim(&["--policy", "bestfit", "--seeds", bad]);
        let o = linkwise(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", stderr(&o));
        assert!(stderr(&o).contains("--seeds"), "{}", stderr(&o));
    }
}

#[test]
fn table_lists_each_policy_with_the_fgd_ratio() {
    let out = run_sim(&["--policy", "fgd,bestfit,random", "--seeds", "42,43"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("trace pods: 30 pods on 9 nodes, 35 GPUs"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("policy") && lines[1].contains("unalloc / fgd"),
        "{out}"
    );
    for (line, name) in lines[2..].iter().zip(["fgd", "bestfit", "random"]) {
        assert!(line.starts_with(name), "{out}");
        assert!(line.contains('±'), "{out}");
    }
    assert!(lines[2].contains("1.00×"), "{out}");
    assert_eq!(lines.len(), 5, "{out}");
}

fn temp_csv(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn bad_csv_input_exits_2_naming_the_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = std::fs::read_to_string(fixture("nodes.csv")).unwrap();
    let pods = std::fs::read_to_string(fixture("pods.csv")).unwrap();
    let pods_ok = temp_csv(dir.path(), "pods.csv", &pods);

    // A node list without its `model` column.
    let no_model: String = nodes
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string() + "\n")
        .collect();
    let bad_nodes = temp_csv(dir.path(), "nodes-no-model.csv", &no_model);
    let o = linkwise(&[
        "sim", "--nodes", &bad_nodes, "--pods", &pods_ok, "--seeds", "1",
    ]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("nodes-no-model.csv") && e.contains("line 1") && e.contains("\"model\""),
        "{e}"
    );

    // A pod list with a word where a number belongs, on line 4.
    let mut lines: Vec<String> = pods.lines().map(String::from).collect();
    lines[3] = lines[3].replacen(",4000,", ",two,", 1);
    let bad_pods = temp_csv(dir.path(), "pods-nan.csv", &(lines.join("\n") + "\n"));
    let good_nodes = fixture("nodes.csv");
    let o = linkwise(&[
        "sim",
        "--nodes",
        &good_nodes,
        "--pods",
        &bad_pods,
        "--seeds",
        "1",
    ]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("pods-nan.csv")
            && e.contains("line 4")
            && e.contains("cpu_milli")
            && e.contains("\"two\""),
        "{e}"
    );

    // A record with a field too many.
    lines[3] = pods.lines().nth(3).unwrap().to_string() + ",extra";
    let bad_pods = temp_csv(dir.path(), "pods-wide.csv", &(lines.join("\n") + "\n"));
    let o = linkwise(&[
        "sim",
        "--nodes",
        &good_nodes,
        "--pods",
        &bad_pods,
        "--seeds",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("pods-wide.csv: line 4"),
        "{}",
        stderr(&o)
    );

    // A missing file.
    let o = linkwise(&["sim", "--nodes", "/nonexistent/n.csv", "--pods", &pods_ok]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("/nonexistent/n.csv"), "{}", stderr(&o));
}

#[test]
fn columns_are_found_by_name_not_position() {
    let dir = tempfile::tempdir().unwrap();
    let pods = std::fs::read_to_string(fixture("pods.csv")).unwrap();
    // Reverse the columns of every record (quoted fields here hold no commas).
    let reversed: String = pods
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(',').collect();
            f.reverse();
            f.join(",") + "\r\n"
        })
        .collect();
    let p = temp_csv(dir.path(), "pods.csv", &reversed);
    let nodes = fixture("nodes.csv");
    let base = [
        "sim",
        "--nodes",
        &nodes,
        "--policy",
        "bestfit,fgd",
        "--seeds",
        "3",
        "-o",
        "json",
    ];
    let mut a = base.to_vec();
    a.extend(["--pods", &p]);
    let reordered = ok(&a);
    let orig = run_sim(&["--policy", "bestfit,fgd", "--seeds", "3", "-o", "json"]);
    assert_eq!(reordered, orig);
}

#[test]
fn unknown_policy_exits_2_listing_the_known_ones() {
    let args = sim(&["--policy", "bestfit,nope", "--seeds", "1"]);
    let o = linkwise(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("\"nope\""), "{e}");
    for n in NAMES {
        assert!(e.contains(n), "{n} missing: {e}");
    }
}

#[test]
fn topology_map_reports_the_single_island_share() {
    let j = json(&[
        "--policy",
        "bestfit,default",
        "--seeds",
        "42,43",
        "--topology-map",
        "default",
    ]);
    for (name, p) in j["policies"].as_object().unwrap() {
        let s = &p["single_island_share"];
        assert!(is_stat(s), "{name}: {s}");
        let m = s["mean"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&m), "{name}: {m}");
    }
    let t = run_sim(&[
        "--policy",
        "bestfit",
        "--seeds",
        "42",
        "--topology-map",
        "default",
    ]);
    assert!(t.contains("single-island"), "{t}");
    let args = sim(&["--seeds", "1", "--topology-map", "G2:4=dgx-h100"]);
    let o = linkwise(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("8 GPUs, not 4"), "{}", stderr(&o));
}

/// Reads a PNG's chunks, checking every CRC; returns (IHDR data, IDAT concatenated).
fn png_chunks(png: &[u8]) -> (Vec<u8>, Vec<u8>) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "PNG signature");
    let mut i = 8;
    let (mut ihdr, mut idat, mut end) = (Vec::new(), Vec::new(), false);
    while i + 12 <= png.len() {
        let len = u32::from_be_bytes(png[i..i + 4].try_into().unwrap()) as usize;
        let kind = &png[i + 4..i + 8];
        let data = &png[i + 8..i + 8 + len];
        let crc = u32::from_be_bytes(png[i + 8 + len..i + 12 + len].try_into().unwrap());
        assert_eq!(crc, crc32(&png[i + 4..i + 8 + len]), "CRC of {kind:?}");
        match kind {
            b"IHDR" => ihdr = data.to_vec(),
            b"IDAT" => idat.extend_from_slice(data),
            b"IEND" => end = true,
            _ => {}
        }
        i += 12 + len;
    }
    assert!(end && i == png.len(), "IEND last");
    (ihdr, idat)
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// Inflates a zlib stream of stored blocks (what linkwise writes), checking Adler-32.
fn inflate_stored(z: &[u8]) -> Vec<u8> {
    assert_eq!(z[0] & 0x0F, 8, "deflate");
    assert_eq!(
        (u16::from(z[0]) << 8 | u16::from(z[1])) % 31,
        0,
        "zlib header check"
    );
    let mut i = 2;
    let mut out = Vec::new();
    loop {
        let hdr = z[i];
        assert_eq!(hdr >> 1 & 3, 0, "stored block");
        let len = usize::from(u16::from_le_bytes([z[i + 1], z[i + 2]]));
        let nlen = u16::from_le_bytes([z[i + 3], z[i + 4]]);
        assert_eq!(!nlen as usize, len);
        out.extend_from_slice(&z[i + 5..i + 5 + len]);
        i += 5 + len;
        if hdr & 1 == 1 {
            break;
        }
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &x in &out {
        a = (a + u32::from(x)) % 65_521;
        b = (b + a) % 65_521;
    }
    assert_eq!(
        u32::from_be_bytes(z[i..i + 4].try_into().unwrap()),
        (b << 16) | a,
        "Adler-32"
    );
    out
}

#[test]
fn plots_are_written_as_svg_and_png() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("alloc.svg");
    let png = dir.path().join("alloc.png");
    let (svg_s, png_s) = (svg.display().to_string(), png.display().to_string());
    run_sim(&[
        "--policy",
        "fgd,bestfit,random",
        "--seeds",
        "42,43",
        "--plot",
        &svg_s,
        "--plot-png",
        &png_s,
    ]);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg"), "{}", &text[..80.min(text.len())]);
    assert!(text.trim_end().ends_with("</svg>"));
    assert_eq!(text.matches("<polyline").count(), 3, "one line per policy");
    assert_eq!(
        text.matches("<polygon").count(),
        3,
        "one sd band per policy"
    );
    for n in [
        "fgd",
        "bestfit",
        "random",
        "GPU allocation ratio",
        "Arrived GPU request",
    ] {
        assert!(text.contains(n), "{n}");
    }
    // Balanced elements: every opened tag is closed or self-closing.
    let opened = text.matches('<').count();
    assert_eq!(opened, text.matches('>').count());

    let bytes = std::fs::read(&png).unwrap();
    let (ihdr, idat) = png_chunks(&bytes);
    let (w, h) = (
        u32::from_be_bytes(ihdr[0..4].try_into().unwrap()) as usize,
        u32::from_be_bytes(ihdr[4..8].try_into().unwrap()) as usize,
    );
    assert_eq!((w, h), (960, 600));
    assert_eq!(&ihdr[8..13], &[8, 2, 0, 0, 0], "8-bit RGB");
    let raw = inflate_stored(&idat);
    assert_eq!(raw.len(), w * h * 3 + h);
    // Something was drawn in each policy's colour family: not all white.
    let non_white = raw
        .chunks(w * 3 + 1)
        .flat_map(|r| r[1..].chunks(3))
        .filter(|p| p != &[255, 255, 255])
        .count();
    assert!(non_white > 10_000, "{non_white} drawn pixels");
    // Cross-check with an independent decoder when one is at hand.
    if let Ok(o) = Command::new("python3")
        .args([
            "-c",
            "import sys,zlib,struct\nd=open(sys.argv[1],'rb').read()\ni=8;z=b''\nwhile i<len(d):\n n=struct.unpack('>I',d[i:i+4])[0];t=d[i+4:i+8]\n if t==b'IDAT': z+=d[i+8:i+8+n]\n i+=12+n\nprint(len(zlib.decompress(z)))",
            &png_s,
        ])
        .output()
        && o.status.success()
    {
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            (w * h * 3 + h).to_string()
        );
    }
}

#[test]
fn help_has_examples_and_documents_the_topology_map() {
    let h = ok(&["sim", "--help"]);
    for s in [
        "Examples:",
        "../shared/data/openb/openb_pod_list_default.csv",
        "--topology-map",
        "dgx1-v100",
        "pairs",
        "--seeds",
    ] {
        assert!(h.contains(s), "{s} missing from:\n{h}");
    }
}

/// The real openb trace, when the shared data is there: one quick run.
#[test]
fn real_openb_trace_runs_when_present() {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/openb");
    let nodes = data.join("openb_node_list_gpu_node.csv");
    let pods = data.join("openb_pod_list_gpushare100.csv");
    if !nodes.exists() || !pods.exists() {
        eprintln!("skipped: {} not found", data.display());
        return;
    }
    let out = ok(&[
        "sim",
        "--nodes",
        &nodes.display().to_string(),
        "--pods",
        &pods.display().to_string(),
        "--policy",
        "bestfit",
        "--seeds",
        "42",
        "-o",
        "json",
    ]);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["totalGpus"], 6212);
    assert_eq!(j["pods"], 8152);
    let alloc = &j["policies"]["bestfit"]["alloc_ratio"];
    // Reference (§2.5): BestFit on gpushare100 allocates 84.62% at 100% arrived.
    let at100 = alloc["100"]["mean"].as_f64().unwrap();
    assert!((75.0..=95.0).contains(&at100), "{at100}");
    assert!(alloc["130"]["mean"].as_f64().unwrap() >= at100);
}
