//! Secure Boot, lockdown, module signature enforcement and the kernel's taint flags.

use super::{LiveInput, read, shown};
use crate::report::Check;

/// The EFI global variable holding the Secure Boot state.
pub const SECURE_BOOT_VAR: &str =
    "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";

/// `live.secure-boot`: from efivars (4 bytes of attributes, then the value byte).
pub fn secure_boot(input: &LiveInput<'_>) -> Check {
    let id = "live.secure-boot";
    let path = input.root.join(SECURE_BOOT_VAR);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(_) if !input.root.join("sys/firmware/efi").exists() => {
            return Check::skip(
                id,
                "not booted through EFI (no sys/firmware/efi): no Secure Boot",
            )
            .with_fix("nothing to do; Secure Boot needs UEFI firmware");
        }
        Err(e) => {
            return Check::skip(id, format!("EFI boot, but {} cannot be read: {e}", path.display()))
                .with_fix("mount efivarfs (mount -t efivarfs efivarfs /sys/firmware/efi/efivars) or run as root");
        }
    };
    match bytes.get(4) {
        Some(1) => {
            let also = if input.has("gpu-host") {
                ": only modules signed by a key the kernel trusts load, so the NVIDIA modules must be signed (check them with linkwise modsig)"
            } else {
                ""
            };
            Check::pass(id, format!("Secure Boot is on{also}"))
        }
        Some(0) => Check::pass(id, "Secure Boot is off"),
        _ => Check::warn(
            id,
            format!(
                "{} holds {} bytes, not attributes plus one value byte",
                path.display(),
                bytes.len()
            ),
            "read it with mokutil --sb-state; the efivar looks damaged",
        ),
    }
}

/// Whether efivars say Secure Boot is on.
pub fn secure_boot_on(input: &LiveInput<'_>) -> bool {
    std::fs::read(input.root.join(SECURE_BOOT_VAR)).is_ok_and(|b| b.get(4) == Some(&1))
}

/// Whether `module.sig_enforce` is on.
pub fn sig_enforced(input: &LiveInput<'_>) -> bool {
    read(input.root, "sys/module/module/parameters/sig_enforce").is_ok_and(|v| v == "Y")
}

/// `live.lockdown`: the bracketed mode in `sys/kernel/security/lockdown`.
pub fn lockdown(input: &LiveInput<'_>) -> Check {
    let id = "live.lockdown";
    let text = match read(input.root, "sys/kernel/security/lockdown") {
        Ok(t) => t,
        Err(why) => {
            return Check::skip(id, format!("no lockdown state: {why} (kernel without the lockdown LSM, or securityfs not mounted)"))
                .with_fix("nothing needed; mount securityfs to see it (mount -t securityfs none /sys/kernel/security)");
        }
    };
    let mode = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix('[').and_then(|w| w.strip_suffix(']')));
    match mode {
        Some("none") => Check::pass(id, "lockdown is off (none)"),
        Some(m @ ("integrity" | "confidentiality")) => Check::pass(
            id,
            format!(
                "lockdown is {m}: unsigned modules cannot load, and tools that poke kernel memory (some profilers) are refused"
            ),
        ),
        _ => Check::warn(
            id,
            format!(
                "sys/kernel/security/lockdown holds {}: no bracketed mode",
                shown(&text)
            ),
            "check the kernel's lockdown LSM; the file should read like \"none [integrity] confidentiality\"",
        ),
    }
}

/// `live.sig-enforce`: `sys/module/module/parameters/sig_enforce`.
pub fn sig_enforce(input: &LiveInput<'_>) -> Check {
    let id = "live.sig-enforce";
    match read(input.root, "sys/module/module/parameters/sig_enforce").as_deref() {
        Ok("Y") => Check::pass(
            id,
            "module signatures are enforced: the NVIDIA modules must be signed by a key the kernel trusts (check them with linkwise modsig)",
        ),
        Ok("N") => Check::pass(
            id,
            "module signatures are not enforced: unsigned modules load and taint the kernel (E)",
        ),
        Ok(other) => Check::warn(
            id,
            format!(
                "sys/module/module/parameters/sig_enforce holds {}, not Y or N",
                shown(other)
            ),
            "check the kernel; the parameter is Y or N",
        ),
        Err(why) => Check::skip(
            id,
            format!("no module signature parameter: {why} (a kernel without CONFIG_MODULE_SIG)"),
        )
        .with_fix(
            "nothing needed unless signatures are wanted: then build with CONFIG_MODULE_SIG=y",
        ),
    }
}

