//! `linkwise discover`: the fabric as a snapshot or a readable summary.

use linkwise_core::snapshot::{self, Format};

use crate::render;

/// Discover the fabric and print it.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  linkwise discover                               # this machine (NVML or sysfs)\n  linkwise discover --source profile:dgx-h100     # a built-in profile, no GPU needed\n  linkwise discover --source profile:nvl72 -o yaml > nvl72.yaml\n  linkwise discover --source snapshot:nvl72.yaml\n  linkwise discover --source topo-text:topo.txt -o json"
)]
pub struct Args {
    #[arg(long, default_value = "auto", help = super::SOURCE_HELP)]
    source: String,
    /// Output: a readable summary, or the snapshot as JSON or YAML.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Output {
    Table,
    Json,
    Yaml,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let topo = super::discover(&args.source)?;
    let text = match args.output {
        Output::Table => render::summary::render(&topo),
        Output::Json => snapshot::to_string(&topo, Format::Json)?,
        Output::Yaml => snapshot::to_string(&topo, Format::Yaml)?,
    };
    crate::emit(&text)?;
    Ok(())
}
