//! The plugin's lifecycle: serve, register, watch for kubelet restarts, shut down cleanly.

use std::future::Future;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Server;

use crate::api::device_plugin_server::DevicePluginServer;
use crate::api::registration_client::RegistrationClient;
use crate::{GpuPlugin, KUBELET_SOCKET, VERSION, api};

/// How often the sockets are checked for a kubelet restart.
const WATCH_EVERY: Duration = Duration::from_millis(100);
/// First and largest wait between registration attempts.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Why the plugin stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The plugin socket could not be created.
    #[error("cannot serve on {}: {error}", path.display())]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
}

/// The identity of a socket file (device and inode), to notice it being recreated.
fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Registers with the kubelet listening on `kubelet`.
async fn register(kubelet: &Path, plugin: &GpuPlugin) -> Result<(), String> {
    if !kubelet.exists() {
        return Err(format!(
            "{} does not exist (the kubelet is not running yet, or --kubelet-dir is wrong)",
            kubelet.display()
        ));
    }
    let channel = crate::uds::connect(kubelet)
        .await
        .map_err(|e| format!("cannot reach the kubelet at {}: {e}", kubelet.display()))?;
    let cfg = plugin.config();
    let req = api::RegisterRequest {
        version: VERSION.to_string(),
        endpoint: cfg.socket_name.clone(),
        resource_name: cfg.resource_name.clone(),
        options: Some(api::DevicePluginOptions {
            pre_start_required: false,
            get_preferred_allocation_available: true,
        }),
    };
    let mut client = RegistrationClient::new(channel);
    match tokio::time::timeout(Duration::from_secs(5), client.register(req)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(status)) => Err(format!(
            "the kubelet refused registration: {}",
            status.message()
        )),
        Err(_) => Err("the kubelet did not answer Register within 5 s".to_string()),
    }
}

/// Binds the plugin socket (`linkwise_kubelet::uds::bind_in_place`: it appears only once
/// it listens).
fn bind_in_place(sock: &Path) -> Result<UnixListener, Error> {
    crate::uds::bind_in_place(sock).map_err(|error| Error::Bind {
        path: sock.to_path_buf(),
        error,
    })
}

/// Serves `plugin` until `shutdown` completes: binds the plugin socket in the
/// device-plugin directory, registers with the kubelet once serving (retrying with
/// backoff while the kubelet is absent), and when the plugin socket disappears or
/// `kubelet.sock` is recreated (a kubelet restart) serves on a fresh socket and registers
/// again within about 100 ms. On shutdown the socket is removed.
pub async fn run(plugin: GpuPlugin, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let cfg = plugin.config().clone();
    let sock = cfg.kubelet_dir.join(&cfg.socket_name);
    let kubelet = cfg.kubelet_dir.join(KUBELET_SOCKET);
    tokio::pin!(shutdown);
    loop {
        let listener = bind_in_place(&sock)?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(
            Server::builder()
                .add_service(DevicePluginServer::new(plugin.clone()))
                .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
                    let _ = stop_rx.await;
                }),
        );
        tracing::info!(socket = %sock.display(), resource = %cfg.resource_name, "serving the device plugin");
        let stop = |server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
                    stop_tx: tokio::sync::oneshot::Sender<()>| async move {
            let _ = stop_tx.send(());
            // ListAndWatch streams never end on their own: give in-flight calls a moment, then drop them.
            let abort = server.abort_handle();
            if tokio::time::timeout(Duration::from_millis(300), server)
                .await
                .is_err()
            {
                abort.abort();
            }
        };

        // Register, with backoff while the kubelet is absent.
        let mut backoff = BACKOFF_FIRST;
        let mut attempts = 0u32;
        let kubelet_id = loop {
            tokio::select! {
                () = &mut shutdown => {
                    stop(server, stop_tx).await;
                    let _ = std::fs::remove_file(&sock);
                    tracing::info!("shut down before registering");
                    return Ok(());
                }
                r = register(&kubelet, &plugin) => match r {
                    Ok(()) => break identity(&kubelet),
                    Err(error) => {
                        attempts += 1;
                        // Say so the first times, then once a minute or so (backoff tops at 5 s).
                        if attempts <= 3 || attempts.is_multiple_of(12) {
                            tracing::warn!(%error, attempts, retry_in_ms = backoff.as_millis(), "registration failed; retrying");
                        } else {
                            tracing::debug!(%error, attempts, "registration failed; retrying");
                        }
                        tokio::select! {
                            () = &mut shutdown => {
                                stop(server, stop_tx).await;
                                let _ = std::fs::remove_file(&sock);
                                return Ok(());
                            }
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                },
            }
        };
        tracing::info!(kubelet = %kubelet.display(), endpoint = %cfg.socket_name, "registered with the kubelet");

        // Watch for a kubelet restart.
        loop {
            tokio::select! {
                () = &mut shutdown => {
                    stop(server, stop_tx).await;
                    let _ = std::fs::remove_file(&sock);
                    tracing::info!(socket = %sock.display(), "shut down; socket removed");
                    return Ok(());
                }
                () = tokio::time::sleep(WATCH_EVERY) => {
                    if !sock.exists() {
                        tracing::info!("plugin socket deleted (kubelet restart): serving again");
                        break;
                    }
                    if identity(&kubelet) != kubelet_id && identity(&kubelet).is_some() {
                        tracing::info!("kubelet.sock recreated (kubelet restart): registering again");
                        break;
                    }
                }
            }
        }
        stop(server, stop_tx).await;
    }
}
