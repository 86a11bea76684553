//! Native benchmarks.
//!
//! [`host_memory`]: STREAM's four kernels (copy `c = a`, scale `b = s·c`, add
//! `c = a + b`, triad `a = b + s·c`) over f64 arrays per NUMA node, one thread per CPU
//! of the node, each pinned to its CPU and owning a slice of the arrays that it touches
//! first (so Linux places the pages on the thread's node). Each kernel runs `repeat`
//! times; as STREAM does, the first run is discarded and the best of the rest is
//! reported. Bytes counted as STREAM counts them: 16 per element for copy and scale, 24
//! for add and triad. The working set defaults to four times the last-level cache per
//! array (at least 64 MiB each), so the caches cannot hold it, but the three arrays at
//! most a quarter of the available memory. The result is in the
//! results model (tool `linkwise`), so `validate gate` can compare runs.
//!
//! [`gpu_probe`]: whether a CUDA driver is there for the GPU copy benchmarks.

use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::results::{Axis, Direction, Matrix, Results, Status, Test, Tool, Unit};

/// STREAM's scalar.
const SCALAR: f64 = 3.0;

/// What to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct HostMemoryOptions {
    /// Elements per array (`None`: from the last-level cache).
    pub elements: Option<usize>,
    /// Runs of each kernel (at least 2; the first is discarded).
    pub repeat: usize,
    /// Only these NUMA nodes (empty: every node).
    pub nodes: Vec<u32>,
    /// The sysfs root (`/` on a machine).
    pub root: std::path::PathBuf,
}

impl Default for HostMemoryOptions {
    fn default() -> Self {
        HostMemoryOptions {
            elements: None,
            repeat: 10,
            nodes: Vec::new(),
            root: "/".into(),
        }
    }
}

/// One node's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStream {
    /// The NUMA node.
    pub node: u32,
    /// Its CPUs (threads, one each).
    pub cpus: Vec<u32>,
    /// Elements per array.
    pub elements: usize,
    /// Best copy, scale, add, triad in GB/s.
    pub copy: f64,
    /// Scale.
    pub scale: f64,
    /// Add.
    pub add: f64,
    /// Triad.
    pub triad: f64,
    /// Whether every thread could be pinned to its CPU.
    pub pinned: bool,
}

/// The NUMA nodes and their CPUs from sysfs (one node with every online CPU when the
/// kernel shows none).
pub fn numa_nodes(root: &Path) -> Vec<(u32, Vec<u32>)> {
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir(root.join("sys/devices/system/node")) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(id) = name
                .strip_prefix("node")
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(list) = std::fs::read_to_string(e.path().join("cpulist")) else {
                continue;
            };
            if let Ok(cpus) = list.trim().parse::<linkwise_core::CpuSet>()
                && !cpus.is_empty()
            {
                out.push((id, cpus.cpus().to_vec()));
            }
        }
    }
    out.sort();
    if out.is_empty() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        out.push((0, (0..u32::try_from(n).unwrap_or(1)).collect()));
    }
    out
}

/// The last-level cache in bytes (sysfs), where the kernel says.
pub fn last_level_cache(root: &Path) -> Option<u64> {
    let base = root.join("sys/devices/system/cpu/cpu0/cache");
    let mut best = None;
    for e in std::fs::read_dir(base).ok()?.flatten() {
        // index0..N; other entries (uevent) have no size.
        let Ok(size) = std::fs::read_to_string(e.path().join("size")) else {
            continue;
        };
        let size = size.trim();
        let parsed = match size.strip_suffix('K') {
            Some(k) => k.parse::<u64>().ok().map(|k| k * 1024),
            None => match size.strip_suffix('M') {
                Some(m) => m.parse::<u64>().ok().map(|m| m << 20),
                None => size.parse().ok(),
            },
        };
        let Some(bytes) = parsed else { continue };
        best = best.max(Some(bytes));
    }
    best
}

