//! The repository's real input files (kernel configs compressed with xz, sysfs trees,
//! `nvidia-smi topo -m` dumps, trace excerpts) read through the capped reader: byte for
//! byte what the file holds, refused over a cap with the file and the cap named, text
//! reads refusing binary files at the first invalid byte, and an atomic copy reading back
//! the same. One test, because the cap is process-wide.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use linkwise_fsio::{read_capped, read_to_string_capped, set_max_input_bytes, write_atomic};
use linkwise_testkit::fixtures;

/// Every regular file under `dir` (symlinks to files included), sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                todo.push(p);
            } else if std::fs::metadata(&p).is_ok_and(|m| m.is_file()) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn real_fixture_files_read_exactly_and_are_refused_over_the_cap() {
    let all = files(&fixtures());
    assert!(all.len() > 20, "fixtures found: {}", all.len());
    let mut largest = (0usize, PathBuf::new());
    for f in &all {
        let want = std::fs::read(f).unwrap();
        let got = read_capped(f).unwrap_or_else(|e| panic!("{e}"));
        assert!(got == want, "{}: read differs", f.display());
        if want.len() > largest.0 {
            largest = (want.len(), f.clone());
        }
        match (std::str::from_utf8(&want), read_to_string_capped(f)) {
            (Ok(text), Ok(read)) => assert_eq!(read, text, "{}", f.display()),
            (Err(e), Err(err)) => {
                let msg = err.to_string();
                assert!(msg.contains(&f.display().to_string()), "{msg}");
                assert!(
                    msg.contains(&format!("offset {}", e.valid_up_to())),
                    "{msg}"
                );
            }
            (text, read) => panic!(
                "{}: UTF-8 {} but the text read {}",
                f.display(),
                text.is_ok(),
                if read.is_ok() { "succeeded" } else { "failed" }
            ),
        }
    }
    // The real xz-compressed kernel configs are binary: a text read must refuse them.
    let config = fixtures().join("kconfig/debian-6.12.117-riscv64.config.xz");
    assert!(read_to_string_capped(&config).is_err());

    // An atomic copy of the largest file reads back the same.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy");
    write_atomic(&copy, &std::fs::read(&largest.1).unwrap()).unwrap();
    assert_eq!(read_capped(&copy).unwrap().len(), largest.0);

    // One byte under its size, the largest file is refused, naming it and the cap.
    set_max_input_bytes(largest.0 as u64 - 1);
    let err = read_capped(&largest.1).unwrap_err().to_string();
    assert!(
        err.contains(&largest.1.display().to_string()) && err.contains("--max-input-bytes"),
        "{err}"
    );
    set_max_input_bytes(largest.0 as u64);
    assert!(read_capped(&largest.1).is_ok());
}
