//! PNG output: an SVG document (the chart [`crate::plot::Chart::svg`] draws) rendered
//! with resvg and written as an 8-bit RGB PNG by the `png` crate. The SVG is the one
//! drawing; the PNG is its rendering, so the two files show the same picture.
//!
//! Text is drawn in DejaVu Sans, which is embedded in the binary ([`FONT_FAMILY`]):
//! system fonts are never loaded, so a static binary on a host without fonts (a
//! container, a chroot) draws the same text.

use resvg::{tiny_skia, usvg};

/// DejaVu Sans (`crates/sim/assets/DejaVuSans.ttf`, licence beside it).
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// The family of the embedded font; the chart's SVG names it first in `font-family`.
pub const FONT_FAMILY: &str = "DejaVu Sans";

/// Why an SVG could not be rendered to PNG.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// The SVG does not parse.
    #[error("cannot render the chart: its SVG does not parse: {0}")]
    Svg(#[from] usvg::Error),
    /// The SVG's size has no pixels (or too many to allocate).
    #[error("cannot render the chart: no {width}x{height} pixel canvas")]
    Size {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// The PNG encoder failed.
    #[error("cannot encode the chart as PNG: {0}")]
    Encode(#[from] png::EncodingError),
}

/// The parse options: the embedded font only, also standing in for the generic
/// `sans-serif` and as the default family.
fn options() -> usvg::Options<'static> {
    let mut opt = usvg::Options {
        font_family: FONT_FAMILY.to_string(),
        ..usvg::Options::default()
    };
    let db = opt.fontdb_mut();
    db.load_font_data(FONT.to_vec());
    db.set_sans_serif_family(FONT_FAMILY);
    opt
}

/// Renders `svg` at its own size (one SVG unit per pixel) on white and encodes it as
/// an 8-bit RGB PNG (adaptive filters, high compression).
pub fn svg_to_png(svg: &str) -> Result<Vec<u8>, RenderError> {
    let tree = usvg::Tree::from_str(svg, &options())?;
    let size = tree.size().to_int_size();
    let (width, height) = (size.width(), size.height());
    let mut pixmap =
        tiny_skia::Pixmap::new(width, height).ok_or(RenderError::Size { width, height })?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    let rgb: Vec<u8> = pixmap
        .pixels()
        .iter()
        .flat_map(|p| {
            let c = p.demultiply();
            [c.red(), c.green(), c.blue()]
        })
        .collect();
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::High);
    let mut writer = enc.write_header()?;
    writer.write_image_data(&rgb)?;
    writer.finish()?;
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Decodes an 8-bit RGB PNG: (width, height, pixels).
    pub(crate) fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(
            (info.color_type, info.bit_depth),
            (png::ColorType::Rgb, png::BitDepth::Eight)
        );
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    #[test]
    fn text_is_drawn_with_the_embedded_font() {
        let svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"200\" height=\"40\">\
                   <text x=\"10\" y=\"30\" font-family=\"NoSuchFont, sans-serif\" \
                   font-size=\"20\" fill=\"#000\">Hello</text></svg>";
        let (w, h, px) = decode(&svg_to_png(svg).unwrap());
        assert_eq!((w, h), (200, 40));
        let dark = px.chunks(3).filter(|p| p[0] < 128).count();
        assert!(dark > 100, "{dark} dark pixels");
    }

    #[test]
    fn a_bad_svg_is_an_error() {
        assert!(matches!(svg_to_png("<svg"), Err(RenderError::Svg(_))));
    }
}
