//! Golden files: an output compared with the file kept in the repository, rewritten
//! instead when `UPDATE_GOLDEN` is set (then review the diff).

use std::path::Path;

/// The environment variable that rewrites golden files instead of comparing.
pub const UPDATE: &str = "UPDATE_GOLDEN";

/// Whether golden files are being rewritten (`UPDATE_GOLDEN` set and not `0`).
pub fn updating() -> bool {
    std::env::var_os(UPDATE).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Compares `actual` with the text in `path`, or writes it there when [`updating`].
///
/// # Panics
///
/// When they differ or the file is missing: the message names the file and says how to
/// rewrite it.
pub fn assert_text(path: &Path, actual: &str) {
    if updating() {
        write(path, actual);
        return;
    }
    let expected = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("golden file {}: {e} ({UPDATE}=1 writes it)", path.display()));
    assert!(
        actual == expected,
        "{} changed; if on purpose, rerun with {UPDATE}=1 and review the diff\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

/// Compares `actual` with the JSON document in `path` (as values: formatting aside), or
/// writes it there pretty-printed when [`updating`].
///
/// # Panics
///
/// When they differ, the file is missing or is not JSON.
pub fn assert_json(path: &Path, actual: &serde_json::Value) {
    if updating() {
        let text = serde_json::to_string_pretty(actual).expect("a JSON value prints") + "\n";
        write(path, &text);
        return;
    }
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("golden file {}: {e} ({UPDATE}=1 writes it)", path.display()));
    let expected: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("golden file {}: not JSON: {e}", path.display()));
    assert!(
        *actual == expected,
        "{} differs; if on purpose, rerun with {UPDATE}=1 and review the diff\n--- expected\n{expected:#}\n--- actual\n{actual:#}",
        path.display()
    );
}

/// Writes a golden file (creating its directory).
///
/// # Panics
///
/// When it cannot be written.
pub fn write(path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_differing_text_fails_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("linkwise-golden-{}", std::process::id()));
        let f = dir.join("x.txt");
        write(&f, "one\n");
        assert_text(&f, "one\n");
        let r = std::panic::catch_unwind(|| assert_text(&f, "two\n"));
        let msg = r
            .unwrap_err()
            .downcast::<String>()
            .map(|s| *s)
            .unwrap_or_default();
        assert!(msg.contains("x.txt changed"), "{msg}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
