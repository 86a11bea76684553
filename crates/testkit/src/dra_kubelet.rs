//! A fake kubelet for DRA plugins, from the real protos: it does what the kubelet's
//! plugin watcher and DRA manager do — find a registration socket in
//! `<kubelet>/plugins_registry` (names starting with `.` are skipped, as the kubelet
//! skips them), ask `GetInfo`, check the type (`DRAPlugin`) and pick the newest service
//! version it offers, report `NotifyRegistrationStatus`, then call the plugin's
//! `DRAPlugin` service (v1 or v1beta1) and health stream on the endpoint it named.

use std::path::{Path, PathBuf};
use std::time::Duration;

use linkwise_kubelet::dra_health_v1_api as health_v1;
use linkwise_kubelet::dra_v1_api as v1;
use linkwise_kubelet::dra_v1beta1_api as v1beta1;
use linkwise_kubelet::registration_api as reg;
use tonic::transport::Channel;

/// A registered DRA plugin, as the kubelet holds it.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The registration socket found.
    pub socket: PathBuf,
    /// The plugin's answer to `GetInfo`.
    pub info: reg::PluginInfo,
    channel: Channel,
}

/// The registration sockets in `<kubelet_dir>/plugins_registry` the kubelet would use.
pub fn registration_sockets(kubelet_dir: &Path) -> Vec<PathBuf> {
    let dir = kubelet_dir.join("plugins_registry");
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.'))
        })
        .collect();
    out.sort();
    out
}

/// Registers the first plugin that appears in `<kubelet_dir>/plugins_registry` within
/// `within`, as the kubelet does.
///
/// # Panics
///
/// When none appears, the plugin's info is not a DRA plugin's, or a call fails.
pub async fn register(kubelet_dir: &Path, within: Duration) -> Registered {
    let deadline = tokio::time::Instant::now() + within;
    let socket = loop {
        if let Some(s) = registration_sockets(kubelet_dir).into_iter().next() {
            break s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no registration socket in {}/plugins_registry within {within:?}",
            kubelet_dir.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let ch =
        crate::wait::poll_until_async(within, "connection to the registration socket", || async {
            linkwise_kubelet::uds::connect(&socket).await.ok()
        })
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", socket.display()));
    let mut client = reg::registration_client::RegistrationClient::new(ch);
    let info = client
        .get_info(reg::InfoRequest {})
        .await
        .unwrap_or_else(|s| panic!("GetInfo: {s}"))
        .into_inner();
    assert_eq!(info.r#type, "DRAPlugin", "plugin type");
    let ok = info
        .supported_versions
        .iter()
        .any(|v| v == "v1.DRAPlugin" || v == "v1beta1.DRAPlugin");
    client
        .notify_registration_status(reg::RegistrationStatus {
            plugin_registered: ok,
            error: if ok {
                String::new()
            } else {
                format!("no supported version in {:?}", info.supported_versions)
            },
        })
        .await
        .unwrap_or_else(|s| panic!("NotifyRegistrationStatus: {s}"));
    assert!(
        ok,
        "the plugin serves no DRAPlugin version the kubelet knows"
    );
    let endpoint = PathBuf::from(&info.endpoint);
    let channel = linkwise_kubelet::uds::connect(&endpoint)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the endpoint {}: {e}", endpoint.display()));
    Registered {
        socket,
        info,
        channel,
    }
}

/// A claim reference as the kubelet sends it.
pub fn claim(namespace: &str, name: &str, uid: &str) -> v1::Claim {
    v1::Claim {
        namespace: namespace.to_string(),
        uid: uid.to_string(),
        name: name.to_string(),
    }
}

impl Registered {
    /// `NodePrepareResources` on `v1`.
    ///
    /// # Panics
    ///
    /// When the RPC itself fails.
    pub async fn prepare(&self, claims: &[v1::Claim]) -> v1::NodePrepareResourcesResponse {
        v1::dra_plugin_client::DraPluginClient::new(self.channel.clone())
            .node_prepare_resources(v1::NodePrepareResourcesRequest {
                claims: claims.to_vec(),
            })
            .await
            .unwrap_or_else(|s| panic!("NodePrepareResources: {s}"))
            .into_inner()
    }

    /// `NodeUnprepareResources` on `v1`.
    ///
    /// # Panics
    ///
    /// When the RPC itself fails.
    pub async fn unprepare(&self, claims: &[v1::Claim]) -> v1::NodeUnprepareResourcesResponse {
        v1::dra_plugin_client::DraPluginClient::new(self.channel.clone())
            .node_unprepare_resources(v1::NodeUnprepareResourcesRequest {
                claims: claims.to_vec(),
            })
            .await
            .unwrap_or_else(|s| panic!("NodeUnprepareResources: {s}"))
            .into_inner()
    }

    /// `NodePrepareResources` on `v1beta1` (a 1.32 or 1.33 kubelet).
    ///
    /// # Panics
    ///
    /// When the RPC itself fails.
    pub async fn prepare_v1beta1(
        &self,
        claims: &[v1::Claim],
    ) -> v1beta1::NodePrepareResourcesResponse {
        let claims = claims
            .iter()
            .map(|c| v1beta1::Claim {
                namespace: c.namespace.clone(),
                uid: c.uid.clone(),
                name: c.name.clone(),
            })
            .collect();
        v1beta1::dra_plugin_client::DraPluginClient::new(self.channel.clone())
            .node_prepare_resources(v1beta1::NodePrepareResourcesRequest { claims })
            .await
            .unwrap_or_else(|s| panic!("NodePrepareResources (v1beta1): {s}"))
            .into_inner()
    }

    /// The `dra-health` v1 stream.
    ///
    /// # Panics
    ///
    /// When the RPC itself fails.
    pub async fn watch_health(&self) -> tonic::Streaming<health_v1::NodeWatchResourcesResponse> {
        health_v1::dra_resource_health_client::DraResourceHealthClient::new(self.channel.clone())
            .node_watch_resources(health_v1::NodeWatchResourcesRequest {})
            .await
            .unwrap_or_else(|s| panic!("NodeWatchResources: {s}"))
            .into_inner()
    }
}
