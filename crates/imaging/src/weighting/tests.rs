//! Tests of the weighting schemes and taper against analytic answers.

use std::collections::HashMap;
use std::f64::consts::{LN_2, PI};

use ndarray::s;

use super::*;
use crate::SPEED_OF_LIGHT;
use crate::coords::{RaDec, UvwMetres};
use crate::sim::invalid_name;
use crate::sim::rng::Rng;

/// At this frequency one metre is one wavelength.
const F1: f64 = SPEED_OF_LIGHT;

/// 64² pixels of 1/64 rad: du = dv = 1 wavelength, in-grid iff |u|, |v| ≤ 32 λ.
fn geom64() -> ImageGeometry {
    ImageGeometry::square(64, 1.0 / 64.0, RaDec::default(), F1, 0.0).unwrap()
}

/// A block with one row per (u, v) in metres, unit weights, no flags.
fn block_uv(points: &[(f64, f64)], freq_c: Vec<f64>) -> VisBlock {
    let n = points.len();
    VisBlock::zeros(
        points
            .iter()
            .map(|&(u, v)| UvwMetres::new(u, v, 0.0))
            .collect(),
        freq_c,
        vec![0; n],
        vec![1; n],
        vec![0.0; n],
        RaDec::default(),
    )
}

/// Rows `a..b` of `block`.
fn rows(block: &VisBlock, a: usize, b: usize) -> VisBlock {
    VisBlock {
        uvw_r: block.uvw_r[a..b].to_vec(),
        freq_c: block.freq_c.clone(),
        vis_rc: block.vis_rc.slice(s![a..b, ..]).to_owned(),
        weight_rc: block.weight_rc.slice(s![a..b, ..]).to_owned(),
        flag_rc: block.flag_rc.slice(s![a..b, ..]).to_owned(),
        ant1_r: block.ant1_r[a..b].to_vec(),
        ant2_r: block.ant2_r[a..b].to_vec(),
        time_r: block.time_r[a..b].to_vec(),
        phase_centre: block.phase_centre,
    }
}

/// `n` random rows with |u|, |v| < 20 m, two channels (1 and 1.3 m⁻¹ → |u| < 26 λ),
/// random weights, a few exact conjugate pairs and points at the origin cell, ~10 % of
/// samples flagged.
fn random_block(n: usize, seed: u64) -> VisBlock {
    let mut rng = Rng::new(seed);
    let mut pts: Vec<(f64, f64)> = (0..n)
        .map(|_| {
            (
                rng.uniform_range(-20.0, 20.0),
                rng.uniform_range(-20.0, 20.0),
            )
        })
        .collect();
    for i in 0..10 {
        let (u, v) = pts[i];
        pts.push((-u, -v));
    }
    pts.extend([(0.0, 0.0), (0.1, -0.2), (0.3, 0.3)]);
    let mut b = block_uv(&pts, vec![F1, 1.3 * F1]);
    for w in b.weight_rc.iter_mut() {
        *w = rng.uniform_range(0.5, 2.0);
    }
    for f in b.flag_rc.iter_mut() {
        *f = rng.uniform() < 0.1;
    }
    b
}

fn briggs(robust: f64) -> WeightingSpec {
    WeightingSpec::new(WeightingScheme::Briggs { robust })
}

#[test]
fn uv_grid_cells_conjugates_and_nyquist_edge() {
    let g = UvGrid::for_image(&geom64()).unwrap();
    assert_eq!((g.du(), g.dv(), g.n_u(), g.n_v()), (1.0, 1.0, 64, 64));
    let centre = g.cell_index(0.0, 0.0).unwrap();
    assert_eq!(g.vu_of(centre), [32, 32]);
    assert_eq!(g.conjugate_index(centre), centre);
    // Nearest cell, column grows with u, row with v.
    assert_eq!(g.vu_of(g.cell_index(2.4, -2.6).unwrap()), [29, 34]);
    for (u, v) in [(2.4, -2.6), (31.7, 0.2), (-10.0, 5.5), (-31.9, -31.9)] {
        assert_eq!(
            g.cell_index(-u, -v).unwrap(),
            g.conjugate_index(g.cell_index(u, v).unwrap())
        );
    }
    // ±n/2 are one periodic cell, its own conjugate along that axis.
    let a = g.cell_index(32.0, 0.0).unwrap();
    assert_eq!(a, g.cell_index(-32.0, 0.0).unwrap());
    assert_eq!(g.vu_of(a), [32, 0]);
    assert_eq!(g.conjugate_index(a), a);
    assert_eq!(g.cell_index(32.01, 0.0), None);
    assert_eq!(g.cell_index(0.0, -40.0), None);
    assert_eq!(g.cell_index(f64::NAN, 0.0), None);
    assert_eq!(g.cell_index(f64::INFINITY, 0.0), None);
}

