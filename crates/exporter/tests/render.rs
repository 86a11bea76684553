//! The renderer against every built-in profile with synthetic readings, checked by a small
//! OpenMetrics parser; and `docs/metrics.md` against the catalogue.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use linkwise_core::profiles::PROFILES;
use linkwise_core::{Endpoint, LinkKind, Topology};
use linkwise_exporter::catalogue::{ATTRIBUTION_LABELS, FAMILIES, Family, Kind};
use linkwise_exporter::docs::metrics_markdown;
use linkwise_exporter::render::render;
use linkwise_exporter::{
    Attribution, CONTENT_TYPE, Collect, Renderer, Snapshot, SourceHealth, Synthetic, nvlink_ports,
};

// === a small OpenMetrics text parser ===

#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

impl Sample {
    fn label(&self, k: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    fn key(&self) -> String {
        format!("{}{:?}", self.name, self.labels)
    }
}

#[derive(Debug, Default)]
struct Exposition {
    /// `# TYPE` lines in order: (name, type).
    types: Vec<(String, String)>,
    /// `# UNIT` lines: name → unit.
    units: BTreeMap<String, String>,
    /// `# HELP` lines: name → help.
    helps: BTreeMap<String, String>,
    /// Samples with the family (`# TYPE` name) they appeared under.
    samples: Vec<(String, Sample)>,
}

impl Exposition {
    fn of(&self, sample_name: &str) -> Vec<&Sample> {
        self.samples
            .iter()
            .map(|(_, s)| s)
            .filter(|s| s.name == sample_name)
            .collect()
    }
}

fn parse(bytes: &[u8]) -> Exposition {
    let text = std::str::from_utf8(bytes).expect("UTF-8");
    assert!(text.ends_with("# EOF\n"), "must end in # EOF");
    let body = &text[..text.len() - "# EOF\n".len()];
    assert!(!body.contains("# EOF"), "one # EOF, at the end");
    let mut e = Exposition::default();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let (kw, rest) = rest.split_once(' ').expect(line);
            let (name, arg) = rest.split_once(' ').expect(line);
            match kw {
                "TYPE" => e.types.push((name.to_string(), arg.to_string())),
                "UNIT" => {
                    e.units.insert(name.to_string(), arg.to_string());
                }
                "HELP" => {
                    e.helps.insert(name.to_string(), arg.to_string());
                }
                _ => panic!("unknown comment {line:?}"),
            }
            continue;
        }
        let family = e
            .types
            .last()
            .expect("a sample before any # TYPE")
            .0
            .clone();
        e.samples.push((family, parse_sample(line)));
    }
    e
}

fn parse_sample(line: &str) -> Sample {
    let name_end = line.find(['{', ' ']).expect(line);
    let name = line[..name_end].to_string();
    let mut labels = Vec::new();
    let mut rest = &line[name_end..];
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices().peekable();
        let mut end = None;
        loop {
            // key
            let mut key = String::new();
            for (i, c) in chars.by_ref() {
                if c == '}' && key.is_empty() {
                    end = Some(i + 1);
                    break;
                }
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            if end.is_some() {
                break;
            }
            assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
            let mut value = String::new();
            loop {
                let (_, c) = chars.next().expect(line);
                match c {
                    '\\' => match chars.next().expect(line).1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    '"' => break,
                    c => value.push(c),
                }
            }
            labels.push((key, value));
            match chars.next().expect(line) {
                (_, ',') => continue,
                (i, '}') => {
                    end = Some(i + 1);
                    break;
                }
                (_, c) => panic!("unexpected {c:?} in {line}"),
            }
        }
        rest = &r[end.expect(line)..];
    }
    let value = rest.strip_prefix(' ').expect(line);
    assert!(!value.contains(' '), "no timestamps or exemplars: {line}");
    Sample {
        name,
        labels,
        value: value.parse().expect(line),
    }
}

// === snapshots ===

fn topology(profile: &str) -> Topology {
    linkwise_core::profiles::get(profile).unwrap()
}

