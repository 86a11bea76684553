//! Validation against the fixtures of `fixtures/validate/make.py`: nvbandwidth results of
//! an 8-GPU H100 NVSwitch node, clean and with a planted slow pair (GPU2↔GPU5 over PCIe)
//! and a planted slow host link (GPU3 trained x4), in nvbandwidth's JSON and text;
//! nccl-tests and dcgmi diag output. The planted faults are found exactly, with their
//! diagnosis; clean results give nothing; results from another topology say so; bad
//! files are errors naming the position; no input makes a reader panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use linkwise_core::profiles;
use linkwise_validate::check::{Kind, Options, Report, check};
use linkwise_validate::expect::{Expectations, LinkClass, expect};
use linkwise_validate::import::parse;
use linkwise_validate::results::{Results, Status, Tool};
use proptest::prelude::*;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(linkwise_testkit::fixtures().join("validate").join(name)).unwrap()
}

fn read(name: &str) -> Results {
    parse(&fixture(name), name).unwrap()
}

fn expected(profile: &str) -> Expectations {
    expect(&profiles::get(profile).unwrap())
}

fn run(profile: &str, files: &[&str]) -> Report {
    let results: Vec<Results> = files.iter().map(|f| read(f)).collect();
    check(&expected(profile), &results, Options::default())
}

#[test]
fn expectations_follow_the_links() {
    let e = expected("dgx-h100");
    assert_eq!(e.pairs.len(), 28);
    let p = e.pairs.iter().find(|p| p.a == 2 && p.b == 5).unwrap();
    assert_eq!((p.class, p.lanes), (LinkClass::Nvswitch, 18));
    assert!((p.peak_gbps - 450.0).abs() < 1e-9, "{p:?}");
    assert!((p.expected_gbps - 382.5).abs() < 1e-9);
    // PCIe Gen5 x16: 32 GT/s, 128b/130b, 16 lanes = 63.0 GB/s.
    let h = &e.host[3];
    assert!((h.peak_gbps - 63.0).abs() < 0.01, "{h:?}");
    assert_eq!((h.max_width, h.assumed), (Some(16), false));

    let pcie = expected("pcie-8gpu");
    assert!(
        pcie.pairs
            .iter()
            .all(|p| p.class == LinkClass::Pcie && p.lanes == 0)
    );
    // Pairs under one switch get the whole link, pairs across the SMP link less.
    let best = pcie.pairs.iter().map(|p| p.peak_gbps).fold(0.0, f64::max);
    let worst = pcie
        .pairs
        .iter()
        .map(|p| p.peak_gbps)
        .fold(f64::MAX, f64::min);
    assert!(worst < best, "{best} {worst}");

    let fusion = expected("riscv-fusion");
    assert!(
        fusion.host.iter().all(|h| h.class == LinkClass::C2c),
        "{:?}",
        fusion.host
    );
}

#[test]
fn the_planted_slow_pair_and_host_link_are_found_exactly_with_their_diagnosis() {
    for file in [
        "nvbandwidth-h100-planted.json",
        "nvbandwidth-h100-planted.txt",
    ] {
        let r = run("dgx-h100", &[file]);
        assert_eq!(r.compared, 8 + 8 + 56 + 56, "{file}");
        let mut got: Vec<(Kind, Vec<u32>, String)> = r
            .findings
            .iter()
            .map(|f| (f.kind, f.gpus.clone(), f.test.clone()))
            .collect();
        got.sort();
        let mut want = vec![(
            Kind::SlowHostLink,
            vec![3],
            "host_to_device_memcpy_ce".to_string(),
        )];
        for t in [
            "device_to_device_memcpy_read_ce",
            "device_to_device_memcpy_write_ce",
        ] {
            want.push((Kind::SlowPair, vec![2, 5], t.to_string()));
            want.push((Kind::SlowPair, vec![5, 2], t.to_string()));
        }
        want.sort();
        assert_eq!(got, want, "{file}: {:#?}", r.findings);
        for f in &r.findings {
            match f.kind {
                Kind::SlowPair => {
                    assert!(
                        f.message.contains("GPU2") && f.message.contains("GPU5"),
                        "{}",
                        f.message
                    );
                    assert!(
                        f.message.contains("18 NVLink lanes through NVSwitch"),
                        "{}",
                        f.message
                    );
                    assert!(
                        f.message.contains("the pair runs over PCIe"),
                        "{}",
                        f.message
                    );
                    assert_eq!(f.link, "nvswitch");
                }
                _ => {
                    assert!(f.message.starts_with("GPU3 H2D 12.1 GB/s"), "{}", f.message);
                    assert!(
                        f.message.contains("PCIe link trained x4, expected x16"),
                        "{}",
                        f.message
                    );
                    assert_eq!(f.link, "pcie");
                }
            }
        }
    }
}

