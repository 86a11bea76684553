//! `linkwise dra plugin` and `linkwise agent --dra`: the kubelet DRA plugin of
//! `linkwise-draplugin`, set up from the flags, discovery and the Kubernetes credentials.

use std::collections::BTreeMap;
use std::path::PathBuf;

use linkwise_core::{GpuId, Topology};
use linkwise_discovery::SourceSpec;
use linkwise_dra::Driver;
use linkwise_draplugin::publish::Publisher;
use linkwise_draplugin::{Config, Health, NodeDevices, Options, Plugin};

use super::Resolver;

/// Run the kubelet DRA plugin: publish this node's NVLink-aware ResourceSlices and prepare the claims allocated from them.
#[derive(Debug, clap::Args)]
#[command(after_help = "The plugin registers with the kubelet's plugin watcher \
(KUBELET_DIR/plugins_registry/DRIVER-reg.sock, type DRAPlugin, versions v1.DRAPlugin and v1beta1.DRAPlugin) and \
serves the DRAPlugin service and device health (dra-health v1alpha1 and v1) on KUBELET_DIR/plugins/DRIVER/dra.sock.\n\n\
NodePrepareResources reads each claim's allocation from the API server, refuses devices that are unknown or \
unhealthy (per claim, in the answer), writes one CDI spec per claim into --cdi-dir (device nodes, \
NVIDIA_VISIBLE_DEVICES, the NVLink islands) and answers its CDI device ids; NodeUnprepareResources removes \
exactly that spec. Prepared claims are kept in KUBELET_DIR/plugins/DRIVER/checkpoint.json, so a restarted \
plugin answers the same.\n\n\
The node's ResourceSlices (what `linkwise dra slices` prints for this node) are applied with server-side apply \
(field manager linkwise-dra-plugin); a device turning unhealthy leaves the pool and the pool's generation goes \
up. They stay when the plugin stops unless --remove-slices-on-exit.\n\n\
Needs Kubernetes API credentials (the in-cluster service account, or KUBECONFIG) to read claims; RBAC in \
deploy/dra/kubelet-plugin.yaml. The node name comes from --node-name, else $NODE_NAME, else the discovered host.\n\n\
Examples:\n  linkwise dra plugin --source profile:dgx-h100 --node-name gpu-node-1 --kubelet-dir /tmp/kubelet --cdi-dir /tmp/cdi\n  \
NODE_NAME=gpu-node-1 linkwise dra plugin --health-file /run/linkwise/health\n  \
linkwise agent --dra   # the device plugin and the DRA plugin in one process")]
pub struct PluginArgs {
    #[arg(long, default_value = "auto", help = super::SOURCE_HELP)]
    source: String,
    #[command(flatten)]
    nvlink: super::NvlinkArgs,
    /// The DRA driver name (a DNS subdomain).
    #[arg(long, default_value = linkwise_draplugin::DEFAULT_DRIVER)]
    driver: String,
    /// The kubelet's root directory (plugins_registry/ and plugins/ are in it).
    #[arg(long, default_value = linkwise_draplugin::DEFAULT_KUBELET_DIR)]
    kubelet_dir: PathBuf,
    /// Where to write the claims' CDI specs (the container runtime's CDI directory).
    #[arg(long, default_value = linkwise_draplugin::DEFAULT_CDI_DIR)]
    cdi_dir: PathBuf,
    /// Where the GPU device nodes are (only existing ones go into CDI specs).
    #[arg(long, default_value = "/dev")]
    dev_root: PathBuf,
    /// This node's name (default: $NODE_NAME, else the discovered host name).
    #[arg(long)]
    node_name: Option<String>,
    /// A control file that marks devices unhealthy or healthy (as `linkwise agent --health-file`).
    #[arg(long)]
    health_file: Option<PathBuf>,
    /// Delete this node's ResourceSlices when the plugin stops.
    #[arg(long)]
    remove_slices_on_exit: bool,
    /// Seconds between rediscoveries of the node's GPUs (a changed fabric is published at
    /// the next generation); 0 to discover only at start.
    #[arg(long, default_value_t = 60)]
    rediscover_every: u64,
}

/// What the DRA plugin needs, from either command's flags.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    pub driver: String,
    pub node: Option<String>,
    pub kubelet_dir: PathBuf,
    pub cdi_dir: PathBuf,
    pub dev_root: PathBuf,
    pub remove_slices_on_exit: bool,
}

/// The environment variable the DaemonSet sets from the downward API.
const NODE_NAME_ENV: &str = "NODE_NAME";

/// The plugin, its publisher and options, ready to run.
pub(crate) struct Built {
    pub plugin: Plugin,
    pub publisher: Publisher,
    pub options: Options,
    /// The node's devices: a rediscovery sends new ones here.
    pub devices: tokio::sync::watch::Sender<NodeDevices>,
    pub driver: Driver,
    pub node: String,
}

