//! The readable summary printed by `linkwise discover`.

use std::collections::BTreeMap;
use std::fmt::Write;

use linkwise_core::{Health, Island, LinkKind, PairMatrix, Topology};

use super::{bytes, columns, gbps};

/// Host, NUMA, GPUs, islands, domains, links and gaps, for people.
pub fn render(topo: &Topology) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "Source: {}", topo.source);
    write_hosts(&mut o, topo);
    o.push('\n');
    if topo.gpus.is_empty() {
        let _ = writeln!(o, "No NVIDIA GPU found.");
    } else {
        let m = topo.pair_matrix();
        let islands = topo.islands_of(&m);
        write_gpus(&mut o, topo, &islands);
        o.push('\n');
        write_islands(&mut o, topo, &islands);
        o.push('\n');
        write_links(&mut o, topo, &m);
    }
    write_gaps(&mut o, topo);
    o
}

/// One line per host with its NUMA nodes.
fn write_hosts(o: &mut String, topo: &Topology) {
    for h in &topo.hosts {
        let mut facts = Vec::new();
        facts.push(
            h.arch
                .map_or_else(|| "arch unknown".to_string(), |a| a.to_string()),
        );
        if let Some(m) = &h.cpu_model {
            facts.push(m.clone());
        }
        if let Some(c) = h.cpus {
            facts.push(format!("{c} CPUs"));
        }
        if let Some(m) = h.memory_bytes {
            facts.push(bytes(m));
        }
        if let Some(k) = &h.kernel {
            facts.push(format!("kernel {k}"));
        }
        if let Some(b) = &h.board_model {
            facts.push(b.clone());
        }
        if let Some(r) = &h.rack {
            facts.push(format!("rack {r}"));
        }
        let _ = writeln!(o, "Host {}: {}", h.name, facts.join(", "));
        if h.numa_nodes.is_empty() {
            let _ = writeln!(o, "  NUMA: none reported");
        }
        for n in &h.numa_nodes {
            let mem = n
                .memory_bytes
                .map(|m| format!(", {}", bytes(m)))
                .unwrap_or_default();
            let _ = writeln!(o, "  NUMA node {}: CPUs {}{}", n.id, n.cpus, mem);
        }
    }
}

