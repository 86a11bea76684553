//! `dcgmi diag -j`: DCGM 4.x (`"DCGM Diagnostic"`, each test's verdict in
//! `test_summary.status`, per-entity `results` with `entity_group` and `entity_id`) and
//! 3.x (`"DCGM GPU Diagnostic"`, the verdicts in `results`, GPUs by `gpu_id`).

use serde_json::Value;

use crate::Error;
use crate::results::{EntityResult, Results, Status, Test, Tool};

fn status(s: &str) -> Option<Status> {
    Some(match s.trim().to_ascii_lowercase().as_str() {
        "pass" | "passed" => Status::Passed,
        "fail" | "failed" => Status::Fail,
        "warn" | "warning" => Status::Warn,
        "skip" | "skipped" | "not run" => Status::Skip,
        _ => return None,
    })
}

fn id(v: Option<&Value>) -> Option<u32> {
    match v? {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Reads `dcgmi diag -j` of DCGM 3.x or 4.x; errors give the JSON path.
///
/// # Errors
///
/// [`Error::Format`]: not DCGM's layout, a status it does not write.
pub fn parse_json(text: &str, source: &str) -> Result<Results, Error> {
    let bad = |at: String, message: String| Error::format(source, at, message);
    let root: Value =
        serde_json::from_str(text).map_err(|e| bad(format!("line {}", e.line()), e.to_string()))?;
    let (key, diag) = ["DCGM Diagnostic", "DCGM GPU Diagnostic"]
        .into_iter()
        .find_map(|k| root.get(k).map(|d| (k, d)))
        .ok_or_else(|| {
            bad(
                "$".into(),
                "neither \"DCGM Diagnostic\" (4.x) nor \"DCGM GPU Diagnostic\" (3.x): not dcgmi diag's JSON".into(),
            )
        })?;
    let string = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let metadata = root.get("metadata");
    let mut results = Results {
        tool: Tool::DcgmDiag,
        source: source.to_string(),
        version: string(metadata.and_then(|m| m.get("version")))
            .or_else(|| string(diag.get("version"))),
        driver_version: string(metadata.and_then(|m| m.get("Driver Version Detected")))
            .or_else(|| string(diag.get("Driver Version Detected"))),
        devices: Vec::new(),
        error: string(diag.get("runtime_error")),
        tests: Vec::new(),
    };
    let categories = match diag.get("test_categories") {
        None => return Ok(results),
        Some(c) => c
            .as_array()
            .ok_or_else(|| bad(format!("{key}.test_categories"), "not an array".into()))?,
    };
    for (ci, cat) in categories.iter().enumerate() {
        let tests = cat.get("tests").and_then(Value::as_array).ok_or_else(|| {
            bad(
                format!("{key}.test_categories[{ci}].tests"),
                "missing or not an array".into(),
            )
        })?;
        for (ti, t) in tests.iter().enumerate() {
            let at = |f: &str| format!("{key}.test_categories[{ci}].tests[{ti}]{f}");
            let name = string(t.get("name")).ok_or_else(|| bad(at(".name"), "missing".into()))?;
            let mut entities = Vec::new();
            for (ri, r) in t
                .get("results")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                let raw = string(r.get("status"))
                    .ok_or_else(|| bad(at(&format!(".results[{ri}].status")), "missing".into()))?;
                let st = status(&raw).ok_or_else(|| {
                    bad(
                        at(&format!(".results[{ri}].status")),
                        format!("{raw:?} is not a DCGM status"),
                    )
                })?;
                let warnings = r
                    .get("warnings")
                    .and_then(Value::as_array)
                    .map(|ws| {
                        ws.iter()
                            .filter_map(|w| w.get("warning").and_then(Value::as_str).or(w.as_str()))
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                entities.push(EntityResult {
                    group: string(r.get("entity_group")).unwrap_or_else(|| "GPU".into()),
                    id: id(r.get("entity_id"))
                        .or_else(|| id(r.get("gpu_id")))
                        .unwrap_or(0),
                    status: st,
                    warnings,
                });
            }
            // 4.x: the test's verdict; 3.x: the worst of its results.
            let summary = t
                .get("test_summary")
                .and_then(|s| s.get("status"))
                .and_then(Value::as_str);
            let verdict = match summary {
                Some(s) => status(s).ok_or_else(|| {
                    bad(
                        at(".test_summary.status"),
                        format!("{s:?} is not a DCGM status"),
                    )
                })?,
                None => [Status::Fail, Status::Warn, Status::Passed, Status::Skip]
                    .into_iter()
                    .find(|s| entities.iter().any(|e| e.status == *s))
                    .unwrap_or(Status::Skip),
            };
            let failing: Vec<String> = entities
                .iter()
                .filter(|e| matches!(e.status, Status::Fail | Status::Warn))
                .flat_map(|e| {
                    e.warnings
                        .iter()
                        .map(move |w| format!("{} {}: {w}", e.group, e.id))
                })
                .collect();
            results.tests.push(Test {
                name,
                status: verdict,
                message: (!failing.is_empty()).then(|| failing.join("; ")),
                matrices: Vec::new(),
                collective: None,
                entities,
            });
        }
    }
    Ok(results)
}
