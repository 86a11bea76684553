//! Real signed modules (fixtures/modsig: a Debian-signed module with the key read out of
//! its kernel image, modules signed by the kernel's sign-file with RSA and ECDSA keys)
//! read and verified: the signer, key id and hash are what kmod's modinfo printed for
//! the same files; a one-byte change to the payload or the signature, or another key,
//! is refused; no truncated or mutated module makes the parser panic.
//!
//! With LINKWISE_MODSIG_ARTEFACTS set (`.ci/run` makes them with
//! scripts/modsig-artefacts.sh), every artefact there is checked the same way, the
//! certificates of the Debian kernel image included.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use linkwise_modsig::{
    Certificate, Verdict, decompress, inspect, kernel_image_certs, parse_certificates, verify,
};
use linkwise_testkit::{Prerequisite, fixtures, require};
use proptest::prelude::*;

const LIMIT: u64 = 64 << 20;

fn dir() -> PathBuf {
    fixtures().join("modsig")
}

fn module(path: &Path) -> Vec<u8> {
    decompress(&std::fs::read(path).unwrap(), LIMIT)
        .unwrap()
        .into_owned()
}

fn certs(path: &Path) -> Vec<Certificate> {
    parse_certificates(&std::fs::read(path).unwrap()).unwrap()
}

/// `modinfo.tsv` / `facts.tsv` rows: file, signer, sig_key, sig_hashalgo.
fn modinfo(tsv: &Path) -> Vec<[String; 4]> {
    std::fs::read_to_string(tsv)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            [0, 1, 2, 3].map(|i| f.get(i).unwrap_or(&"").to_string())
        })
        .collect()
}

fn assert_like_modinfo(base: &Path, rows: &[[String; 4]]) {
    for [file, signer, key, hash] in rows {
        let bytes = module(&base.join(file));
        let sig = inspect(&bytes).unwrap();
        if signer.is_empty() && key.is_empty() {
            // modinfo saw no signature: unsigned, or a compression kmod cannot read.
            if file.ends_with(".ko") {
                assert!(sig.is_none(), "{file}: modinfo saw no signature");
            }
            continue;
        }
        let sig = sig.unwrap_or_else(|| panic!("{file}: modinfo saw a signature"));
        assert_eq!(
            sig.signer.signer.as_deref(),
            Some(signer.as_str()),
            "{file}"
        );
        assert_eq!(&sig.signer.key_id, key, "{file}");
        assert_eq!(&sig.signer.hash, hash, "{file}");
    }
}

#[test]
fn signer_key_id_and_hash_match_modinfo() {
    assert_like_modinfo(&dir(), &modinfo(&dir().join("modinfo.tsv")));
}

#[test]
fn each_module_verifies_with_its_certificate_only() {
    let debian_key = certs(&dir().join("debian-6.1.0-57-signing-key.der"));
    let rsa = certs(&dir().join("rsa.crt"));
    let ecdsa = certs(&dir().join("ecdsa.der"));
    for (file, right, wrong) in [
        ("debian-6.1.0-57-crc7.ko", &debian_key, &rsa),
        ("rsa-sha256.ko", &rsa, &ecdsa),
        ("ecdsa-sha384.ko.zst", &ecdsa, &debian_key),
    ] {
        let bytes = module(&dir().join(file));
        let sig = inspect(&bytes).unwrap().unwrap();
        assert!(
            matches!(verify(&sig, right), Verdict::Verified { .. }),
            "{file}: {:?}",
            verify(&sig, right)
        );
        assert!(
            matches!(verify(&sig, wrong), Verdict::NoCertificate(_)),
            "{file}"
        );
        let all: Vec<Certificate> = [wrong.clone(), right.clone()].concat();
        assert!(
            matches!(verify(&sig, &all), Verdict::Verified { .. }),
            "{file}: found among several"
        );
    }
}

#[test]
fn a_one_byte_change_is_refused() {
    let rsa = certs(&dir().join("rsa.crt"));
    let ecdsa = certs(&dir().join("ecdsa.der"));
    for (file, key) in [("rsa-sha256.ko", &rsa), ("ecdsa-sha384.ko.zst", &ecdsa)] {
        let good = module(&dir().join(file));
        let sig = inspect(&good).unwrap().unwrap();
        let payload_len = sig.payload.len();
        let sig_end = payload_len + sig.pkcs7.len();
        // The payload's first byte, a byte in the middle, and the signature's last byte.
        for at in [0, payload_len / 2, sig_end - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x01;
            match inspect(&bad) {
                Ok(Some(s)) => match verify(&s, key) {
                    Verdict::Failed(why) => assert!(why.contains("changed"), "{file}@{at}: {why}"),
                    other => panic!("{file}@{at}: a changed byte gave {other:?}"),
                },
                Ok(None) => panic!("{file}@{at}: the signature vanished"),
                Err(_) => {} // a damaged signature structure is refused too
            }
        }
    }
}

