//! GPU copy-engine benchmarks through the CUDA driver API, `libcuda` loaded at run
//! time.
//!
//! What is measured, as nvbandwidth measures it with its copy-engine tests: a buffer
//! of `bytes` copied `iterations` times with `cuMemcpy*Async` on a stream, timed by two
//! events around the loop after one untimed warm-up copy; bandwidth is bytes ×
//! iterations / elapsed, in GB/s (10⁹ bytes per second).
//!
//! - `host_to_device_memcpy_ce` / `device_to_host_memcpy_ce`: pinned (page-locked,
//!   portable) host memory to each GPU and back, the GPU's stream.
//! - `device_to_device_memcpy_read_ce`: for every pair, row GPU ← column GPU on the
//!   row GPU's stream (the reader's copy engine); `..._write_ce`: row → column on the
//!   row GPU's stream (`cuMemcpyPeerAsync`). Peer access is enabled where
//!   `cuDeviceCanAccessPeer` allows; a pair without it is still measured — the driver
//!   then stages the copy through host memory, which is what its workloads would get
//!   — and named in the test's message, so `validate check` sees the slow pair where
//!   the topology promises NVLink (nvbandwidth leaves such a pair `N/A`).
//! - `host_to_device_latency_ce` / `device_to_device_latency_ce`: the time of one
//!   small (8-byte) copy as the stream sees it, averaged over `latency_iterations`:
//!   the copy engine's latency plus the submission, in nanoseconds.
//!
//! Every driver call's failure names the call and the GPU. Memory, streams and events
//! are released on every path (each is an owned value with a `Drop`).

// The driver API is C: every call is `unsafe`, each justified where it is made.
#![allow(unsafe_code)]

use std::ffi::c_void;

use cudarc::driver::result::{self, DriverError};
use cudarc::driver::sys;

use crate::results::{Axis, Direction, Matrix, Results, Status, Test, Tool, Unit};

/// What to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuOptions {
    /// Bytes per copy.
    pub bytes: usize,
    /// Timed copies per measurement (after one untimed warm-up).
    pub iterations: u32,
    /// Small copies per latency measurement.
    pub latency_iterations: u32,
    /// Only these GPUs, by CUDA ordinal (empty: every GPU).
    pub devices: Vec<u32>,
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions {
            bytes: 256 << 20,
            iterations: 8,
            latency_iterations: 1000,
            devices: Vec::new(),
        }
    }
}

/// Why the benchmarks could not run.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No CUDA driver library, or no GPU.
    #[error("{0}")]
    Unavailable(String),
    /// A driver call failed.
    #[error("{call} on GPU{gpu}: {error}")]
    Call {
        /// The driver function.
        call: &'static str,
        /// The CUDA ordinal.
        gpu: u32,
        /// The driver's name and description of the error.
        error: String,
    },
    /// The options cannot be measured.
    #[error("{0}")]
    Options(String),
}

fn describe(e: DriverError) -> String {
    let name = e.error_name().map_or_else(
        |_| format!("{:?}", e.0),
        |n| n.to_string_lossy().into_owned(),
    );
    match e.error_string() {
        Ok(s) => format!("{name} ({})", s.to_string_lossy()),
        Err(_) => name,
    }
}

/// `Result` of a driver call, naming the call and the GPU on failure.
trait Named<T> {
    fn on(self, call: &'static str, gpu: u32) -> Result<T, GpuError>;
}

impl<T> Named<T> for Result<T, DriverError> {
    fn on(self, call: &'static str, gpu: u32) -> Result<T, GpuError> {
        self.map_err(|e| GpuError::Call {
            call,
            gpu,
            error: describe(e),
        })
    }
}

/// One GPU: its primary context (retained while this lives) and a stream.
struct Gpu {
    ordinal: u32,
    dev: sys::CUdevice,
    ctx: sys::CUcontext,
    stream: sys::CUstream,
    name: String,
}

impl Gpu {
    fn open(ordinal: u32) -> Result<Gpu, GpuError> {
        let dev = result::device::get(i32::try_from(ordinal).unwrap_or(i32::MAX))
            .on("cuDeviceGet", ordinal)?;
        let name = result::device::get_name(dev).on("cuDeviceGetName", ordinal)?;
        // SAFETY: `dev` came from cuDeviceGet; the context is released in Drop.
        let ctx =
            unsafe { result::primary_ctx::retain(dev) }.on("cuDevicePrimaryCtxRetain", ordinal)?;
        let mut gpu = Gpu {
            ordinal,
            dev,
            ctx,
            stream: std::ptr::null_mut(),
            name,
        };
        gpu.bind()?;
        gpu.stream = result::stream::create(result::stream::StreamKind::NonBlocking)
            .on("cuStreamCreate", ordinal)?;
        Ok(gpu)
    }

