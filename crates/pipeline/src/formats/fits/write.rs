//! The FITS image writer: header cards, then big-endian pixels, padded to 2880-byte
//! blocks (FITS 4.0 §3.3, §3.3.2), written atomically.

use std::io::Write;
use std::path::Path;

use aperture_imaging::image::Image;

use super::card::{Card, format_card};
use super::wcs::geometry_cards;
use super::{BLOCK_LEN, Bitpix, FitsWriteOptions, RestoringBeam};
use crate::error::FormatError;
use crate::formats::atomic::write_file_atomic;

/// Keywords the writer sets itself; callers may not pass them in `extra`.
const OWNED: &[&str] = &[
    "SIMPLE", "BITPIX", "NAXIS", "EXTEND", "END", "BSCALE", "BZERO", "BLANK", "GROUPS", "PCOUNT",
    "GCOUNT", "XTENSION", "BUNIT", "BMAJ", "BMIN", "BPA", "EQUINOX", "RADESYS", "RADECSYS",
    "SPECSYS", "OBJECT", "TELESCOP", "ORIGIN", "DATE", "LONPOLE", "LATPOLE", "CONTINUE",
];

/// WCS keyword stems followed by an axis number (Greisen & Calabretta 2002 table 1).
const OWNED_STEMS: &[&str] = &[
    "NAXIS", "CTYPE", "CRVAL", "CDELT", "CRPIX", "CUNIT", "CROTA", "PC", "CD", "PV", "PS",
];

fn is_owned(keyword: &str) -> bool {
    OWNED.contains(&keyword)
        || OWNED_STEMS.iter().any(|stem| {
            keyword.strip_prefix(stem).is_some_and(|rest| {
                !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit() || b == b'_')
            })
        })
}

/// Checks `DATE` against FITS 4.0 §4.4.2.1: `YYYY-MM-DD[Thh:mm:ss[.s…]]`.
fn check_date(date: &str) -> Result<(), FormatError> {
    let b = date.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    let date_ok = b.len() >= 10
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10);
    let time_ok = b.len() == 10
        || (b.len() >= 19
            && b[10] == b'T'
            && digits(11..13)
            && b[13] == b':'
            && digits(14..16)
            && b[16] == b':'
            && digits(17..19)
            && (b.len() == 19 || (b[19] == b'.' && b.len() > 20 && digits(20..b.len()))));
    if date_ok && time_ok {
        Ok(())
    } else {
        Err(FormatError::invalid(
            "DATE",
            format!("{date:?} is not YYYY-MM-DD or YYYY-MM-DDThh:mm:ss[.sss] (FITS 4.0 §4.4.2.1)"),
        ))
    }
}

fn check_beam(b: &RestoringBeam) -> Result<(), FormatError> {
    let finite = b.bmaj_deg.is_finite() && b.bmin_deg.is_finite() && b.bpa_deg.is_finite();
    if !finite || b.bmin_deg <= 0.0 || b.bmaj_deg < b.bmin_deg {
        return Err(FormatError::invalid(
            "restoring beam",
            format!(
                "BMAJ = {}, BMIN = {}, BPA = {}: need finite BMAJ ≥ BMIN > 0",
                b.bmaj_deg, b.bmin_deg, b.bpa_deg
            ),
        ));
    }
    Ok(())
}

/// All header cards in writing order (without `END`).
fn header_cards(image: &Image, opts: &FitsWriteOptions) -> Result<Vec<Card>, FormatError> {
    let g = &image.geom;
    let mut cards = vec![
        Card::new("SIMPLE", true, "conforms to FITS standard 4.0"),
        Card::new("BITPIX", opts.bitpix.value(), "IEEE floating point"),
        Card::new("NAXIS", 4_i64, "RA, DEC, FREQ, STOKES"),
        Card::new("NAXIS1", g.npix_x as i64, ""),
        Card::new("NAXIS2", g.npix_y as i64, ""),
        Card::new("NAXIS3", 1_i64, ""),
        Card::new("NAXIS4", 1_i64, ""),
        Card::new("EXTEND", true, ""),
        Card::new("BUNIT", opts.bunit.as_str(), "brightness unit"),
    ];
    if let Some(b) = &opts.beam {
        check_beam(b)?;
        cards.push(Card::new(
            "BMAJ",
            b.bmaj_deg,
            "restoring beam major axis FWHM (deg)",
        ));
        cards.push(Card::new(
            "BMIN",
            b.bmin_deg,
            "restoring beam minor axis FWHM (deg)",
        ));
        cards.push(Card::new(
            "BPA",
            b.bpa_deg,
            "restoring beam position angle (deg)",
        ));
    }
    cards.extend(geometry_cards(g));
    if let Some(o) = &opts.object {
        cards.push(Card::new("OBJECT", o.as_str(), ""));
    }
    if let Some(t) = &opts.telescope {
        cards.push(Card::new("TELESCOP", t.as_str(), ""));
    }
    cards.push(Card::new(
        "ORIGIN",
        "aperture",
        "software that wrote this file",
    ));
    if let Some(d) = &opts.date {
        check_date(d)?;
        cards.push(Card::new("DATE", d.as_str(), "file creation date (UTC)"));
    }
    let mut seen = std::collections::HashSet::new();
    for c in &opts.extra {
        if is_owned(&c.keyword) {
            return Err(FormatError::invalid(
                format!("extra FITS keyword {}", c.keyword),
                "is written by aperture from the image and options",
            ));
        }
        if !c.is_commentary() && !seen.insert(c.keyword.as_str()) {
            return Err(FormatError::invalid(
                format!("extra FITS keyword {}", c.keyword),
                "appears more than once",
            ));
        }
        cards.push(c.clone());
    }
    Ok(cards)
}

