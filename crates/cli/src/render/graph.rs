//! The fabric as a Graphviz `dot` graph.

use std::collections::BTreeMap;
use std::fmt::Write;

use linkwise_core::{C2cFlavor, Endpoint, LinkKind, Topology};

fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn node_id(e: &Endpoint) -> String {
    match e {
        Endpoint::Gpu(id) => format!("gpu:{id}"),
        Endpoint::Switch(id) => format!("sw:{id}"),
        Endpoint::Nic(id) => format!("nic:{id}"),
        Endpoint::Cpu { host, numa } => match numa {
            Some(n) => format!("cpu:{host}:{n}"),
            None => format!("cpu:{host}"),
        },
    }
}

/// GPUs grouped by host and NUMA node, NVSwitches, CPUs and NICs as nodes; NVLink,
/// NVSwitch ports and C2C / Fusion links as edges whose width grows with the lanes.
/// Switches that no host enumerates (NVL72-class switch trays) are drawn as one fabric
/// node with one edge per GPU, so a 72-GPU domain stays readable.
pub fn dot(topo: &Topology) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "graph linkwise {{");
    let _ = writeln!(
        o,
        "  graph [fontname=\"Helvetica\", label={}, labelloc=t, newrank=true, nodesep=0.3];",
        q(&format!("linkwise fabric: {}", topo.source))
    );
    let _ = writeln!(
        o,
        "  node [fontname=\"Helvetica\", shape=box, style=\"rounded,filled\", fillcolor=\"#eef3fb\"];"
    );
    let _ = writeln!(o, "  edge [fontname=\"Helvetica\", fontsize=10];");
    let islands = topo.islands();
    let island_of: BTreeMap<_, _> = islands
        .iter()
        .flat_map(|is| is.gpus.iter().map(move |g| (g, is)))
        .collect();
    let mut cluster = 0;
    for h in &topo.hosts {
        let _ = writeln!(
            o,
            "  subgraph cluster_{cluster} {{ label={}; style=rounded; color=\"#888888\";",
            q(&h.name)
        );
        cluster += 1;
        let mut numas: Vec<Option<u32>> = topo
            .gpus
            .iter()
            .filter(|g| g.host == h.name)
            .map(|g| g.numa_node)
            .collect();
        numas.sort();
        numas.dedup();
        for numa in numas {
            let label = numa.map_or_else(|| "NUMA unknown".to_string(), |n| format!("NUMA {n}"));
            let _ = writeln!(
                o,
                "    subgraph cluster_{cluster} {{ label={}; style=dashed;",
                q(&label)
            );
            cluster += 1;
            let cpu_present = topo.links.iter().any(|l| {
                matches!(&l.b, Endpoint::Cpu { host, numa: n } if host == &h.name && *n == numa)
                    || matches!(&l.a, Endpoint::Cpu { host, numa: n } if host == &h.name && *n == numa)
            });
            if cpu_present {
                let id = node_id(&Endpoint::Cpu {
                    host: h.name.clone(),
                    numa,
                });
                let _ = writeln!(
                    o,
                    "      {} [label={}, shape=component, fillcolor=\"#f3e8fb\"];",
                    q(&id),
                    q(&format!("CPU {label}"))
                );
            }
            for g in topo
                .gpus
                .iter()
                .filter(|g| g.host == h.name && g.numa_node == numa)
            {
                let (fill, extra) = if g.health.is_healthy() {
                    ("#eef3fb", String::new())
                } else {
                    ("#fde0e0", "\\nUNHEALTHY".to_string())
                };
                let island = island_of.get(&g.id).map(|i| i.name()).unwrap_or_default();
                let _ = writeln!(
                    o,
                    "      {} [label={}, fillcolor=\"{fill}\"];",
                    q(&node_id(&Endpoint::Gpu(g.id.clone()))),
                    q(&format!(
                        "{}\\n{}\\n{}{}",
                        g.label(false),
                        g.model,
                        island,
                        extra
                    ))
                );
            }
            let _ = writeln!(o, "    }}");
        }
        for s in topo
            .switches
            .iter()
            .filter(|s| s.host.as_deref() == Some(h.name.as_str()))
        {
            let _ = writeln!(
                o,
                "    {} [label={}, shape=hexagon, fillcolor=\"#e6f4ea\"];",
                q(&node_id(&Endpoint::Switch(s.id.clone()))),
                q(&s.id)
            );
        }
        for n in topo.nics.iter().filter(|n| n.host == h.name) {
            let label = n.name.clone().unwrap_or_else(|| n.id.clone());
            let _ = writeln!(
                o,
                "    {} [label={}, shape=cds, fillcolor=\"#fff4e0\"];",
                q(&node_id(&Endpoint::Nic(n.id.clone()))),
                q(&label)
            );
        }
        let _ = writeln!(o, "  }}");
    }
    let hostless: Vec<&str> = topo
        .switches
        .iter()
        .filter(|s| s.host.is_none())
        .map(|s| s.id.as_str())
        .collect();
    if !hostless.is_empty() {
        let _ = writeln!(
            o,
            "  \"fabric\" [label={}, shape=hexagon, fillcolor=\"#e6f4ea\"];",
            q(&format!(
                "NVLink switch fabric\\n{} NVSwitch chips",
                hostless.len()
            ))
        );
    }
    // Edges: aggregate per endpoint pair and kind.
    let mut edges: BTreeMap<(String, String, &'static str, bool), u32> = BTreeMap::new();
    for l in &topo.links {
        let kind = match l.kind {
            LinkKind::Nvlink { .. } => "nvlink",
            LinkKind::NvswitchPort { .. } => "switch",
            LinkKind::C2c {
                flavor: C2cFlavor::NvlinkFusion,
                ..
            } => "fusion",
            LinkKind::C2c { .. } => "c2c",
            LinkKind::Pcie { .. } => continue,
        };
        let map = |e: &Endpoint| match e {
            Endpoint::Switch(s) if hostless.contains(&s.as_str()) => "fabric".to_string(),
            other => node_id(other),
        };
        *edges
            .entry((map(&l.a), map(&l.b), kind, !l.is_up()))
            .or_insert(0) += l.nvlink_lanes();
    }
    for ((a, b, kind, down), lanes) in edges {
        let width = 1.0 + f64::from(lanes.min(18)) * 0.4;
        let (color, label) = match kind {
            "nvlink" => ("#2a6f97", format!("NV{lanes}")),
            "switch" => ("#3c9a5f", format!("{lanes}")),
            "fusion" => ("#8e44ad", "Fusion".to_string()),
            _ => ("#8e44ad", "C2C".to_string()),
        };
        let (color, label) = if down {
            ("#c0392b", format!("{label} DOWN"))
        } else {
            (color, label)
        };
        let style = if down { ", style=dashed" } else { "" };
        let _ = writeln!(
            o,
            "  {} -- {} [label={}, penwidth={width:.1}, color=\"{color}\"{style}];",
            q(&a),
            q(&b),
            q(&label)
        );
    }
    let _ = writeln!(o, "}}");
    o
}
