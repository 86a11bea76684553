//! Attestation: the latest reports checked against an allow-list of approved kernels,
//! drivers, VBIOS versions per GPU model and artefact digests.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::report::NodeReport;

/// What is approved. A list that is absent is not checked; an empty one approves nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AllowList {
    /// Approved kernel releases.
    #[serde(default)]
    pub kernel_releases: Option<Vec<String>>,
    /// Approved driver versions.
    #[serde(default)]
    pub driver_versions: Option<Vec<String>>,
    /// Approved VBIOS versions per GPU model.
    #[serde(default)]
    pub vbios_versions: Option<BTreeMap<String, Vec<String>>>,
    /// Approved artefacts: every artefact a node reports must be one of these, name and
    /// digest.
    #[serde(default)]
    pub artifacts: Option<Vec<AllowedArtifact>>,
}

/// One approved artefact.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowedArtifact {
    /// Its name as reports give it (`module:nvidia`).
    pub name: String,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
}

/// Something a node runs that the allow-list does not approve.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttestFinding {
    /// The node.
    pub node: String,
    /// `kernel`, `driver`, `vbios/MODEL`, `artifact/NAME`.
    pub what: String,
    /// The value found.
    pub value: String,
    /// Why it is not approved.
    pub reason: String,
}

impl AllowList {
    /// Reads an allow-list (YAML, or JSON); errors name the file and the field.
    pub fn parse(text: &str, source: &str) -> Result<AllowList, Error> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            Error::Report {
                source_name: source.to_string(),
                message: format!("{path}: {}", e.into_inner()),
            }
        })
    }
}

/// Every unapproved thing on every node, sorted by node.
pub fn attest(latest: &[NodeReport], allow: &AllowList) -> Vec<AttestFinding> {
    let mut out = Vec::new();
    for r in latest {
        let mut find = |what: String, value: String, reason: &str| {
            out.push(AttestFinding {
                node: r.node.clone(),
                what,
                value,
                reason: reason.to_string(),
            });
        };
        if let Some(ok) = &allow.kernel_releases
            && !ok.contains(&r.host.kernel)
        {
            find(
                "kernel".into(),
                r.host.kernel.clone(),
                "not an approved kernel release",
            );
        }
        if let Some(ok) = &allow.driver_versions {
            let v = r.driver.version.clone().unwrap_or_else(|| "none".into());
            if !ok.contains(&v) {
                find("driver".into(), v, "not an approved driver version");
            }
        }
        if let Some(per_model) = &allow.vbios_versions {
            for g in &r.gpus {
                let v = g.vbios.clone().unwrap_or_else(|| "unknown".into());
                match per_model.get(&g.model) {
                    None => find(
                        format!("vbios/{}", g.model),
                        v,
                        "no VBIOS is approved for this GPU model",
                    ),
                    Some(ok) if !ok.contains(&v) => find(
                        format!("vbios/{}", g.model),
                        v,
                        "not an approved VBIOS for this GPU model",
                    ),
                    Some(_) => {}
                }
            }
        }
        if let Some(ok) = &allow.artifacts {
            for a in &r.artifacts {
                let named: Vec<&AllowedArtifact> = ok.iter().filter(|x| x.name == a.name).collect();
                if named.is_empty() {
                    find(
                        format!("artifact/{}", a.name),
                        a.sha256.clone(),
                        "not on the allow-list",
                    );
                } else if !named
                    .iter()
                    .any(|x| x.sha256.eq_ignore_ascii_case(&a.sha256))
                {
                    find(
                        format!("artifact/{}", a.name),
                        a.sha256.clone(),
                        "a digest the allow-list does not approve",
                    );
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}