#[test]
fn density_is_hermitian_and_sums_twice_the_weights() {
    let b = random_block(300, 1);
    let d = uv_cell_density(&b, &geom64()).unwrap();
    let g = *d.grid();
    let w = b.effective_weight_rc();
    // ~10³ weights of order 1: the two summation orders agree to ~10³ ε.
    assert!((d.sum_weights() - w.sum()).abs() < 1e-12 * w.sum());
    for k in 0..g.n_u() * g.n_v() {
        assert_eq!(d.at_index(k), d.at_index(g.conjugate_index(k)));
    }
    // A sample in the origin cell counts twice there (itself and its conjugate).
    let one = block_uv(&[(0.2, 0.1)], vec![F1]);
    let d1 = uv_cell_density(&one, &geom64()).unwrap();
    assert_eq!(d1.density_vu()[[32, 32]], 2.0);
    assert_eq!(d1.n_occupied(), 1);
}

/// Uniform: for every occupied cell k, Σ over samples i in k of w_i' plus Σ over samples
/// whose conjugate is in k of w_i' is W_k / W_k = 1 exactly (the origin cell too, where
/// W = 2 Σ w). Hence Σ_i w_i' = (occupied cells) / 2.
#[test]
fn uniform_gives_every_occupied_cell_unit_weight() {
    let b = random_block(500, 2);
    let (w, rep) =
        imaging_weights(&b, &geom64(), &WeightingSpec::new(WeightingScheme::Uniform)).unwrap();
    let mut cell_sum: HashMap<(i64, i64), f64> = HashMap::new();
    for (r, uvw) in b.uvw_r.iter().enumerate() {
        for (c, f) in b.freq_c.iter().enumerate() {
            let s = f / SPEED_OF_LIGHT;
            let k = ((uvw.u * s).round() as i64, (uvw.v * s).round() as i64);
            if b.flag_rc[[r, c]] {
                assert_eq!(w[[r, c]], 0.0);
                continue;
            }
            *cell_sum.entry(k).or_default() += w[[r, c]];
            *cell_sum.entry((-k.0, -k.1)).or_default() += w[[r, c]];
        }
    }
    for (k, sum) in &cell_sum {
        assert!((sum - 1.0).abs() < 1e-12, "cell {k:?} sums to {sum}");
    }
    let d = uv_cell_density(&b, &geom64()).unwrap();
    assert_eq!(cell_sum.len(), d.n_occupied());
    assert!((rep.sum_weights - cell_sum.len() as f64 / 2.0).abs() < 1e-9);
    assert_eq!(rep.n_zeroed_outside_grid, 0);
}

/// 20 cells in the quadrant u, v ≥ 2 (so no cell meets a conjugate), cell j holding
/// n_j = 1 + j mod 4 unit-weight samples: W = n_j in the cell and its conjugate, so
/// Σ W = 2 Σ n = 100, Σ W² = 2 Σ n² = 300 and f²(R) = 25·10^(−2R) / 3.
fn counted_cells() -> (VisBlock, Vec<f64>) {
    let mut pts = Vec::new();
    let mut n_r = Vec::new();
    for j in 0..20 {
        let (ku, kv) = (2.0 + (j % 5) as f64, 2.0 + (j / 5) as f64);
        let n = 1 + j % 4;
        for i in 0..n {
            let off = 0.1 * i as f64 - 0.15;
            pts.push((ku + off, kv - off));
            n_r.push(n as f64);
        }
    }
    (block_uv(&pts, vec![F1]), n_r)
}

