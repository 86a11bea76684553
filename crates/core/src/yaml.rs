//! A YAML writer that every YAML reader reads the same way.
//!
//! Strings are always double-quoted (JSON escapes are valid YAML), so values such as
//! `0000:18:00.0`, `no`, `1e3` or `550.54` stay strings for YAML 1.1 readers (PyYAML,
//! kubectl's older paths) as they do for YAML 1.2 ones. Keys are quoted only when they
//! are not plain identifiers. Maps keep their order.

use serde_json::Value;

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
        Value::Number(n) => n.to_string(),
        Value::String(s) => Value::String(s.clone()).to_string(),
        Value::Array(a) if a.is_empty() => "[]".to_string(),
        Value::Object(m) if m.is_empty() => "{}".to_string(),
        // Non-empty containers are written in block style by the callers.
        _ => String::new(),
    }
}

fn key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
    if plain {
        k.to_string()
    } else {
        Value::String(k.to_string()).to_string()
    }
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
        assert!(y.contains("no: \"no\""), "{y}");
        let back: Value = serde_yaml_ng::from_str(&y).unwrap();
        assert_eq!(back, v);
    }
}
