//! With noise, the gain error of a G solution follows the least-squares prediction: its
//! mean square scales as 1/N with the number N of samples in the interval (so 4× the
//! samples halves the rms error) and matches the value from the Fisher information.
//!
//! Set-up: n antennas, every baseline, N_t integrations in one interval, one channel,
//! model M = 1, unit-modulus true gains (random phases), noise N(0, σ²) on the real and
//! imaginary parts, unit weights. Linearising g_p = g_p^true(1 + a_p + i b_p), the data
//! V_pq − g_p conj(g_q) ≈ g_p conj(g_q)[(a_p + a_q) + i(b_p − b_q)] separate into
//! amplitude and phase parts (the rotation g_p conj(g_q) does not change the noise):
//! - amplitudes: a_p + a_q observed N_t times with noise σ; the normal matrix is
//!   N_t[(n−2)I + J], whose inverse has diagonal (2n−3)/((n−2)(2n−2))/N_t;
//! - phases: b_p − b_q observed N_t times; the normal matrix is the Laplacian N_t(nI − J),
//!   defined up to a common phase; after removing the best-fit common phase, the error
//!   covariance is σ² L⁺ with diagonal (n−1)/(N_t n²).
//!
//! So E|g_p − g_p^true|² = σ²/N_t · [(2n−3)/((n−2)(2n−2)) + (n−1)/n²] per antenna.
//! The common phase is removed by the best fit (not the reference antenna), because the
//! reference antenna's own noise would otherwise be shared by every antenna and make the
//! average much noisier.

use aperture_imaging::calib::{
    ApplyMode, FreqCells, GainTable, NormalEquations, RandomGainSpec, SolutionLayout, SolutionType,
    SolveSpec, WeightUpdate, apply_gains, random_gains, solve,
};
use aperture_imaging::coords::{RaDec, UvwMetres};
use aperture_imaging::sim::add_thermal_noise;
use aperture_imaging::vis::VisBlock;
use ndarray::Array2;
use num_complex::Complex64;

const N_ANT: usize = 48;
const SIGMA: f64 = 0.2;
const SEEDS: u64 = 24;

/// Every baseline of `N_ANT` antennas at times 0..n_times s, one channel, V = M = 1.
fn block(n_times: usize) -> VisBlock {
    let (mut a1, mut a2, mut t) = (Vec::new(), Vec::new(), Vec::new());
    for k in 0..n_times {
        for p in 0..N_ANT {
            for q in p + 1..N_ANT {
                a1.push(p as u32);
                a2.push(q as u32);
                t.push(k as f64);
            }
        }
    }
    let nr = a1.len();
    let mut b = VisBlock::zeros(
        vec![UvwMetres::new(0.0, 0.0, 0.0); nr],
        vec![1e8],
        a1,
        a2,
        t,
        RaDec::from_degrees(0.0, -30.0),
    );
    b.vis_rc = Array2::from_elem((nr, 1), Complex64::new(1.0, 0.0));
    b
}

/// Mean over antennas of |g e^{−iθ} − g_true|², θ the best-fit common phase.
fn mean_sq_error(solved: &GainTable, truth: &GainTable) -> f64 {
    let s = solved.gains.iter().zip(truth.gains.iter());
    let cross: Complex64 = s.clone().map(|(g, t)| g * t.conj()).sum();
    let rot = cross.conj() / cross.norm();
    s.map(|(g, t)| (g * rot - t).norm_sqr()).sum::<f64>() / N_ANT as f64
}

/// Mean and standard error over seeds of a per-seed value.
fn mean_se(x: &[f64]) -> (f64, f64) {
    let k = x.len() as f64;
    let mean = x.iter().sum::<f64>() / k;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (k - 1.0);
    (mean, (var / k).sqrt())
}

