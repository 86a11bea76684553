//! Bounded reading of input files and standard input.
//!
//! Every file or stream linkwise reads as a whole goes through here, so that
//! `--source snapshot:/dev/zero`, a FIFO that never ends or a multi-gigabyte file
//! stops at a cap with an error naming the file and the cap, instead of growing
//! memory without bound. The cap is generous (64 MiB by default: the largest
//! snapshot linkwise writes, a 72-GPU rack, is well under 1 MiB, the openb trace
//! files a few MiB) and set once per process by the CLI (`--max-input-bytes`).

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::ReadError;

/// The default cap on one input: 64 MiB.
pub const DEFAULT_MAX_INPUT_BYTES: u64 = 64 * 1024 * 1024;

static MAX_INPUT_BYTES: AtomicU64 = AtomicU64::new(DEFAULT_MAX_INPUT_BYTES);

/// Sets the cap for every later read in this process (at least 1 byte).
pub fn set_max_input_bytes(cap: u64) {
    MAX_INPUT_BYTES.store(cap.max(1), Ordering::Relaxed);
}

/// The cap in force.
pub fn max_input_bytes() -> u64 {
    MAX_INPUT_BYTES.load(Ordering::Relaxed)
}

/// Reads at most `cap` bytes from `reader`; more is an error of kind `InvalidData`
/// whose message names the cap. Reading stops at `cap + 1` bytes.
pub fn read_bounded(reader: impl Read, cap: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    reader.take(cap.saturating_add(1)).read_to_end(&mut buf)?;
    if buf.len() as u64 > cap {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "larger than the input limit of {} (raise it with --max-input-bytes)",
                human_bytes(cap)
            ),
        ));
    }
    Ok(buf)
}

/// Reads a whole file (`-` is standard input) up to the process-wide cap.
pub fn read_capped(path: &Path) -> Result<Vec<u8>, ReadError> {
    read_capped_at(path, max_input_bytes())
}

/// [`read_capped`] with a cap of its own: for inputs that are large by nature (kernel
/// modules and images, up to a few hundred MiB), which the caller bounds itself.
pub fn read_capped_at(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    let read = if path.as_os_str() == "-" {
        read_bounded(std::io::stdin().lock(), cap)
    } else {
        std::fs::File::open(path).and_then(|f| {
            // A directory opens on Linux but fails to read with a confusing EISDIR; say it.
            if f.metadata().is_ok_and(|m| m.is_dir()) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "is a directory, not a file",
                ));
            }
            read_bounded(f, cap)
        })
    };
    read.map_err(|error| ReadError {
        path: path.to_path_buf(),
        error,
    })
}

/// [`read_capped`] as UTF-8 text; invalid UTF-8 is an error naming the byte offset.
pub fn read_to_string_capped(path: &Path) -> Result<String, ReadError> {
    let bytes = read_capped(path)?;
    String::from_utf8(bytes).map_err(|e| ReadError {
        path: path.to_path_buf(),
        error: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        ),
    })
}

/// `1536` -> `1.5 KiB`; exact bytes below 1 KiB.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    #[allow(clippy::cast_precision_loss)]
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    let text = format!("{v:.1}");
    format!("{} {}", text.trim_end_matches(".0"), UNITS[unit])
}

/// Parses a size: plain bytes or with a `K`, `M`, `G` (binary, optional `iB`/`B`) suffix.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (examples: 1048576, 64M, 1GiB)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?} (use K, M or G)")),
    };
    let v = n
        .checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))?;
    if v == 0 {
        return Err("the size must be at least 1 byte".to_string());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_stops_at_the_cap_on_an_endless_stream() {
        // Regression: an endless input (/dev/zero) grew memory without bound.
        let endless = std::io::repeat(0);
        let err = read_bounded(endless, 1000).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("1000 bytes"), "{err}");
        assert_eq!(read_bounded(&[1u8; 1000][..], 1000).unwrap().len(), 1000);
    }

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("0").is_err());
        assert!(parse_size("12X").is_err());
        assert!(parse_size("").is_err());
        assert_eq!(human_bytes(64 << 20), "64 MiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}
