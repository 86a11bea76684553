//! `linkwise-draplugin`: the kubelet DRA plugin of linkwise.
//!
//! What it is: the node side of Dynamic Resource Allocation for one driver
//! (`gpu.linkwise.dev` by default) on one node —
//!
//! - registration with the kubelet's plugin watcher ([`registration`]: a
//!   `pluginregistration.Registration` service on `plugins_registry/<driver>-reg.sock`,
//!   type `DRAPlugin`, versions `v1.DRAPlugin` and `v1beta1.DRAPlugin`);
//! - the `DRAPlugin` service on `plugins/<driver>/dra.sock` in both versions
//!   ([`Plugin`]): `NodePrepareResources` reads each claim's allocation from the API
//!   server ([`claims`]), refuses devices that are unknown or unhealthy with the reason,
//!   writes one CDI spec per claim ([`cdi`]) and answers its CDI device ids;
//!   `NodeUnprepareResources` removes exactly what prepare wrote. Both are idempotent
//!   and answer per-claim errors inside the response. A [`checkpoint`] (written
//!   atomically) carries the prepared claims across restarts;
//! - device health on `dra-health` `v1alpha1` and `v1` `NodeWatchResources` streams,
//!   fed by the same health source as the device plugin ([`Health`]);
//! - the node's ResourceSlices ([`publish`]): the pool `linkwise dra slices` renders,
//!   applied through the API server with server-side apply, the pool generation bumped
//!   whenever a device's health or the topology changes (an unhealthy device leaves the
//!   pool), stale slices deleted, and the slices removed on shutdown only when asked.
//!
//! [`run`] ties them together: serve, register, publish, shut down cleanly.
//!
//! What it is not: an allocator. The scheduler allocates devices from the published
//! slices (CEL selectors, `matchAttribute` on the NVLink island or domain); the plugin
//! makes the chosen devices usable on the node.
#![warn(missing_docs)]

pub mod cdi;
pub mod checkpoint;
pub mod claims;
mod health;
mod node;
mod plugin;
pub mod publish;
pub mod registration;
mod runner;

use std::path::{Path, PathBuf};

pub use health::Health;
pub use node::NodeDevices;
pub use plugin::Plugin;
pub use runner::{Options, run};

/// The kubelet's root directory (`plugins_registry/` and `plugins/` are in it).
pub const DEFAULT_KUBELET_DIR: &str = "/var/lib/kubelet";
/// Where container runtimes read CDI specs written at run time.
pub const DEFAULT_CDI_DIR: &str = "/var/run/cdi";
/// The default driver name.
pub const DEFAULT_DRIVER: &str = "gpu.linkwise.dev";
/// The plugin type in the registration answer.
pub const PLUGIN_TYPE: &str = "DRAPlugin";
/// The services the plugin serves, newest first, as the registration answer names them.
pub const SUPPORTED_VERSIONS: [&str; 2] = ["v1.DRAPlugin", "v1beta1.DRAPlugin"];
/// The field manager of the plugin's server-side applies.
pub const FIELD_MANAGER: &str = "linkwise-dra-plugin";

/// Where the plugin lives on the node.
#[derive(Debug, Clone)]
pub struct Config {
    /// The driver name (`gpu.linkwise.dev`).
    pub driver: linkwise_dra::Driver,
    /// This node's name: the pool name and the slices' `nodeName`.
    pub node: String,
    /// The kubelet's root directory ([`DEFAULT_KUBELET_DIR`]).
    pub kubelet_dir: PathBuf,
    /// Where the CDI specs go ([`DEFAULT_CDI_DIR`]).
    pub cdi_dir: PathBuf,
    /// Where the GPU device nodes are (`/dev`); only existing ones go into CDI specs.
    pub dev_root: PathBuf,
}

impl Config {
    /// `<kubelet_dir>/plugins/<driver>`: the DRA socket and the checkpoint.
    pub fn plugin_dir(&self) -> PathBuf {
        self.kubelet_dir.join("plugins").join(self.driver.as_str())
    }

    /// The socket of the `DRAPlugin` and health services.
    pub fn dra_socket(&self) -> PathBuf {
        self.plugin_dir().join("dra.sock")
    }

    /// The registration socket the kubelet's plugin watcher finds.
    pub fn registration_socket(&self) -> PathBuf {
        self.kubelet_dir
            .join("plugins_registry")
            .join(format!("{}-reg.sock", self.driver))
    }

    /// The checkpoint of prepared claims.
    pub fn checkpoint_file(&self) -> PathBuf {
        self.plugin_dir().join("checkpoint.json")
    }
}

/// Why the plugin could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A socket could not be created.
    #[error("cannot serve on {}: {error}", path.display())]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A directory could not be created.
    #[error("cannot create {}: {error}", path.display())]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The checkpoint exists but cannot be read.
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::Error),
    /// The topology has no host for this node.
    #[error("{0}")]
    Node(String),
}

fn create_dir(path: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(path).map_err(|error| Error::Dir {
        path: path.to_path_buf(),
        error,
    })
}
