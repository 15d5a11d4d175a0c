//! Shared set-up for pictures drawn with `plotters`: PNG bitmaps whose text
//! comes from the DejaVu Sans font bundled by the `dejavu` crate (drawn with
//! `ab_glyph`, no system fonts needed), a colour cycle, and RGB canvases.
//!
//! Data flow: a drawing function calls [`register_font`] once, draws into an
//! RGB buffer from [`canvas`] (or a PNG file) through plotters'
//! `BitMapBackend`, and hands the buffer on, e.g. as a
//! [`crate::task::Artifact::Image`]. Users: the `bench scaling` plot and the sampling pictures
//! ([`crate::sampling::picture`]).

use std::sync::Once;

use plotters::style::{FontStyle, RGBColor};

static FONT: Once = Once::new();

/// Registers the bundled DejaVu Sans as plotters' `sans-serif` (once per process).
pub fn register_font() {
    FONT.call_once(|| {
        // The bundled font is a valid TrueType file; a failure would only lose text.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// A colour cycle (matplotlib's "tab10" start).
pub const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// A white RGB8 canvas of `width × height` pixels (row-major, 3 bytes a pixel).
pub fn canvas(width: usize, height: usize) -> Vec<u8> {
    vec![255; width * height * 3]
}

/// Copies the RGB8 image `src` (`w × h`) into `dst` (width `dst_width`) with
/// its top-left corner at `(x, y)`, clipping what falls outside.
pub fn blit(dst: &mut [u8], dst_width: usize, src: &[u8], w: usize, h: usize, x: usize, y: usize) {
    let dst_height = dst.len() / (3 * dst_width.max(1));
    for row in 0..h.min(dst_height.saturating_sub(y)) {
        let cols = w.min(dst_width.saturating_sub(x));
        let s = &src[row * w * 3..(row * w + cols) * 3];
        let d0 = ((y + row) * dst_width + x) * 3;
        dst[d0..d0 + cols * 3].copy_from_slice(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blit_places_and_clips() {
        let mut dst = canvas(3, 2);
        let src = vec![0u8; 2 * 2 * 3];
        blit(&mut dst, 3, &src, 2, 2, 2, 1);
        // Only pixel (x 2, y 1) is covered.
        let black: Vec<usize> = (0..6).filter(|p| dst[p * 3] == 0).collect();
        assert_eq!(black, vec![5]);
    }
}
