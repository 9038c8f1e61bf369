//! Bad input and degenerate data: flagged antennas get flagged solutions (not numbers
//! posing as gains), non-converged solutions are flagged, NaN and mismatched shapes are
//! errors naming the field, incompatible partial sums refuse to add, and applying a table
//! outside its coverage is an error that leaves the data untouched.

mod calib_support;

use aperture_imaging::ImagingError;
use aperture_imaging::calib::{
    ApplyMode, NormalEquations, SolutionType, SolveSpec, WeightUpdate, apply_gains, solve,
};
use num_complex::Complex64;

use calib_support::{max_gain_error, n_ant, observation, rows};

fn spec(solution: SolutionType) -> SolveSpec {
    SolveSpec {
        tol: 1e-12,
        max_iter: 500,
        ..SolveSpec::new(solution)
    }
}

/// The field an error names.
fn field(e: ImagingError) -> String {
    match e {
        ImagingError::InvalidParameter { name, .. }
        | ImagingError::ShapeMismatch { name, .. }
        | ImagingError::NonFinite { name, .. } => name,
        ImagingError::Unsupported(m) => format!("unsupported: {m}"),
    }
}

#[test]
fn an_antenna_with_every_baseline_flagged_gets_flagged_solutions() {
    let (mut block, model) = observation();
    let truth_block = block.clone();
    let dead = 4u32;
    for r in 0..block.n_rows() {
        if block.ant1_r[r] == dead || block.ant2_r[r] == dead {
            block.flag_rc.row_mut(r).fill(true);
            // Garbage under the flags must not matter.
            block.vis_rc.row_mut(r).fill(Complex64::new(1e6, -1e6));
        }
    }
    // Ask for the dead antenna as reference: the next one takes over.
    let s = SolveSpec {
        refant: dead as usize,
        ..spec(SolutionType::G)
    };
    let ne = NormalEquations::accumulate(&block, model.view(), block.weight_rc.view(), &s).unwrap();
    let t = solve(&ne, &s).unwrap();
    let st = t.stats.as_ref().unwrap()[[0, 0]];
    assert!(st.converged);
    assert_eq!(st.refant, Some(dead as usize + 1));
    assert_eq!(t.gain(0, dead as usize, 0), None);
    assert_eq!(t.gains[[0, dead as usize, 0]], Complex64::new(0.0, 0.0));
    assert_eq!(t.n_flagged(), 1);
    // The others are the truth (unit gains here), referenced to antenna 5.
    let mut unit = t.clone();
    unit.gains.fill(Complex64::new(1.0, 0.0));
    assert!(max_gain_error(&t, &unit, dead as usize + 1) < 1e-9);
    // Correcting flags the dead antenna's samples and touches nothing else.
    let mut b = truth_block.clone();
    let rep = apply_gains(&mut b, &t, ApplyMode::Correct, WeightUpdate::Scale).unwrap();
    let dead_rows = (0..b.n_rows())
        .filter(|&r| b.ant1_r[r] == dead || b.ant2_r[r] == dead)
        .count();
    assert_eq!(rep.newly_flagged, dead_rows * b.n_chan());
    assert_eq!(rep.applied + rep.newly_flagged, b.n_vis());
}

#[test]
fn a_dead_reference_antenna_in_one_interval_is_replaced_there_only() {
    let (mut block, model) = observation();
    let t_mid = block.time_r[block.n_rows() / 2];
    for r in 0..block.n_rows() {
        if block.time_r[r] == t_mid && (block.ant1_r[r] == 0 || block.ant2_r[r] == 0) {
            block.flag_rc.row_mut(r).fill(true);
        }
    }
    let s = SolveSpec {
        interval_s: Some(1.0),
        ..spec(SolutionType::T)
    };
    let ne = NormalEquations::accumulate(&block, model.view(), block.weight_rc.view(), &s).unwrap();
    let t = solve(&ne, &s).unwrap();
    let stats = t.stats.as_ref().unwrap();
    assert_eq!(stats.dim(), (6, 1));
    let i_mid = t.layout.interval_of(t_mid).unwrap();
    for i in 0..6 {
        let want = if i == i_mid { 1 } else { 0 };
        assert_eq!(stats[[i, 0]].refant, Some(want), "interval {i}");
        assert_eq!(t.flags[[i, 0, 0]], i == i_mid);
    }
}

#[test]
fn non_convergence_flags_the_solution() {
    let (block, model) = observation();
    let s = SolveSpec {
        max_iter: 1,
        tol: 1e-14,
        ..SolveSpec::new(SolutionType::B)
    };
    // Unit gains are already right here, but one iteration never checks convergence.
    let ne = NormalEquations::accumulate(&block, model.view(), block.weight_rc.view(), &s).unwrap();
    let t = solve(&ne, &s).unwrap();
    let stats = t.stats.as_ref().unwrap();
    assert!(stats.iter().all(|s| !s.converged && s.iterations == 1));
    assert!(t.flags.iter().all(|&f| f));
    // Two iterations on noise-free data with unit gains converge at once.
    let s2 = SolveSpec { max_iter: 2, ..s };
    let t2 = solve(&ne, &s2).unwrap();
    assert!(t2.stats.unwrap().iter().all(|s| s.converged));
}

