//! Tests for the sysfs source: the fixture trees under `fixtures/sysfs/`, trees with
//! broken files built in temporary directories, and the live `/` of the test machine.
#![cfg(unix)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use linkwise_core::{Arch, CpuSet, Endpoint, Gap, LinkKind, PathClass, PcieLinkStatus, Topology};
use linkwise_discovery::{SysfsSource, TopologySource};

fn fixture_root(name: &str) -> PathBuf {
    linkwise_testkit::fixtures().join("sysfs").join(name)
}

fn fixture(name: &str) -> Topology {
    let root = fixture_root(name);
    assert!(root.is_dir(), "{} is missing", root.display());
    SysfsSource::new(&root)
        .discover()
        .expect("discovery on a fixture")
}

/// The pair matrix as `nvidia-smi topo -m` labels.
fn matrix(t: &Topology) -> Vec<Vec<String>> {
    let m = t.pair_matrix();
    (0..m.len())
        .map(|i| (0..m.len()).map(|j| m.cell(i, j).label()).collect())
        .collect()
}

fn expect_matrix(rows: &[&str]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// The gap whose reason names `path` (as `ROOT/rel`).
fn gap_naming<'a>(t: &'a Topology, root: &Path, rel: &str) -> &'a Gap {
    let shown = root.join(rel).display().to_string();
    t.gaps
        .iter()
        .find(|g| g.why.contains(&shown))
        .unwrap_or_else(|| panic!("no gap names {shown}; gaps: {:#?}", t.gaps))
}

fn has_gap(t: &Topology, what: &str) -> bool {
    t.gaps.iter().any(|g| g.what == what)
}

fn pcie(cur_mts: u32, cur_w: u32, max_mts: u32, max_w: u32) -> Option<PcieLinkStatus> {
    Some(PcieLinkStatus {
        current_speed_mts: Some(cur_mts),
        current_width: Some(cur_w),
        max_speed_mts: Some(max_mts),
        max_width: Some(max_w),
    })
}

