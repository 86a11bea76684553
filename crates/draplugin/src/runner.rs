//! The plugin's lifecycle: serve the DRA socket, then the registration socket (so the
//! kubelet finds a plugin that answers), publish the slices, serve again when a socket
//! is removed under it, and on shutdown remove both sockets (which unregisters) and, when
//! asked, the slices.

use std::future::Future;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use linkwise_kubelet::dra_health_v1_api::dra_resource_health_server::DraResourceHealthServer as HealthV1;
use linkwise_kubelet::dra_health_v1alpha1_api::dra_resource_health_server::DraResourceHealthServer as HealthV1alpha1;
use linkwise_kubelet::dra_v1_api::dra_plugin_server::DraPluginServer as DraV1;
use linkwise_kubelet::dra_v1beta1_api::dra_plugin_server::DraPluginServer as DraV1beta1;
use linkwise_kubelet::registration_api::registration_server::RegistrationServer;
use tokio::net::UnixListener;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Server;

use crate::publish::Publisher;
use crate::registration::Registrar;
use crate::{Error, Plugin};

/// How often the sockets are checked.
const WATCH_EVERY: Duration = Duration::from_millis(100);

/// How the plugin runs.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Delete the node's ResourceSlices on shutdown (a node leaving the cluster); by
    /// default they stay, so a restart does not make the scheduler see the devices vanish.
    pub remove_slices_on_exit: bool,
}

/// The identity of a socket file (device and inode), to notice it being replaced.
fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

type Served = (
    JoinHandle<Result<(), tonic::transport::Error>>,
    tokio::sync::oneshot::Sender<()>,
    Option<(u64, u64)>,
);

async fn stop(s: Served) {
    let (task, tx, _) = s;
    let _ = tx.send(());
    // Health streams never end on their own: a moment for calls in flight, then drop.
    let abort = task.abort_handle();
    if tokio::time::timeout(Duration::from_millis(300), task)
        .await
        .is_err()
    {
        abort.abort();
    }
}

/// Binds `sock` (it appears only once it listens) and serves `router` on it until the
/// returned sender fires.
fn serve_on(sock: &Path, router: tonic::transport::server::Router) -> Result<Served, Error> {
    let listener: UnixListener =
        linkwise_kubelet::uds::bind_in_place(sock).map_err(|error| Error::Bind {
            path: sock.to_path_buf(),
            error,
        })?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(router.serve_with_incoming_shutdown(
        UnixListenerStream::new(listener),
        async {
            let _ = rx.await;
        },
    ));
    Ok((task, tx, identity(sock)))
}

fn serve_dra(plugin: &Plugin) -> Result<Served, Error> {
    let sock = plugin.config().dra_socket();
    let served = serve_on(
        &sock,
        Server::builder()
            .add_service(DraV1::new(plugin.clone()))
            .add_service(DraV1beta1::new(plugin.clone()))
            .add_service(HealthV1::new(plugin.clone()))
            .add_service(HealthV1alpha1::new(plugin.clone())),
    )?;
    tracing::info!(socket = %sock.display(), "serving the DRA plugin (v1, v1beta1) and device health");
    Ok(served)
}

fn serve_registration(plugin: &Plugin, registrar: &Registrar) -> Result<Served, Error> {
    let sock = plugin.config().registration_socket();
    let served = serve_on(
        &sock,
        Server::builder().add_service(RegistrationServer::new(registrar.clone())),
    )?;
    tracing::info!(socket = %sock.display(), "registration socket ready for the kubelet's plugin watcher");
    Ok(served)
}

/// Serves `plugin` until `shutdown`, publishing its slices with `publisher` (None: not
/// published, e.g. without API credentials).
pub async fn run(
    plugin: Plugin,
    publisher: Option<Publisher>,
    options: Options,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let cfg = plugin.config().clone();
    crate::create_dir(&cfg.plugin_dir())?;
    let reg_sock = cfg.registration_socket();
    if let Some(dir) = reg_sock.parent() {
        crate::create_dir(dir)?;
    }
    let registrar = Registrar::new(cfg.driver.as_str(), cfg.dra_socket());
    let mut dra = serve_dra(&plugin)?;
    let mut reg = serve_registration(&plugin, &registrar)?;

    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let publishing = publisher.map(|p| {
        let remove = options.remove_slices_on_exit;
        tokio::spawn(p.run(remove, async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        }))
    });

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(WATCH_EVERY) => {
                if identity(&cfg.dra_socket()) != dra.2 {
                    tracing::info!("the DRA socket was removed: serving again");
                    stop(dra).await;
                    dra = serve_dra(&plugin)?;
                }
                if identity(&reg_sock) != reg.2 {
                    tracing::info!("the registration socket was removed: serving it again (the kubelet registers the plugin anew)");
                    stop(reg).await;
                    reg = serve_registration(&plugin, &registrar)?;
                }
            }
        }
    }
    // Unregister first: the kubelet stops calling before the service goes.
    stop(reg).await;
    let _ = std::fs::remove_file(&reg_sock);
    stop(dra).await;
    let _ = std::fs::remove_file(cfg.dra_socket());
    let _ = stop_tx.send(true);
    if let Some(p) = publishing {
        let _ = p.await;
    }
    tracing::info!("DRA plugin shut down; sockets removed");
    Ok(())
}