/// The header as bytes: 80-character records, `END`, padded with spaces to a block.
fn header_bytes(cards: &[Card]) -> Result<Vec<u8>, FormatError> {
    let mut out = Vec::with_capacity(BLOCK_LEN * 2);
    for c in cards {
        for rec in format_card(c)? {
            out.extend_from_slice(rec.as_bytes());
        }
    }
    out.extend_from_slice(format!("{:<80}", "END").as_bytes());
    out.resize(out.len().div_ceil(BLOCK_LEN) * BLOCK_LEN, b' ');
    Ok(out)
}

/// Checks the image before anything is written: shape, geometry, finite pixels that fit
/// the chosen BITPIX.
fn check_image(image: &Image, bitpix: Bitpix) -> Result<(), FormatError> {
    let g = &image.geom;
    g.validate()
        .map_err(|e| FormatError::invalid("image geometry", e.to_string()))?;
    let (ny, nx) = image.data_yx.dim();
    if (ny, nx) != (g.npix_y, g.npix_x) {
        return Err(FormatError::invalid(
            "image",
            format!(
                "data is [{ny}, {nx}] ([y, x]) but the geometry says [{}, {}]",
                g.npix_y, g.npix_x
            ),
        ));
    }
    for ((y, x), &v) in image.data_yx.indexed_iter() {
        if !v.is_finite() {
            return Err(FormatError::invalid(
                "image",
                format!("pixel (x={x}, y={y}) is {v}; FITS products hold finite pixels"),
            ));
        }
        if bitpix == Bitpix::F32 && !(v as f32).is_finite() {
            return Err(FormatError::invalid(
                "image",
                format!("pixel (x={x}, y={y}) = {v} overflows BITPIX −32; write BITPIX −64"),
            ));
        }
    }
    Ok(())
}

/// Writes the header and the big-endian pixels (bottom row first), padded to a block.
fn write_hdu<W: Write>(
    w: &mut W,
    header: &[u8],
    image: &Image,
    bitpix: Bitpix,
) -> std::io::Result<()> {
    w.write_all(header)?;
    let mut row = Vec::with_capacity(image.geom.npix_x * bitpix.bytes());
    for line in image.data_yx.rows() {
        row.clear();
        for &v in line {
            match bitpix {
                Bitpix::F32 => row.extend_from_slice(&(v as f32).to_be_bytes()),
                Bitpix::F64 => row.extend_from_slice(&v.to_be_bytes()),
            }
        }
        w.write_all(&row)?;
    }
    let bytes = image.data_yx.len() * bitpix.bytes();
    let pad = bytes.div_ceil(BLOCK_LEN) * BLOCK_LEN - bytes;
    w.write_all(&vec![0_u8; pad])
}

/// The bytes of the FITS file [`write_fits_image`] writes, made in memory (for a
/// product that goes to an object store, not a local file). Same checks, same errors.
pub fn encode_fits_image(image: &Image, opts: &FitsWriteOptions) -> Result<Vec<u8>, FormatError> {
    check_image(image, opts.bitpix)?;
    let header = header_bytes(&header_cards(image, opts)?)?;
    let data = image.data_yx.len() * opts.bitpix.bytes();
    let mut out = Vec::with_capacity(header.len() + data.div_ceil(BLOCK_LEN) * BLOCK_LEN);
    write_hdu(&mut out, &header, image, opts.bitpix)
        .map_err(|e| FormatError::invalid("image", format!("encoding FITS: {e}")))?;
    Ok(out)
}

/// Writes `image` to `path` as a FITS primary HDU (see the module docs), atomically:
/// on error no file (and no temporary) is left behind. Non-finite pixels, values that
/// overflow BITPIX −32, invalid geometry and caller cards that clash with the WCS or
/// structure keywords are rejected before anything is written.
///
/// An existing file at `path` is replaced without asking (unlike [`write_bundle`]'s
/// `overwrite` option); callers that must not clobber check first.
///
/// [`write_bundle`]: crate::formats::bundle::write_bundle
pub fn write_fits_image(
    path: impl AsRef<Path>,
    image: &Image,
    opts: &FitsWriteOptions,
) -> Result<(), FormatError> {
    let path = path.as_ref();
    check_image(image, opts.bitpix)?;
    let header = header_bytes(&header_cards(image, opts)?)?;
    write_file_atomic(path, |w| {
        write_hdu(w, &header, image, opts.bitpix).map_err(|e| FormatError::io("writing", path, e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_keywords_are_recognised() {
        for k in [
            "NAXIS3", "CTYPE1", "PC1_2", "CD2_1", "PV2_1", "DATE", "BUNIT",
        ] {
            assert!(is_owned(k), "{k}");
        }
        for k in [
            "EPSILON",
            "NVIS",
            "WEIGHTING",
            "CDELTA",
            "PCOUNTX",
            "HISTORY",
        ] {
            assert!(!is_owned(k), "{k}");
        }
    }

    #[test]
    fn dates() {
        assert!(check_date("2024-05-01").is_ok());
        assert!(check_date("2024-05-01T12:34:56").is_ok());
        assert!(check_date("2024-05-01T12:34:56.123").is_ok());
        assert!(check_date("01/05/24").is_err());
        assert!(check_date("2024-05-01T12:34").is_err());
        assert!(check_date("2024-05-01T12:34:56.").is_err());
    }
}
