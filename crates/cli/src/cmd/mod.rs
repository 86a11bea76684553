//! One module per subcommand.

pub mod agent;
pub mod alloc;
pub mod annotate;
pub mod completions;
pub mod discover;
pub mod dra;
pub mod draplugin;
pub mod exporter;
pub mod extender;
pub mod fleet;
pub mod labels;
pub mod modsig;
pub mod preflight;
pub mod profiles;
pub mod report;
pub mod rollout;
pub mod serve;
pub mod sim;
pub mod slurm;
pub mod topo;
pub mod validate;

use linkwise_core::{GpuId, Topology};
use linkwise_discovery::SourceSpec;

/// Help text shared by every `--source` flag.
pub const SOURCE_HELP: &str = "Where the facts come from: auto (NVML when it loads, else sysfs), sysfs[:ROOT], nvml, \
topo-text:FILE (saved `nvidia-smi topo -m`), snapshot:FILE (JSON/YAML), profile:NAME (built in; see `linkwise profiles`). \
FILE `-` reads standard input";

/// Parses `--source`, opens it and discovers.
pub fn discover(source: &str) -> anyhow::Result<Topology> {
    discover_spec(&SourceSpec::parse(source)?)
}

/// Opens a parsed `--source` and discovers.
pub fn discover_spec(spec: &SourceSpec) -> anyhow::Result<Topology> {
    let src = spec.open()?;
    // Discovery errors already name the file, line or device they are about.
    let topo = src.discover()?;
    tracing::info!(source = %spec, gpus = topo.gpus.len(), gaps = topo.gaps.len(), "discovered");
    Ok(topo)
}

/// For commands that publish fabric facts (labels, Slurm files, allocations, the agent,
/// DRA slices, metrics): what to do when NVIDIA GPUs or NVSwitches were seen but their
/// NVLink facts were not (sysfs alone, or NVML that did not load).
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct NvlinkArgs {
    /// Publish even when NVLink facts are missing (GPUs seen, NVML not used): GPU pairs
    /// are then described by their PCIe paths only. Without it such a source is refused,
    /// because "no NVLink" would be published as a fact when it is only unknown.
    #[arg(long)]
    pub allow_missing_nvlink: bool,
}

/// Refuses a topology whose NVLink facts are unknown unless `--allow-missing-nvlink`;
/// with it, warns on stderr. `what` names what would be published.
pub fn check_nvlink_known(topo: &Topology, args: NvlinkArgs, what: &str) -> anyhow::Result<()> {
    let Some(gap) = topo.nvlink_unknown() else {
        return Ok(());
    };
    if args.allow_missing_nvlink {
        eprintln!(
            "linkwise: warning: NVLink facts are missing from {} ({}); {what} describes GPU pairs \
             by PCIe path only (--allow-missing-nvlink)",
            topo.source, gap.why
        );
        return Ok(());
    }
    Err(anyhow::anyhow!(
        "refusing to publish {what} from {}: NVIDIA GPUs or NVSwitches were found but their NVLink \
         facts were not ({}). Unknown is not \"no NVLink\". Run where NVML loads (--source auto or \
         nvml), or pass --allow-missing-nvlink to publish PCIe-only facts anyway",
        topo.source,
        gap.why
    ))
}

/// [`discover()`], then [`check_nvlink_known`].
pub fn discover_published(
    source: &str,
    nvlink: NvlinkArgs,
    what: &str,
) -> anyhow::Result<Topology> {
    discover_spec_published(&SourceSpec::parse(source)?, nvlink, what)
}

/// [`discover_spec`], then [`check_nvlink_known`].
pub fn discover_spec_published(
    spec: &SourceSpec,
    nvlink: NvlinkArgs,
    what: &str,
) -> anyhow::Result<Topology> {
    let topo = discover_spec(spec)?;
    check_nvlink_known(&topo, nvlink, what)?;
    Ok(topo)
}

/// Whether a source reads standard input (`topo-text:-`, `snapshot:-`).
pub fn reads_stdin(spec: &SourceSpec) -> bool {
    match spec {
        SourceSpec::TopoText(file) | SourceSpec::Snapshot(file) => {
            file.as_os_str() == std::ffi::OsStr::new("-")
        }
        SourceSpec::Auto | SourceSpec::Sysfs(_) | SourceSpec::Nvml | SourceSpec::Profile(_) => {
            false
        }
    }
}