#[test]
fn clean_results_have_no_finding_and_text_and_json_agree() {
    for file in ["nvbandwidth-h100-clean.json", "nvbandwidth-h100-clean.txt"] {
        let r = run("dgx-h100", &[file]);
        assert!(r.findings.is_empty(), "{file}: {:#?}", r.findings);
        assert_eq!(r.compared, 128);
    }
    let (j, t) = (
        read("nvbandwidth-h100-clean.json"),
        read("nvbandwidth-h100-clean.txt"),
    );
    assert_eq!(j.tool, Tool::Nvbandwidth);
    assert_eq!(j.driver_version.as_deref(), Some("570.124.06"));
    assert_eq!(t.driver_version, j.driver_version);
    assert_eq!(t.devices.len(), 8);
    for (a, b) in j.tests.iter().zip(&t.tests) {
        assert_eq!(a.name, b.name);
        assert_eq!(a.matrices[0].values, b.matrices[0].values);
        assert_eq!(a.matrices[0].direction, b.matrices[0].direction);
    }
}

#[test]
fn results_from_another_topology_say_the_topology_is_wrong() {
    // An NVSwitch node's numbers against a PCIe-only topology: faster than PCIe allows.
    let r = run("pcie-8gpu", &["nvbandwidth-h100-clean.json"]);
    assert!(!r.findings.is_empty());
    assert!(
        r.findings
            .iter()
            .filter(|f| f.test.starts_with("device_to_device"))
            .all(|f| f.kind == Kind::WrongTopology
                && f.message
                    .contains("the topology does not describe this machine")),
        "{:#?}",
        r.findings
    );
    // Every D2D pair (2 × 56) and every host link (2 × 8: 55 GB/s over PCIe 4.0 x16).
    assert_eq!(
        r.findings
            .iter()
            .filter(|f| f.kind == Kind::WrongTopology)
            .count(),
        128
    );
    // Eight GPUs measured, four in the topology.
    let r = run("nvlink-bridge-pairs", &["nvbandwidth-h100-clean.txt"]);
    assert_eq!(r.findings.len(), 4, "{:#?}", r.findings);
    assert!(
        r.findings
            .iter()
            .all(|f| f.kind == Kind::WrongTopology
                && f.message.contains("8 GPUs where the topology"))
    );
}

#[test]
fn waived_peer_copies_and_a_crashed_test_are_findings() {
    let res = read("nvbandwidth-h100-waived-crashed.json");
    let statuses: Vec<Status> = res.tests.iter().map(|t| t.status).collect();
    assert_eq!(
        statuses,
        [
            Status::Passed,
            Status::Passed,
            Status::Waived,
            Status::Running
        ]
    );
    let r = check(&expected("dgx-h100"), &[res], Options::default());
    let kinds: Vec<Kind> = r.findings.iter().map(|f| f.kind).collect();
    assert_eq!(
        kinds,
        [Kind::P2pUnavailable, Kind::TestFailed],
        "{:#?}",
        r.findings
    );
    assert!(r.findings[1].message.contains("never finished"));
    // Without NVLink a waiver is what the topology predicts.
    let r = check(
        &expected("pcie-8gpu"),
        &[read("nvbandwidth-h100-waived-crashed.json")],
        Options::default(),
    );
    assert!(r.findings.iter().all(|f| f.kind != Kind::P2pUnavailable));
}

