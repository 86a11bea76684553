//! A YAML writer that every YAML reader reads the same way.
//!
//! Strings are always double-quoted, so values such as `0000:18:00.0`, `no`, `1e3` or
//! `550.54` stay strings for YAML 1.1 readers (PyYAML, kubectl's older paths) as they do
//! for YAML 1.2 ones; inside the quotes, control characters, DEL, C1 controls, the line
//! and paragraph separators (which YAML folds) and the non-characters YAML refuses are
//! `\uXXXX` escapes (valid JSON and YAML). Floats in exponent form are written with a
//! fraction and a signed exponent (`1.0e+30`), the form YAML 1.1 resolves as a float. Keys are quoted unless they are
//! plain identifiers that no YAML reader resolves to anything but a string: a key such as
//! `no`, `on`, `y` or `null` is a boolean or null to a YAML 1.1 reader, so it is quoted
//! too (a key starting with a digit, a sign or a dot, as numbers do, is never plain).
//! Maps keep their order.

use std::fmt::Write as _;

use serde_json::{Number, Value};

/// Writes `v` as a block-style YAML document (no `---`).
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => write_map(&mut out, m, 0),
        Value::Array(a) if !a.is_empty() => write_seq(&mut out, a, 0),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number(n),
        Value::String(s) => quote(s),
        Value::Array(a) if a.is_empty() => "[]".to_string(),
        Value::Object(m) if m.is_empty() => "{}".to_string(),
        // Non-empty containers are written in block style by the callers.
        _ => String::new(),
    }
}

/// Plain words that YAML 1.1 (booleans: `y|Y|yes|...|on|off`, null) or YAML 1.2 (`true`,
/// `false`, `null`) resolves to something other than a string, compared ignoring case.
/// Numbers, `.inf`, `.nan`, timestamps, `~`, `<<` and `=` cannot be plain keys anyway:
/// they start with a digit, sign, dot or symbol.
const NOT_STRINGS: &[&str] = &["y", "n", "yes", "no", "true", "false", "on", "off", "null"];

/// A number as JSON writes it, except that a float in exponent form gets a fraction and
/// a signed exponent: YAML 1.1 reads `1e30` as a string, `1.0e+30` as a float.
fn number(n: &Number) -> String {
    let s = n.to_string();
    if !n.is_f64() {
        return s;
    }
    let Some((mantissa, exponent)) = s.split_once(['e', 'E']) else {
        return s;
    };
    let dot = if mantissa.contains('.') { "" } else { ".0" };
    let sign = if exponent.starts_with(['-', '+']) {
        ""
    } else {
        "+"
    };
    format!("{mantissa}{dot}e{sign}{exponent}")
}

/// `s` as a double-quoted scalar that YAML 1.1 and 1.2 readers (and JSON) read back
/// unchanged.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // C0 and C1 controls and DEL (YAML refuses them raw), NEL and the line and
            // paragraph separators (line breaks to YAML, folded into spaces), the byte
            // order mark and the non-characters U+FFFE and U+FFFF.
            '\u{0}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{feff}'
            | '\u{fffe}'
            | '\u{ffff}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && !NOT_STRINGS.iter().any(|w| k.eq_ignore_ascii_case(w));
    if plain { k.to_string() } else { quote(k) }
}

fn write_map(out: &mut String, m: &serde_json::Map<String, Value>, indent: usize) {
    let pad = " ".repeat(indent);
    for (k, v) in m {
        out.push_str(&pad);
        out.push_str(&key(k));
        out.push(':');
        match v {
            Value::Object(inner) if !inner.is_empty() => {
                out.push('\n');
                write_map(out, inner, indent + 2);
            }
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                write_seq(out, items, indent);
            }
            other => {
                out.push(' ');
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

fn write_seq(out: &mut String, items: &[Value], indent: usize) {
    let pad = " ".repeat(indent);
    for item in items {
        out.push_str(&pad);
        out.push('-');
        match item {
            Value::Object(m) if !m.is_empty() => {
                // First entry on the dash line, the rest aligned under it.
                let mut first = String::new();
                write_map(&mut first, m, indent + 2);
                out.push(' ');
                out.push_str(first.trim_start_matches(' '));
            }
            Value::Array(a) if !a.is_empty() => {
                out.push('\n');
                write_seq(out, a, indent + 2);
            }
            other => {
                out.push(' ');
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_that_look_like_numbers_stay_strings() {
        let v = json!({"pci": "0000:18:00.0", "no": "no", "n": 3, "list": ["a", {"x": 1, "y": [1, 2]}], "e": [], "m": {}});
        let y = to_yaml(&v);
        assert!(y.contains("pci: \"0000:18:00.0\""), "{y}");
        // Regression: the key was written bare, and YAML 1.1 readers read `no:` as the
        // key `false` (crates/core/tests/yaml.rs reads it back with PyYAML).
        assert!(y.contains("\"no\": \"no\""), "{y}");
        let back: Value = serde_yaml_ng::from_str(&y).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn keys_a_yaml_1_1_reader_would_not_read_as_strings_are_quoted() {
        for k in [
            "y", "N", "yes", "No", "ON", "off", "true", "False", "null", "NULL",
        ] {
            assert_eq!(key(k), format!("\"{k}\""));
        }
        for k in [
            "1",
            "0x1f",
            "1e3",
            "-1",
            "+1",
            ".5",
            ".inf",
            "~",
            "<<",
            "=",
            "2001-12-14",
            "",
        ] {
            assert_eq!(key(k), serde_json::to_string(k).unwrap(), "{k}");
        }
        // Words that merely start like one stay plain.
        for k in [
            "nodes",
            "only",
            "yesterday",
            "nullable",
            "offset",
            "n_gpus",
            "gpu-0",
        ] {
            assert_eq!(key(k), k);
        }
    }
}
