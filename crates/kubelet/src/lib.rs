//! `linkwise-kubelet`: the kubelet's gRPC protocols, shared by the device plugin and the
//! exporter.
//!
//! What it is: the generated bindings of the kubelet device plugin API (v1beta1) and the
//! PodResources API (v1), compiled from `proto/` with protox (no `protoc`), gRPC channels
//! over unix sockets ([`uds`]), and a PodResources client ([`podresources`]: which devices
//! containers hold).
//!
//! What it is not: a device plugin or an exporter. It holds no linkwise model and no
//! policy; `linkwise-deviceplugin` serves the device plugin API and the exporter reads
//! PodResources through it.
#![warn(missing_docs)]

/// Generated bindings for `package v1beta1` (kubelet device plugin API).
#[allow(
    missing_docs,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic
)]
pub mod deviceplugin_api {
    tonic::include_proto!("v1beta1");
}

/// Generated bindings for `package v1` (kubelet PodResources API).
#[allow(
    missing_docs,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic
)]
pub mod podresources_api {
    tonic::include_proto!("v1");
}

pub mod podresources;
pub mod uds;

/// Default PodResources socket.
pub const DEFAULT_POD_RESOURCES_SOCKET: &str = "/var/lib/kubelet/pod-resources/kubelet.sock";
