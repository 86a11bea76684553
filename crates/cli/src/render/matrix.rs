//! The pair matrix as `nvidia-smi topo -m`-style text and as JSON.

use std::collections::BTreeMap;

use linkwise_core::{Endpoint, LinkKind, PathClass, Topology};

use super::columns;

const LEGEND: &str = "\
Legend:

  X    = Self
  SYS  = Connection traversing PCIe as well as the SMP interconnect between NUMA nodes (e.g., QPI/UPI)
  NODE = Connection traversing PCIe as well as the interconnect between PCIe Host Bridges within a NUMA node
  PHB  = Connection traversing PCIe as well as a PCIe Host Bridge (typically the CPU)
  PXB  = Connection traversing multiple PCIe bridges (without traversing the PCIe Host Bridge)
  PIX  = Connection traversing at most a single PCIe bridge
  NV#  = Connection traversing a bonded set of # NVLinks
  NET  = Different hosts, no NVLink between them (linkwise; nvidia-smi shows one host)
";

fn na<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "N/A".to_string(), |x| x.to_string())
}

/// GPU labels in matrix order.
pub fn labels(topo: &Topology) -> Vec<String> {
    let multi = topo.is_multi_host();
    topo.gpus.iter().map(|g| g.label(multi)).collect()
}

/// The matrix as text: GPU columns, NIC columns (when the topology has NICs), then
/// `CPU Affinity`, `NUMA Affinity` and `GPU NUMA ID`, then the legend. Columns are
/// separated by two or more spaces, so the output imports back as `topo-text:`.
pub fn table(topo: &Topology) -> String {
    if topo.gpus.is_empty() {
        return "No NVIDIA GPU found.\n".to_string();
    }
    let m = topo.pair_matrix();
    let names = labels(topo);
    let nic_class: BTreeMap<(&Endpoint, &str), PathClass> = topo
        .links
        .iter()
        .filter_map(|l| match (&l.kind, &l.a, &l.b) {
            (LinkKind::Pcie { class }, e, Endpoint::Nic(n))
            | (LinkKind::Pcie { class }, Endpoint::Nic(n), e) => Some(((e, n.as_str()), *class)),
            _ => None,
        })
        .collect();
    let nic_cell = |e: &Endpoint, nic: &str| -> String {
        if let Endpoint::Nic(n) = e
            && n == nic
        {
            return "X".to_string();
        }
        nic_class
            .get(&(e, nic))
            .map_or_else(|| "N/A".to_string(), |c| c.as_str().to_string())
    };
    let mut header = vec![String::new()];
    header.extend(names.iter().cloned());
    header.extend(topo.nics.iter().map(|n| n.id.clone()));
    header.extend(["CPU Affinity", "NUMA Affinity", "GPU NUMA ID"].map(String::from));
    let mut rows = vec![header];
    for (i, g) in topo.gpus.iter().enumerate() {
        let mut r = vec![names[i].clone()];
        r.extend((0..m.len()).map(|j| m.cell(i, j).label()));
        let me = Endpoint::Gpu(g.id.clone());
        r.extend(topo.nics.iter().map(|n| nic_cell(&me, &n.id)));
        r.push(
            g.cpu_affinity
                .as_ref()
                .map_or_else(|| "N/A".to_string(), |c| c.to_string()),
        );
        r.push(na(g.numa_node));
        r.push(na(g.gpu_numa_id));
        rows.push(r);
    }
    for n in &topo.nics {
        let me = Endpoint::Nic(n.id.clone());
        let mut r = vec![n.id.clone()];
        r.extend(
            topo.gpus
                .iter()
                .map(|g| nic_cell(&Endpoint::Gpu(g.id.clone()), &n.id)),
        );
        r.extend(topo.nics.iter().map(|o| nic_cell(&me, &o.id)));
        rows.push(r);
    }
    let mut out = columns(&rows);
    out.push('\n');
    out.push_str(LEGEND);
    let named: Vec<&linkwise_core::Nic> = topo.nics.iter().filter(|n| n.name.is_some()).collect();
    if !named.is_empty() {
        out.push_str("\nNIC Legend:\n\n");
        for n in named {
            out.push_str(&format!(
                "  {}: {}\n",
                n.id,
                n.name.as_deref().unwrap_or_default()
            ));
        }
    }
    out
}

/// The matrix as JSON: `{"gpus": [names], "matrix": [[cell, ...], ...]}`.
pub fn json(topo: &Topology) -> anyhow::Result<String> {
    let m = topo.pair_matrix();
    let matrix: Vec<Vec<String>> = (0..m.len())
        .map(|i| (0..m.len()).map(|j| m.cell(i, j).label()).collect())
        .collect();
    let v = serde_json::json!({ "gpus": labels(topo), "matrix": matrix });
    Ok(format!("{}\n", serde_json::to_string_pretty(&v)?))
}
