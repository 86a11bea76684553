//! A rollout plan: which nodes change in which wave.
//!
//! Wave 0 holds the canaries: `canaries_per_class` nodes of every hardware class (the
//! class drift uses: architecture, board, GPU models and counts, fabric fingerprint),
//! chosen from racks no earlier canary uses where the `rack` label allows. Later waves
//! grow — doubling the previous wave by default, or the sizes given — and no wave takes
//! more of any class than `max_unavailable` allows (a percentage of the class rounds up,
//! so at least one node). Inside a class, nodes are taken rack by rack in turn, so a wave
//! spreads over racks. Nodes with drift, a failing preflight or a quarantine are held out,
//! each with its reason. The same inputs give the same plan.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use linkwise_fleet::NodeReport;
use linkwise_fleet::drift::{class_of, drift};

/// What a plan cannot be made from.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A flag value or plan file that is not right.
    #[error("{0}")]
    Invalid(String),
}

/// How drain and return to service are done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Executor {
    /// `scontrol update NodeName=... State=DRAIN` / `State=RESUME`.
    Slurm,
    /// Cordon, evict GPU pods, uncordon.
    Kubernetes,
    /// Nothing: the commands do it all.
    None,
}

/// A number of nodes or a share.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    /// So many nodes.
    Count(usize),
    /// A share (0 < p ≤ 1), rounded up.
    Share(f64),
}

impl Amount {
    /// `3` or `25%`.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] naming `what` for anything else, 0 or above 100 %.
    pub fn parse(s: &str, what: &str) -> Result<Amount, Error> {
        let bad = || {
            Error::Invalid(format!(
                "{what} {s:?}: give a number of nodes (3) or a share (25%)"
            ))
        };
        match s.trim().strip_suffix('%') {
            Some(p) => {
                let p: f64 = p.trim().parse().map_err(|_| bad())?;
                if p > 0.0 && p <= 100.0 {
                    Ok(Amount::Share(p / 100.0))
                } else {
                    Err(bad())
                }
            }
            None => match s.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(Amount::Count(n)),
                _ => Err(bad()),
            },
        }
    }

    /// Of `total`: at least 1, a share rounded up.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // ≥ 1 and ≤ total, checked
    pub fn of(self, total: usize) -> usize {
        match self {
            Amount::Count(n) => n.max(1),
            Amount::Share(p) => {
                let n = (p * total as f64).ceil();
                if n.is_finite() && n >= 1.0 {
                    (n as usize).max(1)
                } else {
                    1
                }
            }
        }
    }
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Amount::Count(n) => write!(f, "{n}"),
            Amount::Share(p) => write!(f, "{}%", p * 100.0),
        }
    }
}

/// Seconds between gate evaluations when a plan does not say.
pub const DEFAULT_GATE_INTERVAL: u64 = 10;

fn default_gate_interval() -> u64 {
    DEFAULT_GATE_INTERVAL
}

/// How to plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The change's name (the rollout's key in the store).
    pub change: String,
    /// The command that applies the change (`{node}` is replaced).
    pub apply: String,
    /// The command that undoes it.
    pub rollback: Option<String>,
    /// Per-node checks after apply.
    pub verify: Vec<String>,
    /// Per-wave gates (PromQL).
    pub gates: Vec<String>,
    /// The Prometheus server the gates ask (its root URL).
    pub prometheus: Option<String>,
    /// Seconds between evaluations of the gates while a wave bakes.
    pub gate_interval_seconds: u64,
    /// Drain and return.
    pub executor: Executor,
    /// Only nodes whose labels have all of these (`rack=r07`).
    pub labels: BTreeMap<String, String>,
    /// Only these nodes, when not empty.
    pub only: BTreeSet<String>,
    /// The most nodes of one class in one wave.
    pub max_unavailable: Amount,
    /// Canaries per class in wave 0.
    pub canaries_per_class: usize,
    /// Wave sizes after the canaries (the last repeats); empty: each doubles the one before.
    pub waves: Vec<Amount>,
    /// Seconds each wave bakes while its gates are evaluated.
    pub bake_seconds: u64,
}

/// One node of a wave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanNode {
    /// The node.
    pub node: String,
    /// Its hardware class.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub class: String,
    /// Its rack, where labelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
}

/// A node held out of the plan, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Held {
    /// The node.
    pub node: String,
    /// Why.
    pub reason: String,
}

/// A class in the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassLimit {
    /// The class.
    pub class: String,
    /// Its nodes in the rollout's scope (held-out ones included).
    pub nodes: usize,
    /// The most of them changed in one wave.
    pub per_wave: usize,
}

