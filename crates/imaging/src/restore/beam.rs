//! The restoring beam: an elliptical Gaussian given by its full widths at half maximum
//! and position angle, evaluated on an image grid.
//!
//! Position angle convention (FITS `BPA`, AIPS Memo 27; Greisen 2003): the major axis is
//! measured from north (+m, +y) through east (+l, −x). With u_maj = l·sin(bpa) +
//! m·cos(bpa) and u_min = l·cos(bpa) − m·sin(bpa), the peak-1 beam is
//! exp(−½ (u_maj²/σ_maj² + u_min²/σ_min²)), σ = FWHM / √(8 ln 2).

use std::f64::consts::{FRAC_PI_2, PI};

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::ImagingError;
use crate::image::{Image, ImageGeometry};

/// FWHM / σ of a Gaussian, √(8 ln 2).
pub const FWHM_PER_SIGMA: f64 = 2.354_820_045_030_949_3;

/// The Gaussian falls below this fraction of its peak beyond the kernel support used for
/// restoration: the truncation error is far below f64 rounding of a restored pixel.
pub(crate) const TRUNCATION: f64 = 1e-18;

/// An elliptical Gaussian restoring beam.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Beam {
    /// Full width at half maximum along the major axis, radians on the sky.
    pub bmaj_rad: f64,
    /// Full width at half maximum along the minor axis, radians on the sky.
    pub bmin_rad: f64,
    /// Position angle of the major axis, north through east, radians in (−π/2, π/2].
    pub bpa_rad: f64,
}

impl Beam {
    /// A validated beam; `bpa_rad` may be any finite angle and is brought into
    /// (−π/2, π/2] (a beam is symmetric under a half turn).
    pub fn new(bmaj_rad: f64, bmin_rad: f64, bpa_rad: f64) -> Result<Self, ImagingError> {
        let b = Self {
            bmaj_rad,
            bmin_rad,
            bpa_rad: normalise_pa(bpa_rad),
        };
        b.validate()?;
        Ok(b)
    }

    /// A circular beam of FWHM `fwhm_rad` (position angle 0).
    pub fn circular(fwhm_rad: f64) -> Result<Self, ImagingError> {
        Self::new(fwhm_rad, fwhm_rad, 0.0)
    }

    /// Checks bmaj ≥ bmin > 0, all finite, and bpa in (−π/2, π/2].
    pub fn validate(&self) -> Result<(), ImagingError> {
        if !(self.bmin_rad.is_finite() && self.bmin_rad > 0.0) {
            return Err(ImagingError::invalid(
                "bmin",
                format!("{} rad; must be positive and finite", self.bmin_rad),
            ));
        }
        if !(self.bmaj_rad.is_finite() && self.bmaj_rad >= self.bmin_rad) {
            return Err(ImagingError::invalid(
                "bmaj",
                format!(
                    "{} rad; must be finite and at least bmin ({} rad)",
                    self.bmaj_rad, self.bmin_rad
                ),
            ));
        }
        if !(self.bpa_rad.is_finite() && self.bpa_rad > -FRAC_PI_2 && self.bpa_rad <= FRAC_PI_2) {
            return Err(ImagingError::invalid(
                "bpa",
                format!("{} rad; must be in (-pi/2, pi/2]", self.bpa_rad),
            ));
        }
        Ok(())
    }

    /// Solid angle of the peak-1 beam, ∫ G dΩ = π·bmaj·bmin / (4 ln 2), steradians.
    pub fn area_sr(&self) -> f64 {
        PI * self.bmaj_rad * self.bmin_rad / (4.0 * std::f64::consts::LN_2)
    }

    /// Beam area in pixels of side `cell` radians: Jy/beam × (pixels per beam)⁻¹ sums to Jy.
    pub fn area_pixels(&self, cell: f64) -> f64 {
        self.area_sr() / (cell * cell)
    }

