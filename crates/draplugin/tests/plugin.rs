//! The DRA plugin against a fake kubelet built from the published protos and a fake API
//! server: registration, prepare and unprepare of claims with 1, 2 and 4 devices (CDI
//! specs checked against the CDI JSON schema), per-claim errors, restarts, health, and
//! the ResourceSlices it publishes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use linkwise_core::{GpuId, Topology};
use linkwise_draplugin::publish::Publisher;
use linkwise_draplugin::{Config, Health, NodeDevices, Options, Plugin};
use linkwise_testkit::dra_kubelet::{self, claim};
use linkwise_testkit::kube_api::{AllocatedDevice, FakeApi};
use linkwise_testkit::{Prerequisite, require};
use serde_json::Value;
use tokio::sync::{oneshot, watch};

const DRIVER: &str = "gpu.linkwise.dev";
const NODE: &str = "node-a";
const WITHIN: Duration = Duration::from_secs(10);

/// The CDI JSON schema as Debian's package of the CDI library ships it.
const CDI_SCHEMA_DIR: &str = "/usr/share/gocode/src/github.com/container-orchestrated-devices/container-device-interface/schema";

struct Node {
    dir: tempfile::TempDir,
    topo: Topology,
    api: FakeApi,
    health: watch::Sender<BTreeMap<GpuId, bool>>,
    health_rx: Health,
    /// The node's devices, as a rediscovery would change them.
    devices: watch::Sender<NodeDevices>,
}

struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), linkwise_draplugin::Error>>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

impl Node {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let dev = dir.path().join("dev");
        std::fs::create_dir_all(&dev).unwrap();
        for f in (0..8)
            .map(|i| format!("nvidia{i}"))
            .chain(["nvidiactl".into(), "nvidia-uvm".into()])
        {
            std::fs::write(dev.join(f), "").unwrap();
        }
        let topo = linkwise_core::profiles::get("dgx-h100").unwrap();
        let initial = topo.gpus.iter().map(|g| (g.id.clone(), true)).collect();
        let (health, health_rx) = Health::channel(initial);
        let driver = linkwise_dra::Driver::new(DRIVER).unwrap();
        let (devices, _) = watch::channel(NodeDevices::new(&topo, &driver, NODE).unwrap());
        Node {
            dir,
            topo,
            api: FakeApi::with_nodes(&[NODE]),
            health,
            health_rx,
            devices,
        }
    }

    fn kubelet(&self) -> PathBuf {
        self.dir.path().join("kubelet")
    }

    fn cdi(&self) -> PathBuf {
        self.dir.path().join("cdi")
    }

    fn config(&self) -> Config {
        Config {
            driver: linkwise_dra::Driver::new(DRIVER).unwrap(),
            node: NODE.into(),
            kubelet_dir: self.kubelet(),
            cdi_dir: self.cdi(),
            dev_root: self.dir.path().join("dev"),
        }
    }

    fn start_with(&self, options: Options) -> Running {
        let cfg = self.config();
        let reader = linkwise_draplugin::claims::ClaimReader::new(self.api.client());
        let plugin = Plugin::new(
            cfg,
            self.devices.subscribe(),
            self.health_rx.clone(),
            reader,
        )
        .unwrap();
        let publisher = Publisher::new(
            self.api.client(),
            self.devices.subscribe(),
            DRIVER,
            self.health_rx.clone(),
        );
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(linkwise_draplugin::run(
            plugin,
            Some(publisher),
            options,
            async move {
                let _ = rx.await;
            },
        ));
        Running { stop, task }
    }

    fn start(&self) -> Running {
        self.start_with(Options::default())
    }

    fn claim(&self, name: &str, uid: &str, devices: &[&str]) {
        let allocated: Vec<AllocatedDevice<'_>> = devices
            .iter()
            .map(|d| AllocatedDevice {
                request: "gpus",
                driver: DRIVER,
                pool: NODE,
                device: d,
            })
            .collect();
        self.api.add_claim("team", name, uid, Some(&allocated));
    }

    /// Marks the GPU with `index` healthy or not, as the health source does.
    fn set_health(&self, index: u32, healthy: bool) {
        let id = self
            .topo
            .gpus
            .iter()
            .find(|g| g.index == index)
            .unwrap()
            .id
            .clone();
        self.health.send_modify(|m| {
            m.insert(id, healthy);
        });
    }

    fn cdi_files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.cdi())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