fn snapshot_of(topo: Topology, source: &mut Synthetic, ticks: usize) -> Snapshot {
    let mut readings = Default::default();
    for _ in 0..ticks {
        readings = source.collect().unwrap();
    }
    let n = topo.gpus.len();
    Snapshot {
        ports: nvlink_ports(&topo),
        hostname: "node-1".to_string(),
        source: topo.source.clone(),
        synthetic: source.synthetic(),
        readings,
        healthy: vec![true; n],
        topo: Arc::new(topo),
        ..Snapshot::default()
    }
}

fn snapshot(profile: &str) -> (Snapshot, Synthetic) {
    let topo = topology(profile);
    let mut synth = Synthetic::new(&topo);
    let s = snapshot_of(topo, &mut synth, 1);
    (s, synth)
}

/// The NVLink links of `topo`'s GPUs counted from its links directly: each NVLink or
/// NVSwitch link gives each GPU end `lanes` links, a C2C link `lanes` (1 when unknown).
fn nvlink_links_of(topo: &Topology) -> usize {
    let mut n = 0;
    for l in &topo.links {
        let lanes = match l.kind {
            LinkKind::Nvlink { lanes, .. } | LinkKind::NvswitchPort { lanes, .. } => lanes,
            LinkKind::C2c { lanes, .. } => lanes.unwrap_or(1),
            LinkKind::Pcie { .. } => continue,
        };
        for e in [&l.a, &l.b] {
            if matches!(e, Endpoint::Gpu(_)) {
                n += lanes as usize;
            }
        }
    }
    n
}

