//! Drift: inside each hardware class, the value most nodes have for every tracked field,
//! and every node that differs.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::report::NodeReport;

/// A node whose value differs from its class's majority.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// The hardware class (see [`class_of`]).
    pub class: String,
    /// The node.
    pub node: String,
    /// The field: `kernel`, `driver`, `vbios/MODEL`, `artifact/NAME`, `firmware/KEY`.
    pub field: String,
    /// The node's value (`(absent)` where it has none).
    pub value: String,
    /// The class's majority value.
    pub expected: String,
    /// The node's labels, so that a rack or batch that differs as a whole stands out.
    pub labels: BTreeMap<String, String>,
}

/// A value of a field that only one value of a label has (one batch, one rack).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelFinding {
    /// The hardware class.
    pub class: String,
    /// The label (`batch`).
    pub label: String,
    /// Its value that alone has the field's value (`2026-11`).
    pub label_value: String,
    /// The field.
    pub field: String,
    /// The value only that label value has.
    pub value: String,
    /// The nodes with it.
    pub nodes: Vec<String>,
}

/// A hardware class and its nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Class {
    /// The class: architecture, board, GPU models and counts, fabric fingerprint.
    pub class: String,
    /// Its nodes.
    pub nodes: Vec<String>,
}

/// What drift found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Drift {
    /// The classes, each with its nodes.
    pub classes: Vec<Class>,
    /// Every node value that differs from its class's majority.
    pub findings: Vec<Finding>,
    /// With a label asked for: values only one of its values has.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub by_label: Vec<LabelFinding>,
}

/// The value a node has where the field is missing.
pub const ABSENT: &str = "(absent)";

/// A report's hardware class: nodes of one class should run the same software.
pub fn class_of(r: &NodeReport) -> String {
    let mut models: BTreeMap<&str, usize> = BTreeMap::new();
    for g in &r.gpus {
        *models.entry(g.model.as_str()).or_default() += 1;
    }
    let gpus = if models.is_empty() {
        "no GPU".to_string()
    } else {
        models
            .iter()
            .map(|(m, n)| format!("{n}x {m}"))
            .collect::<Vec<_>>()
            .join(" + ")
    };
    let fp = r
        .topology_fingerprint
        .as_deref()
        .map(|f| {
            f.trim_start_matches("sha256:")
                .chars()
                .take(12)
                .collect::<String>()
        })
        .unwrap_or_else(|| "-".into());
    format!(
        "{} / {} / {gpus} / fabric {fp}",
        r.host.arch,
        r.host.board.as_deref().unwrap_or("-")
    )
}

/// The tracked fields of one report, by name.
pub fn fields(r: &NodeReport) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    f.insert("kernel".to_string(), r.host.kernel.clone());
    f.insert(
        "driver".to_string(),
        r.driver.version.clone().unwrap_or_else(|| "none".into()),
    );
    let mut vbios: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for g in &r.gpus {
        vbios
            .entry(g.model.as_str())
            .or_default()
            .insert(g.vbios.as_deref().unwrap_or("unknown"));
    }
    for (model, values) in vbios {
        f.insert(
            format!("vbios/{model}"),
            values.into_iter().collect::<Vec<_>>().join(","),
        );
    }
    for a in &r.artifacts {
        f.insert(format!("artifact/{}", a.name), a.sha256.clone());
    }
    for (k, v) in &r.host.firmware {
        f.insert(format!("firmware/{k}"), v.clone());
    }
    f
}

/// The most common value; a tie goes to the smallest value, so the answer is stable.
fn majority<'a>(values: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for v in values {
        *counts.entry(v).or_default() += 1;
    }
    counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(v, _)| *v)
}

/// Drift over the latest report of every node; with `by` labels, also the values only
/// one value of each label has.
pub fn drift(latest: &[NodeReport], by: &[String]) -> Drift {
    let mut classes: BTreeMap<String, Vec<&NodeReport>> = BTreeMap::new();
    for r in latest {
        classes.entry(class_of(r)).or_default().push(r);
    }
    let mut findings = Vec::new();
    let mut by_label = Vec::new();
    for (class, nodes) in &classes {
        let values: Vec<BTreeMap<String, String>> = nodes.iter().map(|r| fields(r)).collect();
        let names: BTreeSet<&String> = values.iter().flat_map(|f| f.keys()).collect();
        for name in names {
            let of = |f: &BTreeMap<String, String>| {
                f.get(name).cloned().unwrap_or_else(|| ABSENT.to_string())
            };
            let column: Vec<String> = values.iter().map(of).collect();
            let Some(expected) = majority(column.iter().map(String::as_str)) else {
                continue;
            };
            for (r, value) in nodes.iter().zip(&column) {
                if value != expected {
                    findings.push(Finding {
                        class: class.clone(),
                        node: r.node.clone(),
                        field: name.clone(),
                        value: value.clone(),
                        expected: expected.to_string(),
                        labels: r.labels.clone(),
                    });
                }
            }
            for label in by {
                by_label.extend(only_one(class, label, name, nodes, &column, expected));
            }
        }
    }
    findings.sort();
    by_label.sort();
    Drift {
        classes: classes
            .into_iter()
            .map(|(class, nodes)| {
                let mut nodes: Vec<String> = nodes.iter().map(|r| r.node.clone()).collect();
                nodes.sort();
                Class { class, nodes }
            })
            .collect(),
        findings,
        by_label,
    }
}

/// The values of `field` other than the class's majority held only by nodes of one value
/// of `label`, where the class has nodes of more than one.
fn only_one(
    class: &str,
    label: &str,
    field: &str,
    nodes: &[&NodeReport],
    column: &[String],
    expected: &str,
) -> Vec<LabelFinding> {
    let label_of = |r: &NodeReport| {
        r.labels
            .get(label)
            .cloned()
            .unwrap_or_else(|| ABSENT.to_string())
    };
    let all: BTreeSet<String> = nodes.iter().map(|r| label_of(r)).collect();
    if all.len() < 2 {
        return Vec::new();
    }
    let mut holders: BTreeMap<&str, (BTreeSet<String>, Vec<String>)> = BTreeMap::new();
    for (r, v) in nodes.iter().zip(column) {
        let e = holders.entry(v.as_str()).or_default();
        e.0.insert(label_of(r));
        e.1.push(r.node.clone());
    }
    if holders.len() < 2 {
        return Vec::new();
    }
    holders
        .into_iter()
        .filter(|(value, (labels, _))| labels.len() == 1 && *value != expected)
        .filter_map(|(value, (labels, mut nodes))| {
            let label_value = labels.into_iter().next()?;
            // Everything of that label value has it, and nothing else does.
            nodes.sort();
            Some(LabelFinding {
                class: class.to_string(),
                label: label.to_string(),
                label_value,
                field: field.to_string(),
                value: value.to_string(),
                nodes,
            })
        })
        .collect()
}