fn nic_class(t: &Topology, gpu_index: usize, nic: &str) -> PathClass {
    let gpu = &t.gpus[gpu_index].id;
    t.links
        .iter()
        .find_map(|l| match (&l.a, &l.b, &l.kind) {
            (Endpoint::Gpu(g), Endpoint::Nic(n), LinkKind::Pcie { class })
                if g == gpu && n == nic =>
            {
                Some(*class)
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no PCIe link from GPU{gpu_index} to {nic}"))
}

// === fixtures ===

#[test]
fn dgx_h100_host() {
    let t = fixture("x86_64-dgx-h100");
    assert!(t.source.starts_with("sysfs:"));
    assert_eq!(t.hosts.len(), 1);
    let h = &t.hosts[0];
    assert_eq!(h.name, "dgx-h100-01");
    assert_eq!(h.arch, Some(Arch::X86_64));
    assert_eq!(h.kernel.as_deref(), Some("5.15.0-1042-nvidia"));
    assert_eq!(
        h.cpu_model.as_deref(),
        Some("Intel(R) Xeon(R) Platinum 8468")
    );
    assert_eq!(h.board_model.as_deref(), Some("DGXH100"));
    assert_eq!(h.cpus, Some(192));
    assert_eq!(h.memory_bytes, Some(2_113_277_940 * 1024));
    assert_eq!(h.numa_nodes.len(), 2);
    assert_eq!(h.numa_nodes[0].id, 0);
    assert_eq!(h.numa_nodes[0].cpus.to_string(), "0-47,96-143");
    assert_eq!(h.numa_nodes[0].memory_bytes, Some(1_056_335_060 * 1024));
    assert_eq!(h.numa_nodes[1].id, 1);
    assert_eq!(h.numa_nodes[1].cpus.to_string(), "48-95,144-191");
    assert_eq!(h.numa_nodes[1].memory_bytes, Some(1_056_942_880 * 1024));
}

#[test]
fn dgx_h100_gpus() {
    let t = fixture("x86_64-dgx-h100");
    let bdfs = [
        "0000:18:00.0",
        "0000:19:00.0",
        "0000:3a:00.0",
        "0000:3b:00.0",
        "0000:9d:00.0",
        "0000:9e:00.0",
        "0000:bd:00.0",
        "0000:be:00.0",
    ];
    let uuids = [
        "GPU-5e3c8a41-7b0d-4c2e-9f16-0a8d2b7c4e01",
        "GPU-9a1f4c27-3e58-4b9d-8c02-6d7e1f3a5b12",
        "GPU-2c7d9e03-8f41-4a6b-b5c8-3e9f0d1a7c23",
        "GPU-d4b2e6f8-1a3c-4e5d-9b7f-8c0a2e4d6f34",
        "GPU-7f0e2d4c-6b8a-4c1e-a3d5-9e7f1b3c5d45",
        "GPU-0b9c8d7e-5f4a-4b3c-8d2e-1f0a9b8c7d56",
        "GPU-e1d2c3b4-a5f6-4e7d-9c8b-7a6f5e4d3c67",
        "GPU-3f5a7c9e-1b2d-4f6a-8c0e-2d4f6a8c0e78",
    ];
    let groups = [31, 39, 52, 60, 83, 91, 104, 112];
    assert_eq!(t.gpus.len(), 8);
    for (i, g) in t.gpus.iter().enumerate() {
        let socket = u32::from(i >= 4);
        assert_eq!(g.index, u32::try_from(i).unwrap());
        assert_eq!(g.id.0, uuids[i]);
        assert_eq!(g.uuid.as_deref(), Some(uuids[i]));
        assert_eq!(g.pci_bus_id.unwrap().to_string(), bdfs[i]);
        assert_eq!(g.host, "dgx-h100-01");
        assert_eq!(g.model, "NVIDIA H100 80GB HBM3");
        assert_eq!(g.numa_node, Some(socket));
        let cpus = if socket == 0 {
            "0-47,96-143"
        } else {
            "48-95,144-191"
        };
        assert_eq!(g.cpu_affinity, Some(cpus.parse::<CpuSet>().unwrap()));
        assert_eq!(g.iommu_group, Some(groups[i]));
        assert_eq!(g.kernel_driver.as_deref(), Some("nvidia"));
        assert_eq!(g.driver_version.as_deref(), Some("550.54.15"));
        assert_eq!(g.vbios_version.as_deref(), Some("96.00.74.00.01"));
        assert_eq!(g.firmware_version.as_deref(), Some("550.54.15"));
        assert_eq!(g.memory_bytes, None);
        assert!(g.health.is_healthy());
        let width = if i == 3 { 8 } else { 16 };
        assert_eq!(g.pcie, pcie(32_000, width, 32_000, 16), "GPU{i}");
        assert_eq!(g.pcie.unwrap().is_degraded(), i == 3, "GPU{i}");
    }
    // Everything sysfs can tell was there; only NVLink and GPU memory are gaps.
    let whats: Vec<&str> = t.gaps.iter().map(|g| g.what.as_str()).collect();
    assert_eq!(whats, ["nvlink", "gpu memory"], "{:#?}", t.gaps);
}

#[test]
fn dgx_h100_switches_nics_and_matrix() {
    let t = fixture("x86_64-dgx-h100");
    assert_eq!(t.switches.len(), 4);
    for (k, s) in t.switches.iter().enumerate() {
        let bdf = format!("0000:{:02x}:00.0", 3 + k);
        assert_eq!(s.id, bdf);
        assert_eq!(s.pci_bus_id.unwrap().to_string(), bdf);
        assert_eq!(s.host.as_deref(), Some("dgx-h100-01"));
        assert_eq!(s.model.as_deref(), Some("NVIDIA H100 NVSwitch"));
    }
    assert_eq!(t.nics.len(), 2);
    assert_eq!(t.nics[0].id, "0000:1a:00.0");
    assert_eq!(t.nics[0].name.as_deref(), Some("mlx5_0"));
    assert_eq!(t.nics[1].id, "0000:9f:00.0");
    assert_eq!(t.nics[1].name.as_deref(), Some("mlx5_1"));

    assert_eq!(
        matrix(&t),
        expect_matrix(&[
            "X    PIX  NODE NODE SYS  SYS  SYS  SYS",
            "PIX  X    NODE NODE SYS  SYS  SYS  SYS",
            "NODE NODE X    PIX  SYS  SYS  SYS  SYS",
            "NODE NODE PIX  X    SYS  SYS  SYS  SYS",
            "SYS  SYS  SYS  SYS  X    PIX  NODE NODE",
            "SYS  SYS  SYS  SYS  PIX  X    NODE NODE",
            "SYS  SYS  SYS  SYS  NODE NODE X    PIX",
            "SYS  SYS  SYS  SYS  NODE NODE PIX  X",
        ])
    );
    // 28 GPU pairs and 16 GPU-NIC pairs, all PCIe.
    assert_eq!(t.links.len(), 28 + 16);
    assert_eq!(nic_class(&t, 0, "0000:1a:00.0"), PathClass::Pix);
    assert_eq!(nic_class(&t, 1, "0000:1a:00.0"), PathClass::Pix);
    assert_eq!(nic_class(&t, 2, "0000:1a:00.0"), PathClass::Node);
    assert_eq!(nic_class(&t, 4, "0000:1a:00.0"), PathClass::Sys);
    assert_eq!(nic_class(&t, 5, "0000:9f:00.0"), PathClass::Pix);
    assert_eq!(nic_class(&t, 7, "0000:9f:00.0"), PathClass::Node);
    assert_eq!(nic_class(&t, 3, "0000:9f:00.0"), PathClass::Sys);
    // sysfs sees the switches but no NVLink: every pair stays PCIe, one island per GPU.
    assert_eq!(t.islands().len(), 8);
}

#[test]
fn arm_server_without_driver() {
    let t = fixture("aarch64-arm-server");
    let h = &t.hosts[0];
    assert_eq!(h.name, "arm-srv-07");
    assert_eq!(h.arch, Some(Arch::Aarch64));
    assert_eq!(h.kernel.as_deref(), Some("6.8.0-49-generic-64k"));
    assert_eq!(h.cpu_model.as_deref(), Some("ARM Neoverse-N1"));
    assert_eq!(h.board_model.as_deref(), Some("Example Arm Server Q80-30"));
    assert_eq!(h.cpus, Some(80));
    assert_eq!(h.memory_bytes, Some(527_946_816 * 1024));
    assert_eq!(h.numa_nodes.len(), 1);
    assert_eq!(h.numa_nodes[0].cpus, CpuSet::range(0, 79));

    // The RTX 4090's HDMI audio function (class 0x0403) is not a GPU.
    assert_eq!(t.gpus.len(), 3);
    let expect = [
        (
            "0000:01:00.0",
            "NVIDIA A100 80GB PCIe",
            14,
            Some("vfio-pci"),
            pcie(2_500, 16, 16_000, 16),
        ),
        (
            "0000:02:00.0",
            "NVIDIA A100 80GB PCIe",
            15,
            None,
            pcie(2_500, 16, 16_000, 16),
        ),
        (
            "000c:01:00.0",
            "NVIDIA GeForce RTX 4090",
            40,
            Some("nouveau"),
            pcie(16_000, 16, 16_000, 16),
        ),
    ];
    for (i, (g, (bdf, model, group, driver, link))) in t.gpus.iter().zip(expect).enumerate() {
        // No driver: no UUID, the id is the PCI bus id and the index follows bus order.
        assert_eq!(g.index, u32::try_from(i).unwrap());
        assert_eq!(g.id.0, bdf);
        assert_eq!(g.uuid, None);
        assert_eq!(g.model, model);
        assert_eq!(g.numa_node, Some(0));
        assert_eq!(g.cpu_affinity, Some(CpuSet::range(0, 79)));
        assert_eq!(g.iommu_group, Some(group));
        assert_eq!(g.kernel_driver.as_deref(), driver);
        assert_eq!(g.driver_version, None);
        assert_eq!(g.vbios_version, None);
        assert_eq!(g.pcie, link);
        assert!(
            !g.pcie.unwrap().is_degraded(),
            "idle speed alone is no fault"
        );
    }
    assert!(t.switches.is_empty());
    assert!(t.nics.is_empty());
    assert_eq!(
        matrix(&t),
        expect_matrix(&["X    PHB  NODE", "PHB  X    NODE", "NODE NODE X"])
    );
    let root = fixture_root("aarch64-arm-server");
    let g = gap_naming(&t, &root, "proc/driver/nvidia/version");
    assert_eq!(g.what, "gpu uuids");
    assert!(has_gap(&t, "nvlink") && has_gap(&t, "gpu memory"));
    assert!(
        !t.gaps
            .iter()
            .any(|g| g.what.contains("numa") || g.what.contains("iommu")),
        "{:#?}",
        t.gaps
    );
}

#[test]
fn riscv_fusion_unknowns_are_gaps() {
    let t = fixture("riscv64-fusion");
    let root = fixture_root("riscv64-fusion");
    let h = &t.hosts[0];
    assert_eq!(h.name, "rv-fusion-01");
    assert_eq!(h.arch, Some(Arch::Riscv64));
    assert_eq!(h.kernel.as_deref(), Some("6.12.8-riscv64"));
    assert_eq!(h.cpu_model.as_deref(), Some("sifive,p870"));
    assert_eq!(
        h.board_model.as_deref(),
        Some("RISC-V NVLink Fusion evaluation board")
    );
    assert_eq!(h.cpus, Some(32));
    assert_eq!(h.memory_bytes, Some(131_596_288 * 1024));
    assert!(h.numa_nodes.is_empty());
    assert_eq!(
        gap_naming(&t, &root, "sys/devices/system/node").what,
        "host numa nodes"
    );

    let bdfs = [
        "0000:05:00.0",
        "0000:06:00.0",
        "0000:07:00.0",
        "0000:08:00.0",
    ];
    assert_eq!(t.gpus.len(), 4);
    for (i, g) in t.gpus.iter().enumerate() {
        let bdf = bdfs[i];
        assert_eq!(g.index, u32::try_from(i).unwrap());
        assert!(g.id.0.starts_with("GPU-") && g.uuid.as_deref() == Some(g.id.0.as_str()));
        assert_eq!(g.pci_bus_id.unwrap().to_string(), bdf);
        assert_eq!(g.model, "NVIDIA H100 PCIe");
        assert_eq!(g.numa_node, None);
        assert_eq!(g.iommu_group, None);
        assert_eq!(g.cpu_affinity, Some(CpuSet::range(0, 31)));
        assert_eq!(g.kernel_driver.as_deref(), Some("nvidia"));
        assert_eq!(g.driver_version.as_deref(), Some("575.57.08"));
        assert_eq!(g.pcie, pcie(32_000, 16, 32_000, 16));
        let numa = gap_naming(&t, &root, &format!("sys/bus/pci/devices/{bdf}/numa_node"));
        assert_eq!(numa.what, format!("gpu {bdf} numa node"));
        assert!(numa.why.contains("-1"));
        let iommu = gap_naming(&t, &root, &format!("sys/bus/pci/devices/{bdf}/iommu_group"));
        assert_eq!(iommu.what, format!("gpu {bdf} iommu group"));
    }
    assert_eq!(t.gpus[0].id.0, "GPU-a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c01");
    assert_eq!(t.gpus[3].id.0, "GPU-d3e4f5a6-b7c8-4d9e-9f0a-2b3c4d5e6f04");
    // One root complex: two GPUs behind a second-level switch (PIX), one on the first
    // switch (PXB to those), one on its own root port (PHB to all).
    assert_eq!(
        matrix(&t),
        expect_matrix(&[
            "X   PIX PXB PHB",
            "PIX X   PXB PHB",
            "PXB PXB X   PHB",
            "PHB PHB PHB X",
        ])
    );
}

#[test]
fn fixtures_hold_only_relative_symlinks() {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_symlink() {
                out.push(e.path());
            } else if ft.is_dir() {
                walk(&e.path(), out);
            }
        }
    }
    for name in ["x86_64-dgx-h100", "aarch64-arm-server", "riscv64-fusion"] {
        let mut links = Vec::new();
        walk(&fixture_root(name), &mut links);
        assert!(!links.is_empty(), "{name} has no symlinks");
        for l in links {
            let target = fs::read_link(&l).unwrap();
            assert!(
                target.is_relative(),
                "{} -> {} is absolute",
                l.display(),
                target.display()
            );
            assert!(fs::metadata(&l).is_ok(), "{} dangles", l.display());
        }
    }
}

// === broken trees ===

/// A tree built in a temporary directory.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Self {
        Tree {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self, rel: &str, text: &str) -> &Self {
        let p = self.root().join(rel);
        fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir -p");
        fs::write(p, text).expect("write");
        self
    }

    fn link(&self, rel: &str, target: &str) -> &Self {
        let p = self.root().join(rel);
        fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir -p");
        symlink(target, p).expect("symlink");
        self
    }

    /// An H100 at `sys/devices/pci0000:00/0000:00:0<rp>.0/<bdf>` with every attribute
    /// sane, bound to `nvidia`, in IOMMU group `rp`.
    fn gpu(&self, rp: u32, bdf: &str) -> String {
        let dev = format!("sys/devices/pci0000:00/0000:00:{rp:02x}.0/{bdf}");
        for (k, v) in [
            ("vendor", "0x10de"),
            ("device", "0x2330"),
            ("class", "0x030200"),
            ("numa_node", "0"),
            ("local_cpulist", "0-3"),
            ("current_link_speed", "16.0 GT/s PCIe"),
            ("max_link_speed", "32.0 GT/s PCIe"),
            ("current_link_width", "16"),
            ("max_link_width", "16"),
        ] {
            self.file(&format!("{dev}/{k}"), &format!("{v}\n"));
        }
        self.link(
            &format!("sys/bus/pci/devices/{bdf}"),
            &format!("../../../devices/pci0000:00/0000:00:{rp:02x}.0/{bdf}"),
        );
        self.link(
            &format!("{dev}/driver"),
            "../../../../bus/pci/drivers/nvidia",
        );
        self.link(
            &format!("{dev}/iommu_group"),
            &format!("../../../../kernel/iommu_groups/{rp}"),
        );
        dev
    }

    fn information(&self, bdf: &str, uuid: &str, minor: &str) {
        self.file(
            &format!("proc/driver/nvidia/gpus/{bdf}/information"),
            &format!("Model: \t\t NVIDIA H100 80GB HBM3\nGPU UUID: \t {uuid}\nBus Location: \t {bdf}\nDevice Minor: \t {minor}\n"),
        );
    }

    fn discover(&self) -> Topology {
        SysfsSource::new(self.root())
            .discover()
            .expect("discovery never fails on broken files")
    }
}