    /// Makes this GPU's context current on the calling thread.
    fn bind(&self) -> Result<(), GpuError> {
        // SAFETY: `ctx` is a retained primary context, alive while `self` is.
        unsafe { result::ctx::set_current(self.ctx) }.on("cuCtxSetCurrent", self.ordinal)
    }

    /// Runs `copy` once untimed, then `iterations` times between two events; the
    /// seconds the timed copies took.
    fn time(
        &self,
        iterations: u32,
        mut copy: impl FnMut(sys::CUstream) -> Result<(), DriverError>,
        call: &'static str,
    ) -> Result<f64, GpuError> {
        self.bind()?;
        copy(self.stream).on(call, self.ordinal)?;
        let start = Event::new(self)?;
        let end = Event::new(self)?;
        start.record(self.stream)?;
        for _ in 0..iterations {
            copy(self.stream).on(call, self.ordinal)?;
        }
        end.record(self.stream)?;
        // SAFETY: both events were created in this context and recorded on its stream.
        unsafe { result::event::synchronize(end.0) }.on("cuEventSynchronize", self.ordinal)?;
        // SAFETY: as above; both have completed.
        let ms = unsafe { result::event::elapsed(start.0, end.0) }
            .on("cuEventElapsedTime", self.ordinal)?;
        Ok(f64::from(ms) / 1000.0)
    }
}

impl Drop for Gpu {
    fn drop(&mut self) {
        // SAFETY: the stream was created in this context and nothing uses it after
        // this; the context was retained by `open`. Errors are ignored in a drop.
        unsafe {
            if !self.stream.is_null() && result::ctx::set_current(self.ctx).is_ok() {
                let _ = result::stream::synchronize(self.stream);
                let _ = result::stream::destroy(self.stream);
            }
            let _ = result::primary_ctx::release(self.dev);
        }
    }
}

/// A timing event of one GPU's context.
struct Event(sys::CUevent, u32);

impl Event {
    fn new(gpu: &Gpu) -> Result<Event, GpuError> {
        result::event::create(sys::CUevent_flags::CU_EVENT_DEFAULT)
            .map(|e| Event(e, gpu.ordinal))
            .on("cuEventCreate", gpu.ordinal)
    }

