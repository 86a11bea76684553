//! The allocation-ratio chart (the FGD paper's Fig. 9(a) axes): one line per policy
//! (mean over seeds) with a light band of ± one standard deviation when there is more
//! than one seed, drawn once as SVG; the PNG is that SVG rendered
//! ([`crate::render`]), so the two files show the same picture.
//!
//! Policies often overlap for most of the x-axis (every policy allocates everything
//! while the cluster is empty), so [`auto_axes`] zooms the axes to where the lines
//! differ, and each line has its own colour, dash pattern and marker shape, drawn the
//! same way in the legend, so that lines lying on top of each other stay apart.

use std::fmt::Write;

use crate::render::{self, RenderError};

/// An RGB colour.
type Rgb = (u8, u8, u8);

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

/// Dash patterns (on, off, ... in pixels); empty is a solid line.
const DASHES: [&[f64]; 8] = [
    &[],
    &[9.0, 4.0],
    &[2.0, 3.0],
    &[12.0, 3.0, 2.0, 3.0],
    &[16.0, 5.0],
    &[5.0, 5.0],
    &[9.0, 3.0, 2.0, 3.0, 2.0, 3.0],
    &[2.0, 7.0],
];

/// Marker shapes, one per series (cycled with the palette).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    Circle,
    Square,
    Triangle,
    Diamond,
    TriangleDown,
    Plus,
    Cross,
    Hexagon,
}

const MARKERS: [Marker; 8] = [
    Marker::Circle,
    Marker::Square,
    Marker::Triangle,
    Marker::Diamond,
    Marker::TriangleDown,
    Marker::Plus,
    Marker::Cross,
    Marker::Hexagon,
];

/// The marker's half size in pixels.
const MARK_R: f64 = 5.0;

/// One line: (x, mean, sd) samples in x order.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64, f64)>,
}

/// An axis: range and tick step.
pub type Axis = (f64, f64, f64);

/// A chart of series on fixed axes.
#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    pub subtitle: String,
    pub x_label: String,
    pub y_label: String,
    /// x axis range and tick step.
    pub x: Axis,
    /// y axis range and tick step.
    pub y: Axis,
    /// Whether the series carry a spread (more than one run): draws the ± 1 sd bands.
    pub spread: bool,
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
    right: 700.0,
    top: 70.0,
    bottom: 530.0,
};

/// Legend sample length.
const SAMPLE: f64 = 44.0;

/// The font of every text: the font embedded for the PNG ([`render::FONT_FAMILY`]) first,
/// then what an SVG viewer without it has.
const FONT: &str = "font-family=\"'DejaVu Sans', Helvetica, Arial, sans-serif\"";

fn hex((r, g, b): Rgb) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn ticks((lo, hi, step): Axis) -> Vec<f64> {
    let mut v = Vec::new();
    if !(step > 0.0 && lo.is_finite() && hi.is_finite()) {
        return v;
    }
    let mut i = 0.0;
    loop {
        let t = lo + i * step;
        if t > hi + step * 1e-9 {
            break;
        }
        v.push(t);
        i += 1.0;
    }
    v
}

/// Decimals a tick step needs (0 for whole steps, 1 for 0.5, 2 for 0.25 ...).
fn decimals(step: f64) -> usize {
    (0..4)
        .find(|&d| {
            let scaled = step * 10f64.powi(i32::try_from(d).unwrap_or(0));
            (scaled - scaled.round()).abs() < 1e-9
        })
        .unwrap_or(4)
}

fn label(v: f64, step: f64) -> String {
    format!("{v:.*}", decimals(step))
}

/// The smallest "nice" step (1, 2, 2.5 or 5 times a power of ten) that covers `span`
/// in at most `max_ticks` intervals.
fn nice_step(span: f64, max_ticks: f64) -> f64 {
    let raw = (span / max_ticks).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw - 1e-12)
        .unwrap_or(10.0 * mag)
}