const BDF: &str = "0000:01:00.0";

#[test]
fn garbage_numa_node_is_unknown_with_a_gap() {
    let t = Tree::new();
    let dev = t.gpu(1, BDF);
    t.file(&format!("{dev}/numa_node"), "abc\n");
    let topo = t.discover();
    assert_eq!(topo.gpus.len(), 1);
    assert_eq!(topo.gpus[0].numa_node, None);
    let g = gap_naming(
        &topo,
        t.root(),
        &format!("sys/bus/pci/devices/{BDF}/numa_node"),
    );
    assert_eq!(g.what, format!("gpu {BDF} numa node"));
    assert!(g.why.contains("abc"), "{}", g.why);
    // The other facts of the GPU survive.
    assert_eq!(topo.gpus[0].iommu_group, Some(1));
    assert_eq!(topo.gpus[0].kernel_driver.as_deref(), Some("nvidia"));
    assert_eq!(topo.gpus[0].cpu_affinity, Some(CpuSet::range(0, 3)));
}

#[test]
fn unparsable_link_speed_is_unknown_with_a_gap() {
    let t = Tree::new();
    let dev = t.gpu(1, BDF);
    t.file(&format!("{dev}/current_link_speed"), "warp 9\n");
    t.file(&format!("{dev}/max_link_speed"), "Unknown\n");
    t.file(&format!("{dev}/max_link_width"), "lots\n");
    let topo = t.discover();
    let p = topo.gpus[0].pcie.unwrap();
    assert_eq!(p.current_speed_mts, None);
    assert_eq!(p.max_speed_mts, None);
    assert_eq!(p.current_width, Some(16));
    assert_eq!(p.max_width, None);
    for attr in ["current_link_speed", "max_link_speed", "max_link_width"] {
        let g = gap_naming(
            &topo,
            t.root(),
            &format!("sys/bus/pci/devices/{BDF}/{attr}"),
        );
        assert_eq!(g.what, format!("gpu {BDF} pcie link"));
    }
}

