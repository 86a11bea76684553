//! The allocation-ratio chart (the FGD paper's Fig. 9(a) axes): one line per policy
//! (mean over seeds) with a light band of ± one standard deviation, as SVG or PNG. Both
//! renderers share one layout, so the two files show the same picture.

use std::fmt::Write;

use super::raster::{Canvas, Rgb};

const PALETTE: [Rgb; 8] = [
    (0x4e, 0x79, 0xa7),
    (0xf2, 0x8e, 0x2b),
    (0x59, 0xa1, 0x4f),
    (0xe1, 0x57, 0x59),
    (0xb0, 0x7a, 0xa1),
    (0x76, 0xb7, 0xb2),
    (0x9c, 0x75, 0x5f),
    (0xed, 0xc9, 0x48),
];

/// One line: (x, mean, sd) samples in x order.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64, f64)>,
}

/// A chart of series on fixed axes.
#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    pub subtitle: String,
    pub x_label: String,
    pub y_label: String,
    /// x axis range and tick step.
    pub x: (f64, f64, f64),
    /// y axis range and tick step.
    pub y: (f64, f64, f64),
    pub series: Vec<Series>,
}

/// Pixel geometry.
struct Layout {
    w: f64,
    h: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
}

const LAYOUT: Layout = Layout {
    w: 960.0,
    h: 600.0,
    left: 80.0,
    right: 720.0,
    top: 70.0,
    bottom: 530.0,
};

fn hex((r, g, b): Rgb) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn ticks((lo, hi, step): (f64, f64, f64)) -> Vec<f64> {
    let mut v = Vec::new();
    let mut t = lo;
    while t <= hi + step * 1e-9 && step > 0.0 {
        v.push(t);
        t += step;
    }
    v
}

