//! PNG quick-look rendering of images: a robust asinh stretch and an inferno-like colour
//! map, north up and east left.
//!
//! FITS pixel y = 0 is the bottom (southern) row but PNG row 0 is the top, so rows are
//! written in reverse: image row y lands on PNG row `npix_y − 1 − y`. Pixel x = 0 (the
//! largest RA, since `CDELT1 < 0`) stays on the left, as in any FITS viewer.

mod colormap;
mod stretch;

use std::io::Write;
use std::path::{Path, PathBuf};

use aperture_imaging::image::Image;

pub use stretch::Stretch;

use crate::error::FormatError;
use crate::formats::atomic::write_file_atomic;

/// The quick-look path for a product: `foo.fits` → `foo.png` (any extension replaced).
pub fn quicklook_path(fits_path: impl AsRef<Path>) -> PathBuf {
    fits_path.as_ref().with_extension("png")
}

fn dimension(n: usize, axis: &str) -> Result<u32, FormatError> {
    u32::try_from(n).ok().filter(|&n| n > 0).ok_or_else(|| {
        FormatError::invalid("image", format!("{n} pixels along {axis} cannot be a PNG"))
    })
}

/// Levels of the colour table: finer than the 8-bit output can show along the steepest
/// part of the asinh curve (its slope is at most 1 / (0.1 asinh 10) ≈ 3.3, so adjacent
/// levels differ by at most 3.3 × 8 × 255 / 16383 < 0.5 of a colour step).
const TABLE_LEVELS: usize = 16384;

/// The stretch and the colour map tabulated over the clip range: two per-pixel
/// transcendental functions become one multiply and a look-up.
struct ColourTable {
    lo: f64,
    scale: f64,
    rgb: Vec<[u8; 3]>,
}

impl ColourTable {
    fn new(s: &Stretch) -> Self {
        let range = s.hi - s.lo;
        let usable = range > 0.0 && range.is_finite();
        let rgb = (0..TABLE_LEVELS)
            .map(|i| {
                let v = s.lo + range * i as f64 / (TABLE_LEVELS - 1) as f64;
                colormap::inferno(if usable { s.apply(v) } else { 0.0 })
            })
            .collect();
        Self {
            lo: s.lo,
            scale: if usable {
                (TABLE_LEVELS - 1) as f64 / range
            } else {
                0.0
            },
            rgb,
        }
    }

    /// The colour of pixel value `v`: clipped to the range; non-finite gives level 0.
    fn colour(&self, v: f64) -> [u8; 3] {
        let t = (v - self.lo) * self.scale;
        let i = if t.is_finite() {
            t.round().clamp(0.0, (TABLE_LEVELS - 1) as f64) as usize
        } else {
            0
        };
        self.rgb[i]
    }
}

/// Encodes `image` as an 8-bit RGB PNG into `out` (one PNG pixel per image pixel);
/// `path` names the product in errors.
fn encode_into<W: Write>(out: W, image: &Image, path: &Path) -> Result<(), FormatError> {
    let data = &image.data_yx;
    let (ny, nx) = data.dim();
    let (w, h) = (dimension(nx, "x")?, dimension(ny, "y")?);
    let stretch = Stretch::from_data(data);
    let png_err = |e: png::EncodingError| FormatError::Png {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut enc = png::Encoder::new(out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    // fdeflate's PNG-tuned mode: the quick-looks are ~3× faster to encode than at the
    // default level (the restore task's largest cost at 512²), a little larger.
    enc.set_compression(png::Compression::Fast);
    enc.add_text_chunk("Software".into(), "aperture".into())
        .map_err(png_err)?;
    enc.add_text_chunk(
        "Comment".into(),
        format!(
            "quick-look: asinh stretch over [{:e}, {:e}], north up, east left",
            stretch.lo, stretch.hi
        ),
    )
    .map_err(png_err)?;
    let mut writer = enc.write_header().map_err(png_err)?;
    let mut stream = writer.stream_writer().map_err(png_err)?;
    let lut = ColourTable::new(&stretch);
    let mut row = Vec::with_capacity(nx * 3);
    for y in (0..ny).rev() {
        row.clear();
        for &v in data.row(y) {
            row.extend_from_slice(&lut.colour(v));
        }
        stream
            .write_all(&row)
            .map_err(|e| FormatError::io("writing", path, e))?;
    }
    stream.finish().map_err(png_err)?;
    writer.finish().map_err(png_err)
}

/// Renders `image` as an 8-bit RGB PNG at `path` (one PNG pixel per image pixel),
/// atomically: on error nothing is left behind.
pub fn write_png_quicklook(path: impl AsRef<Path>, image: &Image) -> Result<(), FormatError> {
    let path = path.as_ref();
    write_file_atomic(path, |out| encode_into(out, image, path))
}

/// The bytes of the PNG [`write_png_quicklook`] writes, made in memory; `name` names
/// the product in errors.
pub fn encode_png_quicklook(image: &Image, name: &str) -> Result<Vec<u8>, FormatError> {
    let mut out = Vec::new();
    encode_into(&mut out, image, Path::new(name))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table gives the directly evaluated stretch + colour map to within one unit
    /// per channel over (and beyond) the clip range, and level 0 for non-finite values.
    #[test]
    fn colour_table_matches_direct_evaluation() {
        let s = Stretch { lo: -0.3, hi: 2.5 };
        let table = ColourTable::new(&s);
        for i in -1000..=21000 {
            let v = s.lo + (s.hi - s.lo) * f64::from(i) / 20000.0;
            let (a, b) = (table.colour(v), colormap::inferno(s.apply(v)));
            for k in 0..3 {
                assert!(a[k].abs_diff(b[k]) <= 1, "v={v}: {a:?} vs {b:?}");
            }
        }
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(table.colour(v), colormap::inferno(0.0));
        }
        let flat = ColourTable::new(&Stretch { lo: 1.0, hi: 1.0 });
        assert_eq!(flat.colour(1.0), colormap::inferno(0.0));
    }
}