fn uid(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// The CDI schema validator, or None (skipped) where the schema is not installed.
fn cdi_schema() -> Option<jsonschema::Validator> {
    let dir = Path::new(CDI_SCHEMA_DIR);
    if !require(Prerequisite::new(
        format!(
            "the CDI JSON schema in {CDI_SCHEMA_DIR} (apt-get install golang-github-container-orchestrated-devices-container-device-interface-dev)"
        ),
        dir.join("schema.json").exists(),
    )) {
        return None;
    }
    let read = |f: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(f)).unwrap()).unwrap()
    };
    let mut schema = read("schema.json");
    schema["$id"] = Value::from("file:///cdi/schema.json");
    let defs = jsonschema::Resource::from_contents(read("defs.json")).unwrap();
    Some(
        jsonschema::options()
            .with_resource("file:///cdi/defs.json", defs)
            .build(&schema)
            .unwrap(),
    )
}

#[tokio::test]
async fn registers_then_prepares_and_unprepares_claims_of_one_two_and_four_devices() {
    let node = Node::new();
    let running = node.start();
    let kubelet = dra_kubelet::register(&node.kubelet(), WITHIN).await;
    assert_eq!(kubelet.info.name, DRIVER);
    assert_eq!(
        kubelet.info.supported_versions,
        ["v1.DRAPlugin", "v1beta1.DRAPlugin"]
    );
    assert!(
        kubelet
            .socket
            .ends_with("plugins_registry/gpu.linkwise.dev-reg.sock")
    );

    node.claim("one", &uid(1), &["gpu-0"]);
    node.claim("two", &uid(2), &["gpu-1", "gpu-2"]);
    node.claim("four", &uid(4), &["gpu-4", "gpu-5", "gpu-6", "gpu-7"]);
    let claims = [
        claim("team", "one", &uid(1)),
        claim("team", "two", &uid(2)),
        claim("team", "four", &uid(4)),
    ];
    let r = kubelet.prepare(&claims).await;
    assert_eq!(r.claims.len(), 3);
    for (n, want) in [(1, 1), (2, 2), (4, 4)] {
        let c = &r.claims[&uid(n)];
        assert_eq!(c.error, "", "claim {n}");
        assert_eq!(c.devices.len(), want, "claim {n}");
        for d in &c.devices {
            assert_eq!(d.pool_name, NODE);
            assert_eq!(d.request_names, ["gpus"]);
            assert_eq!(
                d.cdi_device_ids,
                [format!("{DRIVER}/gpu={}-{}", uid(n), d.device_name)]
            );
        }
    }
    let files = node.cdi_files();
    assert_eq!(files.len(), 3, "{files:?}");

    // Every spec: valid CDI, one device per GPU with its node, the claim's UUIDs.
    let schema = cdi_schema();
    for n in [1, 2, 4] {
        let path = node
            .cdi()
            .join(format!("linkwise-{DRIVER}-{}.json", uid(n)));
        let spec: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if let Some(v) = &schema {
            let errors: Vec<String> = v.iter_errors(&spec).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        }
        let devices = spec["devices"].as_array().unwrap();
        assert_eq!(devices.len(), n as usize);
        for (d, answered) in devices.iter().zip(&r.claims[&uid(n)].devices) {
            let id = format!(
                "{}={}",
                spec["kind"].as_str().unwrap(),
                d["name"].as_str().unwrap()
            );
            assert_eq!(
                answered.cdi_device_ids,
                [id],
                "the answer names the spec's devices"
            );
            let idx = answered.device_name.trim_start_matches("gpu-");
            assert_eq!(
                d["containerEdits"]["deviceNodes"][0]["path"],
                format!("/dev/nvidia{idx}")
            );
        }
        let env = spec["containerEdits"]["env"][0].as_str().unwrap();
        assert_eq!(env.matches("GPU-").count(), n as usize, "{env}");
        assert!(
            !spec["annotations"]["linkwise.dev/nvlink-islands"]
                .as_str()
                .unwrap()
                .is_empty()
        );
    }

    // Prepared again: the same answer, no new file, the files untouched.
    let before: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(node.cdi().join(f)).unwrap())
        .collect();
    let again = kubelet.prepare(&claims).await;
    assert_eq!(again, r);
    assert_eq!(node.cdi_files(), files);
    let after: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(node.cdi().join(f)).unwrap())
        .collect();
    assert_eq!(after, before);

    // Unprepare the two-GPU claim: exactly its file goes; twice is fine.
    let u = kubelet.unprepare(&[claims[1].clone()]).await;
    assert_eq!(u.claims[&uid(2)].error, "");
    assert_eq!(node.cdi_files().len(), 2);
    assert!(!node.cdi_files().iter().any(|f| f.contains(&uid(2))));
    let u = kubelet.unprepare(&[claims[1].clone()]).await;
    assert_eq!(u.claims[&uid(2)].error, "");
    let u = kubelet
        .unprepare(&[claims[0].clone(), claims[2].clone()])
        .await;
    assert!(u.claims.values().all(|c| c.error.is_empty()));
    assert!(node.cdi_files().is_empty());

    // A 1.32/1.33 kubelet speaks v1beta1: the same answer.
    let b = kubelet.prepare_v1beta1(&claims[..1]).await;
    assert_eq!(b.claims[&uid(1)].error, "");
    assert_eq!(b.claims[&uid(1)].devices[0].device_name, "gpu-0");

    running.stop().await;
    assert!(
        dra_linkwise_sockets(&node.kubelet()).is_empty(),
        "sockets removed on shutdown"
    );
}

