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
    if b.starts_with(b"BZh") {
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
        return decompress(payload, MAX_KERNEL).map(std::borrow::Cow::into_owned);
    }
    // The legacy .lzma format (properties 0x5d, then the dictionary size and the size).
    if payload.starts_with(&[0x5d, 0, 0]) {
        let mut out = Vec::new();
        let reader =
            lzma_rust2::LzmaReader::new_mem_limit(payload, 1 << 20, None).map_err(|e| {
                Error::Decompress {
                    format: "lzma",
                    message: e.to_string(),
                }
            })?;
        std::io::Read::read_to_end(&mut std::io::Read::take(reader, MAX_KERNEL + 1), &mut out)
            .map_err(|e| Error::Decompress {
                format: "lzma",
                message: e.to_string(),
            })?;
        if out.len() as u64 > MAX_KERNEL {
            return Err(Error::KernelImage(format!(
                "{what} decompresses to more than {} MiB",
                MAX_KERNEL >> 20
            )));
        }
        return Ok(out);
    }
    if let Some(format) = unsupported(payload) {
        return Err(Error::KernelImage(format!(
            "{what} is {format}-compressed; this build reads gzip, xz, zstd and lzma kernels (decompress it first and pass the vmlinux)"
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

    use std::io::Write;

    use super::*;

    fn cert() -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/modsig/debian-6.1.0-57-signing-key.der");
        std::fs::read(path).unwrap()
    }

    /// A kernel holding the certificate between other bytes, as `system_certificate_list` is.
    fn kernel() -> Vec<u8> {
        [vec![0x30u8; 3000], cert(), vec![0x82u8; 3000]].concat()
    }

    /// A bzImage: boot sector and setup (setup_sects = 3), the setup header's payload
    /// offset and length, then the protected-mode part holding the payload.
    fn bzimage(payload: &[u8]) -> Vec<u8> {
        let mut image = vec![0u8; 4 * 512];
        image[0x1f1] = 3;
        image[0x202..0x206].copy_from_slice(b"HdrS");
        let offset = 100u32;
        image[0x248..0x24c].copy_from_slice(&offset.to_le_bytes());
        image[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        image.extend(vec![0xccu8; offset as usize]);
        image.extend_from_slice(payload);
        image.extend_from_slice(&(kernel().len() as u32).to_le_bytes());
        image
    }

    #[test]
    fn every_payload_compression_yields_the_built_in_certificate() {
        let k = kernel();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&k).unwrap();
        let gz = gz.finish().unwrap();
        let mut xz =
            lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::default()).unwrap();
        xz.write_all(&k).unwrap();
        let xz = xz.finish().unwrap();
        let mut lzma = lzma_rust2::LzmaWriter::new_use_header(
            Vec::new(),
            &lzma_rust2::LzmaOptions::default(),
            None,
        )
        .unwrap();
        lzma.write_all(&k).unwrap();
        let lzma = lzma.finish().unwrap();
        let zst = ruzstd::encoding::compress_to_vec(
            k.as_slice(),
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        for (what, image) in [
            ("vmlinux", k.clone()),
            ("bzImage zstd", bzimage(&zst)),
            ("Image.gz", gz.clone()),
            ("bzImage gzip", bzimage(&gz)),
            ("bzImage xz", bzimage(&xz)),
            ("bzImage lzma", bzimage(&lzma)),
        ] {
            let certs = kernel_image_certs(&image).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(certs.len(), 1, "{what}");
            assert_eq!(certs[0].der, cert(), "{what}");
        }
        let err = kernel_image_certs(&bzimage(b"BZh91AY&SY"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bzip2"), "{err}");
        let err = kernel_image_certs(&[0u8; 4096]).unwrap_err().to_string();
        assert!(err.contains("no X.509 certificate"), "{err}");
    }
}
