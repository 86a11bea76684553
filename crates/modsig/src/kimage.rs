//! The certificates a kernel image has built in (`.builtin_trusted_keys`, from
//! `CONFIG_SYSTEM_TRUSTED_KEYS` and the module signing key): the image is unpacked
//! (x86 bzImage, arm64/riscv64 `Image`, `Image.gz`, EFI zboot, or a plain `vmlinux`)
//! and scanned for DER certificates.

use crate::Error;
use crate::certs::{Certificate, der_len};
use crate::compress::{Compression, decompress};

/// The most a kernel may decompress to.
const MAX_KERNEL: u64 = 512 << 20;

fn u32_at(b: &[u8], at: usize) -> Option<usize> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
}

fn unsupported(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(&[0x5d, 0, 0]) {
        Some("lzma")
    } else if b.starts_with(b"BZh") {
        Some("bzip2")
    } else if b.starts_with(&[0x02, 0x21, 0x4c, 0x18]) {
        Some("lz4")
    } else if b.starts_with(&[0x89, b'L', b'Z', b'O']) {
        Some("lzo")
    } else {
        None
    }
}

fn unpack_payload(payload: &[u8], what: &str) -> Result<Vec<u8>, Error> {
    if Compression::of(payload) != Compression::None {
        return decompress(payload, MAX_KERNEL);
    }
    if let Some(format) = unsupported(payload) {
        return Err(Error::KernelImage(format!(
            "{what} is {format}-compressed; this build reads gzip, xz and zstd kernels (decompress it first and pass the vmlinux)"
        )));
    }
    Ok(payload.to_vec())
}

/// The kernel itself (uncompressed) from an image file's bytes.
pub fn unpack(image: &[u8]) -> Result<Vec<u8>, Error> {
    // x86 bzImage: the boot protocol's setup header says where the payload is.
    if image.get(0x202..0x206) == Some(b"HdrS") {
        let setup_sects = match image.get(0x1f1) {
            Some(0) | None => 4,
            Some(n) => *n as usize,
        };
        let (Some(offset), Some(length)) = (u32_at(image, 0x248), u32_at(image, 0x24c)) else {
            return Err(Error::KernelImage(
                "a bzImage too short for its setup header".into(),
            ));
        };
        let start = (setup_sects + 1) * 512 + offset;
        let payload = image
            .get(start..start.saturating_add(length))
            .ok_or_else(|| {
                Error::KernelImage(format!(
                    "the bzImage payload ({length} bytes at {start}) lies outside the file"
                ))
            })?;
        return unpack_payload(payload, "the bzImage payload");
    }
    // EFI zboot (arm64, riscv64 vmlinuz.efi): "MZ", "zimg", payload offset and size.
    if image.starts_with(b"MZ") && image.get(4..8) == Some(b"zimg") {
        let (Some(offset), Some(length)) = (u32_at(image, 8), u32_at(image, 12)) else {
            return Err(Error::KernelImage(
                "an EFI zboot image too short for its header".into(),
            ));
        };
        let payload = image
            .get(offset..offset.saturating_add(length))
            .ok_or_else(|| Error::KernelImage("the zboot payload lies outside the file".into()))?;
        return unpack_payload(payload, "the zboot payload");
    }
    // Image.gz and friends, or an Image / vmlinux as it is.
    unpack_payload(image, "the image")
}

/// Every X.509 certificate found in `kernel` (uncompressed), in order, each once.
pub fn scan_certificates(kernel: &[u8]) -> Vec<Certificate> {
    let mut out: Vec<Certificate> = Vec::new();
    let mut i = 0;
    while i + 6 <= kernel.len() {
        // A certificate: SEQUENCE (long form) holding the tbsCertificate SEQUENCE.
        if kernel[i] == 0x30
            && kernel[i + 1] == 0x82
            && kernel[i + 4] == 0x30
            && kernel[i + 5] == 0x82
            && let Some(len) = der_len(&kernel[i..])
            && let Ok(cert) = Certificate::from_der(&kernel[i..i + len])
        {
            if !out.iter().any(|c| c.der == cert.der) {
                out.push(cert);
            }
            i += len;
            continue;
        }
        i += 1;
    }
    out
}

/// The certificates built into the kernel image `image`; an image with none is an
/// error (there is nothing to check modules against).
pub fn kernel_image_certs(image: &[u8]) -> Result<Vec<Certificate>, Error> {
    let kernel = unpack(image)?;
    let certs = scan_certificates(&kernel);
    if certs.is_empty() {
        return Err(Error::KernelImage(format!(
            "no X.509 certificate in the {} byte kernel (built without CONFIG_SYSTEM_TRUSTED_KEYS and a module signing key?)",
            kernel.len()
        )));
    }
    Ok(certs)
}
