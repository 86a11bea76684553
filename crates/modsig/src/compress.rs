//! Compressed modules and kernel payloads: gzip, xz and zstd, told apart by magic bytes.

use std::borrow::Cow;
use std::io::Read;

use crate::Error;

/// How bytes are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed (or in a format this build does not know).
    None,
    /// gzip (`1f 8b`).
    Gzip,
    /// xz (`fd 37 7a 58 5a 00`).
    Xz,
    /// zstd (`28 b5 2f fd`).
    Zstd,
}

impl Compression {
    /// The format of `bytes`, from their first bytes.
    pub fn of(bytes: &[u8]) -> Compression {
        if bytes.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if bytes.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Compression::Xz
        } else if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// `bytes` decompressed when compressed (at most `limit` bytes out), else as they are
/// (borrowed, not copied).
pub fn decompress(bytes: &[u8], limit: u64) -> Result<Cow<'_, [u8]>, Error> {
    let mut out = Vec::new();
    let fail = |format: &'static str| {
        move |e: &dyn std::fmt::Display| Error::Decompress {
            format,
            message: e.to_string(),
        }
    };
    match Compression::of(bytes) {
        Compression::None => return Ok(Cow::Borrowed(bytes)),
        Compression::Gzip => {
            flate2::read::GzDecoder::new(bytes)
                .take(limit + 1)
                .read_to_end(&mut out)
                .map_err(|e| fail("gzip")(&e))?;
        }
        Compression::Xz => {
            // Kernels use xz's branch filters (BCJ x86, ARM64, RISC-V) before LZMA2.
            lzma_rust2::XzReader::new(bytes, false)
                .take(limit + 1)
                .read_to_end(&mut out)
                .map_err(|e| fail("xz")(&e))?;
        }
        Compression::Zstd => {
            // One frame: a kernel payload has its size appended after the frame.
            let decoder =
                ruzstd::decoding::StreamingDecoder::new(bytes).map_err(|e| fail("zstd")(&e))?;
            decoder
                .take(limit + 1)
                .read_to_end(&mut out)
                .map_err(|e| fail("zstd")(&e))?;
        }
    }
    if out.len() as u64 > limit {
        return Err(Error::Decompress {
            format: "size",
            message: format!("more than {} MiB decompressed", limit >> 20),
        });
    }
    Ok(Cow::Owned(out))
}
