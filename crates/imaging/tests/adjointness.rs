//! Checks that the gridder's `invert` is the adjoint of its `predict`:
//! Re⟨predict(I), V⟩ = ⟨I, invert(V)⟩ (unit weights) for random wide-field data, images,
//! sizes and accuracies, in f64 to rounding level and in f32 to ~1e-5.
//!
//! Tolerance rationale: `invert` and `predict` use the same kernels, the same w-planes,
//! the same FFT sizes and the same grid correction, so the identity holds exactly in exact
//! arithmetic whatever `epsilon` is (it is not an accuracy-vs-DFT statement). Only
//! rounding breaks it. We normalise the discrepancy by the Cauchy–Schwarz scale
//! ‖predict(I)‖₂·‖V‖₂ (≥ |⟨predict(I), V⟩|, and what a perturbation of relative size δ in
//! either operator can change the inner product by), so the measure is δ itself: a few
//! hundred units of rounding. Relative to |⟨predict(I), V⟩| itself this is
//! 1e2·u × condition, the condition of the inner product being
//! ‖predict(I)‖·‖V‖/|⟨predict(I), V⟩|. With u = 2⁻⁵² ≈ 2.2e-16 (f64) and 2⁻²³ ≈ 1.2e-7
//! (f32) the bounds are 2.2e-14 and 1.2e-5; in the fixed f32 case (condition ≈ 70) we also
//! ask for 1e-5 relative to the inner product itself.

mod common;

use aperture_imaging::SPEED_OF_LIGHT;
use aperture_imaging::coords::{RaDec, UvwMetres};
use aperture_imaging::gridder::{Precision, invert, predict};
use aperture_imaging::image::ImageGeometry;
use aperture_imaging::sim::Rng;
use ndarray::Array2;
use num_complex::Complex64;
use proptest::prelude::*;

use common::{opts, random_vis};

/// 1e2 units of rounding, on the Cauchy–Schwarz scale.
const TOL_F64: f64 = 1e2 * f64::EPSILON;
const TOL_F32: f64 = 1e2 * f32::EPSILON as f64;
/// f32: relative to |⟨predict(I), V⟩|.
const TOL_F32_REL: f64 = 1e-5;

/// A random wide-field problem: a `fov_rad` field of npix² pixels, `nrow` baselines with
/// |u|, |v| up to the 3-pixels-per-beam limit and |w| up to the same length (a
/// low-elevation observation), 2 channels, a dense random image and random visibilities.
struct Problem {
    uvw_r: Vec<UvwMetres>,
    freq_c: Vec<f64>,
    geom: ImageGeometry,
    img_yx: Array2<f64>,
    vis_rc: Array2<Complex64>,
}

fn problem(npix: usize, fov_rad: f64, nrow: usize, seed: u64) -> Problem {
    let freq_c = vec![100e6, 130e6];
    let cell = fov_rad / npix as f64;
    // Longest baseline 1/(3·cell) wavelengths at the highest frequency, in metres.
    let bmax_m = 1.0 / (3.0 * cell) * SPEED_OF_LIGHT / 130e6;
    let mut rng = Rng::new(seed);
    let uvw_r = (0..nrow)
        .map(|_| {
            // Uniform in the disc of radius bmax, w of either sign.
            let r = bmax_m * rng.uniform().sqrt();
            let phi = std::f64::consts::TAU * rng.uniform();
            UvwMetres::new(
                r * phi.cos(),
                r * phi.sin(),
                rng.uniform_range(-bmax_m, bmax_m),
            )
        })
        .collect();
    let geom =
        ImageGeometry::square(npix, cell, RaDec::from_degrees(30.0, -50.0), 115e6, 30e6).unwrap();
    let img_yx = Array2::from_shape_fn((npix, npix), |_| rng.normal());
    let vis_rc = random_vis(nrow, freq_c.len(), seed ^ 0xA5A5);
    Problem {
        uvw_r,
        freq_c,
        geom,
        img_yx,
        vis_rc,
    }
}

