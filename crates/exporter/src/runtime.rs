//! The exporter's tasks: collection on a timer into a rendered cache, pod and Slurm job
//! attribution on their own timers, and health events.
//!
//! Every task writes into one shared state and wakes the render task, which renders the
//! state into OpenMetrics bytes and swaps them into the cache. A scrape
//! ([`ExporterHandle::latest`]) only clones the cached bytes, so a slow GPU source, a
//! hanging kubelet or a stuck file system never slows a scrape; each of those only
//! delays its own task.
//!
//! Health: the collection task marks a GPU unhealthy when one of its NVLink links goes
//! from up to down (`link_down`), when it stops answering (`gpu_lost`) or on an XID that
//! is not application-level (`xid`). It never marks a GPU healthy again: as with NVIDIA's
//! device plugin, recovery is an operator's (or a restart's) decision. With a
//! [`HealthLink`] the marks go to the device plugin (the CLI wires it) and changes made by anyone else (a
//! health file) re-render at once and count as `external`; without one the exporter keeps
//! its own health map.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use linkwise_core::{GpuId, Topology};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::attribution;
use crate::{Attribution, Collect, Port, Readings, Renderer, Snapshot, SourceHealth, nvlink_ports};

/// XIDs that do not make a GPU unhealthy by default (defined in core); they are still
/// counted.
pub use linkwise_core::conventions::xid::DEFAULT_IGNORED_XIDS;

/// Resource name prefixes whose devices attribute a GPU to a container by default.
pub const DEFAULT_RESOURCE_PREFIXES: &[&str] =
    &linkwise_core::conventions::resources::GPU_RESOURCES;

/// Source names in [`Snapshot::sources`].
const GPU: &str = "gpu";
const PODRESOURCES: &str = "podresources";
const SLURM: &str = "slurm";

/// Per-device health the exporter shares with another holder (the device plugin): how
/// to mark a device, and a watch of every holder's marks. The exporter defines it and
/// the CLI wires it to the device plugin's health, so neither crate depends on the other.
pub struct HealthLink {
    mark: Mark,
    watch: watch::Receiver<BTreeMap<GpuId, bool>>,
}

/// How a [`HealthLink`] marks a device healthy (`true`) or not.
type Mark = Box<dyn Fn(&GpuId, bool) + Send + Sync>;

impl HealthLink {
    /// A link that marks devices with `mark` and sees the shared health through `watch`
    /// (which must also see the marks `mark` makes).
    pub fn new(
        mark: impl Fn(&GpuId, bool) + Send + Sync + 'static,
        watch: watch::Receiver<BTreeMap<GpuId, bool>>,
    ) -> Self {
        HealthLink {
            mark: Box::new(mark),
            watch,
        }
    }

    /// Marks a device healthy or not.
    fn set(&self, id: &GpuId, healthy: bool) {
        (self.mark)(id, healthy);
    }

    /// The current health of every device.
    fn snapshot(&self) -> BTreeMap<GpuId, bool> {
        self.watch.borrow().clone()
    }
}

impl fmt::Debug for HealthLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthLink")
            .field("health", &*self.watch.borrow())
            .finish_non_exhaustive()
    }
}

/// Exporter settings.
#[derive(Debug, Clone)]
pub struct ExporterConfig {
    /// How often the GPU source is collected (and the cache re-rendered).
    pub interval: Duration,
    /// The kubelet's PodResources socket; `None` turns pod attribution off.
    pub podresources_socket: Option<PathBuf>,
    /// How often PodResources is listed.
    pub podresources_every: Duration,
    /// The most one PodResources connect + `List` may take.
    pub podresources_timeout: Duration,
    /// Resource name prefixes whose devices attribute GPUs to containers.
    pub resource_prefixes: Vec<String>,
    /// The Slurm job mapping directory; `None` turns job attribution off.
    pub slurm_dir: Option<PathBuf>,
    /// How often the Slurm directory is read.
    pub slurm_every: Duration,
    /// XIDs that are counted but do not mark a GPU unhealthy.
    pub ignored_xids: Vec<u64>,
    /// The `hostname` label of the exporter info.
    pub hostname: String,
    /// The `source` label of the exporter info (`nvml`, `profile:dgx-h100`, ...).
    pub source: String,
}

