//! Tests for the topotext source.
//!
//! Expected matrices come from the fixture text itself through [`matrix_in_text`], a
//! deliberately naive extractor that shares nothing with the parser (no header logic, no
//! column alignment), plus values hard-coded from `topo-samples.md`.

use std::path::{Path, PathBuf};

use linkwise_core::{CpuSet, Endpoint, GpuId, LinkKind, PathClass, Topology};
use linkwise_discovery::topotext::{self, TopoTextSource};
use linkwise_discovery::{Error, TopologySource};
use proptest::prelude::*;

// === helpers ===

/// Every well-formed fixture under `fixtures/topo/`.
const FIXTURES: &[&str] = &[
    "s1-h100-nv18-spaces.txt",
    "s3-a100-nv12-roce-tabs.txt",
    "s5-rtx4090-pcie-tabs.txt",
    "s8-nvlink-bridge-nv3-tabs.txt",
    "s9-h100-nv6-4nic-spaces.txt",
    "v2016-m40-soc-tabs.txt",
    "v2017-p100-raw-nic-names-tabs.txt",
    "dgx1-v100-cube-mesh-spaces.txt",
    "gh200x4-nv6-crlf-tabs.txt",
    "a6000-bridged-collapsed-spaces.txt",
];

fn fixture(name: &str) -> PathBuf {
    linkwise_testkit::fixtures().join("topo").join(name)
}

fn bad_fixture(name: &str) -> PathBuf {
    linkwise_testkit::fixtures().join("topo-bad").join(name)
}

fn read(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    String::from_utf8_lossy(&bytes).into_owned()
}

fn load(name: &str) -> (String, Topology) {
    let path = fixture(name);
    let text = read(&path);
    let topo = topotext::parse(&text, &path).unwrap_or_else(|e| panic!("{name}: {e}"));
    (text, topo)
}

fn topo(name: &str) -> Topology {
    load(name).1
}

/// The GPU-to-GPU matrix as printed: rows are lines whose first word is `GPU<n>` and
/// that contain an `X` word; a row's cells are the `n` words after its label, `n` being
/// the number of such rows. `SOC` (pre-384 drivers) is the old spelling of `SYS`.
fn matrix_in_text(text: &str) -> Vec<Vec<String>> {
    let is_gpu_label = |w: &str| {
        w.strip_prefix("GPU")
            .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
    };
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.first().is_some_and(|f| is_gpu_label(f)) && w.contains(&"X"))
        .collect();
    let n = rows.len();
    rows.iter()
        .map(|w| {
            w[1..=n]
                .iter()
                .map(|c| {
                    if *c == "SOC" {
                        "SYS".to_string()
                    } else {
                        c.to_uppercase()
                    }
                })
                .collect()
        })
        .collect()
}

/// The pair matrix's labels.
fn labels(t: &Topology) -> Vec<Vec<String>> {
    let m = t.pair_matrix();
    (0..m.len())
        .map(|i| (0..m.len()).map(|j| m.cell(i, j).label()).collect())
        .collect()
}

fn gpu(i: impl std::fmt::Display) -> Endpoint {
    Endpoint::Gpu(GpuId(format!("GPU{i}")))
}

fn nic(id: &str) -> Endpoint {
    Endpoint::Nic(id.to_string())
}

/// The kinds of the links joining `a` and `b`, either way round.
fn kinds(t: &Topology, a: &Endpoint, b: &Endpoint) -> Vec<LinkKind> {
    t.links
        .iter()
        .filter(|l| (&l.a == a && &l.b == b) || (&l.a == b && &l.b == a))
        .map(|l| l.kind.clone())
        .collect()
}

fn pcie(class: PathClass) -> Vec<LinkKind> {
    vec![LinkKind::Pcie { class }]
}

fn nv(lanes: u32) -> Vec<LinkKind> {
    vec![LinkKind::Nvlink {
        lanes,
        generation: None,
    }]
}

fn cpus(s: &str) -> Option<CpuSet> {
    Some(s.parse().unwrap_or_else(|e| panic!("{s}: {e}")))
}

fn has_gap(t: &Topology, what: &str) -> bool {
    t.gaps.iter().any(|g| g.what == what)
}

// === every fixture ===

#[test]
fn every_fixture_reproduces_its_gpu_matrix() {
    for name in FIXTURES {
        let (text, t) = load(name);
        let expected = matrix_in_text(&text);
        assert!(
            !expected.is_empty(),
            "{name}: the extractor found no GPU rows"
        );
        assert_eq!(labels(&t), expected, "{name}");
        assert_eq!(t.gpus.len(), expected.len(), "{name}");
        t.validate().unwrap();
        assert_eq!(
            t.source,
            format!("topo-text:{}", fixture(name).display()),
            "{name}"
        );
        assert_eq!(t.hosts.len(), 1, "{name}");
        assert_eq!(t.hosts[0].name, "unknown", "{name}");
        assert!(has_gap(&t, "host name and architecture"), "{name}");
        assert!(has_gap(&t, "gpu uuids, pci bus ids and models"), "{name}");
        for (i, g) in (0u32..).zip(&t.gpus) {
            assert_eq!(g.id, GpuId(format!("GPU{i}")), "{name}");
            assert_eq!(g.index, i, "{name}");
            assert_eq!(g.model, "unknown", "{name}");
            assert_eq!(g.host, "unknown", "{name}");
        }
    }
}

