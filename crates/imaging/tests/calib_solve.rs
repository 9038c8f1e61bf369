//! Gain solutions on noise-free simulated data: injected T, G and B gains (with several
//! solution intervals) are recovered to 1e-6 up to the reference-antenna phase; phase-only
//! solutions stay on the unit circle and do not absorb amplitude errors; solving from
//! summed partial normal equations equals solving from all the data; per-window tables
//! join into the band table; correct and corrupt undo each other.

mod calib_support;

use aperture_imaging::calib::{
    ApplyMode, FreqCells, GainTable, NormalEquations, RandomGainSpec, SolutionLayout, SolutionType,
    SolveSpec, WeightUpdate, apply_gains, random_gains, solve, time_intervals,
};
use aperture_imaging::sim::add_thermal_noise;
use aperture_imaging::vis::VisBlock;
use ndarray::Array2;
use num_complex::Complex64;

use calib_support::{
    CHANNELS_PER_WINDOW, assert_all_good, channels, max_gain_error, n_ant, observation, rows,
};

/// Noise-free recovery tolerance asked for by the issue; the solver runs to a relative
/// change of 1e-12, so the actual error is far smaller.
const RECOVERY_TOL: f64 = 1e-6;
/// Solution interval of the interval tests: the 6 hour angles are 1 sidereal hour
/// (3590 s) apart, so 7000 s holds two integrations → three intervals.
const INTERVAL_S: f64 = 7000.0;

fn spec(solution: SolutionType, interval: Option<f64>, refant: usize) -> SolveSpec {
    SolveSpec {
        interval_s: interval,
        refant,
        tol: 1e-12,
        max_iter: 500,
        ..SolveSpec::new(solution)
    }
}

/// Corrupts `block` with random gains of `solution` on `layout` and returns the truth.
fn corrupt(
    block: &mut VisBlock,
    solution: SolutionType,
    layout: SolutionLayout,
    amp: f64,
    seed: u64,
) -> GainTable {
    let truth = random_gains(
        solution,
        n_ant(block),
        layout,
        &RandomGainSpec {
            phase_rms_deg: 60.0,
            amp_rms: amp,
        },
        seed,
    )
    .unwrap();
    apply_gains(block, &truth, ApplyMode::Corrupt, WeightUpdate::Keep).unwrap();
    truth
}

fn iterations(t: &GainTable) -> Vec<usize> {
    t.stats
        .as_ref()
        .unwrap()
        .iter()
        .map(|s| s.iterations)
        .collect()
}

fn intervals(block: &VisBlock, interval: Option<f64>) -> Vec<[f64; 2]> {
    time_intervals(&block.time_r, interval).unwrap()
}

#[test]
fn t_gains_are_recovered_per_interval_across_all_windows() {
    let (mut block, model) = observation();
    let layout = SolutionLayout {
        intervals: intervals(&block, Some(INTERVAL_S)),
        cells: FreqCells::All,
    };
    assert_eq!(layout.n_intervals(), 3);
    let truth = corrupt(&mut block, SolutionType::T, layout, 0.0, 1);
    let s = spec(SolutionType::T, Some(INTERVAL_S), 2);
    let ne = NormalEquations::accumulate(&block, model.view(), block.weight_rc.view(), &s).unwrap();
    let t = solve(&ne, &s).unwrap();
    assert_all_good(&t);
    assert!(t.phase_only && t.layout.cells == FreqCells::All);
    let err = max_gain_error(&t, &truth, 2);
    eprintln!(
        "T: max gain error {err:.2e}, iterations {:?}",
        iterations(&t)
    );
    assert!(err < RECOVERY_TOL, "T error {err}");
    for st in t.stats.as_ref().unwrap() {
        assert_eq!(st.refant, Some(2));
        // χ² from the normal equations cancels to rounding (relative 1e-16 of Σw|V|²).
        assert!(st.chi2_after < 1e-10 * st.chi2_before, "{st:?}");
        assert!(st.chi2_before > 1.0);
    }
    // The reference antenna has phase 0 exactly (up to rounding) in every solution.
    for i in 0..3 {
        assert!(t.gains[[i, 2, 0]].im.abs() < 1e-15);
    }
}

#[test]
fn g_gains_are_recovered_per_window_and_interval() {
    let (mut block, model) = observation();
    // One cell per window (3 channels each), three intervals.
    let layout = SolutionLayout {
        intervals: intervals(&block, Some(INTERVAL_S)),
        cells: FreqCells::windows(&block.freq_c, CHANNELS_PER_WINDOW).unwrap(),
    };
    let truth = corrupt(&mut block, SolutionType::G, layout.clone(), 0.2, 2);
    let s = spec(SolutionType::G, Some(INTERVAL_S), 0);
    let mut ne = NormalEquations::new(SolutionType::G, n_ant(&block), layout).unwrap();
    ne.add_block(&block, model.view(), block.weight_rc.view())
        .unwrap();
    let t = solve(&ne, &s).unwrap();
    assert_all_good(&t);
    assert_eq!(t.gains.dim(), (3, n_ant(&block), 2));
    let err = max_gain_error(&t, &truth, 0);
    eprintln!(
        "G: max gain error {err:.2e}, iterations {:?}",
        iterations(&t)
    );
    assert!(err < RECOVERY_TOL, "G error {err}");
    // Amplitudes are absolute (not only up to a factor): compare without rotation.
    for (g, w) in t.gains.iter().zip(truth.gains.iter()) {
        assert!((g.norm() - w.norm()).abs() < RECOVERY_TOL);
    }
}