#[test]
fn an_unsigned_module_is_no_signature_and_garbage_trailers_are_errors() {
    let good = module(&dir().join("rsa-sha256.ko"));
    let sig = inspect(&good).unwrap().unwrap();
    let unsigned = sig.payload.to_vec();
    assert!(inspect(&unsigned).unwrap().is_none());
    // sig_len pointing past the start, and a PGP-era id_type.
    let mut long = good.clone();
    let n = long.len();
    long[n - 32..n - 28].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(inspect(&long).unwrap_err().to_string().contains("sig_len"));
    let mut pgp = good.clone();
    pgp[n - 40 + 2] = 1;
    assert!(inspect(&pgp).unwrap_err().to_string().contains("id_type"));
    assert!(inspect(b"~Module signature appended~\n").is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Regression guard: no panic on any truncation or mutation of a signed module.
    #[test]
    fn no_panic_on_truncated_or_mutated_modules(cut in 0usize..6000, flips in proptest::collection::vec((0usize..6000, any::<u8>()), 0..8), keep_tail in any::<bool>()) {
        let good = module(&dir().join("rsa-sha256.ko"));
        let rsa = certs(&dir().join("rsa.crt"));
        let mut bad = if keep_tail {
            // Cut inside, keep the trailer: the lengths disagree with the file.
            let cut = cut.min(good.len() - 40);
            [&good[..cut], &good[good.len() - 40..]].concat()
        } else {
            good[..cut.min(good.len())].to_vec()
        };
        for (at, x) in flips {
            if !bad.is_empty() {
                let i = at % bad.len();
                bad[i] ^= x;
            }
        }
        if let Ok(Some(sig)) = inspect(&bad) {
            let _ = verify(&sig, &rsa);
        }
        let _ = decompress(&bad, LIMIT);
        let _ = parse_certificates(&bad);
        let _ = kernel_image_certs(&bad);
    }
}

#[test]
fn every_artefact_matches_modinfo_and_the_debian_kernel_verifies_its_modules() {
    let Some(dir) = std::env::var_os("LINKWISE_MODSIG_ARTEFACTS").map(PathBuf::from) else {
        let _ = require(Prerequisite::new(
            "LINKWISE_MODSIG_ARTEFACTS, a directory made by scripts/modsig-artefacts.sh",
            false,
        ));
        return;
    };
    if !require(Prerequisite::file(dir.join("facts.tsv"))) {
        return;
    }
    let rows = modinfo(&dir.join("facts.tsv"));
    assert!(rows.len() >= 8, "{rows:?}");
    assert_like_modinfo(&dir, &rows);
    let rsa = certs(&dir.join("rsa.crt"));
    let other = certs(&dir.join("other.crt"));
    let ecdsa = certs(&dir.join("ecdsa.der"));
    for (file, key) in [
        ("rsa-sha256.ko", &rsa),
        ("rsa-sha512.ko", &rsa),
        ("rsa-sha256.ko.xz", &rsa),
        ("rsa-sha512.ko.gz", &rsa),
        ("ecdsa-sha384.ko", &ecdsa),
        ("ecdsa-sha384.ko.zst", &ecdsa),
        ("other-sha256.ko", &other),
    ] {
        let bytes = module(&dir.join(file));
        let sig = inspect(&bytes).unwrap().unwrap();
        assert!(
            matches!(verify(&sig, key), Verdict::Verified { .. }),
            "{file}"
        );
        let wrong = if std::ptr::eq(key, &other) {
            &rsa
        } else {
            &other
        };
        assert!(
            !matches!(verify(&sig, wrong), Verdict::Verified { .. }),
            "{file} with another key"
        );
    }
    // The Debian kernel's own built-in keys verify its modules.
    let builtin = kernel_image_certs(&std::fs::read(dir.join("debian/vmlinuz")).unwrap()).unwrap();
    let mut debian = 0;
    for e in std::fs::read_dir(dir.join("debian")).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap().to_string_lossy().contains(".ko") {
            let bytes = module(&p);
            let sig = inspect(&bytes).unwrap().unwrap();
            assert!(
                matches!(verify(&sig, &builtin), Verdict::Verified { .. }),
                "{}",
                p.display()
            );
            assert!(!matches!(verify(&sig, &rsa), Verdict::Verified { .. }));
            debian += 1;
        }
    }
    assert!(debian >= 2);
}
