//! The NVIDIA modules' signatures (gpu-host), read with linkwise-modsig and checked
//! against the keys built into the running kernel's image when it is readable.

use std::path::{Path, PathBuf};

use linkwise_modsig::{Verdict, decompress, inspect, kernel_image_certs, verify};

use super::{LiveInput, read};
use crate::files::find_modules;
use crate::report::Check;

/// The NVIDIA kernel modules, by their module names.
const NVIDIA_MODULES: [&str; 5] = [
    "nvidia",
    "nvidia-uvm",
    "nvidia-modeset",
    "nvidia-drm",
    "nvidia-peermem",
];

/// The most a module or kernel may decompress to.
const LIMIT: u64 = 512 << 20;

/// What one module file says.
fn judge(
    path: &Path,
    certs: Option<&[linkwise_modsig::Certificate]>,
) -> Result<String, (bool, String)> {
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let raw = linkwise_fsio::read_capped_at(path, LIMIT).map_err(|e| (false, e.to_string()))?;
    let bytes = decompress(&raw, LIMIT).map_err(|e| (false, format!("{name}: {e}")))?;
    let sig = match inspect(&bytes) {
        Ok(Some(sig)) => sig,
        Ok(None) => return Err((true, format!("{name} is not signed"))),
        Err(e) => return Err((true, format!("{name}: {e}"))),
    };
    let who = format!(
        "{name} signed by {} (key {}, {})",
        sig.signer.signer.as_deref().unwrap_or("?"),
        sig.signer.key_id,
        sig.signer.hash
    );
    match certs.map(|c| verify(&sig, c)) {
        None => Ok(format!(
            "{who}, not verified (no kernel image to read the keys from)"
        )),
        Some(Verdict::Verified { .. }) => {
            Ok(format!("{who}, verified with the kernel's built-in key"))
        }
        Some(Verdict::NoCertificate(_)) => Ok(format!(
            "{who}: not a key built into the kernel, so it must be enrolled (MOK, mokutil --import) for Secure Boot"
        )),
        Some(Verdict::Failed(why)) => Err((true, format!("{who}: {why}"))),
    }
}

/// `live.nvidia-module-signature`: the NVIDIA modules installed for the running kernel are
/// signed (and, with the kernel image readable, verified against its built-in keys).
pub fn nvidia_module_signature(input: &LiveInput<'_>, enforced: bool) -> Check {
    let id = "live.nvidia-module-signature";
    if !input.has("gpu-host") {
        return Check::skip(id, "only a gpu-host loads the NVIDIA modules")
            .with_fix("nothing to do");
    }
    let Ok(release) = read(input.root, "proc/sys/kernel/osrelease") else {
        return Check::skip(
            id,
            "the kernel release is unknown (no proc/sys/kernel/osrelease)",
        )
        .with_fix("run on the node, or check the files with linkwise modsig");
    };
    let dir = input.root.join("lib/modules").join(&release);
    let found = find_modules(&dir, &NVIDIA_MODULES);
    if found.is_empty() {
        return Check::skip(id, format!("no NVIDIA module under {}", dir.display()))
            .with_fix("install the driver's modules for this kernel; then check them with linkwise modsig")
            .with_roles(["gpu-host"]);
    }
    let image: PathBuf = input.root.join("boot").join(format!("vmlinuz-{release}"));
    let certs = linkwise_fsio::read_capped_at(&image, LIMIT)
        .ok()
        .and_then(|b| kernel_image_certs(&b).ok());
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for path in &found {
        match judge(path, certs.as_deref()) {
            Ok(line) => good.push(line),
            Err((_, line)) => bad.push(line),
        }
    }
    if bad.is_empty() {
        return Check::pass(id, good.join("; ")).with_roles(["gpu-host"]);
    }
    let message = bad.into_iter().chain(good).collect::<Vec<_>>().join("; ");
    let fix = "sign the modules with a key the kernel trusts: scripts/sign-file sha256 KEY CERT MODULE (DKMS does it with its MOK key), and enroll the certificate (mokutil --import) when it is not built in";
    if enforced {
        Check::fail(
            id,
            format!("{message}: with signatures enforced these will not load"),
            fix,
        )
        .with_roles(["gpu-host"])
    } else {
        Check::warn(
            id,
            format!("{message}: they load, but taint the kernel (E)"),
            fix,
        )
        .with_roles(["gpu-host"])
    }
}