/// Axes that show where the series differ: the x-axis starts 10 to 20 columns before the
/// first column where the means of the series part (by more than 2% of their widest spread),
/// and the y-axis covers the values (and bands) shown there, rounded out to ticks. One
/// series, or series that never part, keep the whole x range; `y_full` bounds the
/// y-axis (the data never lies outside it).
pub fn auto_axes(
    series: &[Series],
    x_full: (f64, f64),
    y_full: (f64, f64),
    spread: bool,
) -> (Axis, Axis) {
    // Spread of the means per x where at least two series have data.
    let mut by_x: std::collections::BTreeMap<i64, (f64, f64, usize)> = Default::default();
    for se in series {
        for &(x, m, _) in &se.points {
            // Columns are whole numbers; the key only groups equal x.
            #[allow(clippy::cast_possible_truncation)]
            let key = (x * 1000.0).round() as i64;
            let e = by_x
                .entry(key)
                .or_insert((f64::INFINITY, f64::NEG_INFINITY, 0));
            e.0 = e.0.min(m);
            e.1 = e.1.max(m);
            e.2 += 1;
        }
    }
    let widest = by_x
        .values()
        .filter(|e| e.2 >= 2)
        .map(|e| e.1 - e.0)
        .fold(0.0, f64::max);
    let mut x_lo = x_full.0;
    if series.len() >= 2 && widest > 1e-9 {
        let part = by_x
            .iter()
            .find(|(_, e)| e.2 >= 2 && e.1 - e.0 > 0.02 * widest)
            .map(|(k, _)| *k as f64 / 1000.0);
        if let Some(p) = part {
            x_lo = ((p - 10.0) / 10.0).floor() * 10.0;
        }
    }
    let x_lo = x_lo.clamp(x_full.0, x_full.1);
    let x_span = x_full.1 - x_lo;
    let x_step = if x_span <= 40.0 { 5.0 } else { 10.0 };
    let x = (x_lo, x_full.1, x_step);

    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for se in series {
        for &(px, m, sd) in &se.points {
            if px + 1e-9 < x_lo {
                continue;
            }
            let d = if spread { sd } else { 0.0 };
            lo = lo.min(m - d);
            hi = hi.max(m + d);
        }
    }
    if !(lo.is_finite() && hi.is_finite()) {
        let step = nice_step(y_full.1 - y_full.0, 10.0);
        return (x, (y_full.0, y_full.1, step));
    }
    let (lo, hi) = (lo.max(y_full.0), hi.min(y_full.1));
    let step = nice_step((hi - lo).max(1.0), 8.0);
    let mut y_lo = (lo / step).floor() * step;
    let mut y_hi = (hi / step).ceil() * step;
    if y_hi - y_lo < step {
        y_hi = y_lo + step;
    }
    y_lo = y_lo.max(y_full.0);
    y_hi = y_hi.min(y_full.1.max(y_lo + step));
    (x, (y_lo, y_hi, step))
}

// === impl Marker ===

impl Marker {
    /// The outline of a filled marker centred at (cx, cy) with half size `r`; `None` for
    /// the stroked ones (plus, cross).
    fn polygon(self, cx: f64, cy: f64, r: f64) -> Option<Vec<(f64, f64)>> {
        let regular = |n: u32, phase: f64, rr: f64| {
            (0..n)
                .map(|i| {
                    let a = phase + std::f64::consts::TAU * f64::from(i) / f64::from(n);
                    (cx + rr * a.cos(), cy + rr * a.sin())
                })
                .collect::<Vec<_>>()
        };
        let up = -std::f64::consts::FRAC_PI_2;
        match self {
            Marker::Circle => Some(regular(20, 0.0, r)),
            Marker::Square => Some(vec![
                (cx - r * 0.85, cy - r * 0.85),
                (cx + r * 0.85, cy - r * 0.85),
                (cx + r * 0.85, cy + r * 0.85),
                (cx - r * 0.85, cy + r * 0.85),
            ]),
            Marker::Triangle => Some(regular(3, up, r * 1.2)),
            Marker::TriangleDown => Some(regular(3, -up, r * 1.2)),
            Marker::Diamond => Some(regular(4, up, r * 1.2)),
            Marker::Hexagon => Some(regular(6, 0.0, r)),
            Marker::Plus | Marker::Cross => None,
        }
    }

    /// The strokes of a plus or cross marker.
    fn strokes(self, cx: f64, cy: f64, r: f64) -> Vec<((f64, f64), (f64, f64))> {
        match self {
            Marker::Plus => vec![((cx - r, cy), (cx + r, cy)), ((cx, cy - r), (cx, cy + r))],
            Marker::Cross => {
                let d = r * 0.8;
                vec![
                    ((cx - d, cy - d), (cx + d, cy + d)),
                    ((cx - d, cy + d), (cx + d, cy - d)),
                ]
            }
            _ => Vec::new(),
        }
    }

