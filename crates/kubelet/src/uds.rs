//! gRPC channels over unix sockets (the kubelet's transport).

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::{UnixListener, UnixStream};
use tonic::transport::{Channel, Endpoint, Uri};

/// Connects a gRPC channel to the unix socket at `path` (the URI is a placeholder the
/// connector ignores).
pub async fn connect(path: &Path) -> Result<Channel, tonic::transport::Error> {
    let path: PathBuf = path.to_path_buf();
    Endpoint::from_static("http://[::]:50051")
        .connect_timeout(Duration::from_secs(2))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let p = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(p).await?)) }
        }))
        .await
}

/// Binds a listening socket at `sock` so that the path appears only once the socket
/// listens: bound under a temporary name in the same directory, then renamed into place
/// (replacing a stale socket). Binding in place leaves a moment between `bind` and
/// `listen` in which the file exists but a client connecting to it is refused — a
/// kubelet watching the directory would see a plugin that does not answer.
pub fn bind_in_place(sock: &Path) -> std::io::Result<UnixListener> {
    let name = sock.file_name().unwrap_or_default().to_string_lossy();
    let tmp = sock.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp)?;
    std::fs::rename(&tmp, sock).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    Ok(listener)
}
