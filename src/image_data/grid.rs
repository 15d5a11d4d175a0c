//! Tiling grayscale images into one RGB grid (sample and reconstruction
//! grids for TensorBoard and PNG files).

/// Columns and rows of a grid of `n` tiles: `⌈√n⌉` columns.
pub fn grid_shape(n: usize) -> (usize, usize) {
    let mut cols = (n as f64).sqrt().ceil() as usize;
    while cols * cols < n {
        cols += 1;
    }
    let cols = cols.max(1);
    (cols, n.div_ceil(cols).max(1))
}

/// Grey of the 1-pixel borders between tiles.
pub const BORDER: u8 = 128;

/// Tiles `n` grayscale images of `height × width` pixels (values in [0, 1],
/// row-major, image after image) into an RGB8 grid of `⌈√n⌉` columns with
/// 1-pixel grey borders; returns `(rgb, width, height)`. Values are clamped
/// to [0, 1]; a non-finite value is drawn red.
pub fn tile_grid(images: &[f64], n: usize, height: usize, width: usize) -> (Vec<u8>, usize, usize) {
    let (cols, rows) = grid_shape(n);
    let gw = cols * (width + 1) + 1;
    let gh = rows * (height + 1) + 1;
    let mut rgb = vec![BORDER; gw * gh * 3];
    for k in 0..n {
        let (tr, tc) = (k / cols, k % cols);
        for i in 0..height {
            for j in 0..width {
                let v = images[(k * height + i) * width + j];
                let px = if v.is_finite() {
                    let g = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                    [g, g, g]
                } else {
                    [255, 0, 0]
                };
                let y = tr * (height + 1) + 1 + i;
                let x = tc * (width + 1) + 1 + j;
                rgb[(y * gw + x) * 3..(y * gw + x) * 3 + 3].copy_from_slice(&px);
            }
        }
    }
    (rgb, gw, gh)
}

/// Nearest-neighbour enlargement of an RGB8 image by an integer `factor`
/// (so that grids of small images, such as 8×8 digits, are legible);
/// returns `(rgb, width · factor, height · factor)`.
pub fn upscale(rgb: &[u8], width: usize, height: usize, factor: usize) -> (Vec<u8>, usize, usize) {
    let f = factor.max(1);
    let (w, h) = (width * f, height * f);
    let mut out = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let src = ((y / f) * width + x / f) * 3;
            out[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&rgb[src..src + 3]);
        }
    }
    (out, w, h)
}

/// The integer factor that makes tiles of `height` pixels at least 28 high.
pub fn legible_factor(height: usize) -> usize {
    28usize.div_ceil(height.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upscale_repeats_pixels() {
        let rgb = [1, 2, 3, 4, 5, 6];
        let (out, w, h) = upscale(&rgb, 2, 1, 2);
        assert_eq!((w, h), (4, 2));
        assert_eq!(&out[..12], &[1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6]);
        assert_eq!(&out[12..], &out[..12]);
        assert_eq!(legible_factor(8), 4);
        assert_eq!(legible_factor(28), 1);
    }
}