/// The GPU table.
fn write_gpus(o: &mut String, topo: &Topology, islands: &[Island]) {
    let island_of: BTreeMap<_, _> = islands
        .iter()
        .flat_map(|is| is.gpus.iter().map(move |g| (g.clone(), is.name())))
        .collect();
    let multi = topo.is_multi_host();
    let _ = writeln!(o, "GPUs ({}):", topo.gpus.len());
    let mut rows = vec![
        [
            "GPU", "ID", "PCI", "MODEL", "MEMORY", "NUMA", "CPUS", "HEALTH", "ISLAND",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for g in &topo.gpus {
        rows.push(vec![
            g.label(multi),
            g.id.to_string(),
            g.pci_bus_id
                .map_or_else(|| "-".to_string(), |p| p.to_string()),
            g.model.clone(),
            g.memory_bytes.map_or_else(|| "-".to_string(), bytes),
            g.numa_node
                .map_or_else(|| "?".to_string(), |n| n.to_string()),
            g.cpu_affinity
                .as_ref()
                .map_or_else(|| "?".to_string(), |c| c.to_string()),
            match &g.health {
                Health::Healthy => "healthy".to_string(),
                Health::Unhealthy { reason } => format!("UNHEALTHY ({reason})"),
            },
            island_of.get(&g.id).cloned().unwrap_or_default(),
        ]);
    }
    for line in columns(&rows).lines() {
        let _ = writeln!(o, "  {line}");
    }
}

/// NVLink islands and multi-node NVLink domains.
fn write_islands(o: &mut String, topo: &Topology, islands: &[Island]) {
    let multi = topo.is_multi_host();
    let label = |id: &linkwise_core::GpuId| {
        topo.gpu(id)
            .map_or_else(|| id.to_string(), |g| g.label(multi))
    };
    let nv: Vec<_> = islands.iter().filter(|i| i.gpus.len() > 1).collect();
    let _ = writeln!(o, "NVLink islands ({}):", nv.len());
    if nv.is_empty() {
        let _ = writeln!(o, "  none: no two GPUs share NVLink");
    }
    for is in &nv {
        let members: Vec<String> = is.gpus.iter().map(label).collect();
        let hosts = if is.hosts.len() > 1 {
            format!(", across {} hosts", is.hosts.len())
        } else {
            String::new()
        };
        let _ = writeln!(
            o,
            "  {}: {} GPUs, at least NV{} between any two{}: {}",
            is.name(),
            is.gpus.len(),
            is.min_lanes,
            hosts,
            abbreviate(&members)
        );
    }
    let fabric: Vec<_> = topo
        .domains()
        .into_iter()
        .filter(|d| d.hosts.len() > 1 || !d.id.starts_with("island"))
        .collect();
    if !fabric.is_empty() {
        let _ = writeln!(o, "Multi-node NVLink domains ({}):", fabric.len());
        for d in fabric {
            let _ = writeln!(
                o,
                "  {}: {} GPUs on {} hosts",
                d.id,
                d.gpus.len(),
                d.hosts.len()
            );
        }
    }
}

/// Link counts by kind, NVSwitch chips, NICs and the fastest GPU pair.
fn write_links(o: &mut String, topo: &Topology, m: &PairMatrix) {
    let mut kinds: BTreeMap<&str, (usize, u32, usize)> = BTreeMap::new();
    for l in &topo.links {
        let k = match l.kind {
            LinkKind::Nvlink { .. } => "NVLink GPU-GPU",
            LinkKind::NvswitchPort { .. } => "NVLink GPU-NVSwitch",
            LinkKind::C2c {
                flavor: linkwise_core::C2cFlavor::NvlinkFusion,
                ..
            } => "NVLink Fusion CPU-GPU",
            LinkKind::C2c { .. } => "NVLink-C2C CPU-GPU",
            LinkKind::Pcie { .. } => "PCIe paths",
        };
        let e = kinds.entry(k).or_default();
        e.0 += 1;
        e.1 += l.nvlink_lanes();
        if !l.is_up() {
            e.2 += 1;
        }
    }
    let _ = writeln!(o, "Links:");
    for (k, (count, lanes, down)) in &kinds {
        let lanes = if *lanes > 0 {
            format!(", {lanes} lanes")
        } else {
            String::new()
        };
        let down = if *down > 0 {
            format!(", {down} DOWN")
        } else {
            String::new()
        };
        let _ = writeln!(o, "  {k}: {count}{lanes}{down}");
    }
    if !topo.switches.is_empty() {
        let _ = writeln!(o, "  NVSwitch chips: {}", topo.switches.len());
    }
    if !topo.nics.is_empty() {
        let _ = writeln!(o, "  NICs: {}", topo.nics.len());
    }
    let best = (0..m.len())
        .flat_map(|i| ((i + 1)..m.len()).map(move |j| (i, j)))
        .map(|(i, j)| m.bandwidth_mbps(i, j))
        .max();
    if let Some(b) = best {
        let _ = writeln!(o, "  Fastest GPU pair: {} per direction", gbps(b));
    }
}

/// What could not be discovered.
fn write_gaps(o: &mut String, topo: &Topology) {
    if !topo.gaps.is_empty() {
        o.push('\n');
        let _ = writeln!(o, "Not discovered ({}):", topo.gaps.len());
        for g in &topo.gaps {
            let _ = writeln!(o, "  - {}: {}", g.what, g.why);
        }
    }
}

/// A member list, shortened past 12 entries.
fn abbreviate(items: &[String]) -> String {
    if items.len() <= 12 {
        items.join(" ")
    } else {
        format!(
            "{} ... {} ({} more)",
            items[..4].join(" "),
            items[items.len() - 2..].join(" "),
            items.len() - 6
        )
    }
}
