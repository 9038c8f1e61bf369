//! End-to-end calibration with the `aperture` binary: simulate with random gains (and
//! write the true gains) → simulate the same sky without gains as the model → calibrate →
//! the solved gains match the true ones up to the reference phase; apply-gains corrects
//! the data back to the uncorrupted bundle; JSON and CSV tables agree.

mod common;

use std::path::Path;

use aperture_imaging::calib::{FreqCells, GainTable, SolutionType};
use aperture_pipeline::formats::bundle::read_bundle;
use aperture_pipeline::formats::gains::read_gain_table;
use common::{aperture, arg, assert_ok, simulate, stdout};

/// Noise-free recovery tolerance of the issue (the solver runs to tol 1e-12).
const TOL: f64 = 1e-6;

/// Largest |g − g_true| over the table, the truth rotated to `refant`; `cell_of` maps a
/// solved cell to the truth's cell.
fn max_error(
    solved: &GainTable,
    truth: &GainTable,
    refant: usize,
    cell_of: impl Fn(usize) -> usize,
) -> f64 {
    let t = truth.rotated_to(refant).unwrap();
    let (ni, na, nc) = solved.gains.dim();
    assert_eq!((ni, na), (t.n_intervals(), t.n_ant));
    let mut worst = 0.0f64;
    for i in 0..ni {
        for a in 0..na {
            for c in 0..nc {
                assert!(!solved.flags[[i, a, c]], "flagged gain at {i}, {a}, {c}");
                worst = worst.max((solved.gains[[i, a, c]] - t.gains[[i, a, cell_of(c)]]).norm());
            }
        }
    }
    worst
}

fn calibrate(obs: &Path, model: &Path, out: &Path, extra: &[&str]) -> String {
    let mut a = vec!["calibrate", arg(obs), "--model-vis", arg(model)];
    a.extend(extra);
    a.extend(["--tol", "1e-12", "--max-iter", "1000", "--out", arg(out)]);
    let o = aperture(a);
    assert_ok(&o);
    stdout(&o)
}

