//! Helpers shared by the integration tests: observations, random data, error norms.
#![allow(dead_code)]

use aperture_imaging::SPEED_OF_LIGHT;
use aperture_imaging::antenna::AntennaConfig;
use aperture_imaging::coords::{Lmn, RaDec, UvwMetres};
use aperture_imaging::gridder::{GridderOptions, Precision};
use aperture_imaging::image::ImageGeometry;
use aperture_imaging::sim::{Rng, hour_angles, synthesize_uvw};
use ndarray::Array2;
use num_complex::Complex64;

/// ‖a − b‖₂ / ‖b‖₂ over real arrays (b is the reference).
pub fn rel_l2(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    assert_eq!(a.dim(), b.dim());
    let (mut num, mut den) = (0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        num += (x - y) * (x - y);
        den += y * y;
    }
    (num / den).sqrt()
}

/// ‖a − b‖₂ / ‖b‖₂ over complex arrays (b is the reference).
pub fn rel_l2_c(a: &Array2<Complex64>, b: &Array2<Complex64>) -> f64 {
    assert_eq!(a.dim(), b.dim());
    let (mut num, mut den) = (0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        num += (x - y).norm_sqr();
        den += y.norm_sqr();
    }
    (num / den).sqrt()
}

/// Gridder options with the given accuracy and precision, w-stacking on, all cores.
pub fn opts(epsilon: f64, precision: Precision) -> GridderOptions {
    GridderOptions {
        epsilon,
        precision,
        wstacking: true,
        threads: 0,
    }
}

/// The uvw rows of `config` observing `phase_centre` at `ntimes` hour angles over
/// `span_hours`; if `keep_rows` is `Some(k)`, a random subset of k rows (seeded), in
/// their original order.
pub fn observe(
    config: &AntennaConfig,
    phase_centre: RaDec,
    ntimes: usize,
    span_hours: f64,
    keep_rows: Option<usize>,
    seed: u64,
) -> Vec<UvwMetres> {
    let ha = hour_angles(ntimes, span_hours).unwrap();
    let rows = synthesize_uvw(config, phase_centre, &ha).unwrap().uvw_r;
    match keep_rows {
        None => rows,
        Some(k) if k >= rows.len() => rows,
        Some(k) => {
            // Partial Fisher–Yates shuffle of the indices, then sort the chosen ones.
            let mut rng = Rng::new(seed);
            let mut idx: Vec<usize> = (0..rows.len()).collect();
            for i in 0..k {
                let j = i + rng.below((idx.len() - i) as u64) as usize;
                idx.swap(i, j);
            }
            let mut chosen = idx[..k].to_vec();
            chosen.sort_unstable();
            chosen.into_iter().map(|i| rows[i]).collect()
        }
    }
}

/// Longest projected baseline √(u² + v²) in wavelengths at the highest frequency.
pub fn max_baseline_lambda(uvw_r: &[UvwMetres], freq_c: &[f64]) -> f64 {
    let fmax = freq_c.iter().copied().fold(0.0, f64::max);
    uvw_r.iter().map(|p| p.uv_length()).fold(0.0, f64::max) * fmax / SPEED_OF_LIGHT
}

/// Largest |w| in wavelengths at the highest frequency.
pub fn max_w_lambda(uvw_r: &[UvwMetres], freq_c: &[f64]) -> f64 {
    let fmax = freq_c.iter().copied().fold(0.0, f64::max);
    uvw_r.iter().map(|p| p.w.abs()).fold(0.0, f64::max) * fmax / SPEED_OF_LIGHT
}

/// Cell for `pixels_per_beam` pixels across the synthesised beam 1/B_max.
pub fn cell_for(uvw_r: &[UvwMetres], freq_c: &[f64], pixels_per_beam: f64) -> f64 {
    1.0 / (pixels_per_beam * max_baseline_lambda(uvw_r, freq_c))
}

/// Smallest even npix ≥ 16 whose image spans at least `fov_rad`.
pub fn npix_for(fov_rad: f64, cell: f64) -> usize {
    let n = (fov_rad / cell).ceil() as usize;
    (n + n % 2).max(16)
}

/// Random complex visibilities, real and imaginary parts N(0, 1).
pub fn random_vis(nrow: usize, nchan: usize, seed: u64) -> Array2<Complex64> {
    let mut rng = Rng::new(seed);
    Array2::from_shape_fn((nrow, nchan), |_| {
        Complex64::new(rng.normal(), rng.normal())
    })
}

/// Random weights uniform in (0, 1], with a fraction `zero_fraction` set to exactly 0.
pub fn random_weights(nrow: usize, nchan: usize, zero_fraction: f64, seed: u64) -> Array2<f64> {
    let mut rng = Rng::new(seed);
    Array2::from_shape_fn((nrow, nchan), |_| {
        if rng.uniform() < zero_fraction {
            0.0
        } else {
            1.0 - rng.uniform()
        }
    })
}

/// A random model image `[y, x]`: `n_random` pixels anywhere (values N(0, 1)) plus every
/// pixel of the outermost rows and columns (so sources reach all four edges and corners).
pub fn random_model_image(geom: &ImageGeometry, n_random: usize, seed: u64) -> Array2<f64> {
    let (nx, ny) = (geom.npix_x, geom.npix_y);
    let mut rng = Rng::new(seed);
    let mut img = Array2::<f64>::zeros((ny, nx));
    for _ in 0..n_random {
        let x = rng.below(nx as u64) as usize;
        let y = rng.below(ny as u64) as usize;
        img[[y, x]] = rng.normal();
    }
    for x in 0..nx {
        img[[0, x]] = rng.normal();
        img[[ny - 1, x]] = rng.normal();
    }
    for y in 0..ny {
        img[[y, 0]] = rng.normal();
        img[[y, nx - 1]] = rng.normal();
    }
    img
}

/// Exact value of the unnormalised adjoint at one pixel:
/// D(x, y) = Re Σ w·V·e^{+2πi(ul + vm + w(n−1))}/n, the phase reduced mod 1 turn first.
pub fn exact_adjoint_at(
    uvw_r: &[UvwMetres],
    freq_c: &[f64],
    vis_rc: &Array2<Complex64>,
    wgt_rc: &Array2<f64>,
    geom: &ImageGeometry,
    x: usize,
    y: usize,
) -> f64 {
    let (l, m) = geom.pixel_to_lm(x as f64, y as f64);
    let lmn = Lmn::from_lm(l, m).unwrap();
    let nm1 = lmn.n_minus_one();
    let mut acc = 0.0;
    for (r, p) in uvw_r.iter().enumerate() {
        let path = p.u * l + p.v * m + p.w * nm1;
        for (c, f) in freq_c.iter().enumerate() {
            let turns = path * f / SPEED_OF_LIGHT;
            let (s, co) = (std::f64::consts::TAU * (turns - turns.round())).sin_cos();
            let z = wgt_rc[[r, c]] * vis_rc[[r, c]] * Complex64::new(co, s);
            acc += z.re;
        }
    }
    acc / lmn.n
}