#[test]
fn every_fixture_has_one_link_per_gpu_pair_and_per_gpu_nic_pair() {
    for name in FIXTURES {
        let t = topo(name);
        let m = matrix_in_text(&read(&fixture(name)));
        for (i, row) in m.iter().enumerate() {
            for (j, want) in row.iter().enumerate().skip(i + 1) {
                let (a, b) = (gpu(i), gpu(j));
                let k = kinds(&t, &a, &b);
                assert_eq!(k.len(), 1, "{name}: {a} - {b}: {k:?}");
                match &k[0] {
                    LinkKind::Nvlink {
                        lanes,
                        generation: None,
                    } => assert_eq!(&format!("NV{lanes}"), want),
                    LinkKind::Pcie { class } => assert_eq!(class.as_str(), want),
                    other => panic!("{name}: unexpected {other:?}"),
                }
            }
            for n in &t.nics {
                assert_eq!(
                    kinds(&t, &gpu(i), &nic(&n.id)).len(),
                    1,
                    "{name}: GPU{i} - {}",
                    n.id
                );
            }
        }
    }
}

#[test]
fn discover_reads_the_file() {
    for name in FIXTURES {
        let from_source = TopoTextSource::new(fixture(name)).discover().unwrap();
        assert_eq!(from_source, topo(name), "{name}");
    }
    let missing = TopoTextSource::new(fixture("no-such-file.txt")).discover();
    assert!(matches!(missing, Err(Error::Read { .. })), "{missing:?}");
}

// === the samples of topo-samples.md ===

#[test]
fn s1_h100_all_nv18_two_numa_nodes() {
    let t = topo("s1-h100-nv18-spaces.txt");
    assert_eq!(t.gpus.len(), 8);
    assert!(t.nics.is_empty());
    for i in 0..8 {
        for j in (i + 1)..8 {
            assert_eq!(kinds(&t, &gpu(i), &gpu(j)), nv(18));
        }
    }
    for g in &t.gpus {
        let (c, n) = if g.index < 4 {
            ("0-47,96-143", 0)
        } else {
            ("48-95,144-191", 1)
        };
        assert_eq!(g.cpu_affinity, cpus(c), "GPU{}", g.index);
        assert_eq!(g.numa_node, Some(n), "GPU{}", g.index);
        assert_eq!(g.gpu_numa_id, None, "GPU{}", g.index);
    }
    let nodes = &t.hosts[0].numa_nodes;
    assert_eq!(nodes.len(), 2);
    assert_eq!(
        (nodes[0].id, nodes[0].cpus.to_string()),
        (0, "0-47,96-143".to_string())
    );
    assert_eq!(
        (nodes[1].id, nodes[1].cpus.to_string()),
        (1, "48-95,144-191".to_string())
    );
    assert!(has_gap(&t, "nvlink generation"));
    // NVLink is 18 x 25 GB/s with the generation unknown.
    assert_eq!(t.pair_matrix().bandwidth_mbps(0, 7), 18 * 25_000);
}

#[test]
fn s3_a100_nv12_with_one_roce_nic() {
    let t = topo("s3-a100-nv12-roce-tabs.txt");
    assert_eq!(t.gpus.len(), 4);
    for i in 0..4 {
        for j in (i + 1)..4 {
            assert_eq!(kinds(&t, &gpu(i), &gpu(j)), nv(12));
        }
        assert_eq!(kinds(&t, &gpu(i), &nic("NIC0")), pcie(PathClass::Sys));
    }
    assert_eq!(t.nics.len(), 1);
    assert_eq!(t.nics[0].id, "NIC0");
    assert_eq!(t.nics[0].name.as_deref(), Some("rocep49s0"));
    assert_eq!(t.nics[0].host, "unknown");
    for g in &t.gpus {
        assert_eq!(g.cpu_affinity, cpus("32-63,96-127"));
        assert_eq!(g.numa_node, Some(1));
        assert_eq!(g.gpu_numa_id, None);
    }
    let nodes = &t.hosts[0].numa_nodes;
    assert_eq!(nodes.len(), 1);
    assert_eq!(
        (nodes[0].id, nodes[0].cpus.to_string()),
        (1, "32-63,96-127".to_string())
    );
    assert!(
        !t.gaps.iter().any(|g| g.what.starts_with("nic ")),
        "{:?}",
        t.gaps
    );
    // The NIC0 row ends in four trailing TABs: the raw bytes say so.
    assert!(read(&fixture("s3-a100-nv12-roce-tabs.txt")).contains("\t X \t\t\t\t\n"));
}

#[test]
fn s5_pcie_only_gpu6_phb_to_both_nics() {
    let t = topo("s5-rtx4090-pcie-tabs.txt");
    assert_eq!(t.gpus.len(), 8);
    assert!(
        !t.links
            .iter()
            .any(|l| matches!(l.kind, LinkKind::Nvlink { .. }))
    );
    for i in 0..8 {
        for j in (i + 1)..8 {
            assert_eq!(kinds(&t, &gpu(i), &gpu(j)), pcie(PathClass::Sys));
        }
        let want = if i == 6 {
            PathClass::Phb
        } else {
            PathClass::Sys
        };
        assert_eq!(kinds(&t, &gpu(i), &nic("NIC0")), pcie(want), "GPU{i}");
        assert_eq!(kinds(&t, &gpu(i), &nic("NIC1")), pcie(want), "GPU{i}");
    }
    assert_eq!(kinds(&t, &nic("NIC0"), &nic("NIC1")), pcie(PathClass::Pix));
    assert_eq!(
        t.nics.iter().map(|n| n.name.clone()).collect::<Vec<_>>(),
        vec![None, None]
    );
    assert!(has_gap(&t, "nic NIC0 name") && has_gap(&t, "nic NIC1 name"));
    assert!(!has_gap(&t, "nvlink generation"));
    assert_eq!(t.gpus[0].cpu_affinity, cpus("0-55,112-167"));
    assert_eq!(t.gpus[7].cpu_affinity, cpus("56-111,168-223"));
    assert_eq!(
        t.gpus.iter().map(|g| g.numa_node).collect::<Vec<_>>(),
        [0, 0, 0, 0, 1, 1, 1, 1].map(Some)
    );
}