/// (mean, standard error) over seeds of the mean square gain error and of χ² after the
/// solve divided by its expectation σ²·(2·N_samples − (2n − 1)): the residual of a linear
/// least-squares fit of 2n − 1 real parameters (n amplitudes, n − 1 phases) to
/// 2·N_samples real data with noise variance σ².
fn error_for(n_times: usize) -> ((f64, f64), (f64, f64)) {
    let clean = block(n_times);
    let model = clean.vis_rc.clone();
    let spec = SolveSpec {
        tol: 1e-12,
        max_iter: 1000,
        ..SolveSpec::new(SolutionType::G)
    };
    let layout = SolutionLayout::for_block(&clean, SolutionType::G, None).unwrap();
    assert_eq!(layout.cells, FreqCells::Ranges(vec![[1e8, 1e8]]));
    let mut per_seed = Vec::new();
    let mut chi2 = Vec::new();
    for seed in 0..SEEDS {
        let truth = random_gains(
            SolutionType::G,
            N_ANT,
            layout.clone(),
            &RandomGainSpec {
                phase_rms_deg: 90.0,
                amp_rms: 0.0,
            },
            100 + seed,
        )
        .unwrap();
        let mut b = clean.clone();
        apply_gains(&mut b, &truth, ApplyMode::Corrupt, WeightUpdate::Keep).unwrap();
        add_thermal_noise(&mut b.vis_rc, SIGMA, 1000 * n_times as u64 + seed).unwrap();
        let ne = NormalEquations::accumulate(&b, model.view(), b.weight_rc.view(), &spec).unwrap();
        let t = solve(&ne, &spec).unwrap();
        let st = t.stats.as_ref().unwrap()[[0, 0]];
        assert!(st.converged);
        per_seed.push(mean_sq_error(&t, &truth));
        let dof = 2.0 * st.n_samples as f64 - (2 * N_ANT - 1) as f64;
        chi2.push(st.chi2_after / (SIGMA * SIGMA * dof));
    }
    (mean_se(&per_seed), mean_se(&chi2))
}

fn predicted(n_times: usize) -> f64 {
    let n = N_ANT as f64;
    SIGMA * SIGMA / n_times as f64
        * ((2.0 * n - 3.0) / ((n - 2.0) * (2.0 * n - 2.0)) + (n - 1.0) / (n * n))
}

#[test]
fn gain_error_scales_as_one_over_sqrt_samples_and_matches_the_fisher_prediction() {
    let runs: Vec<(usize, f64, f64)> = [2, 8, 32]
        .into_iter()
        .map(|nt| {
            let ((m, se), (c, cse)) = error_for(nt);
            eprintln!("N_t = {nt:2}: chi2 / expectation = {c:.4} +- {cse:.4}");
            // χ²/σ² per seed is χ²-distributed with dof ≥ 2000: 5 standard errors.
            assert!(
                (c - 1.0).abs() < 5.0 * cse,
                "N_t = {nt}: chi2 ratio {c} (se {cse})"
            );
            eprintln!(
                "N_t = {nt:2}: mean |dg|^2 = {m:.4e} +- {se:.1e} (predicted {:.4e}), rms {:.4e}",
                predicted(nt),
                m.sqrt()
            );
            (nt, m, se)
        })
        .collect();
    for &(nt, m, se) in &runs {
        // Standard error from the scatter over 24 independent seeds (central limit);
        // 5 standard errors, plus 2 % for the linearisation (errors ~ 0.03 ≪ 1).
        let p = predicted(nt);
        assert!(
            (m - p).abs() < 5.0 * se + 0.02 * p,
            "N_t = {nt}: {m:.4e} vs predicted {p:.4e} (se {se:.1e})"
        );
    }
    for w in runs.windows(2) {
        let ((n0, m0, se0), (n1, m1, se1)) = (w[0], w[1]);
        assert_eq!(n1, 4 * n0);
        // rms ratio √(m0/m1) → 2; its standard error by the delta method.
        let ratio = (m0 / m1).sqrt();
        let se = 0.5 * ratio * ((se0 / m0).powi(2) + (se1 / m1).powi(2)).sqrt();
        eprintln!("rms error ratio N_t = {n0} / {n1}: {ratio:.3} +- {se:.3}");
        assert!(
            (ratio - 2.0).abs() < 5.0 * se + 0.02,
            "ratio {ratio} (se {se})"
        );
    }
}