fn dra_linkwise_sockets(kubelet: &Path) -> Vec<PathBuf> {
    let mut v = dra_kubelet::registration_sockets(kubelet);
    let dra = kubelet.join("plugins").join(DRIVER).join("dra.sock");
    if dra.exists() {
        v.push(dra);
    }
    v
}

#[tokio::test]
async fn bad_claims_get_their_own_error_and_leave_nothing_behind() {
    let node = Node::new();
    let running = node.start();
    let kubelet = dra_kubelet::register(&node.kubelet(), WITHIN).await;
    node.claim("good", &uid(1), &["gpu-0", "gpu-1"]);
    node.claim("unknown", &uid(2), &["gpu-0", "gpu-9"]);
    node.claim("sick", &uid(3), &["gpu-3"]);
    node.api.add_claim("team", "pending", &uid(5), None);
    node.claim("recreated", &uid(6), &["gpu-2"]);
    node.set_health(3, false);
    let r = kubelet
        .prepare(&[
            claim("team", "good", &uid(1)),
            claim("team", "unknown", &uid(2)),
            claim("team", "sick", &uid(3)),
            claim("team", "missing", &uid(4)),
            claim("team", "pending", &uid(5)),
            claim("team", "recreated", &uid(7)),
            claim("team", "escape", "../../etc"),
        ])
        .await;
    assert_eq!(r.claims.len(), 7, "one entry per claim");
    assert_eq!(r.claims[&uid(1)].error, "");
    assert_eq!(r.claims[&uid(1)].devices.len(), 2);
    let err = |u: &str| r.claims[u].error.clone();
    assert!(
        err(&uid(2)).contains("\"gpu-9\"") && err(&uid(2)).contains("unknown"),
        "{}",
        err(&uid(2))
    );
    assert!(
        err(&uid(3)).contains("gpu-3") && err(&uid(3)).contains("unhealthy"),
        "{}",
        err(&uid(3))
    );
    assert!(err(&uid(4)).contains("not found"), "{}", err(&uid(4)));
    assert!(err(&uid(5)).contains("not allocated"), "{}", err(&uid(5)));
    assert!(err(&uid(7)).contains("UID"), "{}", err(&uid(7)));
    assert!(
        err("../../etc").contains("not a Kubernetes UID"),
        "{}",
        err("../../etc")
    );
    for u in [uid(2), uid(3), uid(4), uid(5), uid(7)] {
        assert!(
            r.claims[&u].devices.is_empty(),
            "{u}: no devices with an error"
        );
    }
    assert_eq!(
        node.cdi_files(),
        [format!("linkwise-{DRIVER}-{}.json", uid(1))]
    );
    // Healthy again: the claim prepares.
    node.set_health(3, true);
    let r = kubelet.prepare(&[claim("team", "sick", &uid(3))]).await;
    assert_eq!(r.claims[&uid(3)].error, "");
    running.stop().await;
}

