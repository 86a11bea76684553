//! One module per subcommand.

pub mod alloc;
pub mod discover;
pub mod profiles;
pub mod topo;

use linkwise_core::Topology;
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
