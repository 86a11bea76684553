//! `linkwise agent`: the node agent — the kubelet device plugin, fed by discovery.

use std::path::{Path, PathBuf};
use std::time::Duration;

use linkwise_core::GpuId;
use linkwise_deviceplugin::{Config, GpuPlugin, HealthHandle};
use linkwise_discovery::SourceSpec;

use super::Resolver;

/// How often the health control file is read.
const HEALTH_POLL: Duration = Duration::from_millis(250);

/// Run the node agent: a kubelet device plugin with NVLink-aware preferred allocation.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The plugin serves on KUBELET_DIR/SOCKET_NAME, registers with KUBELET_DIR/kubelet.sock once \
serving (retrying while the kubelet is absent), serves and registers again when the kubelet restarts, and removes \
its socket on SIGTERM or Ctrl-C.\n\n\
Running beside NVIDIA's device plugin: give linkwise another --resource-name (e.g. linkwise.dev/gpu) so the two \
do not advertise the same resource. Running instead of it: keep the default nvidia.com/gpu so existing pod specs \
work, and remove NVIDIA's plugin from the node.\n\n\
Metrics: /metrics (OpenMetrics; docs/metrics.md) on --metrics-addr, collected every --metrics-interval \
seconds into a cache, with pod attribution from PodResources and Slurm job attribution; health changes \
show there within 1 s.\n\n\
Health: with NVML built in (--features nvml) and an auto or nvml source, critical XID events mark a GPU \
unhealthy (except --ignore-xids), as do NVLink links going down and GPUs lost; with any source, a control file (--health-file) whose lines \
read `DEVICE unhealthy [reason]` or `DEVICE healthy` (DEVICE: index, label, UUID or PCI bus id; `#` comments) \
flips devices; it is read every 250 ms.\n\n\
Examples:\n  linkwise agent --source profile:dgx1-v100 --kubelet-dir /tmp/kubelet\n  \
linkwise agent --resource-name linkwise.dev/gpu --cdi\n  \
linkwise agent --dra   # and the kubelet DRA plugin (docs/dra.md)\n  \
echo 'GPU3 unhealthy XID 79' > /run/linkwise/health; linkwise agent --health-file /run/linkwise/health"
)]
pub struct Args {
    #[arg(long, default_value = "auto", help = super::SOURCE_HELP)]
    source: String,
    /// The kubelet's device-plugin directory.
    #[arg(long, default_value = linkwise_deviceplugin::DEFAULT_KUBELET_DIR)]
    kubelet_dir: PathBuf,
    /// The plugin socket's file name in the device-plugin directory.
    #[arg(long, default_value = linkwise_deviceplugin::DEFAULT_SOCKET)]
    socket_name: String,
    /// The extended resource to advertise.
    #[arg(long, default_value = linkwise_deviceplugin::DEFAULT_RESOURCE)]
    resource_name: String,
    /// Also return CDI device names (RESOURCE=UUID) from Allocate.
    #[arg(long)]
    cdi: bool,
    /// Where the GPU device nodes are (only existing ones are passed to containers).
    #[arg(long, default_value = "/dev")]
    dev_root: PathBuf,
    /// A control file that marks devices unhealthy or healthy (see below).
    #[arg(long)]
    health_file: Option<PathBuf>,
    /// Where to write the Node Feature Discovery feature file (`linkwise`); "none" to skip.
    #[arg(
        long,
        default_value = "/etc/kubernetes/node-feature-discovery/features.d"
    )]
    nfd_features_dir: PathBuf,
    /// Label key prefix for the feature file.
    #[arg(long, default_value = linkwise_core::labels::DEFAULT_PREFIX)]
    label_prefix: String,
    /// This node's name, for the node annotation (default: $NODE_NAME, else the discovered host name).
    #[arg(long)]
    node_name: Option<String>,
    /// Do not publish the `linkwise.dev/fabric` node annotation.
    #[arg(long)]
    no_annotation: bool,
    /// The kubelet's PodResources socket (which devices containers hold).
    #[arg(long, default_value = linkwise_deviceplugin::DEFAULT_POD_RESOURCES_SOCKET)]
    pod_resources_socket: PathBuf,
    /// Seconds between node annotation refreshes (health changes publish at once).
    #[arg(long, default_value_t = 10)]
    annotate_every: u64,
    #[command(flatten)]
    metrics: super::serve::MetricsArgs,
    #[command(flatten)]
    nvlink: super::NvlinkArgs,
    /// Also run the kubelet DRA plugin: publish this node's ResourceSlices and prepare
    /// claims (`linkwise dra plugin`; docs/dra.md), with the device plugin's health.
    #[arg(long)]
    dra: bool,
    /// The DRA driver name (with --dra).
    #[arg(long, default_value = linkwise_draplugin::DEFAULT_DRIVER, requires = "dra")]
    dra_driver: String,
    /// The kubelet's root directory, for the DRA plugin's sockets (with --dra).
    #[arg(long, default_value = linkwise_draplugin::DEFAULT_KUBELET_DIR, requires = "dra")]
    dra_kubelet_dir: PathBuf,
    /// Where the DRA plugin writes the claims' CDI specs (with --dra).
    #[arg(long, default_value = linkwise_draplugin::DEFAULT_CDI_DIR, requires = "dra")]
    cdi_dir: PathBuf,
    /// Delete this node's ResourceSlices when the agent stops (with --dra).
    #[arg(long, requires = "dra")]
    remove_slices_on_exit: bool,
}

