//! `linkwise topo`: the pair matrix, or a drawing of the fabric.

use crate::render;

/// Print the GPU pair matrix in `nvidia-smi topo -m` vocabulary, or draw the fabric.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Cells: X self, NV# a bonded set of # NVLinks (direct or through NVSwitch), \
PIX at most one PCIe bridge, PXB several bridges, PHB through a host bridge, NODE between host bridges \
of one NUMA node, SYS across NUMA nodes, NET different hosts without NVLink.\n\n\
Examples:\n  linkwise topo --source profile:dgx1-v100\n  nvidia-smi topo -m | linkwise topo --source topo-text:- -o json\n  \
linkwise topo --source profile:dgx-h100 -o svg > dgx-h100.svg\n  linkwise topo --source profile:nvl72 -o dot | dot -Tpng > nvl72.png"
)]
pub struct Args {
    #[arg(long, default_value = "auto", help = super::SOURCE_HELP)]
    source: String,
    /// Output: the matrix as text or JSON, or the fabric as Graphviz dot or SVG.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Output {
    Table,
    Json,
    Dot,
    Svg,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let topo = super::discover(&args.source)?;
    let text = match args.output {
        Output::Table => render::matrix::table(&topo),
        Output::Json => render::matrix::json(&topo)?,
        Output::Dot => render::graph::dot(&topo),
        Output::Svg => render::svg::render(&topo),
    };
    crate::emit(&text)?;
    Ok(())
}
