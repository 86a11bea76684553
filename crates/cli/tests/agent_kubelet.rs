//! `linkwise agent` against a fake kubelet, over the real v1beta1 gRPC API: the agent
//! registers (API version, endpoint, resource name, options), lists every GPU of the
//! profile, and answers GetPreferredAllocation with the set `linkwise alloc` picks for
//! the same availability; Allocate returns the visible-devices environment.
//!
//! `linkwise dra plugin` against the kubelet's side of DRA (plugin watcher registration,
//! the dra v1 service, the health stream) and a fake API server over HTTP (KUBECONFIG):
//! it publishes the profile's ResourceSlices, prepares and unprepares a claim (CDI spec
//! written and removed), follows its health file into the slices and the health stream,
//! and removes its sockets on SIGTERM; `linkwise agent --dra` runs both plugins on one
//! health source.
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

/// `linkwise dra plugin` as a process: registration, slices, prepare, health, shutdown.
#[test]
fn dra_plugin_registers_publishes_and_prepares() {
    use linkwise_testkit::dra_kubelet::{self, claim};
    use linkwise_testkit::kube_api::{AllocatedDevice, FakeApi, kubeconfig};

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (kubelet, cdi, dev) = (d.join("kubelet"), d.join("cdi"), d.join("dev"));
    std::fs::create_dir_all(&dev).unwrap();
    for f in ["nvidia0", "nvidia1", "nvidiactl"] {
        std::fs::write(dev.join(f), "").unwrap();
    }
    let health = d.join("health");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let api = FakeApi::with_nodes(&["node-a"]);
        let url = api.serve_http().await;
        kubeconfig(&url, &d.join("kubeconfig"));
        let mut cmd = linkwise();
        cmd.args([
            "dra",
            "plugin",
            "--source",
            "profile:dgx1-v100",
            "--node-name",
            "node-a",
        ])
        .arg("--kubelet-dir")
        .arg(&kubelet)
        .arg("--cdi-dir")
        .arg(&cdi)
        .arg("--dev-root")
        .arg(&dev)
        .arg("--health-file")
        .arg(&health)
        .env("KUBECONFIG", d.join("kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST");
        let mut plugin = Spawned::start(cmd);
        let reg = tokio::time::timeout(
            REGISTER_WITHIN,
            dra_kubelet::register(&kubelet, REGISTER_WITHIN),
        )
        .await
        .unwrap_or_else(|_| panic!("no registration; plugin stderr:\n{}", plugin.stderr()));
        assert_eq!(reg.info.name, "gpu.linkwise.dev");

        // The slices: the profile's pool under the node's name, all 8 GPUs.
        let slices = linkwise_testkit::wait::poll_until_async(
            REGISTER_WITHIN,
            "published slices",
            || async {
                let s = api.slices();
                (!s.is_empty()).then_some(s)
            },
        )
        .await
        .unwrap();
        assert_eq!(slices[0]["spec"]["nodeName"], "node-a");
        assert_eq!(slices[0]["spec"]["devices"].as_array().unwrap().len(), 8);
        assert_eq!(slices[0]["spec"]["pool"]["generation"], 1);

        api.add_claim(
            "ml",
            "pair",
            "11111111-2222-4333-8444-555555555555",
            Some(&[
                AllocatedDevice {
                    request: "gpus",
                    driver: "gpu.linkwise.dev",
                    pool: "node-a",
                    device: "gpu-0",
                },
                AllocatedDevice {
                    request: "gpus",
                    driver: "gpu.linkwise.dev",
                    pool: "node-a",
                    device: "gpu-1",
                },
            ]),
        );
        let c = [claim("ml", "pair", "11111111-2222-4333-8444-555555555555")];
        let r = reg.prepare(&c).await;
        let answer = &r.claims["11111111-2222-4333-8444-555555555555"];
        assert_eq!(answer.error, "", "plugin stderr:\n{}", plugin.stderr());
        assert_eq!(answer.devices.len(), 2);
        let spec_file =
            cdi.join("linkwise-gpu.linkwise.dev-11111111-2222-4333-8444-555555555555.json");
        let spec: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&spec_file).unwrap()).unwrap();
        assert_eq!(spec["devices"].as_array().unwrap().len(), 2);

        // GPU 3 fails: it leaves the pool and turns unhealthy on the health stream.
        let mut stream = reg.watch_health().await;
        let first = stream.message().await.unwrap().unwrap();
        assert!(first.devices.iter().all(|x| x.health == 1));
        std::fs::write(&health, "3 unhealthy XID 79\n").unwrap();
        let slices = linkwise_testkit::wait::poll_until_async(
            REGISTER_WITHIN,
            "gpu-3 out of the pool",
            || async {
                let s = api.slices();
                (s[0]["spec"]["devices"].as_array().unwrap().len() == 7).then_some(s)
            },
        )
        .await
        .unwrap();
        assert_eq!(slices[0]["spec"]["pool"]["generation"], 2);
        let next = stream.message().await.unwrap().unwrap();
        let sick: Vec<_> = next
            .devices
            .iter()
            .filter(|x| x.health == 2)
            .map(|x| x.device.as_ref().unwrap().device_name.clone())
            .collect();
        assert_eq!(sick, ["gpu-3"]);

        let u = reg.unprepare(&c).await;
        assert_eq!(u.claims["11111111-2222-4333-8444-555555555555"].error, "");
        assert!(!spec_file.exists());

        // SIGTERM: both sockets go (unregistered); the slices stay.
        let pid = plugin.child().id();
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        let status = plugin.child().wait().unwrap();
        assert!(
            status.success(),
            "exit {status:?}; stderr:\n{}",
            plugin.stderr()
        );
        assert!(dra_kubelet::registration_sockets(&kubelet).is_empty());
        assert!(!kubelet.join("plugins/gpu.linkwise.dev/dra.sock").exists());
        assert_eq!(api.slices().len(), 1);
    });
}

