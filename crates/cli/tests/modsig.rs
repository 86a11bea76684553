//! `linkwise modsig` on real signed modules (fixtures/modsig): what modinfo reports, the
//! verdict per certificate, and the exit codes: 0 all signed and verified, 1 not, 2 an
//! unreadable module or certificate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use linkwise_testkit::cli::{bad_input, run, stdout};
use linkwise_testkit::fixtures;
use serde_json::Value;

fn f(name: &str) -> String {
    fixtures().join("modsig").join(name).display().to_string()
}

fn json(args: &[&str]) -> (Option<i32>, Vec<Value>) {
    let o = run(args);
    let v: Vec<Value> = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", stdout(&o)));
    (o.status.code(), v)
}

#[test]
fn modules_are_reported_and_verified_with_the_right_certificate() {
    let (code, v) = json(&[
        "modsig",
        "-o",
        "json",
        &f("rsa-sha256.ko"),
        &f("ecdsa-sha384.ko.zst"),
    ]);
    assert_eq!(code, Some(0));
    assert_eq!(v[0]["signer"], "linkwise test RSA key");
    assert_eq!(v[0]["hash"], "sha256");
    assert_eq!(
        v[1]["keyId"],
        "3F:80:3A:FF:DF:1B:A9:DF:01:9E:8F:8B:C0:83:2A:2E:BB:95:6A:26"
    );
    assert!(
        v.iter().all(|r| r["verified"].is_null()),
        "no certificate: null"
    );

    let (code, v) = json(&[
        "modsig",
        "-o",
        "json",
        "--cert",
        &f("rsa.crt"),
        "--cert",
        &f("ecdsa.der"),
        &f("rsa-sha256.ko"),
        &f("ecdsa-sha384.ko.zst"),
    ]);
    assert_eq!(code, Some(0));
    assert!(v.iter().all(|r| r["verified"] == true), "{v:?}");

    // The ECDSA module against the RSA certificate only: not verified, exit 1.
    let (code, v) = json(&[
        "modsig",
        "-o",
        "json",
        "--cert",
        &f("rsa.crt"),
        &f("ecdsa-sha384.ko.zst"),
    ]);
    assert_eq!(code, Some(1));
    assert_eq!(v[0]["verified"], false);
    assert!(
        v[0]["reason"]
            .as_str()
            .unwrap()
            .contains("linkwise test ECDSA key")
    );
}

#[test]
fn unsigned_and_tampered_modules_exit_1_and_unreadable_input_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(f("rsa-sha256.ko")).unwrap();
    let tampered = dir.path().join("tampered.ko");
    let mut bytes = good.clone();
    bytes[100] ^= 1;
    std::fs::write(&tampered, &bytes).unwrap();
    let (code, v) = json(&[
        "modsig",
        "-o",
        "json",
        "--cert",
        &f("rsa.crt"),
        tampered.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
    assert_eq!(
        (v[0]["signed"].clone(), v[0]["verified"].clone()),
        (Value::Bool(true), Value::Bool(false))
    );
    assert!(
        v[0]["reason"].as_str().unwrap().contains("changed"),
        "{v:?}"
    );

    let unsigned = dir.path().join("unsigned.ko");
    std::fs::write(&unsigned, &good[..4000]).unwrap();
    let (code, v) = json(&["modsig", "-o", "json", unsigned.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert_eq!(v[0]["signed"], false);

    let err = bad_input(&["modsig", "/no/such.ko"]);
    assert!(err.contains("/no/such.ko"), "{err}");
    let err = bad_input(&[
        "modsig",
        "--cert",
        unsigned.to_str().unwrap(),
        &f("rsa-sha256.ko"),
    ]);
    assert!(err.contains("unsigned.ko"), "{err}");
    let err = bad_input(&[
        "modsig",
        "--kernel-image",
        unsigned.to_str().unwrap(),
        &f("rsa-sha256.ko"),
    ]);
    assert!(err.contains("unsigned.ko"), "{err}");
}