#[test]
fn older_kernel_speed_spelling_parses() {
    let t = Tree::new();
    let dev = t.gpu(1, BDF);
    t.file(&format!("{dev}/current_link_speed"), "2.5 GT/s\n");
    t.file(&format!("{dev}/max_link_speed"), "8 GT/s\n");
    let topo = t.discover();
    assert_eq!(topo.gpus[0].pcie, pcie(2_500, 16, 8_000, 16));
}

#[test]
fn dangling_device_link_is_skipped_with_a_gap() {
    let t = Tree::new();
    t.gpu(1, BDF);
    t.link(
        "sys/bus/pci/devices/0000:02:00.0",
        "../../../devices/pci0000:00/0000:00:02.0/0000:02:00.0",
    );
    let topo = t.discover();
    assert_eq!(topo.gpus.len(), 1);
    assert_eq!(topo.gpus[0].id.0, BDF);
    let g = gap_naming(&topo, t.root(), "sys/bus/pci/devices/0000:02:00.0");
    assert_eq!(g.what, "pci device 0000:02:00.0");
    assert!(g.why.contains("dangling"), "{}", g.why);
}

#[test]
fn dangling_driver_and_group_links_still_name_them() {
    // Only the link targets' names are used; the kernel's directories need not exist.
    let t = Tree::new();
    t.gpu(1, BDF);
    let topo = t.discover();
    assert!(!t.root().join("sys/bus/pci/drivers").exists());
    assert_eq!(topo.gpus[0].kernel_driver.as_deref(), Some("nvidia"));
    assert_eq!(topo.gpus[0].iommu_group, Some(1));
}

