//! Checks on the controls and the images before any work: every error names the option
//! or image at fault (and the pixel, for non-finite values).

use super::params::CleanParams;
use crate::ImagingError;
use crate::image::Image;

/// Checks the controls shared by all algorithms (not `algorithm`, `scales`, `nmoment`).
pub(crate) fn check_params(p: &CleanParams) -> Result<(), ImagingError> {
    if p.niter == 0 {
        return Err(ImagingError::invalid(
            "niter",
            "0 iterations; must be at least 1",
        ));
    }
    if !(p.gain.is_finite() && p.gain > 0.0 && p.gain <= 1.0) {
        return Err(ImagingError::invalid(
            "gain",
            format!("{}; must be in (0, 1]", p.gain),
        ));
    }
    if !(p.threshold.is_finite() && p.threshold >= 0.0) {
        return Err(ImagingError::invalid(
            "threshold",
            format!("{} Jy/beam; must be finite and non-negative", p.threshold),
        ));
    }
    if !(p.fractional_threshold.is_finite() && (0.0..1.0).contains(&p.fractional_threshold)) {
        return Err(ImagingError::invalid(
            "fractional_threshold",
            format!("{}; must be in [0, 1)", p.fractional_threshold),
        ));
    }
    if let Some(a) = p.auto_threshold
        && !(a.is_finite() && a > 0.0)
    {
        return Err(ImagingError::invalid(
            "auto_threshold",
            format!("{a}; must be a positive number of robust RMS"),
        ));
    }
    if p.psf_support == Some(0) {
        return Err(ImagingError::invalid(
            "psf_support",
            "0 pixels; the PSF patch half-width must be at least 1",
        ));
    }
    Ok(())
}

/// Checks and returns the sorted, de-duplicated scales (pixels) for an image of
/// `nx × ny`, plus the scale bias.
pub(crate) fn check_scales(
    p: &CleanParams,
    nx: usize,
    ny: usize,
) -> Result<Vec<f64>, ImagingError> {
    if p.scales.is_empty() {
        return Err(ImagingError::invalid("scales", "no scales given"));
    }
    let limit = nx.min(ny) as f64 / 2.0;
    for &s in &p.scales {
        if !(s.is_finite() && s >= 0.0) {
            return Err(ImagingError::invalid(
                "scales",
                format!("{s} pixels; scales must be finite and non-negative"),
            ));
        }
        if s >= limit {
            return Err(ImagingError::invalid(
                "scales",
                format!("{s} pixels does not fit in a {nx} x {ny} image (must be below {limit})"),
            ));
        }
    }
    if !(p.scale_bias.is_finite() && p.scale_bias > 0.0) {
        return Err(ImagingError::invalid(
            "scale_bias",
            format!(
                "{}; must be positive (typically 0.6, 1 = no bias)",
                p.scale_bias
            ),
        ));
    }
    let mut s = p.scales.clone();
    s.sort_by(f64::total_cmp);
    s.dedup();
    Ok(s)
}

/// Checks that `img`'s array matches its geometry and holds only finite values;
/// `name` names the image in errors (the index is y·npix_x + x).
pub(crate) fn check_image(img: &Image, name: &str) -> Result<(), ImagingError> {
    let (ny, nx) = img.data_yx.dim();
    if (ny, nx) != (img.geom.npix_y, img.geom.npix_x) {
        return Err(ImagingError::ShapeMismatch {
            name: name.into(),
            expected: format!(
                "[{}, {}] (from its geometry)",
                img.geom.npix_y, img.geom.npix_x
            ),
            got: format!("[{ny}, {nx}]"),
        });
    }
    if nx == 0 || ny == 0 {
        return Err(ImagingError::invalid(name, "the image has no pixels"));
    }
    if let Some(i) = img.data_yx.iter().position(|v| !v.is_finite()) {
        return Err(ImagingError::NonFinite {
            name: format!("{name} (pixel x={}, y={})", i % nx, i / nx),
            index: i,
        });
    }
    Ok(())
}

/// Checks that `psf` has the shape, pixel size and phase centre of `dirty`.
pub(crate) fn check_same_grid(
    dirty: &Image,
    psf: &Image,
    psf_name: &str,
) -> Result<(), ImagingError> {
    let (a, b) = (&dirty.geom, &psf.geom);
    if (a.npix_x, a.npix_y) != (b.npix_x, b.npix_y) {
        return Err(ImagingError::ShapeMismatch {
            name: psf_name.into(),
            expected: format!("{} x {} pixels like the dirty image", a.npix_x, a.npix_y),
            got: format!("{} x {}", b.npix_x, b.npix_y),
        });
    }
    let close = |u: f64, v: f64, tol: f64| (u - v).abs() <= tol * u.abs().max(v.abs()).max(1e-300);
    if !close(a.cell, b.cell, 1e-6) {
        return Err(ImagingError::invalid(
            psf_name,
            format!(
                "pixel size {:e} rad differs from the dirty image's {:e} rad",
                b.cell, a.cell
            ),
        ));
    }
    // Angular separation of the phase centres (direction cosines of one about the other).
    let lmn = b.phase_centre.to_lmn(a.phase_centre);
    let sep = if lmn.n > 0.0 {
        (lmn.l * lmn.l + lmn.m * lmn.m).sqrt()
    } else {
        f64::INFINITY
    };
    if sep.is_nan() || sep > 1e-3 * a.cell {
        return Err(ImagingError::invalid(
            psf_name,
            format!(
                "phase centre {:?} differs from the dirty image's {:?} ({:.3e} rad apart)",
                b.phase_centre, a.phase_centre, sep
            ),
        ));
    }
    Ok(())
}
