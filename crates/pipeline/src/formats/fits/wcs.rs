//! The image WCS in FITS form: `ImageGeometry` ↔ `CTYPEi/CRVALi/CDELTi/CRPIXi/CUNITi`
//! cards, following Greisen & Calabretta 2002 (A&A 395, 1061; "Paper I") for the linear
//! axes and Calabretta & Greisen 2002 (A&A 395, 1077; "Paper II") §5.1.5 for the SIN
//! (orthographic) projection: pixel (x, y) ↔ l = (x + 1 − CRPIX1)·CDELT1,
//! m = (y + 1 − CRPIX2)·CDELT2 with FITS pixels 1-based.

use std::path::Path;

use aperture_imaging::coords::RaDec;
use aperture_imaging::image::ImageGeometry;

use super::card::Card;
use super::header::FitsHeader;
use crate::error::FormatError;
use crate::formats::angle::rad_to_deg;

/// The 1-based reference pixel of an axis of `n` pixels: the phase centre, pixel n/2
/// (0-based) of `ImageGeometry`.
fn crpix(n: usize) -> f64 {
    (n / 2 + 1) as f64
}

/// The WCS cards for `g` as a 4-axis (RA, DEC, FREQ, STOKES) image, in writing order.
/// Angles are written so that [`geometry_from_header`] gets the same radians back.
pub fn geometry_cards(g: &ImageGeometry) -> Vec<Card> {
    let cell_deg = rad_to_deg(g.cell);
    let bandwidth = if g.bandwidth_hz > 0.0 {
        g.bandwidth_hz
    } else {
        1.0
    };
    vec![
        Card::new("EQUINOX", 2000.0, "equinox of the celestial frame"),
        Card::new("RADESYS", "ICRS", "celestial reference frame"),
        Card::new("SPECSYS", "TOPOCENT", "spectral reference frame"),
        Card::new(
            "CTYPE1",
            "RA---SIN",
            "right ascension, orthographic projection",
        ),
        Card::new("CRVAL1", rad_to_deg(g.phase_centre.ra), "phase centre RA"),
        Card::new("CDELT1", -cell_deg, "RA increases to the left"),
        Card::new("CRPIX1", crpix(g.npix_x), "phase centre pixel (1-based)"),
        Card::new("CUNIT1", "deg", ""),
        Card::new("CTYPE2", "DEC--SIN", "declination, orthographic projection"),
        Card::new("CRVAL2", rad_to_deg(g.phase_centre.dec), "phase centre Dec"),
        Card::new("CDELT2", cell_deg, ""),
        Card::new("CRPIX2", crpix(g.npix_y), "phase centre pixel (1-based)"),
        Card::new("CUNIT2", "deg", ""),
        Card::new("CTYPE3", "FREQ", "frequency"),
        Card::new("CRVAL3", g.freq_hz, "reference frequency"),
        Card::new("CDELT3", bandwidth, "bandwidth"),
        Card::new("CRPIX3", 1.0, ""),
        Card::new("CUNIT3", "Hz", ""),
        Card::new("CTYPE4", "STOKES", ""),
        Card::new("CRVAL4", 1.0, "Stokes I"),
        Card::new("CDELT4", 1.0, ""),
        Card::new("CRPIX4", 1.0, ""),
    ]
}

/// Reads axis `i`'s `CTYPEi`, trimmed, or `None`.
fn ctype(h: &FitsHeader, i: usize) -> Option<String> {
    h.get_str(&format!("CTYPE{i}")).map(|s| s.trim().to_owned())
}

/// Splits `RA---SIN` into ("RA", "SIN") per Paper I §2.1.1 (4-character coordinate
/// type padded with '-', a '-', then a 3-letter projection code).
fn split_ctype(ctype: &str) -> (String, String) {
    let coord = ctype.get(..4).unwrap_or(ctype).trim_end_matches('-');
    let proj = ctype.get(5..).unwrap_or("").trim();
    (coord.to_owned(), proj.to_owned())
}

/// A numeric keyword that must be present.
fn require(h: &FitsHeader, path: &Path, kw: &str) -> Result<f64, FormatError> {
    h.get_f64(kw).ok_or_else(|| {
        FormatError::fits(
            path,
            format!("{kw} is missing or not a number; aperture needs a complete celestial WCS"),
        )
    })
}