#[test]
fn looping_device_link_is_skipped_with_a_gap() {
    let t = Tree::new();
    t.link("sys/bus/pci/devices/0000:03:00.0", "0000:03:00.0");
    let topo = t.discover();
    assert!(topo.gpus.is_empty());
    gap_naming(&topo, t.root(), "sys/bus/pci/devices/0000:03:00.0");
}

#[test]
fn empty_root_gives_an_empty_topology_with_gaps() {
    let t = Tree::new();
    fs::create_dir(t.root().join("sys")).expect("mkdir sys");
    let topo = t.discover();
    assert!(
        topo.gpus.is_empty()
            && topo.switches.is_empty()
            && topo.nics.is_empty()
            && topo.links.is_empty()
    );
    assert_eq!(topo.hosts.len(), 1);
    let h = &topo.hosts[0];
    assert_eq!(h.name, "localhost");
    assert_eq!(
        (h.arch, h.kernel.as_deref(), h.cpus, h.memory_bytes),
        (None, None, None, None)
    );
    for what in [
        "host name",
        "host kernel",
        "host architecture",
        "host cpu model",
        "host board model",
        "host numa nodes",
        "host cpus",
        "host memory",
        "pci devices",
    ] {
        assert!(has_gap(&topo, what), "no gap for {what}: {:#?}", topo.gaps);
    }
    gap_naming(&topo, t.root(), "sys/bus/pci/devices");
    // No GPU: nothing to say about NVLink or the driver.
    assert!(!has_gap(&topo, "nvlink") && !has_gap(&topo, "gpu uuids"));
}