    /// The beam's quadratic form in pixel offsets (dx, dy) on a grid of `cell` radians:
    /// G = exp(−½ (a·dx² + 2b·dx·dy + c·dy²)).
    pub(crate) fn pixel_quadratic(&self, cell: f64) -> Quadratic {
        let smaj = self.bmaj_rad / FWHM_PER_SIGMA / cell;
        let smin = self.bmin_rad / FWHM_PER_SIGMA / cell;
        let (s, c) = self.bpa_rad.sin_cos();
        let (imaj, imin) = (1.0 / (smaj * smaj), 1.0 / (smin * smin));
        // In (l, m) (units of cell): A l² + 2B lm + C m², with l = −dx, m = dy.
        let a_lm = s * s * imaj + c * c * imin;
        let c_lm = c * c * imaj + s * s * imin;
        let b_lm = s * c * (imaj - imin);
        Quadratic {
            a: a_lm,
            b: -b_lm,
            c: c_lm,
        }
    }
}

/// (−π/2, π/2] representative of a position angle (mod π).
pub(crate) fn normalise_pa(pa: f64) -> f64 {
    if !pa.is_finite() {
        return pa;
    }
    let mut p = pa.rem_euclid(PI); // [0, π)
    if p > FRAC_PI_2 {
        p -= PI;
    }
    if p == 0.0 { 0.0 } else { p }
}

/// A positive-definite quadratic form a·dx² + 2b·dx·dy + c·dy² in pixel offsets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Quadratic {
    pub a: f64,
    pub b: f64,
    pub c: f64,
}

impl Quadratic {
    pub fn is_positive_definite(&self) -> bool {
        self.a > 0.0 && self.c > 0.0 && self.a * self.c - self.b * self.b > 0.0
    }

    /// The peak-1 Gaussian at pixel offset (dx, dy).
    #[inline]
    pub fn gaussian(&self, dx: f64, dy: f64) -> f64 {
        (-0.5 * (self.a * dx * dx + 2.0 * self.b * dx * dy + self.c * dy * dy)).exp()
    }

    /// The largest |dx| and |dy| (pixels) where the Gaussian still reaches `level`:
    /// the extent of the ellipse q = 2 ln(1/level) along x is √(q·c/det), along y √(q·a/det).
    pub fn extent(&self, level: f64) -> (f64, f64) {
        let q = 2.0 * (1.0 / level).ln();
        let det = self.a * self.c - self.b * self.b;
        ((q * self.c / det).sqrt(), (q * self.a / det).sqrt())
    }

    /// The beam of this form on a grid of `cell` radians (eigen-decomposition: the
    /// smaller eigenvalue belongs to the major axis). `None` unless positive definite.
    pub fn to_beam(self, cell: f64) -> Option<Beam> {
        if !(self.is_positive_definite() && self.a.is_finite() && self.c.is_finite()) {
            return None;
        }
        // Back to (l, m): B_lm = −b.
        let (a, b, c) = (self.a, -self.b, self.c);
        let mean = 0.5 * (a + c);
        let root = (0.25 * (a - c) * (a - c) + b * b).sqrt();
        let (lo, hi) = (mean - root, mean + root);
        if lo <= 0.0 {
            return None;
        }
        let smaj = 1.0 / lo.sqrt();
        let smin = 1.0 / hi.sqrt();
        // C − A = cos 2θ·Δ and 2B = sin 2θ·Δ with Δ = 1/σ_maj² − 1/σ_min² ≤ 0.
        let pa = normalise_pa(0.5 * (-2.0 * b).atan2(a - c));
        Some(Beam {
            bmaj_rad: smaj * FWHM_PER_SIGMA * cell,
            bmin_rad: smin * FWHM_PER_SIGMA * cell,
            bpa_rad: pa,
        })
    }
}

/// The peak-1 beam sampled on `geom`, centred on pixel (npix_x/2, npix_y/2) like a PSF.
pub fn beam_image(beam: &Beam, geom: &ImageGeometry) -> Image {
    let q = beam.pixel_quadratic(geom.cell);
    let (cx, cy) = ((geom.npix_x / 2) as f64, (geom.npix_y / 2) as f64);
    let data_yx = Array2::from_shape_fn((geom.npix_y, geom.npix_x), |(y, x)| {
        q.gaussian(x as f64 - cx, y as f64 - cy)
    });
    Image {
        geom: *geom,
        data_yx,
    }
}