    fn record(&self, stream: sys::CUstream) -> Result<(), GpuError> {
        // SAFETY: the event and the stream belong to the current context.
        unsafe { result::event::record(self.0, stream) }.on("cuEventRecord", self.1)
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: the event is not used after this.
        let _ = unsafe { result::event::destroy(self.0) };
    }
}

/// Device memory of one GPU.
struct DeviceBuffer {
    ptr: sys::CUdeviceptr,
    ctx: sys::CUcontext,
}

impl DeviceBuffer {
    fn new(gpu: &Gpu, bytes: usize) -> Result<DeviceBuffer, GpuError> {
        gpu.bind()?;
        // SAFETY: the context is current; the memory is freed in Drop.
        let ptr = unsafe { result::malloc_sync(bytes) }.on("cuMemAlloc", gpu.ordinal)?;
        let buffer = DeviceBuffer { ptr, ctx: gpu.ctx };
        // Touched once so the first timed copy does not pay for the mapping.
        // SAFETY: `ptr` holds `bytes` bytes.
        unsafe { result::memset_d8_sync(ptr, 0x5a, bytes) }.on("cuMemsetD8", gpu.ordinal)?;
        Ok(buffer)
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated in `ctx`, which outlives the buffer (buffers are dropped
        // before the GPUs); no copy is in flight (each measurement synchronises).
        unsafe {
            if result::ctx::set_current(self.ctx).is_ok() {
                let _ = result::free_sync(self.ptr);
            }
        }
    }
}

/// Pinned host memory, usable from every context.
struct HostBuffer(*mut c_void);

impl HostBuffer {
    fn new(gpu: &Gpu, bytes: usize) -> Result<HostBuffer, GpuError> {
        gpu.bind()?;
        // SAFETY: a context is current; the memory is freed in Drop.
        let ptr = unsafe { result::malloc_host(bytes, sys::CU_MEMHOSTALLOC_PORTABLE) }
            .on("cuMemHostAlloc", gpu.ordinal)?;
        // SAFETY: `ptr` is `bytes` bytes of writable host memory. Touched so every
        // page is resident before the first copy.
        unsafe { std::ptr::write_bytes(ptr.cast::<u8>(), 0xa5, bytes) };
        Ok(HostBuffer(ptr))
    }
}

impl Drop for HostBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated by cuMemHostAlloc; no copy is in flight.
        let _ = unsafe { result::free_host(self.0) };
    }
}

/// Whether `libcuda` can be loaded, and the driver's CUDA version (`12040` for 12.4).
///
/// # Errors
///
/// [`GpuError::Unavailable`] without the library; [`GpuError::Call`] when `cuInit`
/// fails (no GPU, or the kernel module is not loaded).
pub fn driver() -> Result<i32, GpuError> {
    // SAFETY: loading a library runs its initialisers; libcuda's are the driver's.
    if !unsafe { sys::is_culib_present() } {
        return Err(GpuError::Unavailable(
            "the CUDA driver library (libcuda.so) cannot be loaded: install the NVIDIA driver's user-space part, or set LD_LIBRARY_PATH to where libcuda.so.1 is".into(),
        ));
    }
    result::init().on("cuInit", 0)?;
    let mut version = 0;
    // SAFETY: one out-parameter.
    unsafe { sys::cuDriverGetVersion(&raw mut version) }
        .result()
        .on("cuDriverGetVersion", 0)?;
    Ok(version)
}

fn gbps(bytes: usize, iterations: u32, seconds: f64) -> Option<f64> {
    #[allow(clippy::cast_precision_loss)]
    let total = bytes as f64 * f64::from(iterations);
    (seconds > 0.0).then(|| total / seconds / 1e9)
}

fn matrix(
    description: &str,
    rows: Axis,
    direction: Direction,
    unit: Unit,
    values: Vec<Vec<Option<f64>>>,
) -> Matrix {
    let sum = values.iter().flatten().flatten().sum::<f64>();
    Matrix {
        description: description.into(),
        rows,
        columns: Axis::Gpu,
        direction,
        unit,
        values,
        sum: Some(sum),
    }
}

fn test(name: &str, m: Matrix) -> Test {
    Test {
        name: name.into(),
        status: Status::Passed,
        message: None,
        matrices: vec![m],
        collective: None,
        entities: Vec::new(),
    }
}

