//! The host-memory benchmark runs here: every kernel moves data at a rate a machine can
//! have, triad within a small factor of copy (both stream the same memory), the figures
//! land in the results model that the gate reads; the GPU probe says what is missing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use linkwise_validate::bench::{
    HostMemoryOptions, gpu_probe, host_memory, host_memory_results, numa_nodes,
};
use linkwise_validate::gate::metrics;

#[test]
fn host_memory_runs_and_its_triad_is_plausible() {
    let o = HostMemoryOptions {
        elements: Some(4 << 20), // 32 MiB per array
        repeat: 3,
        ..HostMemoryOptions::default()
    };
    let nodes = host_memory(&o).unwrap();
    assert_eq!(nodes.len(), numa_nodes(std::path::Path::new("/")).len());
    for n in &nodes {
        eprintln!(
            "node {}: copy {:.1} scale {:.1} add {:.1} triad {:.1} GB/s",
            n.node, n.copy, n.scale, n.add, n.triad
        );
        // Slower than 0.2 GB/s or faster than 10 TB/s is no memory system of today's.
        for v in [n.copy, n.scale, n.add, n.triad] {
            assert!((0.2..10_000.0).contains(&v), "{n:?}");
        }
        assert!(n.triad > n.copy / 4.0 && n.triad < n.copy * 4.0, "{n:?}");
    }
    let r = host_memory_results(&nodes);
    assert_eq!(r.tests.len(), 4);
    let m = metrics(&r);
    assert!(
        m.iter()
            .any(|x| x.name == "host_memory_triad/min" && x.value > 0.0),
        "{m:?}"
    );
    assert!(
        host_memory(&HostMemoryOptions {
            repeat: 1,
            ..o.clone()
        })
        .is_err()
    );
    assert!(
        host_memory(&HostMemoryOptions {
            nodes: vec![999],
            ..o
        })
        .unwrap_err()
        .contains("999")
    );
}

#[test]
fn the_gpu_probe_names_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let e = gpu_probe(dir.path()).unwrap_err();
    assert!(e.contains("no NVIDIA driver"), "{e}");
    std::fs::create_dir_all(dir.path().join("proc/driver/nvidia")).unwrap();
    std::fs::write(
        dir.path().join("proc/driver/nvidia/version"),
        "NVRM version: 570.124.06\n",
    )
    .unwrap();
    assert!(gpu_probe(dir.path()).unwrap_err().contains("libcuda.so.1"));
    let lib = dir.path().join("usr/lib/x86_64-linux-gnu");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(lib.join("libcuda.so.1"), b"").unwrap();
    assert_eq!(gpu_probe(dir.path()).unwrap(), lib.join("libcuda.so.1"));
}

#[test]
fn gpu_options_that_cannot_be_measured_are_refused_before_the_driver_is_touched() {
    use linkwise_validate::cuda::{GpuError, GpuOptions, gpu};
    for o in [
        GpuOptions {
            bytes: 4,
            ..GpuOptions::default()
        },
        GpuOptions {
            iterations: 0,
            ..GpuOptions::default()
        },
        GpuOptions {
            latency_iterations: 0,
            ..GpuOptions::default()
        },
    ] {
        assert!(
            matches!(gpu(&o, |_| {}), Err(GpuError::Options(_))),
            "{o:?}"
        );
    }
}

#[test]
fn without_libcuda_the_gpu_benchmark_says_what_to_install() {
    use linkwise_validate::cuda::{GpuError, driver};
    match driver() {
        Err(GpuError::Unavailable(why)) => {
            assert!(why.contains("libcuda.so"), "{why}");
            assert!(why.contains("install"), "{why}");
        }
        // A machine with the library: the driver answers, or says why not.
        Ok(version) => assert!(version >= 1000, "{version}"),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// Hardware: every GPU's copies through the CUDA driver, in plausible ranges and
/// shaped as nvbandwidth's matrices (`cargo test -p linkwise-validate --test bench --
/// --ignored` on a machine with NVIDIA GPUs).
#[test]
#[ignore = "needs an NVIDIA GPU and its driver"]
fn gpu_copies_are_measured_on_real_gpus() {
    use linkwise_validate::cuda::{GpuOptions, gpu};
    use linkwise_validate::results::Unit;
    let mut heard = Vec::new();
    let r = gpu(
        &GpuOptions {
            bytes: 64 << 20,
            iterations: 4,
            latency_iterations: 200,
            devices: Vec::new(),
        },
        |w| heard.push(w.to_string()),
    )
    .unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&r).unwrap());
    let n = r.devices.len();
    assert!(n >= 1);
    assert!(!heard.is_empty());
    for t in &r.tests {
        let m = &t.matrices[0];
        for (i, row) in m.values.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                if t.name.starts_with("device_to_device") && i == j {
                    assert_eq!(*v, None, "{}", t.name);
                    continue;
                }
                let v = v.unwrap_or_else(|| panic!("{} [{i}][{j}] not measured", t.name));
                match m.unit {
                    // PCIe Gen3 x1 is ~1 GB/s; no link today carries 2 TB/s one way.
                    Unit::GBps => assert!((0.5..2000.0).contains(&v), "{} {v}", t.name),
                    // Faster than 100 ns or slower than a millisecond is not a copy.
                    Unit::Ns => assert!((100.0..1e6).contains(&v), "{} {v}", t.name),
                }
            }
        }
    }
    let names: Vec<&str> = r.tests.iter().map(|t| t.name.as_str()).collect();
    assert!(names.contains(&"host_to_device_memcpy_ce"));
    assert!(names.contains(&"device_to_host_memcpy_ce"));
    if n > 1 {
        assert!(names.contains(&"device_to_device_memcpy_read_ce"));
    }
}
