//! PCI functions: which ones matter, where they sit in the PCIe tree, and the path
//! class between two of them.

use std::ffi::OsString;

use linkwise_core::{PathClass, PciAddress};

use super::Ctx;
use super::parse;

/// `ROOT/sys/bus/pci/devices`.
pub(super) const PCI_DEVICES: &str = "sys/bus/pci/devices";

/// NVIDIA's PCI vendor id.
const VENDOR_NVIDIA: u32 = 0x10de;
/// Mellanox (NVIDIA networking) PCI vendor id.
const VENDOR_MELLANOX: u32 = 0x15b3;

/// What a PCI function is to linkwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// NVIDIA, class 0x0302 (3D controller) or 0x0300 (VGA).
    Gpu,
    /// NVIDIA, class 0x0680 (bridge, other).
    NvSwitch,
    /// Mellanox, class 0x0207 (InfiniBand) or 0x0200 (Ethernet).
    Nic,
}

/// Where a function sits: its host bridge (`pci0000:15`) and the PCI bridges
/// between that host bridge and the function, top down.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Placement {
    /// The `pciDDDD:BB` directory above the function, when the path has one.
    pub(super) host_bridge: Option<String>,
    /// Bridges (root port, switch ports) from the host bridge down, the function
    /// itself excluded.
    pub(super) bridges: Vec<String>,
}

/// A PCI function linkwise cares about.
#[derive(Debug, Clone)]
pub(super) struct Function {
    /// The directory name under `sys/bus/pci/devices` (`0000:18:00.0`).
    pub(super) bdf: String,
    /// The parsed address.
    pub(super) addr: PciAddress,
    /// `sys/bus/pci/devices/<bdf>`, relative to the root.
    pub(super) rel: String,
    /// PCI device id.
    pub(super) device: u32,
    /// What it is.
    pub(super) kind: Kind,
    /// Where it sits.
    pub(super) place: Placement,
}

impl Function {
    /// `rel/<attr>`.
    pub(super) fn attr(&self, attr: &str) -> String {
        format!("{}/{attr}", self.rel)
    }
}

/// A PCI function linkwise does not use, kept to explain an empty result.
#[derive(Debug, Clone)]
pub(super) struct Other {
    /// The directory name under `sys/bus/pci/devices`.
    pub(super) bdf: String,
    /// The parsed address (for ordering).
    addr: PciAddress,
    /// `sys/bus/pci/devices/<bdf>`, relative to the root.
    rel: String,
    /// PCI vendor id.
    vendor: u32,
    /// Where it sits.
    place: Placement,
}

/// Lists `sys/bus/pci/devices` and keeps NVIDIA GPUs and NVSwitches and Mellanox
/// NICs, in PCI address order; the other functions come back apart, also in address
/// order. An unreadable directory gives none, with a gap.
pub(super) fn scan(cx: &mut Ctx) -> (Vec<Function>, Vec<Other>) {
    let names = match cx.root.list(PCI_DEVICES) {
        Ok(n) => n,
        Err(e) => {
            let why = format!(
                "{} cannot be listed ({e}): no PCI device, so no GPU, is visible",
                cx.root.show(PCI_DEVICES)
            );
            cx.gap("pci devices", why);
            return (Vec::new(), Vec::new());
        }
    };
    let mut out = Vec::new();
    let mut others = Vec::new();
    for bdf in names {
        let Ok(addr) = bdf.parse::<PciAddress>() else {
            tracing::debug!(entry = %bdf, "not a PCI address; skipped");
            continue;
        };
        let rel = format!("{PCI_DEVICES}/{bdf}");
        let comps = match cx.root.resolve(&rel) {
            Ok(c) => c,
            Err(e) => {
                let why = format!("{} cannot be resolved: {e}", cx.root.show(&rel));
                cx.gap(format!("pci device {bdf}"), why);
                continue;
            }
        };
        if !cx.root.exists(&rel) {
            let why = format!(
                "{} is a dangling link (to {}); device skipped",
                cx.root.show(&rel),
                cx.root.join(&comps).display()
            );
            cx.gap(format!("pci device {bdf}"), why);
            continue;
        }
        let what = format!("pci device {bdf}");
        let Some(vendor) = cx.parsed(
            &format!("{rel}/vendor"),
            &what,
            "a 0x vendor id",
            parse::hex_u32,
        ) else {
            continue;
        };
        let other = |rel: String, bdf: String| Other {
            place: placement(&comps, &bdf),
            bdf,
            addr,
            rel,
            vendor,
        };
        if vendor != VENDOR_NVIDIA && vendor != VENDOR_MELLANOX {
            others.push(other(rel, bdf));
            continue;
        }
        let Some(class) = cx.parsed(
            &format!("{rel}/class"),
            &what,
            "a 0x class code",
            parse::hex_u32,
        ) else {
            continue;
        };
        let kind = match (vendor, class >> 8) {
            (VENDOR_NVIDIA, 0x0302 | 0x0300) => Kind::Gpu,
            (VENDOR_NVIDIA, 0x0680) => Kind::NvSwitch,
            (VENDOR_MELLANOX, 0x0207 | 0x0200) => Kind::Nic,
            _ => {
                others.push(other(rel, bdf));
                continue;
            }
        };
        let device = cx
            .parsed(
                &format!("{rel}/device"),
                &what,
                "a 0x device id",
                parse::hex_u32,
            )
            .unwrap_or(0);
        out.push(Function {
            place: placement(&comps, &bdf),
            bdf,
            addr,
            rel,
            device,
            kind,
        });
    }
    out.sort_by_key(|f| f.addr);
    others.sort_by_key(|f| f.addr);
    (out, others)
}

