//! The `linkwise` binary: argument parsing, tracing setup, exit codes.
//!
//! Every subcommand lives in `cmd/<name>.rs`; output renderers that more than one
//! command uses live in `render/`. Library crates never read argv or the environment.

mod cmd;

/// Writes to standard output; a closed pipe (`linkwise ... | head`) ends the command
/// quietly with success instead of a panic.
pub fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(anyhow::Error::new)
}

/// `println!` through [`emit`].
#[macro_export]
macro_rules! emitln {
    ($($arg:tt)*) => {
        $crate::emit(&format!("{}\n", format_args!($($arg)*)))
    };
}
mod exit;
mod observability;
mod render;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The version line: the package version and the optional features built in.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (features: ", features!(), ")");

/// The optional features this binary was built with, for `--version`.
#[cfg(feature = "nvml")]
macro_rules! features {
    () => {
        "nvml"
    };
}
#[cfg(not(feature = "nvml"))]
macro_rules! features {
    () => {
        "-nvml"
    };
}
use features;

/// linkwise: the GPU fabric (NVLink, NVSwitch, NVLink Fusion, PCIe, NUMA) as a
/// first-class input for scheduling, observing and upgrading GPU clusters.
#[derive(Debug, Parser)]
#[command(
    name = "linkwise",
    version = VERSION,
    propagate_version = true,
    after_help = "Examples:\n  linkwise discover --source profile:dgx-h100\n  linkwise topo --source profile:dgx1-v100\n  linkwise topo --source topo-text:topo.txt -o json\n  linkwise alloc --source profile:dgx1-v100 --count 2 --explain\n  linkwise profiles"
)]
struct Cli {
    /// The most bytes any one input file or standard input may hold (suffixes K, M, G);
    /// reading stops there with an error.
    #[arg(long, global = true, value_parser = linkwise_fsio::parse_size, default_value = "64M")]
    max_input_bytes: u64,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = observability::LogFormat::Text)]
    log_format: observability::LogFormat,
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Discover the node's fabric and print it (snapshot or summary).
    Discover(cmd::discover::Args),
    /// Print the GPU pair matrix (`nvidia-smi topo -m` vocabulary) or draw the fabric.
    Topo(cmd::topo::Args),
    /// List the built-in profiles, one per line (name, then description).
    Profiles(cmd::profiles::Args),
    /// Choose the best GPUs for a request (NVLink-, NUMA- and fragmentation-aware).
    Alloc(cmd::alloc::Args),
    /// Run the node agent: the kubelet device plugin with NVLink-aware preferred allocation.
    Agent(cmd::agent::Args),
    /// Print the node labels describing the fabric (NFD feature file format available).
    Labels(cmd::labels::Args),
    /// Render DRA objects (resource.k8s.io/v1): ResourceSlices, a DeviceClass, a claim.
    Dra(cmd::dra::Args),
    /// Slurm: gres.conf, the node line, topology.conf; prolog/epilog hooks for job attribution.
    Slurm(cmd::slurm::Args),
    /// Serve GPU, NVLink and PCIe metrics (OpenMetrics) without the device plugin.
    Exporter(cmd::exporter::Args),
    /// Serve the kube-scheduler extender: filter and prioritize GPU pods by NVLink fabric.
    Extender(cmd::extender::Args),
    /// Replay a placement trace (openb CSVs) for policies and seeds; allocation and fragmentation.
    Sim(cmd::sim::Args),
    /// Check a node is ready for its role: kernel options, IOMMU/VFIO, modules, Secure Boot, fabric.
    Preflight(cmd::preflight::Args),
    /// Read and verify kernel module signatures (PKCS#7), against certificates or a kernel image's keys.
    Modsig(cmd::modsig::Args),
    /// Print this node's inventory report (host, driver, GPUs, artefact digests, fingerprint).
    Report(cmd::report::Args),
    /// The fleet inventory: ingest node reports into a database, serve agents, nodes, history, drift, attestation.
    Fleet(cmd::fleet::Args),
    /// Validate the fabric: expected bandwidth from the topology, nvbandwidth / nccl-tests / DCGM results checked against it.
    Validate(cmd::validate::Args),
    /// Plan a driver, firmware or kernel rollout: canaries per hardware class, then growing waves.
    Rollout(cmd::rollout::Args),
    /// Print the shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(cmd::completions::CompletionArgs),
    /// Write the man pages (section 1) into a directory.
    Manpages(cmd::completions::ManArgs),
}