#[test]
fn briggs_matches_the_formula_on_counted_cells() {
    let (b, n_r) = counted_cells();
    let geom = geom64();
    let d = uv_cell_density(&b, &geom).unwrap();
    assert!((d.mean_density() - 3.0).abs() < 1e-15);
    for robust in [-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0] {
        let f2 = 25.0 * 10f64.powf(-2.0 * robust) / 3.0;
        assert!((d.briggs_f2(robust).unwrap() / f2 - 1.0).abs() < 1e-14);
        let (w, _) = imaging_weights(&b, &geom, &briggs(robust)).unwrap();
        for (r, &n) in n_r.iter().enumerate() {
            let want = 1.0 / (1.0 + n * f2);
            assert!(
                (w[[r, 0]] / want - 1.0).abs() < 1e-13,
                "R = {robust}, row {r}"
            );
        }
    }
    let (w, _) = imaging_weights(&b, &geom, &WeightingSpec::new(WeightingScheme::Uniform)).unwrap();
    for (r, &n) in n_r.iter().enumerate() {
        assert!((w[[r, 0]] - 1.0 / n).abs() < 1e-15);
    }
}

/// R = −2: w_B / w_U = W/(1 + W f²) = (1/f²)·x/(1 + x) with x = W f² ≥ 2500·W_min/W̄, so
/// the ratio is constant to within 1/(1 + x_min) (here 1.2·10⁻⁵), far below 1 %.
#[test]
fn briggs_minus_two_is_uniform_up_to_a_constant() {
    let (b, _) = counted_cells();
    let geom = geom64();
    let (wb, _) = imaging_weights(&b, &geom, &briggs(-2.0)).unwrap();
    let (wu, _) =
        imaging_weights(&b, &geom, &WeightingSpec::new(WeightingScheme::Uniform)).unwrap();
    let ratio: Vec<f64> = wb.iter().zip(&wu).map(|(b, u)| b / u).collect();
    let (lo, hi) = ratio.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &r| {
        (lo.min(r), hi.max(r))
    });
    let x_min = 1.0 * 2500.0 / 3.0;
    assert!((hi - lo) / hi <= 1.0 / (1.0 + x_min) * (1.0 + 1e-9));
    assert!((hi - lo) / hi < 0.01);

    // Same on a dense random coverage: the spread is bounded by 1/(1 + W_min f²).
    let b = random_block(4000, 3);
    let d = uv_cell_density(&b, &geom).unwrap();
    let (wb, _) = imaging_weights(&b, &geom, &briggs(-2.0)).unwrap();
    let (wu, _) =
        imaging_weights(&b, &geom, &WeightingSpec::new(WeightingScheme::Uniform)).unwrap();
    let w_min = d
        .density_vu()
        .iter()
        .filter(|&&x| x > 0.0)
        .fold(f64::INFINITY, |a, &x| a.min(x));
    let bound = 1.0 / (1.0 + w_min * d.briggs_f2(-2.0).unwrap());
    let ratio: Vec<f64> = wb
        .iter()
        .zip(&wu)
        .filter(|(_, u)| **u > 0.0)
        .map(|(b, u)| b / u)
        .collect();
    let hi = ratio.iter().fold(0.0f64, |a, &r| a.max(r));
    let lo = ratio.iter().fold(f64::INFINITY, |a, &r| a.min(r));
    assert!(
        (hi - lo) / hi <= bound * (1.0 + 1e-9),
        "spread {}",
        (hi - lo) / hi
    );
    assert!((hi - lo) / hi < 0.01);
}

/// R → +∞ gives natural weights, R → −∞ uniform weights divided by f² (checked with the
/// unvalidated kernel at R = ±10); R = +2 deviates from natural by W f²/(1 + W f²).
#[test]
fn briggs_limits_are_natural_and_uniform() {
    let b = random_block(800, 4);
    let geom = geom64();
    let d = uv_cell_density(&b, &geom).unwrap();
    let natural = b.effective_weight_rc();
    let (uniform, _) =
        imaging_weights(&b, &geom, &WeightingSpec::new(WeightingScheme::Uniform)).unwrap();
    let eps = f64::EPSILON;

    // R = 10: W f² ~ 10⁻¹⁹ is far below ε, so w/(1 + W f²) is w to rounding.
    let f2 = d.briggs_f2_unchecked(10.0);
    let (w, _) = weigh_with_rule(&b, Some((DensityRule::Briggs { f2 }, &d)), None).unwrap();
    for (a, n) in w.iter().zip(&natural) {
        assert!((a - n).abs() <= eps * n);
    }
    // R = −10: w f²/(1 + W f²) = (w/W)(1 − 1/(1 + W f²)) with 1/(W f²) ~ 10⁻²¹, so it equals
    // the uniform weight to the rounding of a few operations.
    let f2 = d.briggs_f2_unchecked(-10.0);
    let (w, _) = weigh_with_rule(&b, Some((DensityRule::Briggs { f2 }, &d)), None).unwrap();
    for (a, u) in w.iter().zip(&uniform) {
        assert!((a * f2 - u).abs() <= 4.0 * eps * u);
    }

    // R = +2: f² = 0.0025 / W̄, so 1 − w_B/w_N = W f²/(1 + W f²) ≤ 0.0025·W_max/W̄.
    let (w, _) = imaging_weights(&b, &geom, &briggs(2.0)).unwrap();
    let w_max = d.density_vu().fold(0.0f64, |a, &x| a.max(x));
    let bound = 0.0025 * w_max / d.mean_density();
    for (a, n) in w.iter().zip(&natural) {
        assert!(*a <= *n && n - a <= bound * n);
    }
}

