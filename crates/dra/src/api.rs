//! The subset of the `resource.k8s.io/v1` types the objects here use, serialised in the
//! API's field names and in the order the objects are written.

use serde::Serialize;

/// Object metadata: a name only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectMeta {
    /// The object's name.
    pub name: String,
}

/// A ResourceSlice: some of one node's devices, one slice of its pool.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSlice {
    /// Always [`API_VERSION`](crate::API_VERSION).
    pub api_version: &'static str,
    /// Always `ResourceSlice`.
    pub kind: &'static str,
    /// The slice's name.
    pub metadata: ObjectMeta,
    /// Driver, node, pool and devices.
    pub spec: ResourceSliceSpec,
}

/// What a ResourceSlice publishes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSliceSpec {
    /// The DRA driver name.
    pub driver: String,
    /// The node the devices are on.
    pub node_name: String,
    /// The pool this slice belongs to.
    pub pool: ResourcePool,
    /// The devices (at most [`MAX_DEVICES_PER_SLICE`](crate::slices::MAX_DEVICES_PER_SLICE)).
    pub devices: Vec<Device>,
}

/// A pool of devices, published in `resource_slice_count` slices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourcePool {
    /// The pool's name.
    pub name: String,
    /// The pool's generation.
    pub generation: u64,
    /// How many slices the pool has.
    pub resource_slice_count: usize,
}

/// One device of a slice.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Device {
    /// The device's name, unique in its pool (a DNS label).
    pub name: String,
    /// Attributes by name (qualified or in the driver's domain), written in this order.
    #[serde(serialize_with = "as_map")]
    pub attributes: Vec<(String, Attribute)>,
    /// Capacities by name, written in this order; left out when there are none.
    #[serde(serialize_with = "as_map", skip_serializing_if = "Vec::is_empty")]
    pub capacity: Vec<(String, Capacity)>,
}

/// Writes name-value pairs as a map, in their order.
fn as_map<S: serde::Serializer, V: Serialize>(
    pairs: &[(String, V)],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

/// A device attribute value: exactly one of its types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Attribute {
    /// An integer.
    Int(i64),
    /// A string of at most 64 characters.
    String(String),
    /// A semantic version.
    Version(String),
}

/// A device capacity value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capacity {
    /// A Kubernetes quantity (`80Gi`).
    pub value: String,
}

/// A DeviceClass: a selector over devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceClass {
    /// Always [`API_VERSION`](crate::API_VERSION).
    pub api_version: &'static str,
    /// Always `DeviceClass`.
    pub kind: &'static str,
    /// The class's name.
    pub metadata: ObjectMeta,
    /// The selectors.
    pub spec: DeviceClassSpec,
}

/// What a DeviceClass selects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceClassSpec {
    /// Every selector must match.
    pub selectors: Vec<DeviceSelector>,
}

/// A device selector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceSelector {
    /// A CEL selector.
    pub cel: CelSelector,
}

/// A CEL expression over `device`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CelSelector {
    /// The expression.
    pub expression: String,
}

/// A ResourceClaim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceClaim {
    /// Always [`API_VERSION`](crate::API_VERSION).
    pub api_version: &'static str,
    /// Always `ResourceClaim`.
    pub kind: &'static str,
    /// The claim's name.
    pub metadata: ObjectMeta,
    /// The devices claimed.
    pub spec: ResourceClaimSpec,
}

/// What a ResourceClaim asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceClaimSpec {
    /// The device requests and their constraints.
    pub devices: DeviceClaim,
}

/// Device requests and the constraints between them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceClaim {
    /// The requests.
    pub requests: Vec<DeviceRequest>,
    /// The constraints.
    pub constraints: Vec<DeviceConstraint>,
}

/// One named request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceRequest {
    /// The request's name.
    pub name: String,
    /// Exactly this many devices of a class.
    pub exactly: ExactDeviceRequest,
}

/// A request for an exact number of devices of one class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExactDeviceRequest {
    /// The DeviceClass.
    pub device_class_name: String,
    /// Always `ExactCount`.
    pub allocation_mode: &'static str,
    /// How many devices.
    pub count: u32,
}

/// A constraint over the devices of some requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceConstraint {
    /// The requests it applies to.
    pub requests: Vec<String>,
    /// The attribute every device must share.
    pub match_attribute: String,
}