fn label(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

// === impl Chart ===

impl Chart {
    fn px(&self, x: f64) -> f64 {
        let (lo, hi, _) = self.x;
        LAYOUT.left + (x - lo) / (hi - lo) * (LAYOUT.right - LAYOUT.left)
    }

    fn py(&self, y: f64) -> f64 {
        let (lo, hi, _) = self.y;
        let y = y.clamp(lo, hi);
        LAYOUT.bottom - (y - lo) / (hi - lo) * (LAYOUT.bottom - LAYOUT.top)
    }

    fn color(i: usize) -> Rgb {
        PALETTE[i % PALETTE.len()]
    }

    /// The chart as a standalone SVG document.
    pub fn svg(&self) -> String {
        let l = &LAYOUT;
        let mut s = String::new();
        let font = "font-family=\"Helvetica, Arial, sans-serif\"";
        let _ = writeln!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">",
            w = l.w,
            h = l.h
        );
        let _ = writeln!(
            s,
            "<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>",
            l.w, l.h
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"30\" {font} font-size=\"18\" font-weight=\"bold\" fill=\"#222\">{}</text>",
            l.left,
            esc(&self.title)
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"52\" {font} font-size=\"13\" fill=\"#555\">{}</text>",
            l.left,
            esc(&self.subtitle)
        );
        // Gridlines and tick labels.
        let _ = writeln!(s, "<g stroke=\"#e3e3e3\" stroke-width=\"1\">");
        for t in ticks(self.x) {
            let x = self.px(t);
            let _ = writeln!(
                s,
                "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\"/>",
                l.top, l.bottom
            );
        }
        for t in ticks(self.y) {
            let y = self.py(t);
            let _ = writeln!(
                s,
                "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/>",
                l.left, l.right
            );
        }
        let _ = writeln!(s, "</g>");
        let _ = writeln!(s, "<g {font} font-size=\"12\" fill=\"#333\">");
        for t in ticks(self.x) {
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                self.px(t),
                l.bottom + 18.0,
                label(t)
            );
        }
        for t in ticks(self.y) {
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                l.left - 8.0,
                self.py(t) + 4.0,
                label(t)
            );
        }
        let _ = writeln!(s, "</g>");
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" {font} font-size=\"13\" fill=\"#222\" text-anchor=\"middle\">{}</text>",
            (l.left + l.right) / 2.0,
            l.bottom + 45.0,
            esc(&self.x_label)
        );
        let (yx, yy) = (24.0, (l.top + l.bottom) / 2.0);
        let _ = writeln!(
            s,
            "<text x=\"{yx}\" y=\"{yy:.1}\" {font} font-size=\"13\" fill=\"#222\" text-anchor=\"middle\" transform=\"rotate(-90 {yx} {yy:.1})\">{}</text>",
            esc(&self.y_label)
        );
        // Bands first, then lines on top of every band.
        for (i, se) in self.series.iter().enumerate() {
            if se.points.len() < 2 {
                continue;
            }
            let mut pts: Vec<String> = se
                .points
                .iter()
                .map(|&(x, m, sd)| format!("{:.2},{:.2}", self.px(x), self.py(m + sd)))
                .collect();
            pts.extend(
                se.points
                    .iter()
                    .rev()
                    .map(|&(x, m, sd)| format!("{:.2},{:.2}", self.px(x), self.py(m - sd))),
            );
            let _ = writeln!(
                s,
                "<polygon points=\"{}\" fill=\"{}\" fill-opacity=\"0.18\" stroke=\"none\"/>",
                pts.join(" "),
                hex(Self::color(i))
            );
        }
        for (i, se) in self.series.iter().enumerate() {
            let pts: Vec<String> = se
                .points
                .iter()
                .map(|&(x, m, _)| format!("{:.2},{:.2}", self.px(x), self.py(m)))
                .collect();
            let _ = writeln!(
                s,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\" stroke-linejoin=\"round\"><title>{}</title></polyline>",
                pts.join(" "),
                hex(Self::color(i)),
                esc(&se.name)
            );
        }
        // Axes.
        let _ = writeln!(
            s,
            "<path d=\"M{:.1} {:.1} V{:.1} H{:.1}\" fill=\"none\" stroke=\"#333\" stroke-width=\"1.2\"/>",
            l.left, l.top, l.bottom, l.right
        );
        // Legend.
        let lx = l.right + 24.0;
        let _ = writeln!(s, "<g {font} font-size=\"13\" fill=\"#222\">");
        for (i, se) in self.series.iter().enumerate() {
            let y = l.top + 10.0 + 24.0 * i as f64;
            let c = hex(Self::color(i));
            let _ = writeln!(
                s,
                "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"28\" height=\"12\" fill=\"{c}\" fill-opacity=\"0.18\"/>",
                y - 6.0
            );
            let _ = writeln!(
                s,
                "<line x1=\"{lx:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{c}\" stroke-width=\"2\"/>",
                lx + 28.0
            );
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                lx + 36.0,
                y + 4.5,
                esc(&se.name)
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"{lx:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#666\">line: mean; band: ± 1 sd</text>",
            l.top + 10.0 + 24.0 * self.series.len() as f64 + 6.0
        );
        let _ = writeln!(s, "</g>");
        s.push_str("</svg>\n");
        s
    }

    /// The same chart as a PNG image (960 x 600, RGB).
    pub fn png(&self) -> Vec<u8> {
        let l = &LAYOUT;
        // The layout's sizes are small whole numbers.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let mut c = Canvas::new(l.w as u32, l.h as u32, (255, 255, 255));
        let ink = (0x22, 0x22, 0x22);
        let grey = (0x55, 0x55, 0x55);
        c.text(l.left, 18.0, &self.title, 2, ink);
        c.text(l.left, 42.0, &self.subtitle, 1, grey);
        for t in ticks(self.x) {
            let x = self.px(t).round() + 0.5;
            c.line((x, l.top), (x, l.bottom), 1.0, (0xe3, 0xe3, 0xe3));
        }
        for t in ticks(self.y) {
            let y = self.py(t).round() + 0.5;
            c.line((l.left, y), (l.right, y), 1.0, (0xe3, 0xe3, 0xe3));
        }
        for t in ticks(self.x) {
            let s = label(t);
            let x = self.px(t) - Canvas::text_width(&s, 2) / 2.0;
            c.text(x, l.bottom + 8.0, &s, 2, (0x33, 0x33, 0x33));
        }
        for t in ticks(self.y) {
            let s = label(t);
            let x = l.left - 8.0 - Canvas::text_width(&s, 2);
            c.text(x, self.py(t) - 7.0, &s, 2, (0x33, 0x33, 0x33));
        }
        let xw = Canvas::text_width(&self.x_label, 2);
        c.text(
            (l.left + l.right) / 2.0 - xw / 2.0,
            l.bottom + 34.0,
            &self.x_label,
            2,
            ink,
        );
        let yw = Canvas::text_width(&self.y_label, 2);
        c.text_up(
            12.0,
            (l.top + l.bottom) / 2.0 + yw / 2.0,
            &self.y_label,
            2,
            ink,
        );
        for (i, se) in self.series.iter().enumerate() {
            let band: Vec<(f64, f64, f64)> = se
                .points
                .iter()
                .map(|&(x, m, sd)| (self.px(x), self.py(m - sd), self.py(m + sd)))
                .collect();
            c.band(&band, Self::color(i), 0.18);
        }
        for (i, se) in self.series.iter().enumerate() {
            let pts: Vec<(f64, f64)> = se
                .points
                .iter()
                .map(|&(x, m, _)| (self.px(x), self.py(m)))
                .collect();
            c.polyline(&pts, 2.0, Self::color(i));
        }
        c.line((l.left, l.top), (l.left, l.bottom), 1.2, (0x33, 0x33, 0x33));
        c.line(
            (l.left, l.bottom),
            (l.right, l.bottom),
            1.2,
            (0x33, 0x33, 0x33),
        );
        let lx = l.right + 24.0;
        for (i, se) in self.series.iter().enumerate() {
            let y = l.top + 10.0 + 24.0 * i as f64;
            let col = Self::color(i);
            c.band(
                &[(lx, y - 6.0, y + 6.0), (lx + 28.0, y - 6.0, y + 6.0)],
                col,
                0.18,
            );
            c.line((lx, y), (lx + 28.0, y), 2.0, col);
            c.text(lx + 36.0, y - 7.0, &se.name, 2, ink);
        }
        c.text(
            lx,
            l.top + 4.0 + 24.0 * self.series.len() as f64,
            "line: mean, band: ± 1 sd",
            1,
            (0x66, 0x66, 0x66),
        );
        c.to_png()
    }
}
