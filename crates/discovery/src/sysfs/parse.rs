//! Parsers for the text of single sysfs and procfs files, and the name tables.
//!
//! Everything here is pure: text in, value out, `None` (or an error string) for text
//! that does not parse. Nothing panics on any input.

use std::collections::BTreeMap;

/// A `0x%x` value (`vendor`, `device`, `class`); the `0x` prefix is optional.
pub(crate) fn hex_u32(s: &str) -> Option<u32> {
    let t = s.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    if t.is_empty() {
        return None;
    }
    u32::from_str_radix(t, 16).ok()
}

/// What a `*_link_speed` file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Speed {
    /// A speed, in MT/s.
    Mts(u32),
    /// The kernel prints `Unknown` (link down, or a speed it cannot decode).
    Unknown,
}

/// Parses `16.0 GT/s PCIe`, `8 GT/s`, `2.5 GT/s`, `16GT/s` or `Unknown` (any case,
/// `Unknown speed` too). `None` for anything else.
pub(crate) fn link_speed(s: &str) -> Option<Speed> {
    let t = s.trim();
    if t.to_ascii_lowercase().starts_with("unknown") {
        return Some(Speed::Unknown);
    }
    let mut words = t.split_whitespace();
    let first = words.next()?;
    let (num, unit_glued) = match first.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&first[..i], Some(&first[i..])),
        None => (first, None),
    };
    let unit = unit_glued.or_else(|| words.next());
    if let Some(u) = unit
        && !u.eq_ignore_ascii_case("GT/s")
    {
        return None;
    }
    let mts = decimal_thousandths(num)?;
    (mts > 0).then_some(Speed::Mts(mts))
}

/// `16.0` → 16000, `2.5` → 2500 (digits past the third decimal are dropped).
fn decimal_thousandths(s: &str) -> Option<u32> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: u32 = int.parse().ok()?;
    let mut thousandths = 0u32;
    for (i, b) in frac.bytes().take(3).enumerate() {
        let scale = [100u32, 10, 1].get(i).copied().unwrap_or(0);
        thousandths += u32::from(b - b'0') * scale;
    }
    whole.checked_mul(1000)?.checked_add(thousandths)
}

/// A `*_link_width` value: lanes.
pub(crate) fn link_width(s: &str) -> Option<u32> {
    let t = s.trim();
    let t = t.strip_prefix('x').unwrap_or(t);
    t.parse().ok()
}

/// `key : value` pairs of the first block of `/proc/cpuinfo`-like text (first
/// occurrence of each key wins; keys and values trimmed).
pub(crate) fn key_values(text: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once(':') {
            let k = k.trim();
            if !k.is_empty() {
                m.entry(k.to_string())
                    .or_insert_with(|| v.trim().to_string());
            }
        }
    }
    m
}

/// The kB figure of the first line containing `MemTotal:` (`/proc/meminfo` and
/// `node*/meminfo` both), in bytes.
pub(crate) fn mem_total_bytes(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.contains("MemTotal:"))?;
    let (_, rest) = line.split_once("MemTotal:")?;
    let mut words = rest.split_whitespace();
    let n: u64 = words.next()?.parse().ok()?;
    let mult = match words.next().map(str::to_ascii_lowercase).as_deref() {
        Some("kb") | None => 1024,
        Some("mb") => 1024 * 1024,
        Some("b") => 1,
        Some(_) => return None,
    };
    n.checked_mul(mult)
}

/// The driver version in `/proc/driver/nvidia/version` (one owner: core's conventions).
pub(crate) fn nvidia_driver_version(text: &str) -> Option<String> {
    linkwise_core::conventions::driver_version(text)
}

/// What `/proc/driver/nvidia/gpus/<BDF>/information` says about one GPU.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GpuInformation {
    /// `Model:`.
    pub(crate) model: Option<String>,
    /// `GPU UUID:` when it looks like one (`GPU-...`).
    pub(crate) uuid: Option<String>,
    /// `Video BIOS:` unless the driver prints `??.??.??.??.??`.
    pub(crate) vbios: Option<String>,
    /// `GPU Firmware:` (GSP firmware, recent drivers).
    pub(crate) firmware: Option<String>,
    /// `Device Minor:`.
    pub(crate) minor: Option<u32>,
    /// `Bus Location:`.
    pub(crate) bus_location: Option<String>,
}

/// Parses an `information` file (`Key: \t value` lines).
pub(crate) fn gpu_information(text: &str) -> GpuInformation {
    let kv = key_values(text);
    let get = |k: &str| {
        kv.get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty() && !v.contains('?') && !v.eq_ignore_ascii_case("N/A"))
    };
    GpuInformation {
        model: get("Model"),
        uuid: get("GPU UUID").filter(|u| u.starts_with("GPU-") && u.len() > 4),
        vbios: get("Video BIOS"),
        firmware: get("GPU Firmware"),
        minor: get("Device Minor").and_then(|m| m.parse().ok()),
        bus_location: get("Bus Location"),
    }
}

/// Product names of well-known NVIDIA PCI device ids (GPUs and NVSwitches).
const NVIDIA_MODELS: &[(u32, &str)] = &[
    (0x1af1, "NVIDIA A100 NVSwitch"),
    (0x1db1, "Tesla V100-SXM2-16GB"),
    (0x1db5, "Tesla V100-SXM2-32GB"),
    (0x20b0, "NVIDIA A100-SXM4-40GB"),
    (0x20b2, "NVIDIA A100-SXM4-80GB"),
    (0x20b5, "NVIDIA A100 80GB PCIe"),
    (0x22a3, "NVIDIA H100 NVSwitch"),
    (0x2330, "NVIDIA H100 80GB HBM3"),
    (0x2331, "NVIDIA H100 PCIe"),
    (0x2335, "NVIDIA H200"),
    (0x2342, "NVIDIA GH200 480GB"),
    (0x2684, "NVIDIA GeForce RTX 4090"),
    (0x26b9, "NVIDIA L40S"),
    (0x2901, "NVIDIA B200"),
];