#[test]
fn s8_bridge_nv3_double_tab_no_gpu_numa_column() {
    let text = read(&fixture("s8-nvlink-bridge-nv3-tabs.txt"));
    // The header lost its leading TAB, and an empty field precedes N/A.
    assert!(text.starts_with("GPU0\tGPU1\tCPU Affinity\tNUMA Affinity\n"));
    assert!(text.contains("0-47\t\tN/A"));
    let t = topo("s8-nvlink-bridge-nv3-tabs.txt");
    assert_eq!(t.gpus.len(), 2);
    assert_eq!(kinds(&t, &gpu(0), &gpu(1)), nv(3));
    for g in &t.gpus {
        assert_eq!(g.cpu_affinity, cpus("0-47"));
        assert_eq!(g.numa_node, None);
        assert_eq!(g.gpu_numa_id, None);
    }
    assert!(t.hosts[0].numa_nodes.is_empty());
    assert!(t.switches.is_empty());
}

#[test]
fn s9_comma_list_affinity_and_non_contiguous_numa_ids() {
    let t = topo("s9-h100-nv6-4nic-spaces.txt");
    assert_eq!(t.gpus.len(), 4);
    let want = [
        ("6,14,22,30", 3),
        ("4,12,20,28", 1),
        ("7,15,23,31", 7),
        ("5,13,21,29", 5),
    ];
    for (g, (c, n)) in t.gpus.iter().zip(want) {
        assert_eq!(g.cpu_affinity, cpus(c), "GPU{}", g.index);
        assert_eq!(g.numa_node, Some(n), "GPU{}", g.index);
        assert_eq!(g.gpu_numa_id, None);
    }
    for i in 0..4u32 {
        for j in (i + 1)..4 {
            assert_eq!(kinds(&t, &gpu(i), &gpu(j)), nv(6));
        }
        for k in 0..4u32 {
            let want = if i == k {
                PathClass::Pix
            } else {
                PathClass::Sys
            };
            assert_eq!(
                kinds(&t, &gpu(i), &nic(&format!("NIC{k}"))),
                pcie(want),
                "GPU{i} NIC{k}"
            );
        }
    }
    let nodes: Vec<(u32, String)> = t.hosts[0]
        .numa_nodes
        .iter()
        .map(|n| (n.id, n.cpus.to_string()))
        .collect();
    assert_eq!(
        nodes,
        vec![
            (1, "4,12,20,28".to_string()),
            (3, "6,14,22,30".to_string()),
            (5, "5,13,21,29".to_string()),
            (7, "7,15,23,31".to_string())
        ]
    );
    // The legend is cut before any NIC Legend: names unknown.
    assert!(t.nics.iter().all(|n| n.name.is_none()));
    // The NIC3 row keeps its trailing space in the fixture.
    assert!(read(&fixture("s9-h100-nv6-4nic-spaces.txt")).contains("SYS      X \n"));
}

// === constructed variants ===

#[test]
fn v2017_raw_nic_names_without_legend_or_numa_columns() {
    let t = topo("v2017-p100-raw-nic-names-tabs.txt");
    let nics: Vec<(String, Option<String>)> = t
        .nics
        .iter()
        .map(|n| (n.id.clone(), n.name.clone()))
        .collect();
    assert_eq!(
        nics,
        vec![
            ("mlx5_0".to_string(), Some("mlx5_0".to_string())),
            ("mlx5_1".to_string(), Some("mlx5_1".to_string()))
        ]
    );
    assert_eq!(kinds(&t, &gpu(0), &nic("mlx5_0")), pcie(PathClass::Pix));
    assert_eq!(kinds(&t, &gpu(2), &nic("mlx5_1")), pcie(PathClass::Phb));
    assert_eq!(kinds(&t, &gpu(3), &nic("mlx5_0")), pcie(PathClass::Sys));
    assert_eq!(
        kinds(&t, &nic("mlx5_0"), &nic("mlx5_1")),
        pcie(PathClass::Sys)
    );
    assert_eq!(kinds(&t, &gpu(2), &gpu(3)), pcie(PathClass::Pxb));
    assert_eq!(t.gpus[0].cpu_affinity, cpus("0-11,24-35"));
    assert_eq!(t.gpus[3].cpu_affinity, cpus("12-23,36-47"));
    assert!(
        t.gpus
            .iter()
            .all(|g| g.numa_node.is_none() && g.gpu_numa_id.is_none())
    );
    assert!(t.hosts[0].numa_nodes.is_empty());
    assert!(has_gap(&t, "gpu numa nodes"));
    assert!(!t.gaps.iter().any(|g| g.what.starts_with("nic ")));
}

#[test]
fn v2016_soc_reads_as_sys() {
    let t = topo("v2016-m40-soc-tabs.txt");
    assert_eq!(
        labels(&t),
        vec![
            vec!["X", "PHB", "SYS", "SYS"],
            vec!["PHB", "X", "SYS", "SYS"],
            vec!["SYS", "SYS", "X", "PHB"],
            vec!["SYS", "SYS", "PHB", "X"],
        ]
    );
}