/// Resolves device references as operators write them: GPU indices (`3`; on several
/// hosts a bare number is the position in topology order), labels in any case (`GPU3`,
/// `gpu3`), `HOST/GPU3` and `HOST/3` on multi-host sources, UUIDs in any case, PCI bus ids
/// in the kernel's or `nvidia-smi`'s form (`0000:2a:00.0`, `00000000:2A:00.0`), and ranges
/// of numbers (`0-3`, `GPU0-3`, `HOST/0-3`). Built once per topology; owns what it needs.
#[derive(Debug, Clone)]
pub struct Resolver {
    source: String,
    count: usize,
    multi: bool,
    example: String,
    /// Lower-cased reference -> GPU.
    names: std::collections::HashMap<String, GpuId>,
    by_pci: std::collections::HashMap<linkwise_core::PciAddress, GpuId>,
    /// Per host (lower-cased), its GPU indices.
    hosts: std::collections::HashMap<String, std::collections::HashMap<u32, GpuId>>,
}

impl Resolver {
    pub fn new(topo: &Topology) -> Self {
        let multi = topo.is_multi_host();
        let mut names = std::collections::HashMap::new();
        let mut hosts: std::collections::HashMap<String, std::collections::HashMap<u32, GpuId>> =
            std::collections::HashMap::new();
        for (p, g) in topo.gpus.iter().enumerate() {
            let number = if multi {
                p.to_string()
            } else {
                g.index.to_string()
            };
            names.entry(number).or_insert_with(|| g.id.clone());
            names
                .entry(g.label(multi).to_lowercase())
                .or_insert_with(|| g.id.clone());
            if !multi {
                names
                    .entry(g.label(false).to_lowercase())
                    .or_insert_with(|| g.id.clone());
            }
            hosts
                .entry(g.host.to_lowercase())
                .or_default()
                .entry(g.index)
                .or_insert_with(|| g.id.clone());
        }
        let mut by_pci = std::collections::HashMap::new();
        // Ids, UUIDs and PCI bus ids win over everything else.
        for g in &topo.gpus {
            if let Some(pci) = g.pci_bus_id {
                names.insert(pci.to_string(), g.id.clone());
                by_pci.insert(pci, g.id.clone());
            }
            if let Some(u) = &g.uuid {
                names.insert(u.to_lowercase(), g.id.clone());
            }
            names.insert(g.id.0.to_lowercase(), g.id.clone());
        }
        let example = topo
            .gpus
            .first()
            .map_or_else(|| "GPU0".to_string(), |g| g.label(multi));
        Resolver {
            source: topo.source.clone(),
            count: topo.gpus.len(),
            multi,
            example,
            names,
            by_pci,
            hosts,
        }
    }

    fn unknown(&self, s: &str) -> crate::exit::BadInput {
        let numbers = if self.multi { "a position" } else { "an index" };
        crate::exit::BadInput(format!(
            "no GPU {s:?} in {} (use {numbers} 0..{}, a label such as {}, a range such as 0-1, \
             a UUID or a PCI bus id)",
            self.source,
            self.count.saturating_sub(1),
            self.example
        ))
    }

    /// One device reference (no ranges).
    pub fn one(&self, s: &str) -> Result<GpuId, crate::exit::BadInput> {
        let s = s.trim();
        let key = s.to_lowercase();
        if let Some(id) = self.names.get(&key) {
            return Ok(id.clone());
        }
        if let Ok(pci) = s.parse::<linkwise_core::PciAddress>()
            && let Some(id) = self.by_pci.get(&pci)
        {
            return Ok(id.clone());
        }
        // HOST/N and HOST/GPUN.
        if let Some((host, dev)) = key.rsplit_once('/')
            && let Some(gpus) = self.hosts.get(host)
            && let Some(index) = index_of(dev)
            && let Some(id) = gpus.get(&index)
        {
            return Ok(id.clone());
        }
        Err(self.unknown(s))
    }

