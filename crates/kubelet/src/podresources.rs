//! A client for the kubelet's PodResources API: which devices containers hold.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use crate::podresources_api::ListPodResourcesRequest;
use crate::podresources_api::pod_resources_lister_client::PodResourcesListerClient;

/// Connects to the PodResources socket and lists the device ids of `resource` held by
/// any container. Errors are one-line reasons (socket missing, kubelet refusing).
pub async fn used_devices(socket: &Path, resource: &str) -> Result<BTreeSet<String>, String> {
    if !socket.exists() {
        return Err(format!(
            "{} does not exist (no kubelet, or PodResources not mounted)",
            socket.display()
        ));
    }
    let channel = crate::uds::connect(socket)
        .await
        .map_err(|e| format!("cannot reach {}: {e}", socket.display()))?;
    let mut client = PodResourcesListerClient::new(channel);
    let resp = tokio::time::timeout(
        Duration::from_secs(5),
        client.list(ListPodResourcesRequest {}),
    )
    .await
    .map_err(|_| "PodResources List did not answer within 5 s".to_string())?
    .map_err(|s| format!("PodResources List failed: {}", s.message()))?
    .into_inner();
    Ok(resp
        .pod_resources
        .iter()
        .flat_map(|p| &p.containers)
        .flat_map(|c| &c.devices)
        .filter(|d| d.resource_name == resource)
        .flat_map(|d| d.device_ids.iter().cloned())
        .collect())
}

/// One container's devices of one resource, as the kubelet's PodResources `List` reports
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The container's name.
    pub container: String,
    /// The extended resource (`nvidia.com/gpu`).
    pub resource_name: String,
    /// The device ids the container holds, as the device plugin advertised them.
    pub device_ids: Vec<String>,
}

/// Lists every container's devices (all resources) through the PodResources v1 `List`
/// call. Connecting and listing together take at most `timeout`; a slow or absent
/// kubelet is an error, never a hang. Errors are one-line reasons.
pub async fn list_assignments(socket: &Path, timeout: Duration) -> Result<Vec<Assignment>, String> {
    if !socket.exists() {
        return Err(format!(
            "{} does not exist (no kubelet, or PodResources not mounted)",
            socket.display()
        ));
    }
    let call = async {
        let channel = crate::uds::connect(socket)
            .await
            .map_err(|e| format!("cannot reach {}: {e}", socket.display()))?;
        let mut client = PodResourcesListerClient::new(channel);
        client
            .list(ListPodResourcesRequest {})
            .await
            .map_err(|s| format!("PodResources List failed: {}", s.message()))
    };
    let resp = tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| {
            format!(
                "PodResources List did not answer within {} ms",
                timeout.as_millis()
            )
        })??
        .into_inner();
    let mut out = Vec::new();
    for p in resp.pod_resources {
        for c in p.containers {
            for d in c.devices {
                out.push(Assignment {
                    namespace: p.namespace.clone(),
                    pod: p.name.clone(),
                    container: c.name.clone(),
                    resource_name: d.resource_name,
                    device_ids: d.device_ids,
                });
            }
        }
    }
    Ok(out)
}
