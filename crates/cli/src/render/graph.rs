//! The fabric as a Graphviz `dot` graph.
//!
//! Every string is written as a DOT quoted string: `"` and `\` are escaped, control
//! characters become spaces, and multi-line labels join their lines with DOT's `\n`
//! (a centred line break), so a name can never end a string early or print a stray
//! escape. Every node an edge links is declared with a label and a shape.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use linkwise_core::{C2cFlavor, Endpoint, Gpu, GpuId, Host, LinkKind, Topology};

/// The text of `s` inside a DOT quoted string: `\` and `"` escaped, control characters
/// (a newline in a name included) as spaces.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            c if c.is_control() => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// `s` as a DOT quoted string.
fn q(s: &str) -> String {
    format!("\"{}\"", esc(s))
}

/// A label of several lines, each escaped, joined by DOT's centred line break; empty
/// lines are left out.
fn lines(ls: &[&str]) -> String {
    let parts: Vec<String> = ls
        .iter()
        .filter(|l| !l.is_empty())
        .map(|l| esc(l))
        .collect();
    format!("\"{}\"", parts.join("\\n"))
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

fn numa_text(numa: Option<u32>) -> String {
    numa.map_or_else(|| "NUMA unknown".to_string(), |n| format!("NUMA {n}"))
}

const SWITCH_ATTRS: &str = "shape=hexagon, fillcolor=\"#e6f4ea\"";
const NIC_ATTRS: &str = "shape=cds, fillcolor=\"#fff4e0\"";
const CPU_ATTRS: &str = "shape=component, fillcolor=\"#f3e8fb\"";

/// The node statements written so far, so that each node is declared exactly once.
#[derive(Debug, Default)]
struct Nodes {
    declared: BTreeSet<String>,
}

// === impl Nodes ===

impl Nodes {
    /// Writes `id [label=..., attrs];` at `indent` unless `id` is already declared.
    fn declare(&mut self, o: &mut String, indent: &str, id: &str, label: &str, attrs: &str) {
        if self.declared.insert(id.to_string()) {
            let _ = writeln!(o, "{indent}{} [label={label}, {attrs}];", q(id));
        }
    }
}

/// An edge: its two node ids, its kind and whether it is down.
type EdgeKey = (String, String, &'static str, bool);

/// The node id of the one fabric node that stands for the switches no host enumerates.
const FABRIC: &str = "fabric";

/// GPUs grouped by host and NUMA node, NVSwitches, CPUs and NICs as nodes; NVLink,
/// NVSwitch ports and C2C / Fusion links as edges whose width grows with the lanes.
/// Switches that no host enumerates (NVL72-class switch trays) are drawn as one fabric
/// node with one edge per GPU, so a 72-GPU domain stays readable. Every edge endpoint
/// is declared: a GPU, switch, NIC or CPU whose host is not among the hosts, or that no
/// list holds, is drawn outside the host boxes.
pub fn dot(topo: &Topology) -> String {
    let hostless: Vec<&str> = topo
        .switches
        .iter()
        .filter(|s| s.host.is_none())
        .map(|s| s.id.as_str())
        .collect();
    let (edges, linked) = collect_edges(topo, &hostless);
    let mut o = String::new();
    let mut nodes = Nodes::default();
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
    let style = GpuStyle::new(topo);
    let mut cluster = 0;
    for h in &topo.hosts {
        write_host(&mut o, &mut nodes, &mut cluster, topo, h, &linked, &style);
    }
    write_loose_nodes(&mut o, &mut nodes, topo, &linked, &hostless, &style);
    write_edges(&mut o, edges);
    let _ = writeln!(o, "}}");
    o
}

/// Edges aggregated per endpoint pair and kind (lanes summed), and the endpoints the
/// edges link, by node id. Hostless switches map to the one fabric node.
fn collect_edges<'t>(
    topo: &'t Topology,
    hostless: &[&str],
) -> (BTreeMap<EdgeKey, u32>, BTreeMap<String, &'t Endpoint>) {
    let map = |e: &Endpoint| match e {
        Endpoint::Switch(s) if hostless.contains(&s.as_str()) => None,
        other => Some(node_id(other)),
    };
    let mut edges: BTreeMap<EdgeKey, u32> = BTreeMap::new();
    let mut linked: BTreeMap<String, &Endpoint> = BTreeMap::new();
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
        let mut ends = [String::new(), String::new()];
        for (slot, e) in ends.iter_mut().zip([&l.a, &l.b]) {
            *slot = match map(e) {
                Some(id) => {
                    linked.entry(id.clone()).or_insert(e);
                    id
                }
                None => FABRIC.to_string(),
            };
        }
        let [a, b] = ends;
        *edges.entry((a, b, kind, !l.is_up())).or_insert(0) += l.nvlink_lanes();
    }
    (edges, linked)
}

/// How GPU nodes look: label with island and health, fill by health.
struct GpuStyle {
    /// Island name by GPU.
    island_of: BTreeMap<GpuId, String>,
}

// === impl GpuStyle ===

impl GpuStyle {
    fn new(topo: &Topology) -> Self {
        let island_of = topo
            .islands()
            .iter()
            .flat_map(|is| is.gpus.iter().map(move |g| (g.clone(), is.name())))
            .collect();
        Self { island_of }
    }

