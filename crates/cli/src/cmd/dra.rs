//! `linkwise dra`: Dynamic Resource Allocation objects (`resource.k8s.io/v1`) for the fabric.
//! The objects and their rendering are `linkwise-dra`'s; this is the arguments, discovery
//! and printing.

use linkwise_dra::{Driver, Format, KeepTogether};

/// DRA: render ResourceSlices, a DeviceClass and example claims, or run the kubelet DRA plugin.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  linkwise dra slices --source profile:dgx-h100\n  \
linkwise dra class\n  linkwise dra claim --count 4 --keep-together island\n  \
linkwise dra slices --source profile:nvl72 -o json | jq '.items | length'\n  \
linkwise dra plugin --node-name gpu-node-1   # the kubelet DRA plugin (docs/dra.md)"
)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// One ResourceSlice per host (one pool per node, at most 128 devices per slice).
    Slices {
        #[arg(long, default_value = "auto", help = super::SOURCE_HELP)]
        source: String,
        #[command(flatten)]
        nvlink: super::NvlinkArgs,
        #[command(flatten)]
        common: Common,
    },
    /// The DeviceClass selecting this driver's GPUs.
    Class {
        #[command(flatten)]
        common: Common,
    },
    /// An example ResourceClaim for COUNT GPUs kept inside one NVLink island (or domain, or PCIe root).
    Claim {
        /// GPUs to claim.
        #[arg(long, default_value_t = 4)]
        count: u32,
        /// The attribute every GPU of the claim must share.
        #[arg(long, value_enum, default_value_t = Together::Island)]
        keep_together: Together,
        /// Claim name.
        #[arg(long, default_value = "gpus-one-island")]
        name: String,
        #[command(flatten)]
        common: Common,
    },
    /// Run the kubelet DRA plugin: publish this node's ResourceSlices, prepare claims.
    Plugin(super::draplugin::PluginArgs),
}

#[derive(Debug, clap::Args)]
struct Common {
    /// The DRA driver name (a DNS subdomain); attributes are published in its domain.
    #[arg(long, default_value = "gpu.linkwise.dev")]
    driver: String,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Yaml)]
    output: Output,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Output {
    Yaml,
    Json,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Together {
    Island,
    Domain,
    PcieRoot,
}

impl From<Output> for Format {
    fn from(o: Output) -> Self {
        match o {
            Output::Yaml => Format::Yaml,
            Output::Json => Format::Json,
        }
    }
}

impl From<Together> for KeepTogether {
    fn from(t: Together) -> Self {
        match t {
            Together::Island => KeepTogether::Island,
            Together::Domain => KeepTogether::Domain,
            Together::PcieRoot => KeepTogether::PcieRoot,
        }
    }
}

/// A library error in the words of the flags: bad names and counts are bad input.
fn flag_error(e: linkwise_dra::Error) -> anyhow::Error {
    use linkwise_dra::Error;
    let msg = match &e {
        Error::Driver { name } => {
            format!("--driver {name:?} must be a DNS subdomain such as gpu.example.com")
        }
        Error::ZeroCount => "--count must be at least 1".to_string(),
        Error::ClaimName { name, suggestion } => format!(
            "--name {name:?} is not a Kubernetes object name (a DNS subdomain: lower-case \
             letters, digits, '-' and '.'); for example {suggestion:?}"
        ),
        _ => return e.into(),
    };
    crate::exit::BadInput(msg).into()
}

fn print<T: serde::Serialize>(objects: &[T], output: Output) -> anyhow::Result<()> {
    crate::emit(&linkwise_dra::render(objects, output.into())?)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.what {
        What::Plugin(p) => super::draplugin::run(p),
        What::Slices {
            source,
            nvlink,
            common,
        } => {
            let driver = Driver::new(&common.driver).map_err(flag_error)?;
            let topo = super::discover_published(&source, nvlink, "ResourceSlices")?;
            print(&linkwise_dra::slices(&topo, &driver), common.output)
        }
        What::Class { common } => {
            let driver = Driver::new(&common.driver).map_err(flag_error)?;
            print(&[linkwise_dra::class(&driver)], common.output)
        }
        What::Claim {
            count,
            keep_together,
            name,
            common,
        } => {
            let driver = Driver::new(&common.driver).map_err(flag_error)?;
            let claim = linkwise_dra::claim(&driver, &name, count, keep_together.into())
                .map_err(flag_error)?;
            print(&[claim], common.output)
        }
    }
}