#[tokio::test]
async fn a_restarted_plugin_knows_what_it_prepared() {
    let node = Node::new();
    let running = node.start();
    let kubelet = dra_kubelet::register(&node.kubelet(), WITHIN).await;
    node.claim("one", &uid(1), &["gpu-0"]);
    node.claim("four", &uid(4), &["gpu-0", "gpu-1", "gpu-2", "gpu-3"]);
    let first = kubelet
        .prepare(&[
            claim("team", "one", &uid(1)),
            claim("team", "four", &uid(4)),
        ])
        .await;
    running.stop().await;
    let checkpoint = node
        .kubelet()
        .join("plugins")
        .join(DRIVER)
        .join("checkpoint.json");
    assert!(checkpoint.exists());

    // The API server now says something else: the restarted plugin answers from its
    // checkpoint (what it prepared), not from a fresh read.
    node.claim("one", &uid(1), &["gpu-7"]);
    let running = node.start();
    let kubelet = dra_kubelet::register(&node.kubelet(), WITHIN).await;
    let again = kubelet.prepare(&[claim("team", "one", &uid(1))]).await;
    assert_eq!(again.claims[&uid(1)], first.claims[&uid(1)]);
    // Unprepare after the restart removes what the first run wrote.
    let u = kubelet
        .unprepare(&[
            claim("team", "one", &uid(1)),
            claim("team", "four", &uid(4)),
        ])
        .await;
    assert!(u.claims.values().all(|c| c.error.is_empty()));
    assert!(node.cdi_files().is_empty());
    let text = std::fs::read_to_string(&checkpoint).unwrap();
    let saved: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(saved["claims"], serde_json::json!({}));
    running.stop().await;

    // A checkpoint that is not one: the plugin refuses to start, naming the file.
    std::fs::write(&checkpoint, "{ not json").unwrap();
    let cfg = node.config();
    let reader = linkwise_draplugin::claims::ClaimReader::new(node.api.client());
    let err = Plugin::new(
        cfg,
        node.devices.subscribe(),
        node.health_rx.clone(),
        reader,
    )
    .unwrap_err();
    assert!(err.to_string().contains("checkpoint.json"), "{err}");
}

#[tokio::test]
async fn a_kubelet_restart_registers_the_plugin_again() {
    let node = Node::new();
    let running = node.start();
    let first = dra_kubelet::register(&node.kubelet(), WITHIN).await;
    // A new kubelet clears its plugins_registry; the plugin serves its socket again.
    std::fs::remove_file(&first.socket).unwrap();
    let second = dra_kubelet::register(&node.kubelet(), WITHIN).await;
    assert_eq!(second.socket, first.socket);
    node.claim("one", &uid(1), &["gpu-0"]);
    let r = second.prepare(&[claim("team", "one", &uid(1))]).await;
    assert_eq!(r.claims[&uid(1)].error, "");
    running.stop().await;
}

fn slice_devices(v: &Value) -> Vec<String> {
    v["spec"]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect()
}