impl Default for ExporterConfig {
    fn default() -> Self {
        ExporterConfig {
            interval: Duration::from_secs(5),
            podresources_socket: None,
            podresources_every: Duration::from_secs(10),
            podresources_timeout: Duration::from_secs(2),
            resource_prefixes: DEFAULT_RESOURCE_PREFIXES
                .iter()
                .map(|s| (*s).to_string())
                .collect(),
            slurm_dir: None,
            slurm_every: Duration::from_secs(5),
            ignored_xids: DEFAULT_IGNORED_XIDS.to_vec(),
            hostname: String::new(),
            source: String::new(),
        }
    }
}

/// An exporter not yet running: the topology, the GPU source and the settings.
pub struct Exporter {
    topo: Arc<Topology>,
    source: Box<dyn Collect>,
    config: ExporterConfig,
    ports: Vec<Port>,
}

/// A running exporter: the cached render, XID input and shutdown. Cheap to clone.
#[derive(Clone)]
pub struct ExporterHandle {
    shared: Arc<Shared>,
}

struct Shared {
    topo: Arc<Topology>,
    ports: Vec<Port>,
    config: ExporterConfig,
    synthetic: bool,
    health: Option<HealthLink>,
    state: Mutex<State>,
    cache: watch::Sender<Bytes>,
    dirty: Notify,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// What the tasks write and a render reads.
#[derive(Default)]
struct State {
    readings: Readings,
    /// Per port: the last state a collection saw, `None` before one reported it.
    link_up: Vec<Option<bool>>,
    /// Per GPU: whether the last collection saw it answer, `None` before one reported it.
    present: Vec<Option<bool>>,
    pods: BTreeMap<usize, Attribution>,
    slurm: BTreeMap<usize, String>,
    /// Per GPU: health when there is no [`HealthLink`].
    own_health: Vec<bool>,
    /// The device plugin's health as the exporter last knew it (its own marks included),
    /// to tell external changes from its own.
    seen_health: BTreeMap<GpuId, bool>,
    xid_counts: BTreeMap<(usize, u64), u64>,
    health_events: BTreeMap<(usize, &'static str), u64>,
    sources: BTreeMap<&'static str, SourceHealth>,
    /// Per source: the last failure logged, so a repeating failure logs once.
    last_error: BTreeMap<&'static str, String>,
}

// === impl Exporter ===

impl Exporter {
    /// An exporter for `topo` reading `source`.
    pub fn new(topo: Arc<Topology>, source: Box<dyn Collect>, config: ExporterConfig) -> Self {
        Exporter {
            ports: nvlink_ports(&topo),
            topo,
            source,
            config,
        }
    }

    /// Uses `ports` for the NVLink series instead of [`nvlink_ports`] (NVML's link
    /// numbers, from `NvmlCollector::ports`). Ignored, with a warning, unless it is
    /// [`nvlink_ports`] of the topology with only link numbers changed.
    #[must_use]
    pub fn with_ports(mut self, ports: Vec<Port>) -> Self {
        let same_shape = ports.len() == self.ports.len()
            && ports
                .iter()
                .zip(&self.ports)
                .all(|(a, b)| a.gpu == b.gpu && a.peer == b.peer);
        if same_shape {
            self.ports = ports;
        } else {
            tracing::warn!(
                "ports do not match the topology's NVLink ports; keeping topology numbering"
            );
        }
        self
    }

    /// Renders the topology with empty readings (so a scrape has an answer at once) and
    /// starts the collection, attribution, health and render tasks on the current Tokio
    /// runtime. With `health`, the exporter's health marks go to the device plugin and
    /// the plugin's health is what `linkwise_gpu_healthy` shows.
    ///
    /// The tasks run until [`ExporterHandle::shutdown`] or until the runtime stops.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn spawn(self, health: Option<HealthLink>) -> ExporterHandle {
        let Exporter {
            topo,
            source,
            config,
            ports,
        } = self;
        let n = topo.gpus.len();
        // Subscribe before reading, so no change falls between the two.
        let (rx, seen_health) = match &health {
            Some(h) => {
                let mut rx = h.watch.clone();
                let seen = rx.borrow_and_update().clone();
                (Some(rx), seen)
            }
            None => (None, BTreeMap::new()),
        };
        let mut sources = BTreeMap::new();
        sources.insert(GPU, SourceHealth::default());
        if config.podresources_socket.is_some() {
            sources.insert(PODRESOURCES, SourceHealth::default());
        }
        if config.slurm_dir.is_some() {
            sources.insert(SLURM, SourceHealth::default());
        }
        let state = State {
            link_up: vec![None; ports.len()],
            present: vec![None; n],
            own_health: topo.gpus.iter().map(|g| g.health.is_healthy()).collect(),
            seen_health,
            sources,
            ..State::default()
        };
        let shared = Arc::new(Shared {
            ports,
            synthetic: source.synthetic(),
            health,
            state: Mutex::new(state),
            cache: watch::Sender::new(Bytes::new()),
            dirty: Notify::new(),
            tasks: Mutex::new(Vec::new()),
            topo,
            config,
        });
        shared.render_now();

