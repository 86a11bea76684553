//! The DRA objects for every built-in profile as the API server and other tools see them:
//! within the `resource.k8s.io/v1` validation limits, every GPU published exactly once,
//! and the YAML read back by a YAML 1.1 reader (PyYAML, the resolver of older Kubernetes
//! tooling) equal to the JSON, value for value.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use linkwise_core::profiles::{self, PROFILES};
use linkwise_dra::claim::{KeepTogether, claim};
use linkwise_dra::render::{Format, render};
use linkwise_dra::{Driver, class, slices};
use linkwise_testkit::yaml::{difference, pyyaml};
use linkwise_testkit::{Prerequisite, require};
use serde_json::Value;

fn driver() -> Driver {
    Driver::new("gpu.linkwise.dev").unwrap()
}

/// The slices of profile `name` as JSON values.
fn slices_of(name: &str) -> Vec<Value> {
    let topo = profiles::get(name).unwrap();
    slices(&topo, &driver())
        .iter()
        .map(|s| serde_json::to_value(s).unwrap())
        .collect()
}

#[test]
fn slices_respect_the_api_limits_for_every_profile() {
    for (name, _) in PROFILES {
        let topo = profiles::get(name).unwrap();
        let mut published = Vec::new();
        for s in slices_of(name) {
            assert_eq!(s["apiVersion"], "resource.k8s.io/v1");
            let spec = &s["spec"];
            assert_eq!(
                spec["pool"]["name"], spec["nodeName"],
                "{name}: one pool per node"
            );
            let devs = spec["devices"].as_array().unwrap();
            assert!(
                devs.len() <= 128,
                "{name}: {} devices in a slice",
                devs.len()
            );
            for d in devs {
                let attrs = d["attributes"].as_object().unwrap();
                let n = attrs.len() + d["capacity"].as_object().map_or(0, |c| c.len());
                assert!(n <= 32, "{name}: {n} attributes + capacities");
                for (key, a) in attrs {
                    let a = a.as_object().unwrap();
                    assert_eq!(a.len(), 1, "{name}: {key} has exactly one type");
                    if let Some(s) = a.get("string").and_then(Value::as_str) {
                        assert!(s.len() <= 64, "{name}: {key} = {s:?} is over 64 bytes");
                    }
                }
                let dev = d["name"].as_str().unwrap();
                assert!(
                    dev.len() <= 63
                        && dev
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                    "{name}: device name {dev:?} is not a DNS label"
                );
                // Names are unique within a pool (one per node), not across nodes.
                published.push(format!("{}/{dev}", spec["pool"]["name"]));
            }
        }
        let count = published.len();
        published.sort();
        published.dedup();
        assert_eq!(
            published.len(),
            count,
            "{name}: a device name published twice in a pool"
        );
        assert_eq!(count, topo.gpus.len(), "{name}: every GPU published once");
    }
}

/// The island attribute the example claim matches on is the one the slices publish, and
/// it separates GPUs that no NVLink joins.
#[test]
fn the_claim_matches_on_the_island_the_slices_publish() {
    let c = serde_json::to_value(claim(&driver(), "one-island", 4, KeepTogether::Island).unwrap())
        .unwrap();
    let attr = c["spec"]["devices"]["constraints"][0]["matchAttribute"]
        .as_str()
        .unwrap();
    assert_eq!(attr, "gpu.linkwise.dev/nvlinkIsland");
    let short = attr.rsplit('/').next().unwrap();
    let slice = &slices_of("nvlink-bridge-pairs")[0];
    let islands: Vec<&str> = slice["spec"]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["attributes"][short]["string"].as_str().unwrap())
        .collect();
    assert_eq!(islands[0], islands[1]);
    assert_ne!(
        islands[1], islands[2],
        "the two bridged pairs are different islands"
    );
}

#[test]
fn yaml_reads_back_as_the_json_for_every_profile() {
    if !require(Prerequisite::python_module(
        "yaml",
        "pip install pyyaml; .ci/run installs it",
    )) {
        return;
    }
    let d = driver();
    let together = [
        KeepTogether::Island,
        KeepTogether::Domain,
        KeepTogether::PcieRoot,
    ];
    let claims: Vec<_> = together
        .iter()
        .map(|t| claim(&d, "train-8", 8, *t).unwrap())
        .collect();
    let mut texts = vec![
        (
            "class".to_string(),
            render(&[class(&d)], Format::Yaml).unwrap(),
            render(&[class(&d)], Format::Json).unwrap(),
        ),
        (
            "claims".to_string(),
            render(&claims, Format::Yaml).unwrap(),
            render(&claims, Format::Json).unwrap(),
        ),
    ];
    for (name, _) in PROFILES {
        let s = slices(&profiles::get(name).unwrap(), &d);
        texts.push((
            format!("slices of {name}"),
            render(&s, Format::Yaml).unwrap(),
            render(&s, Format::Json).unwrap(),
        ));
    }
    for (what, yaml, json) in texts {
        let json: Value = serde_json::from_str(&json).unwrap();
        // One document per object: read them as a list, as the JSON List holds them.
        let docs: Vec<&str> = yaml
            .split("---\n")
            .filter(|d| !d.trim().is_empty())
            .collect();
        let read: Vec<Value> = docs.iter().map(|d| pyyaml(d)).collect();
        let want = match json["kind"].as_str() {
            Some("List") => json["items"].as_array().unwrap().clone(),
            _ => vec![json],
        };
        assert_eq!(read.len(), want.len(), "{what}: documents");
        for (i, (r, w)) in read.iter().zip(&want).enumerate() {
            if let Some(diff) = difference(r, w, "") {
                panic!("{what}, document {i}: {diff}");
            }
        }
    }
}
