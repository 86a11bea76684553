//! The `kubernetes` executor against the fake API server of `linkwise-testkit` (real
//! kube-rs client and k8s-openapi types; the fake answers evictions as the API server
//! does, `429` while a PodDisruptionBudget allows no disruption): nodes are cordoned,
//! their GPU pods evicted — DaemonSet and non-GPU pods left — the apply waits for a
//! PDB-blocked eviction, nodes are uncordoned; a failed node is quarantined with the
//! taint and label; an eviction a PDB never allows fails the drain; without API access
//! nothing runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use linkwise_fleet::store::Store;
use linkwise_rollout::kubernetes::{Kube, QUARANTINE};
use linkwise_rollout::plan::Plan;
use linkwise_rollout::run::{Outcome, RunError, RunOptions, dry_run, run, status};
use linkwise_testkit::kube_api::{FakeApi, PodSpec};

fn plan(dir: &std::path::Path, change: &str, apply: &str) -> Plan {
    let applied = dir.join("applied");
    let quote = |s: &str| serde_json::to_string(s).unwrap();
    let text = format!(
        "change: {change}\nexecutor: kubernetes\napply: {}\nrollback: {}\nverify:\n  - {}\nwaves:\n  - [n00]\n  - [n01]\n",
        quote(&apply.replace("APPLIED", &applied.display().to_string())),
        quote(&format!(
            "echo {{node}} >> {}",
            dir.join("rolledback").display()
        )),
        quote(&format!("grep -qx {{node}} {}", applied.display())),
    );
    Plan::parse(&text, "plan.yaml").unwrap()
}

fn fleet() -> FakeApi {
    let api = FakeApi::with_nodes(&["n00", "n01", "n02"]);
    for p in [
        PodSpec {
            namespace: "ml",
            name: "train-0",
            node: "n00",
            labels: &[("app", "train")],
            gpus: 1,
            owner: Some("ReplicaSet"),
        },
        PodSpec {
            namespace: "kube-system",
            name: "dcgm-n00",
            node: "n00",
            labels: &[],
            gpus: 1,
            owner: Some("DaemonSet"),
        },
        PodSpec {
            namespace: "default",
            name: "web",
            node: "n00",
            labels: &[],
            gpus: 0,
            owner: None,
        },
        PodSpec {
            namespace: "ml",
            name: "infer-1",
            node: "n01",
            labels: &[("app", "infer")],
            gpus: 2,
            owner: None,
        },
    ] {
        api.add_pod(&p);
    }
    // One training pod must keep running: its eviction waits for a replacement.
    api.add_pdb("ml", &[("app", "train")], 1);
    api
}

fn options(api: &FakeApi) -> RunOptions {
    RunOptions {
        kube: Ok(Kube(api.client())),
        poll_interval: Duration::from_millis(50),
        drain_timeout: Duration::from_secs(30),
        ..RunOptions::default()
    }
}

async fn store(dir: &std::path::Path) -> Store {
    Store::open(&format!("sqlite:{}", dir.join("f.db").display()))
        .await
        .unwrap()
}