        let mut tasks = vec![
            tokio::spawn(render_loop(shared.clone())),
            tokio::spawn(collect_loop(shared.clone(), source)),
        ];
        if let Some(rx) = rx {
            tasks.push(tokio::spawn(health_loop(shared.clone(), rx)));
        }
        if let Some(socket) = shared.config.podresources_socket.clone() {
            tasks.push(tokio::spawn(podresources_loop(shared.clone(), socket)));
        }
        if let Some(dir) = shared.config.slurm_dir.clone() {
            tasks.push(tokio::spawn(slurm_loop(shared.clone(), dir)));
        }
        *shared.tasks.lock().unwrap_or_else(PoisonError::into_inner) = tasks;
        ExporterHandle { shared }
    }
}

impl fmt::Debug for Exporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exporter")
            .field("gpus", &self.topo.gpus.len())
            .field("synthetic", &self.source.synthetic())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

// === impl ExporterHandle ===

impl ExporterHandle {
    /// The last rendered OpenMetrics text (never empty: the first render happens before
    /// [`Exporter::spawn`] returns). Clones a reference, no I/O.
    pub fn latest(&self) -> Bytes {
        self.shared.cache.borrow().clone()
    }

    /// A receiver that wakes on every new render.
    pub fn subscribe(&self) -> watch::Receiver<Bytes> {
        self.shared.cache.subscribe()
    }

    /// The state a render would see now.
    pub fn snapshot(&self) -> Snapshot {
        self.shared.snapshot()
    }

    /// An XID event from an external watcher (the NVML event thread): counted, and
    /// unless the XID is ignored the GPU is marked unhealthy (`xid`); the cache is
    /// re-rendered at once. `gpu` is the GPU's id or UUID; unknown GPUs are logged and
    /// dropped. Callable from any thread.
    pub fn record_xid(&self, gpu: &GpuId, xid: u64) {
        let s = &self.shared;
        let Some(g) = s
            .topo
            .gpus
            .iter()
            .position(|x| &x.id == gpu || x.uuid.as_deref() == Some(gpu.0.as_str()))
        else {
            tracing::warn!(gpu = %gpu.0, xid, "XID for a GPU the topology does not have; dropped");
            return;
        };
        {
            let mut st = s.state();
            s.count_xid(&mut st, g, xid);
        }
        s.dirty.notify_one();
    }

    /// Stops every task; [`ExporterHandle::latest`] keeps answering the last render.
    pub fn shutdown(&self) {
        let tasks = std::mem::take(
            &mut *self
                .shared
                .tasks
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for t in tasks {
            t.abort();
        }
    }
}

impl fmt::Debug for ExporterHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExporterHandle")
            .field("gpus", &self.shared.topo.gpus.len())
            .field("cached_bytes", &self.shared.cache.borrow().len())
            .finish_non_exhaustive()
    }
}

