//! The FITS image reader: primary header up to `END`, structure keywords (FITS 4.0
//! §4.4.1), WCS, then pixels scaled by `BSCALE`/`BZERO` (FITS 4.0 §5.3).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use aperture_imaging::image::Image;
use ndarray::Array2;

use super::BLOCK_LEN;
use super::card::{CARD_LEN, parse_card};
use super::header::FitsHeader;
use super::wcs::geometry_from_header;
use crate::error::FormatError;

/// Reads 2880-byte blocks until the `END` card; returns the header and its byte length.
fn read_header<R: Read>(
    r: &mut R,
    path: &Path,
    file_len: u64,
) -> Result<(FitsHeader, u64), FormatError> {
    let mut cards = Vec::new();
    let mut block = vec![0_u8; BLOCK_LEN];
    let mut consumed = 0_u64;
    loop {
        if consumed + BLOCK_LEN as u64 > file_len {
            return Err(if consumed == 0 {
                FormatError::fits(
                    path,
                    format!(
                        "not a FITS file: {file_len} bytes is shorter than one 2880-byte header block"
                    ),
                )
            } else {
                FormatError::Truncated {
                    path: path.to_path_buf(),
                    expected: consumed + BLOCK_LEN as u64,
                    got: file_len,
                }
            });
        }
        r.read_exact(&mut block)
            .map_err(|e| FormatError::io("reading", path, e))?;
        let first_block = consumed == 0;
        consumed += BLOCK_LEN as u64;
        for (i, rec) in block.chunks(CARD_LEN).enumerate() {
            if first_block && i == 0 && !rec.starts_with(b"SIMPLE  =") {
                return Err(FormatError::fits(
                    path,
                    "not a FITS file: the first card is not SIMPLE",
                ));
            }
            let card_no = cards.len() + 1;
            match parse_card(rec)
                .map_err(|e| FormatError::fits(path, format!("header card {card_no}: {e}")))?
            {
                Some(card) => cards.push(card),
                None => return Ok((FitsHeader::new(cards), consumed)),
            }
        }
    }
}

/// A structure keyword that must be an integer.
fn int_keyword(h: &FitsHeader, path: &Path, kw: &str) -> Result<i64, FormatError> {
    h.get_i64(kw)
        .ok_or_else(|| FormatError::fits(path, format!("{kw} is missing or not an integer")))
}

/// The pixel encoding declared by the structure keywords.
struct Layout {
    bitpix: i64,
    naxes: Vec<usize>,
    bscale: f64,
    bzero: f64,
    blank: Option<i64>,
}

fn layout(h: &FitsHeader, path: &Path) -> Result<Layout, FormatError> {
    if h.get_bool("SIMPLE") != Some(true) {
        return Err(FormatError::fits(
            path,
            "SIMPLE is not T: the file does not conform to FITS",
        ));
    }
    if h.get_bool("GROUPS") == Some(true) {
        return Err(FormatError::fits(
            path,
            "random-groups files (GROUPS = T) are not images",
        ));
    }
    let bitpix = int_keyword(h, path, "BITPIX")?;
    if ![8, 16, 32, 64, -32, -64].contains(&bitpix) {
        return Err(FormatError::fits(
            path,
            format!("BITPIX = {bitpix} is not a FITS pixel type"),
        ));
    }
    let naxis = int_keyword(h, path, "NAXIS")?;
    if naxis == 0 {
        return Err(FormatError::fits(
            path,
            "NAXIS = 0: the primary HDU holds no image (images in extensions are not supported)",
        ));
    }
    if !(2..=999).contains(&naxis) {
        return Err(FormatError::fits(
            path,
            format!("NAXIS = {naxis}: an image needs at least 2 axes"),
        ));
    }
    let mut naxes = Vec::new();
    for i in 1..=naxis {
        let kw = format!("NAXIS{i}");
        let n = int_keyword(h, path, &kw)?;
        let n = usize::try_from(n).ok().filter(|&n| n > 0).ok_or_else(|| {
            FormatError::fits(path, format!("{kw} = {n}: axis lengths must be positive"))
        })?;
        if i > 2 && n != 1 {
            return Err(FormatError::fits(
                path,
                format!(
                    "{kw} = {n}: axes beyond RA and DEC must have length 1 (one plane per file)"
                ),
            ));
        }
        naxes.push(n);
    }
    let bscale = h.get_f64("BSCALE").unwrap_or(1.0);
    let bzero = h.get_f64("BZERO").unwrap_or(0.0);
    if !(bscale.is_finite() && bzero.is_finite()) || bscale == 0.0 {
        return Err(FormatError::fits(
            path,
            format!("BSCALE = {bscale}, BZERO = {bzero}: invalid scaling"),
        ));
    }
    let blank = if bitpix > 0 { h.get_i64("BLANK") } else { None };
    Ok(Layout {
        bitpix,
        naxes,
        bscale,
        bzero,
        blank,
    })
}