/// The plugin, ready to run: refused (bad input, exit 2) when the driver or node name is
/// wrong, the topology has no host for the node, there are no API credentials, or the
/// checkpoint is damaged.
pub(crate) async fn build(topo: &Topology, setup: Setup, health: Health) -> anyhow::Result<Built> {
    use crate::exit::BadInput;
    let driver = Driver::new(&setup.driver).map_err(|_| {
        BadInput(format!(
            "--driver {:?} must be a DNS subdomain such as gpu.example.com",
            setup.driver
        ))
    })?;
    let node = setup
        .node
        .or_else(|| std::env::var(NODE_NAME_ENV).ok().filter(|s| !s.is_empty()))
        .or_else(|| topo.hosts.first().map(|h| h.name.clone()))
        .unwrap_or_default();
    if !linkwise_core::labels::is_dns_subdomain(&node) {
        return Err(BadInput(format!(
            "node name {node:?} is not a Kubernetes node name (give --node-name or set NODE_NAME)"
        ))
        .into());
    }
    let devices = NodeDevices::new(topo, &driver, &node).map_err(|e| BadInput(e.to_string()))?;
    let config = kube::Config::infer().await.map_err(|e| {
        BadInput(format!(
            "no Kubernetes API credentials ({e}): the DRA plugin reads the claims it prepares from the API \
             server; run it in the cluster (service account) or set KUBECONFIG"
        ))
    })?;
    let client = kube::Client::try_from(config).map_err(|e| {
        BadInput(format!(
            "cannot make a Kubernetes client: {e} (a kubeconfig without certificate-authority \
             trusts the system's CA certificates, /etc/ssl/certs/ca-certificates.crt: install \
             them or name the cluster's CA in the kubeconfig)"
        ))
    })?;
    let (devices, _) = tokio::sync::watch::channel(devices);
    let plugin = Plugin::new(
        Config {
            driver: driver.clone(),
            node: node.clone(),
            kubelet_dir: setup.kubelet_dir,
            cdi_dir: setup.cdi_dir,
            dev_root: setup.dev_root,
        },
        devices.subscribe(),
        health.clone(),
        linkwise_draplugin::claims::ClaimReader::new(client.clone()),
    )
    .map_err(|e| match e {
        linkwise_draplugin::Error::Checkpoint(c) => anyhow::Error::from(BadInput(c.to_string())),
        other => other.into(),
    })?;
    let publisher = Publisher::new(client, devices.subscribe(), driver.as_str(), health);
    Ok(Built {
        plugin,
        publisher,
        options: Options {
            remove_slices_on_exit: setup.remove_slices_on_exit,
        },
        devices,
        driver,
        node,
    })
}

/// Discovers `spec` again every `every` and sends the node's devices when they changed
/// (a GPU lost or replaced, a driver update): the slices follow at the next generation.
/// A failed discovery is logged and the devices kept.
async fn rediscover(
    spec: SourceSpec,
    every: std::time::Duration,
    driver: Driver,
    node: String,
    devices: tokio::sync::watch::Sender<NodeDevices>,
) {
    loop {
        tokio::time::sleep(every).await;
        let s = spec.clone();
        let found = tokio::task::spawn_blocking(move || super::discover_spec(&s)).await;
        let topo = match found {
            Ok(Ok(t)) => t,
            Ok(Err(error)) => {
                tracing::warn!(error = %format!("{error:#}"), "rediscovery failed; the devices stay as they were");
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "rediscovery failed; the devices stay as they were");
                continue;
            }
        };
        match NodeDevices::new(&topo, &driver, &node) {
            Ok(now) => {
                let changed = devices.send_if_modified(|d| {
                    if *d == now {
                        false
                    } else {
                        *d = now;
                        true
                    }
                });
                if changed {
                    tracing::info!(node = %node, "the node's devices changed: publishing the new pool");
                }
            }
            Err(error) => {
                tracing::warn!(%error, "rediscovery found no host for this node; the devices stay as they were")
            }
        }
    }
}

pub fn run(args: PluginArgs) -> anyhow::Result<()> {
    let spec = SourceSpec::parse(&args.source)?;
    let topo = super::discover_spec_published(&spec, args.nvlink, "ResourceSlices")?;
    let initial: BTreeMap<GpuId, bool> = topo
        .gpus
        .iter()
        .map(|g| (g.id.clone(), g.health.is_healthy()))
        .collect();
    let (tx, health) = Health::channel(initial.clone());
    let names = Resolver::new(&topo);
    let setup = Setup {
        driver: args.driver,
        node: args.node_name,
        kubelet_dir: args.kubelet_dir,
        cdi_dir: args.cdi_dir,
        dev_root: args.dev_root,
        remove_slices_on_exit: args.remove_slices_on_exit,
    };
    super::serve::block_on(async move {
        let built = build(&topo, setup, health).await?;
        // Standard input is read once: nothing to read again.
        if args.rediscover_every > 0 && !super::reads_stdin(&spec) {
            tokio::spawn(rediscover(
                spec,
                std::time::Duration::from_secs(args.rediscover_every),
                built.driver.clone(),
                built.node.clone(),
                built.devices.clone(),
            ));
        }
        let Built {
            plugin,
            publisher,
            options,
            devices,
            ..
        } = built;
        // The sender lives as long as the plugin: the health watch stays open.
        let tx = std::sync::Arc::new(tx);
        if let Some(path) = args.health_file {
            let tx = tx.clone();
            tokio::spawn(super::agent::watch_health_file(
                path,
                initial,
                move |id, h| {
                    tx.send_if_modified(|m| m.insert(id.clone(), h) != Some(h));
                },
                names,
            ));
        }
        linkwise_draplugin::run(
            plugin,
            Some(publisher),
            options,
            super::serve::shutdown_signal(),
        )
        .await?;
        drop((tx, devices));
        anyhow::Ok(())
    })??;
    Ok(())
}