fn is_snake(s: &str) -> bool {
    !s.is_empty()
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Checks an exposition against the catalogue; returns it for further checks.
fn check(bytes: &[u8]) -> Exposition {
    let e = parse(bytes);
    let names: Vec<&str> = e.types.iter().map(|(n, _)| n.as_str()).collect();
    let expected: Vec<&str> = FAMILIES.iter().map(|f| f.name).collect();
    assert_eq!(
        names, expected,
        "exactly the catalogue's families, in order"
    );
    for (f, (_, ty)) in FAMILIES.iter().zip(&e.types) {
        assert_eq!(ty, f.kind.as_str(), "{}", f.name);
        assert_eq!(
            e.units.get(f.name).map(String::as_str),
            f.unit,
            "# UNIT of {}",
            f.name
        );
        assert_eq!(
            e.helps.get(f.name).map(String::as_str),
            Some(format!("{}.", f.help).as_str()),
            "# HELP of {}",
            f.name
        );
    }
    for (family, s) in &e.samples {
        let f: &Family = FAMILIES.iter().find(|f| f.name == family).unwrap();
        assert_eq!(s.name, f.sample_name(), "sample under # TYPE {family}");
        assert!(s.value.is_finite(), "{s:?}");
        let keys: Vec<&str> = s.labels.iter().map(|(k, _)| k.as_str()).collect();
        assert!(keys.iter().all(|k| is_snake(k)), "{s:?}");
        assert_eq!(&keys[..f.labels.len()], f.labels, "labels of {s:?}");
        let extra = &keys[f.labels.len()..];
        if f.attributed {
            let allowed: Vec<&str> = ATTRIBUTION_LABELS
                .iter()
                .copied()
                .filter(|l| extra.contains(l))
                .collect();
            assert_eq!(extra, allowed, "attribution labels in order: {s:?}");
        } else {
            assert!(extra.is_empty(), "{s:?}");
        }
        assert!(
            s.labels.iter().all(|(_, v)| !v.is_empty()),
            "no empty label values: {s:?}"
        );
        match f.kind {
            Kind::Counter => assert!(s.value >= 0.0, "{s:?}"),
            Kind::Info => assert_eq!(s.value, 1.0, "{s:?}"),
            Kind::Gauge => {}
        }
    }
    let mut seen = BTreeSet::new();
    for (_, s) in &e.samples {
        assert!(seen.insert(s.key()), "duplicate series {s:?}");
    }
    e
}

// === tests ===

#[test]
fn every_profile_renders_the_catalogue() {
    for (name, _) in PROFILES {
        let (s, _) = snapshot(name);
        let out = render(&s);
        let e = check(&out);
        let ports = nvlink_ports(&s.topo).len();
        assert_eq!(ports, nvlink_links_of(&s.topo), "{name}");
        assert_eq!(e.of("linkwise_nvlink_up").len(), ports, "{name}");
        assert_eq!(e.of("linkwise_nvlink_transmit_bytes_total").len(), ports);
        assert_eq!(e.of("linkwise_nvlink_errors_total").len(), 4 * ports);
        let gpus = s.topo.gpus.len();
        for sample in [
            "linkwise_gpu_info",
            "linkwise_gpu_utilization_ratio",
            "linkwise_gpu_memory_used_bytes",
            "linkwise_gpu_memory_total_bytes",
            "linkwise_gpu_temperature_celsius",
            "linkwise_gpu_power_watts",
            "linkwise_gpu_healthy",
            "linkwise_pcie_link_downtrained",
        ] {
            assert_eq!(e.of(sample).len(), gpus, "{name} {sample}");
        }
        assert_eq!(e.of("linkwise_gpu_ecc_errors_total").len(), 2 * gpus);
        assert_eq!(e.of("linkwise_pcie_link_width").len(), 2 * gpus);
        assert_eq!(
            e.of("linkwise_island_gpus").len(),
            s.topo.islands().len(),
            "{name}"
        );
        let island_gpus: f64 = e.of("linkwise_island_gpus").iter().map(|s| s.value).sum();
        assert_eq!(island_gpus, gpus as f64);
        let info = e.of("linkwise_exporter_info");
        assert_eq!(info.len(), 1);
        assert_eq!(info[0].label("synthetic"), Some("true"));
        assert_eq!(info[0].label("version"), Some(env!("CARGO_PKG_VERSION")));
        assert_eq!(info[0].label("hostname"), Some("node-1"));
    }
}

#[test]
fn nvl72_has_1296_switch_links_and_72_c2c_links() {
    let (s, _) = snapshot("nvl72");
    let e = check(&render(&s));
    // Each GB200 has 18 NVLink links to the NVSwitches and one NVLink-C2C link to its
    // Grace CPU (lanes unknown, so counted as one link).
    let expected = nvlink_links_of(&s.topo);
    assert_eq!(expected, 72 * 18 + 72);
    let up = e.of("linkwise_nvlink_up");
    assert_eq!(up.len(), expected);
    assert!(up.iter().all(|s| s.value == 1.0));
    let by_peer_type = |t: &str| {
        up.iter()
            .filter(|s| s.label("peer_type") == Some(t))
            .count()
    };
    assert_eq!(by_peer_type("nvswitch"), 72 * 18);
    assert_eq!(by_peer_type("cpu"), 72);
    assert_eq!(by_peer_type("gpu"), 0);
    let per_gpu: BTreeMap<&str, usize> =
        e.of("linkwise_nvlink_up")
            .iter()
            .fold(BTreeMap::new(), |mut m, s| {
                *m.entry(s.label("uuid").unwrap()).or_default() += 1;
                m
            });
    assert_eq!(per_gpu.len(), 72);
    assert!(per_gpu.values().all(|&n| n == 19));
    // One island, one domain: the fabric clique.
    let islands = e.of("linkwise_island_gpus");
    assert_eq!(islands.len(), 1);
    assert_eq!(islands[0].value, 72.0);
    let domains: BTreeSet<&str> = e
        .of("linkwise_gpu_info")
        .iter()
        .map(|s| s.label("domain").unwrap())
        .collect();
    assert_eq!(domains.len(), 1);
    assert_eq!(islands[0].label("domain"), domains.first().copied());
}

#[test]
fn gpu_and_link_label_values() {
    let (s, _) = snapshot("dgx-h100");
    let e = check(&render(&s));
    let info = e.of("linkwise_gpu_info");
    for (g, sample) in s.topo.gpus.iter().zip(&info) {
        assert_eq!(sample.label("gpu"), Some(g.index.to_string().as_str()));
        let uuid = g.uuid.clone().unwrap_or_else(|| g.id.0.clone());
        assert_eq!(sample.label("uuid"), Some(uuid.as_str()));
        let pci = g
            .pci_bus_id
            .map_or("unknown".to_string(), |a| a.to_string());
        assert_eq!(sample.label("pci_bus_id"), Some(pci.as_str()));
        assert_eq!(sample.label("model"), Some(g.model.as_str()));
        assert_eq!(sample.label("hostname"), Some(g.host.as_str()));
        let driver = g.driver_version.as_deref().unwrap_or("unknown");
        assert_eq!(sample.label("driver"), Some(driver));
        assert_eq!(sample.label("island"), Some("0"));
    }
    let up = e.of("linkwise_nvlink_up");
    for (port, sample) in s.ports.iter().zip(&up) {
        assert_eq!(sample.label("link"), Some(port.link.to_string().as_str()));
        assert_eq!(sample.label("peer_type"), Some(port.peer.kind.as_str()));
        assert_eq!(sample.label("peer"), Some(port.peer.id.as_str()));
    }
    let bw = e.of("linkwise_nvlink_bandwidth_bytes_per_second");
    assert_eq!(
        bw.len(),
        s.ports.iter().filter(|p| p.bandwidth_bps.is_some()).count()
    );
    for (port, sample) in s.ports.iter().zip(&bw) {
        assert_eq!(Some(sample.value), port.bandwidth_bps.map(|b| b as f64));
    }
}

#[test]
fn attribution_labels_only_where_held() {
    let (mut s, _) = snapshot("dgx-h100");
    s.attribution.insert(
        1,
        Attribution {
            namespace: Some("team\"a\\b".to_string()),
            pod: Some("train-0".to_string()),
            container: Some("main".to_string()),
            slurm_job: None,
        },
    );
    s.attribution.insert(
        2,
        Attribution {
            slurm_job: Some("4711,4712".to_string()),
            ..Attribution::default()
        },
    );
    // A position outside the topology is ignored.
    s.attribution.insert(
        99,
        Attribution {
            pod: Some("ghost".to_string()),
            ..Attribution::default()
        },
    );
    let e = check(&render(&s));
    let uuid = |g: usize| {
        let gpu = &s.topo.gpus[g];
        gpu.uuid.clone().unwrap_or_else(|| gpu.id.0.clone())
    };
    let (u1, u2) = (uuid(1), uuid(2));
    let mut attributed_samples = 0;
    for (family, sample) in &e.samples {
        let f = FAMILIES.iter().find(|f| f.name == family).unwrap();
        let held: Vec<(&str, &str)> = sample
            .labels
            .iter()
            .filter(|(k, _)| ATTRIBUTION_LABELS.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let who = sample.label("uuid");
        if f.attributed && who == Some(u1.as_str()) {
            assert_eq!(
                held,
                [
                    ("namespace", "team\"a\\b"),
                    ("pod", "train-0"),
                    ("container", "main")
                ],
                "{sample:?}"
            );
            attributed_samples += 1;
        } else if f.attributed && who == Some(u2.as_str()) {
            assert_eq!(held, [("slurm_job", "4711,4712")], "{sample:?}");
            attributed_samples += 1;
        } else {
            assert!(held.is_empty(), "{sample:?}");
        }
    }
    assert!(attributed_samples >= 2 * 8, "{attributed_samples}");
}

#[test]
fn none_reading_has_no_sample() {
    let (mut s, _) = snapshot("dgx-h100");
    let ports = s.ports.len();
    s.readings.gpus[0].utilization_ratio = None;
    s.readings.gpus[0].ecc_uncorrected = None;
    s.readings.links[0].tx_bytes = None;
    s.readings.links[1].replay_errors = None;
    s.readings.pcie[2].current_width = None;
    s.readings.pcie[3].max_speed_mts = None;
    let e = check(&render(&s));
    let gpus = s.topo.gpus.len();
    let util = e.of("linkwise_gpu_utilization_ratio");
    assert_eq!(util.len(), gpus - 1);
    assert!(util.iter().all(|x| x.label("gpu") != Some("0")));
    assert_eq!(e.of("linkwise_gpu_ecc_errors_total").len(), 2 * gpus - 1);
    assert_eq!(
        e.of("linkwise_nvlink_transmit_bytes_total").len(),
        ports - 1
    );
    assert_eq!(e.of("linkwise_nvlink_receive_bytes_total").len(), ports);
    assert_eq!(e.of("linkwise_nvlink_errors_total").len(), 4 * ports - 1);
    assert_eq!(e.of("linkwise_pcie_link_width").len(), 2 * gpus - 1);
    assert_eq!(
        e.of("linkwise_pcie_link_speed_transfers_per_second").len(),
        2 * gpus - 1
    );
    // Downtrained needs both widths.
    assert_eq!(e.of("linkwise_pcie_link_downtrained").len(), gpus - 1);
}

#[test]
fn renders_are_byte_identical() {
    for profile in ["nvl72", "dgx-h100", "riscv-fusion"] {
        let (s, _) = snapshot(profile);
        let a = render(&s);
        let b = render(&s);
        assert_eq!(a, b, "{profile}");
        let mut r = Renderer::new();
        assert_eq!(r.render(&s), a, "{profile}: cached renderer");
        assert_eq!(r.render(&s), a, "{profile}: cached renderer, second render");
    }
}

#[test]
fn renderer_follows_a_new_topology() {
    let (a, _) = snapshot("dgx-h100");
    let (b, _) = snapshot("nvl72");
    let mut r = Renderer::new();
    assert_eq!(r.render(&a), render(&a));
    assert_eq!(r.render(&b), render(&b));
    assert_eq!(r.render(&a), render(&a));
}

#[test]
fn synthetic_is_deterministic() {
    let topo = topology("nvl72");
    let mut a = Synthetic::new(&topo);
    let mut b = Synthetic::new(&topo);
    for _ in 0..5 {
        assert_eq!(a.collect().unwrap(), b.collect().unwrap());
    }
    assert_eq!(a.tick(), 5);
    assert_eq!(a.ports(), nvlink_ports(&topo).as_slice());
}

#[test]
fn counters_never_decrease_across_ticks() {
    let topo = topology("nvl72");
    let mut synth = Synthetic::new(&topo);
    let mut previous: Option<BTreeMap<String, f64>> = None;
    let mut grew = 0;
    for tick in 1..=12 {
        let readings = synth.collect().unwrap();
        let mut s = snapshot_of(topo.clone(), &mut Synthetic::new(&topo), 0);
        s.readings = readings;
        let e = check(&render(&s));
        let counters: BTreeMap<String, f64> = e
            .samples
            .iter()
            .filter(|(f, _)| {
                FAMILIES
                    .iter()
                    .any(|x| x.name == f && x.kind == Kind::Counter)
            })
            .map(|(_, s)| (s.key(), s.value))
            .collect();
        if let Some(prev) = &previous {
            assert_eq!(prev.len(), counters.len(), "tick {tick}");
            for (k, v) in &counters {
                let before = prev[k];
                assert!(*v >= before, "tick {tick}: {k} went {before} -> {v}");
                if *v > before {
                    grew += 1;
                }
            }
        }
        previous = Some(counters);
    }
    assert!(grew > 0);
    // Errors grow on some ports only, and slowly.
    let r = synth.collect().unwrap();
    let flit: u64 = r.links.iter().filter_map(|l| l.crc_flit_errors).sum();
    assert!(flit > 0 && flit < r.links.len() as u64 * 13 / 4, "{flit}");
    let gauges_in_range = r.gpus.iter().all(|g| {
        let u = g.utilization_ratio.unwrap();
        let t = g.temperature_celsius.unwrap();
        (0.0..=1.0).contains(&u)
            && (20.0..=95.0).contains(&t)
            && g.memory_used_bytes.unwrap() <= g.memory_total_bytes.unwrap()
    });
    assert!(gauges_in_range);
}

#[test]
fn link_down_and_gpu_lost() {
    let topo = topology("dgx-h100");
    let mut synth = Synthetic::new(&topo);
    synth.collect().unwrap();
    synth.set_link_up(5, false);
    synth.set_present(3, false);
    let before = synth.collect().unwrap();
    let after = synth.collect().unwrap();
    assert!(!after.links[5].up);
    assert_eq!(after.links[5].tx_bytes, before.links[5].tx_bytes);
    assert!(after.links[6].tx_bytes > before.links[6].tx_bytes);
    assert!(!after.gpus[3].present);
    assert_eq!(after.gpus[3].utilization_ratio, None);
    let mut s = snapshot_of(topo.clone(), &mut Synthetic::new(&topo), 0);
    s.readings = after;
    let e = check(&render(&s));
    let up = e.of("linkwise_nvlink_up");
    assert_eq!(up.iter().filter(|s| s.value == 0.0).count(), 1);
    assert_eq!(up[5].value, 0.0);
    let gpu3 = &s.topo.gpus[3];
    let uuid3 = gpu3.uuid.clone().unwrap_or_else(|| gpu3.id.0.clone());
    assert!(
        e.of("linkwise_gpu_power_watts")
            .iter()
            .all(|x| x.label("uuid") != Some(uuid3.as_str()))
    );
    // Out of range: ignored.
    synth.set_link_up(1_000_000, false);
    synth.set_present(1_000, false);
}

#[test]
fn downtrained_when_narrower_than_max() {
    let (mut s, _) = snapshot("dgx-h100");
    s.readings.pcie[4].current_width = Some(8);
    s.readings.pcie[4].max_width = Some(16);
    s.readings.pcie[5].current_speed_mts = Some(2_500);
    let e = check(&render(&s));
    let down = e.of("linkwise_pcie_link_downtrained");
    let gpu4 = s.topo.gpus[4].index.to_string();
    for d in &down {
        let expected = if d.label("gpu") == Some(gpu4.as_str()) {
            1.0
        } else {
            0.0
        };
        assert_eq!(d.value, expected, "{d:?}");
    }
    let speed = e.of("linkwise_pcie_link_speed_transfers_per_second");
    let gpu5 = s.topo.gpus[5].index.to_string();
    let slow = speed
        .iter()
        .find(|x| x.label("gpu") == Some(gpu5.as_str()) && x.label("which") == Some("current"))
        .unwrap();
    assert_eq!(slow.value, 2.5e9);
    let width = e.of("linkwise_pcie_link_width");
    let narrow = width
        .iter()
        .find(|x| x.label("gpu") == Some(gpu4.as_str()) && x.label("which") == Some("current"))
        .unwrap();
    assert_eq!(narrow.value, 8.0);
}

#[test]
fn xids_health_events_and_sources() {
    let (mut s, _) = snapshot("dgx-h100");
    s.xid_counts.insert((3, 79), 2);
    s.xid_counts.insert((3, 48), 1);
    s.xid_counts.insert((500, 13), 1); // outside the topology: ignored
    s.health_events.insert((3, "xid"), 2);
    s.health_events.insert((5, "link_down"), 1);
    s.healthy[3] = false;
    s.sources.insert(
        "gpu",
        SourceHealth {
            last_duration: Duration::from_millis(250),
            errors: 3,
            last_success: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
        },
    );
    s.sources.insert(
        "slurm",
        SourceHealth {
            last_duration: Duration::from_millis(5),
            errors: 7,
            last_success: None,
        },
    );
    let e = check(&render(&s));
    let xids = e.of("linkwise_gpu_xid_events_total");
    assert_eq!(xids.len(), 2);
    let x79 = xids.iter().find(|x| x.label("xid") == Some("79")).unwrap();
    assert_eq!(x79.value, 2.0);
    assert_eq!(
        x79.label("gpu"),
        Some(s.topo.gpus[3].index.to_string().as_str())
    );
    let events = e.of("linkwise_gpu_health_events_total");
    let reasons: BTreeSet<&str> = events.iter().map(|x| x.label("reason").unwrap()).collect();
    assert_eq!(reasons, BTreeSet::from(["xid", "link_down"]));
    let unhealthy: Vec<_> = e
        .of("linkwise_gpu_healthy")
        .into_iter()
        .filter(|x| x.value == 0.0)
        .collect();
    assert_eq!(unhealthy.len(), 1);
    let durations = e.of("linkwise_exporter_collection_duration_seconds");
    assert_eq!(durations.len(), 2);
    assert_eq!(durations[0].label("source"), Some("gpu"));
    assert_eq!(durations[0].value, 0.25);
    let errors = e.of("linkwise_exporter_collection_errors_total");
    assert_eq!(errors.iter().map(|x| x.value).sum::<f64>(), 10.0);
    let last = e.of("linkwise_exporter_last_success_timestamp_seconds");
    assert_eq!(last.len(), 1, "no sample for a source that never succeeded");
    assert_eq!(last[0].value, 1.7e9);
}

#[test]
fn empty_readings_render_without_panic() {
    let topo = topology("nvl72");
    let n = topo.gpus.len();
    let s = Snapshot {
        ports: nvlink_ports(&topo),
        topo: Arc::new(topo),
        hostname: "node-1".to_string(),
        source: "nvml".to_string(),
        synthetic: false,
        ..Snapshot::default()
    };
    let e = check(&render(&s));
    assert_eq!(e.of("linkwise_exporter_info").len(), 1);
    assert_eq!(
        e.of("linkwise_exporter_info")[0].label("synthetic"),
        Some("false")
    );
    assert_eq!(e.of("linkwise_gpu_info").len(), n);
    assert_eq!(e.of("linkwise_gpu_healthy").len(), n, "missing → healthy");
    assert!(e.of("linkwise_gpu_healthy").iter().all(|x| x.value == 1.0));
    assert!(e.of("linkwise_nvlink_up").is_empty());
    assert!(e.of("linkwise_gpu_utilization_ratio").is_empty());
    assert!(e.of("linkwise_pcie_link_width").is_empty());

    // Readings shorter than the topology and a wholly empty snapshot.
    let mut partial = s.clone();
    let mut synth = Synthetic::new(&partial.topo);
    let mut r = synth.collect().unwrap();
    r.gpus.truncate(3);
    r.links.truncate(10);
    r.pcie.truncate(1);
    partial.readings = r;
    partial.healthy = vec![false];
    let e = check(&render(&partial));
    assert_eq!(e.of("linkwise_gpu_utilization_ratio").len(), 3);
    assert_eq!(e.of("linkwise_nvlink_up").len(), 10);
    assert_eq!(e.of("linkwise_pcie_link_width").len(), 2);
    let e = check(&render(&Snapshot::default()));
    assert_eq!(e.of("linkwise_exporter_info").len(), 1);
}

#[test]
fn content_type_is_openmetrics() {
    assert!(CONTENT_TYPE.starts_with("application/openmetrics-text; version=1.0.0"));
}

#[test]
fn docs_metrics_md_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/metrics.md");
    let want = metrics_markdown();
    if std::env::var_os("UPDATE_DOCS").is_some_and(|v| v == "1") {
        std::fs::write(path, &want).unwrap();
    }
    let have = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        have == want,
        "docs/metrics.md is stale: run `UPDATE_DOCS=1 cargo test -p linkwise-exporter --test render`"
    );
    for f in FAMILIES {
        assert!(
            want.contains(&format!("`{}`", f.sample_name())),
            "{}",
            f.name
        );
    }
}
