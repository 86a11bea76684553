//! `linkwise sim` on the miniature openb trace (fixtures/openb-mini), run as a user runs it.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use linkwise_core::placement::policies::NAMES;
use linkwise_testkit::cli::{ok, run, stderr};
use linkwise_testkit::{Prerequisite, require, shared_data};
use serde_json::Value;

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
        let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
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
    let o = run(&[
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
    let o = run(&[
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
    let o = run(&[
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
    let o = run(&["sim", "--nodes", "/nonexistent/n.csv", "--pods", &pods_ok]);
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
    let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
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
    let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("8 GPUs, not 4"), "{}", stderr(&o));
}

/// Decodes a PNG with the `png` crate (which checks every chunk's CRC and the zlib
/// stream's Adler-32); returns (width, height, pixels) of an 8-bit RGB image, 3 bytes a
/// pixel, row-major.
fn decode_png(png: &[u8]) -> (usize, usize, Vec<u8>) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "PNG signature");
    let mut reader = png::Decoder::new(std::io::Cursor::new(png))
        .read_info()
        .expect("a valid PNG header");
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).expect("valid image data");
    assert_eq!(
        (info.color_type, info.bit_depth),
        (png::ColorType::Rgb, png::BitDepth::Eight),
        "8-bit RGB"
    );
    reader.finish().expect("IEND last");
    pixels.truncate(info.buffer_size());
    (info.width as usize, info.height as usize, pixels)
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
        text.matches("<polygon class=\"band\"").count(),
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
    let (w, h, pixels) = decode_png(&bytes);
    assert_eq!((w, h), (960, 600));
    // Something was drawn in each policy's colour family: not all white.
    let non_white = pixels.chunks(3).filter(|p| p != &[255, 255, 255]).count();
    assert!(non_white > 10_000, "{non_white} drawn pixels");
    // Cross-check with an independent decoder (Python's zlib).
    if require(Prerequisite::command(
        "python3",
        &["-c", "import zlib"],
        "Python 3",
    )) && let Ok(o) = Command::new("python3")
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

/// The real openb trace, when the shared data is there: one quick run (skips loudly
/// without it; fails without it under LINKWISE_REQUIRE_ALL).
#[test]
fn real_openb_trace_runs_when_present() {
    let data = shared_data().join("openb");
    let nodes = data.join("openb_node_list_gpu_node.csv");
    let pods = data.join("openb_pod_list_gpushare100.csv");
    if !require(Prerequisite::file(&nodes)) || !require(Prerequisite::file(&pods)) {
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

/// The sim arguments as a `Vec<&str>`-ready list, run; returns the output.
fn run_raw(extra: &[&str]) -> Output {
    let args = sim(extra);
    run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Regression: with one seed every cell printed `± 0.00`, a spread that one run does
/// not have; the plot's legend and subtitle promised a ± 1 sd band.
#[test]
fn one_seed_shows_no_spread() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("one.svg");
    let out = run_sim(&[
        "--policy",
        "fgd,bestfit",
        "--seeds",
        "42",
        "--topology-map",
        "default",
        "--plot",
        &svg.display().to_string(),
    ]);
    assert!(!out.contains('±'), "{out}");
    assert!(out.contains("seeds 42 (1 run per policy)"), "{out}");
    let rows: Vec<&str> = out.lines().skip(2).collect();
    assert_eq!(rows.len(), 2, "{out}");
    for r in rows {
        assert!(
            r.split_whitespace().nth(1).unwrap().parse::<f64>().is_ok(),
            "{r}"
        );
    }
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(!text.contains('±'), "no sd in the SVG");
    assert!(!text.contains("class=\"band\""), "no sd band");
    // With several seeds the spread is there.
    let out = run_sim(&["--policy", "fgd", "--seeds", "42,43"]);
    assert!(out.contains('±'), "{out}");
}

/// The y tick labels of a chart SVG (right-aligned text left of the plot), as numbers.
fn y_ticks(svg: &str) -> Vec<f64> {
    svg.lines()
        .filter(|l| l.starts_with("<text") && l.contains("text-anchor=\"end\""))
        .filter_map(|l| l.split('>').nth(1)?.split('<').next()?.parse().ok())
        .collect()
}

/// Regression: the y-axis always ran 0..100 (and x 0..130), so policies that differ by
/// a few points near the top were drawn on top of each other.
#[test]
fn plot_zooms_to_where_the_policies_differ() {
    // On the mini trace with seed 42, fgd and dotprod allocate the same until about
    // 105% arrived and then level off at 95.8% and 94.9%.
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("zoom.svg");
    let j = json(&[
        "--policy",
        "fgd,dotprod",
        "--seeds",
        "42",
        "--plot",
        &svg.display().to_string(),
    ]);
    let text = std::fs::read_to_string(&svg).unwrap();
    let ticks = y_ticks(&text);
    assert!(ticks.len() >= 3, "{ticks:?}");
    let (lo, hi) = (ticks[0], *ticks.last().unwrap());
    assert!(lo >= 50.0, "y-axis starts at {lo}: {ticks:?}");
    assert!(hi <= 100.0 && hi - lo < 50.0, "{ticks:?}");
    // The axis still holds both lines where they part (130% arrived).
    for p in ["fgd", "dotprod"] {
        let m = j["policies"][p]["alloc_ratio"]["130"]["mean"]
            .as_f64()
            .unwrap();
        assert!(lo <= m && m <= hi, "{p} at {m} outside {lo}..{hi}");
    }
    assert!(text.contains("zoomed"), "the subtitle says so");
}

/// Overlapping lines are told apart by more than colour: each policy has its own dash
/// pattern and marker shape, and the legend draws them the same way.
#[test]
fn plot_lines_differ_in_dash_and_marker() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("all.svg");
    run_sim(&["--seeds", "42", "--plot", &svg.display().to_string()]);
    let text = std::fs::read_to_string(&svg).unwrap();
    let dash = |l: &str| {
        l.split("stroke-dasharray=\"")
            .nth(1)
            .map(|r| r.split('"').next().unwrap().to_string())
            .unwrap_or_default()
    };
    let lines: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("<polyline"))
        .map(dash)
        .collect();
    assert_eq!(lines.len(), NAMES.len());
    let distinct: BTreeSet<&String> = lines.iter().collect();
    assert_eq!(distinct.len(), lines.len(), "dash patterns {lines:?}");
    // The legend's samples carry the same patterns, in order.
    let legend = text.split("class=\"legend\"").nth(1).unwrap();
    let samples: Vec<String> = legend
        .lines()
        .filter(|l| l.starts_with("<line"))
        .map(dash)
        .collect();
    assert_eq!(samples, lines);
    // A marker per policy in the legend, and markers on the lines.
    let marks = legend.matches("<polygon").count() + legend.matches("<path").count() / 2;
    assert_eq!(marks, NAMES.len(), "{legend}");
    assert!(text.matches("class=\"markers\"").count() == NAMES.len());
}

/// Regression: the PNG was written with stored (uncompressed) deflate blocks, 1.7 MB for
/// a 960x600 chart. It is compressed now and still decodes to the full image.
#[test]
fn png_plot_is_compressed_and_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("alloc.png");
    run_sim(&["--seeds", "42,43", "--plot", &png.display().to_string()]);
    let bytes = std::fs::read(&png).unwrap();
    let (w, h, pixels) = decode_png(&bytes);
    assert_eq!((w, h), (960, 600));
    // A generous bound: a quarter of the raw pixels (the chart compresses far better).
    assert!(
        bytes.len() < w * h * 3 / 4,
        "{} bytes for {w}x{h}",
        bytes.len()
    );
    assert_eq!(pixels.len(), w * h * 3);
    // Top-left is the white background; the chart draws in colour somewhere.
    assert_eq!(&pixels[..3], &[255, 255, 255]);
    let coloured = pixels
        .chunks(3)
        .filter(|p| p.iter().max().unwrap() - p.iter().min().unwrap() > 60)
        .count();
    assert!(coloured > 2_000, "{coloured} coloured pixels");
}

/// Every flag of `sim` refuses impossible, contradictory, duplicated and out-of-range
/// values with exit 2 and a message saying what is allowed, before any simulation.
#[test]
fn bad_flag_values_exit_2_saying_what_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let in_dir = |name: &str| dir.path().join(name).display().to_string();
    let (a_svg, a_png) = (in_dir("a.svg"), in_dir("a.png"));
    let (jpg, bare) = (in_dir("a.jpg"), in_dir("plot"));
    let missing_dir = in_dir("no/such/dir/a.svg");
    let cases: Vec<(Vec<&str>, &[&str])> = vec![
        (vec!["--seeds", "5..3"], &["--seeds", "empty"]),
        (
            vec!["--seeds", "1,2,1"],
            &["--seeds", "seed 1 is given twice"],
        ),
        (vec!["--seeds", "42..45,44"], &["seed 44 is given twice"]),
        (vec!["--seeds", "0..100000"], &["more than 100000 seeds"]),
        (vec!["--seeds", "-1"], &["non-negative integer"]),
        (vec!["--policy", "fgd,fgd"], &["fgd is given twice"]),
        (vec!["--policy", "fgd,,bestfit"], &["empty item", "bestfit"]),
        (vec!["--policy", ""], &["empty item", "fgd"]),
        (vec!["--tune", "0"], &["--tune 0", "0.1 to 10"]),
        (vec!["--tune", "-1.3"], &["0.1 to 10"]),
        (vec!["--tune", "NaN"], &["0.1 to 10"]),
        (vec!["--tune", "inf"], &["0.1 to 10"]),
        (vec!["--tune", "1000"], &["--tune 1000", "0.1 to 10"]),
        (vec!["--threads", "0"], &["--threads 0", "at least 1"]),
        (vec!["--plot", &jpg], &["a.jpg", ".svg or .png"]),
        (vec!["--plot", &bare], &[".svg or .png"]),
        (vec!["--plot", &d], &[".svg or .png"]),
        (vec!["--plot-png", &a_svg], &["--plot-png", ".png"]),
        (vec!["--plot", &missing_dir], &["does not exist"]),
        (vec!["--plot", &a_svg, "--plot", &a_svg], &["given twice"]),
        (
            vec!["--plot", &a_png, "--plot-png", &a_png],
            &["given twice"],
        ),
        (vec!["--topology-map", ""], &["empty map"]),
        (
            vec!["--topology-map", "G2:8=pairs,G2:8=all"],
            &["G2:8 is given twice"],
        ),
        (
            vec!["--topology-map", "default,default"],
            &["`default` is given twice"],
        ),
    ];
    for (extra, want) in cases {
        let o = run_raw(&extra);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {e}");
        for w in want {
            assert!(e.contains(w), "{extra:?}: {w:?} missing from: {e}");
        }
        assert!(!e.contains("panicked"), "{extra:?}: {e}");
    }
    // Nothing was written for a refused run.
    assert!(!dir.path().join("a.svg").exists());

    // A directory named like a picture.
    let pic_dir = dir.path().join("dir.svg");
    std::fs::create_dir(&pic_dir).unwrap();
    let o = run_raw(&["--plot", &pic_dir.display().to_string()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is a directory"), "{}", stderr(&o));

    // Both lists from standard input.
    let o = run(&["sim", "--nodes", "-", "--pods", "-"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("standard input"), "{}", stderr(&o));

    // A special file (here through a symlink named like a picture) is not replaced.
    let link = dir.path().join("null.svg");
    std::os::unix::fs::symlink("/dev/null", &link).unwrap();
    let o = run_raw(&["--plot", &link.display().to_string()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
}

/// `--plot FILE.png` writes a PNG; `.svg` an SVG; the extension's case does not matter.
#[test]
fn plot_format_follows_the_extension() {
    let dir = tempfile::tempdir().unwrap();
    let (svg, png) = (dir.path().join("a.SVG"), dir.path().join("a.png"));
    run_sim(&[
        "--policy",
        "bestfit",
        "--seeds",
        "42",
        "--plot",
        &svg.display().to_string(),
        "--plot",
        &png.display().to_string(),
    ]);
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    assert!(
        std::fs::read(&png)
            .unwrap()
            .starts_with(b"\x89PNG\r\n\x1a\n")
    );
}

/// `--bound`: per seed, the bound is at least the best packing, which is at least what
/// FGD reaches on the same pods; both are in the table and the JSON.
#[test]
fn bound_is_above_the_best_packing_and_the_policies() {
    let v = json(&["--seeds", "42..44", "--policy", "fgd,default", "--bound"]);
    let limit = &v["limit"];
    assert!(
        is_stat(&limit["bound"]) && is_stat(&limit["bestPacking"]),
        "{limit}"
    );
    let per_seed = limit["perSeed"].as_array().unwrap();
    assert_eq!(per_seed.len(), 3);
    for s in per_seed {
        let (b, p, a) = (
            s["boundMilli"].as_u64().unwrap(),
            s["bestPackingMilli"].as_u64().unwrap(),
            s["arrivedMilli"].as_u64().unwrap(),
        );
        assert!(
            p <= b && b <= a,
            "packing {p} <= bound {b} <= arrived {a}: {s}"
        );
        assert!(s["podTypes"].as_u64().unwrap() > 0);
    }
    // The policies' ratio at 100% is a mean over the arrivals that round to 100%; the
    // bound holds at the last of them, so it holds for the mean too.
    for p in ["fgd", "default"] {
        let alloc = v["policies"][p]["alloc_ratio"]["100"]["mean"]
            .as_f64()
            .unwrap();
        assert!(
            limit["bound"]["mean"].as_f64().unwrap() + 1e-9 >= alloc,
            "{p}"
        );
    }
    let table = run_sim(&["--seeds", "42", "--policy", "fgd", "--bound"]);
    assert!(table.lines().any(|l| l.starts_with("bound ")), "{table}");
    assert!(
        table.lines().any(|l| l.starts_with("best packing ")),
        "{table}"
    );
}
