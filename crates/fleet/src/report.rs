//! The node report: one node's identity, host, driver, GPUs and artefacts at one moment.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;

/// The version of the format this build writes; it reads every report of this major
/// version (unknown fields are kept out, missing optional ones are empty).
pub const SCHEMA_VERSION: u32 = 1;

/// One node's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeReport {
    /// The format version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// The node's name (the Kubernetes node or Slurm node name; the host name by default).
    pub node: String,
    /// Free-form labels: rack, batch, site, ...
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// When the report was made (RFC 3339, UTC), when the producer knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collected_at: Option<String>,
    /// The host.
    pub host: HostFacts,
    /// The GPU driver.
    pub driver: Driver,
    /// The GPUs, in index order.
    #[serde(default)]
    pub gpus: Vec<GpuFacts>,
    /// Files with their digests.
    #[serde(default)]
    pub artifacts: Vec<Artifact>,
    /// A digest of the fabric's shape (GPU models, links, switches, NUMA), the same on
    /// every node of one hardware class whatever the serial numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_fingerprint: Option<String>,
    /// The preflight verdict, where it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preflight: Option<PreflightSummary>,
}

/// The host's facts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostFacts {
    /// `x86_64`, `aarch64`, `riscv64`.
    pub arch: String,
    /// The kernel release (`uname -r`).
    pub kernel: String,
    /// The kernel command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
    /// The board or system model (DMI, or the device tree's `model`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board: Option<String>,
    /// Firmware and BSP versions by name: `bios` (DMI), `dt-compatible`, ...
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub firmware: BTreeMap<String, String>,
}

/// The GPU driver.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Driver {
    /// The driver version (`550.54.15`); `null` when none is loaded.
    pub version: Option<String>,
    /// The CUDA version the driver supports, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda_version: Option<String>,
}

/// One GPU.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuFacts {
    /// The driver's index.
    #[serde(default)]
    pub index: u32,
    /// The GPU UUID, where known.
    pub uuid: Option<String>,
    /// The model.
    pub model: String,
    /// The VBIOS version, where known.
    pub vbios: Option<String>,
    /// Other firmware (GSP, InfoROM), where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    /// The PCI address (`0000:18:00.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci_address: Option<String>,
    /// The NUMA node, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numa_node: Option<u32>,
}

/// A file and its digest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// What it is, stable across nodes: `module:nvidia`, `firmware:nvidia/550.54.15/gsp_ga10x.bin`,
    /// or the path named with `--hash`.
    pub name: String,
    /// Where it was read on the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Lowercase hex SHA-256 of the file's bytes.
    pub sha256: String,
}

/// The preflight verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreflightSummary {
    /// The roles checked.
    pub roles: Vec<String>,
    /// No check failed.
    pub ready: bool,
    /// Passes.
    pub pass: usize,
    /// Warnings.
    pub warn: usize,
    /// Failures.
    pub fail: usize,
    /// Skips.
    pub skip: usize,
    /// The ids of the failed checks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl NodeReport {
    /// Reads a report written by any producer; `source` names it in errors, which give
    /// the field's path.
    pub fn parse(text: &str, source: &str) -> Result<NodeReport, Error> {
        let bad = |message: String| Error::Report {
            source_name: source.to_string(),
            message,
        };
        let mut de = serde_json::Deserializer::from_str(text);
        let report: NodeReport = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                bad(e.into_inner().to_string())
            } else {
                bad(format!("{path}: {}", e.into_inner()))
            }
        })?;
        de.end().map_err(|e| bad(e.to_string()))?;
        report.check().map_err(bad)?;
        Ok(report)
    }

    /// The consistency rules the schema cannot say: the version, a node name, digests
    /// that are SHA-256 hex.
    fn check(&self) -> Result<(), String> {
        if self.schema_version != SCHEMA_VERSION {
            return Err(format!(
                "schemaVersion {} is not {SCHEMA_VERSION}, the version this linkwise reads",
                self.schema_version
            ));
        }
        if self.node.trim().is_empty() {
            return Err("node: empty".into());
        }
        if let Some(at) = &self.collected_at {
            at.parse::<jiff::Timestamp>().map_err(|e| {
                format!("collectedAt: {at:?} is not an RFC 3339 time with an offset: {e}")
            })?;
        }
        for (i, a) in self.artifacts.iter().enumerate() {
            if a.sha256.len() != 64
                || !a
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(format!(
                    "artifacts[{i}].sha256: {:?} is not 64 lowercase hex digits",
                    a.sha256
                ));
            }
            if a.name.is_empty() {
                return Err(format!("artifacts[{i}].name: empty"));
            }
        }
        Ok(())
    }

    /// The report's canonical JSON: this build's field order, no insignificant space,
    /// unknown fields dropped. What the store keeps.
    pub fn canonical_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The report's id: the SHA-256 of its canonical JSON (the same report ingested twice
    /// is stored once).
    pub fn id(&self) -> String {
        sha256_hex(self.canonical_json().as_bytes())
    }

    /// `collectedAt` in microseconds since the epoch, where the report says.
    pub fn collected_us(&self) -> Option<i64> {
        self.collected_at
            .as_deref()
            .and_then(|at| at.parse::<jiff::Timestamp>().ok())
            .map(|t| t.as_microsecond())
    }

    /// The reports in `text`: one JSON document, or JSON lines (one report per non-empty
    /// line, named `SOURCE:LINE`). Each is read on its own, so one bad line rejects only
    /// itself.
    pub fn parse_documents(text: &str, source: &str) -> Vec<Result<NodeReport, Error>> {
        if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
            return vec![NodeReport::parse(text, source)];
        }
        let lines: Vec<(usize, &str)> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .collect();
        if lines.len() <= 1 {
            return vec![NodeReport::parse(text, source)];
        }
        lines
            .into_iter()
            .map(|(n, l)| NodeReport::parse(l, &format!("{source}:{}", n + 1)))
            .collect()
    }
}
