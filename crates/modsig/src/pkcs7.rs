//! The PKCS#7 / CMS `SignedData` of a module signature: who signed, with which key and
//! hash, and the signature itself.

use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};

use crate::Error;

/// `id-signedData`.
const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// `id-messageDigest` (a signed attribute).
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
/// `commonName`.
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// What the signature says about its signer, as `modinfo` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerFacts {
    /// The issuer's common name (`modinfo`'s `signer`).
    pub signer: Option<String>,
    /// The certificate serial as `modinfo`'s `sig_key` prints it: uppercase hex bytes
    /// joined by colons, leading zero bytes dropped.
    pub key_id: String,
    /// The digest (`sha256`; `modinfo`'s `sig_hashalgo`).
    pub hash: String,
    /// The digest algorithm's OID.
    pub digest_oid: ObjectIdentifier,
    /// The signature algorithm's OID (rsaEncryption, ecdsa-with-SHA384, ...).
    pub signature_oid: ObjectIdentifier,
    /// The issuer name, DER (to find the certificate).
    pub issuer_der: Vec<u8>,
    /// The serial number's bytes as encoded.
    pub serial: Vec<u8>,
    /// The signature value.
    pub signature: Vec<u8>,
    /// The signed attributes re-encoded as the SET the signature covers, when present.
    pub signed_attrs: Option<Vec<u8>>,
    /// The `messageDigest` signed attribute, when present.
    pub message_digest: Option<Vec<u8>>,
}

/// The name `modinfo` prints for a digest OID.
pub fn hash_name(oid: &ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.3.14.3.2.26" => "sha1",
        "2.16.840.1.101.3.4.2.4" => "sha224",
        "2.16.840.1.101.3.4.2.1" => "sha256",
        "2.16.840.1.101.3.4.2.2" => "sha384",
        "2.16.840.1.101.3.4.2.3" => "sha512",
        "2.16.840.1.101.3.4.2.8" => "sha3-256",
        "2.16.840.1.101.3.4.2.9" => "sha3-384",
        "2.16.840.1.101.3.4.2.10" => "sha3-512",
        "1.2.156.10197.1.401" => "sm3",
        other => return other.to_string(),
    }
    .to_string()
}

/// `modinfo`'s `sig_key` form of a serial: `4A:6E:...`, no leading zero bytes.
pub fn key_id(serial: &[u8]) -> String {
    let start = serial
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(serial.len().saturating_sub(1));
    serial[start..]
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The common name in a DER `Name`, if any.
pub fn common_name(name: &x509_cert::name::Name) -> Option<String> {
    name.0.iter().flat_map(|rdn| rdn.0.iter()).find_map(|atv| {
        (atv.oid == COMMON_NAME).then(|| String::from_utf8_lossy(atv.value.value()).into_owned())
    })
}

fn bad(what: &str) -> impl Fn(der::Error) -> Error + '_ {
    move |e| Error::Malformed(format!("{what}: {e}"))
}

/// Parses the signature blob.
pub fn parse(der_bytes: &[u8]) -> Result<SignerFacts, Error> {
    let info = ContentInfo::from_der(der_bytes).map_err(bad("PKCS#7 ContentInfo"))?;
    if info.content_type != SIGNED_DATA {
        return Err(Error::Malformed(format!(
            "PKCS#7 content type {} is not signedData",
            info.content_type
        )));
    }
    let signed: SignedData = info.content.decode_as().map_err(bad("PKCS#7 SignedData"))?;
    let mut signers = signed.signer_infos.0.iter();
    let (Some(si), None) = (signers.next(), signers.next()) else {
        return Err(Error::Malformed(format!(
            "a module signature has exactly one signer, this one {}",
            signed.signer_infos.0.len()
        )));
    };
    let SignerIdentifier::IssuerAndSerialNumber(id) = &si.sid else {
        return Err(Error::Malformed(
            "the signer is named by subject key id, not issuer and serial (the kernel needs the latter)".into(),
        ));
    };
    let signed_attrs = si
        .signed_attrs
        .as_ref()
        .map(|a| a.to_der())
        .transpose()
        .map_err(bad("signed attributes"))?;
    let message_digest = si.signed_attrs.as_ref().and_then(|attrs| {
        attrs
            .iter()
            .find(|a| a.oid == MESSAGE_DIGEST)
            .and_then(|a| a.values.iter().next())
            .and_then(|v| v.decode_as::<der::asn1::OctetString>().ok())
            .map(|o| o.as_bytes().to_vec())
    });
    Ok(SignerFacts {
        signer: common_name(&id.issuer),
        key_id: key_id(id.serial_number.as_bytes()),
        hash: hash_name(&si.digest_alg.oid),
        digest_oid: si.digest_alg.oid,
        signature_oid: si.signature_algorithm.oid,
        issuer_der: id.issuer.to_der().map_err(bad("issuer"))?,
        serial: id.serial_number.as_bytes().to_vec(),
        signature: si.signature.as_bytes().to_vec(),
        signed_attrs,
        message_digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_print_as_modinfo_prints_them() {
        assert_eq!(key_id(&[0x00, 0x8a, 0x01]), "8A:01");
        assert_eq!(key_id(&[0x4a, 0x6e]), "4A:6E");
        assert_eq!(key_id(&[0x00]), "00");
        assert_eq!(key_id(&[]), "");
    }
}