    /// The marker as SVG.
    fn svg(self, cx: f64, cy: f64, c: &str) -> String {
        if let Some(poly) = self.polygon(cx, cy, MARK_R) {
            let pts: Vec<String> = poly.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            format!(
                "<polygon points=\"{}\" fill=\"{c}\" stroke=\"#ffffff\" stroke-width=\"1\"/>",
                pts.join(" ")
            )
        } else {
            let d: String = self
                .strokes(cx, cy, MARK_R)
                .iter()
                .map(|((x0, y0), (x1, y1))| format!("M{x0:.1} {y0:.1}L{x1:.1} {y1:.1}"))
                .collect();
            format!(
                "<path d=\"{d}\" stroke=\"#ffffff\" stroke-width=\"4.5\" stroke-linecap=\"round\"/><path d=\"{d}\" stroke=\"{c}\" stroke-width=\"2.5\" stroke-linecap=\"round\"/>"
            )
        }
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

    fn dash(i: usize) -> &'static [f64] {
        DASHES[i % DASHES.len()]
    }

    fn marker(i: usize) -> Marker {
        MARKERS[i % MARKERS.len()]
    }

    /// The points of series `i` inside the x range.
    fn visible(&self, i: usize) -> Vec<(f64, f64, f64)> {
        let (lo, hi, _) = self.x;
        self.series[i]
            .points
            .iter()
            .copied()
            .filter(|&(x, _, _)| x + 1e-9 >= lo && x <= hi + 1e-9)
            .collect()
    }

    /// Where series `i` gets its markers: about a dozen along the x-axis (every 10
    /// columns on the full axis), staggered per series so that markers of lines on top
    /// of each other do not hide one another.
    fn marker_points(&self, i: usize) -> Vec<(f64, f64)> {
        let n = self.series.len().max(1);
        // A small whole number of columns.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let every = ((self.x.1 - self.x.0) / 13.0).round().clamp(1.0, 10.0) as usize;
        let offset = (i % n) * every / n;
        self.visible(i)
            .into_iter()
            .filter(|&(x, _, _)| {
                // Columns are whole numbers from the axis start.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let k = (x - self.x.0).round().max(0.0) as usize;
                k % every == offset
            })
            .map(|(x, m, _)| (self.px(x), self.py(m)))
            .collect()
    }

    fn legend_y(i: usize) -> f64 {
        LAYOUT.top + 10.0 + 26.0 * i as f64
    }

