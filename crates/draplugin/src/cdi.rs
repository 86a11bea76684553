//! CDI specs (Container Device Interface, spec version [`CDI_VERSION`]): one JSON spec
//! file per prepared claim in the CDI directory, which the container runtime reads when
//! the kubelet hands it the claim's CDI device ids.
//!
//! A spec of kind `<driver>/gpu` holds one CDI device per allocated GPU, named
//! `<claim-uid>-<device>` (its `/dev/nvidia<index>` node), and edits for every container
//! that gets any of them: the control nodes (`nvidiactl`, `nvidia-uvm`,
//! `nvidia-uvm-tools`), `NVIDIA_VISIBLE_DEVICES` (the claim's GPU UUIDs) and
//! `LINKWISE_NVLINK_ISLANDS`; the spec's annotations name the claim and its NVLink
//! islands. Only device nodes that exist are listed (a runtime refuses a spec whose node
//! is missing).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::node::NodeDevice;

/// The CDI spec version written (the first with spec annotations).
pub const CDI_VERSION: &str = "0.6.0";
/// The spec annotation naming the claim (`NAMESPACE/NAME`).
pub const CLAIM_ANNOTATION: &str = "linkwise.dev/claim";
/// The spec annotation and the environment variable naming the claim's NVLink islands.
pub const ISLANDS_ANNOTATION: &str = "linkwise.dev/nvlink-islands";
/// The environment variable with the claim's NVLink islands.
pub const ISLANDS_ENV: &str = "LINKWISE_NVLINK_ISLANDS";
/// Control device nodes every GPU container needs.
const CONTROL_NODES: [&str; 3] = ["nvidiactl", "nvidia-uvm", "nvidia-uvm-tools"];

/// The CDI kind of `driver`'s devices.
pub fn kind(driver: &str) -> String {
    format!("{driver}/gpu")
}

/// The CDI device name of `device` in claim `uid`.
pub fn device_name(uid: &str, device: &str) -> String {
    format!("{uid}-{device}")
}

/// The fully qualified CDI device id (`<kind>=<name>`) the kubelet passes on.
pub fn device_id(driver: &str, uid: &str, device: &str) -> String {
    format!("{}={}", kind(driver), device_name(uid, device))
}

/// The spec file of claim `uid` in `dir`.
pub fn spec_path(dir: &Path, driver: &str, uid: &str) -> PathBuf {
    dir.join(format!("linkwise-{driver}-{uid}.json"))
}

/// Whether `uid` can name a CDI device and a file: a Kubernetes UID is hex digits and
/// dashes; anything with other characters (a `/`, `..`) is refused.
pub fn valid_uid(uid: &str) -> bool {
    !uid.is_empty() && uid.len() <= 64 && uid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The spec for claim `namespace/name` (`uid`) with `devices`.
pub fn spec(
    driver: &str,
    claim: (&str, &str, &str),
    devices: &[&NodeDevice],
    dev_root: &Path,
) -> Value {
    let (namespace, name, uid) = claim;
    let node = |file: &str| -> Option<Value> {
        let host = dev_root.join(file);
        if !host.exists() {
            return None;
        }
        let path = format!("/dev/{file}");
        Some(if dev_root == Path::new("/dev") {
            json!({ "path": path })
        } else {
            json!({ "path": path, "hostPath": host.to_string_lossy() })
        })
    };
    let mut islands: Vec<&str> = Vec::new();
    for d in devices {
        if let Some(i) = d.island.as_deref()
            && !islands.contains(&i)
        {
            islands.push(i);
        }
    }
    let visible: Vec<&str> = devices.iter().map(|d| d.visible_id.as_str()).collect();
    let cdi_devices: Vec<Value> = devices
        .iter()
        .map(|d| {
            let nodes: Vec<Value> = node(&format!("nvidia{}", d.index)).into_iter().collect();
            json!({
                "name": device_name(uid, &d.name),
                "containerEdits": { "deviceNodes": nodes },
            })
        })
        .collect();
    let control: Vec<Value> = CONTROL_NODES.iter().filter_map(|f| node(f)).collect();
    json!({
        "cdiVersion": CDI_VERSION,
        "kind": kind(driver),
        "annotations": {
            CLAIM_ANNOTATION: format!("{namespace}/{name}"),
            ISLANDS_ANNOTATION: islands.join(","),
        },
        "devices": cdi_devices,
        "containerEdits": {
            "env": [
                format!("NVIDIA_VISIBLE_DEVICES={}", visible.join(",")),
                format!("{ISLANDS_ENV}={}", islands.join(",")),
            ],
            "deviceNodes": control,
        },
    })
}

/// Writes `spec` to `path` atomically.
pub fn write(path: &Path, spec: &Value) -> Result<(), String> {
    let mut text = serde_json::to_string_pretty(spec).map_err(|e| e.to_string())?;
    text.push('\n');
    linkwise_fsio::write_atomic(path, text.as_bytes()).map_err(|e| e.to_string())
}

/// Removes the spec at `path`; one that is already gone is fine.
pub fn remove(path: &Path) -> Result<(), String> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linkwise_core::GpuId;

    fn dev(index: u32, island: &str) -> NodeDevice {
        NodeDevice {
            name: format!("gpu-{index}"),
            gpu: GpuId(format!("GPU{index}")),
            index,
            visible_id: format!("GPU-uuid-{index}"),
            island: Some(island.to_string()),
        }
    }

    #[test]
    fn only_existing_nodes_are_listed_and_ids_match_names() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["nvidia0", "nvidiactl"] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        let (a, b) = (dev(0, "n-island0"), dev(1, "n-island0"));
        let s = spec(
            "gpu.linkwise.dev",
            ("ns", "c", "u-1"),
            &[&a, &b],
            dir.path(),
        );
        assert_eq!(s["kind"], "gpu.linkwise.dev/gpu");
        assert_eq!(s["devices"][0]["name"], "u-1-gpu-0");
        assert_eq!(
            s["devices"][0]["containerEdits"]["deviceNodes"][0]["path"],
            "/dev/nvidia0"
        );
        assert_eq!(
            s["devices"][1]["containerEdits"]["deviceNodes"],
            json!([]),
            "no /dev/nvidia1 here"
        );
        assert_eq!(
            s["containerEdits"]["deviceNodes"].as_array().unwrap().len(),
            1
        );
        assert_eq!(
            s["containerEdits"]["env"][0],
            "NVIDIA_VISIBLE_DEVICES=GPU-uuid-0,GPU-uuid-1"
        );
        assert_eq!(s["annotations"][ISLANDS_ANNOTATION], "n-island0");
        assert_eq!(
            device_id("gpu.linkwise.dev", "u-1", "gpu-0"),
            format!(
                "{}={}",
                s["kind"].as_str().unwrap(),
                s["devices"][0]["name"].as_str().unwrap()
            )
        );
    }

    #[test]
    fn uids_that_could_escape_the_directory_are_refused() {
        assert!(valid_uid("0b6f3c52-1e0a-4a43-9d4e-5b7f1c2d3e4f"));
        for bad in ["", "../x", "a/b", "a b", ".."] {
            assert!(!valid_uid(bad), "{bad:?}");
        }
    }
}