async fn slices_when(api: &FakeApi, what: &str, ok: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    linkwise_testkit::wait::poll_until_async(WITHIN, what, || async {
        let s = api.slices();
        ok(&s).then_some(s)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn published_slices_match_dra_slices_and_follow_health_within_a_second() {
    let node = Node::new();
    let running = node.start();
    let published = slices_when(&node.api, "published slices", |s| !s.is_empty()).await;
    // `linkwise dra slices` for the same source, for a host named as the node.
    let driver = linkwise_dra::Driver::new(DRIVER).unwrap();
    let want = NodeDevices::new(&node.topo, &driver, NODE)
        .unwrap()
        .slices()
        .to_vec();
    assert_eq!(published.len(), want.len());
    let mut want0 = serde_json::to_value(&want[0]).unwrap();
    assert_eq!(
        published[0]["spec"], want0["spec"],
        "the same pool, generation 1"
    );
    assert_eq!(published[0]["metadata"]["name"], want0["metadata"]["name"]);
    assert_eq!(
        published[0]["metadata"]["ownerReferences"][0]["uid"],
        format!("uid-node-{NODE}")
    );
    let applies: Vec<_> = node
        .api
        .seen()
        .into_iter()
        .filter(|s| s.method == "PATCH")
        .collect();
    assert!(
        applies
            .iter()
            .all(|s| s.content_type == "application/apply-patch+yaml"
                && s.uri.contains("fieldManager=linkwise-dra-plugin")
                && s.uri.contains("force=true"))
    );

    let kubelet = dra_kubelet::register(&node.kubelet(), WITHIN).await;
    let mut health = kubelet.watch_health().await;
    let first = health.message().await.unwrap().unwrap();
    assert_eq!(first.devices.len(), 8);
    assert!(first.devices.iter().all(|d| d.health == 1));

    let t0 = Instant::now();
    node.set_health(3, false);
    let updated = slices_when(&node.api, "gpu-3 out of the pool", |s| {
        !s.is_empty() && !slice_devices(&s[0]).contains(&"gpu-3".to_string())
    })
    .await;
    let took = t0.elapsed();
    eprintln!("slice updated {took:?} after the health change");
    assert!(took < Duration::from_secs(1), "updated in {took:?}");
    assert_eq!(updated[0]["spec"]["pool"]["generation"], 2);
    assert_eq!(slice_devices(&updated[0]).len(), 7);
    let change = health.message().await.unwrap().unwrap();
    let gpu3 = change
        .devices
        .iter()
        .find(|d| d.device.as_ref().unwrap().device_name == "gpu-3")
        .unwrap();
    assert_eq!(gpu3.health, 2, "UNHEALTHY on the health stream");
    assert_eq!(gpu3.device.as_ref().unwrap().pool_name, NODE);

    node.set_health(3, true);
    let healed = slices_when(&node.api, "gpu-3 back", |s| {
        !s.is_empty() && slice_devices(&s[0]).len() == 8
    })
    .await;
    assert_eq!(healed[0]["spec"]["pool"]["generation"], 3);
    running.stop().await;
    assert_eq!(node.api.slices().len(), 1, "slices stay by default");

    // A restart on the same fabric writes nothing and keeps generation 3.
    let patches = |api: &FakeApi| api.seen().iter().filter(|s| s.method == "PATCH").count();
    let before = patches(&node.api);
    let running = node.start_with(Options {
        remove_slices_on_exit: true,
    });
    let _ = dra_kubelet::register(&node.kubelet(), WITHIN).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(patches(&node.api), before);
    assert_eq!(node.api.slices()[0]["spec"]["pool"]["generation"], 3);
    running.stop().await;
    assert!(node.api.slices().is_empty(), "--remove-slices-on-exit");
    want0["spec"]["pool"]["generation"] = Value::from(1);
}

#[tokio::test]
async fn a_changed_fabric_is_published_at_the_next_generation() {
    let node = Node::new();
    let running = node.start();
    let kubelet = dra_kubelet::register(&node.kubelet(), WITHIN).await;
    slices_when(&node.api, "published slices", |s| !s.is_empty()).await;
    // GPU 7 is gone (a rediscovery after it fell off the bus).
    let mut smaller = node.topo.clone();
    smaller.gpus.retain(|g| g.index != 7);
    let driver = linkwise_dra::Driver::new(DRIVER).unwrap();
    node.devices
        .send(NodeDevices::new(&smaller, &driver, NODE).unwrap())
        .unwrap();
    let after = slices_when(&node.api, "gpu-7 gone from the pool", |s| {
        !s.is_empty() && slice_devices(&s[0]).len() == 7
    })
    .await;
    assert_eq!(after[0]["spec"]["pool"]["generation"], 2);
    assert!(!slice_devices(&after[0]).contains(&"gpu-7".to_string()));
    node.claim("late", &uid(9), &["gpu-7"]);
    let r = kubelet.prepare(&[claim("team", "late", &uid(9))]).await;
    assert!(
        r.claims[&uid(9)].error.contains("unknown"),
        "{}",
        r.claims[&uid(9)].error
    );
    running.stop().await;
}