#[test]
fn b_gains_are_recovered_per_channel_and_interval() {
    let (mut block, model) = observation();
    let layout = SolutionLayout {
        intervals: intervals(&block, Some(INTERVAL_S)),
        cells: FreqCells::channels(&block.freq_c).unwrap(),
    };
    let truth = corrupt(&mut block, SolutionType::B, layout, 0.3, 3);
    let s = spec(SolutionType::B, Some(INTERVAL_S), 5);
    let ne = NormalEquations::accumulate(&block, model.view(), block.weight_rc.view(), &s).unwrap();
    let t = solve(&ne, &s).unwrap();
    assert_all_good(&t);
    assert_eq!(t.n_cells(), block.n_chan());
    let err = max_gain_error(&t, &truth, 5);
    eprintln!(
        "B: max gain error {err:.2e}, iterations {:?}",
        iterations(&t)
    );
    assert!(err < RECOVERY_TOL, "B error {err}");
    // Correcting with the solution gives back the model.
    apply_gains(&mut block, &t, ApplyMode::Correct, WeightUpdate::Keep).unwrap();
    let worst = block
        .vis_rc
        .iter()
        .zip(&model)
        .map(|(v, m)| (v - m).norm())
        .fold(0.0, f64::max);
    assert!(worst < 1e-5, "corrected - model: {worst}");
}

#[test]
fn phase_only_solutions_keep_unit_amplitude_and_do_not_absorb_amplitude_errors() {
    let (mut block, model) = observation();
    let layout = SolutionLayout::for_block(&block, SolutionType::G, None).unwrap();
    let truth = corrupt(&mut block, SolutionType::G, layout, 0.3, 4);
    let s = SolveSpec {
        phase_only: true,
        ..spec(SolutionType::G, None, 0)
    };
    let ne = NormalEquations::accumulate(&block, model.view(), block.weight_rc.view(), &s).unwrap();
    let t = solve(&ne, &s).unwrap();
    assert_all_good(&t);
    assert!(t.phase_only);
    for g in &t.gains {
        assert!(
            (g.norm() - 1.0).abs() < 4.0 * f64::EPSILON,
            "|g| = {}",
            g.norm()
        );
    }
    // With positive real amplitude errors, Z_pq = a_p a_q e^{i(φ_p − φ_q)} Σw|M|², so the
    // phase-only optimum is exactly the true phases.
    let rot = truth.rotated_to(0).unwrap();
    for (g, w) in t.gains.iter().zip(rot.gains.iter()) {
        assert!((g - w / w.norm()).norm() < RECOVERY_TOL);
    }
    // The amplitude errors remain in the residual.
    let st = t.stats.as_ref().unwrap()[[0, 0]];
    assert!(st.chi2_after > 1e-3 * st.chi2_before, "{st:?}");
    // Correcting with a phase-only table leaves every |V| as it was.
    let before = block.clone();
    apply_gains(&mut block, &t, ApplyMode::Correct, WeightUpdate::Scale).unwrap();
    for (a, b) in block.vis_rc.iter().zip(&before.vis_rc) {
        assert!((a.norm() - b.norm()).abs() <= 1e-14 * b.norm().max(1.0));
    }
    assert!(block.weight_rc.iter().all(|w| (w - 1.0).abs() < 1e-14));
}

/// Adds noise so the solution is not simply the truth.
fn noisy_observation(seed: u64) -> (VisBlock, Array2<Complex64>, GainTable) {
    let (mut block, model) = observation();
    let layout = SolutionLayout::for_block(&block, SolutionType::G, None).unwrap();
    let truth = corrupt(&mut block, SolutionType::G, layout, 0.1, seed);
    add_thermal_noise(&mut block.vis_rc, 0.5, seed).unwrap();
    (block, model, truth)
}

fn max_diff(a: &GainTable, b: &GainTable) -> f64 {
    a.gains
        .iter()
        .zip(b.gains.iter())
        .map(|(x, y)| (x - y).norm())
        .fold(0.0, f64::max)
}

