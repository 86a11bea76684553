//! A module signature checked with the certificate its signer names.

use der::asn1::ObjectIdentifier;
use rsa::pkcs8::DecodePublicKey;
use sha2::Digest;
use signature::hazmat::PrehashVerifier;

use crate::ModuleSignature;
use crate::certs::Certificate;

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The signature is good, made with the key of the certificate with this subject.
    Verified {
        /// The certificate's subject common name.
        subject: Option<String>,
    },
    /// A certificate matches the signer, but the signature does not verify.
    Failed(String),
    /// No certificate given matches the signer (issuer and serial).
    NoCertificate(String),
}

const RSA: &str = "1.2.840.113549.1.1.1";
const EC: &str = "1.2.840.10045.2.1";
const P256: &str = "1.2.840.10045.3.1.7";
const P384: &str = "1.3.132.0.34";

/// `data` hashed with the digest `oid` names; `None` for a digest this build lacks.
fn digest(oid: &ObjectIdentifier, data: &[u8]) -> Option<Vec<u8>> {
    Some(match oid.to_string().as_str() {
        "1.3.14.3.2.26" => sha1::Sha1::digest(data).to_vec(),
        "2.16.840.1.101.3.4.2.4" => sha2::Sha224::digest(data).to_vec(),
        "2.16.840.1.101.3.4.2.1" => sha2::Sha256::digest(data).to_vec(),
        "2.16.840.1.101.3.4.2.2" => sha2::Sha384::digest(data).to_vec(),
        "2.16.840.1.101.3.4.2.3" => sha2::Sha512::digest(data).to_vec(),
        _ => return None,
    })
}

fn pkcs1v15(oid: &ObjectIdentifier) -> Option<rsa::Pkcs1v15Sign> {
    Some(match oid.to_string().as_str() {
        "1.3.14.3.2.26" => rsa::Pkcs1v15Sign::new::<sha1::Sha1>(),
        "2.16.840.1.101.3.4.2.4" => rsa::Pkcs1v15Sign::new::<sha2::Sha224>(),
        "2.16.840.1.101.3.4.2.1" => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
        "2.16.840.1.101.3.4.2.2" => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
        "2.16.840.1.101.3.4.2.3" => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
        _ => return None,
    })
}

fn strip(serial: &[u8]) -> &[u8] {
    let start = serial.iter().position(|b| *b != 0).unwrap_or(serial.len());
    &serial[start..]
}

/// Checks `sig` with the certificate among `certs` whose issuer and serial match the
/// signer: the digest of the payload (and, with signed attributes, the `messageDigest`
/// against it and the signature over the attributes), with the certificate's RSA
/// (PKCS#1 v1.5) or ECDSA (P-256, P-384) key.
pub fn verify(sig: &ModuleSignature<'_>, certs: &[Certificate]) -> Verdict {
    let s = &sig.signer;
    let Some(cert) = certs.iter().find(|c| {
        c.issuer_der == s.issuer_der
            && strip(c.cert.tbs_certificate.serial_number.as_bytes()) == strip(&s.serial)
    }) else {
        return Verdict::NoCertificate(format!(
            "none of the {} certificate{} given is the signer's (issuer CN={}, serial {})",
            certs.len(),
            if certs.len() == 1 { "" } else { "s" },
            s.signer.as_deref().unwrap_or("?"),
            s.key_id
        ));
    };
    let Some(payload_digest) = digest(&s.digest_oid, sig.payload) else {
        return Verdict::Failed(format!("digest {} is not supported by this build", s.hash));
    };
    let signed_digest = match (&s.signed_attrs, &s.message_digest) {
        (Some(attrs), Some(md)) => {
            if *md != payload_digest {
                return Verdict::Failed("the payload's digest differs from the signed messageDigest: the module changed after signing".into());
            }
            match digest(&s.digest_oid, attrs) {
                Some(d) => d,
                None => return Verdict::Failed("digest not supported".into()),
            }
        }
        (Some(_), None) => {
            return Verdict::Failed("signed attributes without a messageDigest".into());
        }
        (None, _) => payload_digest,
    };
    let failed = |why: String| Verdict::Failed(why);
    let Ok(spki_der) = cert.spki_der() else {
        return failed("the certificate's public key cannot be read".into());
    };
    let spki = &cert.cert.tbs_certificate.subject_public_key_info;
    let ok = match spki.algorithm.oid.to_string().as_str() {
        RSA => {
            let (Ok(key), Some(scheme)) = (
                rsa::RsaPublicKey::from_public_key_der(&spki_der),
                pkcs1v15(&s.digest_oid),
            ) else {
                return failed("the certificate's RSA key cannot be read".into());
            };
            key.verify(scheme, &signed_digest, &s.signature).is_ok()
        }
        EC => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                .map(|o| o.to_string());
            match curve.as_deref() {
                Some(P384) => {
                    let (Ok(key), Ok(signature)) = (
                        p384::ecdsa::VerifyingKey::from_public_key_der(&spki_der),
                        p384::ecdsa::Signature::from_der(&s.signature),
                    ) else {
                        return failed(
                            "the P-384 key or the ECDSA signature cannot be read".into(),
                        );
                    };
                    key.verify_prehash(&signed_digest, &signature).is_ok()
                }
                Some(P256) => {
                    let (Ok(key), Ok(signature)) = (
                        p256::ecdsa::VerifyingKey::from_public_key_der(&spki_der),
                        p256::ecdsa::Signature::from_der(&s.signature),
                    ) else {
                        return failed(
                            "the P-256 key or the ECDSA signature cannot be read".into(),
                        );
                    };
                    key.verify_prehash(&signed_digest, &signature).is_ok()
                }
                other => {
                    return failed(format!(
                        "EC curve {} is not supported (P-256 and P-384 are)",
                        other.unwrap_or("?")
                    ));
                }
            }
        }
        other => {
            return failed(format!(
                "public key algorithm {other} is not supported (RSA and ECDSA are)"
            ));
        }
    };
    if ok {
        Verdict::Verified {
            subject: cert.subject.clone(),
        }
    } else {
        Verdict::Failed(format!(
            "the signature does not verify with {}'s key: the module or its signature changed after signing",
            cert.subject.as_deref().unwrap_or("the certificate")
        ))
    }
}