#[test]
fn nan_and_shape_errors_name_the_field() {
    let (block, model) = observation();
    let s = spec(SolutionType::G);
    let acc = |b: &aperture_imaging::vis::VisBlock,
               m: &ndarray::Array2<Complex64>,
               w: &ndarray::Array2<f64>| {
        NormalEquations::accumulate(b, m.view(), w.view(), &s).map(|_| ())
    };
    let mut b = block.clone();
    b.vis_rc[[7, 1]] = Complex64::new(f64::NAN, 0.0);
    assert_eq!(field(acc(&b, &model, &b.weight_rc).unwrap_err()), "vis");
    let mut m = model.clone();
    m[[3, 0]] = Complex64::new(0.0, f64::INFINITY);
    assert_eq!(
        field(acc(&block, &m, &block.weight_rc).unwrap_err()),
        "model_vis"
    );
    let mut w = block.weight_rc.clone();
    w[[0, 0]] = f64::NAN;
    assert_eq!(field(acc(&block, &model, &w).unwrap_err()), "weight");
    let short = model.slice(ndarray::s![.., 0..2]).to_owned();
    assert_eq!(
        field(acc(&block, &short, &block.weight_rc).unwrap_err()),
        "model_vis"
    );
    let mut b = block.clone();
    b.time_r[2] = f64::NAN;
    assert_eq!(field(acc(&b, &model, &b.weight_rc).unwrap_err()), "time");
    let bad_ref = SolveSpec {
        refant: 10_000,
        ..s.clone()
    };
    let e = NormalEquations::accumulate(&block, model.view(), block.weight_rc.view(), &bad_ref);
    assert_eq!(field(e.unwrap_err()), "refant");
    let few = SolveSpec {
        n_ant: Some(3),
        ..s.clone()
    };
    let e = NormalEquations::accumulate(&block, model.view(), block.weight_rc.view(), &few);
    assert_eq!(field(e.unwrap_err()), "ant1");
}

#[test]
fn incompatible_partial_sums_refuse_to_add_and_solve() {
    let (block, model) = observation();
    let n = n_ant(&block);
    let s = SolveSpec {
        n_ant: Some(n),
        interval_s: Some(4000.0),
        ..spec(SolutionType::G)
    };
    let acc =
        |b: &aperture_imaging::vis::VisBlock, m: &ndarray::Array2<Complex64>, s: &SolveSpec| {
            NormalEquations::accumulate(b, m.view(), b.weight_rc.view(), s).unwrap()
        };
    let mut whole = acc(&block, &model, &s);
    let t0 = block.time_r[0];
    // Rows of the first time only: a different interval layout.
    let (early, em) = rows(&block, &model, |r| block.time_r[r] == t0);
    let e = whole.add(&acc(&early, &em, &s)).unwrap_err();
    assert_eq!(field(e), "normal_equations");
    let more = SolveSpec {
        n_ant: Some(n + 1),
        ..s.clone()
    };
    assert_eq!(
        field(whole.add(&acc(&block, &model, &more)).unwrap_err()),
        "normal_equations"
    );
    let b_type = SolveSpec {
        solution: SolutionType::B,
        ..s.clone()
    };
    assert_eq!(
        field(whole.add(&acc(&block, &model, &b_type)).unwrap_err()),
        "normal_equations"
    );
    // Solving G equations as B is refused.
    assert_eq!(field(solve(&whole, &b_type).unwrap_err()), "solution");
    // A failed add leaves the sum unchanged.
    assert!(
        whole == acc(&block, &model, &s),
        "a failed add changed the sum"
    );
}

#[test]
fn normal_equations_survive_serialisation_and_damaged_copies_are_rejected() {
    let (block, model) = observation();
    let s = spec(SolutionType::T);
    let ne = NormalEquations::accumulate(&block, model.view(), block.weight_rc.view(), &s).unwrap();
    let text = serde_json::to_string(&ne).unwrap();
    let back: NormalEquations = serde_json::from_str(&text).unwrap();
    assert!(
        back == ne,
        "the normal equations changed in a JSON round trip"
    );
    assert_eq!(solve(&back, &s).unwrap(), solve(&ne, &s).unwrap());
    // Drop one zz term: solving reports the damage instead of panicking.
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["zz"].as_array_mut().unwrap().pop();
    let damaged: NormalEquations = serde_json::from_value(v).unwrap();
    assert_eq!(field(solve(&damaged, &s).unwrap_err()), "normal_equations");
}

#[test]
fn applying_outside_the_table_is_an_error_and_changes_nothing() {
    let (block, model) = observation();
    let s = SolveSpec {
        interval_s: Some(4000.0),
        ..spec(SolutionType::B)
    };
    let ne = NormalEquations::accumulate(&block, model.view(), block.weight_rc.view(), &s).unwrap();
    let t = solve(&ne, &s).unwrap();
    let mut late = block.clone();
    late.time_r[5] += 1e5;
    let before = late.clone();
    let e = apply_gains(&mut late, &t, ApplyMode::Correct, WeightUpdate::Scale).unwrap_err();
    assert!(
        e.to_string().contains("row 5") && e.to_string().contains("time"),
        "{e}"
    );
    assert_eq!(late, before);
    let mut off = block.clone();
    off.freq_c[2] += 1e6;
    let e = apply_gains(&mut off, &t, ApplyMode::Correct, WeightUpdate::Scale).unwrap_err();
    assert_eq!(field(e), "freq");
    let mut extra = block.clone();
    extra.ant2_r[0] = t.n_ant as u32;
    let e = apply_gains(&mut extra, &t, ApplyMode::Corrupt, WeightUpdate::Keep).unwrap_err();
    assert_eq!(field(e), "ant2");
}
