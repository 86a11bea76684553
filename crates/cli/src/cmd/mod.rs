//! One module per subcommand.

pub mod agent;
pub mod alloc;
pub mod annotate;
pub mod discover;
pub mod dra;
pub mod exporter;
pub mod extender;
pub mod labels;
pub mod profiles;
pub mod sim;
pub mod slurm;
pub mod topo;

use linkwise_core::{GpuId, Topology};
use linkwise_discovery::SourceSpec;

/// Help text shared by every `--source` flag.
pub const SOURCE_HELP: &str = "Where the facts come from: auto (NVML when it loads, else sysfs), sysfs[:ROOT], nvml, \
topo-text:FILE (saved `nvidia-smi topo -m`), snapshot:FILE (JSON/YAML), profile:NAME (built in; see `linkwise profiles`). \
FILE `-` reads standard input";

/// Parses `--source`, opens it and discovers.
pub fn discover(source: &str) -> anyhow::Result<Topology> {
    let spec = SourceSpec::parse(source)?;
    let src = spec.open()?;
    // Discovery errors already name the file, line or device they are about.
    let topo = src.discover()?;
    tracing::info!(source = %spec, gpus = topo.gpus.len(), gaps = topo.gaps.len(), "discovered");
    Ok(topo)
}

/// Resolves device references: ids, labels (`GPU3`, `host/GPU3`), or numbers (the GPU
/// index on a single host; the position on several hosts). Built once per topology.
pub struct Resolver<'a> {
    topo: &'a Topology,
    names: std::collections::HashMap<String, GpuId>,
}

impl<'a> Resolver<'a> {
    pub fn new(topo: &'a Topology) -> Self {
        let multi = topo.is_multi_host();
        let mut names = std::collections::HashMap::new();
        for (p, g) in topo.gpus.iter().enumerate() {
            let number = if multi {
                p.to_string()
            } else {
                g.index.to_string()
            };
            names.entry(number).or_insert_with(|| g.id.clone());
            names.entry(g.label(multi)).or_insert_with(|| g.id.clone());
            if !multi {
                names.entry(g.label(false)).or_insert_with(|| g.id.clone());
            }
        }
        // Ids, UUIDs and PCI bus ids win over everything else.
        for g in &topo.gpus {
            if let Some(pci) = g.pci_bus_id {
                names.insert(pci.to_string(), g.id.clone());
            }
            if let Some(u) = &g.uuid {
                names.insert(u.clone(), g.id.clone());
            }
            names.insert(g.id.0.clone(), g.id.clone());
        }
        Resolver { topo, names }
    }

    /// Every reference this resolver knows, with the GPU it names.
    pub fn names(&self) -> impl Iterator<Item = (String, GpuId)> + '_ {
        self.names.iter().map(|(k, v)| (k.clone(), v.clone()))
    }

    pub fn one(&self, s: &str) -> Result<GpuId, crate::exit::BadInput> {
        let s = s.trim();
        self.names.get(s).cloned().ok_or_else(|| {
            crate::exit::BadInput(format!(
                "no GPU {s:?} in {} (use an index 0..{}, a label such as GPU0, or an id)",
                self.topo.source,
                self.topo.gpus.len().saturating_sub(1)
            ))
        })
    }

    pub fn all(&self, list: &[String]) -> Result<Vec<GpuId>, crate::exit::BadInput> {
        list.iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| self.one(s))
            .collect()
    }
}
