//! Shared helpers of the deconvolution tests: realistic PSFs from the gridder on a
//! LOW-like layout, and dirty images made exactly as sums of shifted, scaled PSFs.
#![allow(dead_code)]

use aperture_imaging::SPEED_OF_LIGHT;
use aperture_imaging::coords::{RaDec, UvwMetres};
use aperture_imaging::gridder::{GridderOptions, Precision, psf_image};
use aperture_imaging::image::{Image, ImageGeometry};
use aperture_imaging::sim::{hour_angles, low_config, synthesize_uvw};
use ndarray::Array2;

pub const NPIX: usize = 256;
pub const F_MIN: f64 = 100e6;
pub const F_MAX: f64 = 150e6;

/// uvw of LOW stations within 600 m (227), 3 hour angles over ±3 h at Dec −45°, and the
/// geometry of a `NPIX`² image with 3 pixels per synthesised beam at `F_MAX`.
pub fn observation() -> (Vec<UvwMetres>, ImageGeometry) {
    let pc = RaDec::from_degrees(15.0, -45.0);
    let config = low_config(600.0).unwrap();
    let ha = hour_angles(3, 6.0).unwrap();
    let uvw = synthesize_uvw(&config, pc, &ha).unwrap().uvw_r;
    let bmax = uvw.iter().map(|p| p.uv_length()).fold(0.0, f64::max) * F_MAX / SPEED_OF_LIGHT;
    let cell = 1.0 / (3.0 * bmax);
    let geom = ImageGeometry::square(NPIX, cell, pc, 125e6, 50e6).unwrap();
    (uvw, geom)
}

/// The natural-weighted PSF at `freq_hz` (peak 1 at the centre pixel).
pub fn psf_at(uvw: &[UvwMetres], geom: &ImageGeometry, freq_hz: f64) -> Image {
    let wgt = Array2::from_elem((uvw.len(), 1), 1.0);
    let g = ImageGeometry {
        freq_hz,
        bandwidth_hz: 0.0,
        ..*geom
    };
    let opts = GridderOptions {
        epsilon: 1e-7,
        precision: Precision::F64,
        wstacking: true,
        threads: 0,
    };
    psf_image(uvw, &[freq_hz], wgt.view(), &g, &opts).unwrap().0
}

/// The PSF at the band centre, computed once per test binary.
pub fn psf() -> Image {
    use std::sync::OnceLock;
    static P: OnceLock<Image> = OnceLock::new();
    P.get_or_init(|| {
        let (uvw, geom) = observation();
        psf_at(&uvw, &geom, geom.freq_hz)
    })
    .clone()
}

/// Σ_k flux_k × PSF shifted to (x_k, y_k), clipped to the image: the exact dirty image of
/// point sources (brute force, the oracle).
pub fn shifted_sum(psf: &Image, comps: &[(usize, usize, f64)]) -> Array2<f64> {
    let (ny, nx) = psf.data_yx.dim();
    let (cx, cy) = ((nx / 2) as isize, (ny / 2) as isize);
    let mut out = Array2::zeros((ny, nx));
    for &(x, y, f) in comps {
        if f == 0.0 {
            continue;
        }
        for oy in 0..ny {
            let py = oy as isize - y as isize + cy;
            if py < 0 || py >= ny as isize {
                continue;
            }
            for ox in 0..nx {
                let px = ox as isize - x as isize + cx;
                if px >= 0 && px < nx as isize {
                    out[[oy, ox]] += f * psf.data_yx[[py as usize, px as usize]];
                }
            }
        }
    }
    out
}

/// The non-zero pixels of a model image as components.
pub fn components(model: &Array2<f64>) -> Vec<(usize, usize, f64)> {
    model
        .indexed_iter()
        .filter(|(_, v)| **v != 0.0)
        .map(|((y, x), v)| (x, y, *v))
        .collect()
}

/// An image on `geom` with data `data`.
pub fn image(geom: &ImageGeometry, data: Array2<f64>) -> Image {
    Image {
        geom: *geom,
        data_yx: data,
    }
}

/// Sum of `model` within Chebyshev radius `r` of (x, y).
pub fn flux_near(model: &Array2<f64>, x: usize, y: usize, r: usize) -> f64 {
    let (ny, nx) = model.dim();
    let mut s = 0.0;
    for yy in y.saturating_sub(r)..(y + r + 1).min(ny) {
        for xx in x.saturating_sub(r)..(x + r + 1).min(nx) {
            s += model[[yy, xx]];
        }
    }
    s
}

/// Largest |value|.
pub fn max_abs(a: &Array2<f64>) -> f64 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// Root mean square.
pub fn rms(a: &Array2<f64>) -> f64 {
    (a.iter().map(|v| v * v).sum::<f64>() / a.len() as f64).sqrt()
}