#[test]
fn a_truncated_or_foreign_file_is_an_error_naming_where() {
    let e = parse(&fixture("nvbandwidth-h100-truncated.txt"), "t.txt")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("t.txt: line ") && e.contains("truncated"),
        "{e}"
    );
    let e = parse("{\"something\": 1}", "x.json")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("x.json") && e.contains("neither nvbandwidth"),
        "{e}"
    );
    let e = parse("hello\nworld\n", "y.txt").unwrap_err().to_string();
    assert!(e.contains("not a format linkwise reads"), "{e}");
    let mut v: serde_json::Value =
        serde_json::from_str(&fixture("nvbandwidth-h100-clean.json")).unwrap();
    v["nvbandwidth"]["testcases"][2]["bandwidth_matrix"][1][3] = "fast".into();
    let e = parse(&v.to_string(), "z.json").unwrap_err().to_string();
    assert!(
        e.contains("testcases[2].bandwidth_matrix[1][3]") && e.contains("fast"),
        "{e}"
    );
}

#[test]
fn nccl_tables_are_read_and_judged_against_the_bottleneck() {
    let r = read("nccl-allreduce-h100.txt");
    let c = r.tests[0].collective.as_ref().unwrap();
    assert_eq!(r.tests[0].name, "all_reduce_perf");
    assert_eq!(
        (c.ranks, c.devices.len(), c.hosts.as_slice()),
        (8, 8, &["node01".to_string()][..])
    );
    assert_eq!(c.sizes.len(), 31);
    assert_eq!(c.sizes.last().unwrap().bytes, 8_589_934_592);
    assert!(c.avg_bus_bandwidth.is_some());
    assert!(
        run("dgx-h100", &["nccl-allreduce-h100.txt"])
            .findings
            .is_empty()
    );

    let r = run("dgx-h100", &["nccl-allreduce-h100-wrong.txt"]);
    assert_eq!(r.findings.len(), 1, "{:#?}", r.findings);
    assert_eq!(r.findings[0].kind, Kind::WrongResults);
    assert!(
        r.findings[0].message.contains("24 wrong elements"),
        "{}",
        r.findings[0].message
    );

    // The same numbers with a stricter floor: the collective is slow for its links.
    let results = [read("nccl-allreduce-h100.txt")];
    let strict = check(&expected("dgx-h100"), &results, Options { min_ratio: 0.99 });
    assert_eq!(strict.findings.len(), 1);
    assert_eq!(strict.findings[0].kind, Kind::SlowCollective);
    assert!(
        strict.findings[0].message.contains("GPU0"),
        "{}",
        strict.findings[0].message
    );
}

#[test]
fn dcgm_3_and_4_verdicts_are_read() {
    let r = run("dgx-h100", &["dcgm4-diag-fail.json"]);
    assert_eq!(r.findings.len(), 1, "{:#?}", r.findings);
    assert_eq!(
        (r.findings[0].kind, r.findings[0].gpus.as_slice()),
        (Kind::TestFailed, &[4u32][..])
    );
    assert!(
        r.findings[0]
            .message
            .contains("GPU4 failed: GPU 4 PCIe link replay"),
        "{}",
        r.findings[0].message
    );
    assert!(
        run("dgx-h100", &["dcgm4-diag-pass.json"])
            .findings
            .is_empty()
    );
    let d4 = read("dcgm4-diag-pass.json");
    assert_eq!(
        (d4.tool, d4.version.as_deref()),
        (Tool::DcgmDiag, Some("4.2.3"))
    );

    let d3 = read("dcgm3-diag.json");
    assert_eq!(d3.version.as_deref(), Some("3.3.5"));
    assert_eq!(d3.tests[1].status, Status::Fail);
    let r = run("dgx-h100", &["dcgm3-diag.json"]);
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].gpus, [6]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Guards the readers against panics: any prefix of a real file, and any byte flipped.
    #[test]
    fn no_input_makes_a_reader_panic(cut in 0usize..6000, at in 0usize..6000, byte in any::<u8>(), which in 0usize..6) {
        let names = [
            "nvbandwidth-h100-clean.json",
            "nvbandwidth-h100-planted.txt",
            "nccl-allreduce-h100.txt",
            "dcgm4-diag-fail.json",
            "dcgm3-diag.json",
            "nvbandwidth-h100-waived-crashed.json",
        ];
        let text = fixture(names[which]);
        let mut bytes = text.as_bytes()[..cut.min(text.len())].to_vec();
        if !bytes.is_empty() {
            let i = at % bytes.len();
            bytes[i] = byte;
        }
        let mutated = String::from_utf8_lossy(&bytes);
        if let Ok(r) = parse(&mutated, "p") {
            let _ = check(&expected("dgx-h100"), &[r], Options::default());
        }
    }
}

