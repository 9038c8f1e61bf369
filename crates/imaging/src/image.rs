//! Images and their world coordinates (the SIN projection of DESIGN.md).
//!
//! Pixel (x, y), 0-based, with x along FITS axis 1 (RA) and y along axis 2 (Dec):
//! l = −(x − npix_x/2)·cell, m = (y − npix_y/2)·cell, i.e. FITS `CRPIX = npix/2 + 1`,
//! `CDELT1 = −cell`, `CDELT2 = +cell`. Image arrays are stored `[y, x]` (`_yx`).

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::ImagingError;
use crate::coords::{Lmn, RaDec};

/// The world coordinate system of an image plane.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ImageGeometry {
    /// Pixels along x (RA, FITS axis 1).
    pub npix_x: usize,
    /// Pixels along y (Dec, FITS axis 2).
    pub npix_y: usize,
    /// Pixel size in radians (both axes).
    pub cell: f64,
    pub phase_centre: RaDec,
    /// Reference frequency in Hz.
    pub freq_hz: f64,
    /// Bandwidth covered by the image in Hz.
    pub bandwidth_hz: f64,
}

impl ImageGeometry {
    /// A square geometry; validates that npix is even and ≥ 16 and cell is positive.
    pub fn square(
        npix: usize,
        cell: f64,
        phase_centre: RaDec,
        freq_hz: f64,
        bandwidth_hz: f64,
    ) -> Result<Self, ImagingError> {
        let g = Self {
            npix_x: npix,
            npix_y: npix,
            cell,
            phase_centre,
            freq_hz,
            bandwidth_hz,
        };
        g.validate()?;
        Ok(g)
    }

    /// Checks npix (even, ≥ 16) and cell (positive, image within the unit circle).
    pub fn validate(&self) -> Result<(), ImagingError> {
        for (name, n) in [("npix", self.npix_x), ("npix", self.npix_y)] {
            if n < 16 || n % 2 != 0 {
                return Err(ImagingError::invalid(
                    name,
                    format!("{n} pixels; must be even and at least 16"),
                ));
            }
        }
        if !(self.cell.is_finite() && self.cell > 0.0) {
            return Err(ImagingError::invalid(
                "cell",
                format!("{} rad; must be positive", self.cell),
            ));
        }
        let (lmax, mmax) = self.lm_extent();
        if lmax * lmax + mmax * mmax >= 1.0 {
            return Err(ImagingError::invalid(
                "cell",
                format!(
                    "field of view {:.1}° × {:.1}° reaches beyond the horizon (l² + m² ≥ 1)",
                    (lmax * 2.0).to_degrees(),
                    (mmax * 2.0).to_degrees()
                ),
            ));
        }
        Ok(())
    }

    /// Largest |l| and |m| of any pixel centre.
    pub fn lm_extent(&self) -> (f64, f64) {
        (
            (self.npix_x / 2) as f64 * self.cell,
            (self.npix_y / 2) as f64 * self.cell,
        )
    }

    /// (l, m) of pixel (x, y), fractional pixels allowed.
    pub fn pixel_to_lm(&self, x: f64, y: f64) -> (f64, f64) {
        (
            -(x - (self.npix_x / 2) as f64) * self.cell,
            (y - (self.npix_y / 2) as f64) * self.cell,
        )
    }

    /// Fractional pixel (x, y) of direction cosines (l, m).
    pub fn lm_to_pixel(&self, l: f64, m: f64) -> (f64, f64) {
        (
            (self.npix_x / 2) as f64 - l / self.cell,
            (self.npix_y / 2) as f64 + m / self.cell,
        )
    }

    /// Fractional pixel of a sky direction, or `None` behind the tangent plane.
    pub fn radec_to_pixel(&self, dir: RaDec) -> Option<(f64, f64)> {
        let lmn: Lmn = dir.to_lmn(self.phase_centre);
        (lmn.n > 0.0).then(|| self.lm_to_pixel(lmn.l, lmn.m))
    }

    /// Sky direction of a pixel.
    pub fn pixel_to_radec(&self, x: f64, y: f64) -> Option<RaDec> {
        let (l, m) = self.pixel_to_lm(x, y);
        RaDec::from_lm(l, m, self.phase_centre)
    }
}

/// A real image with its geometry; `data_yx` is indexed `[y, x]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub geom: ImageGeometry,
    pub data_yx: Array2<f64>,
}

impl Image {
    pub fn zeros(geom: ImageGeometry) -> Self {
        Self {
            data_yx: Array2::zeros((geom.npix_y, geom.npix_x)),
            geom,
        }
    }

    /// Value and position (x, y) of the maximum pixel.
    pub fn peak(&self) -> (f64, usize, usize) {
        let mut best = (f64::NEG_INFINITY, 0, 0);
        for ((y, x), &v) in self.data_yx.indexed_iter() {
            if v > best.0 {
                best = (v, x, y);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_lm_round_trip_and_orientation() {
        let g =
            ImageGeometry::square(64, 1e-3, RaDec::from_degrees(10.0, -30.0), 1e8, 1e6).unwrap();
        assert_eq!(g.pixel_to_lm(32.0, 32.0), (0.0, 0.0));
        // x grows to the west (RA decreases), y to the north.
        let (l, m) = g.pixel_to_lm(33.0, 33.0);
        assert!(l < 0.0 && m > 0.0);
        let (x, y) = g.lm_to_pixel(l, m);
        assert!((x - 33.0).abs() < 1e-12 && (y - 33.0).abs() < 1e-12);
        let east = g.pixel_to_radec(31.0, 32.0).unwrap();
        assert!(east.ra > g.phase_centre.ra);
    }

    #[test]
    fn rejects_bad_npix_and_cell() {
        let c = RaDec::default();
        assert!(ImageGeometry::square(15, 1e-3, c, 1e8, 0.0).is_err());
        assert!(ImageGeometry::square(8, 1e-3, c, 1e8, 0.0).is_err());
        assert!(ImageGeometry::square(64, 0.0, c, 1e8, 0.0).is_err());
        assert!(ImageGeometry::square(64, 0.05, c, 1e8, 0.0).is_err());
    }
}