#[test]
fn dgx1_hybrid_cube_mesh() {
    let t = topo("dgx1-v100-cube-mesh-spaces.txt");
    let lanes = |i: u32, j: u32| -> u32 {
        kinds(&t, &gpu(i), &gpu(j))
            .iter()
            .map(|k| match k {
                LinkKind::Nvlink { lanes, .. } => *lanes,
                _ => 0,
            })
            .sum()
    };
    // Six NVLinks per V100, as NV1 and NV2 bonds.
    for i in 0..8 {
        assert_eq!(
            (0..8).filter(|&j| j != i).map(|j| lanes(i, j)).sum::<u32>(),
            6,
            "GPU{i}"
        );
    }
    assert_eq!(lanes(0, 3), 2);
    assert_eq!(lanes(0, 1), 1);
    assert_eq!(kinds(&t, &gpu(0), &gpu(5)), pcie(PathClass::Sys));
    assert_eq!(kinds(&t, &gpu(0), &nic("NIC0")), pcie(PathClass::Pix));
    assert_eq!(kinds(&t, &gpu(0), &nic("NIC1")), pcie(PathClass::Phb));
    assert_eq!(kinds(&t, &gpu(7), &nic("NIC0")), pcie(PathClass::Sys));
    assert_eq!(kinds(&t, &nic("NIC2"), &nic("NIC3")), pcie(PathClass::Phb));
    // Legend lines without indent, NIC legend included.
    let names: Vec<Option<String>> = t.nics.iter().map(|n| n.name.clone()).collect();
    assert_eq!(
        names,
        (0..4)
            .map(|i| Some(format!("mlx5_{i}")))
            .collect::<Vec<_>>()
    );
    assert_eq!(t.islands().len(), 1);
    assert_eq!(
        t.islands()[0].min_lanes,
        0,
        "not every pair has a direct link"
    );
}

