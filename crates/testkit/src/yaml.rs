//! YAML read back the way other tools read it: PyYAML's YAML 1.1 `safe_load` (the
//! resolver of older Kubernetes tooling and most Python scripts), compared as JSON with
//! what was written. Callers check `Prerequisite::python_module("yaml", ...)` first.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

/// Reads `yaml` with PyYAML's YAML 1.1 `safe_load` and returns it as JSON.
///
/// # Panics
///
/// When python3 cannot run or PyYAML rejects the text (the message shows it).
pub fn pyyaml(yaml: &str) -> Value {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml\n\
             print(json.dumps(yaml.safe_load(sys.stdin.buffer.read().decode('utf-8'))))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3: {e}"));
    child
        .stdin
        .take()
        .unwrap_or_else(|| panic!("python3 has no stdin"))
        .write_all(yaml.as_bytes())
        .unwrap_or_else(|e| panic!("writing to python3: {e}"));
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for python3: {e}"));
    assert!(
        out.status.success(),
        "PyYAML rejected:\n{yaml}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("python3 printed no JSON: {e}"))
}

/// Where `got` first differs from `want` (a JSON-pointer-like path and what was read
/// against what was written), or `None` when they are equal. `at` prefixes the path.
pub fn difference(got: &Value, want: &Value, at: &str) -> Option<String> {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) if g.len() == w.len() => {
            w.iter().find_map(|(k, wv)| match g.get(k) {
                Some(gv) => difference(gv, wv, &format!("{at}/{k}")),
                None => Some(format!("{at}: key {k:?} read as one of {:?}", g.keys())),
            })
        }
        (Value::Array(g), Value::Array(w)) if g.len() == w.len() => g
            .iter()
            .zip(w)
            .enumerate()
            .find_map(|(i, (gv, wv))| difference(gv, wv, &format!("{at}/{i}"))),
        _ if got == want => None,
        _ => Some(format!("{at}: read {got}, wrote {want}")),
    }
}