#[test]
fn flagged_samples_get_zero_weight_and_no_density() {
    let mut b = random_block(200, 5);
    // Flag every third row entirely on top of the random flags.
    for r in (0..b.n_rows()).step_by(3) {
        b.flag_rc.row_mut(r).fill(true);
    }
    let geom = geom64();
    for scheme in [
        WeightingScheme::Natural,
        WeightingScheme::Uniform,
        WeightingScheme::Briggs { robust: 0.0 },
    ] {
        for spec in [
            WeightingSpec::new(scheme),
            WeightingSpec::new(scheme).with_taper(0.02),
        ] {
            let (w, _) = imaging_weights(&b, &geom, &spec).unwrap();
            for (wv, &f) in w.iter().zip(&b.flag_rc) {
                assert!(!f || *wv == 0.0, "{spec:?}");
                assert!(f || *wv > 0.0, "{spec:?}");
            }
        }
    }
    // Flagged samples add nothing to the density: dropping the fully flagged rows and
    // zeroing the other flagged weights gives the same density.
    let kept: Vec<usize> = (0..b.n_rows()).filter(|r| r % 3 != 0).collect();
    let mut sub = block_uv(
        &kept
            .iter()
            .map(|&r| (b.uvw_r[r].u, b.uvw_r[r].v))
            .collect::<Vec<_>>(),
        b.freq_c.clone(),
    );
    for (i, &r) in kept.iter().enumerate() {
        for c in 0..b.n_chan() {
            sub.weight_rc[[i, c]] = if b.flag_rc[[r, c]] {
                0.0
            } else {
                b.weight_rc[[r, c]]
            };
        }
    }
    let d_full = uv_cell_density(&b, &geom).unwrap();
    let d_sub = uv_cell_density(&sub, &geom).unwrap();
    assert_eq!(d_full.density_vu(), d_sub.density_vu());
}

#[test]
fn samples_outside_the_grid_are_zeroed_and_counted() {
    let geom = geom64();
    // In: (0.5, 0.5), (31.9, 0) [Nyquist cell]; out: (40, 0), (0, −33); channel 2 at
    // 1.5 m⁻¹ also pushes (31.9, 0) out.
    let mut b = block_uv(
        &[
            (0.5, 0.5),
            (31.9, 0.0),
            (40.0, 0.0),
            (0.0, -33.0),
            (50.0, 50.0),
        ],
        vec![F1, 1.5 * F1],
    );
    b.flag_rc[[4, 0]] = true;
    b.flag_rc[[4, 1]] = true; // flagged: not counted
    for spec in [WeightingSpec::new(WeightingScheme::Uniform), briggs(0.5)] {
        let (w, rep) = imaging_weights(&b, &geom, &spec).unwrap();
        assert_eq!(rep.n_zeroed_outside_grid, 5);
        assert!(w[[0, 0]] > 0.0 && w[[0, 1]] > 0.0 && w[[1, 0]] > 0.0);
        for (r, c) in [(1, 1), (2, 0), (2, 1), (3, 0), (3, 1), (4, 0), (4, 1)] {
            assert_eq!(w[[r, c]], 0.0);
        }
    }
    let (w, rep) = imaging_weights(&b, &geom, &WeightingSpec::default()).unwrap();
    assert_eq!(rep.n_zeroed_outside_grid, 0);
    assert_eq!(w, b.effective_weight_rc());
}