#[test]
fn g_gains_with_intervals_are_recovered_and_corrected_away() {
    let dir = tempfile::tempdir().unwrap();
    let (obs, model, truth_p) = (
        dir.path().join("obs"),
        dir.path().join("model"),
        dir.path().join("truth.json"),
    );
    // 3 times 3 h apart: a 3600 s interval holds one each → 3 intervals; 2 windows.
    simulate(
        &obs,
        &[
            "--sources",
            "3",
            "--seed",
            "5",
            "--gain-phase-rms",
            "40",
            "--gain-amp-rms",
            "0.15",
            "--gain-interval",
            "3600",
            "--true-gains",
            arg(&truth_p),
        ],
    );
    simulate(&model, &["--sources", "3", "--seed", "5"]);
    let truth = read_gain_table(&truth_p).unwrap();
    assert_eq!(
        (truth.solution, truth.n_intervals(), truth.n_cells()),
        (SolutionType::G, 3, 2)
    );
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(obs.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["gains"]["intervals"], 3);

    let gains_p = dir.path().join("gains.json");
    let out = calibrate(
        &obs,
        &model,
        &gains_p,
        &["--solution", "G", "--interval", "3600", "--refant", "3"],
    );
    assert!(out.contains("6 of 6 solutions"), "{out}");
    assert!(
        out.contains("2 window(s) of 2 channel(s), from meta.json"),
        "{out}"
    );
    let solved = read_gain_table(&gains_p).unwrap();
    assert_eq!(solved.layout, truth.layout);
    assert_eq!(solved.reference_antenna, Some(3));
    let err = max_error(&solved, &truth, 3, |c| c);
    eprintln!("G: max gain error {err:.2e}");
    assert!(err < TOL, "G error {err}");

    // The CSV table is the same table.
    let csv_p = dir.path().join("gains.csv");
    calibrate(
        &obs,
        &model,
        &csv_p,
        &["--solution", "G", "--interval", "3600", "--refant", "3"],
    );
    assert!(
        read_gain_table(&csv_p).unwrap() == solved,
        "CSV and JSON tables differ"
    );

    // Correcting gives back the uncorrupted visibilities (and, kept, the weights).
    let fixed = dir.path().join("fixed");
    assert_ok(&aperture([
        "apply-gains",
        arg(&obs),
        "--gains",
        arg(&gains_p),
        "--out",
        arg(&fixed),
        "--keep-weights",
    ]));
    let (f, m, o) = (
        read_bundle(&fixed).unwrap(),
        read_bundle(&model).unwrap(),
        read_bundle(&obs).unwrap(),
    );
    let worst = f
        .vis_rc
        .iter()
        .zip(&m.vis_rc)
        .map(|(a, b)| (a - b).norm())
        .fold(0.0, f64::max);
    let peak = m.vis_rc.iter().map(|v| v.norm()).fold(0.0, f64::max);
    assert!(
        worst < TOL * peak,
        "corrected - model: {worst} (peak {peak})"
    );
    assert!(
        o.vis_rc
            .iter()
            .zip(&m.vis_rc)
            .any(|(a, b)| (a - b).norm() > 0.1 * peak)
    );
    assert_eq!(f.weight_rc, m.weight_rc);
    assert_eq!(f.flag_rc, m.flag_rc);

    // Corrupting the corrected data with the solved gains gives back the observation;
    // by default weights scale by |g_p g_q|^2 and back.
    let (scaled, again) = (dir.path().join("scaled"), dir.path().join("again"));
    assert_ok(&aperture([
        "apply-gains",
        arg(&obs),
        "--gains",
        arg(&gains_p),
        "--out",
        arg(&scaled),
    ]));
    assert_ok(&aperture([
        "apply-gains",
        arg(&scaled),
        "--gains",
        arg(&gains_p),
        "--out",
        arg(&again),
        "--mode",
        "corrupt",
    ]));
    let (s, a) = (read_bundle(&scaled).unwrap(), read_bundle(&again).unwrap());
    assert!(s.weight_rc.iter().any(|w| (w - 1.0).abs() > 1e-3));
    assert!(a.weight_rc.iter().all(|w| (w - 1.0).abs() < 1e-12));
    let worst = a
        .vis_rc
        .iter()
        .zip(&o.vis_rc)
        .map(|(x, y)| (x - y).norm())
        .fold(0.0, f64::max);
    assert!(worst < 1e-12 * peak, "corrupt(correct(obs)) - obs: {worst}");
}

#[test]
fn t_and_b_recover_phase_screens_of_one_window() {
    let dir = tempfile::tempdir().unwrap();
    let (obs, model, truth_p) = (
        dir.path().join("obs"),
        dir.path().join("model"),
        dir.path().join("truth.csv"),
    );
    let sim = |out: &Path, extra: &[&str]| {
        let mut a = vec![
            "simulate",
            "--telescope",
            "low",
            "--rmax",
            "250",
            "--windows",
            "1",
            "--channels-per-window",
            "3",
            "--times",
            "2",
            "--sources",
            "2",
            "--seed",
            "9",
        ];
        a.extend(extra);
        a.extend(["--out", arg(out)]);
        assert_ok(&aperture(a));
    };
    sim(
        &obs,
        &["--gain-phase-rms", "60", "--true-gains", arg(&truth_p)],
    );
    sim(&model, &[]);
    let truth = read_gain_table(&truth_p).unwrap();
    assert!(truth.phase_only && truth.n_cells() == 1);

    let t_p = dir.path().join("t.json");
    calibrate(&obs, &model, &t_p, &["--solution", "T", "--refant", "1"]);
    let t = read_gain_table(&t_p).unwrap();
    assert_eq!(t.layout.cells, FreqCells::All);
    assert!(t.phase_only);
    let err = max_error(&t, &truth, 1, |_| 0);
    eprintln!("T: max gain error {err:.2e}");
    assert!(err < TOL, "T error {err}");

    let b_p = dir.path().join("b.json");
    calibrate(&obs, &model, &b_p, &["--solution", "B", "--refant", "1"]);
    let b = read_gain_table(&b_p).unwrap();
    assert_eq!(b.n_cells(), 3);
    let err = max_error(&b, &truth, 1, |_| 0);
    eprintln!("B: max gain error {err:.2e}");
    assert!(err < TOL, "B error {err}");
}
