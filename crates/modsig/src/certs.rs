//! X.509 certificates: read from PEM or DER files, or found in a kernel image.

use der::{Decode, Encode};

use crate::Error;
use crate::pkcs7::{common_name, key_id};

/// A certificate and the facts used to match it to a signer.
#[derive(Debug, Clone)]
pub struct Certificate {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// The parsed certificate.
    pub cert: x509_cert::Certificate,
    /// The subject's common name.
    pub subject: Option<String>,
    /// The issuer name, DER.
    pub issuer_der: Vec<u8>,
    /// The serial as `modinfo` prints a key id.
    pub key_id: String,
}

impl Certificate {
    /// Parses one DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Certificate, Error> {
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|e| Error::Certificate(format!("DER: {e}")))?;
        let tbs = &cert.tbs_certificate;
        Ok(Certificate {
            der: der.to_vec(),
            subject: common_name(&tbs.subject),
            issuer_der: tbs
                .issuer
                .to_der()
                .map_err(|e| Error::Certificate(format!("issuer: {e}")))?,
            key_id: key_id(tbs.serial_number.as_bytes()),
            cert,
        })
    }

    /// The subject public key info, DER.
    pub fn spki_der(&self) -> Result<Vec<u8>, Error> {
        self.cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| Error::Certificate(format!("public key: {e}")))
    }
}

/// The length of the DER element at the start of `bytes` (header included), when its
/// header is complete and it fits.
pub fn der_len(bytes: &[u8]) -> Option<usize> {
    let first = *bytes.get(1)?;
    let (len, header) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in bytes.get(2..2 + n)? {
            len = len << 8 | *b as usize;
        }
        (len, 2 + n)
    };
    let total = header.checked_add(len)?;
    (total <= bytes.len()).then_some(total)
}

/// Every certificate in a file: PEM (`-----BEGIN CERTIFICATE-----` blocks, other blocks
/// skipped) or DER (one certificate, or several back to back).
pub fn parse_certificates(bytes: &[u8]) -> Result<Vec<Certificate>, Error> {
    let text = String::from_utf8_lossy(bytes);
    if text.contains("-----BEGIN CERTIFICATE-----") {
        let mut out = Vec::new();
        let mut rest: &str = &text;
        while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
            let block = &rest[start..];
            let end = block
                .find("-----END CERTIFICATE-----")
                .ok_or_else(|| Error::Certificate("a PEM block has no END line".into()))?
                + "-----END CERTIFICATE-----".len();
            let (label, der) = der::pem::decode_vec(&block.as_bytes()[..end])
                .map_err(|e| Error::Certificate(format!("PEM: {e}")))?;
            if label == "CERTIFICATE" {
                out.push(Certificate::from_der(&der)?);
            }
            rest = &block[end..];
        }
        return Ok(out);
    }
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let len = der_len(rest).filter(|_| rest[0] == 0x30).ok_or_else(|| {
            Error::Certificate(format!(
                "{} bytes that are neither PEM nor a DER certificate",
                rest.len()
            ))
        })?;
        out.push(Certificate::from_der(&rest[..len])?);
        rest = &rest[len..];
    }
    if out.is_empty() {
        return Err(Error::Certificate("the file is empty".into()));
    }
    Ok(out)
}