// === impl Shared ===

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn snapshot(&self) -> Snapshot {
        let st = self.state();
        let healthy = match &self.health {
            Some(h) => {
                let m = h.snapshot();
                self.topo
                    .gpus
                    .iter()
                    .zip(&st.own_health)
                    .map(|(g, own)| m.get(&g.id).copied().unwrap_or(*own))
                    .collect()
            }
            None => st.own_health.clone(),
        };
        Snapshot {
            topo: self.topo.clone(),
            hostname: self.config.hostname.clone(),
            source: self.config.source.clone(),
            synthetic: self.synthetic,
            ports: self.ports.clone(),
            readings: st.readings.clone(),
            attribution: attribution::merge(&st.pods, &st.slurm),
            healthy,
            xid_counts: st.xid_counts.clone(),
            health_events: st.health_events.clone(),
            sources: st.sources.clone(),
        }
    }

    fn render_now(&self) {
        let snap = self.snapshot();
        self.cache
            .send_replace(Bytes::from(crate::render::render(&snap)));
    }

    /// Counts an XID and, unless it is ignored, marks the GPU unhealthy.
    fn count_xid(&self, st: &mut State, g: usize, xid: u64) {
        *st.xid_counts.entry((g, xid)).or_default() += 1;
        if self.config.ignored_xids.contains(&xid) {
            tracing::info!(gpu = g, xid, "application-level XID; GPU stays healthy");
        } else {
            self.mark_unhealthy(st, g, "xid");
        }
    }

    /// Counts a health event and marks the GPU unhealthy, in the device plugin too. Runs
    /// under the state lock, so the health task sees the mark as the exporter's own.
    fn mark_unhealthy(&self, st: &mut State, g: usize, reason: &'static str) {
        let Some(gpu) = self.topo.gpus.get(g) else {
            return;
        };
        *st.health_events.entry((g, reason)).or_default() += 1;
        if let Some(h) = st.own_health.get_mut(g) {
            *h = false;
        }
        if let Some(h) = &self.health {
            st.seen_health.insert(gpu.id.clone(), false);
            h.set(&gpu.id, false);
        }
        tracing::warn!(gpu = %gpu.id.0, reason, "GPU marked unhealthy");
    }

    fn succeeded(&self, st: &mut State, source: &'static str, took: Duration) {
        let h = st.sources.entry(source).or_default();
        h.last_duration = took;
        h.last_success = Some(SystemTime::now());
        if st.last_error.remove(source).is_some() {
            tracing::info!(source, "collection recovered");
        }
    }

    /// Counts a failure; logs it when it differs from the last one of that source.
    fn failed(&self, st: &mut State, source: &'static str, took: Duration, error: String) {
        let h = st.sources.entry(source).or_default();
        h.last_duration = took;
        h.errors += 1;
        if st.last_error.get(source) == Some(&error) {
            tracing::debug!(source, %error, "collection failed again");
        } else {
            tracing::warn!(source, %error, "collection failed; keeping the last good values");
            st.last_error.insert(source, error);
        }
    }

    /// Applies one collection: health transitions, XIDs, then the readings themselves.
    fn apply(&self, readings: Readings, took: Duration) {
        let mut st = self.state();
        let mut events: Vec<(usize, &'static str)> = Vec::new();
        for l in &readings.links {
            let (Some(port), Some(prev)) = (self.ports.get(l.port), st.link_up.get_mut(l.port))
            else {
                continue;
            };
            if *prev == Some(true) && !l.up {
                events.push((port.gpu, "link_down"));
            }
            *prev = Some(l.up);
        }
        for (g, r) in readings.gpus.iter().enumerate() {
            let Some(prev) = st.present.get_mut(g) else {
                break;
            };
            if *prev == Some(true) && !r.present {
                events.push((g, "gpu_lost"));
            }
            *prev = Some(r.present);
        }
        for (g, reason) in events {
            self.mark_unhealthy(&mut st, g, reason);
        }
        for &(g, xid) in &readings.xids {
            if g < self.topo.gpus.len() {
                self.count_xid(&mut st, g, xid);
            }
        }
        st.readings = readings;
        self.succeeded(&mut st, GPU, took);
    }
}

// === tasks ===

fn ticker(every: Duration) -> tokio::time::Interval {
    let mut t = tokio::time::interval(every.max(Duration::from_millis(1)));
    t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    t
}

/// Renders whenever a task changed the state; bursts of changes coalesce into one render.
/// The renderer keeps the topology's escaped labels between renders.
async fn render_loop(shared: Arc<Shared>) {
    let mut renderer = Renderer::new();
    loop {
        shared.dirty.notified().await;
        let snap = shared.snapshot();
        let rendered = tokio::task::spawn_blocking(move || {
            let bytes = renderer.render(&snap);
            (renderer, bytes)
        })
        .await;
        match rendered {
            Ok((r, bytes)) => {
                renderer = r;
                shared.cache.send_replace(Bytes::from(bytes));
            }
            Err(e) => {
                tracing::error!(error = %e, "render failed; serving the previous one");
                renderer = Renderer::new();
            }
        }
    }
}

