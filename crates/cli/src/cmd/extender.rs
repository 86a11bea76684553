//! `linkwise extender`: the kube-scheduler extender (filter and prioritize verbs) that
//! places GPU pods by the nodes' `linkwise.dev/fabric` annotations (`docs/extender.md`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

use crate::exit::BadInput;
use linkwise_core::placement::frag::TypicalPods;
use linkwise_extender::Extender;
use linkwise_extender::cache::{self, NodeCache};

/// How often the node cache is refreshed from the API server.
const POLL: Duration = Duration::from_secs(5);
/// How often `--nodes-file` is checked for changes.
const FILE_POLL: Duration = Duration::from_secs(1);

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Verbs: POST {prefix}/filter and {prefix}/prioritize (also without the prefix), GET /healthz.\n\
Nodes are judged by their linkwise.dev/fabric annotation (published by `linkwise agent`); nodes without one pass \
the filter and score 0. Pod annotations: linkwise.dev/nvlink: required|preferred, linkwise.dev/gpu-milli: N.\n\
Scheduler configuration: deploy/scheduler/kube-scheduler-config.yaml; details: docs/extender.md.\n\n\
Examples:\n  linkwise extender --listen 0.0.0.0:8888 --prefix /linkwise\n  linkwise extender --nodes-file nodes.json\n  linkwise extender --typical-pods pods.csv   # score against your own workload's shapes"
)]
pub struct Args {
    /// Address to serve on.
    #[arg(long, default_value = "0.0.0.0:8888")]
    listen: String,
    /// Path prefix of the verbs (the part of the scheduler's urlPrefix after the host).
    #[arg(long, default_value = "")]
    prefix: String,
    /// A managed extended resource (repeatable); default nvidia.com/gpu and linkwise.dev/gpu.
    #[arg(long = "resource", value_name = "NAME")]
    resources: Vec<String>,
    /// Node cache for nodeCacheCapable requests from a JSON/YAML NodeList (or a directory
    /// of Node files), re-read when it changes. Without it, Nodes are listed from the API
    /// server every 5 s when a kubeconfig or service account is available.
    #[arg(long, value_name = "FILE")]
    nodes_file: Option<PathBuf>,
    /// The target workload the scores keep room for: a pod list in the openb CSV format
    /// (`linkwise sim --pods`), whose most common shapes (95% of the pods) become the
    /// typical pods. Default: 1-, 2-, 4- and 8-GPU pods as often as in the openb default
    /// trace (98% single GPUs).
    #[arg(long, value_name = "CSV")]
    typical_pods: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if !args.prefix.is_empty() && !args.prefix.starts_with('/') {
        return Err(BadInput(format!("--prefix {:?} must start with /", args.prefix)).into());
    }
    if let Some(r) = args.resources.iter().find(|r| r.trim().is_empty()) {
        return Err(BadInput(format!("--resource {r:?} is empty")).into());
    }
    super::serve::check_listen_addr("--listen", &args.listen)?;
    if let Some(f) = &args.nodes_file {
        // Fail early on a file that cannot be read at all.
        cache::read_nodes(f).map_err(|e| BadInput(e.to_string()))?;
    }
    let typical = match &args.typical_pods {
        None => None,
        Some(f) => {
            let pods = linkwise_sim::csv::read_pods(f).map_err(|e| BadInput(e.to_string()))?;
            let typical = TypicalPods::from_trace(&pods, 0.95);
            if !typical
                .shapes
                .iter()
                .any(|t| t.num_gpu > 0 && t.gpu_milli > 0)
            {
                return Err(BadInput(format!(
                    "--typical-pods {}: no GPU pod among its common shapes; give a pod list with GPU pods",
                    f.display()
                ))
                .into());
            }
            Some(typical)
        }
    };
    super::serve::block_on(async move {
        let cache = Arc::new(NodeCache::default());
        match &args.nodes_file {
            Some(f) => {
                tokio::spawn(cache::follow_file(cache.clone(), f.clone(), FILE_POLL));
            }
            None => match client().await {
                Ok(client) => {
                    tokio::spawn(poll_nodes(cache.clone(), client));
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "no Kubernetes client and no --nodes-file: NodeNames requests pass every node unjudged"
                ),
            },
        }
        let mut ext = Extender::new(&args.prefix, args.resources, Some(cache));
        if let Some(t) = &typical {
            ext = ext.with_typical(t);
        }
        let ext = Arc::new(ext);
        let listener = super::serve::bind("--listen", &args.listen).await?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, prefix = %ext.prefix, resources = ?ext.resources, "extender serving");
        crate::serving(
            addr,
            &format!(
                "extender: POST {p}/filter, {p}/prioritize; GET /healthz",
                p = ext.prefix
            ),
        );
        linkwise_extender::server::serve(listener, ext, super::serve::shutdown_signal()).await;
        Ok(())
    })?
}

async fn client() -> Result<kube::Client, String> {
    let config = kube::Config::infer().await.map_err(|e| e.to_string())?;
    kube::Client::try_from(config).map_err(|e| e.to_string())
}

/// Lists Nodes every 5 s into the cache (RBAC: list on nodes). A failed list keeps the
/// previous contents and is logged once per reason.
async fn poll_nodes(cache: Arc<NodeCache>, client: kube::Client) {
    let api: Api<Node> = Api::all(client);
    let mut last_error: Option<String> = None;
    loop {
        match api.list(&ListParams::default()).await {
            Ok(list) => {
                cache.replace(list.items.into_iter().filter_map(|n| {
                    let name = n.metadata.name?;
                    let ann = n
                        .metadata
                        .annotations
                        .and_then(|mut a| a.remove(linkwise_core::annotation::KEY));
                    Some((name, ann))
                }));
                if last_error.take().is_some() {
                    tracing::info!(nodes = cache.len(), "node cache refreshed again");
                }
            }
            Err(e) => {
                let e = e.to_string();
                if last_error.as_deref() != Some(&e) {
                    tracing::warn!(error = %e, "listing nodes failed; keeping the node cache");
                    last_error = Some(e);
                }
            }
        }
        tokio::time::sleep(POLL).await;
    }
}
