//! `linkwise exporter`: OpenMetrics for GPUs, NVLink and PCIe links, standalone; and the
//! metrics options `linkwise agent` shares.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use linkwise_core::Topology;
use linkwise_deviceplugin::HealthHandle;
use linkwise_exporter::Collect;
use linkwise_exporter::catalogue::{ATTRIBUTION_LABELS, FAMILIES};
use linkwise_exporter::runtime::{Exporter, ExporterConfig, ExporterHandle};

use crate::exit::BadInput;

/// The metrics options of `linkwise agent` and `linkwise exporter`.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsArgs {
    /// Where to serve /metrics (OpenMetrics) and /healthz; "none" turns the exporter off.
    #[arg(long, default_value = "0.0.0.0:9460")]
    pub metrics_addr: String,
    /// Seconds between collections (a scrape serves the last one; it never reads devices).
    #[arg(long, default_value_t = 5.0)]
    pub metrics_interval: f64,
    /// The Slurm job mapping directory (`linkwise slurm prolog` writes it); read when present.
    #[arg(long, default_value = linkwise_core::conventions::jobdir::DEFAULT_DIR)]
    pub slurm_job_dir: PathBuf,
    /// XIDs that are counted but do not mark a GPU unhealthy (application-level errors).
    #[arg(long, value_delimiter = ',', default_value = linkwise_core::conventions::xid::DEFAULT_IGNORED_XIDS_LIST)]
    pub ignore_xids: Vec<u64>,
}

/// Serve GPU, NVLink and PCIe metrics (OpenMetrics) without the device plugin.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Values are collected on a timer (--metrics-interval) into a cache; a scrape only serves \
the cache, so a slow driver or kubelet never slows or breaks a scrape. Pod attribution (namespace, pod, \
container) comes from the kubelet's PodResources API on its own timer; Slurm attribution (slurm_job) from the \
files `linkwise slurm prolog` writes.\n\n\
Sources: nvml (or auto with NVML built in) reads the GPUs; profile:, snapshot: and topo-text: sources \
generate deterministic synthetic values, marked by linkwise_exporter_info{synthetic=\"true\"}; sysfs gives \
the topology and PCIe state only.\n\n\
Examples:\n  linkwise exporter --source profile:nvl72 --metrics-addr 127.0.0.1:9460\n  \
curl -s localhost:9460/metrics | head\n  linkwise exporter --list-metrics\n  \
linkwise exporter --list-metrics -o json"
)]
pub struct Args {
    #[arg(long, default_value = "auto", help = super::SOURCE_HELP)]
    source: String,
    #[command(flatten)]
    metrics: MetricsArgs,
    #[command(flatten)]
    nvlink: super::NvlinkArgs,
    /// The kubelet's PodResources socket ("none": no pod attribution).
    #[arg(long, default_value = linkwise_deviceplugin::DEFAULT_POD_RESOURCES_SOCKET)]
    pod_resources_socket: PathBuf,
    /// Print the metric families and exit.
    #[arg(long)]
    list_metrics: bool,
    /// Output of --list-metrics.
    #[arg(short, long, value_enum, default_value_t = ListFormat::Table)]
    output: ListFormat,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ListFormat {
    Table,
    Json,
    Markdown,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.list_metrics {
        return list(args.output);
    }
    if args.metrics.metrics_addr == "none" {
        return Err(BadInput("--metrics-addr none: nothing to serve".into()).into());
    }
    check_listen_addr("--metrics-addr", &args.metrics.metrics_addr)?;
    let topo = super::discover_published(&args.source, args.nvlink, "NVLink metrics")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let socket = (args.pod_resources_socket.as_os_str() != "none")
            .then_some(args.pod_resources_socket.clone());
        let Some(running) = start(&args.source, &topo, &args.metrics, socket, None).await? else {
            return Ok(());
        };
        super::agent::shutdown_signal().await;
        running.handle.shutdown();
        Ok(())
    })
}

/// A running exporter: its handle (for XIDs from an event watcher).
#[derive(Debug)]
pub struct Running {
    /// The exporter.
    pub handle: ExporterHandle,
}

