//! Renderers: pure functions from a topology to text.

pub mod graph;
pub mod matrix;
pub mod summary;
pub mod svg;

/// Bytes as a short human string in binary units: whole numbers print bare
/// (`80 GiB`), others with one decimal (`125.5 GiB`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    let mut scale: u64 = 1;
    while unit + 1 < UNITS.len() && n / scale >= 1024 {
        scale *= 1024;
        unit += 1;
    }
    if n.is_multiple_of(scale) {
        format!("{} {}", n / scale, UNITS[unit])
    } else {
        format!("{:.1} {}", n as f64 / scale as f64, UNITS[unit])
    }
}

/// MB/s as GB/s text.
pub fn gbps(mbps: u64) -> String {
    if mbps.is_multiple_of(1000) {
        format!("{} GB/s", mbps / 1000)
    } else {
        format!("{:.1} GB/s", mbps as f64 / 1000.0)
    }
}

/// Left-aligned columns separated by at least two spaces (so the text splits back on
/// runs of two or more spaces); trailing spaces trimmed.
pub fn columns(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; n];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                let pad = widths[i] - c.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_short() {
        assert_eq!(bytes(80 << 30), "80 GiB");
        assert_eq!(bytes(2 << 40), "2 TiB");
        assert_eq!(bytes(1536 << 20), "1.5 GiB");
        assert_eq!(bytes(128_512 << 20), "125.5 GiB");
        assert_eq!(bytes(512), "512 B");
    }

    #[test]
    fn columns_keep_two_spaces() {
        let t = columns(&[
            vec!["a".into(), "bbb".into()],
            vec!["cccc".into(), "d".into()],
        ]);
        assert_eq!(t, "a     bbb\ncccc  d\n");
    }
}