#[test]
fn taper_of_a_single_visibility_is_the_analytic_factor() {
    let theta = 0.01;
    let geom = geom64();
    // (3, 4) m at 1 and 2 m⁻¹: u² + v² = 25 and 100 λ².
    let b = block_uv(&[(3.0, 4.0)], vec![F1, 2.0 * F1]);
    let c = (PI * theta).powi(2) / (4.0 * LN_2);
    for scheme in [WeightingScheme::Natural, WeightingScheme::Uniform] {
        let (w, _) =
            imaging_weights(&b, &geom, &WeightingSpec::new(scheme).with_taper(theta)).unwrap();
        assert!((w[[0, 0]] - (-25.0 * c).exp()).abs() < 1e-15);
        assert!((w[[0, 1]] - (-100.0 * c).exp()).abs() < 1e-15);
    }
    // Half power at |u| = 2 ln 2 / (π θ), in any direction.
    let theta = 0.05;
    let r = 2.0 * LN_2 / (PI * theta);
    let b = block_uv(&[(r, 0.0), (0.0, -r), (r * 0.6, r * 0.8)], vec![F1]);
    let (w, _) = imaging_weights(&b, &geom, &WeightingSpec::default().with_taper(theta)).unwrap();
    for x in w.iter() {
        assert!((x - 0.5).abs() < 1e-14);
    }
    assert!((gaussian_taper(r, 0.0, theta) - 0.5).abs() < 1e-15);
}

/// The PSF of a densely, evenly sampled 1-D uv coverage with tapered weights,
/// B(l) = Σ w_k cos(2π u_k l) / Σ w_k, is the image-plane Gaussian of the requested FWHM,
/// exp(−4 ln 2 · l²/θ²): samples every 0.5 λ out to 100 λ (13 σ of the taper) make the
/// Riemann sum exact to rounding, and the first alias sits at l = 1/0.5 = 2 rad.
#[test]
fn taper_fwhm_is_the_image_plane_fwhm() {
    let theta = 0.05;
    let pts: Vec<(f64, f64)> = (-200..=200).map(|k| (0.5 * k as f64, 0.0)).collect();
    let b = block_uv(&pts, vec![F1]);
    let (w, _) =
        imaging_weights(&b, &geom64(), &WeightingSpec::default().with_taper(theta)).unwrap();
    let sum: f64 = w.sum();
    let psf = |l: f64| -> f64 {
        pts.iter()
            .zip(w.column(0))
            .map(|(&(u, _), &wk)| wk * (2.0 * PI * u * l).cos())
            .sum::<f64>()
            / sum
    };
    assert!((psf(theta / 2.0) - 0.5).abs() < 1e-12);
    assert!((psf(-theta / 2.0) - 0.5).abs() < 1e-12);
    for i in 0..=40 {
        let l = 0.005 * i as f64;
        let want = (-4.0 * LN_2 * l * l / (theta * theta)).exp();
        assert!(
            (psf(l) - want).abs() < 1e-12,
            "l = {l}: {} vs {want}",
            psf(l)
        );
    }
}

#[test]
fn invalid_options_are_named() {
    let b = block_uv(&[(1.0, 1.0)], vec![F1]);
    let geom = geom64();
    for robust in [3.0, -2.5, f64::NAN, f64::INFINITY] {
        let e = imaging_weights(&b, &geom, &briggs(robust));
        assert_eq!(invalid_name(e), "robust");
    }
    for robust in [-2.0, 2.0] {
        assert!(imaging_weights(&b, &geom, &briggs(robust)).is_ok());
    }
    for taper in [-1.0, 0.0, f64::NAN, f64::INFINITY] {
        let spec = WeightingSpec::default().with_taper(taper);
        assert_eq!(invalid_name(imaging_weights(&b, &geom, &spec)), "taper");
    }
    let d = uv_cell_density(&b, &geom).unwrap();
    assert_eq!(invalid_name(d.briggs_f2(3.0)), "robust");
}

