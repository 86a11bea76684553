//! `linkwise exporter`: OpenMetrics for GPUs, NVLink and PCIe links, standalone (the
//! metrics server itself, which `linkwise agent` starts too, is in [`super::serve`]).

use std::path::PathBuf;

use linkwise_discovery::SourceSpec;
use linkwise_exporter::catalogue::{ATTRIBUTION_LABELS, FAMILIES};

use super::serve::{self, MetricsArgs};
use crate::exit::BadInput;

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
echo 'GPU3 unhealthy XID 79' > health; linkwise exporter --source profile:dgx-h100 --health-file health\n  \
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
    /// A control file that marks devices unhealthy or healthy, as `linkwise agent` reads it:
    /// `DEVICE unhealthy [reason]` or `DEVICE healthy` per line (DEVICE: index, label, UUID
    /// or PCI bus id); read every 250 ms, shown in linkwise_gpu_healthy.
    #[arg(long, value_name = "FILE")]
    health_file: Option<PathBuf>,
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
    serve::check_listen_addr("--metrics-addr", &args.metrics.metrics_addr)?;
    let spec = SourceSpec::parse(&args.source)?;
    let topo = super::discover_spec_published(&spec, args.nvlink, "NVLink metrics")?;
    serve::block_on(async move {
        let socket = (args.pod_resources_socket.as_os_str() != "none")
            .then_some(args.pod_resources_socket.clone());
        let health = args.health_file.clone().map(|path| {
            let initial: std::collections::BTreeMap<_, _> = topo
                .gpus
                .iter()
                .map(|g| (g.id.clone(), g.health.is_healthy()))
                .collect();
            let (tx, rx) = tokio::sync::watch::channel(initial.clone());
            let tx = std::sync::Arc::new(tx);
            let mark = {
                let tx = tx.clone();
                move |id: &linkwise_core::GpuId, healthy: bool| {
                    tx.send_if_modified(|m| match m.get_mut(id) {
                        Some(h) if *h != healthy => {
                            *h = healthy;
                            true
                        }
                        _ => false,
                    });
                }
            };
            tokio::spawn(super::agent::watch_health_file(
                path,
                initial,
                mark.clone(),
                super::Resolver::new(&topo),
            ));
            linkwise_exporter::HealthLink::new(mark, rx)
        });
        let Some(running) =
            serve::start_metrics(&spec, &args.source, &topo, &args.metrics, socket, health).await?
        else {
            return Ok(());
        };
        serve::shutdown_signal().await;
        running.handle.shutdown();
        Ok(())
    })?
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
