//! Built-in profiles: each discovers, validates against the JSON Schema, round-trips
//! exactly through JSON and YAML, and has the fabric its description promises.

use linkwise_core::profiles::{self, PROFILES};
use linkwise_core::snapshot::{self, Format};
use linkwise_core::{Arch, C2cFlavor, Health, LinkKind, LinkState, Topology};
use linkwise_discovery::ProfileSource;

fn labels(t: &Topology) -> Vec<Vec<String>> {
    let m = t.pair_matrix();
    (0..m.len())
        .map(|i| (0..m.len()).map(|j| m.cell(i, j).label()).collect())
        .collect()
}

fn schema() -> jsonschema::Validator {
    let text =
        std::fs::read_to_string(linkwise_testkit::repo_root().join("docs/snapshot.schema.json"))
            .unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

#[test]
fn every_profile_round_trips_exactly_and_validates_against_the_schema() {
    let validator = schema();
    for (name, _) in PROFILES {
        let t = profiles::get(name).unwrap();
        for format in [Format::Json, Format::Yaml] {
            let text = snapshot::to_string(&t, format).unwrap();
            let back =
                snapshot::from_str(&text).unwrap_or_else(|e| panic!("{name} {format:?}: {e}"));
            assert_eq!(back, t, "{name} {format:?}: snapshot in != snapshot out");
            let again = snapshot::to_string(&back, format).unwrap();
            assert_eq!(again, text, "{name} {format:?}: second write differs");
        }
        let json: serde_json::Value =
            serde_json::from_str(&snapshot::to_string(&t, Format::Json).unwrap()).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&json)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{name} does not validate: {errors:#?}");
    }
}

#[test]
fn the_schema_rejects_what_the_reader_rejects() {
    let validator = schema();
    let t = profiles::get("dgx-h100").unwrap();
    let good: serde_json::Value =
        serde_json::from_str(&snapshot::to_string(&t, Format::Json).unwrap()).unwrap();
    let mut unknown_field = good.clone();
    unknown_field["gpus"][0]["colour"] = "green".into();
    let mut bad_class = good.clone();
    let pcie = bad_class["links"]
        .as_array()
        .unwrap()
        .iter()
        .position(|l| l["kind"]["type"] == "pcie")
        .unwrap();
    bad_class["links"][pcie]["kind"]["class"] = "QPI".into();
    let mut bad_version = good.clone();
    bad_version["schemaVersion"] = 2.into();
    for (what, v) in [
        ("unknown field", unknown_field),
        ("bad class", bad_class),
        ("bad version", bad_version),
    ] {
        assert!(!validator.is_valid(&v), "schema accepted {what}");
        assert!(
            snapshot::from_str(&v.to_string()).is_err(),
            "reader accepted {what}"
        );
    }
}

#[test]
fn dgx_h100_is_all_to_all_nv18_through_four_switches() {
    let t = profiles::get("dgx-h100").unwrap();
    assert_eq!(t.gpus.len(), 8);
    assert_eq!(t.switches.len(), 4);
    assert_eq!(t.hosts[0].numa_nodes.len(), 2);
    for (i, row) in labels(&t).iter().enumerate() {
        for (j, cell) in row.iter().enumerate() {
            assert_eq!(cell, if i == j { "X" } else { "NV18" }, "GPU{i}-GPU{j}");
        }
    }
    assert_eq!(t.islands().len(), 1);
    assert_eq!(t.pair_matrix().bandwidth_mbps(0, 7), 450_000);
    assert_eq!(t.gpus[5].numa_node, Some(1));
}

#[test]
fn dgx1_v100_is_the_hybrid_cube_mesh() {
    let t = profiles::get("dgx1-v100").unwrap();
    let expected = [
        ["X", "NV1", "NV1", "NV2", "NV2", "SYS", "SYS", "SYS"],
        ["NV1", "X", "NV2", "NV1", "SYS", "NV2", "SYS", "SYS"],
        ["NV1", "NV2", "X", "NV2", "SYS", "SYS", "NV1", "SYS"],
        ["NV2", "NV1", "NV2", "X", "SYS", "SYS", "SYS", "NV1"],
        ["NV2", "SYS", "SYS", "SYS", "X", "NV1", "NV1", "NV2"],
        ["SYS", "NV2", "SYS", "SYS", "NV1", "X", "NV2", "NV1"],
        ["SYS", "SYS", "NV1", "SYS", "NV1", "NV2", "X", "NV2"],
        ["SYS", "SYS", "SYS", "NV1", "NV2", "NV1", "NV2", "X"],
    ];
    assert_eq!(
        labels(&t),
        expected.map(|r| r.map(String::from).to_vec()).to_vec()
    );
    // Six NVLink2 lanes per GPU.
    let m = t.pair_matrix();
    for i in 0..8 {
        assert_eq!(
            (0..8).map(|j| m.cell(i, j).nvlink_lanes()).sum::<u32>(),
            6,
            "GPU{i}"
        );
    }
}

#[test]
fn pcie_8gpu_has_no_nvlink_and_every_pcie_class() {
    let t = profiles::get("pcie-8gpu").unwrap();
    let l = labels(&t);
    assert!(l.iter().flatten().all(|c| !c.starts_with("NV")));
    assert_eq!(l[0][1], "PIX");
    assert_eq!(l[0][2], "PXB");
    assert_eq!(l[4][6], "NODE");
    assert_eq!(l[0][4], "SYS");
    assert_eq!(t.islands().len(), 8, "every GPU is an island of one");
}

#[test]
fn bridge_pairs_are_two_islands_of_two() {
    let t = profiles::get("nvlink-bridge-pairs").unwrap();
    let islands = t.islands();
    assert_eq!(islands.len(), 2);
    assert!(
        islands
            .iter()
            .all(|i| i.gpus.len() == 2 && i.min_lanes == 4)
    );
    assert_eq!(labels(&t)[0][2], "SYS");
}

#[test]
fn riscv_fusion_has_fusion_host_links_and_unknown_numa() {
    let t = profiles::get("riscv-fusion").unwrap();
    assert_eq!(t.hosts[0].arch, Some(Arch::Riscv64));
    let fusion = t
        .links
        .iter()
        .filter(|l| {
            matches!(
                l.kind,
                LinkKind::C2c {
                    flavor: C2cFlavor::NvlinkFusion,
                    ..
                }
            )
        })
        .count();
    assert_eq!(fusion, 4);
    assert!(
        t.gpus
            .iter()
            .all(|g| g.numa_node.is_none() && g.iommu_group.is_none())
    );
    let l = labels(&t);
    assert!((0..4).all(|i| (0..4).all(|j| i == j || l[i][j] == "NV6")));
    assert!(t.gaps.iter().any(|g| g.why.contains("numa-node-id")));
}

#[test]
fn nvl72_is_one_domain_of_72_gpus_over_18_hosts() {
    let t = profiles::get("nvl72").unwrap();
    assert_eq!(t.gpus.len(), 72);
    assert_eq!(t.hosts.len(), 18);
    assert!(
        t.switches.iter().all(|s| s.host.is_none()),
        "switch trays are not enumerated by compute hosts"
    );
    let islands = t.islands();
    assert_eq!(islands.len(), 1);
    assert_eq!(islands[0].hosts.len(), 18);
    assert_eq!(islands[0].min_lanes, 18);
    let domains = t.domains();
    assert_eq!(domains.len(), 1);
    assert!(
        domains[0].id.ends_with(".1"),
        "clique id string: {}",
        domains[0].id
    );
    let m = t.pair_matrix();
    assert_eq!(m.cell(0, 71).label(), "NV18");
    assert_eq!(m.bandwidth_mbps(0, 71), 900_000);
}

#[test]
fn degraded_has_an_unhealthy_gpu_and_a_link_down() {
    let t = profiles::get("degraded").unwrap();
    assert!(matches!(&t.gpus[3].health, Health::Unhealthy { reason } if reason.contains("79")));
    assert_eq!(
        t.links
            .iter()
            .filter(|l| l.state == LinkState::Down)
            .count(),
        1
    );
    let l = labels(&t);
    assert_eq!(l[5][0], "NV17", "GPU5 lost one of its 18 lanes");
    assert_eq!(l[0][1], "NV18");
}

#[test]
fn unknown_profile_lists_the_known_ones() {
    let e = ProfileSource::new("dgx-h200").unwrap_err().to_string();
    assert!(e.contains("dgx-h100") && e.contains("nvl72"), "{e}");
}

#[test]
fn node_annotation_round_trips_for_every_host_of_every_profile() {
    use linkwise_core::annotation::NodeFabric;
    for (name, _) in PROFILES {
        let t = profiles::get(name).unwrap();
        for h in &t.hosts {
            let used: std::collections::BTreeSet<String> = t
                .gpus
                .iter()
                .filter(|g| g.host == h.name)
                .take(1)
                .map(|g| g.id.0.clone())
                .collect();
            let sick = t
                .gpus
                .iter()
                .filter(|g| !g.health.is_healthy())
                .map(|g| g.id.clone())
                .collect();
            let f = NodeFabric::new(&t, &h.name, "nvidia.com/gpu", &used, &sick);
            let back = NodeFabric::parse(&f.to_value()).unwrap();
            assert_eq!(back, f, "{name}/{}", h.name);
            assert_eq!(
                f.gpus.len(),
                t.gpus.iter().filter(|g| g.host == h.name).count()
            );
            assert!(!f.free.contains(&0), "{name}: the used GPU is not free");
            assert!(f.to_value().len() < 4096, "{name}: compact");
        }
    }
    let d = profiles::get("degraded").unwrap();
    let f = NodeFabric::new(
        &d,
        &d.hosts[0].name,
        "nvidia.com/gpu",
        &Default::default(),
        &[d.gpus[3].id.clone()].into(),
    );
    assert_eq!(f.unhealthy, vec![3]);
    assert!(!f.free.contains(&3));
    assert_eq!(f.lanes[5][0], 17, "GPU5's down link shows");
    let n = profiles::get("nvl72").unwrap();
    let f = NodeFabric::new(
        &n,
        "nvl72-tray02",
        "nvidia.com/gpu",
        &Default::default(),
        &Default::default(),
    );
    assert!(f.clique.as_deref().is_some_and(|c| c.ends_with(".1")));
}
