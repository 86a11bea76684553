//! `linkwise modsig`: kernel module signatures, read and verified. The parsing and the
//! cryptography are `linkwise-modsig`'s; this is the arguments, the files and the printing.

use std::io::Write;
use std::path::{Path, PathBuf};

use linkwise_modsig::{
    Certificate, Verdict, decompress, inspect, kernel_image_certs, parse_certificates, verify,
};
use serde::Serialize;

use crate::exit::BadInput;

/// Read the signature appended to kernel modules and verify it.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Reports per module what modinfo does (signer, key id, hash), and with certificates \
whether the signature verifies. Modules may be .ko, .ko.xz, .ko.zst or .ko.gz.\n\
Exit: 0 every module signed (and verified, when certificates are given), 1 otherwise, 2 unreadable input.\n\n\
Examples:\n  linkwise modsig /lib/modules/$(uname -r)/updates/dkms/nvidia.ko.zst\n  \
linkwise modsig --cert signing_key.x509 nvidia*.ko\n  \
linkwise modsig --kernel-image /boot/vmlinuz-$(uname -r) $(modinfo -n nvidia nvidia_uvm)\n  \
linkwise modsig -o json --cert mok.der /lib/modules/*/kernel/drivers/vfio/pci/*.ko* | jq '.[] | select(.verified != true)'"
)]
pub struct Args {
    /// The modules to check.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// A certificate to verify with (PEM, possibly several, or DER); repeat for more.
    #[arg(long = "cert", value_name = "FILE")]
    certs: Vec<PathBuf>,
    /// A kernel image whose built-in trusted certificates verify the modules (bzImage,
    /// Image, Image.gz, EFI zboot or vmlinux).
    #[arg(long, value_name = "FILE")]
    kernel_image: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Table,
    Json,
}

/// One module's report.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    path: PathBuf,
    signed: bool,
    signer: Option<String>,
    key_id: Option<String>,
    hash: Option<String>,
    /// `null` when no certificate was given.
    verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// The largest module or kernel read after decompression.
const LIMIT: u64 = 512 << 20;

/// Modules and kernel images are large by nature (an unstripped nvidia.ko is near
/// 100 MiB): they are read up to [`LIMIT`] or `--max-input-bytes`, whichever is larger.
fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    let cap = LIMIT.max(linkwise_fsio::max_input_bytes());
    Ok(linkwise_fsio::read_capped_at(path, cap)?)
}

fn load_certs(a: &Args) -> anyhow::Result<Vec<Certificate>> {
    let mut certs = Vec::new();
    for path in &a.certs {
        let found = parse_certificates(&read(path)?)
            .map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
        if found.is_empty() {
            return Err(BadInput(format!("{}: no certificate in the file", path.display())).into());
        }
        certs.extend(found);
    }
    if let Some(path) = &a.kernel_image {
        let found = kernel_image_certs(&read(path)?)
            .map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
        tracing::info!(image = %path.display(), certificates = found.len(), "built-in keys");
        certs.extend(found);
    }
    Ok(certs)
}

fn report(path: &Path, certs: &[Certificate], check: bool) -> anyhow::Result<Report> {
    let raw = read(path)?;
    let bytes =
        decompress(&raw, LIMIT).map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
    let mut r = Report {
        path: path.to_path_buf(),
        signed: false,
        signer: None,
        key_id: None,
        hash: None,
        verified: None,
        reason: None,
    };
    match inspect(&bytes) {
        Ok(None) => {
            r.verified = check.then_some(false);
            r.reason = Some("not signed (no signature appended)".into());
        }
        Err(e) => {
            r.signed = true;
            r.verified = check.then_some(false);
            r.reason = Some(e.to_string());
        }
        Ok(Some(sig)) => {
            r.signed = true;
            r.signer = sig.signer.signer.clone();
            r.key_id = Some(sig.signer.key_id.clone());
            r.hash = Some(sig.signer.hash.clone());
            if check {
                match verify(&sig, certs) {
                    Verdict::Verified { subject } => {
                        r.verified = Some(true);
                        r.reason = subject.map(|s| format!("verified with {s}"));
                    }
                    Verdict::Failed(why) | Verdict::NoCertificate(why) => {
                        r.verified = Some(false);
                        r.reason = Some(why);
                    }
                }
            }
        }
    }
    Ok(r)
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let certs = load_certs(&a)?;
    let check = !a.certs.is_empty() || a.kernel_image.is_some();
    let reports = a
        .files
        .iter()
        .map(|f| report(f, &certs, check))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let text = match a.output {
        Output::Json => serde_json::to_string_pretty(&reports)? + "\n",
        Output::Table => table(&reports),
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    let bad = reports
        .iter()
        .filter(|r| !r.signed || r.verified == Some(false))
        .count();
    if bad == 0 {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "{bad} of {} module{} {}",
            reports.len(),
            if reports.len() == 1 { "" } else { "s" },
            if check {
                "unsigned or not verified"
            } else {
                "unsigned"
            }
        ))
    }
}

fn table(reports: &[Report]) -> String {
    let mut rows = vec![
        ["FILE", "SIGNED", "SIGNER", "KEY ID", "HASH", "VERIFIED"]
            .map(String::from)
            .to_vec(),
    ];
    for r in reports {
        rows.push(vec![
            r.path.display().to_string(),
            if r.signed { "yes" } else { "no" }.into(),
            r.signer.clone().unwrap_or_else(|| "-".into()),
            r.key_id.clone().unwrap_or_else(|| "-".into()),
            r.hash.clone().unwrap_or_else(|| "-".into()),
            match r.verified {
                Some(true) => "yes".into(),
                Some(false) => format!("NO: {}", r.reason.as_deref().unwrap_or("")),
                None => "-".into(),
            },
        ]);
    }
    crate::render::columns(&rows)
}