/// Rejects WCS features that rotate, skew or rescale the pixel grid (Paper I §2.1.2).
fn check_no_rotation(h: &FitsHeader, path: &Path) -> Result<(), FormatError> {
    for kw in ["CD1_1", "CD1_2", "CD2_1", "CD2_2"] {
        if h.contains(kw) {
            return Err(FormatError::fits(
                path,
                format!(
                    "{kw} present: CD-matrix WCS is not supported; use CDELTi with no rotation"
                ),
            ));
        }
    }
    for (kw, want) in [
        ("PC1_1", 1.0),
        ("PC2_2", 1.0),
        ("PC1_2", 0.0),
        ("PC2_1", 0.0),
        ("CROTA1", 0.0),
        ("CROTA2", 0.0),
    ] {
        if let Some(v) = h.get_f64(kw)
            && v != want
        {
            return Err(FormatError::fits(
                path,
                format!("{kw} = {v}: rotated or skewed pixel grids are not supported"),
            ));
        }
    }
    // SIN with PV2_1/PV2_2 ≠ 0 is the slant orthographic projection (Paper II §5.1.5).
    for kw in ["PV2_1", "PV2_2"] {
        if let Some(v) = h.get_f64(kw)
            && v != 0.0
        {
            return Err(FormatError::fits(
                path,
                format!("{kw} = {v}: slant orthographic (generalised SIN) is not supported"),
            ));
        }
    }
    if let Some(v) = h.get_f64("LONPOLE")
        && v != 180.0
    {
        return Err(FormatError::fits(
            path,
            format!("LONPOLE = {v}: only the default 180° (north up) is supported"),
        ));
    }
    Ok(())
}

/// Checks the celestial axes 1 (RA) and 2 (DEC): SIN projection, equatorial frame,
/// degree units.
fn check_celestial_axes(h: &FitsHeader, path: &Path) -> Result<(), FormatError> {
    for (i, want) in [(1, "RA"), (2, "DEC")] {
        let Some(ct) = ctype(h, i) else {
            return Err(FormatError::fits(
                path,
                format!("CTYPE{i} is missing; aperture needs axis {i} to be {want} (SIN)"),
            ));
        };
        let (coord, proj) = split_ctype(&ct);
        if coord != want {
            return Err(FormatError::fits(
                path,
                format!(
                    "CTYPE{i} = '{ct}': axis {i} must be {want} (axes RA, DEC in that order, \
                     equatorial coordinates)"
                ),
            ));
        }
        if proj != "SIN" {
            return Err(FormatError::fits(
                path,
                format!(
                    "CTYPE{i} = '{ct}': projection '{proj}' is not supported; aperture images \
                     use SIN (orthographic)"
                ),
            ));
        }
        if let Some(unit) = h.get_str(&format!("CUNIT{i}"))
            && !unit.trim().eq_ignore_ascii_case("deg")
        {
            return Err(FormatError::fits(
                path,
                format!("CUNIT{i} = '{unit}': celestial axes must be in degrees"),
            ));
        }
    }
    let frame = h.get_str("RADESYS").or_else(|| h.get_str("RADECSYS"));
    if let Some(frame) = frame {
        let f = frame.trim().to_ascii_uppercase();
        if f != "ICRS" && f != "FK5" {
            return Err(FormatError::fits(
                path,
                format!("RADESYS = '{frame}': only ICRS and FK5 (J2000) are supported"),
            ));
        }
    }
    Ok(())
}

/// The world value at the single pixel of degenerate axis `i`: CRVAL + (1 − CRPIX)·CDELT.
fn degenerate_value(h: &FitsHeader, path: &Path, i: usize) -> Result<f64, FormatError> {
    let crval = require(h, path, &format!("CRVAL{i}"))?;
    let crpix = h.get_f64(&format!("CRPIX{i}")).unwrap_or(1.0);
    let cdelt = h.get_f64(&format!("CDELT{i}")).unwrap_or(1.0);
    Ok(crval + (1.0 - crpix) * cdelt)
}