/// The environment variable the DaemonSet sets from the downward API.
const NODE_NAME_ENV: &str = "NODE_NAME";

/// Flag values that cannot be right, refused before anything starts (exit 2).
fn check_args(args: &Args) -> Result<(), crate::exit::BadInput> {
    use linkwise_core::labels::is_dns_subdomain;
    let bad = |m: String| Err(crate::exit::BadInput(m));
    let valid_resource = args
        .resource_name
        .split_once('/')
        .is_some_and(|(domain, name)| {
            is_dns_subdomain(domain)
                && linkwise_core::labels::is_label_value(name)
                && !name.is_empty()
        });
    if !valid_resource {
        return bad(format!(
            "--resource-name {:?}: an extended resource is <vendor-domain>/<name>, e.g. nvidia.com/gpu",
            args.resource_name
        ));
    }
    if args.socket_name.is_empty()
        || args.socket_name.contains('/')
        || args.socket_name == "."
        || args.socket_name == ".."
        || args.socket_name == linkwise_deviceplugin::KUBELET_SOCKET
    {
        return bad(format!(
            "--socket-name {:?}: a plain file name in --kubelet-dir, other than kubelet.sock",
            args.socket_name
        ));
    }
    if !linkwise_core::labels::is_label_key(&format!("{}/x", args.label_prefix)) {
        return bad(format!(
            "--label-prefix {:?} is not a DNS subdomain",
            args.label_prefix
        ));
    }
    if let Some(n) = &args.node_name
        && !is_dns_subdomain(n)
    {
        return bad(format!(
            "--node-name {n:?} is not a Kubernetes node name (a DNS subdomain: lower-case letters, digits, '-' and '.')"
        ));
    }
    if args.annotate_every == 0 {
        return bad("--annotate-every must be at least 1 second".into());
    }
    if args.kubelet_dir.as_os_str().is_empty() {
        return bad("--kubelet-dir is empty".into());
    }
    // The metrics server may fail to bind at run time (logged; the device plugin runs
    // on), but a value that can never be right is refused here.
    super::serve::check_metrics_args(&args.metrics)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    check_args(&args)?;
    let spec = SourceSpec::parse(&args.source)?;
    let topo = super::discover_spec_published(
        &spec,
        args.nvlink,
        "node labels, preferred allocations and the fabric annotation",
    )?;
    if topo.gpus.is_empty() {
        tracing::warn!(source = %topo.source, "no GPU found; serving an empty device list");
    }
    if args.nfd_features_dir.as_os_str() != "none" {
        let file = args.nfd_features_dir.join("linkwise");
        let text = super::labels::nfd_file(&topo, None, &args.label_prefix);
        match linkwise_fsio::write_atomic(&file, text.as_bytes()) {
            Ok(()) => tracing::info!(file = %file.display(), "node labels written"),
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "node labels not written; the device plugin runs anyway")
            }
        }
    }
    let names = Resolver::new(&topo);
    let node = args
        .node_name
        .clone()
        .or_else(|| std::env::var(NODE_NAME_ENV).ok().filter(|s| !s.is_empty()))
        .or_else(|| topo.hosts.first().map(|h| h.name.clone()))
        .unwrap_or_default();
    let annotate = (!args.no_annotation).then(|| super::annotate::Inputs {
        topo: topo.clone(),
        host: topo
            .hosts
            .first()
            .map(|h| h.name.clone())
            .unwrap_or_default(),
        resource: args.resource_name.clone(),
        pod_resources: args.pod_resources_socket.clone(),
        every: Duration::from_secs(args.annotate_every),
    });
    let exporter_topo = (args.metrics.metrics_addr != "none").then(|| topo.clone());
    let dra = args.dra.then(|| {
        (
            topo.clone(),
            super::draplugin::Setup {
                driver: args.dra_driver.clone(),
                node: Some(node.clone()),
                kubelet_dir: args.dra_kubelet_dir.clone(),
                cdi_dir: args.cdi_dir.clone(),
                dev_root: args.dev_root.clone(),
                remove_slices_on_exit: args.remove_slices_on_exit,
            },
        )
    });
    let plugin = GpuPlugin::new(
        topo,
        Config {
            kubelet_dir: args.kubelet_dir,
            socket_name: args.socket_name,
            resource_name: args.resource_name,
            cdi: args.cdi,
            dev_root: args.dev_root,
        },
    );
    super::serve::block_on(async move {
        if let Some(path) = args.health_file {
            let health = plugin.health();
            tokio::spawn(watch_health_file(
                path,
                health.snapshot(),
                move |id, h| health.set(id, h),
                names,
            ));
        }
        let exporter = match &exporter_topo {
            Some(t) => match super::serve::start_metrics(
                &spec,
                &args.source,
                t,
                &args.metrics,
                Some(args.pod_resources_socket.clone()),
                Some(health_link(plugin.health())),
            )
            .await
            {
                Ok(running) => running.map(|r| r.handle),
                Err(error) => {
                    tracing::error!(error = %format!("{error:#}"), "metrics off; the device plugin runs anyway");
                    None
                }
            },
            None => None,
        };
        spawn_xid_watch(&spec, &args.metrics.ignore_xids, plugin.health(), exporter);
        if let Some(inputs) = annotate {
            match super::annotate::NodeAnnotator::from_environment(&node).await {
                Ok(annotator) => {
                    tokio::spawn(super::annotate::run(annotator, inputs, plugin.health()));
                }
                Err(reason) => tracing::info!(
                    %reason,
                    "node annotation off: no Kubernetes API credentials (in-cluster service account or kubeconfig); the device plugin runs anyway"
                ),
            }
        }
        let dra = match dra {
            Some((topo, setup)) => {
                let health = linkwise_draplugin::Health::new(plugin.health().subscribe());
                // Discovered once, as the device plugin's devices are.
                Some(super::draplugin::build(&topo, setup, health).await?)
            }
            None => None,
        };
        // One signal stops both plugins.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            super::serve::shutdown_signal().await;
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let device_plugin = linkwise_deviceplugin::run(plugin, stopped(stop_rx.clone()));
        match dra {
            Some(built) => {
                let (a, b) = tokio::join!(
                    device_plugin,
                    linkwise_draplugin::run(
                        built.plugin,
                        Some(built.publisher),
                        built.options,
                        stopped(stop_rx)
                    )
                );
                a?;
                b?;
            }
            None => device_plugin.await?,
        }
        anyhow::Ok(())
    })??;
    Ok(())
}