/// `MemAvailable` from `/proc/meminfo`, in bytes.
fn available_memory(root: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(root.join("proc/meminfo")).ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn pin(cpu: u32) -> bool {
    let mut set = rustix::thread::CpuSet::new();
    let Ok(i) = usize::try_from(cpu) else {
        return false;
    };
    if i >= rustix::thread::CpuSet::MAX_CPU {
        return false;
    }
    set.set(i);
    rustix::thread::sched_setaffinity(None, &set).is_ok()
}

/// One node: threads pinned to its CPUs, each with its own slice. Every thread takes
/// its own clock around each kernel (between barriers); a kernel's time is from the
/// earliest start to the latest end, so a thread scheduled late cannot shorten it.
fn stream_node(node: u32, cpus: &[u32], elements: usize, repeat: usize) -> NodeStream {
    let threads = cpus.len().max(1);
    let per = elements.div_ceil(threads);
    let barrier = Barrier::new(threads);
    type Spans = Vec<[(Instant, Instant); 4]>;
    let results: Vec<(bool, Spans)> = std::thread::scope(|s| {
        let handles: Vec<_> = cpus
            .iter()
            .map(|&cpu| {
                let barrier = &barrier;
                s.spawn(move || {
                    let ok = pin(cpu);
                    // First touch by the pinned thread: the pages land on its node.
                    let (mut a, mut b, mut c) =
                        (vec![1.0f64; per], vec![2.0f64; per], vec![0.5f64; per]);
                    let mut spans: Spans = Vec::with_capacity(repeat);
                    let timed = |f: &mut dyn FnMut()| {
                        barrier.wait();
                        let t0 = Instant::now();
                        f();
                        let t1 = Instant::now();
                        barrier.wait();
                        (t0, t1)
                    };
                    for _ in 0..repeat {
                        let copy = timed(&mut || c.copy_from_slice(&a));
                        let scale = timed(&mut || {
                            for (b, c) in b.iter_mut().zip(&c) {
                                *b = SCALAR * c;
                            }
                        });
                        let add = timed(&mut || {
                            for ((c, a), b) in c.iter_mut().zip(&a).zip(&b) {
                                *c = a + b;
                            }
                        });
                        let triad = timed(&mut || {
                            for ((a, b), c) in a.iter_mut().zip(&b).zip(&c) {
                                *a = b + SCALAR * c;
                            }
                        });
                        spans.push([copy, scale, add, triad]);
                    }
                    std::hint::black_box((&a, &b, &c));
                    (ok, spans)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or((false, Vec::new())))
            .collect()
    });
    let pinned = results.iter().all(|(ok, _)| *ok);
    let total = (per * threads) as f64;
    let best = |k: usize, bytes: f64| {
        let t = (1..repeat)
            .filter_map(|r| {
                let start = results
                    .iter()
                    .filter_map(|(_, s)| s.get(r).map(|x| x[k].0))
                    .min()?;
                let end = results
                    .iter()
                    .filter_map(|(_, s)| s.get(r).map(|x| x[k].1))
                    .max()?;
                Some(end.duration_since(start))
            })
            .min()
            .unwrap_or(Duration::MAX)
            .as_secs_f64();
        if t > 0.0 {
            bytes * total / t / 1e9
        } else {
            0.0
        }
    };
    NodeStream {
        node,
        cpus: cpus.to_vec(),
        elements: per * threads,
        copy: best(0, 16.0),
        scale: best(1, 16.0),
        add: best(2, 24.0),
        triad: best(3, 24.0),
        pinned,
    }
}

/// Runs the host-memory benchmark.
///
/// # Errors
///
/// A message: an unknown NUMA node asked for, fewer than 2 runs.
pub fn host_memory(o: &HostMemoryOptions) -> Result<Vec<NodeStream>, String> {
    if o.repeat < 2 {
        return Err("--repeat must be at least 2 (the first run is discarded)".into());
    }
    let nodes = numa_nodes(&o.root);
    for n in &o.nodes {
        if !nodes.iter().any(|(id, _)| id == n) {
            return Err(format!(
                "NUMA node {n} is not on this machine (nodes: {})",
                nodes
                    .iter()
                    .map(|(i, _)| i.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let elements = o.elements.unwrap_or_else(|| {
        let llc = last_level_cache(&o.root).unwrap_or(32 << 20);
        // Three arrays of it take at most a quarter of the available memory.
        let cap = available_memory(&o.root).map_or(u64::MAX, |m| m / 4 / 3);
        usize::try_from((4 * llc).max(64 << 20).min(cap.max(16 << 20)) / 8).unwrap_or(8 << 20)
    });
    Ok(nodes
        .iter()
        .filter(|(id, _)| o.nodes.is_empty() || o.nodes.contains(id))
        .map(|(id, cpus)| stream_node(*id, cpus, elements, o.repeat))
        .collect())
}

/// The benchmark's figures in the results model: one test per kernel, a row of one
/// value per NUMA node.
pub fn host_memory_results(nodes: &[NodeStream]) -> Results {
    let test = |name: &str, f: fn(&NodeStream) -> f64| Test {
        name: format!("host_memory_{name}"),
        status: Status::Passed,
        message: None,
        matrices: vec![Matrix {
            description: format!("STREAM {name} NUMA node(column) bandwidth (GB/s)"),
            rows: Axis::Cpu,
            columns: Axis::Cpu,
            direction: Direction::Local,
            unit: Unit::GBps,
            values: vec![nodes.iter().map(|n| Some(f(n))).collect()],
            sum: Some(nodes.iter().map(f).sum()),
        }],
        collective: None,
        entities: Vec::new(),
    };
    Results {
        tool: Tool::Linkwise,
        source: "linkwise validate bench host-memory".into(),
        version: Some(env!("CARGO_PKG_VERSION").into()),
        driver_version: None,
        devices: Vec::new(),
        error: None,
        tests: vec![
            test("copy", |n| n.copy),
            test("scale", |n| n.scale),
            test("add", |n| n.add),
            test("triad", |n| n.triad),
        ],
    }
}

/// Where the CUDA driver library would be, and whether the NVIDIA driver is loaded:
/// `Ok(path)` when both are there, else what is missing.
pub fn gpu_probe(root: &Path) -> Result<std::path::PathBuf, String> {
    if !root.join("proc/driver/nvidia/version").exists() {
        return Err("no NVIDIA driver is loaded (/proc/driver/nvidia/version is absent): `bench gpu` needs a GPU and its driver".into());
    }
    let dirs = [
        "usr/lib/x86_64-linux-gnu",
        "usr/lib/aarch64-linux-gnu",
        "usr/lib/riscv64-linux-gnu",
        "usr/lib64",
        "usr/lib",
        "usr/local/cuda/lib64",
        "usr/local/nvidia/lib64",
    ];
    dirs.iter()
        .map(|d| root.join(d).join("libcuda.so.1"))
        .find(|p| p.exists())
        .ok_or_else(|| "the NVIDIA driver is loaded but libcuda.so.1 is not installed (the CUDA driver library, in the driver's user-space package)".into())
}