/// Decodes one big-endian raw value; `None` marks a `BLANK` (undefined) integer pixel.
fn decode(bytes: &[u8], l: &Layout) -> Option<f64> {
    let raw_int = |v: i64| {
        if l.blank == Some(v) {
            None
        } else {
            Some(v as f64)
        }
    };
    let raw = match l.bitpix {
        8 => raw_int(i64::from(bytes[0]))?,
        16 => raw_int(i64::from(i16::from_be_bytes([bytes[0], bytes[1]])))?,
        32 => raw_int(i64::from(i32::from_be_bytes(bytes[..4].try_into().ok()?)))?,
        64 => raw_int(i64::from_be_bytes(bytes[..8].try_into().ok()?))?,
        -32 => f64::from(f32::from_be_bytes(bytes[..4].try_into().ok()?)),
        _ => f64::from_be_bytes(bytes[..8].try_into().ok()?),
    };
    Some(if l.bscale == 1.0 && l.bzero == 0.0 {
        raw
    } else {
        l.bzero + l.bscale * raw
    })
}

/// Reads the pixels row by row, rejecting NaN, infinite and `BLANK` pixels.
fn read_pixels<R: Read>(r: &mut R, path: &Path, l: &Layout) -> Result<Array2<f64>, FormatError> {
    let (nx, ny) = (l.naxes[0], l.naxes[1]);
    let width = l.bitpix.unsigned_abs() as usize / 8;
    let mut data = Array2::zeros((ny, nx));
    let mut row = vec![0_u8; nx * width];
    let at =
        |x: usize, y: usize| format!("pixel (x={x}, y={y}) (index {} in file order)", y * nx + x);
    for y in 0..ny {
        r.read_exact(&mut row)
            .map_err(|e| FormatError::io("reading", path, e))?;
        for (x, bytes) in row.chunks_exact(width).enumerate() {
            match decode(bytes, l) {
                Some(v) if v.is_finite() => data[[y, x]] = v,
                Some(_) => {
                    return Err(FormatError::NonFinite {
                        path: path.to_path_buf(),
                        at: at(x, y),
                    });
                }
                None => {
                    return Err(FormatError::BadValue {
                        path: path.to_path_buf(),
                        at: at(x, y),
                        reason: "undefined (BLANK) pixel; aperture images must be fully defined"
                            .into(),
                    });
                }
            }
        }
    }
    Ok(data)
}

/// Reads a FITS image written by [`super::write_fits_image`] or a compatible 2-D/3-D/4-D
/// image from another tool, returning the image (geometry from the WCS) and the header.
///
/// Rejected with an error naming the file: non-SIN projections, non-square pixels
/// (`CDELT1 ≠ −CDELT2`), a reference pixel other than `NAXISi/2 + 1`, rotated WCS,
/// non-degenerate extra axes, undefined (NaN/`BLANK`) pixels and truncated files.
/// Without a `FREQ` axis the geometry's frequency and bandwidth are 0.
pub fn read_fits_image(path: impl AsRef<Path>) -> Result<(Image, FitsHeader), FormatError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| FormatError::io("opening", path, e))?;
    let file_len = file
        .metadata()
        .map_err(|e| FormatError::io("inspecting", path, e))?
        .len();
    let mut r = BufReader::new(file);
    let (header, header_len) = read_header(&mut r, path, file_len)?;
    let l = layout(&header, path)?;
    let data_len = l
        .naxes
        .iter()
        .try_fold(l.bitpix.unsigned_abs() / 8, |acc, &n| {
            acc.checked_mul(n as u64)
        })
        .ok_or_else(|| FormatError::fits(path, "the image size overflows"))?;
    if header_len + data_len > file_len {
        return Err(FormatError::Truncated {
            path: path.to_path_buf(),
            expected: header_len + data_len,
            got: file_len,
        });
    }
    let geom = geometry_from_header(&header, path, &l.naxes)?;
    let data_yx = read_pixels(&mut r, path, &l)?;
    Ok((Image { geom, data_yx }, header))
}