    fn legend_note(&self) -> &'static str {
        if self.spread {
            "line: mean; band: ± 1 sd"
        } else {
            "one run per policy"
        }
    }

    /// The chart as a standalone SVG document: the layout (`LAYOUT`, `Chart::px`,
    /// `Chart::py`) and one function per drawn part, in drawing order (bands under
    /// lines, lines under markers).
    pub fn svg(&self) -> String {
        let mut s = String::new();
        self.svg_header(&mut s);
        self.svg_grid(&mut s);
        self.svg_tick_labels(&mut s);
        self.svg_axis_labels(&mut s);
        if self.spread {
            self.svg_bands(&mut s);
        }
        self.svg_lines(&mut s);
        self.svg_markers(&mut s);
        Self::svg_axes(&mut s);
        self.svg_legend(&mut s);
        s.push_str("</svg>\n");
        s
    }

    /// The same chart as a PNG image (960 x 600, 8-bit RGB): the SVG rendered.
    pub fn png(&self) -> Result<Vec<u8>, RenderError> {
        render::svg_to_png(&self.svg())
    }

    /// The dash pattern of series `i` as an SVG attribute (empty for a solid line).
    fn dasharray(i: usize) -> String {
        let d = Self::dash(i);
        if d.is_empty() {
            String::new()
        } else {
            let v: Vec<String> = d.iter().map(|x| format!("{x}")).collect();
            format!(" stroke-dasharray=\"{}\"", v.join(" "))
        }
    }

    /// The document element, the white background, the title and the subtitle.
    fn svg_header(&self, s: &mut String) {
        let l = &LAYOUT;
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
            "<text x=\"{}\" y=\"30\" {FONT} font-size=\"18\" font-weight=\"bold\" fill=\"#222\">{}</text>",
            l.left,
            esc(&self.title)
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"52\" {FONT} font-size=\"13\" fill=\"#555\">{}</text>",
            l.left,
            esc(&self.subtitle)
        );
    }

    /// Gridlines at every tick.
    fn svg_grid(&self, s: &mut String) {
        let l = &LAYOUT;
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
    }

    /// The tick labels under the x-axis and left of the y-axis.
    fn svg_tick_labels(&self, s: &mut String) {
        let l = &LAYOUT;
        let _ = writeln!(
            s,
            "<g class=\"x-ticks\" {FONT} font-size=\"12\" fill=\"#333\">"
        );
        for t in ticks(self.x) {
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                self.px(t),
                l.bottom + 18.0,
                label(t, self.x.2)
            );
        }
        let _ = writeln!(s, "</g>");
        let _ = writeln!(
            s,
            "<g class=\"y-ticks\" {FONT} font-size=\"12\" fill=\"#333\">"
        );
        for t in ticks(self.y) {
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                l.left - 8.0,
                self.py(t) + 4.0,
                label(t, self.y.2)
            );
        }
        let _ = writeln!(s, "</g>");
    }

    /// The axis titles (the y one turned upright).
    fn svg_axis_labels(&self, s: &mut String) {
        let l = &LAYOUT;
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" {FONT} font-size=\"13\" fill=\"#222\" text-anchor=\"middle\">{}</text>",
            (l.left + l.right) / 2.0,
            l.bottom + 45.0,
            esc(&self.x_label)
        );
        let (yx, yy) = (24.0, (l.top + l.bottom) / 2.0);
        let _ = writeln!(
            s,
            "<text x=\"{yx}\" y=\"{yy:.1}\" {FONT} font-size=\"13\" fill=\"#222\" text-anchor=\"middle\" transform=\"rotate(-90 {yx} {yy:.1})\">{}</text>",
            esc(&self.y_label)
        );
    }

    /// The ± 1 sd band of every series.
    fn svg_bands(&self, s: &mut String) {
        for i in 0..self.series.len() {
            let pts = self.visible(i);
            if pts.len() < 2 {
                continue;
            }
            let mut poly: Vec<String> = pts
                .iter()
                .map(|&(x, m, sd)| format!("{:.2},{:.2}", self.px(x), self.py(m + sd)))
                .collect();
            poly.extend(
                pts.iter()
                    .rev()
                    .map(|&(x, m, sd)| format!("{:.2},{:.2}", self.px(x), self.py(m - sd))),
            );
            let _ = writeln!(
                s,
                "<polygon class=\"band\" points=\"{}\" fill=\"{}\" fill-opacity=\"0.18\" stroke=\"none\"/>",
                poly.join(" "),
                hex(Self::color(i))
            );
        }
    }

    /// The mean line of every series, in its colour and dash pattern.
    fn svg_lines(&self, s: &mut String) {
        for (i, se) in self.series.iter().enumerate() {
            let pts: Vec<String> = self
                .visible(i)
                .iter()
                .map(|&(x, m, _)| format!("{:.2},{:.2}", self.px(x), self.py(m)))
                .collect();
            let _ = writeln!(
                s,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\" stroke-linejoin=\"round\"{}><title>{}</title></polyline>",
                pts.join(" "),
                hex(Self::color(i)),
                Self::dasharray(i),
                esc(&se.name)
            );
        }
    }

    /// The markers along every series' line.
    fn svg_markers(&self, s: &mut String) {
        for i in 0..self.series.len() {
            let c = hex(Self::color(i));
            let _ = writeln!(s, "<g class=\"markers\">");
            for (x, y) in self.marker_points(i) {
                let _ = writeln!(s, "{}", Self::marker(i).svg(x, y, &c));
            }
            let _ = writeln!(s, "</g>");
        }
    }

    /// The x- and y-axis lines.
    fn svg_axes(s: &mut String) {
        let l = &LAYOUT;
        let _ = writeln!(
            s,
            "<path d=\"M{:.1} {:.1} V{:.1} H{:.1}\" fill=\"none\" stroke=\"#333\" stroke-width=\"1.2\"/>",
            l.left, l.top, l.bottom, l.right
        );
    }

    /// The legend: each line's colour, dash pattern and marker as drawn, its name, and
    /// a note on what the lines (and bands) are.
    fn svg_legend(&self, s: &mut String) {
        let lx = LAYOUT.right + 20.0;
        let _ = writeln!(
            s,
            "<g class=\"legend\" {FONT} font-size=\"13\" fill=\"#222\">"
        );
        for (i, se) in self.series.iter().enumerate() {
            let y = Self::legend_y(i);
            let c = hex(Self::color(i));
            if self.spread {
                let _ = writeln!(
                    s,
                    "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"{SAMPLE}\" height=\"12\" fill=\"{c}\" fill-opacity=\"0.18\"/>",
                    y - 6.0
                );
            }
            let _ = writeln!(
                s,
                "<line x1=\"{lx:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{c}\" stroke-width=\"2\"{}/>",
                lx + SAMPLE,
                Self::dasharray(i)
            );
            let _ = writeln!(s, "{}", Self::marker(i).svg(lx + SAMPLE / 2.0, y, &c));
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                lx + SAMPLE + 8.0,
                y + 4.5,
                esc(&se.name)
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"{lx:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#666\">{}</text>",
            Self::legend_y(self.series.len()) + 2.0,
            esc(self.legend_note())
        );
        let _ = writeln!(s, "</g>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str, f: impl Fn(f64) -> f64) -> Series {
        Series {
            name: name.into(),
            points: (0..=130).map(f64::from).map(|x| (x, f(x), 0.5)).collect(),
        }
    }

    #[test]
    fn axes_zoom_to_where_the_lines_part() {
        // Both follow the diagonal to 80, then level off at 90 and 96.
        let a = series("a", |x| x.min(90.0));
        let b = series("b", |x| x.min(96.0));
        let (x, y) = auto_axes(&[a.clone(), b], (0.0, 130.0), (0.0, 100.0), true);
        assert!(x.0 >= 70.0 && x.0 <= 90.0, "{x:?}");
        assert_eq!(x.1, 130.0);
        assert!(y.0 >= 70.0 && y.0 < 90.0, "{y:?}");
        assert!(y.1 >= 96.5 && y.1 <= 100.0, "{y:?}");
        // One line: nothing parts, the whole range stays.
        let (x, y) = auto_axes(&[a], (0.0, 130.0), (0.0, 100.0), true);
        assert_eq!((x.0, y.0), (0.0, 0.0));
    }

    #[test]
    fn values_between_80_and_100_do_not_get_a_0_to_100_axis() {
        let a = series("a", |x| 80.0 + x / 10.0);
        let b = series("b", |x| 82.0 + x / 10.0);
        let (_, y) = auto_axes(&[a, b], (0.0, 130.0), (0.0, 100.0), false);
        assert!(y.0 >= 75.0, "{y:?}");
        let labels: Vec<String> = ticks(y).iter().map(|&t| label(t, y.2)).collect();
        assert!(!labels.contains(&"0".to_string()), "{labels:?}");
    }

    fn chart(spread: bool) -> Chart {
        let series = vec![
            series("fgd", |x| x.min(90.0)),
            series("bestfit", |x| x.min(96.0)),
        ];
        let (x, y) = auto_axes(&series, (0.0, 130.0), (0.0, 100.0), spread);
        Chart {
            title: "GPU allocation ratio".into(),
            subtitle: "openb, seeds 42".into(),
            x_label: "Arrived GPU request (%)".into(),
            y_label: "GPU allocation ratio (%)".into(),
            x,
            y,
            spread,
            series,
        }
    }

    /// The PNG is the SVG rendered, text included: the title's box has the title's ink,
    /// the legend's names are drawn, and a region the SVG leaves empty stays white.
    #[test]
    fn png_has_text_where_the_svg_has_text() {
        let c = chart(true);
        assert!(
            c.svg().contains(render::FONT_FAMILY),
            "the SVG names the embedded font"
        );
        let (w, h, px) = crate::render::tests::decode(&c.png().unwrap());
        assert_eq!((w, h), (960, 600));
        let dark = |x0: usize, y0: usize, x1: usize, y1: usize| {
            (y0..y1)
                .flat_map(|y| (x0..x1).map(move |x| (x, y)))
                .filter(|&(x, y)| {
                    let i = (y * 960 + x) * 3;
                    px[i..i + 3].iter().all(|&v| v < 0x80)
                })
                .count()
        };
        // The title: 18 px bold at (80, 30), about 200 px wide.
        let title = dark(80, 14, 300, 36);
        assert!(title > 300, "{title} dark pixels in the title's box");
        // The legend's first name, right of its sample line.
        let legend = dark(772, 70, 900, 92);
        assert!(
            legend > 40,
            "{legend} dark pixels at the legend's first name"
        );
        // Right of the subtitle, above the plot: nothing is drawn there.
        assert_eq!(dark(500, 5, 950, 60), 0, "blank header");
        // The background and the band are there too.
        assert_eq!(&px[..3], &[255, 255, 255]);
    }

    #[test]
    fn tick_labels_have_the_decimals_of_their_step() {
        assert_eq!(label(80.0, 2.0), "80");
        assert_eq!(label(82.5, 2.5), "82.5");
        assert_eq!(label(0.30000000000000004, 0.1), "0.3");
        assert_eq!(nice_step(16.0, 8.0), 2.0);
        assert_eq!(nice_step(100.0, 10.0), 10.0);
        assert_eq!(nice_step(3.0, 8.0), 0.5);
    }
}