#[test]
fn summed_normal_equations_solve_like_the_full_data() {
    let (block, model, _) = noisy_observation(5);
    let n = n_ant(&block);
    // T: per-window partial sums (as the distributed ICAL reduces them) vs one block.
    let s = SolveSpec {
        n_ant: Some(n),
        ..spec(SolutionType::T, Some(INTERVAL_S), 0)
    };
    let full =
        NormalEquations::accumulate(&block, model.view(), block.weight_rc.view(), &s).unwrap();
    let mut parts = Vec::new();
    for w in 0..3 {
        let (b, m) = channels(&block, &model, 2 * w, 2 * w + 2);
        parts.push(NormalEquations::accumulate(&b, m.view(), b.weight_rc.view(), &s).unwrap());
    }
    // A two-level reduce tree: (0 + 1) + 2.
    let mut summed = parts[0].clone();
    summed.add(&parts[1]).unwrap();
    summed.add(&parts[2]).unwrap();
    let (tf, ts) = (solve(&full, &s).unwrap(), solve(&summed, &s).unwrap());
    assert_all_good(&tf);
    let d = max_diff(&tf, &ts);
    assert!(d < 1e-12, "T full vs summed: {d}");
    let (sf, ss) = (tf.stats.unwrap(), ts.stats.unwrap());
    for (a, b) in sf.iter().zip(ss.iter()) {
        assert_eq!((a.iterations, a.n_samples), (b.iterations, b.n_samples));
        assert!((a.chi2_after - b.chi2_after).abs() < 1e-10 * a.chi2_after);
    }

    // G and B: partial sums over disjoint sets of baselines (rows) of the same window.
    for solution in [SolutionType::G, SolutionType::B] {
        let s = SolveSpec {
            n_ant: Some(n),
            ..spec(solution, Some(INTERVAL_S), 3)
        };
        let full =
            NormalEquations::accumulate(&block, model.view(), block.weight_rc.view(), &s).unwrap();
        let (b0, m0) = rows(&block, &model, |r| r % 3 == 0);
        let (b1, m1) = rows(&block, &model, |r| r % 3 != 0);
        let mut summed =
            NormalEquations::accumulate(&b0, m0.view(), b0.weight_rc.view(), &s).unwrap();
        summed
            .add(&NormalEquations::accumulate(&b1, m1.view(), b1.weight_rc.view(), &s).unwrap())
            .unwrap();
        let (tf, ts) = (solve(&full, &s).unwrap(), solve(&summed, &s).unwrap());
        assert_all_good(&tf);
        let d = max_diff(&tf, &ts);
        assert!(d < 1e-12, "{solution} full vs summed: {d}");
    }
}

#[test]
fn per_window_tables_join_into_the_band_table() {
    let (block, model, _) = noisy_observation(6);
    let n = n_ant(&block);
    let s = SolveSpec {
        n_ant: Some(n),
        ..spec(SolutionType::G, None, 0)
    };
    // Windowed layout on the whole block…
    let layout = SolutionLayout {
        intervals: time_intervals(&block.time_r, None).unwrap(),
        cells: FreqCells::windows(&block.freq_c, CHANNELS_PER_WINDOW).unwrap(),
    };
    let mut ne = NormalEquations::new(SolutionType::G, n, layout).unwrap();
    ne.add_block(&block, model.view(), block.weight_rc.view())
        .unwrap();
    let band = solve(&ne, &s).unwrap();
    // …equals one solve per window block, joined (given in reverse order).
    let per_window: Vec<GainTable> = (0..2)
        .rev()
        .map(|w| {
            let (b, m) = channels(&block, &model, 3 * w, 3 * w + 3);
            let ne = NormalEquations::accumulate(&b, m.view(), b.weight_rc.view(), &s).unwrap();
            solve(&ne, &s).unwrap()
        })
        .collect();
    let joined = GainTable::concat_cells(&per_window).unwrap();
    assert_eq!(joined.layout, band.layout);
    assert!(max_diff(&joined, &band) < 1e-12);
    assert_eq!(joined.stats, band.stats);
    // Overlapping cells cannot be joined.
    assert!(GainTable::concat_cells(&[band.clone(), band]).is_err());
}

#[test]
fn correct_and_corrupt_undo_each_other_with_weights() {
    let (block, _, truth) = noisy_observation(7);
    let mut b = block.clone();
    apply_gains(&mut b, &truth, ApplyMode::Corrupt, WeightUpdate::Scale).unwrap();
    assert!(b.weight_rc.iter().any(|&w| (w - 1.0).abs() > 1e-3));
    let rep = apply_gains(
        &mut b,
        &truth,
        ApplyMode::Corrupt.inverse(),
        WeightUpdate::Scale,
    )
    .unwrap();
    assert_eq!((rep.applied, rep.newly_flagged), (block.n_vis(), 0));
    for (x, y) in b.vis_rc.iter().zip(&block.vis_rc) {
        assert!((x - y).norm() < 1e-12 * y.norm().max(1.0));
    }
    for (x, y) in b.weight_rc.iter().zip(&block.weight_rc) {
        assert!((x - y).abs() < 1e-12);
    }
    assert_eq!(b.flag_rc, block.flag_rc);
}
