//! Device health as the DRA plugin sees it: a watch of healthy-or-not per GPU, the same
//! shape as the device plugin's, so one health source feeds both.

use std::collections::BTreeMap;

use linkwise_core::GpuId;
use tokio::sync::watch;

/// Per-GPU health, shared with the health source; every change wakes the slice
/// publisher and the kubelet's health streams.
#[derive(Debug, Clone)]
pub struct Health {
    rx: watch::Receiver<BTreeMap<GpuId, bool>>,
}

impl Health {
    /// Health read from `rx` (for example the device plugin's `HealthHandle::subscribe()`).
    pub fn new(rx: watch::Receiver<BTreeMap<GpuId, bool>>) -> Self {
        Health { rx }
    }

    /// A fixed health and the sender that changes it (for a plugin run on its own).
    pub fn channel(initial: BTreeMap<GpuId, bool>) -> (watch::Sender<BTreeMap<GpuId, bool>>, Self) {
        let (tx, rx) = watch::channel(initial);
        (tx, Health { rx })
    }

    /// Whether `gpu` is healthy now (a GPU the source does not know is healthy).
    pub fn is_healthy(&self, gpu: &GpuId) -> bool {
        self.rx.borrow().get(gpu).copied().unwrap_or(true)
    }

    /// The current health of every GPU.
    pub fn snapshot(&self) -> BTreeMap<GpuId, bool> {
        self.rx.borrow().clone()
    }

    /// A receiver that wakes on every change.
    pub fn subscribe(&self) -> watch::Receiver<BTreeMap<GpuId, bool>> {
        self.rx.clone()
    }
}