/// The product name of an NVIDIA PCI device id; `NVIDIA device 0x%04x` when unknown.
pub(crate) fn nvidia_model(device: u32) -> String {
    NVIDIA_MODELS
        .iter()
        .find(|(id, _)| *id == device)
        .map_or_else(
            || format!("NVIDIA device 0x{device:04x}"),
            |(_, n)| (*n).to_string(),
        )
}

/// Named Arm `CPU part` codes of one implementer.
type ArmParts = &'static [(u32, &'static str)];

/// Arm `CPU implementer` codes and the parts named here.
const ARM_IMPLEMENTERS: &[(u32, &str, ArmParts)] = &[
    (
        0x41,
        "ARM",
        &[
            (0xd08, "Cortex-A72"),
            (0xd0c, "Neoverse-N1"),
            (0xd40, "Neoverse-V1"),
            (0xd49, "Neoverse-N2"),
            (0xd4f, "Neoverse-V2"),
            (0xd84, "Neoverse-V3"),
            (0xd8e, "Neoverse-N3"),
        ],
    ),
    (0x48, "HiSilicon", &[(0xd01, "Kunpeng-920")]),
    (0x4e, "NVIDIA", &[(0x004, "Carmel")]),
    (0xc0, "Ampere", &[(0xac3, "Ampere-1"), (0xac4, "Ampere-1a")]),
];

/// The CPU model of an Arm core from its `CPU implementer` and `CPU part`:
/// `ARM Neoverse-V2`, `ARM part 0xd99`, or `ARM implementer 0x61 part 0x001`.
pub(crate) fn arm_cpu_model(implementer: u32, part: u32) -> String {
    match ARM_IMPLEMENTERS.iter().find(|(i, _, _)| *i == implementer) {
        Some((_, vendor, parts)) => match parts.iter().find(|(p, _)| *p == part) {
            Some((_, name)) => format!("{vendor} {name}"),
            None => format!("{vendor} part 0x{part:03x}"),
        },
        None => format!("ARM implementer 0x{implementer:02x} part 0x{part:03x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_speeds_parse_leniently() {
        assert_eq!(link_speed("16.0 GT/s PCIe\n"), Some(Speed::Mts(16_000)));
        assert_eq!(link_speed("8 GT/s"), Some(Speed::Mts(8_000)));
        assert_eq!(link_speed("2.5 GT/s"), Some(Speed::Mts(2_500)));
        assert_eq!(link_speed("32GT/s"), Some(Speed::Mts(32_000)));
        assert_eq!(link_speed("Unknown"), Some(Speed::Unknown));
        assert_eq!(link_speed("Unknown speed"), Some(Speed::Unknown));
        for bad in [
            "",
            "fast",
            "16.0 Gb/s",
            "-8 GT/s",
            "1.2.3 GT/s",
            "99999999999 GT/s",
            "0 GT/s",
            ". GT/s",
        ] {
            assert_eq!(link_speed(bad), None, "{bad:?}");
        }
        assert_eq!(link_width("16\n"), Some(16));
        assert_eq!(link_width("x8"), Some(8));
        assert_eq!(link_width("wide"), None);
    }

    #[test]
    fn proc_nvidia_files_parse() {
        let v = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\nGCC version:  gcc version 12.3.0\n";
        assert_eq!(nvidia_driver_version(v).as_deref(), Some("550.54.15"));
        let open = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.86.15  Release Build  (dvs-builder@U16-I3-B03-4-3)  Thu Jan 23 22:50:36 UTC 2025\n";
        assert_eq!(nvidia_driver_version(open).as_deref(), Some("570.86.15"));
        assert_eq!(nvidia_driver_version("garbage"), None);
        let info = "Model: \t\t NVIDIA H100 80GB HBM3\nIRQ:   \t\t 0\nGPU UUID: \t GPU-0a1b\nVideo BIOS: \t ??.??.??.??.??\nBus Location: \t 0000:18:00.0\nDevice Minor: \t 3\n";
        let i = gpu_information(info);
        assert_eq!(i.model.as_deref(), Some("NVIDIA H100 80GB HBM3"));
        assert_eq!(i.uuid.as_deref(), Some("GPU-0a1b"));
        assert_eq!(i.vbios, None);
        assert_eq!(i.minor, Some(3));
        assert_eq!(gpu_information("\u{0}\u{1}:::"), GpuInformation::default());
    }

    #[test]
    fn tables_and_numbers() {
        assert_eq!(hex_u32("0x10de\n"), Some(0x10de));
        assert_eq!(hex_u32("0x"), None);
        assert_eq!(nvidia_model(0x2330), "NVIDIA H100 80GB HBM3");
        assert_eq!(nvidia_model(0x1234), "NVIDIA device 0x1234");
        assert_eq!(arm_cpu_model(0x41, 0xd4f), "ARM Neoverse-V2");
        assert_eq!(arm_cpu_model(0x41, 0xd99), "ARM part 0xd99");
        assert_eq!(arm_cpu_model(0x61, 0x1), "ARM implementer 0x61 part 0x001");
        assert_eq!(
            mem_total_bytes("Node 0 MemTotal:       1056508 kB\n"),
            Some(1_056_508 * 1024)
        );
        assert_eq!(mem_total_bytes("MemTotal: lots"), None);
    }
}
