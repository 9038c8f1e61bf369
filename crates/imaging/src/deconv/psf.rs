//! What the minor cycle needs to know about a PSF: that it peaks at the centre pixel, how
//! far out its sidelobes stay above a level (the default patch half-width), and the
//! width of its main lobe (for the multi-scale bias).

use crate::ImagingError;

/// The default PSF patch reaches out to where |PSF| stays below this fraction of the peak…
pub(crate) const SUPPORT_LEVEL: f64 = 0.01;
/// …but no further than this fraction of the image size (the PSF beyond is subtracted
/// exactly at the end of each cycle anyway) …
pub(crate) const SUPPORT_MAX_FRACTION: usize = 8;
/// …nor less than this many pixels.
pub(crate) const SUPPORT_MIN: usize = 8;

/// The default patch half-width: where the exterior sidelobes fall to [`SUPPORT_LEVEL`],
/// clamped to [[`SUPPORT_MIN`], max(nx, ny)/[`SUPPORT_MAX_FRACTION`]].
pub(crate) fn default_support(beyond: &[f64], nx: usize, ny: usize) -> usize {
    let hi = (nx.max(ny) / SUPPORT_MAX_FRACTION).max(SUPPORT_MIN);
    support_for_level(beyond, SUPPORT_LEVEL).clamp(SUPPORT_MIN, hi)
}

/// Checks that `psf_yx` (`ny × nx`, row-major) has its largest |value| at the centre pixel
/// (nx/2, ny/2) and that this value is positive; returns it. `name` is the image's name.
pub(crate) fn centre_peak(
    psf_yx: &[f64],
    nx: usize,
    ny: usize,
    name: &str,
) -> Result<f64, ImagingError> {
    let (cx, cy) = (nx / 2, ny / 2);
    let centre = psf_yx[cy * nx + cx];
    let (imax, vmax) =
        psf_yx
            .iter()
            .enumerate()
            .fold((0, f64::NEG_INFINITY), |(bi, bv), (i, v)| {
                if v.abs() > bv { (i, v.abs()) } else { (bi, bv) }
            });
    if centre <= 0.0 || vmax > centre * (1.0 + 1e-9) {
        return Err(ImagingError::invalid(
            name,
            format!(
                "the PSF must peak at the centre pixel (x={cx}, y={cy}) with a positive value; \
                 the centre holds {centre:.6e} but |PSF| reaches {vmax:.6e} at (x={}, y={})",
                imax % nx,
                imax / nx
            ),
        ));
    }
    Ok(centre)
}

/// `out[r]` = largest |PSF|/peak over pixels whose Chebyshev distance from the centre
/// exceeds r (0 beyond the image), for r in 0..=max(nx, ny)/2 + 1.
pub(crate) fn sidelobe_beyond(psf_yx: &[f64], nx: usize, ny: usize, peak: f64) -> Vec<f64> {
    let (cx, cy) = (nx / 2, ny / 2);
    let rmax = nx.max(ny) / 2 + 1;
    let mut ring = vec![0.0f64; rmax + 1];
    for y in 0..ny {
        let dy = y.abs_diff(cy);
        let row = &psf_yx[y * nx..(y + 1) * nx];
        for (x, v) in row.iter().enumerate() {
            let r = dy.max(x.abs_diff(cx));
            let a = v.abs();
            if a > ring[r] {
                ring[r] = a;
            }
        }
    }
    // beyond[r] = max over rings r+1..
    let mut out = vec![0.0; rmax + 1];
    let mut acc = 0.0f64;
    for r in (0..=rmax).rev() {
        out[r] = acc / peak;
        acc = acc.max(ring[r]);
    }
    out
}

/// The smallest half-width whose exterior sidelobes are all ≤ `level`.
pub(crate) fn support_for_level(beyond: &[f64], level: f64) -> usize {
    beyond
        .iter()
        .position(|&s| s <= level)
        .unwrap_or(beyond.len() - 1)
}

/// Full width at half maximum of the main lobe in pixels, from the area of the connected
/// region around the centre where PSF ≥ peak/2 (a circular Gaussian of that area).
pub(crate) fn main_lobe_fwhm(psf_yx: &[f64], nx: usize, ny: usize, peak: f64) -> f64 {
    let (cx, cy) = (nx / 2, ny / 2);
    let half = 0.5 * peak;
    let mut seen = vec![false; nx * ny];
    let mut stack = vec![cy * nx + cx];
    seen[cy * nx + cx] = true;
    let mut area = 0usize;
    while let Some(i) = stack.pop() {
        area += 1;
        let (x, y) = (i % nx, i / nx);
        let mut visit = |j: usize| {
            if !seen[j] && psf_yx[j] >= half {
                seen[j] = true;
                stack.push(j);
            }
        };
        if x > 0 {
            visit(i - 1);
        }
        if x + 1 < nx {
            visit(i + 1);
        }
        if y > 0 {
            visit(i - nx);
        }
        if y + 1 < ny {
            visit(i + nx);
        }
    }
    2.0 * (area as f64 / std::f64::consts::PI).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaussian(nx: usize, ny: usize, fwhm: f64) -> Vec<f64> {
        let s2 = (fwhm / (8.0 * 2f64.ln()).sqrt()).powi(2);
        let mut v = vec![0.0; nx * ny];
        for y in 0..ny {
            for x in 0..nx {
                let (dx, dy) = (x as f64 - (nx / 2) as f64, y as f64 - (ny / 2) as f64);
                v[y * nx + x] = (-(dx * dx + dy * dy) / (2.0 * s2)).exp();
            }
        }
        v
    }

    #[test]
    fn peak_check_and_support() {
        let mut p = gaussian(32, 32, 4.0);
        assert_eq!(centre_peak(&p, 32, 32, "psf").unwrap(), 1.0);
        let beyond = sidelobe_beyond(&p, 32, 32, 1.0);
        // Gaussian of FWHM 4: value at distance r is 2^(-(r/2)^2); the largest beyond
        // Chebyshev radius r sits on an axis at r + 1.
        let w = support_for_level(&beyond, 0.05);
        assert_eq!(w, 4, "{beyond:?}");
        assert!((beyond[w] - 2f64.powf(-(2.5f64).powi(2))).abs() < 1e-12);
        let fwhm = main_lobe_fwhm(&p, 32, 32, 1.0);
        assert!((fwhm - 4.0).abs() < 0.5, "{fwhm}");
        p[3] = -1.5;
        assert!(centre_peak(&p, 32, 32, "psf").is_err());
        p[3] = 0.0;
        p[16 * 32 + 16] = 0.5;
        assert!(centre_peak(&p, 32, 32, "psf").is_err());
    }
}
