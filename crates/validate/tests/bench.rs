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
