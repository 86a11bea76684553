//! `linkwise agent` against a fake kubelet, over the real v1beta1 gRPC API: the agent
//! registers (API version, endpoint, resource name, options), lists every GPU of the
//! profile, and answers GetPreferredAllocation with the set `linkwise alloc` picks for
//! the same availability; Allocate returns the visible-devices environment.
//!
//! The binary under test is `$LINKWISE_BIN` when set, else the one cargo built. The
//! RISC-V lab (`scripts/riscv-lab`) runs this test binary, cross-built for riscv64,
//! inside a riscv64 guest against the riscv64 `linkwise`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use linkwise_deviceplugin::api;
use linkwise_deviceplugin::api::device_plugin_client::DevicePluginClient;
use linkwise_testkit::cli::linkwise;
use linkwise_testkit::kubelet::FakeKubelet;
use linkwise_testkit::process::Spawned;

/// How long the agent may take to register. Generous: under full-system emulation
/// the agent starts tens of times slower than natively.
const REGISTER_WITHIN: Duration = Duration::from_secs(60);

/// `linkwise agent` on `profile`, registering with the kubelet in `dir`; killed when
/// dropped.
fn start_agent(dir: &Path, profile: &str) -> Spawned {
    let mut agent = linkwise();
    agent
        .args(["agent", "--source", &format!("profile:{profile}")])
        .arg("--kubelet-dir")
        .arg(dir)
        .args(["--nfd-features-dir", "none", "--no-annotation"])
        .args(["--pod-resources-socket", "none", "--metrics-addr", "none"])
        .arg("--slurm-job-dir")
        .arg(dir.join("jobs"));
    Spawned::start(agent)
}

/// `linkwise alloc -o json` ids for `count` GPUs out of `available` (indices).
fn alloc_ids(profile: &str, count: usize, available: &[usize]) -> Vec<String> {
    let list: Vec<String> = available.iter().map(usize::to_string).collect();
    let out = linkwise()
        .args(["alloc", "--source", &format!("profile:{profile}")])
        .args([
            "--count",
            &count.to_string(),
            "--available",
            &list.join(","),
        ])
        .args(["-o", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "linkwise alloc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// One profile through registration, ListAndWatch, GetPreferredAllocation (several
/// sizes and availabilities, compared with `linkwise alloc`) and Allocate.
fn registers_and_prefers_what_alloc_picks(profile: &str) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut kubelet = FakeKubelet::start(d);
        let t0 = Instant::now();
        let agent = start_agent(d, profile);
        let reg = kubelet
            .try_next_registration(REGISTER_WITHIN)
            .await
            .unwrap_or_else(|| {
                panic!(
                    "{profile}: no registration within {REGISTER_WITHIN:?}; agent stderr:\n{}",
                    agent.stderr()
                )
            });
        eprintln!("{profile}: registered after {:?}", t0.elapsed());
        assert_eq!(reg.version, "v1beta1", "{profile}");
        assert_eq!(reg.resource_name, "nvidia.com/gpu", "{profile}");
        let options = reg.options.expect("registration carries options");
        assert!(options.get_preferred_allocation_available, "{profile}");
        let sock = d.join(&reg.endpoint);
        assert!(sock.exists(), "{profile}: endpoint {} exists", reg.endpoint);

        let channel = linkwise_deviceplugin::uds::connect(&sock).await.unwrap();
        let mut client = DevicePluginClient::new(channel);
        let mut stream = client
            .list_and_watch(api::Empty {})
            .await
            .unwrap()
            .into_inner();
        let devices = stream.message().await.unwrap().unwrap().devices;
        let all = alloc_ids(
            profile,
            devices.len(),
            &(0..devices.len()).collect::<Vec<_>>(),
        );
        assert_eq!(
            sorted(devices.iter().map(|d| d.id.clone()).collect()),
            sorted(all.clone()),
            "{profile}: ListAndWatch lists every GPU of the profile"
        );
        assert!(devices.iter().all(|d| d.health == "Healthy"), "{profile}");

        // Every size on the free node, then with the first GPU taken.
        let n = all.len();
        for (available, label) in [
            ((0..n).collect::<Vec<_>>(), "free"),
            ((1..n).collect::<Vec<_>>(), "GPU 0 taken"),
        ] {
            for size in 1..=available.len().min(8) {
                let ids: Vec<String> = available.iter().map(|&i| all[i].clone()).collect();
                let resp = client
                    .get_preferred_allocation(api::PreferredAllocationRequest {
                        container_requests: vec![api::ContainerPreferredAllocationRequest {
                            available_device_i_ds: ids,
                            must_include_device_i_ds: Vec::new(),
                            allocation_size: i32::try_from(size).unwrap(),
                        }],
                    })
                    .await
                    .unwrap()
                    .into_inner();
                let got = resp.container_responses[0].device_i_ds.clone();
                assert_eq!(
                    sorted(got),
                    sorted(alloc_ids(profile, size, &available)),
                    "{profile} ({label}): preferred {size} GPUs = linkwise alloc's"
                );
            }
        }

        let want = alloc_ids(profile, 2, &(0..n).collect::<Vec<_>>());
        let resp = client
            .allocate(api::AllocateRequest {
                container_requests: vec![api::ContainerAllocateRequest {
                    devices_ids: want.clone(),
                }],
            })
            .await
            .unwrap()
            .into_inner();
        let envs = &resp.container_responses[0].envs;
        let visible = envs
            .get("NVIDIA_VISIBLE_DEVICES")
            .expect("Allocate sets NVIDIA_VISIBLE_DEVICES");
        assert_eq!(
            sorted(visible.split(',').map(str::to_string).collect()),
            sorted(want),
            "{profile}"
        );
    });
}

#[test]
fn agent_registers_with_a_kubelet_and_prefers_alloc_sets_dgx1() {
    registers_and_prefers_what_alloc_picks("dgx1-v100");
}

#[test]
fn agent_registers_with_a_kubelet_and_prefers_alloc_sets_riscv_fusion() {
    registers_and_prefers_what_alloc_picks("riscv-fusion");
}