/// With NVML built in and an `auto` or `nvml` source: XID events mark GPUs unhealthy
/// (through the exporter, which also counts them, when metrics are on).
#[cfg(feature = "nvml")]
fn spawn_xid_watch(
    source: &SourceSpec,
    ignored: &[u64],
    health: HealthHandle,
    exporter: Option<linkwise_exporter::runtime::ExporterHandle>,
) {
    if !matches!(source, SourceSpec::Auto | SourceSpec::Nvml) {
        return;
    }
    // With the exporter every XID is counted and it applies the ignore list itself.
    let watch_ignored = if exporter.is_some() {
        Vec::new()
    } else {
        ignored.to_vec()
    };
    tokio::task::spawn_blocking(move || {
        let result = linkwise_discovery::watch_xids(&watch_ignored, |gpu, xid| {
            tracing::warn!(%gpu, xid, "XID");
            match &exporter {
                Some(e) => e.record_xid(&gpu, xid),
                None => health.set(&gpu, false),
            }
        });
        if let Err(error) = result {
            tracing::info!(%error, "XID health events off");
        }
    });
}

#[cfg(not(feature = "nvml"))]
fn spawn_xid_watch(
    _source: &SourceSpec,
    _ignored: &[u64],
    _health: HealthHandle,
    _exporter: Option<linkwise_exporter::runtime::ExporterHandle>,
) {
    tracing::debug!("built without NVML: XID health events off (use --health-file)");
}