/// `linkwise agent --dra`: the device plugin and the DRA plugin in one process, one
/// health source: a GPU marked unhealthy in the health file turns Unhealthy in
/// ListAndWatch and leaves the published pool.
#[test]
fn agent_with_dra_runs_both_plugins_on_one_health() {
    use linkwise_testkit::dra_kubelet;
    use linkwise_testkit::kube_api::{FakeApi, kubeconfig};

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (dp_dir, kubelet, health) = (
        d.join("device-plugins"),
        d.join("kubelet"),
        d.join("health"),
    );
    std::fs::create_dir_all(&dp_dir).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let api = FakeApi::with_nodes(&["node-b"]);
        kubeconfig(&api.serve_http().await, &d.join("kubeconfig"));
        let mut fake = FakeKubelet::start(&dp_dir);
        let mut cmd = linkwise();
        cmd.args([
            "agent",
            "--source",
            "profile:riscv-fusion",
            "--node-name",
            "node-b",
        ])
        .arg("--kubelet-dir")
        .arg(&dp_dir)
        .args(["--nfd-features-dir", "none", "--no-annotation"])
        .args(["--pod-resources-socket", "none", "--metrics-addr", "none"])
        .arg("--slurm-job-dir")
        .arg(d.join("jobs"))
        .arg("--health-file")
        .arg(&health)
        .args(["--dra", "--dra-kubelet-dir"])
        .arg(&kubelet)
        .arg("--cdi-dir")
        .arg(d.join("cdi"))
        .env("KUBECONFIG", d.join("kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST");
        let agent = Spawned::start(cmd);
        let reg = fake
            .try_next_registration(REGISTER_WITHIN)
            .await
            .unwrap_or_else(|| panic!("no device plugin registration:\n{}", agent.stderr()));
        let dra = dra_kubelet::register(&kubelet, REGISTER_WITHIN).await;
        assert_eq!(dra.info.name, "gpu.linkwise.dev");
        let channel = linkwise_deviceplugin::uds::connect(&dp_dir.join(&reg.endpoint))
            .await
            .unwrap();
        let mut stream = DevicePluginClient::new(channel)
            .list_and_watch(api::Empty {})
            .await
            .unwrap()
            .into_inner();
        let n = stream.message().await.unwrap().unwrap().devices.len();
        let all = linkwise_testkit::wait::poll_until_async(
            REGISTER_WITHIN,
            "published slices",
            || async {
                let s = api.slices();
                (!s.is_empty()).then_some(s)
            },
        )
        .await
        .unwrap();
        assert_eq!(all[0]["spec"]["devices"].as_array().unwrap().len(), n);

        std::fs::write(&health, "0 unhealthy test\n").unwrap();
        let listed = stream.message().await.unwrap().unwrap().devices;
        assert_eq!(listed.iter().filter(|x| x.health == "Unhealthy").count(), 1);
        let after = linkwise_testkit::wait::poll_until_async(
            REGISTER_WITHIN,
            "gpu-0 out of the pool",
            || async {
                let s = api.slices();
                (s[0]["spec"]["devices"].as_array().unwrap().len() == n - 1).then_some(s)
            },
        )
        .await
        .unwrap();
        assert!(
            after[0]["spec"]["devices"]
                .as_array()
                .unwrap()
                .iter()
                .all(|x| x["name"] != "gpu-0"),
            "{}",
            agent.stderr()
        );
    });
}