/// The taint flags, bit by bit, as the kernel's documentation lists them.
pub const TAINT_FLAGS: [(char, &str); 20] = [
    ('P', "a proprietary module was loaded"),
    ('F', "a module was force-loaded"),
    ('S', "the kernel runs on hardware out of its specification"),
    ('R', "a module was force-unloaded"),
    ('M', "the processor reported a machine check"),
    (
        'B',
        "a bad page was referenced or some unexpected page flags were seen",
    ),
    ('U', "taint requested by user space"),
    ('D', "the kernel died recently (an oops or a BUG)"),
    ('A', "an ACPI table was overridden"),
    ('W', "the kernel issued a warning"),
    ('C', "a staging driver was loaded"),
    ('I', "a workaround for a platform firmware bug is in use"),
    ('O', "an out-of-tree module was loaded"),
    ('E', "an unsigned module was loaded"),
    ('L', "a soft lockup occurred"),
    ('K', "the kernel was live-patched"),
    ('X', "an auxiliary taint, defined by distributions"),
    (
        'T',
        "the kernel was built with the struct randomization plugin",
    ),
    ('N', "an in-kernel test was run"),
    (
        'J',
        "a userspace fwctl driver was used to change the device's state",
    ),
];

/// Flags that say something went wrong (or a check was bypassed), not just "a vendor
/// driver is loaded".
const TROUBLE: &str = "FRMBDWEL";

/// `live.kernel-taint`: `proc/sys/kernel/tainted` decoded.
pub fn taint(input: &LiveInput<'_>) -> Check {
    let id = "live.kernel-taint";
    let text = match read(input.root, "proc/sys/kernel/tainted") {
        Ok(t) => t,
        Err(why) => {
            return Check::skip(id, format!("no taint state: {why}"))
                .with_fix("run on the node, or capture proc/sys/kernel/tainted");
        }
    };
    let Ok(value) = text.parse::<u64>() else {
        return Check::warn(
            id,
            format!(
                "proc/sys/kernel/tainted holds {}, not a number",
                shown(&text)
            ),
            "read it again on the node (cat /proc/sys/kernel/tainted)",
        );
    };
    if value == 0 {
        return Check::pass(id, "the kernel is not tainted");
    }
    let set: Vec<(char, &str)> = TAINT_FLAGS
        .iter()
        .enumerate()
        .filter(|(bit, _)| value >> bit & 1 == 1)
        .map(|(_, f)| *f)
        .collect();
    let letters: String = set.iter().map(|(c, _)| *c).collect();
    let unknown = value >> TAINT_FLAGS.len();
    let mut message = format!(
        "tainted {value} ({letters}): {}",
        set.iter()
            .map(|(_, what)| *what)
            .collect::<Vec<_>>()
            .join("; ")
    );
    if unknown != 0 {
        message.push_str(&format!(
            "; and bits this linkwise does not know ({:#x})",
            unknown << TAINT_FLAGS.len()
        ));
    }
    let trouble: String = letters.chars().filter(|c| TROUBLE.contains(*c)).collect();
    if trouble.is_empty() {
        Check::pass(id, format!("{message} (expected with the NVIDIA driver)"))
    } else if trouble.contains('E') {
        Check::warn(
            id,
            message,
            "an unsigned module is loaded: sign the NVIDIA modules with a key the kernel trusts (check them with linkwise modsig); with Secure Boot it would not have loaded",
        )
    } else {
        Check::warn(
            id,
            message,
            "read the kernel log (journalctl -k, dmesg) for the event behind the flags; the flags clear only at reboot",
        )
    }
}