    fn label(&self, g: &Gpu, multi_host: bool) -> String {
        let island = self.island_of.get(&g.id).cloned().unwrap_or_default();
        let health = if g.health.is_healthy() {
            ""
        } else {
            "UNHEALTHY"
        };
        lines(&[&g.label(multi_host), &g.model, &island, health])
    }

    fn attrs(&self, g: &Gpu) -> String {
        let fill = if g.health.is_healthy() {
            "#eef3fb"
        } else {
            "#fde0e0"
        };
        format!("fillcolor=\"{fill}\"")
    }
}

/// One host box: its NUMA boxes with CPUs and GPUs, then its switches and NICs.
fn write_host(
    o: &mut String,
    nodes: &mut Nodes,
    cluster: &mut usize,
    topo: &Topology,
    h: &Host,
    linked: &BTreeMap<String, &Endpoint>,
    style: &GpuStyle,
) {
    let _ = writeln!(
        o,
        "  subgraph cluster_{cluster} {{ label={}; style=rounded; color=\"#888888\";",
        q(&h.name)
    );
    *cluster += 1;
    // NUMA boxes: those holding GPUs and those of linked CPUs.
    let cpus: BTreeMap<Option<u32>, String> = linked
        .iter()
        .filter_map(|(id, e)| match e {
            Endpoint::Cpu { host, numa } if host == &h.name => Some((*numa, id.clone())),
            _ => None,
        })
        .collect();
    let mut numas: Vec<Option<u32>> = topo
        .gpus
        .iter()
        .filter(|g| g.host == h.name)
        .map(|g| g.numa_node)
        .chain(cpus.keys().copied())
        .collect();
    numas.sort();
    numas.dedup();
    for numa in numas {
        let label = numa_text(numa);
        let _ = writeln!(
            o,
            "    subgraph cluster_{cluster} {{ label={}; style=dashed;",
            q(&label)
        );
        *cluster += 1;
        if let Some(id) = cpus.get(&numa) {
            nodes.declare(o, "      ", id, &q(&format!("CPU {label}")), CPU_ATTRS);
        }
        for g in topo
            .gpus
            .iter()
            .filter(|g| g.host == h.name && g.numa_node == numa)
        {
            nodes.declare(
                o,
                "      ",
                &node_id(&Endpoint::Gpu(g.id.clone())),
                &style.label(g, false),
                &style.attrs(g),
            );
        }
        let _ = writeln!(o, "    }}");
    }
    for s in topo
        .switches
        .iter()
        .filter(|s| s.host.as_deref() == Some(h.name.as_str()))
    {
        nodes.declare(
            o,
            "    ",
            &node_id(&Endpoint::Switch(s.id.clone())),
            &q(&s.id),
            SWITCH_ATTRS,
        );
    }
    for n in topo.nics.iter().filter(|n| n.host == h.name) {
        nodes.declare(
            o,
            "    ",
            &node_id(&Endpoint::Nic(n.id.clone())),
            &q(n.name.as_deref().unwrap_or(&n.id)),
            NIC_ATTRS,
        );
    }
    let _ = writeln!(o, "  }}");
}

/// Whatever the host boxes did not hold: devices of hosts not listed, linked endpoints
/// that no list describes, and the fabric node.
fn write_loose_nodes(
    o: &mut String,
    nodes: &mut Nodes,
    topo: &Topology,
    linked: &BTreeMap<String, &Endpoint>,
    hostless: &[&str],
    style: &GpuStyle,
) {
    for g in &topo.gpus {
        nodes.declare(
            o,
            "  ",
            &node_id(&Endpoint::Gpu(g.id.clone())),
            &style.label(g, true),
            &style.attrs(g),
        );
    }
    for s in topo.switches.iter().filter(|s| s.host.is_some()) {
        let host = s.host.as_deref().unwrap_or_default();
        nodes.declare(
            o,
            "  ",
            &node_id(&Endpoint::Switch(s.id.clone())),
            &lines(&[&s.id, host]),
            SWITCH_ATTRS,
        );
    }
    for n in &topo.nics {
        nodes.declare(
            o,
            "  ",
            &node_id(&Endpoint::Nic(n.id.clone())),
            &lines(&[n.name.as_deref().unwrap_or(&n.id), &n.host]),
            NIC_ATTRS,
        );
    }
    for (id, e) in linked {
        let (label, attrs) = match e {
            Endpoint::Gpu(g) => (q(&g.to_string()), "fillcolor=\"#eef3fb\""),
            Endpoint::Switch(s) => (q(s), SWITCH_ATTRS),
            Endpoint::Nic(n) => (q(n), NIC_ATTRS),
            Endpoint::Cpu { host, numa } => (
                lines(&[&format!("CPU {}", numa_text(*numa)), host]),
                CPU_ATTRS,
            ),
        };
        nodes.declare(o, "  ", id, &label, attrs);
    }
    if !hostless.is_empty() {
        nodes.declare(
            o,
            "  ",
            FABRIC,
            &lines(&[
                "NVLink switch fabric",
                &format!("{} NVSwitch chips", hostless.len()),
            ]),
            SWITCH_ATTRS,
        );
    }
}

/// The edges, width growing with the lanes, down links red and dashed.
fn write_edges(o: &mut String, edges: BTreeMap<EdgeKey, u32>) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_once_and_lines_break() {
        assert_eq!(q(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(q("two\nlines"), "\"two lines\"");
        assert_eq!(
            lines(&["GPU0", "H100", "", "x\"y"]),
            r#""GPU0\nH100\nx\"y""#
        );
    }
}