fn unschedulable(api: &FakeApi, node: &str) -> bool {
    api.node(node).unwrap()["spec"]["unschedulable"]
        .as_bool()
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_are_cordoned_their_gpu_pods_evicted_within_the_pdb_and_uncordoned() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let api = fleet();
    // The training job's replacement starts elsewhere after a while: then the PDB allows.
    let later = api.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        later.add_pod(&PodSpec {
            namespace: "ml",
            name: "train-1",
            node: "n02",
            labels: &[("app", "train")],
            gpus: 1,
            owner: Some("ReplicaSet"),
        });
    });
    let p = plan(dir.path(), "k8s-ok", "echo {node} >> APPLIED");
    let outcome = run(&store, &p, options(&api)).await.unwrap();
    assert_eq!(outcome, Outcome::Succeeded { nodes: 2 });
    // GPU pods gone; the DaemonSet's and the non-GPU pod stay; both nodes schedulable.
    assert_eq!(api.pods_on("n00"), ["default/web", "kube-system/dcgm-n00"]);
    assert!(api.pods_on("n01").is_empty());
    assert!(!unschedulable(&api, "n00") && !unschedulable(&api, "n01"));
    let seen = api.seen();
    let evictions: Vec<&str> = seen
        .iter()
        .filter(|s| s.method == "POST" && s.uri.contains("/eviction"))
        .map(|s| s.uri.as_str())
        .collect();
    assert!(
        evictions.iter().filter(|u| u.contains("train-0")).count() >= 2,
        "blocked, then asked again: {evictions:?}"
    );
    assert!(
        evictions
            .iter()
            .all(|u| !u.contains("dcgm") && !u.contains("web")),
        "{evictions:?}"
    );
    // Cordoned before any eviction, uncordoned after; the apply only once train-0 left.
    let cordon = seen
        .iter()
        .position(|s| s.method == "PATCH" && s.body.contains("\"unschedulable\":true"))
        .unwrap();
    let first_eviction = seen
        .iter()
        .position(|s| s.uri.contains("/eviction"))
        .unwrap();
    assert!(cordon < first_eviction);
    let log = status(&store, "k8s-ok").await.unwrap().log;
    let at = |step: &str, command: &str| {
        log.iter()
            .position(|l| {
                l.step == step
                    && l.command.as_deref().is_some_and(|c| c.contains(command))
                    && l.exit_code != Some(1)
            })
            .unwrap_or_else(|| panic!("{step} {command}: {log:#?}"))
    };
    assert!(at("evict", "ml/train-0") < at("apply", "n00"));
    assert!(at("apply", "n00") < at("return", "uncordon n00"));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_node_is_quarantined_with_a_taint_and_a_label() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let api = fleet();
    api.add_pod(&PodSpec {
        namespace: "ml",
        name: "train-1",
        node: "n02",
        labels: &[("app", "train")],
        gpus: 1,
        owner: None,
    });
    let p = plan(
        dir.path(),
        "k8s-bad",
        "[ {node} != n01 ] && echo {node} >> APPLIED",
    );
    let outcome = run(&store, &p, options(&api)).await.unwrap();
    assert!(
        matches!(&outcome, Outcome::Failed { node, step, .. } if node == "n01" && step == "apply"),
        "{outcome:?}"
    );
    let n01 = api.node("n01").unwrap();
    assert_eq!(n01["spec"]["unschedulable"], true);
    assert_eq!(n01["metadata"]["labels"][QUARANTINE], "k8s-bad");
    let taints = n01["spec"]["taints"].as_array().unwrap();
    assert!(
        taints.iter().any(|t| t["key"] == QUARANTINE
            && t["value"] == "k8s-bad"
            && t["effect"] == "NoSchedule"),
        "{taints:?}"
    );
    assert!(
        !unschedulable(&api, "n00"),
        "the node before it was returned"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("rolledback")).unwrap(),
        "n01\n"
    );
    let q = store.quarantined().await.unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].node, "n01");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eviction_no_pdb_allows_fails_the_drain_and_the_apply_never_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let api = fleet();
    let p = plan(dir.path(), "k8s-pdb", "echo {node} >> APPLIED");
    let mut o = options(&api);
    o.drain_timeout = Duration::from_millis(300);
    let outcome = run(&store, &p, o).await.unwrap();
    match &outcome {
        Outcome::Failed {
            node,
            step,
            message,
        } => {
            assert_eq!((node.as_str(), step.as_str()), ("n00", "drain"));
            assert!(
                message.contains("disruption budget") && message.contains("ml/train-0"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(!dir.path().join("applied").exists());
    assert_eq!(api.pods_on("n00").len(), 3, "nothing evicted");
    assert_eq!(
        api.node("n00").unwrap()["metadata"]["labels"][QUARANTINE],
        "k8s-pdb"
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_api_access_nothing_runs_and_a_dry_run_names_the_calls() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let p = plan(dir.path(), "k8s-none", "echo {node} >> APPLIED");
    let e = run(&store, &p, RunOptions::default()).await.unwrap_err();
    assert!(
        matches!(&e, RunError::Refused(m) if m.contains("KUBECONFIG")),
        "{e}"
    );
    assert!(
        status(&store, "k8s-none").await.is_err(),
        "no rollout was recorded"
    );
    let Outcome::DryRun { actions } = dry_run(&p).unwrap() else {
        panic!()
    };
    let text = actions.join("\n");
    assert!(
        text.contains("n00: PATCH /api/v1/nodes/n00 {\"spec\":{\"unschedulable\":true}}"),
        "{text}"
    );
    assert!(text.contains("pods/POD/eviction"), "{text}");
    assert!(
        text.contains("n01: PATCH /api/v1/nodes/n01 {\"spec\":{\"unschedulable\":false}}"),
        "{text}"
    );
    store.close().await;
}
