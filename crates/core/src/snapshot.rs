//! The snapshot format: a [`Topology`] serialised as JSON or YAML with a `schemaVersion`.
//!
//! The format is documented in `docs/snapshot.md` and described by
//! `docs/snapshot.schema.json`. A snapshot holds the facts; the `derived` section
//! (islands, domains) is written for readers' convenience and recomputed, not trusted,
//! on read. Writing, reading and writing again gives the same bytes.

use serde::{Deserialize, Serialize};

use crate::{Error, Gap, Gpu, Host, Island, Link, Nic, NvSwitch, NvlinkDomain, Result, Topology};

/// The snapshot schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// Serialisation format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON, pretty-printed.
    Json,
    /// YAML.
    Yaml,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotOut<'a> {
    schema_version: u32,
    source: &'a str,
    hosts: &'a [Host],
    gpus: &'a [Gpu],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    switches: &'a [NvSwitch],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    nics: &'a [Nic],
    links: &'a [Link],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    gaps: &'a [Gap],
    derived: Derived,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Derived {
    islands: Vec<Island>,
    domains: Vec<NvlinkDomain>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SnapshotIn {
    #[allow(dead_code)]
    schema_version: u32,
    source: String,
    hosts: Vec<Host>,
    gpus: Vec<Gpu>,
    #[serde(default)]
    switches: Vec<NvSwitch>,
    #[serde(default)]
    nics: Vec<Nic>,
    #[serde(default)]
    links: Vec<Link>,
    #[serde(default)]
    gaps: Vec<Gap>,
    #[allow(dead_code)]
    #[serde(default)]
    derived: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VersionOnly {
    schema_version: u32,
}

/// Writes `topo` as a snapshot.
pub fn to_string(topo: &Topology, format: Format) -> Result<String> {
    let islands = topo.islands();
    let out = SnapshotOut {
        schema_version: SCHEMA_VERSION,
        source: &topo.source,
        hosts: &topo.hosts,
        gpus: &topo.gpus,
        switches: &topo.switches,
        nics: &topo.nics,
        links: &topo.links,
        gaps: &topo.gaps,
        derived: Derived {
            islands,
            domains: topo.domains(),
        },
    };
    let ser_err = |message: String| Error::Syntax {
        line: 0,
        column: 0,
        field: String::new(),
        message,
    };
    match format {
        Format::Json => serde_json::to_string_pretty(&out)
            .map(|mut s| {
                s.push('\n');
                s
            })
            .map_err(|e| ser_err(e.to_string())),
        // Through the quoting writer, so YAML 1.1 readers do not turn `0000:18:00.0` or
        // `550.54` into numbers.
        Format::Yaml => serde_json::to_value(&out)
            .map(|v| crate::yaml::to_yaml(&v))
            .map_err(|e| ser_err(e.to_string())),
    }
}

/// The format of `text`: JSON when its first non-blank character is `{`, else YAML.
pub fn detect(text: &str) -> Format {
    if text.trim_start().starts_with('{') {
        Format::Json
    } else {
        Format::Yaml
    }
}

/// Reads a snapshot (JSON or YAML, detected), checks its version and validates it.
pub fn from_str(text: &str) -> Result<Topology> {
    let format = detect(text);
    let version: VersionOnly = decode(text, format)?;
    if version.schema_version != SCHEMA_VERSION {
        return Err(Error::UnsupportedVersion {
            found: version.schema_version,
            supported: SCHEMA_VERSION,
        });
    }
    let s: SnapshotIn = decode(text, format)?;
    let topo = Topology {
        source: s.source,
        hosts: s.hosts,
        gpus: s.gpus,
        switches: s.switches,
        nics: s.nics,
        links: s.links,
        gaps: s.gaps,
    };
    topo.validate()?;
    Ok(topo)
}

fn decode<T: serde::de::DeserializeOwned>(text: &str, format: Format) -> Result<T> {
    match format {
        Format::Json => {
            let de = &mut serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let field = field_of(e.path());
                let inner = e.into_inner();
                Error::Syntax {
                    line: inner.line(),
                    column: inner.column(),
                    field,
                    message: strip_location(&inner.to_string()),
                }
            })
        }
        Format::Yaml => {
            let de = serde_yaml_ng::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let field = field_of(e.path());
                let inner = e.into_inner();
                let (line, column) = inner.location().map_or((0, 0), |l| (l.line(), l.column()));
                Error::Syntax {
                    line,
                    column,
                    field,
                    message: strip_path(&strip_location(&inner.to_string())),
                }
            })
        }
    }
}

fn field_of(path: &serde_path_to_error::Path) -> String {
    let p = path.to_string();
    if p == "." || p == "?" || p.is_empty() {
        String::new()
    } else {
        format!("{p}: ")
    }
}

/// serde_yaml prefixes its own path (`gpus[0]: ...`); the error carries a better one.
fn strip_path(msg: &str) -> String {
    match msg.split_once(": ") {
        Some((head, rest)) if !head.is_empty() && !head.contains(char::is_whitespace) => {
            rest.to_string()
        }
        _ => msg.to_string(),
    }
}

/// serde_json and serde_yaml append " at line L column C"; the error carries those
/// separately, so drop the suffix.
fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}
