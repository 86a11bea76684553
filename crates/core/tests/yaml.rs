//! The YAML writer read back by a YAML 1.1 reader (PyYAML's `safe_load`, the resolver
//! of older Kubernetes tooling and most Python scripts): every key and value comes back
//! as written. Needs python3 with PyYAML (`pip install pyyaml`; `.ci/run` installs it
//! with kubernetes-validate).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use linkwise_core::yaml::to_yaml;
use linkwise_testkit::yaml::{difference, pyyaml};
use linkwise_testkit::{Prerequisite, require};
use serde_json::{Value, json};

/// Regression: keys were written bare, so a YAML 1.1 reader read `no:` as the key
/// `false` and `null:` as the key `None`; floats in exponent form (`1e30`) read as
/// strings; raw U+2028, U+0085 and DEL in strings were folded or refused.
#[test]
fn a_yaml_1_1_reader_reads_back_what_was_written() {
    if !require(Prerequisite::python_module(
        "yaml",
        "pip install pyyaml; .ci/run installs it",
    )) {
        return;
    }
    let mut words = serde_json::Map::new();
    for w in [
        "y",
        "Y",
        "n",
        "N",
        "yes",
        "Yes",
        "YES",
        "no",
        "No",
        "NO",
        "true",
        "True",
        "TRUE",
        "false",
        "False",
        "FALSE",
        "on",
        "On",
        "ON",
        "off",
        "Off",
        "OFF",
        "null",
        "Null",
        "NULL",
        "~",
        "",
        "0",
        "1",
        "-1",
        "+1",
        "0x1f",
        "0o17",
        "017",
        "0b101",
        "1_000",
        "1e3",
        "1.5",
        ".5",
        "1:20",
        "190:20:30",
        ".inf",
        "-.Inf",
        ".NaN",
        "2001-12-14",
        "<<",
        "=",
        "nodes",
        "yesterday",
        "nullable",
        "nvidia.com/gpu",
        "a b",
        "#c",
        "key: v",
        "- x",
    ] {
        words.insert(w.to_string(), Value::String(w.to_string()));
    }
    let doc = json!({
        "keys": words,
        "strings": [
            "0000:18:00.0", "550.54", "quote \" and \\ backslash", "tab\tnew\nline\rcr",
            "line\u{2028}sep\u{2029}para\u{85}nel", "del\u{7f} c1\u{9f} bom\u{feff}",
            "bell\u{7}", "µ→🙂", "  padded  ", "trailing:", "a: b", "[x]", "{y}", "&anchor",
            "*alias", "!tag", "%dir", "@at", "`tick`", "|", ">", "'single'",
        ],
        // (Exponents chosen so that serde_json's default float parser, which may be off
        // by an ulp for large exponents, reads PyYAML's answer back exactly.)
        "numbers": [0, 1, -1, 4096, 18446744073709551615u64, -9223372036854775808i64,
                    0.5, -2.25, 550.54, 1e30, 1.5e-7, -2.5e-12, 6.02e23, 1.0, 123456789.0],
        "other": [true, false, null, [], {}, [[1, [2]], {"x": []}]],
        "nested": {"no": {"on": [{"off": null, "y": "n"}]}},
    });
    let yaml = to_yaml(&doc);
    let read = pyyaml(&yaml);
    if let Some(d) = difference(&read, &doc, "") {
        panic!("{d}; written:\n{yaml}");
    }
    // And a YAML 1.2 reader agrees.
    let back: Value = serde_yaml_ng::from_str(&yaml).unwrap();
    assert_eq!(back, doc);
}
