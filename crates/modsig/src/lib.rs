//! Linux kernel module signatures, parsed and verified.
//!
//! A signed module is the module's ELF file with a signature appended:
//! `[payload][PKCS#7 SignedData, DER][struct module_signature, 12 bytes][magic, 28 bytes]`.
//! The struct says PKCS#7 (`id_type` 2) and the signature's length (big-endian); every
//! other fact (signer, key id, hash) is inside the PKCS#7 blob, which is detached (the
//! payload is not in it) and carries no certificates. [`inspect`] reads it and reports
//! what `modinfo` reports (`signer`, `sig_key`, `sig_hashalgo`); [`verify`] checks the
//! signature over the payload with the certificate the signer names, RSA (PKCS#1 v1.5)
//! or ECDSA (P-256, P-384); [`kernel_image_certs`] reads the certificates a kernel
//! image has built in (its `.builtin_trusted_keys`), so a node's modules can be checked
//! against its own kernel.
//!
//! Pure: bytes in, facts out. Compressed modules (`.ko.xz`, `.ko.zst`, `.ko.gz`) and
//! kernels are recognised by their magic bytes ([`decompress`]). Bad input is an
//! [`Error`], never a panic.

mod certs;
mod compress;
mod files;
mod kimage;
mod pkcs7;
mod verify;

pub use certs::{Certificate, parse_certificates};
pub use compress::{Compression, decompress};
pub use files::find_modules;
pub use kimage::kernel_image_certs;
pub use pkcs7::SignerFacts;
pub use verify::{Verdict, verify};

/// The magic string every signed module ends with.
pub const MAGIC: &[u8; 28] = b"~Module signature appended~\n";

/// `struct module_signature`'s size.
pub const STRUCT_LEN: usize = 12;

/// `id_type` of a PKCS#7 signature (`PKEY_ID_PKCS7`).
pub const PKEY_ID_PKCS7: u8 = 2;

/// What cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The signature trailer or the PKCS#7 blob is malformed.
    #[error("malformed module signature: {0}")]
    Malformed(String),
    /// A compressed module or kernel does not decompress.
    #[error("cannot decompress ({format}): {message}")]
    Decompress {
        /// gzip, xz, zstd.
        format: &'static str,
        /// Why.
        message: String,
    },
    /// A certificate file holds no readable certificate.
    #[error("no X.509 certificate: {0}")]
    Certificate(String),
    /// A kernel image is not one this build reads.
    #[error("not a kernel image this build reads: {0}")]
    KernelImage(String),
}

/// A module's signature, split from its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSignature<'a> {
    /// The bytes the signature covers: the module before the signature.
    pub payload: &'a [u8],
    /// The PKCS#7 SignedData, DER.
    pub pkcs7: &'a [u8],
    /// What the PKCS#7 says about the signer.
    pub signer: SignerFacts,
}

/// A module's signature, or `None` when it carries none (no magic at the end). A
/// trailer that is there but malformed is an [`Error`], as the kernel refuses it too.
pub fn inspect(module: &[u8]) -> Result<Option<ModuleSignature<'_>>, Error> {
    let Some(rest) = module.strip_suffix(MAGIC.as_slice()) else {
        return Ok(None);
    };
    if rest.len() < STRUCT_LEN {
        return Err(Error::Malformed(format!(
            "the file ends in the signature magic but is {} bytes long, too short for the signature header",
            module.len()
        )));
    }
    let (body, header) = rest.split_at(rest.len() - STRUCT_LEN);
    let [
        algo,
        hash,
        id_type,
        signer_len,
        key_id_len,
        pad0,
        pad1,
        pad2,
        l0,
        l1,
        l2,
        l3,
    ] = header
    else {
        return Err(Error::Malformed("signature header".into()));
    };
    if *id_type != PKEY_ID_PKCS7 {
        return Err(Error::Malformed(format!(
            "id_type {id_type} is not PKCS#7 ({PKEY_ID_PKCS7}); older PGP/X.509 forms are not used by any kernel since 4.3"
        )));
    }
    if [algo, hash, signer_len, key_id_len, pad0, pad1, pad2]
        .iter()
        .any(|b| **b != 0)
    {
        return Err(Error::Malformed(
            "a PKCS#7 signature header has algo, hash, signer_len, key_id_len and padding all 0"
                .into(),
        ));
    }
    let sig_len = u32::from_be_bytes([*l0, *l1, *l2, *l3]) as usize;
    if sig_len == 0 || sig_len >= body.len() {
        return Err(Error::Malformed(format!(
            "sig_len {sig_len} does not fit a file of {} bytes",
            module.len()
        )));
    }
    let (payload, pkcs7) = body.split_at(body.len() - sig_len);
    let signer = pkcs7::parse(pkcs7)?;
    Ok(Some(ModuleSignature {
        payload,
        pkcs7,
        signer,
    }))
}
