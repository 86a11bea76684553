//! A tiny RGB raster: antialiased thick lines, alpha-blended spans, a 5x7 bitmap font,
//! and a dependency-free PNG encoder (zlib stored blocks, CRC-32, Adler-32). Enough for
//! a line chart; not a general graphics library.

/// An RGB colour.
pub type Rgb = (u8, u8, u8);

/// A width x height RGB image, row-major.
#[derive(Debug, Clone)]
pub struct Canvas {
    pub width: u32,
    pub height: u32,
    pixels: Vec<u8>,
}

/// f64 pixel coordinate to an integer, saturating (plot coordinates are small).
#[allow(clippy::cast_possible_truncation)]
fn to_i64(v: f64) -> i64 {
    v as i64
}

// === impl Canvas ===

impl Canvas {
    /// A canvas filled with `bg`.
    pub fn new(width: u32, height: u32, bg: Rgb) -> Self {
        let n = width as usize * height as usize;
        let mut pixels = Vec::with_capacity(n * 3);
        for _ in 0..n {
            pixels.extend_from_slice(&[bg.0, bg.1, bg.2]);
        }
        Canvas {
            width,
            height,
            pixels,
        }
    }

    /// Blends `c` over pixel (x, y) with coverage `a` (0..1); outside pixels are ignored.
    pub fn blend(&mut self, x: i64, y: i64, c: Rgb, a: f64) {
        if a <= 0.0 || x < 0 || y < 0 || x >= i64::from(self.width) || y >= i64::from(self.height) {
            return;
        }
        let (Ok(x), Ok(y)) = (usize::try_from(x), usize::try_from(y)) else {
            return;
        };
        let i = (y * self.width as usize + x) * 3;
        let a = a.min(1.0);
        for (k, v) in [c.0, c.1, c.2].into_iter().enumerate() {
            let old = f64::from(self.pixels[i + k]);
            let new = old + (f64::from(v) - old) * a;
            // Between two u8 values: in range.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            {
                self.pixels[i + k] = new.round().clamp(0.0, 255.0) as u8;
            }
        }
    }

    /// An antialiased line of `width` pixels with round caps.
    pub fn line(&mut self, a: (f64, f64), b: (f64, f64), width: f64, c: Rgb) {
        segment(a, b, width, |x, y, cov| self.blend(x, y, c, cov));
    }

    /// A polyline of antialiased segments; each pixel takes the strongest coverage of
    /// any segment, so the joints do not darken where segments overlap.
    pub fn polyline(&mut self, pts: &[(f64, f64)], width: f64, c: Rgb) {
        let (w, h) = (i64::from(self.width), i64::from(self.height));
        let mut cov = vec![0f32; self.pixels.len() / 3];
        let mut stamp = |x: i64, y: i64, v: f64| {
            if (0..w).contains(&x)
                && (0..h).contains(&y)
                && let Ok(i) = usize::try_from(y * w + x)
            {
                // Coverage in 0..1: f32 is plenty.
                #[allow(clippy::cast_possible_truncation)]
                let v = v as f32;
                cov[i] = cov[i].max(v);
            }
        };
        for s in pts.windows(2) {
            segment(s[0], s[1], width, &mut stamp);
        }
        if let [p] = pts {
            segment(*p, *p, width, &mut stamp);
        }
        for (i, v) in cov.into_iter().enumerate() {
            if v > 0.0
                && let (Ok(x), Ok(y)) = (
                    i64::try_from(i % self.width as usize),
                    i64::try_from(i / self.width as usize),
                )
            {
                self.blend(x, y, c, f64::from(v));
            }
        }
    }

    /// Fills the band between two x-monotone curves given as (x, low y, high y) samples,
    /// blending `c` with `alpha`; each pixel column is filled once.
    pub fn band(&mut self, pts: &[(f64, f64, f64)], c: Rgb, alpha: f64) {
        for (i, w) in pts.windows(2).enumerate() {
            let ((xa, la, ha), (xb, lb, hb)) = (w[0], w[1]);
            let last = i + 2 == pts.len();
            let start = to_i64(xa.round());
            let end = to_i64(xb.round());
            let end = if last { end + 1 } else { end };
            for x in start..end {
                let t = if xb > xa {
                    ((x as f64 - xa) / (xb - xa)).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let (lo, hi) = (la + (lb - la) * t, ha + (hb - ha) * t);
                let (top, bottom) = (lo.min(hi), lo.max(hi));
                for y in to_i64(top.round())..=to_i64(bottom.round()) {
                    self.blend(x, y, c, alpha);
                }
            }
        }
    }

    /// Text in the 5x7 font at `scale`, its top-left corner at (x, y); lower-case letters
    /// print as capitals. Returns the width drawn.
    pub fn text(&mut self, x: f64, y: f64, s: &str, scale: u32, c: Rgb) -> f64 {
        self.text_dir(x, y, s, scale, c, false)
    }

    /// Text running upwards (rotated 90° counter-clockwise), starting at (x, y) as its
    /// bottom-left corner.
    pub fn text_up(&mut self, x: f64, y: f64, s: &str, scale: u32, c: Rgb) -> f64 {
        self.text_dir(x, y, s, scale, c, true)
    }

    fn text_dir(&mut self, x: f64, y: f64, s: &str, scale: u32, c: Rgb, up: bool) -> f64 {
        let sc = i64::from(scale.max(1));
        let (x0, y0) = (to_i64(x.round()), to_i64(y.round()));
        let mut pen = 0i64;
        for ch in s.chars() {
            let g = glyph(ch);
            for (row, bits) in g.iter().enumerate() {
                let row = i64::try_from(row).unwrap_or(0);
                for col in 0..5i64 {
                    if bits & (0x10 >> col) == 0 {
                        continue;
                    }
                    for dy in 0..sc {
                        for dx in 0..sc {
                            let (u, v) = (pen + col * sc + dx, row * sc + dy);
                            if up {
                                self.blend(x0 + v, y0 - u, c, 1.0);
                            } else {
                                self.blend(x0 + u, y0 + v, c, 1.0);
                            }
                        }
                    }
                }
            }
            pen += 6 * sc;
        }
        (pen - sc).max(0) as f64
    }

    /// The width `s` takes at `scale`.
    pub fn text_width(s: &str, scale: u32) -> f64 {
        let n = s.chars().count() as f64;
        (n * 6.0 - 1.0).max(0.0) * f64::from(scale.max(1))
    }

    /// The image as a PNG file (8-bit RGB, no interlace, filter 0, stored deflate).
    pub fn to_png(&self) -> Vec<u8> {
        let row = self.width as usize * 3;
        let mut raw = Vec::with_capacity((row + 1) * self.height as usize);
        for r in self.pixels.chunks(row.max(1)) {
            raw.push(0);
            raw.extend_from_slice(r);
        }
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::with_capacity(13);
        ihdr.extend_from_slice(&self.width.to_be_bytes());
        ihdr.extend_from_slice(&self.height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        chunk(&mut png, b"IHDR", &ihdr);
        chunk(&mut png, b"IDAT", &zlib_stored(&raw));
        chunk(&mut png, b"IEND", &[]);
        png
    }
}

/// Calls `f(x, y, coverage)` for the pixels near the segment a-b drawn `width` wide
/// with round caps (coverage from the distance of each pixel centre to the segment).
fn segment(a: (f64, f64), b: (f64, f64), width: f64, mut f: impl FnMut(i64, i64, f64)) {
    let r = width / 2.0;
    let ((x0, y0), (x1, y1)) = (a, b);
    let (dx, dy) = (x1 - x0, y1 - y0);
    let len2 = dx * dx + dy * dy;
    let (xa, xb) = (
        to_i64((x0.min(x1) - r - 1.0).floor()),
        to_i64((x0.max(x1) + r + 1.0).ceil()),
    );
    let (ya, yb) = (
        to_i64((y0.min(y1) - r - 1.0).floor()),
        to_i64((y0.max(y1) + r + 1.0).ceil()),
    );
    for y in ya..=yb {
        for x in xa..=xb {
            let (px, py) = (x as f64 + 0.5, y as f64 + 0.5);
            let t = if len2 > 0.0 {
                (((px - x0) * dx + (py - y0) * dy) / len2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let (qx, qy) = (x0 + t * dx - px, y0 + t * dy - py);
            let d = (qx * qx + qy * qy).sqrt();
            let cov = (r + 0.5 - d).clamp(0.0, 1.0);
            if cov > 0.0 {
                f(x, y, cov);
            }
        }
    }
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    // PNG chunks are far below 4 GiB here (one stored IDAT of a chart).
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A zlib stream of stored (uncompressed) deflate blocks.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 65_535 * 5 + 16);
    // CMF: deflate, 32 KiB window; FLG: fastest, check bits making the pair a multiple of 31.
    out.extend_from_slice(&[0x78, 0x01]);
    let mut blocks = data.chunks(65_535).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(b) = blocks.next() {
        let last = blocks.peek().is_none();
        out.push(u8::from(last));
        let len = u16::try_from(b.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(b);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

/// CRC-32 (IEEE, reflected, as PNG uses).
pub fn crc32(data: &[u8]) -> u32 {
    // i < 256: the cast is exact.
    #[allow(clippy::cast_possible_truncation)]
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c = TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    c ^ 0xFFFF_FFFF
}

/// Adler-32 (zlib's checksum).
pub fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= 65_521;
        b %= 65_521;
    }
    (b << 16) | a
}

/// The 5x7 glyph of `c` (rows top to bottom, 5 bits each, leftmost pixel in bit 4).
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        ' ' => [0; 7],
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'A' => [0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '.' => [0, 0, 0, 0, 0, 0x0C, 0x0C],
        ',' => [0, 0, 0, 0, 0x0C, 0x04, 0x08],
        '-' => [0, 0, 0, 0x1F, 0, 0, 0],
        '+' => [0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        '/' => [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0],
        ':' => [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0],
        ';' => [0, 0x0C, 0x0C, 0, 0x0C, 0x04, 0x08],
        '\'' => [0x0C, 0x04, 0x08, 0, 0, 0, 0],
        '"' => [0x0A, 0x0A, 0x0A, 0, 0, 0, 0],
        '!' => [0x04, 0x04, 0x04, 0x04, 0x04, 0, 0x04],
        '?' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0, 0x04],
        '*' => [0, 0x04, 0x15, 0x0E, 0x15, 0x04, 0],
        '#' => [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A],
        '<' => [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02],
        '>' => [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08],
        '[' => [0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E],
        ']' => [0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E],
        '&' => [0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D],
        '=' => [0, 0, 0x1F, 0, 0x1F, 0, 0],
        '_' => [0, 0, 0, 0, 0, 0, 0x1F],
        '±' => [0x04, 0x04, 0x1F, 0x04, 0x04, 0, 0x1F],
        '×' => [0, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0],
        _ => [0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_known_values() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        let png = Canvas::new(3, 2, (255, 0, 0)).to_png();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert_eq!(&png[12..16], b"IHDR");
    }
}