#[test]
fn gh200_crlf_with_gpu_numa_ids() {
    let text = read(&fixture("gh200x4-nv6-crlf-tabs.txt"));
    assert!(
        text.contains("\r\n"),
        "the fixture must keep its CRLF line endings"
    );
    let t = topo("gh200x4-nv6-crlf-tabs.txt");
    let got: Vec<(Option<u32>, Option<u32>, String)> = t
        .gpus
        .iter()
        .map(|g| {
            (
                g.numa_node,
                g.gpu_numa_id,
                g.cpu_affinity.clone().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (Some(0), Some(4), "0-71".to_string()),
            (Some(1), Some(12), "72-143".to_string()),
            (Some(2), Some(20), "144-215".to_string()),
            (Some(3), Some(28), "216-287".to_string())
        ]
    );
    assert_eq!(t.nics[3].name.as_deref(), Some("mlx5_3"));
    assert_eq!(kinds(&t, &gpu(2), &nic("NIC2")), pcie(PathClass::Node));
}

#[test]
fn collapsed_single_space_copy() {
    let t = topo("a6000-bridged-collapsed-spaces.txt");
    assert_eq!(kinds(&t, &gpu(0), &gpu(1)), nv(4));
    assert_eq!(kinds(&t, &gpu(1), &gpu(2)), pcie(PathClass::Sys));
    assert_eq!(kinds(&t, &gpu(3), &nic("NIC1")), pcie(PathClass::Node));
    assert_eq!(t.gpus[2].cpu_affinity, cpus("28-55,84-111"));
    assert_eq!(t.gpus[2].numa_node, Some(1));
    assert_eq!(t.nics[1].name.as_deref(), Some("mlx5_1"));
    assert_eq!(t.islands().len(), 2);
}

// === whitespace forms are equivalent ===

fn expand_tabs(line: &str) -> String {
    let mut out = String::new();
    for c in line.chars() {
        if c == '\t' {
            out.push(' ');
            while !out.chars().count().is_multiple_of(8) {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn map_lines(text: &str, f: impl Fn(&str) -> String) -> String {
    text.split('\n').map(f).collect::<Vec<_>>().join("\n")
}

#[test]
fn tab_space_and_collapsed_forms_parse_alike() {
    for name in FIXTURES {
        let (text, t) = load(name);
        let p = Path::new("same");
        let base = topotext::parse(&text, p).unwrap();
        assert_eq!(labels(&base), labels(&t));
        let expanded = map_lines(&text, expand_tabs);
        assert_eq!(
            topotext::parse(&expanded, p).unwrap(),
            base,
            "{name} with TABs expanded"
        );
        let collapsed = map_lines(&text, |l| {
            l.split_whitespace().collect::<Vec<_>>().join(" ")
        });
        assert_eq!(
            topotext::parse(&collapsed, p).unwrap(),
            base,
            "{name} collapsed"
        );
        let indented = map_lines(&text, |l| format!("   {l}\t "));
        assert_eq!(
            topotext::parse(&indented, p).unwrap(),
            base,
            "{name} indented"
        );
        let crlf = text.replace("\r\n", "\n").replace('\n', "\r\n");
        assert_eq!(topotext::parse(&crlf, p).unwrap(), base, "{name} as CRLF");
        let lone_cr = text.replace("\r\n", "\n").replace('\n', "\r");
        assert_eq!(
            topotext::parse(&lone_cr, p).unwrap(),
            base,
            "{name} with CR line ends"
        );
        let bom = format!("\u{feff}{text}");
        assert_eq!(topotext::parse(&bom, p).unwrap(), base, "{name} with a BOM");
    }
}

// === inline edge cases ===

fn parse(text: &str) -> Result<Topology, Error> {
    topotext::parse(text, Path::new("inline.txt"))
}

fn err_line(text: &str) -> (usize, String) {
    match parse(text) {
        Err(Error::TopoText { line, message, .. }) => (line, message),
        other => panic!("expected a TopoText error, got {other:?}"),
    }
}

#[test]
fn header_without_leading_cell_in_space_form() {
    let t = parse(
        "GPU0    GPU1    CPU Affinity    NUMA Affinity\n\
         GPU0     X      NV2     0-7             0\n\
         GPU1    NV2      X      0-7             0\n",
    )
    .unwrap();
    assert_eq!(labels(&t), vec![vec!["X", "NV2"], vec!["NV2", "X"]]);
    assert_eq!(t.gpus[1].numa_node, Some(0));
}

#[test]
fn prose_and_prompts_before_the_header_are_skipped() {
    let t = parse(
        "GPU0 is the one with the fan noise\n\
         root@node:~# nvidia-smi topo -m\n\
         \tGPU0\tGPU1\tCPU Affinity\n\
         GPU0\t X \tPHB\t0-3\n\
         GPU1\tPHB\t X \t0-3\n",
    )
    .unwrap();
    assert_eq!(labels(&t), vec![vec!["X", "PHB"], vec!["PHB", "X"]]);
}

#[test]
fn cells_are_case_insensitive() {
    let t =
        parse("\tGPU0\tGPU1\tGPU2\nGPU0\t x \tnv4\tsys\nGPU1\tNv4\tX\tSys\nGPU2\tSYS\tsYs\tx\n")
            .unwrap();
    assert_eq!(labels(&t)[0], vec!["X", "NV4", "SYS"]);
}

#[test]
fn unknown_trailing_columns_are_read_and_ignored() {
    let t = parse(
        "\tGPU0\tGPU1\tCPU Affinity\tNUMA Affinity\tGPU NUMA ID\tFabric Clique\n\
         GPU0\t X \tNV18\t0-7\t0\t\tN/A\tabc.1\n\
         GPU1\tNV18\t X \t8-15\t1\t\t9\tabc.1\n",
    )
    .unwrap();
    assert_eq!(t.gpus[1].cpu_affinity, cpus("8-15"));
    assert_eq!(t.gpus[1].numa_node, Some(1));
    assert_eq!(t.gpus[1].gpu_numa_id, Some(9));
}

#[test]
fn trailing_columns_in_any_order() {
    let t = parse(
        "\tGPU0\tGPU1\tNUMA Affinity\tCPU Affinity\n\
         GPU0\t X \tNODE\t1\t8-15\n\
         GPU1\tNODE\t X \tN/A\tN/A\n",
    )
    .unwrap();
    assert_eq!(
        (t.gpus[0].numa_node, t.gpus[0].cpu_affinity.clone()),
        (Some(1), cpus("8-15"))
    );
    assert_eq!(
        (t.gpus[1].numa_node, t.gpus[1].cpu_affinity.clone()),
        (None, None)
    );
}

#[test]
fn numa_affinity_naming_several_nodes_is_a_gap() {
    let t = parse("\tGPU0\tCPU Affinity\tNUMA Affinity\nGPU0\t X \t0-15\t0-1\n").unwrap();
    assert_eq!(t.gpus[0].numa_node, None);
    assert!(has_gap(&t, "gpu GPU0 numa affinity"), "{:?}", t.gaps);
}

#[test]
fn single_gpu_matrix() {
    let t = parse("\tGPU0\tCPU Affinity\tNUMA Affinity\tGPU NUMA ID\nGPU0\t X \t0-71\t0\t\t1\n")
        .unwrap();
    assert_eq!(labels(&t), vec![vec!["X"]]);
    assert_eq!(t.gpus[0].gpu_numa_id, Some(1));
}

#[test]
fn nic_rows_may_be_missing_or_carry_values() {
    // A copy cut after the GPU rows: GPU-NIC classes come from the GPU rows.
    let t = parse("\tGPU0\tGPU1\tNIC0\tNIC1\nGPU0\t X \tSYS\tPIX\tSYS\nGPU1\tSYS\t X \tSYS\tPIX\n")
        .unwrap();
    assert_eq!(kinds(&t, &gpu(1), &nic("NIC1")), pcie(PathClass::Pix));
    assert!(kinds(&t, &nic("NIC0"), &nic("NIC1")).is_empty());
    // NIC rows with (ignored) affinity values.
    let t = parse(
        "\tGPU0\tNIC0\tCPU Affinity\tNUMA Affinity\n\
         GPU0\t X \tPXB\t0-7\t0\n\
         NIC0\tPXB\t X \t0-7\t0\n",
    )
    .unwrap();
    assert_eq!(kinds(&t, &gpu(0), &nic("NIC0")), pcie(PathClass::Pxb));
}

#[test]
fn nic_legend_cut_off_midway() {
    let t = parse(
        "\tGPU0\tNIC0\tNIC1\nGPU0\t X \tPIX\tSYS\n\nLegend:\n\n  X    = Self\n\nNIC Legend:\n\n  NIC0: mlx5_0\n",
    )
    .unwrap();
    assert_eq!(t.nics[0].name.as_deref(), Some("mlx5_0"));
    assert_eq!(t.nics[1].name, None);
    assert!(has_gap(&t, "nic NIC1 name") && !has_gap(&t, "nic NIC0 name"));
}

#[test]
fn matrix_ends_at_legend_without_blank_line() {
    let t =
        parse("\tGPU0\tGPU1\nGPU0\t X \tNV1\nGPU1\tNV1\t X \nLegend:\n  X    = Self\n").unwrap();
    assert_eq!(t.gpus.len(), 2);
}

#[test]
fn errors_name_path_line_row_column_and_expectation() {
    let text = "\tGPU0\tGPU1\nGPU0\t X \tNV2\nGPU1\tNV2\tPCI\n";
    let e = parse(text).unwrap_err();
    let shown = e.to_string();
    assert!(
        shown.starts_with("inline.txt:3: row GPU1, column GPU1: "),
        "{shown}"
    );
    assert!(
        shown.contains("expected X, NV<n>, PIX, PXB, PHB, NODE or SYS"),
        "{shown}"
    );
    // Line numbers count the lines a preamble and CRLF endings occupy.
    let (line, _) = err_line(&format!(
        "$ nvidia-smi topo -m\r\n\r\n{}",
        text.replace('\n', "\r\n")
    ));
    assert_eq!(line, 5);
}

#[test]
fn implausible_numbers_are_errors_not_panics() {
    let (line, msg) = err_line("\tGPU0\tGPU1\nGPU0\t X \tNV99999999999\nGPU1\tNV1\t X \n");
    assert_eq!(line, 2, "{msg}");
    let (line, msg) = err_line("\tGPU0\tGPU99999999999\nGPU0\t X \tSYS\n");
    assert_eq!(line, 1, "{msg}");
    let (line, msg) = err_line("\tGPU0\tCPU Affinity\nGPU0\t X \t0-4000000000\n");
    assert_eq!(line, 2, "{msg}");
    assert!(msg.contains("column CPU Affinity"), "{msg}");
}

// === broken inputs ===

/// Every file under `fixtures/topo-bad/`, the line its error must name, and a piece of
/// the message.
const BAD: &[(&str, usize, &str)] = &[
    ("empty.txt", 1, "no `nvidia-smi topo -m` header row"),
    ("no-header.txt", 1, "no `nvidia-smi topo -m` header row"),
    (
        "bad-cell-nv.txt",
        5,
        "row GPU2, column GPU3: \"NV\" is not an NVLink count",
    ),
    (
        "bad-cell-nvx.txt",
        3,
        "row GPU1, column GPU0: \"NVx\" is not an NVLink count",
    ),
    (
        "bad-cell-foo.txt",
        5,
        "row GPU3, column GPU1: \"FOO\" is not a topo cell",
    ),
    (
        "bad-cell-nv0.txt",
        2,
        "row GPU0, column GPU1: \"NV0\": an NVLink count must be at least 1",
    ),
    ("ragged-row.txt", 4, "row GPU2 has 6 values; expected 7"),
    (
        "asymmetric.txt",
        3,
        "asymmetric matrix: GPU0 to GPU1 is NV2 (line 2) but GPU1 to GPU0 is SYS (line 3)",
    ),
    (
        "x-off-diagonal.txt",
        2,
        "row GPU0, column GPU2: X (self) may only appear on the diagonal",
    ),
    (
        "diagonal-not-x.txt",
        4,
        "row GPU2, column GPU2: \"SYS\" on the diagonal; expected X",
    ),
    ("header-only.txt", 1, "without a row for GPU0"),
    (
        "legend-only.txt",
        2,
        "header row (GPU0 GPU1 ... CPU Affinity ...) found before the legend",
    ),
    (
        "binary-garbage.bin",
        1,
        "no `nvidia-smi topo -m` header row",
    ),
    ("truncated-gpu-rows.txt", 4, "without a row for GPU2"),
    ("rows-without-header.txt", 2, "found before this matrix row"),
    (
        "unknown-row-label.txt",
        5,
        "row GPU5 is not a column of the header at line 1",
    ),
    (
        "duplicate-column.txt",
        1,
        "column GPU1 appears twice in the header",
    ),
    (
        "duplicate-row.txt",
        6,
        "row GPU1 appears twice (first at line 3)",
    ),
    (
        "nvlink-to-nic.txt",
        2,
        "row GPU0, column NIC0: \"NV2\": NV<n> joins two GPUs",
    ),
    (
        "bad-cpu-affinity.txt",
        3,
        "row GPU1, column CPU Affinity: invalid CPU list",
    ),
    (
        "bad-numa-affinity.txt",
        5,
        "row GPU3, column NUMA Affinity: \"zero\" is not a NUMA node",
    ),
    (
        "p2p-matrix.txt",
        2,
        "row GPU0, column GPU1: \"OK\" is not a topo cell",
    ),
];

#[test]
fn broken_inputs_fail_with_their_line() {
    let dir = linkwise_testkit::fixtures().join("topo-bad");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = BAD.iter().map(|(n, ..)| n.to_string()).collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "every file in fixtures/topo-bad is listed in BAD"
    );
    for (name, want_line, want_msg) in BAD {
        let path = bad_fixture(name);
        match topotext::parse(&read(&path), &path) {
            Err(Error::TopoText {
                line,
                message,
                path: p,
            }) => {
                assert_eq!(line, *want_line, "{name}: {message}");
                assert!(
                    message.contains(want_msg),
                    "{name}: {message:?} lacks {want_msg:?}"
                );
                assert_eq!(p, path);
            }
            other => panic!("{name}: expected a TopoText error, got {other:?}"),
        }
        // Through the source too (which decodes non-UTF-8 bytes lossily).
        assert!(
            matches!(
                TopoTextSource::new(&path).discover(),
                Err(Error::TopoText { .. })
            ),
            "{name}"
        );
    }
}

// === properties ===

/// Words and separators that topo text is made of, for the token-soup property.
const TOKENS: &[&str] = &[
    "GPU0",
    "GPU1",
    "GPU2",
    "GPU12",
    "GPU",
    "NIC0",
    "NIC1",
    "mlx5_0",
    " X ",
    "X",
    "x",
    "NV",
    "NV2",
    "NV18",
    "NVx",
    "NV0",
    "SYS",
    "PIX",
    "PXB",
    "PHB",
    "NODE",
    "SOC",
    "NET",
    "FOO",
    "\t",
    "\t\t",
    "  ",
    " ",
    "\n",
    "\r\n",
    "\r",
    "CPU Affinity",
    "NUMA Affinity",
    "GPU NUMA ID",
    "CPU",
    "Affinity",
    "N/A",
    "0-47,96-143",
    "6,14,22,30",
    "3-1",
    "0",
    "1",
    "4294967296",
    "GPU99999999999",
    "NV4294967296",
    "Legend:",
    "NIC Legend:",
    "NIC0: mlx5_0",
    "NIC7:",
    ":",
    "é",
    "\u{feff}",
    "\0",
    "[TRUNCATED]",
];

/// Applies whatever the proptest engine asks of a topology: it must validate and give a
/// symmetric matrix with `X` on the diagonal.
fn check_ok(t: &Topology) -> Result<(), TestCaseError> {
    prop_assert!(t.validate().is_ok());
    let l = labels(t);
    for (i, row) in l.iter().enumerate() {
        prop_assert_eq!(row[i].as_str(), "X");
        for (j, c) in row.iter().enumerate() {
            prop_assert_eq!(c, &l[j][i]);
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Mutation {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    ReplaceWord(usize, usize, &'static str),
    TabsToSpaces(usize, usize),
    SpacesToTab(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::DeleteLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (any::<usize>(), any::<usize>(), prop::sample::select(TOKENS))
            .prop_map(|(l, w, t)| Mutation::ReplaceWord(l, w, t)),
        (any::<usize>(), 1usize..9).prop_map(|(l, n)| Mutation::TabsToSpaces(l, n)),
        any::<usize>().prop_map(Mutation::SpacesToTab),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(text: &str, muts: &[Mutation]) -> String {
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    let mut cut: Option<usize> = None;
    for m in muts {
        let n = lines.len().max(1);
        match m {
            Mutation::DeleteLine(i) if !lines.is_empty() => {
                lines.remove(i % n);
            }
            Mutation::DuplicateLine(i) if !lines.is_empty() => {
                let l = lines[i % n].clone();
                lines.insert(i % n, l);
            }
            Mutation::SwapLines(a, b) if !lines.is_empty() => lines.swap(a % n, b % n),
            Mutation::ReplaceWord(i, w, tok) if !lines.is_empty() => {
                let line = &lines[i % n];
                let spans: Vec<(usize, usize)> = word_spans(line);
                if !spans.is_empty() {
                    let (s, e) = spans[w % spans.len()];
                    lines[i % n] = format!("{}{}{}", &line[..s], tok, &line[e..]);
                }
            }
            Mutation::TabsToSpaces(i, k) if !lines.is_empty() => {
                lines[i % n] = lines[i % n].replace('\t', &" ".repeat(*k));
            }
            Mutation::SpacesToTab(i) if !lines.is_empty() => {
                lines[i % n] = lines[i % n].replace("  ", "\t");
            }
            Mutation::Truncate(at) => cut = Some(*at),
            _ => {}
        }
    }
    let mut out = lines.join("\n");
    if let Some(at) = cut {
        let mut at = at % (out.len() + 1);
        while !out.is_char_boundary(at) {
            at -= 1;
        }
        out.truncate(at);
    }
    out
}

fn word_spans(line: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, line.len()));
    }
    spans
}

/// A whitespace-only change to one line: the run between words `w` and `w+1`, or the
/// line's start or end, becomes `sep`.
fn respace(line: &str, w: usize, sep: &str) -> String {
    let spans = word_spans(line);
    if spans.is_empty() {
        return line.to_string();
    }
    let k = w % (spans.len() + 1);
    let words: Vec<&str> = spans.iter().map(|&(s, e)| &line[s..e]).collect();
    let lead = &line[..spans[0].0];
    let tail = &line[spans[spans.len() - 1].1..];
    let mut out = String::new();
    out.push_str(if k == 0 { sep } else { lead });
    for (i, word) in words.iter().enumerate() {
        if i > 0 {
            out.push_str(if i == k {
                sep
            } else {
                &line[spans[i - 1].1..spans[i].0]
            });
        }
        out.push_str(word);
    }
    out.push_str(if k == spans.len() { sep } else { tail });
    out
}

/// One generated `topo -m` matrix.
#[derive(Debug, Clone)]
struct Spec {
    gpus: usize,
    nics: usize,
    /// Cell of every ordered pair, symmetric, `X` on the diagonal.
    cells: Vec<Vec<String>>,
    cpus: Vec<Option<CpuSet>>,
    numa: Vec<Option<u32>>,
    gpu_numa: Vec<Option<u32>>,
    numa_col: bool,
    gpu_numa_col: bool,
    leading_tab: bool,
    preamble: bool,
}

/// Whitespace runs for the respacing property.
const SEPARATORS: &[&str] = &[" ", "  ", "\t", "\t\t", " \t ", "        "];

const GPU_CELLS: &[&str] = &[
    "NV1", "NV2", "NV3", "NV4", "NV5", "NV6", "NV7", "NV8", "NV9", "NV10", "NV11", "NV12", "NV13",
    "NV14", "NV15", "NV16", "NV17", "NV18", "PIX", "PXB", "PHB", "NODE", "SYS",
];

fn spec() -> impl Strategy<Value = Spec> {
    (1usize..=12, 0usize..=3).prop_flat_map(|(g, k)| {
        let n = g + k;
        (
            prop::collection::vec(0..GPU_CELLS.len(), n * n),
            prop::collection::vec(prop::option::of(prop::collection::vec(0u32..256, 1..12)), g),
            prop::collection::vec(prop::option::of(0u32..16), g),
            prop::collection::vec(prop::option::of(0u32..64), g),
            any::<(bool, bool, bool, bool)>(),
        )
            .prop_map(
                move |(
                    picks,
                    cpus,
                    numa,
                    gpu_numa,
                    (numa_col, gpu_numa_col, leading_tab, preamble),
                )| {
                    let mut cells = vec![vec!["X".to_string(); n]; n];
                    for i in 0..n {
                        for j in (i + 1)..n {
                            let p = picks[i * n + j];
                            // Pairs with a NIC take PCIe classes only.
                            let c = if i < g && j < g {
                                GPU_CELLS[p]
                            } else {
                                GPU_CELLS[18 + p % 5]
                            };
                            cells[i][j] = c.to_string();
                            cells[j][i] = c.to_string();
                        }
                    }
                    Spec {
                        gpus: g,
                        nics: k,
                        cells,
                        cpus: cpus.into_iter().map(|c| c.map(CpuSet::from_cpus)).collect(),
                        numa: if numa_col { numa } else { vec![None; g] },
                        gpu_numa: if gpu_numa_col {
                            gpu_numa
                        } else {
                            vec![None; g]
                        },
                        numa_col,
                        gpu_numa_col,
                        leading_tab,
                        preamble,
                    }
                },
            )
    })
}

/// Renders the spec as raw nvidia-smi does: TABs, ` X `, a padding TAB before the last
/// trailing value, NIC rows ending in one TAB per trailing column.
fn render_tabs(s: &Spec) -> String {
    let names: Vec<String> = (0..s.gpus)
        .map(|i| format!("GPU{i}"))
        .chain((0..s.nics).map(|i| format!("NIC{i}")))
        .collect();
    let mut trailing = vec!["CPU Affinity"];
    if s.numa_col {
        trailing.push("NUMA Affinity");
    }
    if s.gpu_numa_col {
        trailing.push("GPU NUMA ID");
    }
    let na = |v: Option<String>| v.unwrap_or_else(|| "N/A".to_string());
    let mut out = String::new();
    if s.preamble {
        out.push_str("$ nvidia-smi topo -m\n");
    }
    if s.leading_tab {
        out.push('\t');
    }
    out.push_str(
        &names
            .iter()
            .map(String::as_str)
            .chain(trailing.iter().copied())
            .collect::<Vec<_>>()
            .join("\t"),
    );
    out.push('\n');
    for (i, name) in names.iter().enumerate() {
        out.push_str(name);
        for c in &s.cells[i] {
            out.push('\t');
            out.push_str(if c == "X" { " X " } else { c });
        }
        if i < s.gpus {
            let mut vals = vec![na(s.cpus[i].as_ref().map(ToString::to_string))];
            if s.numa_col {
                vals.push(na(s.numa[i].map(|n| n.to_string())));
            }
            if s.gpu_numa_col {
                vals.push(na(s.gpu_numa[i].map(|n| n.to_string())));
            }
            let last = vals.len() - 1;
            for (k, v) in vals.iter().enumerate() {
                out.push_str(if k == last && last > 0 { "\t\t" } else { "\t" });
                out.push_str(v);
            }
        } else {
            out.push_str(&"\t".repeat(trailing.len()));
        }
        out.push('\n');
    }
    out.push_str("\nLegend:\n\n  X    = Self\n");
    out
}

fn check_spec(s: &Spec, text: &str, form: &str) -> Result<(), TestCaseError> {
    let t = match topotext::parse(text, Path::new(form)) {
        Ok(t) => t,
        Err(e) => return Err(TestCaseError::fail(format!("{form}: {e}\n{text}"))),
    };
    let want: Vec<Vec<String>> = s
        .cells
        .iter()
        .take(s.gpus)
        .map(|r| r[..s.gpus].to_vec())
        .collect();
    prop_assert_eq!(labels(&t), want, "{}", form);
    for (i, g) in t.gpus.iter().enumerate() {
        prop_assert_eq!(&g.cpu_affinity, &s.cpus[i], "{} GPU{}", form, i);
        prop_assert_eq!(g.numa_node, s.numa[i], "{} GPU{}", form, i);
        prop_assert_eq!(g.gpu_numa_id, s.gpu_numa[i], "{} GPU{}", form, i);
    }
    prop_assert_eq!(t.nics.len(), s.nics);
    for i in 0..s.gpus {
        for k in 0..s.nics {
            let cell = &s.cells[i][s.gpus + k];
            let Some(class) = PathClass::parse(cell) else {
                return Err(TestCaseError::fail(format!(
                    "generated {cell} for a NIC pair"
                )));
            };
            prop_assert_eq!(kinds(&t, &gpu(i), &nic(&format!("NIC{k}"))), pcie(class));
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_text(s in any::<String>()) {
        if let Ok(t) = parse(&s) {
            check_ok(&t)?;
        }
    }

    #[test]
    fn never_panics_on_token_soup(toks in prop::collection::vec(prop::sample::select(TOKENS), 0..400)) {
        if let Ok(t) = parse(&toks.concat()) {
            check_ok(&t)?;
        }
    }

    #[test]
    fn never_panics_on_mutated_samples(
        which in 0..FIXTURES.len(),
        muts in prop::collection::vec(mutation(), 1..8),
    ) {
        let text = apply(&read(&fixture(FIXTURES[which])), &muts);
        if let Ok(t) = parse(&text) {
            check_ok(&t)?;
        }
    }

    #[test]
    fn whitespace_changes_do_not_change_the_parse(
        which in 0..FIXTURES.len(),
        edits in prop::collection::vec(
            (any::<usize>(), any::<usize>(), prop::sample::select(SEPARATORS)),
            1..24,
        ),
    ) {
        let original = read(&fixture(FIXTURES[which]));
        let base = parse(&original).unwrap();
        let mut lines: Vec<String> = original.split('\n').map(str::to_string).collect();
        for (l, w, sep) in &edits {
            let n = lines.len();
            let i = l % n;
            lines[i] = respace(&lines[i], *w, sep);
        }
        let edited = lines.join("\n");
        match parse(&edited) {
            Ok(t) => prop_assert_eq!(t, base),
            Err(e) => return Err(TestCaseError::fail(format!("{e}\n{edited}"))),
        }
    }

    #[test]
    fn generated_matrices_round_trip(s in spec()) {
        let tabs = render_tabs(&s);
        check_spec(&s, &tabs, "tabs")?;
        let spaces = map_lines(&tabs, |l| expand_tabs(l).trim_end().to_string());
        check_spec(&s, &spaces, "spaces")?;
        let collapsed = map_lines(&tabs, |l| l.split_whitespace().collect::<Vec<_>>().join(" "));
        check_spec(&s, &collapsed, "collapsed")?;
    }
}