/// At most this many functions are described in the no-GPU gap.
const OTHERS_SHOWN: usize = 32;

/// The `why` of the gap recorded when no GPU was found (`total` PCI functions in all,
/// NICs and NVSwitches included): every other PCI function (up to [`OTHERS_SHOWN`]) with its ids, class, the bridges above it, and whether its
/// NUMA node and IOMMU group are known. This is what a host without NVIDIA devices (a
/// RISC-V board, a virtual machine, a CPU node) shows instead of GPUs.
pub(super) fn describe_others(cx: &Ctx, others: &[Other], total: usize) -> String {
    let hex = |attr: &str, f: &Other| {
        cx.root
            .read_trimmed(&format!("{}/{attr}", f.rel))
            .and_then(|s| parse::hex_u32(&s))
    };
    let mut parts = Vec::new();
    for f in others.iter().take(OTHERS_SHOWN) {
        let device = hex("device", f).map_or("????".into(), |d| format!("{d:04x}"));
        let class = hex("class", f).map_or("unknown".into(), |c| format!("0x{c:06x}"));
        let mut d = format!("{} [{:04x}:{device}] class {class}", f.bdf, f.vendor);
        match f.place.bridges.last() {
            Some(port) => d.push_str(&format!(" behind {port}")),
            None if f.place.host_bridge.is_some() => d.push_str(" on the host bridge"),
            None => {}
        }
        match cx
            .root
            .read_trimmed(&format!("{}/numa_node", f.rel))
            .as_deref()
        {
            Some("-1") => d.push_str(", numa node unknown (-1)"),
            Some(n) => d.push_str(&format!(", numa node {n}")),
            None => d.push_str(", no numa_node file"),
        }
        match cx.root.link_name(&format!("{}/iommu_group", f.rel)) {
            Ok(Some(g)) => d.push_str(&format!(", iommu group {g}")),
            _ => d.push_str(", no iommu group"),
        }
        parts.push(d);
    }
    if others.len() > OTHERS_SHOWN {
        parts.push(format!("and {} more", others.len() - OTHERS_SHOWN));
    }
    format!(
        "no NVIDIA GPU (vendor 0x10de, class 0x0300/0x0302) among the {total} PCI functions in {}{}{}",
        cx.root.show(PCI_DEVICES),
        if parts.is_empty() { "" } else { ": " },
        parts.join("; ")
    )
}

/// True for a host bridge directory: `pci` then `DDDD:BB` in hex.
fn is_host_bridge(name: &str) -> bool {
    name.strip_prefix("pci")
        .and_then(|r| r.split_once(':'))
        .is_some_and(|(d, b)| {
            !d.is_empty()
                && !b.is_empty()
                && d.bytes().all(|c| c.is_ascii_hexdigit())
                && b.bytes().all(|c| c.is_ascii_hexdigit())
        })
}

/// The placement of the function `bdf` whose resolved path is `comps`
/// (`sys/devices/pci0000:15/0000:15:01.0/0000:16:00.0/0000:17:00.0/0000:18:00.0`).
pub(super) fn placement(comps: &[OsString], bdf: &str) -> Placement {
    let names: Vec<String> = comps
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let Some(hb) = names.iter().position(|n| is_host_bridge(n)) else {
        return Placement::default();
    };
    let bridges = names
        .iter()
        .skip(hb + 1)
        .filter(|n| n.as_str() != bdf && n.parse::<PciAddress>().is_ok())
        .cloned()
        .collect();
    Placement {
        host_bridge: names.get(hb).cloned(),
        bridges,
    }
}

