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

/// Renders `image` as an 8-bit RGB PNG at `path` (one PNG pixel per image pixel),
/// atomically: on error nothing is left behind.
pub fn write_png_quicklook(path: impl AsRef<Path>, image: &Image) -> Result<(), FormatError> {
    let path = path.as_ref();
    let data = &image.data_yx;
    let (ny, nx) = data.dim();
    let (w, h) = (dimension(nx, "x")?, dimension(ny, "y")?);
    let stretch = Stretch::from_data(data);
    let png_err = |e: png::EncodingError| FormatError::Png {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    write_file_atomic(path, |out| {
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
        let mut row = Vec::with_capacity(nx * 3);
        for y in (0..ny).rev() {
            row.clear();
            for &v in data.row(y) {
                row.extend_from_slice(&colormap::inferno(stretch.apply(v)));
            }
            stream
                .write_all(&row)
                .map_err(|e| FormatError::io("writing", path, e))?;
        }
        stream.finish().map_err(png_err)?;
        writer.finish().map_err(png_err)
    })
}
