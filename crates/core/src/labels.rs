//! Node labels describing a host's fabric, in Kubernetes label syntax.

use std::collections::BTreeMap;

use crate::{C2cFlavor, LinkKind, Topology};

/// The default label prefix: a subdomain of `feature.node.kubernetes.io`, which Node
/// Feature Discovery accepts without extra configuration.
pub const DEFAULT_PREFIX: &str = "linkwise.feature.node.kubernetes.io";

/// The fabric kind of a host, most capable first.
pub fn fabric_kind(topo: &Topology) -> &'static str {
    let has = |f: &dyn Fn(&LinkKind) -> bool| topo.links.iter().any(|l| l.is_up() && f(&l.kind));
    if has(&|k| matches!(k, LinkKind::NvswitchPort { .. })) {
        "nvswitch"
    } else if has(&|k| {
        matches!(
            k,
            LinkKind::C2c {
                flavor: C2cFlavor::NvlinkFusion,
                ..
            }
        )
    }) {
        "c2c-fusion"
    } else if has(&|k| matches!(k, LinkKind::C2c { .. })) {
        "c2c"
    } else if has(&|k| matches!(k, LinkKind::Nvlink { .. })) {
        "direct"
    } else {
        "pcie-only"
    }
}

/// Makes any text a valid label value: characters outside `[A-Za-z0-9-_.]` become `-`,
/// ends are trimmed to alphanumerics, at most 63 characters.
pub fn label_value(s: &str) -> String {
    let mapped: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut v: String = mapped.chars().take(63).collect();
    while v.chars().last().is_some_and(|c| !c.is_ascii_alphanumeric()) {
        v.pop();
    }
    v.trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// True when `v` is a valid label value (empty allowed).
pub fn is_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// True when `k` is a valid label key: optional DNS-subdomain prefix (at most 253
/// characters) and `/`, then a name of 1..=63 characters with label-value syntax.
pub fn is_label_key(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

/// True when `s` is a DNS subdomain as Kubernetes names objects and label prefixes:
/// 1..=253 characters, dot-separated parts of lower-case letters, digits and `-`,
/// each 1..=63 long and neither starting nor ending with `-`.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part.len() <= 63
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// The labels for the host named `host` (or the first host): architecture, GPU count,
/// product, memory (MiB), driver version, NVLink present, fabric kind, NVLink islands and
/// the largest (on this host), the GPUs of the largest NVLink domain this host is part of
/// (across hosts), NUMA nodes, and the NVLink clique when every GPU agrees on one.
pub fn node_labels(topo: &Topology, host: Option<&str>, prefix: &str) -> BTreeMap<String, String> {
    let host_name = host
        .map(str::to_string)
        .or_else(|| topo.hosts.first().map(|h| h.name.clone()))
        .unwrap_or_default();
    let gpus: Vec<&crate::Gpu> = topo.gpus.iter().filter(|g| g.host == host_name).collect();
    let mut l = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        l.insert(format!("{prefix}/{k}"), label_value(&v));
    };
    if let Some(h) = topo.host(&host_name) {
        if let Some(a) = h.arch {
            put("arch", a.to_string());
        }
        put("numa-nodes", h.numa_nodes.len().to_string());
    }
    put("gpu.count", gpus.len().to_string());
    if let Some(g) = gpus.first() {
        put("gpu.product", g.model.clone());
        if let Some(m) = g.memory_bytes {
            put("gpu.memory-mib", (m >> 20).to_string());
        }
        if let Some(d) = &g.driver_version {
            put("driver.version", d.clone());
        }
    }
    let m = topo.pair_matrix();
    let pos: Vec<usize> = topo
        .gpus
        .iter()
        .enumerate()
        .filter(|(_, g)| g.host == host_name)
        .map(|(i, _)| i)
        .collect();
    let nvlink = pos
        .iter()
        .any(|&i| (0..m.len()).any(|j| m.cell(i, j).nvlink_lanes() > 0));
    put("nvlink", nvlink.to_string());
    put("fabric", fabric_kind(topo).to_string());
    let islands: Vec<usize> = topo
        .islands_of(&m)
        .iter()
        .filter(|is| is.gpus.iter().any(|g| gpus.iter().any(|h| h.id == *g)))
        .map(|is| {
            is.gpus
                .iter()
                .filter(|g| gpus.iter().any(|h| h.id == **g))
                .count()
        })
        .collect();
    put(
        "nvlink.islands",
        islands.iter().filter(|&&n| n > 1).count().to_string(),
    );
    put(
        "nvlink.largest-island",
        islands.iter().max().copied().unwrap_or(0).to_string(),
    );
    let domain = topo
        .domains()
        .into_iter()
        .filter(|d| d.gpus.iter().any(|g| gpus.iter().any(|h| h.id == *g)))
        .map(|d| d.gpus.len())
        .max()
        .unwrap_or(0);
    put("nvlink.domain-gpus", domain.to_string());
    let cliques: Vec<String> = gpus
        .iter()
        .filter_map(|g| g.fabric.as_ref().map(|f| f.clique()))
        .collect();
    if !cliques.is_empty()
        && cliques.len() == gpus.len()
        && cliques.iter().all(|c| *c == cliques[0])
    {
        put("nvlink.clique", cliques[0].clone());
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_sanitised_into_label_syntax() {
        assert_eq!(
            label_value("NVIDIA H100 80GB HBM3"),
            "NVIDIA-H100-80GB-HBM3"
        );
        assert_eq!(label_value("(weird)"), "weird");
        assert_eq!(label_value(&"x".repeat(80)).len(), 63);
        for v in ["NVIDIA H100", "-a-", "", "ü", &"y-".repeat(40)] {
            assert!(
                is_label_value(&label_value(v)),
                "{v:?} -> {:?}",
                label_value(v)
            );
        }
        assert!(!is_label_value("-a"));
        assert!(is_label_key(
            "linkwise.feature.node.kubernetes.io/gpu.count"
        ));
        assert!(!is_label_key("Bad_Prefix/x"));
        assert!(!is_label_key("a/"));
    }
}
