//! Which tool wrote a file: JSON with an `"nvbandwidth"` object or a DCGM diagnostic
//! object, linkwise's own results model, nvbandwidth's text (`Running TEST.`), or
//! nccl-tests' table.

use crate::results::Results;
use crate::{Error, dcgm, nccl, nvbandwidth};

/// Reads `text` (from `source`) in whichever supported format it is.
///
/// # Errors
///
/// [`Error::Format`]: a format none of the readers knows, or the reader's error.
pub fn parse(text: &str, source: &str) -> Result<Results, Error> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        // Whole JSON: the top-level keys say whose it is (a string search would take
        // linkwise's model of an nvbandwidth run for nvbandwidth's own JSON).
        if let Ok(serde_json::Value::Object(top)) = serde_json::from_str(text) {
            if top.contains_key("nvbandwidth") {
                return nvbandwidth::parse_json(text, source);
            }
            if top.contains_key("tool") && top.contains_key("tests") {
                return model(text, source);
            }
        }
        if trimmed.contains("\"nvbandwidth\"") {
            return nvbandwidth::parse_json(text, source);
        }
        if trimmed.contains("\"DCGM Diagnostic\"") || trimmed.contains("\"DCGM GPU Diagnostic\"") {
            return dcgm::parse_json(text, source);
        }
        if trimmed.contains("\"tool\"") && trimmed.contains("\"tests\"") {
            return model(text, source);
        }
        return Err(Error::format(
            source,
            "the whole file".into(),
            "JSON, but neither nvbandwidth's (-j) nor dcgmi diag's (-j)".into(),
        ));
    }
    if text.lines().any(|l| l.starts_with("Running ")) {
        return nvbandwidth::parse_text(text, source);
    }
    if text
        .lines()
        .any(|l| l.trim_start().starts_with('#') && l.contains("busbw"))
    {
        return nccl::parse_text(text, source);
    }
    Err(Error::format(
        source,
        "the whole file".into(),
        "not a format linkwise reads: nvbandwidth (JSON or text), nccl-tests (text) or dcgmi diag -j".into(),
    ))
}

/// linkwise's own model (`validate import -o json`, `validate bench -o json`).
fn model(text: &str, source: &str) -> Result<Results, Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let mut r: Results = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| Error::format(source, e.path().to_string(), e.inner().to_string()))?;
    r.source = source.to_string();
    Ok(r)
}
