//! What the server commands (`agent`, `exporter`, `extender`) share: the async runtime
//! ([`block_on`], the one place it is built), listen addresses (checked, then bound),
//! the shutdown signal, and the metrics server that `agent` and
//! `exporter` both start (its options, the GPU collector for a source, startup).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use linkwise_core::Topology;
use linkwise_discovery::SourceSpec;
use linkwise_exporter::runtime::{Exporter, ExporterConfig, ExporterHandle};
use linkwise_exporter::{Collect, HealthLink};

use crate::exit::BadInput;

/// Runs `future` to completion on the runtime every server command uses: tokio,
/// multi-threaded with two workers, I/O and timers enabled. Built here and nowhere else.
pub fn block_on<F: std::future::Future>(future: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    Ok(rt.block_on(future))
}

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

/// Refuses metrics options that can never be right (exit 2): an address that is not
/// one to listen on, an interval under 0.05 s. Nothing to check when the address is
/// "none".
pub fn check_metrics_args(m: &MetricsArgs) -> Result<(), BadInput> {
    if m.metrics_addr == "none" {
        return Ok(());
    }
    check_listen_addr("--metrics-addr", &m.metrics_addr)?;
    if !(m.metrics_interval.is_finite() && m.metrics_interval >= 0.05) {
        return Err(BadInput(format!(
            "--metrics-interval {}: give seconds, at least 0.05",
            m.metrics_interval
        )));
    }
    Ok(())
}

/// A running exporter: its handle (for XIDs from an event watcher).
#[derive(Debug)]
pub struct Running {
    /// The exporter.
    pub handle: ExporterHandle,
}

/// Binds the metrics address and starts collection and serving. `Ok(None)` when the
/// address is "none". A bind failure is an error for the standalone exporter; the agent
/// logs it and runs on. `source` chooses the collector; `source_label` is the `--source`
/// text, shown in the exporter's info metric. `health` links the exporter to the device
/// plugin's health.
pub async fn start_metrics(
    source: &SourceSpec,
    source_label: &str,
    topo: &Topology,
    m: &MetricsArgs,
    pod_resources: Option<PathBuf>,
    health: Option<HealthLink>,
) -> anyhow::Result<Option<Running>> {
    if m.metrics_addr == "none" {
        return Ok(None);
    }
    check_metrics_args(m)?;
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
        source: source_label.to_string(),
        ..ExporterConfig::default()
    };
    let mut exporter = Exporter::new(topo, collector, config);
    if let Some(ports) = ports {
        exporter = exporter.with_ports(ports);
    }
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

/// A GPU collector and, where it numbers them itself (NVML), the NVLink ports.
type Collector = (Box<dyn Collect>, Option<Vec<linkwise_exporter::Port>>);

/// The GPU source for a discovery source: NVML where it is the source (and built in),
/// generated values for profiles, snapshots and saved topo text, else the topology's own
/// state (PCIe, links as discovered) without readings. With NVML, also the NVLink ports
/// as NVML numbers them.
fn collector(source: &SourceSpec, topo: &Arc<Topology>) -> Collector {
    match source {
        SourceSpec::Profile(_) | SourceSpec::Snapshot(_) | SourceSpec::TopoText(_) => (
            Box::new(linkwise_exporter::synthetic::Synthetic::new(topo)),
            None,
        ),
        SourceSpec::Auto | SourceSpec::Nvml => nvml_collector(topo),
        SourceSpec::Sysfs(_) => static_collector(topo),
    }
}

/// NVML's readings, or the topology's state when NVML does not load.
#[cfg(feature = "nvml")]
fn nvml_collector(topo: &Arc<Topology>) -> Collector {
    match linkwise_exporter::nvml::NvmlCollector::new(topo.clone()) {
        Ok(c) => {
            let ports = c.ports();
            (Box::new(c), Some(ports))
        }
        Err(error) => {
            tracing::warn!(%error, "NVML metrics unavailable; serving the topology's state only");
            static_collector(topo)
        }
    }
}

/// Built without NVML: the topology's state.
#[cfg(not(feature = "nvml"))]
fn nvml_collector(topo: &Arc<Topology>) -> Collector {
    static_collector(topo)
}

/// The topology's own state, without readings.
fn static_collector(topo: &Topology) -> Collector {
    (
        Box::new(linkwise_exporter::static_state::Static::new(topo)),
        None,
    )
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

/// Waits for SIGTERM or Ctrl-C, whichever comes first (logged).
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = term => tracing::info!("SIGTERM"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_collector_follows_the_source_kind() {
        let topo = Arc::new(linkwise_core::profiles::get("dgx-h100").expect("a profile"));
        for generated in ["profile:dgx-h100", "snapshot:-", "topo-text:t.txt"] {
            let spec = SourceSpec::parse(generated).expect("a source");
            let (c, ports) = collector(&spec, &topo);
            assert!(c.synthetic(), "{generated}");
            assert!(ports.is_none(), "{generated}");
        }
        // sysfs serves the topology's state; auto and nvml read NVML where it loads and
        // fall back to that state: never generated values.
        for live in ["sysfs", "sysfs:/tmp", "auto", "nvml"] {
            let spec = SourceSpec::parse(live).expect("a source");
            assert!(!collector(&spec, &topo).0.synthetic(), "{live}");
        }
    }

    #[test]
    fn listen_addresses_are_checked() {
        for ok in [
            "0.0.0.0:9460",
            "[::]:0",
            "localhost:9460",
            "node-1.example:80",
        ] {
            assert!(check_listen_addr("--x", ok).is_ok(), "{ok}");
        }
        for bad in [
            "9460",
            "localhost",
            "host:99999",
            "-bad-:80",
            ":80",
            "a b:80",
        ] {
            assert!(check_listen_addr("--x", bad).is_err(), "{bad}");
        }
    }
}