/// Collects on the interval, on a blocking thread: a source that blocks delays only
/// the next collection.
async fn collect_loop(shared: Arc<Shared>, mut source: Box<dyn Collect>) {
    let mut tick = ticker(shared.config.interval);
    loop {
        tick.tick().await;
        let started = Instant::now();
        let joined = tokio::task::spawn_blocking(move || {
            let r = source.collect();
            (source, r)
        })
        .await;
        let took = started.elapsed();
        match joined {
            Ok((s, result)) => {
                source = s;
                match result {
                    Ok(r) => shared.apply(r, took),
                    Err(e) => {
                        let mut st = shared.state();
                        shared.failed(&mut st, GPU, took, e.message);
                    }
                }
                shared.dirty.notify_one();
            }
            Err(e) => {
                // The source panicked and is gone: count it, keep serving the last values.
                let mut st = shared.state();
                shared.failed(&mut st, GPU, took, format!("the source panicked: {e}"));
                drop(st);
                shared.dirty.notify_one();
                tracing::error!(error = %e, "GPU source panicked; collection stopped");
                return;
            }
        }
    }
}

/// Watches the device plugin's health: a change the exporter did not make re-renders at
/// once, and a healthy → unhealthy one counts as `external`.
async fn health_loop(shared: Arc<Shared>, mut rx: watch::Receiver<BTreeMap<GpuId, bool>>) {
    while rx.changed().await.is_ok() {
        {
            // Lock first, then read: the exporter's own marks happen under the same lock,
            // so they are in `seen_health` before their change can be read here.
            let mut st = shared.state();
            let now = rx.borrow_and_update().clone();
            for (g, gpu) in shared.topo.gpus.iter().enumerate() {
                let was = st.seen_health.get(&gpu.id).copied().unwrap_or(true);
                let Some(&is) = now.get(&gpu.id) else {
                    continue;
                };
                if was && !is {
                    *st.health_events.entry((g, "external")).or_default() += 1;
                    tracing::warn!(gpu = %gpu.id.0, "GPU marked unhealthy by another source");
                }
                if let Some(h) = st.own_health.get_mut(g) {
                    *h = is;
                }
            }
            st.seen_health = now;
        }
        shared.dirty.notify_one();
    }
}

/// Lists PodResources on its own timer; each attempt is bounded by the timeout, and a
/// failure keeps the last good attribution.
async fn podresources_loop(shared: Arc<Shared>, socket: PathBuf) {
    let mut tick = ticker(shared.config.podresources_every);
    let limit = shared.config.podresources_timeout;
    loop {
        tick.tick().await;
        let started = Instant::now();
        // `list_assignments` bounds itself; the outer bound is a second guard.
        let result = tokio::time::timeout(
            limit + Duration::from_millis(100),
            linkwise_kubelet::podresources::list_assignments(&socket, limit),
        )
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "PodResources List did not answer within {} ms",
                limit.as_millis()
            ))
        });
        let took = started.elapsed();
        {
            let mut st = shared.state();
            match result {
                Ok(a) => {
                    st.pods = attribution::from_assignments(
                        &shared.topo,
                        &shared.config.resource_prefixes,
                        &a,
                    );
                    shared.succeeded(&mut st, PODRESOURCES, took);
                }
                Err(e) => shared.failed(&mut st, PODRESOURCES, took, e),
            }
        }
        shared.dirty.notify_one();
    }
}

/// Reads the Slurm job directory on its own timer, on a blocking thread. A read that
/// has not finished within the period counts as a failure and is awaited again on the
/// next tick rather than started twice (a hung file system holds one thread, not more).
async fn slurm_loop(shared: Arc<Shared>, dir: PathBuf) {
    type Read = JoinHandle<Result<BTreeMap<usize, String>, String>>;
    let every = shared.config.slurm_every;
    let mut tick = ticker(every);
    let limit = every.max(Duration::from_secs(1));
    let mut pending: Option<Read> = None;
    loop {
        tick.tick().await;
        let started = Instant::now();
        let mut read = pending.take().unwrap_or_else(|| {
            let (topo, dir) = (shared.topo.clone(), dir.clone());
            tokio::task::spawn_blocking(move || attribution::read_slurm_dir(&topo, &dir))
        });
        let result = match tokio::time::timeout(limit, &mut read).await {
            Err(_) => {
                pending = Some(read);
                Err(format!(
                    "reading {} took longer than {} ms",
                    dir.display(),
                    limit.as_millis()
                ))
            }
            Ok(Err(e)) => Err(format!("reading {} failed: {e}", dir.display())),
            Ok(Ok(r)) => r,
        };
        let took = started.elapsed();
        {
            let mut st = shared.state();
            match result {
                Ok(jobs) => {
                    st.slurm = jobs;
                    shared.succeeded(&mut st, SLURM, took);
                }
                Err(e) => shared.failed(&mut st, SLURM, took, e),
            }
        }
        shared.dirty.notify_one();
    }
}
