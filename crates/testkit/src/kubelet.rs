//! A fake kubelet from the real protos: the device plugin registration service on
//! `<dir>/kubelet.sock` (recording every `RegisterRequest`), and the PodResources lister
//! (answering a set response, hanging, or failing, switchable while it runs).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::registration_server::{Registration, RegistrationServer};
use linkwise_kubelet::deviceplugin_api as api;
use linkwise_kubelet::podresources_api as pr;
use pr::pod_resources_lister_server::{PodResourcesLister, PodResourcesListerServer};
use tokio::net::UnixListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Server;
use tonic::{Request, Response, Status};

/// The socket name a kubelet serves registration on, in its device plugin directory.
pub const KUBELET_SOCKET: &str = "kubelet.sock";

#[derive(Debug)]
struct FakeRegistration {
    seen: mpsc::UnboundedSender<api::RegisterRequest>,
}

#[tonic::async_trait]
impl Registration for FakeRegistration {
    async fn register(
        &self,
        req: Request<api::RegisterRequest>,
    ) -> Result<Response<api::Empty>, Status> {
        let _ = self.seen.send(req.into_inner());
        Ok(Response::new(api::Empty {}))
    }
}

/// A kubelet's registration endpoint on `<dir>/kubelet.sock`; stops when dropped.
#[derive(Debug)]
pub struct FakeKubelet {
    registrations: mpsc::UnboundedReceiver<api::RegisterRequest>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeKubelet {
    /// Serves registration on `<dir>/kubelet.sock` (replacing a stale socket file).
    /// Call inside a tokio runtime.
    ///
    /// # Panics
    ///
    /// When the socket cannot be bound.
    pub fn start(dir: &Path) -> Self {
        let path = dir.join(KUBELET_SOCKET);
        let _ = std::fs::remove_file(&path);
        let listener =
            UnixListener::bind(&path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let _ = Server::builder()
                .add_service(RegistrationServer::new(FakeRegistration { seen: tx }))
                .serve_with_incoming(UnixListenerStream::new(listener))
                .await;
        });
        FakeKubelet {
            registrations: rx,
            task,
        }
    }

    /// The next registration, waiting up to `within`.
    ///
    /// # Panics
    ///
    /// When none comes in time.
    pub async fn next_registration(&mut self, within: Duration) -> api::RegisterRequest {
        self.try_next_registration(within)
            .await
            .unwrap_or_else(|| panic!("no registration within {within:?}"))
    }

    /// The next registration, or `None` when none comes within `within`.
    pub async fn try_next_registration(
        &mut self,
        within: Duration,
    ) -> Option<api::RegisterRequest> {
        tokio::time::timeout(within, self.registrations.recv())
            .await
            .ok()
            .flatten()
    }

    /// A kubelet restart: this one stops, every socket in `dir` is deleted (as a new
    /// kubelet does) and a fresh `kubelet.sock` is served.
    pub fn restart(self, dir: &Path) -> Self {
        drop(self);
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        FakeKubelet::start(dir)
    }
}

/// What the fake PodResources lister does when asked to `List`.
#[derive(Debug, Clone)]
pub enum ListMode {
    /// Answers this response.
    Answer(pr::ListPodResourcesResponse),
    /// Never answers in time (sleeps 30 s, then fails).
    Hang,
    /// Fails at once with `UNAVAILABLE`.
    Fail,
}

#[derive(Debug, Clone)]
struct Lister {
    mode: Arc<Mutex<ListMode>>,
}

#[tonic::async_trait]
impl PodResourcesLister for Lister {
    async fn list(
        &self,
        _: Request<pr::ListPodResourcesRequest>,
    ) -> Result<Response<pr::ListPodResourcesResponse>, Status> {
        let mode = self.mode.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match mode {
            ListMode::Answer(r) => Ok(Response::new(r)),
            ListMode::Hang => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Err(Status::deadline_exceeded("slept"))
            }
            ListMode::Fail => Err(Status::unavailable("kubelet restarting")),
        }
    }

    async fn get_allocatable_resources(
        &self,
        _: Request<pr::AllocatableResourcesRequest>,
    ) -> Result<Response<pr::AllocatableResourcesResponse>, Status> {
        Err(Status::unimplemented("not used"))
    }

    async fn get(
        &self,
        _: Request<pr::GetPodResourcesRequest>,
    ) -> Result<Response<pr::GetPodResourcesResponse>, Status> {
        Err(Status::unimplemented("not used"))
    }
}

/// The kubelet's PodResources service on a Unix socket; stops when dropped.
#[derive(Debug)]
pub struct FakePodResources {
    socket: PathBuf,
    mode: Arc<Mutex<ListMode>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakePodResources {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakePodResources {
    /// Serves PodResources on `socket`, listing as `mode` says. Call inside a tokio
    /// runtime.
    ///
    /// # Panics
    ///
    /// When the socket cannot be bound.
    pub fn start(socket: &Path, mode: ListMode) -> Self {
        let listener =
            UnixListener::bind(socket).unwrap_or_else(|e| panic!("bind {}: {e}", socket.display()));
        let mode = Arc::new(Mutex::new(mode));
        let svc = PodResourcesListerServer::new(Lister { mode: mode.clone() });
        let task = tokio::spawn(async move {
            let _ = Server::builder()
                .add_service(svc)
                .serve_with_incoming(UnixListenerStream::new(listener))
                .await;
        });
        FakePodResources {
            socket: socket.to_path_buf(),
            mode,
            task,
        }
    }

    /// The socket it serves on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Changes what `List` does from the next call on.
    pub fn set(&self, mode: ListMode) {
        *self.mode.lock().unwrap_or_else(|p| p.into_inner()) = mode;
    }
}

/// Devices of one resource held by a container.
pub fn devices(resource: &str, ids: &[&str]) -> pr::ContainerDevices {
    pr::ContainerDevices {
        resource_name: resource.into(),
        device_ids: ids.iter().map(|s| (*s).to_string()).collect(),
        topology: None,
    }
}

/// A container holding `devices`.
pub fn container(name: &str, devices: Vec<pr::ContainerDevices>) -> pr::ContainerResources {
    pr::ContainerResources {
        name: name.into(),
        devices,
        cpu_ids: vec![],
        memory: vec![],
        dynamic_resources: vec![],
    }
}

/// A pod `namespace/name` with `containers`.
pub fn pod(
    namespace: &str,
    name: &str,
    containers: Vec<pr::ContainerResources>,
) -> pr::PodResources {
    pr::PodResources {
        name: name.into(),
        namespace: namespace.into(),
        containers,
    }
}

/// A `List` answer holding `pods`.
pub fn listing(pods: Vec<pr::PodResources>) -> pr::ListPodResourcesResponse {
    pr::ListPodResourcesResponse {
        pod_resources: pods,
    }
}
