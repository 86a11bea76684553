//! `linkwise-kubelet`: the kubelet's gRPC protocols, shared by the device plugin and the
//! exporter.
//!
//! What it is: the generated bindings of the kubelet device plugin API (v1beta1), the
//! PodResources API (v1), the DRA plugin API (v1, v1beta1), the plugin watcher's
//! registration and DRA device health (v1alpha1, v1), compiled from `proto/` with protox (no `protoc`), gRPC channels
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

/// Generated bindings for `package k8s.io.kubelet.pkg.apis.dra.v1` (the kubelet DRA plugin
/// API, Kubernetes 1.34 and later).
#[allow(
    missing_docs,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic
)]
pub mod dra_v1_api {
    tonic::include_proto!("k8s.io.kubelet.pkg.apis.dra.v1");
}

/// Generated bindings for `package k8s.io.kubelet.pkg.apis.dra.v1beta1` (the kubelet DRA
/// plugin API of Kubernetes 1.32 and 1.33).
#[allow(
    missing_docs,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic
)]
pub mod dra_v1beta1_api {
    tonic::include_proto!("k8s.io.kubelet.pkg.apis.dra.v1beta1");
}

/// Generated bindings for `package pluginregistration` (the kubelet plugin watcher's
/// registration, `pluginregistration/v1`).
#[allow(
    missing_docs,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic
)]
pub mod registration_api {
    tonic::include_proto!("pluginregistration");
}

/// Generated bindings for `package v1alpha1` of `dra-health` (DRA device health,
/// Kubernetes 1.34's `ResourceHealthStatus` feature).
#[allow(
    missing_docs,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic
)]
pub mod dra_health_v1alpha1_api {
    tonic::include_proto!("v1alpha1");
}

/// Generated bindings for `package v1` of `dra-health` (DRA device health v1).
#[allow(
    missing_docs,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic
)]
pub mod dra_health_v1_api {
    include!(concat!(env!("OUT_DIR"), "/dra-health/v1.rs"));
}

pub mod podresources;
pub mod uds;

/// Default PodResources socket.
pub const DEFAULT_POD_RESOURCES_SOCKET: &str = "/var/lib/kubelet/pod-resources/kubelet.sock";