/// Frequency and bandwidth (Hz) from a `FREQ` axis, or (0, 0) if there is none.
fn spectral(h: &FitsHeader, path: &Path, naxes: &[usize]) -> Result<(f64, f64), FormatError> {
    for i in 3..=naxes.len() {
        let Some(ct) = ctype(h, i) else { continue };
        if !ct.starts_with("FREQ") {
            continue;
        }
        let unit = h.get_str(&format!("CUNIT{i}")).unwrap_or("Hz").trim();
        let scale = match unit {
            "" | "Hz" => 1.0,
            "kHz" => 1e3,
            "MHz" => 1e6,
            "GHz" => 1e9,
            other => {
                return Err(FormatError::fits(
                    path,
                    format!("CUNIT{i} = '{other}': unsupported frequency unit"),
                ));
            }
        };
        let freq = degenerate_value(h, path, i)? * scale;
        let bw = h.get_f64(&format!("CDELT{i}")).unwrap_or(0.0).abs() * scale;
        return Ok((freq, bw));
    }
    Ok((0.0, 0.0))
}

/// Rejects images of a Stokes parameter other than I (FITS 4.0 §8.4.1 table 29).
fn check_stokes(h: &FitsHeader, path: &Path, naxes: &[usize]) -> Result<(), FormatError> {
    for i in 3..=naxes.len() {
        if ctype(h, i).as_deref() == Some("STOKES") {
            let s = degenerate_value(h, path, i)?;
            if s.round() != 1.0 {
                return Err(FormatError::fits(
                    path,
                    format!(
                        "STOKES axis {i} selects Stokes value {s}; aperture images Stokes I (1)"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Reconstructs the image geometry from a header with axis lengths `naxes`, rejecting
/// anything aperture cannot represent without resampling.
pub fn geometry_from_header(
    h: &FitsHeader,
    path: &Path,
    naxes: &[usize],
) -> Result<ImageGeometry, FormatError> {
    check_celestial_axes(h, path)?;
    check_no_rotation(h, path)?;
    check_stokes(h, path, naxes)?;
    let (nx, ny) = (naxes[0], naxes[1]);
    let cdelt1 = require(h, path, "CDELT1")?;
    let cdelt2 = require(h, path, "CDELT2")?;
    if !(cdelt1 < 0.0 && cdelt2 > 0.0) {
        return Err(FormatError::fits(
            path,
            format!(
                "CDELT1 = {cdelt1}, CDELT2 = {cdelt2}: aperture needs CDELT1 < 0 (RA increasing \
                 to the left) and CDELT2 > 0; flipped images are not supported"
            ),
        ));
    }
    if ((cdelt1 + cdelt2) / cdelt2).abs() > 1e-9 {
        return Err(FormatError::fits(
            path,
            format!(
                "CDELT1 = {cdelt1} is not −CDELT2 = {}: non-square pixels are not supported",
                -cdelt2
            ),
        ));
    }
    for (i, n) in [(1, nx), (2, ny)] {
        let got = require(h, path, &format!("CRPIX{i}"))?;
        let want = crpix(n);
        if (got - want).abs() > 1e-9 {
            return Err(FormatError::fits(
                path,
                format!(
                    "CRPIX{i} = {got} but aperture needs the phase centre at pixel \
                     NAXIS{i}/2 + 1 = {want}; images are not resampled"
                ),
            ));
        }
    }
    let ra = require(h, path, "CRVAL1")?;
    let dec = require(h, path, "CRVAL2")?;
    if !(-90.0..=90.0).contains(&dec) {
        return Err(FormatError::fits(
            path,
            format!("CRVAL2 = {dec}: declination must lie in [−90, 90] degrees"),
        ));
    }
    let (freq_hz, bandwidth_hz) = spectral(h, path, naxes)?;
    let g = ImageGeometry {
        npix_x: nx,
        npix_y: ny,
        cell: cdelt2.to_radians(),
        phase_centre: RaDec::from_degrees(ra, dec),
        freq_hz,
        bandwidth_hz,
    };
    g.validate()
        .map_err(|e| FormatError::fits(path, format!("image geometry: {e}")))?;
    Ok(g)
}