/// A plan: reviewable and editable before it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The change.
    pub change: String,
    /// Drain and return.
    pub executor: Executor,
    /// The apply command.
    pub apply: String,
    /// The rollback command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<String>,
    /// Per-node checks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify: Vec<String>,
    /// Per-wave gates: PromQL that selects what is wrong (a gate fails when its query
    /// returns a series); `{nodes}`, `{wave}` and `{since}` are filled in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<String>,
    /// The Prometheus server the gates ask (its root URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<String>,
    /// Seconds between evaluations of the gates while a wave bakes.
    #[serde(default = "default_gate_interval")]
    pub gate_interval_seconds: u64,
    /// Seconds each wave bakes.
    #[serde(default)]
    pub bake_seconds: u64,
    /// The unavailability limit as given.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub max_unavailable: String,
    /// The classes and their per-wave limits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<ClassLimit>,
    /// The waves, canaries first; each a list of nodes.
    #[serde(deserialize_with = "waves_from_names_or_objects")]
    pub waves: Vec<Vec<PlanNode>>,
    /// Nodes held out, with why.
    #[serde(default)]
    pub held_out: Vec<Held>,
}

/// A wave's entry as a person may write it: a name, or an object with `node`.
#[derive(Deserialize)]
#[serde(untagged)]
enum NodeEntry {
    Name(String),
    Node(PlanNode),
}

fn waves_from_names_or_objects<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<Vec<PlanNode>>, D::Error> {
    let waves: Vec<Vec<NodeEntry>> = Vec::deserialize(d)?;
    Ok(waves
        .into_iter()
        .map(|w| {
            w.into_iter()
                .map(|e| match e {
                    NodeEntry::Name(node) => PlanNode {
                        node,
                        class: String::new(),
                        rack: None,
                    },
                    NodeEntry::Node(n) => n,
                })
                .collect()
        })
        .collect())
}

impl Plan {
    /// Reads a plan (YAML or JSON), as written or edited by a person; `source` names it.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] naming the field; a node in two waves; an empty change or apply.
    pub fn parse(text: &str, source: &str) -> Result<Plan, Error> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let plan: Plan = serde_path_to_error::deserialize(de)
            .map_err(|e| Error::Invalid(format!("{source}: {}: {}", e.path(), e.inner())))?;
        if plan.change.trim().is_empty() || plan.apply.trim().is_empty() {
            return Err(Error::Invalid(format!(
                "{source}: change and apply must not be empty"
            )));
        }
        let mut seen = BTreeSet::new();
        for (i, w) in plan.waves.iter().enumerate() {
            for n in w {
                if !seen.insert(n.node.as_str()) {
                    return Err(Error::Invalid(format!(
                        "{source}: waves[{i}]: node {:?} is in two waves",
                        n.node
                    )));
                }
            }
        }
        Ok(plan)
    }

    /// Every node of the plan, wave by wave.
    pub fn nodes(&self) -> impl Iterator<Item = &PlanNode> {
        self.waves.iter().flatten()
    }
}

/// Why `r` cannot take part, if it cannot.
fn hold_reason(
    r: &NodeReport,
    quarantined: &BTreeMap<String, String>,
    drifted: &BTreeMap<&str, Vec<String>>,
) -> Option<String> {
    if let Some(why) = quarantined.get(&r.node) {
        return Some(format!("quarantined: {why}"));
    }
    if let Some(p) = &r.preflight
        && !p.ready
    {
        return Some(format!(
            "preflight not ready: {} failed{}",
            p.fail,
            if p.failed.is_empty() {
                String::new()
            } else {
                format!(" ({})", p.failed.join(", "))
            }
        ));
    }
    if let Some(fields) = drifted.get(r.node.as_str()) {
        return Some(format!("drift from its class: {}", fields.join("; ")));
    }
    None
}

/// Orders a class's nodes rack by rack in turn (r01's first, r02's first, ..., then the
/// seconds), names sorted inside a rack; nodes without a rack come as a rack of their own.
fn spread(nodes: Vec<PlanNode>) -> Vec<PlanNode> {
    let mut by_rack: BTreeMap<Option<String>, Vec<PlanNode>> = BTreeMap::new();
    for n in nodes {
        by_rack.entry(n.rack.clone()).or_default().push(n);
    }
    let mut racks: Vec<std::collections::VecDeque<PlanNode>> = by_rack
        .into_values()
        .map(|mut v| {
            v.sort_by(|a, b| a.node.cmp(&b.node));
            v.into()
        })
        .collect();
    let mut out = Vec::new();
    while racks.iter().any(|r| !r.is_empty()) {
        for r in &mut racks {
            if let Some(n) = r.pop_front() {
                out.push(n);
            }
        }
    }
    out
}