#[test]
fn bad_blocks_and_densities_are_errors_not_panics() {
    let geom = geom64();
    let spec = WeightingSpec::new(WeightingScheme::Uniform);
    let mut b = block_uv(&[(1.0, 1.0), (2.0, 2.0)], vec![F1]);
    b.weight_rc = Array2::ones((3, 1));
    assert!(matches!(
        imaging_weights(&b, &geom, &spec),
        Err(ImagingError::ShapeMismatch { .. })
    ));
    let mut b = block_uv(&[(1.0, 1.0)], vec![F1]);
    b.weight_rc[[0, 0]] = -1.0;
    assert_eq!(invalid_name(imaging_weights(&b, &geom, &spec)), "weight");

    // A density that does not contain the block's samples.
    let a = block_uv(&[(1.0, 1.0)], vec![F1]);
    let other = block_uv(&[(5.0, -7.0)], vec![F1]);
    let d = uv_cell_density(&a, &geom).unwrap();
    for s in [spec, briggs(0.0), briggs(2.0).with_taper(0.01)] {
        let e = imaging_weights_with_density(&other, &d, &s);
        assert_eq!(invalid_name(e), "density", "{s:?}");
    }
    // Natural does not look at the density.
    assert!(imaging_weights_with_density(&other, &d, &WeightingSpec::default()).is_ok());

    // Densities over different grids do not merge; bad parts are rejected.
    let g128 = ImageGeometry::square(128, 1.0 / 128.0, RaDec::default(), F1, 0.0).unwrap();
    let mut d2 = uv_cell_density(&a, &g128).unwrap();
    assert!(d2.merge(&d).is_err());
    let grid = *d.grid();
    assert!(UvDensity::from_parts(grid, Array2::zeros((3, 3))).is_err());
    let mut bad = Array2::zeros(grid.shape_vu());
    bad[[0, 0]] = -1.0;
    assert!(UvDensity::from_parts(grid, bad.clone()).is_err());
    bad[[0, 0]] = f64::NAN;
    assert!(UvDensity::from_parts(grid, bad).is_err());
    // An all-flagged block weights to zeros without error.
    let mut b = block_uv(&[(1.0, 1.0)], vec![F1]);
    b.flag_rc.fill(true);
    let (w, rep) = imaging_weights(&b, &geom, &briggs(0.0)).unwrap();
    assert_eq!(w[[0, 0]], 0.0);
    assert_eq!((rep.sum_weights, rep.effective_n), (0.0, 0.0));
}

/// Densities of disjoint blocks merge into the density of their union, and weighting a
/// part with the merged density reproduces weighting the whole.
#[test]
fn merged_density_reproduces_whole_block_weights() {
    let b = random_block(400, 6);
    let geom = geom64();
    let (p, q) = (rows(&b, 0, 150), rows(&b, 150, b.n_rows()));
    let mut d = uv_cell_density(&p, &geom).unwrap();
    d.merge(&uv_cell_density(&q, &geom).unwrap()).unwrap();
    let whole = uv_cell_density(&b, &geom).unwrap();
    for (x, y) in d.density_vu().iter().zip(whole.density_vu()) {
        assert!((x - y).abs() < 1e-12);
    }
    // A density survives the round trip through its parts (as through storage).
    let (grid, cells) = d.clone().into_parts();
    let d = UvDensity::from_parts(grid, cells).unwrap();
    for spec in [
        WeightingSpec::new(WeightingScheme::Uniform),
        briggs(-0.5).with_taper(0.03),
    ] {
        let (w_all, _) = imaging_weights(&b, &geom, &spec).unwrap();
        let (w_q, _) = imaging_weights_with_density(&q, &d, &spec).unwrap();
        for (x, y) in w_q.iter().zip(w_all.slice(s![150.., ..])) {
            assert!((x - y).abs() <= 1e-12 * y.abs().max(1e-300));
        }
    }
}

#[test]
fn report_counts_effective_samples() {
    let mut b = block_uv(&[(1.0, 0.0), (2.0, 0.0), (3.0, 0.0), (4.0, 0.0)], vec![F1]);
    b.flag_rc[[2, 0]] = true;
    let (_, rep) = imaging_weights(&b, &geom64(), &WeightingSpec::default()).unwrap();
    assert_eq!((rep.sum_weights, rep.effective_n), (3.0, 3.0));
    // Weights 1 and 3: (Σw)²/Σw² = 16/10.
    let mut b = block_uv(&[(1.0, 0.0), (2.0, 0.0)], vec![F1]);
    b.weight_rc[[1, 0]] = 3.0;
    let (_, rep) = imaging_weights(&b, &geom64(), &WeightingSpec::default()).unwrap();
    assert!((rep.effective_n - 1.6).abs() < 1e-15);
}