/// The exporter marks devices in the device plugin's health and watches it.
fn health_link(health: HealthHandle) -> linkwise_exporter::HealthLink {
    let watch = health.subscribe();
    linkwise_exporter::HealthLink::new(move |id, healthy| health.set(id, healthy), watch)
}

/// Parses the control file: `DEVICE healthy|unhealthy [reason]` per line.
fn parse_health(text: &str, names: &Resolver) -> (Vec<(GpuId, bool)>, Vec<String>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(dev), Some(state)) = (words.next(), words.next()) else {
            problems.push(format!(
                "line {}: expected `DEVICE healthy|unhealthy [reason]`",
                n + 1
            ));
            continue;
        };
        let id = match names.one(dev) {
            Ok(id) => id,
            Err(e) => {
                problems.push(format!("line {}: {e}", n + 1));
                continue;
            }
        };
        match state.to_ascii_lowercase().as_str() {
            "healthy" => out.push((id.clone(), true)),
            "unhealthy" => out.push((id.clone(), false)),
            other => problems.push(format!(
                "line {}: {other:?} is neither healthy nor unhealthy",
                n + 1
            )),
        }
    }
    (out, problems)
}

/// Applies the control file every [`HEALTH_POLL`]; devices it does not mention return to
/// healthy when it changes, so deleting a line (or the file) heals a device.
pub(crate) async fn watch_health_file(
    path: PathBuf,
    initial: std::collections::BTreeMap<GpuId, bool>,
    set: impl Fn(&GpuId, bool),
    names: Resolver,
) {
    let mut last: Option<String> = None;
    loop {
        let text = read(&path);
        if text != last {
            let (states, problems) = parse_health(text.as_deref().unwrap_or_default(), &names);
            for p in &problems {
                tracing::warn!(file = %path.display(), problem = %p, "health file");
            }
            for (id, was) in &initial {
                let now = states
                    .iter()
                    .rev()
                    .find(|(i, _)| i == id)
                    .map_or(*was, |(_, h)| *h);
                set(id, now);
            }
            tracing::info!(file = %path.display(), unhealthy = states.iter().filter(|(_, h)| !h).count(), "health file applied");
            last = text;
        }
        tokio::time::sleep(HEALTH_POLL).await;
    }
}

fn read(path: &Path) -> Option<String> {
    // Bounded like every input: a health file that never ends is read up to the cap.
    match linkwise_fsio::read_to_string_capped(path) {
        Ok(text) => Some(text),
        Err(e) => {
            if path.exists() {
                tracing::warn!(error = %e, "health file not read");
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_lines_parse_and_problems_are_reported() {
        let topo = linkwise_discovery::SourceSpec::parse("profile:dgx-h100")
            .and_then(|s| s.open())
            .and_then(|s| s.discover())
            .expect("a profile");
        let id = |i: u32| {
            topo.gpus
                .iter()
                .find(|g| g.index == i)
                .expect("a GPU")
                .id
                .clone()
        };
        let names = Resolver::new(&topo);
        let (states, problems) = parse_health(
            "gpu0 unhealthy XID 79\n# comment\n3 Healthy\nGPU9 unhealthy\nGPU0 sick\nGPU0\n",
            &names,
        );
        assert_eq!(states, vec![(id(0), false), (id(3), true)]);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("line 4"));
    }
}