#[test]
fn nvbandwidth_json_written_by_linkwise_reads_back_to_the_same_matrices_and_findings() {
    // Guards `validate bench gpu -o nvbandwidth`: what linkwise writes in nvbandwidth's
    // JSON must be read back as nvbandwidth's, matrix for matrix.
    for file in [
        "nvbandwidth-h100-planted.json",
        "nvbandwidth-h100-waived-crashed.json",
    ] {
        let original = read(file);
        let text =
            serde_json::to_string(&linkwise_validate::nvbandwidth::to_json(&original)).unwrap();
        let back = linkwise_validate::nvbandwidth::parse_json(&text, "written").unwrap();
        assert_eq!(back.tests.len(), original.tests.len(), "{file}");
        assert_eq!(back.devices, original.devices, "{file}");
        assert_eq!(back.driver_version, original.driver_version, "{file}");
        for (a, b) in original.tests.iter().zip(&back.tests) {
            assert_eq!((&a.name, a.status), (&b.name, b.status), "{file}");
            assert_eq!(a.matrices.len(), b.matrices.len(), "{file} {}", a.name);
            for (m, n) in a.matrices.iter().zip(&b.matrices) {
                assert_eq!(
                    (m.rows, m.columns, m.direction, m.unit),
                    (n.rows, n.columns, n.direction, n.unit),
                    "{file} {}",
                    a.name
                );
                assert_eq!(m.values.len(), n.values.len());
                for (r, s) in m.values.iter().zip(&n.values) {
                    assert_eq!(r.len(), s.len());
                    for (x, y) in r.iter().zip(s) {
                        match (x, y) {
                            (Some(x), Some(y)) => assert!((x - y).abs() <= 0.005, "{x} {y}"),
                            (x, y) => assert_eq!(x, y),
                        }
                    }
                }
            }
        }
    }
    let planted = read("nvbandwidth-h100-planted.json");
    let written = linkwise_validate::nvbandwidth::parse_json(
        &linkwise_validate::nvbandwidth::to_json(&planted).to_string(),
        "written",
    )
    .unwrap();
    let kinds = |r: &Results| {
        let mut k: Vec<(Kind, Vec<u32>)> = check(
            &expected("dgx-h100"),
            std::slice::from_ref(r),
            Options::default(),
        )
        .findings
        .into_iter()
        .map(|f| (f.kind, f.gpus))
        .collect();
        k.sort();
        k
    };
    assert_eq!(kinds(&written), kinds(&planted));
    assert_eq!(kinds(&written).len(), 5);
}

#[test]
fn the_model_of_an_nvbandwidth_run_is_read_as_the_model() {
    // Regression: the model's JSON of an nvbandwidth run says "nvbandwidth" (its tool),
    // which a search of the text took for nvbandwidth's own JSON.
    let r = read("nvbandwidth-h100-planted.json");
    let text = serde_json::to_string(&r).unwrap();
    let back = parse(&text, "model.json").unwrap();
    assert_eq!(back.tests, r.tests);
    assert_eq!(back.tool, Tool::Nvbandwidth);
}
