//! Helpers shared by the calibration tests: a small simulated observation, channel
//! subsets of a block, and comparing gain tables up to the reference phase.
#![allow(dead_code)]

use aperture_imaging::calib::GainTable;
use aperture_imaging::coords::RaDec;
use aperture_imaging::sim::{
    PointSource, SkyModel, hour_angles, low_config, predict_components, simulate_block,
};
use aperture_imaging::vis::VisBlock;
use ndarray::{Array2, s};
use num_complex::Complex64;

/// Channels per window and windows of [`observation`].
pub const CHANNELS_PER_WINDOW: usize = 3;
pub const WINDOWS: usize = 2;

/// A noise-free LOW-like observation (stations within 250 m, 6 hour angles over 5 h,
/// 2 windows × 3 channels at 100–125 MHz) of three point sources, and its exact model
/// visibilities (the block's own visibilities before any gains).
pub fn observation() -> (VisBlock, Array2<Complex64>) {
    let pc = RaDec::from_degrees(15.0, -45.0);
    let cfg = low_config(250.0).unwrap();
    let ha = hour_angles(6, 5.0).unwrap();
    let freq: Vec<f64> = (0..WINDOWS * CHANNELS_PER_WINDOW)
        .map(|k| 100e6 + 5e6 * k as f64)
        .collect();
    let at = |l: f64, m: f64| RaDec::from_lm(l, m, pc).unwrap();
    let sky = SkyModel {
        sources: vec![
            PointSource {
                dir: pc,
                flux_jy: 3.0,
                spectral_index: -0.7,
            },
            PointSource {
                dir: at(0.02, -0.01),
                flux_jy: 1.0,
                spectral_index: 0.0,
            },
            PointSource {
                dir: at(-0.015, 0.03),
                flux_jy: 0.5,
                spectral_index: -1.0,
            },
        ],
        ref_freq_hz: 100e6,
    };
    let block = simulate_block(&cfg, pc, &ha, &freq, &sky, 0.0, 0).unwrap();
    let model = predict_components(&block.uvw_r, &block.freq_c, pc, &sky).unwrap();
    assert_eq!(block.vis_rc, model);
    (block, model)
}

/// Number of antennas of a block (largest index + 1).
pub fn n_ant(block: &VisBlock) -> usize {
    block
        .ant1_r
        .iter()
        .chain(&block.ant2_r)
        .copied()
        .max()
        .unwrap() as usize
        + 1
}

/// Channels `lo..hi` of a block and of its model.
pub fn channels(
    block: &VisBlock,
    model: &Array2<Complex64>,
    lo: usize,
    hi: usize,
) -> (VisBlock, Array2<Complex64>) {
    let mut b = block.clone();
    b.freq_c = block.freq_c[lo..hi].to_vec();
    b.vis_rc = block.vis_rc.slice(s![.., lo..hi]).to_owned();
    b.weight_rc = block.weight_rc.slice(s![.., lo..hi]).to_owned();
    b.flag_rc = block.flag_rc.slice(s![.., lo..hi]).to_owned();
    (b, model.slice(s![.., lo..hi]).to_owned())
}

/// The rows of a block (and its model) for which `keep(row)` holds.
pub fn rows(
    block: &VisBlock,
    model: &Array2<Complex64>,
    keep: impl Fn(usize) -> bool,
) -> (VisBlock, Array2<Complex64>) {
    let idx: Vec<usize> = (0..block.n_rows()).filter(|&r| keep(r)).collect();
    let pick_c = |a: &Array2<Complex64>| a.select(ndarray::Axis(0), &idx);
    let b = VisBlock {
        uvw_r: idx.iter().map(|&r| block.uvw_r[r]).collect(),
        freq_c: block.freq_c.clone(),
        vis_rc: pick_c(&block.vis_rc),
        weight_rc: block.weight_rc.select(ndarray::Axis(0), &idx),
        flag_rc: block.flag_rc.select(ndarray::Axis(0), &idx),
        ant1_r: idx.iter().map(|&r| block.ant1_r[r]).collect(),
        ant2_r: idx.iter().map(|&r| block.ant2_r[r]).collect(),
        time_r: idx.iter().map(|&r| block.time_r[r]).collect(),
        phase_centre: block.phase_centre,
    };
    (b, pick_c(model))
}

/// Largest |g_solved − g_true| over unflagged gains, with the true table rotated so
/// antenna `refant` has phase 0 in every solution (the solver's reference phase).
/// The tables must have the same shape.
pub fn max_gain_error(solved: &GainTable, truth: &GainTable, refant: usize) -> f64 {
    assert_eq!(solved.gains.dim(), truth.gains.dim());
    let t = truth.rotated_to(refant).unwrap();
    solved
        .gains
        .indexed_iter()
        .filter(|(ix, _)| !solved.flags[*ix])
        .map(|(ix, g)| (g - t.gains[ix]).norm())
        .fold(0.0, f64::max)
}

/// Asserts that every solution converged and nothing is flagged.
pub fn assert_all_good(t: &GainTable) {
    let stats = t.stats.as_ref().expect("a solved table");
    assert!(
        stats.iter().all(|s| s.converged),
        "not all converged: {stats:?}"
    );
    assert_eq!(t.n_flagged(), 0);
}