/// The beam truncated where it falls below [`TRUNCATION`]: a `[2ry+1, 2rx+1]` kernel
/// centred on its middle, the half-widths capped at the image size (`max_rx`, `max_ry`)
/// since no pixel of an image is further from another.
pub(crate) fn beam_kernel(q: &Quadratic, max_rx: usize, max_ry: usize) -> Array2<f64> {
    let (ex, ey) = q.extent(TRUNCATION);
    let rx = (ex.ceil() as usize).min(max_rx);
    let ry = (ey.ceil() as usize).min(max_ry);
    Array2::from_shape_fn((2 * ry + 1, 2 * rx + 1), |(y, x)| {
        q.gaussian(x as f64 - rx as f64, y as f64 - ry as f64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_angles_are_folded_into_the_half_open_range() {
        let d = f64::to_radians;
        for (pa, want) in [
            (0.0, 0.0),
            (90.0, 90.0),
            (-90.0, 90.0),
            (100.0, -80.0),
            (-100.0, 80.0),
            (180.0, 0.0),
            (270.0, 90.0),
            (-30.0, -30.0),
        ] {
            let got = normalise_pa(d(pa)).to_degrees();
            assert!((got - want).abs() < 1e-9, "{pa} -> {got}, want {want}");
        }
    }

    #[test]
    fn quadratic_round_trips_to_the_beam() {
        let cell = 1e-4;
        for pa in [-89.0, -45.0, 0.0, 30.0, 60.0, 90.0] {
            let b = Beam::new(5.0 * cell, 3.0 * cell, f64::to_radians(pa)).unwrap();
            let back = b.pixel_quadratic(cell).to_beam(cell).unwrap();
            assert!((back.bmaj_rad / b.bmaj_rad - 1.0).abs() < 1e-12);
            assert!((back.bmin_rad / b.bmin_rad - 1.0).abs() < 1e-12);
            assert!((back.bpa_rad - b.bpa_rad).abs() < 1e-12, "{pa}: {back:?}");
        }
        let circ = Beam::circular(4.0 * cell).unwrap().pixel_quadratic(cell);
        assert_eq!(circ.to_beam(cell).unwrap().bpa_rad, 0.0);
    }

    #[test]
    fn the_major_axis_points_north_through_east() {
        // bpa 0: major axis along m (y); bpa 90°: along l, i.e. along x.
        let cell = 1.0e-4;
        let q = Beam::new(6.0 * cell, 2.0 * cell, 0.0)
            .unwrap()
            .pixel_quadratic(cell);
        assert!(q.gaussian(0.0, 3.0) > q.gaussian(3.0, 0.0));
        // bpa +45°: the major axis runs from north towards east (+l = −x): (−1, +1).
        let q = Beam::new(6.0 * cell, 2.0 * cell, f64::to_radians(45.0))
            .unwrap()
            .pixel_quadratic(cell);
        assert!(
            (q.gaussian(-2.0, 2.0) - (-0.5 * 8.0 / (6.0f64 / FWHM_PER_SIGMA).powi(2)).exp()).abs()
                < 1e-12
        );
        assert!(q.gaussian(-2.0, 2.0) > q.gaussian(2.0, 2.0));
        // Half maximum at half the FWHM along the major axis.
        let h = 3.0 / std::f64::consts::SQRT_2;
        assert!((q.gaussian(-h, h) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn bad_beams_are_rejected() {
        assert!(Beam::new(1.0, 0.0, 0.0).is_err());
        assert!(Beam::new(1.0, 2.0, 0.0).is_err());
        assert!(Beam::new(f64::NAN, 1.0, 0.0).is_err());
        assert!(Beam::new(1.0, 1.0, f64::INFINITY).is_err());
        assert!(Beam::new(2.0, 1.0, 3.0).is_ok());
    }
}
