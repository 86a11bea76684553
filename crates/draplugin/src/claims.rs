//! The allocation of a ResourceClaim, read from the API server: the kubelet names only
//! the claim (namespace, name, UID); which devices the scheduler chose is in the claim's
//! `status.allocation.devices.results`.
//!
//! Read as JSON through `resource.k8s.io/v1`, falling back to `v1beta2` and `v1beta1`
//! when the API server does not serve v1 (Kubernetes 1.32 and 1.33): the allocation
//! results have the same shape in all three.

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use serde_json::Value;

/// The claim the kubelet names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRef {
    /// The claim's namespace.
    pub namespace: String,
    /// The claim's name.
    pub name: String,
    /// The claim's UID.
    pub uid: String,
}

/// One allocated device of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocated {
    /// The request it was allocated for (`gpus`, or `gpus/sub` for a subrequest).
    pub request: String,
    /// The driver.
    pub driver: String,
    /// The pool.
    pub pool: String,
    /// The device.
    pub device: String,
    /// The share id, for a device allocated more than once.
    pub share_id: Option<String>,
}

/// The API versions tried, newest first.
const VERSIONS: [&str; 3] = ["v1", "v1beta2", "v1beta1"];

/// Reads claims through the API server.
#[derive(Clone)]
pub struct ClaimReader {
    client: kube::Client,
}

impl std::fmt::Debug for ClaimReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimReader").finish_non_exhaustive()
    }
}

impl ClaimReader {
    /// A reader over `client`.
    pub fn new(client: kube::Client) -> Self {
        ClaimReader { client }
    }

    /// The allocated devices of `claim`, or why they cannot be known: the claim is gone,
    /// its UID differs (deleted and made again), or it is not allocated.
    pub async fn allocation(&self, claim: &ClaimRef) -> Result<Vec<Allocated>, String> {
        let mut last = String::new();
        for version in VERSIONS {
            let gvk = GroupVersionKind::gvk("resource.k8s.io", version, "ResourceClaim");
            let ar = ApiResource::from_gvk_with_plural(&gvk, "resourceclaims");
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), &claim.namespace, &ar);
            match api.get(&claim.name).await {
                Ok(obj) => return allocation_of(claim, &obj),
                // 404 for the claim and 404 for an API version not served look alike;
                // the next version tells which.
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    last = format!(
                        "ResourceClaim {}/{} not found (resource.k8s.io/{version})",
                        claim.namespace, claim.name
                    );
                }
                Err(e) => {
                    return Err(format!(
                        "cannot read ResourceClaim {}/{}: {e}",
                        claim.namespace, claim.name
                    ));
                }
            }
        }
        Err(last)
    }
}

/// The allocation results of `obj`, checked against `claim`.
pub fn allocation_of(claim: &ClaimRef, obj: &DynamicObject) -> Result<Vec<Allocated>, String> {
    let who = format!("ResourceClaim {}/{}", claim.namespace, claim.name);
    let uid = obj.metadata.uid.as_deref().unwrap_or_default();
    if uid != claim.uid {
        return Err(format!(
            "{who} has UID {uid:?}, not {:?} as the kubelet said (deleted and made again?)",
            claim.uid
        ));
    }
    let Some(results) = obj
        .data
        .pointer("/status/allocation/devices/results")
        .and_then(Value::as_array)
    else {
        return Err(format!("{who} is not allocated (no status.allocation)"));
    };
    let mut out = Vec::new();
    for (i, r) in results.iter().enumerate() {
        let field = |k: &str| {
            r.get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| {
                    format!("{who}: status.allocation.devices.results[{i}].{k} is missing")
                })
        };
        out.push(Allocated {
            request: field("request")?,
            driver: field("driver")?,
            pool: field("pool")?,
            device: field("device")?,
            share_id: r.get("shareID").and_then(Value::as_str).map(str::to_string),
        });
    }
    Ok(out)
}
