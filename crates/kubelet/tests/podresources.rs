//! The PodResources client against a fake kubelet serving the real v1 protos over a unix
//! socket: every container's devices are read, only the asked resource counts as used, and
//! a hanging, failing or absent kubelet is a one-line error within the bound.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use linkwise_kubelet::podresources::{Assignment, list_assignments, used_devices};
use linkwise_testkit::kubelet::{FakePodResources, ListMode, container, devices, listing, pod};

const WAIT: Duration = Duration::from_secs(5);

/// `ml/train` holds two GPUs and a NIC in `main`, one GPU in `side`; `ml/eval` holds one
/// GPU of another vendor's resource.
fn two_pods() -> ListMode {
    ListMode::Answer(listing(vec![
        pod(
            "ml",
            "train",
            vec![
                container(
                    "main",
                    vec![
                        devices("nvidia.com/gpu", &["GPU-a", "GPU-b"]),
                        devices("example.com/nic", &["nic0"]),
                    ],
                ),
                container("side", vec![devices("nvidia.com/gpu", &["GPU-c"])]),
            ],
        ),
        pod(
            "ml",
            "eval",
            vec![container(
                "main",
                vec![devices("other.com/gpu", &["GPU-d"])],
            )],
        ),
    ]))
}

fn assignment(pod: &str, container: &str, resource: &str, ids: &[&str]) -> Assignment {
    Assignment {
        namespace: "ml".into(),
        pod: pod.into(),
        container: container.into(),
        resource_name: resource.into(),
        device_ids: ids.iter().map(|s| (*s).to_string()).collect(),
    }
}

#[tokio::test]
async fn list_assignments_reads_every_container_and_bounds_the_wait() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakePodResources::start(&dir.path().join("kubelet.sock"), two_pods());
    let sock = fake.socket().to_path_buf();
    let got = list_assignments(&sock, WAIT).await.unwrap();
    assert_eq!(
        got,
        [
            assignment("train", "main", "nvidia.com/gpu", &["GPU-a", "GPU-b"]),
            assignment("train", "main", "example.com/nic", &["nic0"]),
            assignment("train", "side", "nvidia.com/gpu", &["GPU-c"]),
            assignment("eval", "main", "other.com/gpu", &["GPU-d"]),
        ]
    );

    fake.set(ListMode::Hang);
    let started = Instant::now();
    let err = list_assignments(&sock, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(started.elapsed() < WAIT, "{:?}", started.elapsed());
    assert!(err.contains("within 200 ms"), "{err}");
    fake.set(ListMode::Fail);
    let err = list_assignments(&sock, WAIT).await.unwrap_err();
    assert!(err.contains("kubelet restarting"), "{err}");
    let err = list_assignments(&dir.path().join("absent.sock"), WAIT)
        .await
        .unwrap_err();
    assert!(err.contains("does not exist"), "{err}");
}

#[tokio::test]
async fn used_devices_counts_only_the_asked_resource_across_pods_and_containers() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakePodResources::start(&dir.path().join("kubelet.sock"), two_pods());
    let used = used_devices(fake.socket(), "nvidia.com/gpu").await.unwrap();
    assert_eq!(
        used.into_iter().collect::<Vec<_>>(),
        ["GPU-a", "GPU-b", "GPU-c"]
    );
    assert!(
        used_devices(fake.socket(), "absent.com/x")
            .await
            .unwrap()
            .is_empty()
    );
    fake.set(ListMode::Fail);
    let err = used_devices(fake.socket(), "nvidia.com/gpu")
        .await
        .unwrap_err();
    assert!(err.starts_with("PodResources List failed"), "{err}");
    let err = used_devices(&dir.path().join("absent.sock"), "nvidia.com/gpu")
        .await
        .unwrap_err();
    assert!(err.contains("does not exist"), "{err}");
}