/// Binds the metrics address and starts collection and serving. `Ok(None)` when the
/// address is "none". A bind failure is an error for the standalone exporter; the agent
/// logs it and runs on.
pub async fn start(
    source: &str,
    topo: &Topology,
    m: &MetricsArgs,
    pod_resources: Option<PathBuf>,
    health: Option<HealthHandle>,
) -> anyhow::Result<Option<Running>> {
    if m.metrics_addr == "none" {
        return Ok(None);
    }
    if !(m.metrics_interval.is_finite() && m.metrics_interval >= 0.05) {
        return Err(BadInput(format!(
            "--metrics-interval {}: give seconds, at least 0.05",
            m.metrics_interval
        ))
        .into());
    }
    check_listen_addr("--metrics-addr", &m.metrics_addr)?;
    let listener = bind("--metrics-addr", &m.metrics_addr)
        .await
        .map_err(|e| anyhow::anyhow!("{e:#} (choose another --metrics-addr, or none)"))?;
    let addr = listener.local_addr()?;
    let topo = Arc::new(topo.clone());
    let (collector, ports) = collector(source, &topo);
    let synthetic = collector.synthetic();
    let config = ExporterConfig {
        interval: Duration::from_secs_f64(m.metrics_interval),
        podresources_socket: pod_resources,
        slurm_dir: Some(m.slurm_job_dir.clone()),
        ignored_xids: m.ignore_xids.clone(),
        hostname: topo
            .hosts
            .first()
            .map(|h| h.name.clone())
            .unwrap_or_default(),
        source: source.to_string(),
        ..ExporterConfig::default()
    };
    let mut exporter = Exporter::new(topo, collector, config);
    if let Some(ports) = ports {
        exporter = exporter.with_ports(ports);
    }
    // The exporter marks devices in the device plugin's health and watches it.
    let health = health.map(|h| {
        let watch = h.subscribe();
        linkwise_exporter::HealthLink::new(move |id, healthy| h.set(id, healthy), watch)
    });
    let handle = exporter.spawn(health);
    tokio::spawn(linkwise_exporter::server::serve(
        listener,
        handle.clone(),
        std::future::pending::<()>(),
    ));
    tracing::info!(%addr, synthetic, "metrics served at http://{addr}/metrics");
    crate::serving(addr, "metrics: GET /metrics, /healthz");
    Ok(Some(Running { handle }))
}

/// Checks that `value` (given to `flag`) is an address to listen on: `IP:PORT`,
/// `[IPv6]:PORT` or `HOSTNAME:PORT`. Anything else is bad input (exit 2), whatever
/// command it was given to.
pub fn check_listen_addr(flag: &str, value: &str) -> Result<(), BadInput> {
    if value.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(());
    }
    let bad = |why: &str| {
        BadInput(format!(
            "{flag} {value:?}: {why}; give HOST:PORT, e.g. 0.0.0.0:9460, [::]:9460 or localhost:9460"
        ))
    };
    let Some((host, port)) = value.rsplit_once(':') else {
        return Err(bad("no port"));
    };
    if port.parse::<u16>().is_err() {
        return Err(bad("the port is not a number from 0 to 65535"));
    }
    let hostname = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if hostname {
        Ok(())
    } else {
        Err(bad("not an IP address or host name"))
    }
}

/// Binds `value` (given to `flag`) for serving. A malformed address is bad input (exit
/// 2); one that cannot be bound — in use, not on this host, not permitted, a name that
/// does not resolve — is a runtime failure (exit 1). The same for every server command.
pub async fn bind(flag: &str, value: &str) -> anyhow::Result<tokio::net::TcpListener> {
    check_listen_addr(flag, value)?;
    tokio::net::TcpListener::bind(value)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {value} ({flag}): {e}"))
}

/// The GPU source for a discovery source: NVML where it is the source (and built in),
/// generated values for profiles, snapshots and saved topo text, else the topology's own
/// state (PCIe, links as discovered) without readings. With NVML, also the NVLink ports
/// as NVML numbers them.
fn collector(
    source: &str,
    topo: &Arc<Topology>,
) -> (Box<dyn Collect>, Option<Vec<linkwise_exporter::Port>>) {
    let kind = source.split(':').next().unwrap_or_default();
    if matches!(kind, "profile" | "snapshot" | "topo-text") {
        return (
            Box::new(linkwise_exporter::synthetic::Synthetic::new(topo)),
            None,
        );
    }
    #[cfg(feature = "nvml")]
    if matches!(kind, "auto" | "nvml") {
        match linkwise_exporter::nvml::NvmlCollector::new(topo.clone()) {
            Ok(c) => {
                let ports = c.ports();
                return (Box::new(c), Some(ports));
            }
            Err(error) => {
                tracing::warn!(%error, "NVML metrics unavailable; serving the topology's state only");
            }
        }
    }
    (
        Box::new(linkwise_exporter::static_state::Static::new(topo)),
        None,
    )
}

fn list(format: ListFormat) -> anyhow::Result<()> {
    match format {
        ListFormat::Markdown => {
            crate::emit(&linkwise_exporter::docs::metrics_markdown())?;
        }
        ListFormat::Json => {
            let v: Vec<serde_json::Value> = FAMILIES
                .iter()
                .map(|f| {
                    serde_json::json!({
                        "name": f.sample_name(),
                        "family": f.name,
                        "type": f.kind.as_str(),
                        "unit": f.unit,
                        "labels": f.labels,
                        "attributionLabels": if f.attributed { ATTRIBUTION_LABELS } else { &[][..] },
                        "per": f.per,
                        "help": f.help,
                    })
                })
                .collect();
            crate::emit(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
        }
        ListFormat::Table => {
            let width = FAMILIES
                .iter()
                .map(|f| f.sample_name().len())
                .max()
                .unwrap_or(0);
            let mut out = String::new();
            for f in FAMILIES {
                out.push_str(&format!(
                    "{:width$}  {:7}  {}\n",
                    f.sample_name(),
                    f.kind.as_str(),
                    f.labels.join(",")
                ));
            }
            crate::emit(&out)?;
        }
    }
    Ok(())
}