/// The `nvidia-smi topo -m` class of the PCIe path between two functions:
///
/// - different host bridges (or one unknown): `NODE` when the NUMA nodes are equal
///   (both unknown counts as equal), else `SYS`;
/// - same host bridge, no bridge in common below it: `PHB`;
/// - else, with `ka`/`kb` the bridges strictly between the deepest common bridge and
///   each function: `PIX` when both are at most 1 (one PCIe switch), else `PXB`.
pub(super) fn path_class(
    a: &Placement,
    numa_a: Option<u32>,
    b: &Placement,
    numa_b: Option<u32>,
) -> PathClass {
    match (&a.host_bridge, &b.host_bridge) {
        (Some(x), Some(y)) if x == y => {
            let common = a
                .bridges
                .iter()
                .zip(&b.bridges)
                .take_while(|(p, q)| p == q)
                .count();
            if common == 0 {
                return PathClass::Phb;
            }
            let ka = a.bridges.len().saturating_sub(common);
            let kb = b.bridges.len().saturating_sub(common);
            if ka <= 1 && kb <= 1 {
                PathClass::Pix
            } else {
                PathClass::Pxb
            }
        }
        _ if numa_a == numa_b => PathClass::Node,
        _ => PathClass::Sys,
    }
}

/// `numa_node` of a function, quietly (NICs: used for path classes only).
pub(super) fn quiet_numa(cx: &Ctx, f: &Function) -> Option<u32> {
    cx.root
        .read_trimmed(&f.attr("numa_node"))
        .and_then(|s| s.parse::<u32>().ok())
}

/// The RDMA device (`infiniband/mlx5_0`) or network interface (`net/ibp26s0`) name
/// of a NIC function.
pub(super) fn nic_name(cx: &Ctx, f: &Function) -> Option<String> {
    ["infiniband", "net"].iter().find_map(|d| {
        cx.root
            .list(&f.attr(d))
            .ok()
            .and_then(|n| n.into_iter().next())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(path: &str) -> Placement {
        let comps: Vec<OsString> = path.split('/').map(OsString::from).collect();
        let bdf = path.rsplit('/').next().unwrap();
        placement(&comps, bdf)
    }

    #[test]
    fn classes_follow_the_bridge_chain() {
        let g0 =
            place("sys/devices/pci0000:15/0000:15:01.0/0000:16:00.0/0000:17:00.0/0000:18:00.0");
        let g1 =
            place("sys/devices/pci0000:15/0000:15:01.0/0000:16:00.0/0000:17:01.0/0000:19:00.0");
        let g2 = place("sys/devices/pci0000:15/0000:15:02.0/0000:20:00.0");
        let deep = place(
            "sys/devices/pci0000:15/0000:15:01.0/0000:16:00.0/0000:17:02.0/0000:1a:00.0/0000:1b:00.0/0000:1c:00.0",
        );
        let other = place("sys/devices/platform/soc/pcie/pci0001:00/0001:00:00.0/0001:01:00.0");
        assert_eq!(g0.host_bridge.as_deref(), Some("pci0000:15"));
        assert_eq!(g0.bridges.len(), 3);
        assert_eq!(other.host_bridge.as_deref(), Some("pci0001:00"));
        assert_eq!(path_class(&g0, Some(0), &g1, Some(0)), PathClass::Pix);
        assert_eq!(path_class(&g0, Some(0), &g2, Some(0)), PathClass::Phb);
        assert_eq!(path_class(&g0, Some(0), &deep, Some(0)), PathClass::Pxb);
        assert_eq!(path_class(&g0, Some(0), &other, Some(0)), PathClass::Node);
        assert_eq!(path_class(&g0, None, &other, None), PathClass::Node);
        assert_eq!(path_class(&g0, Some(0), &other, None), PathClass::Sys);
        assert_eq!(path_class(&g0, Some(0), &other, Some(1)), PathClass::Sys);
        assert_eq!(
            path_class(&Placement::default(), Some(0), &g0, Some(0)),
            PathClass::Node
        );
        assert!(
            !is_host_bridge("pci_bus") && !is_host_bridge("pci0000") && !is_host_bridge("pci:00")
        );
    }
}
