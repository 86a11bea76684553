//! A digest of a fabric's shape: the same for every node of one hardware class, whatever
//! its serial numbers, bus numbers or the momentary state of its links.

use std::collections::BTreeMap;

use linkwise_core::{Endpoint, Topology};

use crate::report::sha256_hex;

/// `sha256:HEX` over a canonical description: per host its architecture; per GPU its
/// host position, index, model and NUMA node; per switch its position; per link its two
/// ends (by those positions) and its kind with lanes and generation. UUIDs, PCI
/// addresses, link state, health, versions and host names are left out.
pub fn fingerprint(topo: &Topology) -> String {
    let host_pos: BTreeMap<&str, usize> = topo
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.name.as_str(), i))
        .collect();
    let host_of = |name: &str| host_pos.get(name).copied().unwrap_or(usize::MAX);
    let mut lines = Vec::new();
    for (i, h) in topo.hosts.iter().enumerate() {
        let arch = h.arch.map(|a| format!("{a:?}")).unwrap_or_default();
        lines.push(format!("host {i} {arch}"));
    }
    for g in &topo.gpus {
        lines.push(format!(
            "gpu {}:{} {} numa={:?}",
            host_of(&g.host),
            g.index,
            g.model,
            g.numa_node
        ));
    }
    let end = |e: &Endpoint| -> String {
        match e {
            Endpoint::Gpu(id) => topo.gpu(id).map_or_else(
                || "gpu ?".to_string(),
                |g| format!("gpu {}:{}", host_of(&g.host), g.index),
            ),
            Endpoint::Switch(id) => format!(
                "switch {}",
                topo.switches
                    .iter()
                    .position(|s| &s.id == id)
                    .unwrap_or(usize::MAX)
            ),
            Endpoint::Nic(id) => format!(
                "nic {}",
                topo.nics
                    .iter()
                    .position(|n| &n.id == id)
                    .unwrap_or(usize::MAX)
            ),
            Endpoint::Cpu { host, numa } => format!("cpu {}:{numa:?}", host_of(host)),
            #[allow(unreachable_patterns)]
            _ => "other".to_string(),
        }
    };
    for l in &topo.links {
        let (a, b) = (end(&l.a), end(&l.b));
        let (a, b) = if a <= b { (a, b) } else { (b, a) };
        let kind = serde_json::to_string(&l.kind).unwrap_or_default();
        lines.push(format!("link {a} -- {b} {kind}"));
    }
    lines.push(format!("switches {}", topo.switches.len()));
    lines.sort();
    format!("sha256:{}", sha256_hex(lines.join("\n").as_bytes()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use linkwise_core::profiles;

    use super::*;

    #[test]
    fn serial_numbers_and_link_state_do_not_change_it_and_the_shape_does() {
        let base = profiles::get("dgx-h100").unwrap();
        let mut renamed = base.clone();
        for (i, g) in renamed.gpus.iter_mut().enumerate() {
            g.uuid = Some(format!("GPU-{i:08}-other"));
            g.vbios_version = Some("96.00.99.00.01".into());
        }
        assert_eq!(fingerprint(&base), fingerprint(&renamed));
        // A link that went down is the same hardware.
        let mut down = base.clone();
        down.links[0].state = linkwise_core::LinkState::Down;
        assert_eq!(fingerprint(&base), fingerprint(&down));
        let mut fewer = base.clone();
        fewer.links.pop();
        assert_ne!(
            fingerprint(&base),
            fingerprint(&fewer),
            "a missing link is another shape"
        );
        assert_ne!(
            fingerprint(&base),
            fingerprint(&profiles::get("dgx1-v100").unwrap())
        );
        assert!(fingerprint(&base).starts_with("sha256:"));
    }
}
