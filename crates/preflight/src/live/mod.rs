//! Live checks: the node's state read under a root directory (`/` on the node, a captured
//! tree in tests): IOMMU groups, the driver bound to each GPU, Secure Boot and lockdown,
//! module signature enforcement, NUMA, hugepages, the NVIDIA driver, the fabric manager
//! and IMEX, persistence, and the kernel's taint flags.
//!
//! Every check reads files only; a file that is absent makes the check a `skip` saying
//! so, a file with odd contents a `warn` naming it and what was there. Nothing panics.

mod pci;
mod security;
mod signature;
mod state;

use std::path::Path;

use linkwise_core::Topology;

use crate::report::Check;

pub use pci::{PciDevice, nvidia_devices};

/// What the live checks read.
#[derive(Debug, Clone, Copy)]
pub struct LiveInput<'a> {
    /// `/` on the node; a captured tree in tests.
    pub root: &'a Path,
    /// The roles asked for: `gpu-host`, `vfio-host`, `rdma` (others are ignored).
    pub roles: &'a [String],
    /// The node's topology when known (the fabric manager and IMEX expectations).
    pub topology: Option<&'a Topology>,
}

impl LiveInput<'_> {
    /// Whether `role` was asked for.
    pub fn has(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// Every live check, in a fixed order.
pub fn checks(input: &LiveInput<'_>) -> Vec<Check> {
    let gpus = nvidia_devices(input.root);
    let mut out = vec![pci::gpus(&gpus)];
    out.push(pci::iommu_groups(input, &gpus));
    out.push(pci::gpu_driver(input, &gpus));
    out.push(security::secure_boot(input));
    out.push(security::lockdown(input));
    out.push(security::sig_enforce(input));
    let enforced = security::sig_enforced(input) || security::secure_boot_on(input);
    out.push(signature::nvidia_module_signature(input, enforced));
    out.push(state::gpu_numa(input, &gpus));
    out.push(state::hugepages(input));
    out.push(state::nvidia_driver(input, &gpus));
    out.push(state::fabric_manager(input));
    out.push(state::persistence(input, &gpus));
    out.push(security::taint(input));
    out
}

/// A small file under the root, trimmed; `Err` says why not (absent, unreadable).
pub(crate) fn read(root: &Path, rel: &str) -> Result<String, String> {
    let path = root.join(rel);
    match linkwise_fsio::read_capped(&path) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).trim().to_string()),
        Err(e) if e.error.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("{} does not exist", path.display()))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// `s` cut to 60 characters for a message.
pub(crate) fn shown(s: &str) -> String {
    let one_line = s.replace('\n', " ");
    if one_line.chars().count() > 60 {
        format!("{:?}...", one_line.chars().take(60).collect::<String>())
    } else {
        format!("{one_line:?}")
    }
}
