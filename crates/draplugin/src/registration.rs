//! Registration with the kubelet's plugin watcher: the `pluginregistration.Registration`
//! service on `<kubelet>/plugins_registry/<driver>-reg.sock`. The kubelet finds the socket,
//! asks `GetInfo` (type `DRAPlugin`, the driver name, the DRA socket, the versions served)
//! and reports with `NotifyRegistrationStatus`; removing the socket unregisters.

use std::path::PathBuf;
use std::sync::Arc;

use linkwise_kubelet::registration_api as api;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

/// What the kubelet last said about the registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationState {
    /// Not told yet.
    Pending,
    /// Registered.
    Registered,
    /// Refused, with the kubelet's reason.
    Refused(String),
}

/// The registration service.
#[derive(Debug, Clone)]
pub struct Registrar {
    info: api::PluginInfo,
    status: Arc<watch::Sender<RegistrationState>>,
}

impl Registrar {
    /// Answers for `driver` serving on `endpoint`.
    pub fn new(driver: &str, endpoint: PathBuf) -> Self {
        let (tx, _) = watch::channel(RegistrationState::Pending);
        Registrar {
            info: api::PluginInfo {
                r#type: crate::PLUGIN_TYPE.to_string(),
                name: driver.to_string(),
                endpoint: endpoint.to_string_lossy().into_owned(),
                supported_versions: crate::SUPPORTED_VERSIONS.map(str::to_string).to_vec(),
            },
            status: Arc::new(tx),
        }
    }

    /// The answer to `GetInfo`.
    pub fn info(&self) -> &api::PluginInfo {
        &self.info
    }

    /// What the kubelet said, as it changes.
    pub fn status(&self) -> watch::Receiver<RegistrationState> {
        self.status.subscribe()
    }
}

#[tonic::async_trait]
impl api::registration_server::Registration for Registrar {
    async fn get_info(
        &self,
        _: Request<api::InfoRequest>,
    ) -> Result<Response<api::PluginInfo>, Status> {
        tracing::debug!("kubelet asked for the plugin info");
        Ok(Response::new(self.info.clone()))
    }

    async fn notify_registration_status(
        &self,
        req: Request<api::RegistrationStatus>,
    ) -> Result<Response<api::RegistrationStatusResponse>, Status> {
        let r = req.into_inner();
        let status = if r.plugin_registered {
            tracing::info!(driver = %self.info.name, "registered with the kubelet");
            RegistrationState::Registered
        } else {
            tracing::error!(driver = %self.info.name, error = %r.error, "the kubelet refused the registration");
            RegistrationState::Refused(r.error)
        };
        self.status.send_replace(status);
        Ok(Response::new(api::RegistrationStatusResponse {}))
    }
}