/// Parses the command line: the arguments and whether errors are to be JSON (`-o json`,
/// or `--log-format json`). clap's own refusals (exit 2) follow the same rule; `--help`
/// and `--version` print as usual.
fn parse_args() -> Result<(Cli, bool), ExitCode> {
    use clap::{CommandFactory, FromArgMatches};
    let parsed = Cli::command().try_get_matches().and_then(|m| {
        let cli = Cli::from_arg_matches(&m)?;
        let json =
            exit::json_requested(&m) || matches!(cli.log_format, observability::LogFormat::Json);
        Ok((cli, json))
    });
    match parsed {
        Ok(v) => Ok(v),
        Err(e) if e.use_stderr() && json_in_argv() => {
            let code = u8::try_from(e.exit_code()).unwrap_or(exit::BAD_INPUT);
            let message = e.render().to_string();
            let message = message.trim_end();
            exit::print_error(
                message.strip_prefix("error: ").unwrap_or(message),
                code,
                true,
            );
            Err(ExitCode::from(code))
        }
        Err(e) => e.exit(),
    }
}

/// For a command line clap refused: `-o json` or `--log-format json` among the words.
fn json_in_argv() -> bool {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    exit::json_requested_in(&args)
        || args.iter().any(|a| a == "--log-format=json")
        || args
            .windows(2)
            .any(|w| w[0] == "--log-format" && w[1] == "json")
}

/// Whether log lines on stderr are JSON (`--log-format json`); [`serving`] follows it.
static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Says on stderr, at every verbosity, that a server is up: `linkwise: serving on ADDR
/// (WHAT)`, with the address actually bound (port 0 shows the chosen port). A JSON log
/// line under `--log-format json`.
pub fn serving(addr: std::net::SocketAddr, what: &str) {
    if JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
        let v = serde_json::json!({
            "level": "INFO",
            "fields": { "message": format!("serving on {addr}"), "addr": addr.to_string(), "serves": what },
            "target": "linkwise",
        });
        eprintln!("{v}");
    } else {
        eprintln!("linkwise: serving on {addr} ({what})");
    }
}

fn main() -> ExitCode {
    let (cli, json_errors) = match parse_args() {
        Ok(v) => v,
        Err(code) => return code,
    };
    observability::init(cli.log_format, cli.verbose);
    JSON_LOGS.store(
        matches!(cli.log_format, observability::LogFormat::Json),
        std::sync::atomic::Ordering::Relaxed,
    );
    linkwise_fsio::set_max_input_bytes(cli.max_input_bytes);
    let result = match cli.command {
        Command::Discover(a) => cmd::discover::run(a),
        Command::Topo(a) => cmd::topo::run(a),
        Command::Profiles(a) => cmd::profiles::run(a),
        Command::Alloc(a) => cmd::alloc::run(a),
        Command::Agent(a) => cmd::agent::run(a),
        Command::Labels(a) => cmd::labels::run(a),
        Command::Dra(a) => cmd::dra::run(a),
        Command::Slurm(a) => cmd::slurm::run(a),
        Command::Exporter(a) => cmd::exporter::run(a),
        Command::Extender(a) => cmd::extender::run(a),
        Command::Sim(a) => cmd::sim::run(a),
        Command::Preflight(a) => cmd::preflight::run(a),
        Command::Modsig(a) => cmd::modsig::run(a),
        Command::Report(a) => cmd::report::run(a),
        Command::Fleet(a) => cmd::fleet::run(a),
        Command::Validate(a) => cmd::validate::run(a),
        Command::Rollout(a) => cmd::rollout::run(a),
        Command::Completions(a) => cmd::completions::completions(a),
        Command::Manpages(a) => cmd::completions::manpages(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            let code = exit::code_for(&e);
            exit::print_error(&format!("{e:#}"), code, json_errors);
            ExitCode::from(code)
        }
    }
}
