//! The host: name, kernel, CPU, board, NUMA nodes, CPU count, memory.

use linkwise_core::{Arch, CpuSet, Host, NumaNode};

use super::Ctx;
use super::parse::{self, key_values};
use super::root::Lookup;

/// DMI placeholders that name no product.
const DMI_PLACEHOLDERS: &[&str] = &[
    "To Be Filled By O.E.M.",
    "Default string",
    "System Product Name",
    "Not Specified",
];

/// Reads everything about the host; every unknown becomes a gap.
pub(super) fn discover(cx: &mut Ctx) -> Host {
    let mut h = Host::named(hostname(cx));
    h.kernel = cx.text("proc/sys/kernel/osrelease", "host kernel");
    let (arch, cpu_model) = cpu(cx);
    h.arch = arch;
    h.cpu_model = cpu_model;
    h.board_model = board_model(cx);
    h.numa_nodes = numa_nodes(cx);
    h.cpus = cx
        .parsed(
            "sys/devices/system/cpu/online",
            "host cpus",
            "a CPU list",
            |s| s.parse::<CpuSet>().ok(),
        )
        .and_then(|set| u32::try_from(set.len()).ok());
    h.memory_bytes = cx.parsed(
        "proc/meminfo",
        "host memory",
        "a MemTotal line",
        parse::mem_total_bytes,
    );
    h
}

fn hostname(cx: &mut Ctx) -> String {
    if let Some(n) = cx.root.read_trimmed("proc/sys/kernel/hostname") {
        return n;
    }
    let from_etc = cx.root.read_trimmed("etc/hostname").and_then(|t| {
        t.lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
    });
    if let Some(n) = from_etc {
        return n;
    }
    let why = format!(
        "neither {} nor {} holds a name; using localhost",
        cx.root.show("proc/sys/kernel/hostname"),
        cx.root.show("etc/hostname")
    );
    cx.gap("host name", why);
    "localhost".to_string()
}

fn arch_from_uname(s: &str) -> Option<Arch> {
    match s.trim() {
        "x86_64" | "amd64" => Some(Arch::X86_64),
        "aarch64" | "arm64" => Some(Arch::Aarch64),
        "riscv64" => Some(Arch::Riscv64),
        _ => None,
    }
}

/// Architecture and CPU model from `/proc/cpuinfo` (x86 `vendor_id` / `model name` /
/// `flags`; Arm `CPU implementer` / `CPU part`; RISC-V `isa` / `uarch`), the
/// architecture confirmed by `/proc/sys/kernel/arch` where the kernel has it.
fn cpu(cx: &mut Ctx) -> (Option<Arch>, Option<String>) {
    let uname = cx
        .root
        .read_trimmed("proc/sys/kernel/arch")
        .and_then(|s| arch_from_uname(&s));
    let text = match cx.root.read("proc/cpuinfo") {
        Lookup::Text(t) => t,
        Lookup::Missing => {
            let why = format!("{} is missing", cx.root.show("proc/cpuinfo"));
            cx.gap("host cpu model", why.clone());
            if uname.is_none() {
                cx.gap("host architecture", why);
            }
            return (uname, None);
        }
        Lookup::Unreadable(e) => {
            let why = format!("{} cannot be read: {e}", cx.root.show("proc/cpuinfo"));
            cx.gap("host cpu model", why.clone());
            if uname.is_none() {
                cx.gap("host architecture", why);
            }
            return (uname, None);
        }
    };
    let kv = key_values(&text);
    let get = |k: &str| kv.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let (arch, model) = if let Some(imp) = get("CPU implementer") {
        let model = match (
            parse::hex_u32(imp),
            get("CPU part").and_then(parse::hex_u32),
        ) {
            (Some(i), Some(p)) => Some(parse::arm_cpu_model(i, p)),
            _ => None,
        };
        let v8 = get("CPU architecture")
            .and_then(|a| a.parse::<u32>().ok())
            .is_none_or(|a| a >= 8);
        (v8.then_some(Arch::Aarch64), model)
    } else if let Some(isa) = get("isa").or_else(|| get("hart isa")) {
        let arch = isa.starts_with("rv64").then_some(Arch::Riscv64);
        (arch, Some(get("uarch").unwrap_or(isa).to_string()))
    } else if get("vendor_id").is_some() || get("model name").is_some() || get("flags").is_some() {
        let long_mode = get("flags").is_none_or(|f| f.split_whitespace().any(|w| w == "lm"));
        (long_mode.then_some(Arch::X86_64), None)
    } else {
        (None, None)
    };
    let model = get("model name").map(str::to_string).or(model);
    let arch = uname.or(arch);
    let path = cx.root.show("proc/cpuinfo");
    if arch.is_none() {
        cx.gap(
            "host architecture",
            format!("{path} shows no 64-bit x86 (vendor_id, lm), Arm (CPU implementer) or RISC-V (isa rv64) CPU"),
        );
    }
    if model.is_none() {
        cx.gap(
            "host cpu model",
            format!("{path} has no model name, CPU implementer / CPU part, uarch or isa line"),
        );
    }
    (arch, model)
}

/// Device-tree `model` (NUL-terminated), else DMI `product_name`.
fn board_model(cx: &mut Ctx) -> Option<String> {
    const FILES: [&str; 3] = [
        "proc/device-tree/model",
        "sys/firmware/devicetree/base/model",
        "sys/class/dmi/id/product_name",
    ];
    for rel in FILES {
        if let Lookup::Text(t) = cx.root.read(rel) {
            let m = t.trim_matches(|c: char| c == '\0' || c.is_whitespace());
            let m = m.split('\0').next().unwrap_or(m).trim();
            if !m.is_empty() && !DMI_PLACEHOLDERS.iter().any(|p| p.eq_ignore_ascii_case(m)) {
                return Some(m.to_string());
            }
        }
    }
    let shown: Vec<String> = FILES.iter().map(|f| cx.root.show(f)).collect();
    cx.gap(
        "host board model",
        format!("none of {} names a board", shown.join(", ")),
    );
    None
}

/// `sys/devices/system/node/node<N>/{cpulist,meminfo}`.
fn numa_nodes(cx: &mut Ctx) -> Vec<NumaNode> {
    const DIR: &str = "sys/devices/system/node";
    let names = match cx.root.list(DIR) {
        Ok(n) => n,
        Err(e) => {
            let why = if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "{} is missing: a kernel without NUMA support, or firmware that describes none",
                    cx.root.show(DIR)
                )
            } else {
                format!("{} cannot be listed: {e}", cx.root.show(DIR))
            };
            cx.gap("host numa nodes", why);
            return Vec::new();
        }
    };
    let mut nodes = Vec::new();
    for name in names {
        let Some(id) = name
            .strip_prefix("node")
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let what = format!("host numa node {id}");
        let cpus = cx
            .parsed(
                &format!("{DIR}/{name}/cpulist"),
                &format!("{what} cpus"),
                "a CPU list",
                |s| s.parse::<CpuSet>().ok(),
            )
            .unwrap_or_default();
        let memory_bytes = cx.parsed(
            &format!("{DIR}/{name}/meminfo"),
            &format!("{what} memory"),
            "a MemTotal line",
            parse::mem_total_bytes,
        );
        nodes.push(NumaNode {
            id,
            cpus,
            memory_bytes,
        });
    }
    if nodes.is_empty() {
        let why = format!("{} lists no node<N> directory", cx.root.show(DIR));
        cx.gap("host numa nodes", why);
    }
    nodes
}