    /// References and ranges (`0-3`, `GPU0-3`, `HOST/GPU0-GPU3`), empty entries skipped.
    pub fn all(&self, list: &[String]) -> Result<Vec<GpuId>, crate::exit::BadInput> {
        let mut out = Vec::new();
        for s in list.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
            match self.range(s)? {
                Some(ids) => out.extend(ids),
                None => out.push(self.one(s)?),
            }
        }
        Ok(out)
    }

    /// `A-B` where both ends are numbers or GPU labels on the same host; `None` when `s`
    /// is no range (UUIDs contain dashes too, so only number ends make a range).
    fn range(&self, s: &str) -> Result<Option<Vec<GpuId>>, crate::exit::BadInput> {
        let (prefix, rest) = match s.rsplit_once('/') {
            Some((h, r)) => (Some(h), r),
            None => (None, s),
        };
        let Some((a, b)) = rest.split_once('-') else {
            return Ok(None);
        };
        let (Some(lo), Some(hi)) = (index_of(a), index_of(b)) else {
            return Ok(None);
        };
        if lo > hi {
            return Err(crate::exit::BadInput(format!(
                "range {s:?} runs backwards (write {lo}-{hi} as {hi}-{lo})"
            )));
        }
        if hi - lo > 65_536 {
            return Err(crate::exit::BadInput(format!("range {s:?} is too long")));
        }
        (lo..=hi)
            .map(|i| match prefix {
                Some(h) => self.one(&format!("{h}/{i}")),
                None => self.one(&i.to_string()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

/// `3`, `GPU3`, `gpu3` -> 3.
fn index_of(s: &str) -> Option<u32> {
    let s = s.trim();
    let digits = if s.len() > 3 && s[..3].eq_ignore_ascii_case("gpu") {
        &s[3..]
    } else {
        s
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo(source: &str) -> Topology {
        let spec = linkwise_discovery::SourceSpec::parse(source).expect("a source");
        spec.open().expect("opens").discover().expect("discovers")
    }

    #[test]
    fn devices_are_named_as_operators_name_them() {
        let t = topo("profile:dgx-h100");
        let rs = Resolver::new(&t);
        let g3 = t
            .gpus
            .iter()
            .find(|g| g.index == 3)
            .expect("GPU3")
            .id
            .clone();
        let pci = t
            .gpus
            .iter()
            .find(|g| g.index == 3)
            .and_then(|g| g.pci_bus_id)
            .expect("pci");
        let smi = format!(
            "{:08X}:{:02X}:{:02X}.{}",
            pci.domain, pci.bus, pci.device, pci.function
        );
        for name in [
            "3",
            "GPU3",
            "gpu3",
            "Gpu3",
            smi.as_str(),
            &pci.to_string().to_uppercase(),
        ] {
            assert_eq!(rs.one(name).expect(name), g3, "{name}");
        }
        if let Some(u) = t
            .gpus
            .iter()
            .find(|g| g.index == 3)
            .and_then(|g| g.uuid.clone())
        {
            assert_eq!(rs.one(&u.to_uppercase()).expect("uuid"), g3);
            assert_eq!(rs.one(&u.to_lowercase()).expect("uuid"), g3);
        }
        let r = rs
            .all(&["0-3".to_string(), "gpu5-GPU6".to_string()])
            .expect("ranges");
        assert_eq!(r.len(), 6);
        assert_eq!(r[3], g3);
        assert!(rs.all(&["3-1".to_string()]).is_err(), "backwards range");
        assert!(
            rs.all(&["0-8".to_string()]).is_err(),
            "range past the last GPU"
        );
    }

    #[test]
    fn only_files_named_dash_read_standard_input() {
        let stdin = |s: &str| reads_stdin(&SourceSpec::parse(s).expect("a source"));
        assert!(stdin("topo-text:-"));
        assert!(stdin("snapshot:-"));
        for s in [
            "snapshot:a-",
            "topo-text:./-",
            "sysfs:-",
            "profile:-",
            "auto",
            "nvml",
        ] {
            assert!(!stdin(s), "{s}");
        }
    }

    #[test]
    fn multi_host_sources_take_host_slash_gpu() {
        let t = topo("profile:nvl72");
        let rs = Resolver::new(&t);
        let g = t.gpus.iter().find(|g| g.index == 2).expect("a GPU 2");
        let host = g.host.clone();
        for name in [
            format!("{host}/GPU2"),
            format!("{host}/gpu2"),
            format!("{}/2", host.to_uppercase()),
        ] {
            assert_eq!(rs.one(&name).expect(&name), g.id, "{name}");
        }
        let r = rs.all(&[format!("{host}/0-3")]).expect("a host range");
        assert_eq!(r.len(), 4);
        assert!(r.contains(&g.id));
        assert!(rs.one("nowhere/GPU2").is_err());
    }
}
