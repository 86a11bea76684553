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