#[test]
fn a_root_that_is_no_host_is_refused() {
    // Regression: `--source sysfs:/nonexistent` read as a GPU-less host and exited 0.
    let t = Tree::new();
    t.file("plain-file", "x");
    for (root, why) in [
        (t.root().join("does/not/exist"), "No such file"),
        (t.root().join("plain-file"), "not a directory"),
        (t.root().to_path_buf(), "neither sys/ nor proc/"),
    ] {
        let err = SysfsSource::new(&root).discover().unwrap_err();
        assert!(
            matches!(err, linkwise_discovery::Error::BadSource { .. })
                && err.to_string().contains(why),
            "{}: {err}",
            root.display()
        );
    }
}

#[test]
fn garbage_everywhere_never_panics() {
    let t = Tree::new();
    let dev = t.gpu(1, BDF);
    let junk = "\u{0}\u{1}\u{fffd}::: -- 0x 99999999999999999999999 ,,,\n";
    for f in [
        "numa_node",
        "local_cpulist",
        "current_link_speed",
        "max_link_speed",
        "current_link_width",
        "max_link_width",
        "device",
    ] {
        t.file(&format!("{dev}/{f}"), junk);
    }
    for f in [
        "proc/cpuinfo",
        "proc/meminfo",
        "proc/sys/kernel/osrelease",
        "proc/device-tree/model",
        "sys/devices/system/cpu/online",
        "sys/devices/system/node/node0/cpulist",
        "sys/devices/system/node/node0/meminfo",
        "sys/devices/system/node/nodeX/cpulist",
        "proc/driver/nvidia/version",
    ] {
        t.file(f, junk);
    }
    t.file(&format!("proc/driver/nvidia/gpus/{BDF}/information"), junk);
    // A second function whose vendor and class are junk.
    t.file(
        "sys/devices/pci0000:00/0000:00:05.0/0000:05:00.0/vendor",
        junk,
    );
    t.link(
        "sys/bus/pci/devices/0000:05:00.0",
        "../../../devices/pci0000:00/0000:00:05.0/0000:05:00.0",
    );
    // Entries that are not PCI addresses are ignored.
    t.file("sys/bus/pci/devices/not-a-device", "x");
    let topo = t.discover();
    assert_eq!(topo.gpus.len(), 1);
    let g = &topo.gpus[0];
    assert_eq!(g.id.0, BDF);
    assert_eq!(g.model, "NVIDIA device 0x0000");
    assert_eq!(
        (
            g.numa_node,
            g.cpu_affinity.as_ref(),
            g.pcie,
            g.uuid.as_deref()
        ),
        (None, None, None, None)
    );
    assert_eq!(topo.hosts[0].numa_nodes.len(), 1);
    assert!(topo.hosts[0].numa_nodes[0].cpus.is_empty());
    gap_naming(&topo, t.root(), "sys/bus/pci/devices/0000:05:00.0/vendor");
    gap_naming(&topo, t.root(), "sys/devices/system/node/node0/cpulist");
    gap_naming(&topo, t.root(), "proc/driver/nvidia/version");
}

#[test]
fn device_minor_sets_the_index_and_uuid_the_id() {
    let t = Tree::new();
    t.gpu(1, "0000:01:00.0");
    t.gpu(2, "0000:02:00.0");
    t.file(
        "proc/driver/nvidia/version",
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 2024\n",
    );
    t.information("0000:01:00.0", "GPU-aaaa", "1");
    t.information("0000:02:00.0", "GPU-bbbb", "0");
    let topo = t.discover();
    let ids: Vec<(u32, &str)> = topo
        .gpus
        .iter()
        .map(|g| (g.index, g.id.0.as_str()))
        .collect();
    assert_eq!(ids, [(0, "GPU-bbbb"), (1, "GPU-aaaa")]);
    assert!(!has_gap(&topo, "gpu indexes"));
    // Both GPUs on root ports of one host bridge.
    assert_eq!(matrix(&topo), expect_matrix(&["X PHB", "PHB X"]));
}

