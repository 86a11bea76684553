//! The device plugin against a fake kubelet built from the real proto: registration,
//! ListAndWatch and health updates, preferred allocation, Allocate, bad requests, kubelet
//! restarts and shutdown. Every wait has a timeout, so a missing call fails the test.

// Helpers here are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use linkwise_core::{GpuId, profiles};
use linkwise_deviceplugin::api::device_plugin_client::DevicePluginClient;
use linkwise_deviceplugin::{Config, GpuPlugin, api};
use linkwise_testkit::kubelet::FakeKubelet;
use tonic::Code;
use tonic::transport::Channel;
use tracing::instrument::WithSubscriber;

const WAIT: Duration = Duration::from_secs(5);
const WITHIN: Duration = Duration::from_secs(1);

async fn connect(path: PathBuf) -> DevicePluginClient<Channel> {
    DevicePluginClient::new(linkwise_deviceplugin::uds::connect(&path).await.unwrap())
}

fn config(dir: &Path) -> Config {
    Config {
        kubelet_dir: dir.to_path_buf(),
        socket_name: "linkwise-test.sock".into(),
        resource_name: "nvidia.com/gpu".into(),
        cdi: true,
        dev_root: dir.join("dev"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_lives_through_a_kubelets_life() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("dev")).unwrap();
    for f in ["nvidia0", "nvidia3", "nvidiactl", "nvidia-uvm"] {
        std::fs::write(d.join("dev").join(f), "").unwrap();
    }
    let mut kubelet = FakeKubelet::start(d);
    let topo = profiles::get("dgx1-v100").unwrap();
    let plugin = GpuPlugin::new(topo.clone(), config(d));
    let health = plugin.health();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(linkwise_deviceplugin::run(plugin, async {
        let _ = stop_rx.await;
    }));

    // Registration, after serving.
    let reg = kubelet.next_registration(WAIT).await;
    assert_eq!(reg.version, "v1beta1");
    assert_eq!(
        reg.endpoint, "linkwise-test.sock",
        "endpoint is the file name, not a path"
    );
    assert_eq!(reg.resource_name, "nvidia.com/gpu");
    assert!(reg.options.unwrap().get_preferred_allocation_available);
    let sock = d.join(&reg.endpoint);
    assert!(sock.exists());
    let mut client = connect(sock.clone()).await;
    let opts = client
        .get_device_plugin_options(api::Empty {})
        .await
        .unwrap()
        .into_inner();
    assert!(opts.get_preferred_allocation_available && !opts.pre_start_required);

    // ListAndWatch: the full list, then a new list within 1 s of a health change.
    let mut stream = client
        .list_and_watch(api::Empty {})
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(WAIT, stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.devices.len(), 8);
    assert!(first.devices.iter().all(|d| d.health == "Healthy"));
    assert_eq!(
        first.devices[5].topology.as_ref().unwrap().nodes[0].id,
        1,
        "GPU5 is on NUMA node 1"
    );
    let sick = GpuId(first.devices[2].id.clone());
    health.set(&sick, false);
    let update = tokio::time::timeout(WITHIN, stream.message())
        .await
        .expect("update within 1 s")
        .unwrap()
        .unwrap();
    assert_eq!(
        update
            .devices
            .iter()
            .find(|d| d.id == sick.0)
            .unwrap()
            .health,
        "Unhealthy"
    );
    assert_eq!(
        update
            .devices
            .iter()
            .filter(|d| d.health == "Healthy")
            .count(),
        7
    );
    health.set(&sick, true);
    let back = tokio::time::timeout(WITHIN, stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(back.devices.iter().all(|d| d.health == "Healthy"));

    // GetPreferredAllocation: 2 of 8 on the cube-mesh is an NV2 pair.
    let all: Vec<String> = first.devices.iter().map(|d| d.id.clone()).collect();
    let pref = client
        .get_preferred_allocation(api::PreferredAllocationRequest {
            container_requests: vec![api::ContainerPreferredAllocationRequest {
                available_device_i_ds: all.clone(),
                must_include_device_i_ds: vec![],
                allocation_size: 2,
            }],
        })
        .await
        .unwrap()
        .into_inner();
    let pair = &pref.container_responses[0].device_i_ds;
    assert_eq!(pair.len(), 2);
    let m = topo.pair_matrix();
    let pos = |id: &str| topo.gpus.iter().position(|g| g.id.0 == id).unwrap();
    assert_eq!(
        m.cell(pos(&pair[0]), pos(&pair[1])).label(),
        "NV2",
        "{pair:?}"
    );

    // Allocate: visible devices, device nodes that exist, CDI names, the island annotation.
    let resp = client
        .allocate(api::AllocateRequest {
            container_requests: vec![api::ContainerAllocateRequest {
                devices_ids: vec![all[0].clone(), all[3].clone()],
            }],
        })
        .await
        .unwrap()
        .into_inner();
    let c = &resp.container_responses[0];
    let uuids = [
        topo.gpus[0].uuid.clone().unwrap(),
        topo.gpus[3].uuid.clone().unwrap(),
    ];
    assert_eq!(c.envs["NVIDIA_VISIBLE_DEVICES"], uuids.join(","));
    let paths: Vec<&str> = c.devices.iter().map(|d| d.host_path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/dev/nvidia0",
            "/dev/nvidia3",
            "/dev/nvidiactl",
            "/dev/nvidia-uvm"
        ]
    );
    assert_eq!(
        c.cdi_devices[0].name,
        format!("nvidia.com/gpu={}", uuids[0])
    );
    assert_eq!(c.annotations["linkwise.dev/nvlink-islands"], "island0");

    // Bad requests: InvalidArgument, and the plugin keeps answering.
    let err = client
        .allocate(api::AllocateRequest {
            container_requests: vec![api::ContainerAllocateRequest {
                devices_ids: vec!["GPU-nope".into()],
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("GPU-nope"));
    let err = client
        .get_preferred_allocation(api::PreferredAllocationRequest {
            container_requests: vec![api::ContainerPreferredAllocationRequest {
                available_device_i_ds: all[..2].to_vec(),
                must_include_device_i_ds: vec![],
                allocation_size: 3,
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        client
            .get_device_plugin_options(api::Empty {})
            .await
            .is_ok(),
        "still serving after bad requests"
    );

    // Kubelet restart: sockets deleted, kubelet.sock recreated: registered again within 1 s.
    kubelet = kubelet.restart(d);
    let again = kubelet
        .next_registration(WITHIN + Duration::from_millis(500))
        .await;
    assert_eq!(again.endpoint, "linkwise-test.sock");
    let mut client = connect(sock.clone()).await;
    assert!(
        client
            .get_device_plugin_options(api::Empty {})
            .await
            .is_ok(),
        "serving on the fresh socket"
    );

    // Shutdown removes the socket.
    stop_tx.send(()).unwrap();
    tokio::time::timeout(WAIT, runner)
        .await
        .expect("runner stops")
        .unwrap()
        .unwrap();
    assert!(!sock.exists(), "socket removed on shutdown");
}

/// Counts the runner's "registration failed; retrying" events: the observable sign that
/// it tried, and failed, while the kubelet was absent.
#[derive(Clone, Default)]
struct FailedRegistrations(Arc<AtomicUsize>);

impl FailedRegistrations {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl tracing::Subscriber for FailedRegistrations {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Message(bool);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}").starts_with("registration failed");
                }
            }
        }
        let mut m = Message(false);
        event.record(&mut m);
        if m.0 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absent_kubelet_is_retried_until_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let plugin = GpuPlugin::new(profiles::get("nvlink-bridge-pairs").unwrap(), config(&d));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let failed = FailedRegistrations::default();
    let runner = tokio::spawn(
        linkwise_deviceplugin::run(plugin, async {
            let _ = stop_rx.await;
        })
        .with_subscriber(failed.clone()),
    );
    // Wait (no fixed sleep) until the runner has tried twice with no kubelet: a retry.
    let deadline = Instant::now() + WAIT;
    while failed.count() < 2 {
        assert!(
            Instant::now() < deadline,
            "no two failed registrations within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The socket is bound before the first attempt.
    assert!(
        d.join("linkwise-test.sock").exists(),
        "serving while waiting for the kubelet"
    );
    let mut kubelet = FakeKubelet::start(&d);
    let reg = kubelet.next_registration(WAIT).await;
    assert_eq!(reg.resource_name, "nvidia.com/gpu");
    stop_tx.send(()).unwrap();
    tokio::time::timeout(WAIT, runner)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn unknown_numa_means_no_topology_info() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = GpuPlugin::new(profiles::get("riscv-fusion").unwrap(), config(dir.path()));
    let list = plugin.device_list();
    assert_eq!(list.devices.len(), 4);
    assert!(
        list.devices.iter().all(|d| d.topology.is_none()),
        "RISC-V profile has numa_node -1"
    );
}

mod pod_resources {
    use linkwise_deviceplugin::podresources::used_devices;
    use linkwise_testkit::kubelet::{FakePodResources, ListMode, container, devices, listing, pod};

    #[tokio::test]
    async fn used_devices_are_those_of_our_resource_in_every_container() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("kubelet.sock");
        let _kubelet = FakePodResources::start(
            &sock,
            ListMode::Answer(listing(vec![
                pod(
                    "ml",
                    "train",
                    vec![
                        container("main", vec![devices("nvidia.com/gpu", &["GPU-a", "GPU-b"])]),
                        container("side", vec![devices("example.com/nic", &["nic0"])]),
                    ],
                ),
                pod(
                    "ml",
                    "infer",
                    vec![container(
                        "main",
                        vec![devices("nvidia.com/gpu", &["GPU-c"])],
                    )],
                ),
            ])),
        );
        let used = used_devices(&sock, "nvidia.com/gpu").await.unwrap();
        assert_eq!(
            used.into_iter().collect::<Vec<_>>(),
            ["GPU-a", "GPU-b", "GPU-c"]
        );
        let err = used_devices(&dir.path().join("absent.sock"), "nvidia.com/gpu")
            .await
            .unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
    }
}