/// Measures every GPU (or those in `o.devices`); `progress` hears what is measured.
///
/// # Errors
///
/// [`GpuError`]: no driver, no GPU, an ordinal that is not there, a failed call.
pub fn gpu(o: &GpuOptions, mut progress: impl FnMut(&str)) -> Result<Results, GpuError> {
    if o.bytes < 8 || o.iterations == 0 || o.latency_iterations == 0 {
        return Err(GpuError::Options(
            "the copy size must be at least 8 bytes and the iterations at least 1".into(),
        ));
    }
    let version = driver()?;
    let count = result::device::get_count().on("cuDeviceGetCount", 0)?;
    let count = u32::try_from(count).unwrap_or(0);
    if count == 0 {
        return Err(GpuError::Unavailable("the CUDA driver sees no GPU".into()));
    }
    let ordinals: Vec<u32> = if o.devices.is_empty() {
        (0..count).collect()
    } else {
        if let Some(bad) = o.devices.iter().find(|d| **d >= count) {
            return Err(GpuError::Options(format!(
                "there is no GPU{bad}: the CUDA driver sees {count} (ordinals 0 to {})",
                count - 1
            )));
        }
        o.devices.clone()
    };
    let gpus = ordinals
        .iter()
        .map(|g| Gpu::open(*g))
        .collect::<Result<Vec<_>, _>>()?;
    let n = gpus.len();
    let mut tests = Vec::new();

    // Host ↔ device.
    let host = HostBuffer::new(&gpus[0], o.bytes)?;
    let mut h2d = Vec::with_capacity(n);
    let mut d2h = Vec::with_capacity(n);
    let mut h2d_latency = Vec::with_capacity(n);
    for g in &gpus {
        progress(&format!("GPU{} host ↔ device", g.ordinal));
        let dev = DeviceBuffer::new(g, o.bytes)?;
        let (hp, dp, bytes) = (host.0, dev.ptr, o.bytes);
        // SAFETY (the three closures): `hp` and `dp` hold `bytes` bytes each and
        // outlive the measurement, which synchronises before returning.
        let s = g.time(
            o.iterations,
            |st| unsafe { sys::cuMemcpyHtoDAsync_v2(dp, hp, bytes, st) }.result(),
            "cuMemcpyHtoDAsync",
        )?;
        h2d.push(gbps(bytes, o.iterations, s));
        let s = g.time(
            o.iterations,
            |st| unsafe { sys::cuMemcpyDtoHAsync_v2(hp, dp, bytes, st) }.result(),
            "cuMemcpyDtoHAsync",
        )?;
        d2h.push(gbps(bytes, o.iterations, s));
        let s = g.time(
            o.latency_iterations,
            |st| unsafe { sys::cuMemcpyHtoDAsync_v2(dp, hp, 8, st) }.result(),
            "cuMemcpyHtoDAsync",
        )?;
        h2d_latency.push(Some(s / f64::from(o.latency_iterations) * 1e9));
    }
    drop(host);
    tests.push(test(
        "host_to_device_memcpy_ce",
        matrix(
            "memcpy CE CPU(row) -> GPU(column) bandwidth (GB/s)",
            Axis::Cpu,
            Direction::RowToColumn,
            Unit::GBps,
            vec![h2d],
        ),
    ));
    tests.push(test(
        "device_to_host_memcpy_ce",
        matrix(
            "memcpy CE CPU(row) <- GPU(column) bandwidth (GB/s)",
            Axis::Cpu,
            Direction::ColumnToRow,
            Unit::GBps,
            vec![d2h],
        ),
    ));
    tests.push(test(
        "host_to_device_latency_ce",
        matrix(
            "memcpy CE CPU(row) -> GPU(column) latency (ns)",
            Axis::Cpu,
            Direction::RowToColumn,
            Unit::Ns,
            vec![h2d_latency],
        ),
    ));

    // Device ↔ device.
    if n > 1 {
        let mut peer = vec![vec![false; n]; n];
        for (i, a) in gpus.iter().enumerate() {
            for (j, b) in gpus.iter().enumerate() {
                if i == j {
                    continue;
                }
                let mut can = 0;
                // SAFETY: one out-parameter; both devices from cuDeviceGet.
                unsafe { sys::cuDeviceCanAccessPeer(&raw mut can, a.dev, b.dev) }
                    .result()
                    .on("cuDeviceCanAccessPeer", a.ordinal)?;
                if can != 0 {
                    a.bind()?;
                    // SAFETY: `b.ctx` is a live context; enabling twice is an error
                    // the driver names, which is harmless and ignored.
                    let rc = unsafe { sys::cuCtxEnablePeerAccess(b.ctx, 0) };
                    match rc {
                        sys::cudaError_enum::CUDA_SUCCESS
                        | sys::cudaError_enum::CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED => {
                            peer[i][j] = true;
                        }
                        e => {
                            return Err(GpuError::Call {
                                call: "cuCtxEnablePeerAccess",
                                gpu: a.ordinal,
                                error: describe(DriverError(e)),
                            });
                        }
                    }
                }
            }
        }
        let buffers = gpus
            .iter()
            .map(|g| DeviceBuffer::new(g, o.bytes))
            .collect::<Result<Vec<_>, _>>()?;
        let mut read = vec![vec![None; n]; n];
        let mut write = vec![vec![None; n]; n];
        let mut latency = vec![vec![None; n]; n];
        for i in 0..n {
            for j in 0..n {
                if i == j {
                    continue;
                }
                let (g, mine, theirs, bytes) = (&gpus[i], buffers[i].ptr, buffers[j].ptr, o.bytes);
                let (my_ctx, their_ctx) = (g.ctx, gpus[j].ctx);
                progress(&format!("GPU{} ↔ GPU{}", g.ordinal, gpus[j].ordinal));
                // SAFETY (the three closures): both buffers hold `bytes` bytes in
                // their live contexts, and each measurement synchronises before the
                // buffers can go.
                let s = g.time(
                    o.iterations,
                    |st| unsafe {
                        result::memcpy_peer_async(my_ctx, mine, their_ctx, theirs, bytes, st)
                    },
                    "cuMemcpyPeerAsync",
                )?;
                read[i][j] = gbps(bytes, o.iterations, s);
                let s = g.time(
                    o.iterations,
                    |st| unsafe {
                        result::memcpy_peer_async(their_ctx, theirs, my_ctx, mine, bytes, st)
                    },
                    "cuMemcpyPeerAsync",
                )?;
                write[i][j] = gbps(bytes, o.iterations, s);
                let s = g.time(
                    o.latency_iterations,
                    |st| unsafe {
                        result::memcpy_peer_async(their_ctx, theirs, my_ctx, mine, 8, st)
                    },
                    "cuMemcpyPeerAsync",
                )?;
                latency[i][j] = Some(s / f64::from(o.latency_iterations) * 1e9);
            }
        }
        drop(buffers);
        let staged: Vec<String> = (0..n)
            .flat_map(|i| (0..n).map(move |j| (i, j)))
            .filter(|&(i, j)| i != j && !peer[i][j])
            .map(|(i, j)| format!("GPU{}→GPU{}", gpus[i].ordinal, gpus[j].ordinal))
            .collect();
        let message = (!staged.is_empty()).then(|| {
            format!(
                "no peer access (copied through host memory): {}",
                staged.join(", ")
            )
        });
        for (name, description, direction, values) in [
            (
                "device_to_device_memcpy_read_ce",
                "memcpy CE GPU(row) <- GPU(column) bandwidth (GB/s)",
                Direction::ColumnToRow,
                read,
            ),
            (
                "device_to_device_memcpy_write_ce",
                "memcpy CE GPU(row) -> GPU(column) bandwidth (GB/s)",
                Direction::RowToColumn,
                write,
            ),
        ] {
            let mut t = test(
                name,
                matrix(description, Axis::Gpu, direction, Unit::GBps, values),
            );
            t.message.clone_from(&message);
            tests.push(t);
        }
        tests.push(test(
            "device_to_device_latency_ce",
            matrix(
                "memcpy CE GPU(row) -> GPU(column) latency (ns)",
                Axis::Gpu,
                Direction::RowToColumn,
                Unit::Ns,
                latency,
            ),
        ));
    }
    let devices = gpus
        .iter()
        .map(|g| format!("{}: {}", g.ordinal, g.name))
        .collect();
    Ok(Results {
        tool: Tool::Linkwise,
        source: "linkwise validate bench gpu".into(),
        version: Some(env!("CARGO_PKG_VERSION").into()),
        driver_version: Some(format!("CUDA {}.{}", version / 1000, version % 1000 / 10)),
        devices,
        error: None,
        tests,
    })
}
