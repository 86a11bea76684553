//! `linkwise-deviceplugin`: the kubelet device plugin (API v1beta1, gRPC over unix sockets).
//!
//! What it is: a tonic server for the `v1beta1.DevicePlugin` service whose answers come
//! from a cached [`linkwise_core::Topology`] and [`linkwise_core::alloc::Allocator`] (no
//! driver call on any RPC), the registration client for the kubelet's
//! `v1beta1.Registration` service, and the lifecycle around them: serve, register, watch
//! for kubelet restarts (the kubelet deletes plugin sockets when it starts) and serve and
//! register again, remove the socket on shutdown.
//!
//! What it is not: discovery or health detection. Health arrives through a
//! [`HealthHandle`]; the CLI feeds it from a control file or NVML.
//!
//! Where to start: [`GpuPlugin`] (the RPCs) and [`run`] (the lifecycle).
#![warn(missing_docs)]

mod plugin;
mod runner;

/// Generated bindings for `package v1beta1` (kubelet device plugin API), from
/// `linkwise-kubelet`.
pub use linkwise_kubelet::deviceplugin_api as api;
/// The PodResources client, from `linkwise-kubelet`.
pub use linkwise_kubelet::podresources;
/// Generated bindings for `package v1` (kubelet PodResources API), from `linkwise-kubelet`.
pub use linkwise_kubelet::podresources_api;
/// gRPC channels over unix sockets, from `linkwise-kubelet`.
pub use linkwise_kubelet::uds;

pub use plugin::{Config, GpuPlugin, HealthHandle};
pub use runner::{Error, run};

/// The device plugin API version this plugin speaks.
pub const VERSION: &str = "v1beta1";
/// Default device-plugin directory.
pub const DEFAULT_KUBELET_DIR: &str = "/var/lib/kubelet/device-plugins";
/// The kubelet's registration socket, in the device-plugin directory.
pub const KUBELET_SOCKET: &str = "kubelet.sock";
/// Default extended resource name: NVIDIA's, so existing pod specs work (defined in core).
pub use linkwise_core::conventions::resources::DEFAULT_RESOURCE;
/// Default socket file name.
pub const DEFAULT_SOCKET: &str = "linkwise-gpu.sock";
/// Default PodResources socket.
pub use linkwise_kubelet::DEFAULT_POD_RESOURCES_SOCKET;
/// Pod annotation naming the NVLink islands of an allocation.
pub const ISLANDS_ANNOTATION: &str = "linkwise.dev/nvlink-islands";
