//! Module files on disk.

use std::path::{Path, PathBuf};

/// Module files (`NAME.ko`, `.ko.xz`, `.ko.zst`, `.ko.gz`) under `dir`, found by walking
/// it (at most 20,000 directories, symlinks not followed; `build` and `source`, which
/// point into kernel headers, skipped); `-` and `_` in names are the same, as for modprobe.
pub fn find_modules(dir: &Path, names: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    let mut seen = 0usize;
    while let Some(d) = todo.pop() {
        seen += 1;
        if seen > 20_000 {
            break;
        }
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() {
                // build/ and source/ point into kernel headers, not modules.
                if !matches!(e.file_name().to_str(), Some("build" | "source")) {
                    todo.push(p);
                }
            } else if let Some(name) = p.file_name().and_then(|n| n.to_str()) {
                let stem = name
                    .strip_suffix(".xz")
                    .or_else(|| name.strip_suffix(".zst"))
                    .or_else(|| name.strip_suffix(".gz"))
                    .unwrap_or(name);
                if let Some(module) = stem.strip_suffix(".ko")
                    && names
                        .iter()
                        .any(|n| n.replace('-', "_") == module.replace('-', "_"))
                {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}