/// Plans the rollout of `o` over each node's latest report, holding out the
/// `quarantined` nodes (node → reason) and those with drift or a failing preflight.
///
/// # Errors
///
/// [`Error::Invalid`]: no node in scope, a node named in `only` that has no report, no
/// canary per class.
pub fn plan(
    latest: &[NodeReport],
    quarantined: &BTreeMap<String, String>,
    o: &Options,
) -> Result<Plan, Error> {
    if o.canaries_per_class == 0 {
        return Err(Error::Invalid(
            "--canaries-per-class must be at least 1".into(),
        ));
    }
    for n in &o.only {
        if !latest.iter().any(|r| &r.node == n) {
            return Err(Error::Invalid(format!(
                "node {n:?} has no report in the fleet store"
            )));
        }
    }
    let scope: Vec<&NodeReport> = latest
        .iter()
        .filter(|r| o.only.is_empty() || o.only.contains(&r.node))
        .filter(|r| o.labels.iter().all(|(k, v)| r.labels.get(k) == Some(v)))
        .collect();
    if scope.is_empty() {
        return Err(Error::Invalid(
            "no node of the fleet store is in the rollout's scope (--nodes)".into(),
        ));
    }
    let owned: Vec<NodeReport> = scope.iter().map(|r| (*r).clone()).collect();
    let d = drift(&owned, &[]);
    let mut drifted: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for f in &d.findings {
        drifted.entry(f.node.as_str()).or_default().push(format!(
            "{} is {} where the class has {}",
            f.field, f.value, f.expected
        ));
    }
    let mut held = Vec::new();
    let mut classes: BTreeMap<String, (usize, Vec<PlanNode>)> = BTreeMap::new();
    for r in &scope {
        let class = class_of(r);
        let entry = classes.entry(class.clone()).or_default();
        entry.0 += 1;
        match hold_reason(r, quarantined, &drifted) {
            Some(reason) => held.push(Held {
                node: r.node.clone(),
                reason,
            }),
            None => entry.1.push(PlanNode {
                node: r.node.clone(),
                class,
                rack: r.labels.get("rack").cloned(),
            }),
        }
    }
    held.sort_by(|a, b| a.node.cmp(&b.node));
    let limits: BTreeMap<String, usize> = classes
        .iter()
        .map(|(c, (total, _))| (c.clone(), o.max_unavailable.of(*total)))
        .collect();
    // Canaries: per class, nodes from racks no canary uses yet, first by name.
    let mut used_racks: BTreeSet<String> = BTreeSet::new();
    let mut wave0 = Vec::new();
    let mut rest: BTreeMap<String, Vec<PlanNode>> = BTreeMap::new();
    for (class, (_, nodes)) in &classes {
        let mut nodes = nodes.clone();
        nodes.sort_by(|a, b| a.node.cmp(&b.node));
        let want = o.canaries_per_class.min(limits[class]).min(nodes.len());
        for _ in 0..want {
            let pick = nodes
                .iter()
                .position(|n| n.rack.as_ref().is_none_or(|r| !used_racks.contains(r)))
                .unwrap_or(0);
            let n = nodes.remove(pick);
            if let Some(r) = &n.rack {
                used_racks.insert(r.clone());
            }
            wave0.push(n);
        }
        rest.insert(class.clone(), spread(nodes));
    }
    let mut waves = Vec::new();
    let eligible: usize = classes.values().map(|(_, n)| n.len()).sum();
    if !wave0.is_empty() {
        waves.push(wave0);
    }
    let mut cursor: BTreeMap<String, usize> = rest.keys().map(|c| (c.clone(), 0)).collect();
    loop {
        let left: usize = rest.iter().map(|(c, v)| v.len() - cursor[c]).sum();
        if left == 0 {
            break;
        }
        let k = waves.len(); // the index of the wave being filled (0 when no canary)
        let target = match o.waves.as_slice() {
            [] => waves.last().map_or(1, |w: &Vec<PlanNode>| w.len() * 2),
            sizes => sizes[(k.saturating_sub(1)).min(sizes.len() - 1)].of(eligible),
        }
        .max(1);
        let mut wave = Vec::new();
        let mut per_class: BTreeMap<&str, usize> = BTreeMap::new();
        'fill: while wave.len() < target {
            let mut added = false;
            for (class, nodes) in &rest {
                let at = cursor.get_mut(class).map_or(0, |c| *c);
                let taken = per_class.get(class.as_str()).copied().unwrap_or(0);
                if at < nodes.len() && taken < limits[class] {
                    wave.push(nodes[at].clone());
                    *per_class.entry(class.as_str()).or_default() += 1;
                    if let Some(c) = cursor.get_mut(class) {
                        *c += 1;
                    }
                    added = true;
                    if wave.len() == target {
                        break 'fill;
                    }
                }
            }
            if !added {
                break;
            }
        }
        if wave.is_empty() {
            break;
        }
        waves.push(wave);
    }
    Ok(Plan {
        change: o.change.clone(),
        executor: o.executor,
        apply: o.apply.clone(),
        rollback: o.rollback.clone(),
        verify: o.verify.clone(),
        gates: o.gates.clone(),
        prometheus: o.prometheus.clone(),
        gate_interval_seconds: o.gate_interval_seconds,
        bake_seconds: o.bake_seconds,
        max_unavailable: o.max_unavailable.to_string(),
        classes: classes
            .iter()
            .map(|(c, (total, _))| ClassLimit {
                class: c.clone(),
                nodes: *total,
                per_wave: limits[c],
            })
            .collect(),
        waves,
        held_out: held,
    })
}