/// |Re⟨P I, V⟩ − ⟨I, A V⟩| / (‖P I‖₂ ‖V‖₂) and the two inner products.
fn adjoint_mismatch(p: &Problem, epsilon: f64, precision: Precision) -> (f64, f64, f64) {
    let o = opts(epsilon, precision);
    let ones = Array2::<f64>::ones(p.vis_rc.dim());
    let (pi, _) = predict(&p.uvw_r, &p.freq_c, p.img_yx.view(), &p.geom, &o).unwrap();
    let (av, _) = invert(
        &p.uvw_r,
        &p.freq_c,
        p.vis_rc.view(),
        ones.view(),
        &p.geom,
        &o,
    )
    .unwrap();
    let lhs: f64 = pi
        .iter()
        .zip(&p.vis_rc)
        .map(|(a, b)| (a.conj() * b).re)
        .sum();
    let rhs: f64 = p.img_yx.iter().zip(&av).map(|(a, b)| a * b).sum();
    let norm_pi = pi.iter().map(|z| z.norm_sqr()).sum::<f64>().sqrt();
    let norm_v = p.vis_rc.iter().map(|z| z.norm_sqr()).sum::<f64>().sqrt();
    ((lhs - rhs).abs() / (norm_pi * norm_v), lhs, rhs)
}

#[test]
fn adjoint_f64_across_all_epsilons() {
    // One wide (25°) problem, every supported f64 accuracy: the identity does not depend
    // on epsilon.
    let p = problem(128, 25f64.to_radians(), 1500, 1);
    let mut worst = 0.0f64;
    for k in 2..=12 {
        let eps = 10f64.powi(-k);
        let (d, lhs, rhs) = adjoint_mismatch(&p, eps, Precision::F64);
        let rel = (lhs - rhs).abs() / lhs.abs();
        eprintln!(
            "f64 eps {eps:.0e}: mismatch {d:.2e}, relative {rel:.2e} ({lhs:.12e} vs {rhs:.12e})"
        );
        assert!(d <= TOL_F64, "eps {eps:e}: mismatch {d:e} > {TOL_F64:e}");
        worst = worst.max(d);
    }
    eprintln!("f64 worst mismatch {worst:.2e}");
}

#[test]
fn adjoint_f32_across_all_epsilons() {
    let p = problem(128, 25f64.to_radians(), 1500, 2);
    for k in 2..=5 {
        let eps = 10f64.powi(-k);
        let (d, lhs, rhs) = adjoint_mismatch(&p, eps, Precision::F32);
        let rel = (lhs - rhs).abs() / lhs.abs();
        eprintln!(
            "f32 eps {eps:.0e}: mismatch {d:.2e}, relative {rel:.2e} ({lhs:.6e} vs {rhs:.6e})"
        );
        assert!(d <= TOL_F32, "eps {eps:e}: mismatch {d:e} > {TOL_F32:e}");
        assert!(
            rel <= TOL_F32_REL,
            "eps {eps:e}: relative mismatch {rel:e} > {TOL_F32_REL:e}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 12,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn adjoint_holds_for_random_problems(
        seed in any::<u64>(),
        half_npix in 16usize..=80,
        fov_deg in 2.0f64..30.0,
        f64_exp in 2i32..=12,
        f32_exp in 2i32..=5,
    ) {
        let p = problem(2 * half_npix, fov_deg.to_radians(), 400, seed);
        let (d64, ..) = adjoint_mismatch(&p, 10f64.powi(-f64_exp), Precision::F64);
        prop_assert!(d64 <= TOL_F64, "f64 eps 1e-{}: mismatch {:e}", f64_exp, d64);
        // Only the Cauchy–Schwarz-normalised measure here: for random data the inner
        // product can be arbitrarily small (ill-conditioned), so relative to it the
        // rounding bound grows with the condition number.
        let (d32, ..) = adjoint_mismatch(&p, 10f64.powi(-f32_exp), Precision::F32);
        prop_assert!(d32 <= TOL_F32, "f32 eps 1e-{}: mismatch {:e}", f32_exp, d32);
    }
}
