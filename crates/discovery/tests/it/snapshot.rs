//! Snapshot files: read back through `snapshot:FILE`, and every broken file in
//! `fixtures/snapshot-bad/` fails with the file, the line and what was expected.

use linkwise_core::snapshot::{self, Format};
use linkwise_discovery::{Error, ProfileSource, SnapshotSource, TopologySource};

#[test]
fn snapshot_source_reads_back_what_discover_wrote() {
    let t = ProfileSource::new("nvl72").unwrap().discover().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (format, file) in [(Format::Json, "s.json"), (Format::Yaml, "s.yaml")] {
        let p = dir.path().join(file);
        std::fs::write(&p, snapshot::to_string(&t, format).unwrap()).unwrap();
        assert_eq!(SnapshotSource::new(&p).discover().unwrap(), t);
    }
}

#[test]
fn missing_file_names_the_path() {
    let e = SnapshotSource::new("/nonexistent/x.json")
        .discover()
        .unwrap_err();
    assert!(matches!(e, Error::Read { .. }));
    assert!(e.to_string().contains("/nonexistent/x.json"), "{e}");
}

/// The table names, per broken file, the line the error must point at (0: the error is
/// about the whole document, not a line) and a phrase it must contain.
#[test]
fn broken_snapshots_fail_with_line_and_reason() {
    let dir = linkwise_testkit::fixtures().join("snapshot-bad");
    let cases: &[(&str, usize, &str)] = &[
        ("truncated.json", 10, "EOF"),
        ("trailing-comma.json", 6, "hosts: expected value"),
        ("wrong-type.json", 6, "gpus[0].index"),
        ("unknown-field.yaml", 9, "gpus[0].colour: unknown field"),
        (
            "bad-cpulist.yaml",
            6,
            "hosts[0].numaNodes[0].cpus: invalid CPU list",
        ),
        ("bad-pci.yaml", 6, "gpus[0].pciBusId: invalid PCI address"),
        ("bad-indent.yaml", 5, "mapping values are not allowed"),
        ("missing-version.json", 1, "schemaVersion"),
        ("future-version.yaml", 0, "schemaVersion 9 is not supported"),
        ("dangling-link.yaml", 0, "links[0].b"),
        ("duplicate-gpu.yaml", 0, "appears twice"),
        ("zero-lanes.json", 0, "lanes"),
        ("binary.json", 0, "not UTF-8 text"),
    ];
    let mut seen = 0;
    for (file, line, phrase) in cases {
        let path = dir.join(file);
        let e = SnapshotSource::new(&path).discover().expect_err(file);
        let msg = e.to_string();
        assert!(
            msg.contains(file),
            "{file}: error does not name the file: {msg}"
        );
        assert!(msg.contains(phrase), "{file}: expected {phrase:?} in {msg}");
        if *line > 0 {
            assert!(
                msg.contains(&format!("line {line},")),
                "{file}: expected line {line} in {msg}"
            );
        }
        seen += 1;
    }
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(
        files, seen,
        "every file in fixtures/snapshot-bad has a case here"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Deleting, duplicating or corrupting lines of a valid snapshot never panics the reader.
    #[test]
    fn mutated_snapshots_never_panic(
        ops in proptest::collection::vec((0usize..3, 0usize..400, ".{0,8}"), 1..6),
        yaml in proptest::bool::ANY,
    ) {
        let t = ProfileSource::new("riscv-fusion").unwrap().discover().unwrap();
        let text = snapshot::to_string(&t, if yaml { Format::Yaml } else { Format::Json }).unwrap();
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        for (op, at, junk) in ops {
            let i = at % lines.len().max(1);
            match op {
                0 if !lines.is_empty() => { lines.remove(i); }
                1 if !lines.is_empty() => { let l = lines[i].clone(); lines.insert(i, l); }
                _ => lines.insert(i.min(lines.len()), junk),
            }
        }
        let _ = snapshot::from_str(&lines.join("\n"));
    }

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
        let _ = snapshot::from_str(&s);
    }
}