#[test]
fn repeated_minors_and_uuids_fall_back_to_bus_order() {
    let t = Tree::new();
    t.gpu(1, "0000:01:00.0");
    t.gpu(2, "0000:02:00.0");
    t.file(
        "proc/driver/nvidia/version",
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15\n",
    );
    t.information("0000:01:00.0", "GPU-same", "0");
    t.information("0000:02:00.0", "GPU-same", "0");
    let topo = t.discover();
    let ids: Vec<(u32, &str)> = topo
        .gpus
        .iter()
        .map(|g| (g.index, g.id.0.as_str()))
        .collect();
    assert_eq!(ids, [(0, "GPU-same"), (1, "0000:02:00.0")]);
    assert!(has_gap(&topo, "gpu indexes"));
    assert!(has_gap(&topo, "gpu 0000:02:00.0 uuid"));
}

#[test]
fn driver_loaded_but_gpu_bound_elsewhere() {
    let t = Tree::new();
    let dev = t.gpu(1, BDF);
    fs::remove_file(t.root().join(format!("{dev}/driver"))).unwrap();
    t.link(
        &format!("{dev}/driver"),
        "../../../../bus/pci/drivers/vfio-pci",
    );
    t.file(
        "proc/driver/nvidia/version",
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.86.15  Release Build\n",
    );
    let topo = t.discover();
    let g = &topo.gpus[0];
    assert_eq!(g.kernel_driver.as_deref(), Some("vfio-pci"));
    assert_eq!(g.driver_version, None);
    assert_eq!(g.id.0, BDF);
    let gap = gap_naming(
        &topo,
        t.root(),
        &format!("proc/driver/nvidia/gpus/{BDF}/information"),
    );
    assert!(gap.why.contains("vfio-pci"), "{}", gap.why);
}

#[test]
fn absolute_links_resolve_inside_the_root() {
    // A tree copied from a live host may hold absolute links; they must not escape.
    let t = Tree::new();
    t.gpu(1, BDF);
    fs::remove_file(t.root().join(format!("sys/bus/pci/devices/{BDF}"))).unwrap();
    t.link(
        &format!("sys/bus/pci/devices/{BDF}"),
        &format!("/sys/devices/pci0000:00/0000:00:01.0/{BDF}"),
    );
    t.file("sys/firmware/devicetree/base/model", "Test Board\0");
    t.link("proc/device-tree", "/sys/firmware/devicetree/base");
    t.file("etc/hostname", "# comment\nfrom-etc\n");
    let topo = t.discover();
    assert_eq!(topo.gpus.len(), 1);
    assert_eq!(topo.gpus[0].numa_node, Some(0));
    assert_eq!(topo.hosts[0].board_model.as_deref(), Some("Test Board"));
    assert_eq!(topo.hosts[0].name, "from-etc");
}

#[test]
fn nvidia_bridges_and_other_functions() {
    let t = Tree::new();
    let dev = t.gpu(1, BDF);
    t.file(&format!("{dev}/device"), "0x1234\n");
    // VGA-class GPU, an NVSwitch, an audio function and a non-NVIDIA device.
    let vga = t.gpu(2, "0000:02:00.0");
    t.file(&format!("{vga}/class"), "0x030000\n");
    for (bdf, vendor, device, class) in [
        ("0000:03:00.0", "0x10de", "0x1af1", "0x068000"),
        ("0000:02:00.1", "0x10de", "0x22ba", "0x040300"),
        ("0000:04:00.0", "0x8086", "0x1234", "0x030200"),
        ("0000:05:00.0", "0x15b3", "0x101d", "0x020000"),
    ] {
        let d = format!("sys/devices/pci0000:00/0000:00:09.0/{bdf}");
        t.file(&format!("{d}/vendor"), vendor);
        t.file(&format!("{d}/device"), device);
        t.file(&format!("{d}/class"), class);
        t.link(
            &format!("sys/bus/pci/devices/{bdf}"),
            &format!("../../../{}", d.trim_start_matches("sys/")),
        );
    }
    t.file(
        "sys/devices/pci0000:00/0000:00:09.0/0000:05:00.0/net/enp5s0/type",
        "1\n",
    );
    let topo = t.discover();
    assert_eq!(topo.gpus.len(), 2);
    assert_eq!(topo.gpus[0].model, "NVIDIA device 0x1234");
    assert_eq!(topo.gpus[1].model, "NVIDIA H100 80GB HBM3");
    assert_eq!(topo.switches.len(), 1);
    assert_eq!(
        topo.switches[0].model.as_deref(),
        Some("NVIDIA A100 NVSwitch")
    );
    assert_eq!(topo.nics.len(), 1);
    assert_eq!(topo.nics[0].name.as_deref(), Some("enp5s0"));
    // A NIC under another root port of the same host bridge: PHB.
    assert_eq!(nic_class(&topo, 0, "0000:05:00.0"), PathClass::Phb);
}

#[test]
fn a_host_without_gpus_lists_its_pci_functions_in_a_gap() {
    // A virtual RISC-V machine: a host bridge function, a root port and an Ethernet
    // controller behind it, no NUMA node, no IOMMU group; one function has a group;
    // and a Mellanox NIC, which discovery reports as a NIC, not in the list.
    let t = Tree::new();
    for (path, vendor, device, class, numa) in [
        (
            "pci0000:00/0000:00:00.0",
            "0x1b36",
            "0x0008",
            "0x060000",
            "-1",
        ),
        (
            "pci0000:00/0000:00:01.0",
            "0x1b36",
            "0x000c",
            "0x060400",
            "-1",
        ),
        (
            "pci0000:00/0000:00:01.0/0000:01:00.0",
            "0x1af4",
            "0x1041",
            "0x020000",
            "-1",
        ),
        (
            "pci0000:00/0000:00:02.0",
            "0x1234",
            "0x11e8",
            "0x00ff00",
            "1",
        ),
        (
            "pci0000:00/0000:00:04.0",
            "0x15b3",
            "0x101d",
            "0x020000",
            "0",
        ),
    ] {
        let d = format!("sys/devices/{path}");
        t.file(&format!("{d}/vendor"), vendor);
        t.file(&format!("{d}/device"), device);
        t.file(&format!("{d}/class"), class);
        t.file(&format!("{d}/numa_node"), numa);
        let bdf = path.rsplit('/').next().unwrap();
        t.link(
            &format!("sys/bus/pci/devices/{bdf}"),
            &format!("../../../devices/{path}"),
        );
    }
    t.link(
        "sys/devices/pci0000:00/0000:00:02.0/iommu_group",
        "../../../kernel/iommu_groups/7",
    );
    let topo = t.discover();
    assert!(topo.gpus.is_empty());
    let gap = topo
        .gaps
        .iter()
        .find(|g| g.what == "gpus")
        .expect("a gpus gap saying why there is none");
    // The count covers the NIC; the list does not (it is in `nics`).
    assert!(gap.why.contains("among the 5 PCI functions"), "{}", gap.why);
    assert_eq!(topo.nics.len(), 1);
    assert!(!gap.why.contains("0000:00:04.0"), "{}", gap.why);
    for part in [
        "0000:00:00.0 [1b36:0008] class 0x060000 on the host bridge, numa node unknown (-1), no iommu group",
        "0000:01:00.0 [1af4:1041] class 0x020000 behind 0000:00:01.0, numa node unknown (-1), no iommu group",
        "0000:00:02.0 [1234:11e8] class 0x00ff00 on the host bridge, numa node 1, iommu group 7",
    ] {
        assert!(gap.why.contains(part), "missing {part:?} in {}", gap.why);
    }
    // With a GPU present, the other functions are not listed.
    let with_gpu = t;
    with_gpu.gpu(3, "0000:03:00.0");
    let topo = with_gpu.discover();
    assert_eq!(topo.gpus.len(), 1);
    assert!(!has_gap(&topo, "gpus"));
}

// === the live machine ===

/// NVIDIA GPU functions in `/sys/bus/pci/devices`, counted without the source.
fn live_nvidia_gpus() -> usize {
    let Ok(rd) = fs::read_dir("/sys/bus/pci/devices") else {
        return 0;
    };
    rd.filter_map(Result::ok)
        .filter(|e| {
            let read = |f: &str| fs::read_to_string(e.path().join(f)).unwrap_or_default();
            let class = read("class");
            read("vendor").trim() == "0x10de"
                && (class.starts_with("0x0302") || class.starts_with("0x0300"))
        })
        .count()
}

#[test]
fn live_root_discovers() {
    let topo = SysfsSource::new("/").discover().unwrap();
    assert_eq!(topo.source, "sysfs:/");
    assert_eq!(topo.hosts.len(), 1);
    assert!(!topo.hosts[0].name.is_empty());
    // Zero on a machine without an NVIDIA GPU (as on the development machine).
    assert_eq!(topo.gpus.len(), live_nvidia_gpus());
    topo.validate().unwrap();
}
