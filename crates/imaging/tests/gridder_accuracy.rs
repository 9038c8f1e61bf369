//! Checks the accuracy contract of the w-stacking gridder: `invert` and `predict` differ
//! from the exact direct Fourier transform (`sim::dft`) by at most `epsilon` in relative
//! L2 norm, for f64 down to 1e-12 and f32 down to 1e-5, on wide fields where the w-term
//! matters (LOW-like and MID-like arrays, square and rectangular images).

mod common;

use std::sync::OnceLock;

use aperture_imaging::coords::{RaDec, UvwMetres};
use aperture_imaging::gridder::{GridderOptions, Precision, invert, predict};
use aperture_imaging::image::{Image, ImageGeometry};
use aperture_imaging::sim::{invert_image, low_config, mid_config, predict_image};
use ndarray::Array2;
use num_complex::Complex64;

use common::{
    cell_for, max_w_lambda, npix_for, observe, opts, random_model_image, random_vis,
    random_weights, rel_l2, rel_l2_c,
};

const EPS_F64: [f64; 11] = [
    1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12,
];
const EPS_F32: [f64; 4] = [1e-2, 1e-3, 1e-4, 1e-5];

/// One observation with its exact (DFT) invert and predict results.
struct Case {
    name: &'static str,
    uvw_r: Vec<UvwMetres>,
    freq_c: Vec<f64>,
    geom: ImageGeometry,
    vis_rc: Array2<Complex64>,
    wgt_rc: Array2<f64>,
    model_yx: Array2<f64>,
    /// DFT adjoint of (vis, wgt).
    dirty_exact: Array2<f64>,
    /// DFT prediction of the model.
    vis_exact: Array2<Complex64>,
}

impl Case {
    fn new(
        name: &'static str,
        uvw_r: Vec<UvwMetres>,
        freq_c: Vec<f64>,
        geom: ImageGeometry,
        n_model_pixels: usize,
        seed: u64,
    ) -> Self {
        let (nrow, nchan) = (uvw_r.len(), freq_c.len());
        let vis_rc = random_vis(nrow, nchan, seed);
        // About 10 % of the samples carry zero weight (flagged): the gridder must skip them.
        let wgt_rc = random_weights(nrow, nchan, 0.1, seed + 1);
        let model_yx = random_model_image(&geom, n_model_pixels, seed + 2);
        let dirty_exact = invert_image(&uvw_r, &freq_c, &vis_rc, &wgt_rc, &geom)
            .unwrap()
            .data_yx;
        let model = Image {
            geom,
            data_yx: model_yx.clone(),
        };
        let vis_exact = predict_image(&uvw_r, &freq_c, &model).unwrap();
        Self {
            name,
            uvw_r,
            freq_c,
            geom,
            vis_rc,
            wgt_rc,
            model_yx,
            dirty_exact,
            vis_exact,
        }
    }

    fn invert_error(&self, o: &GridderOptions) -> f64 {
        let (d, _) = invert(
            &self.uvw_r,
            &self.freq_c,
            self.vis_rc.view(),
            self.wgt_rc.view(),
            &self.geom,
            o,
        )
        .unwrap();
        rel_l2(&d, &self.dirty_exact)
    }

    fn predict_error(&self, o: &GridderOptions) -> f64 {
        let (v, _) = predict(
            &self.uvw_r,
            &self.freq_c,
            self.model_yx.view(),
            &self.geom,
            o,
        )
        .unwrap();
        rel_l2_c(&v, &self.vis_exact)
    }

    /// Measures the error of `op` for every epsilon and asserts each ≤ epsilon,
    /// reporting the whole table on failure.
    fn check(&self, op: Op, epsilons: &[f64], precision: Precision) {
        let mut table = String::new();
        let mut failed = false;
        for &eps in epsilons {
            let o = opts(eps, precision);
            let e = match op {
                Op::Invert => self.invert_error(&o),
                Op::Predict => self.predict_error(&o),
            };
            let bad = e.is_nan() || e > eps;
            failed |= bad;
            table += &format!(
                "  {op:?} {precision:?} eps {eps:.0e}: rel L2 error {e:.3e} ({:.2} × eps){}\n",
                e / eps,
                if bad { "  <-- exceeds epsilon" } else { "" }
            );
        }
        eprintln!("{}:\n{table}", self.name);
        assert!(
            !failed,
            "{}: relative L2 error vs DFT above epsilon:\n{table}",
            self.name
        );
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Invert,
    Predict,
}

/// The LOW-like wide field: stations within 300 m (94 stations, baselines to ~600 m),
/// 3 hour angles over ±3 h at Dec −45°, channels 90/100/110 MHz, 1200 random rows,
/// 3 pixels per synthesised beam and a field ≥ 20° across.
///
/// (With rmax 1000 m the same 3 px/beam and 20° field would need ~800² pixels, which the
/// exact DFT cannot check within the suite's time budget.)
fn low_case() -> &'static Case {
    static CASE: OnceLock<Case> = OnceLock::new();
    CASE.get_or_init(|| {
        let pc = RaDec::from_degrees(15.0, -45.0);
        let uvw = observe(&low_config(300.0).unwrap(), pc, 3, 6.0, Some(1200), 7);
        let freq = vec![90e6, 100e6, 110e6];
        let cell = cell_for(&uvw, &freq, 3.0);
        let npix = npix_for(20f64.to_radians(), cell);
        let geom = ImageGeometry::square(npix, cell, pc, 100e6, 30e6).unwrap();
        eprintln!(
            "LOW case: {} rows × {} chans, npix {npix}, cell {:.3e} rad, field {:.1}°, \
             |w|max {:.0} λ",
            uvw.len(),
            freq.len(),
            cell,
            (npix as f64 * cell).to_degrees(),
            max_w_lambda(&uvw, &freq)
        );
        Case::new("LOW 20° field", uvw, freq, geom, 2000, 100)
    })
}

/// The MID-like case: dishes within 250 m (24 dishes), Band 1 channels 350/400 MHz,
/// 6 hour angles over ±4 h at Dec −60°, 3 px/beam, 160² pixels.
fn mid_case() -> &'static Case {
    static CASE: OnceLock<Case> = OnceLock::new();
    CASE.get_or_init(|| {
        let pc = RaDec::from_degrees(150.0, -60.0);
        let uvw = observe(&mid_config(250.0).unwrap(), pc, 6, 8.0, None, 0);
        let freq = vec![350e6, 400e6];
        let cell = cell_for(&uvw, &freq, 3.0);
        let geom = ImageGeometry::square(160, cell, pc, 375e6, 100e6).unwrap();
        eprintln!(
            "MID case: {} rows × {} chans, cell {:.3e} rad, field {:.1}°, |w|max {:.0} λ",
            uvw.len(),
            freq.len(),
            cell,
            (160.0 * cell).to_degrees(),
            max_w_lambda(&uvw, &freq)
        );
        Case::new("MID 160²", uvw, freq, geom, 1000, 200)
    })
}

/// A rectangular image (npix_x ≠ npix_y) of a LOW-like field, ≥ 20° along x.
fn rect_case() -> &'static Case {
    static CASE: OnceLock<Case> = OnceLock::new();
    CASE.get_or_init(|| {
        let pc = RaDec::from_degrees(60.0, -30.0);
        let uvw = observe(&low_config(300.0).unwrap(), pc, 2, 4.0, Some(800), 11);
        let freq = vec![95e6, 105e6];
        let cell = cell_for(&uvw, &freq, 3.0);
        let nx = npix_for(20f64.to_radians(), cell);
        let ny = (nx / 2 + 1) & !1;
        let geom = ImageGeometry {
            npix_x: nx,
            npix_y: ny,
            cell,
            phase_centre: pc,
            freq_hz: 100e6,
            bandwidth_hz: 20e6,
        };
        geom.validate().unwrap();
        eprintln!("rectangular case: {nx} × {ny} pixels, {} rows", uvw.len());
        Case::new("LOW rectangular", uvw, freq, geom, 1000, 300)
    })
}

#[test]
fn low_invert_f64_meets_every_epsilon() {
    low_case().check(Op::Invert, &EPS_F64, Precision::F64);
}

#[test]
fn low_predict_f64_meets_every_epsilon() {
    low_case().check(Op::Predict, &EPS_F64, Precision::F64);
}

#[test]
fn low_invert_and_predict_f32_meet_every_epsilon() {
    low_case().check(Op::Invert, &EPS_F32, Precision::F32);
    low_case().check(Op::Predict, &EPS_F32, Precision::F32);
}

#[test]
fn low_wide_field_needs_the_w_term() {
    // The flat-sky transform (no w correction) of the same data is far from the exact
    // wide-field answer, so the test field really exercises w: with |w| up to ~130 λ
    // and n − 1 ≈ −0.015 at the edge of a 20° field, the neglected phase
    // 2π·w·(n − 1) reaches many radians.
    let case = low_case();
    let flat = GridderOptions {
        wstacking: false,
        ..opts(1e-6, Precision::F64)
    };
    let (ei, ep) = (case.invert_error(&flat), case.predict_error(&flat));
    eprintln!("LOW without w-stacking: invert {ei:.3e}  predict {ep:.3e}");
    assert!(
        ei > 0.1 && ep > 0.1,
        "ignoring w should give errors ≫ 1e-3; got invert {ei:.3e}, predict {ep:.3e}"
    );
}

#[test]
fn mid_invert_f64_and_f32() {
    let case = mid_case();
    case.check(Op::Invert, &[1e-3, 1e-5, 1e-7, 1e-9, 1e-12], Precision::F64);
    case.check(Op::Invert, &EPS_F32, Precision::F32);
}

#[test]
fn mid_predict_f64_and_f32() {
    let case = mid_case();
    case.check(
        Op::Predict,
        &[1e-3, 1e-5, 1e-7, 1e-9, 1e-12],
        Precision::F64,
    );
    case.check(Op::Predict, &EPS_F32, Precision::F32);
}

#[test]
fn rectangular_invert_f64_and_f32() {
    let case = rect_case();
    case.check(Op::Invert, &[1e-3, 1e-6, 1e-9, 1e-12], Precision::F64);
    case.check(Op::Invert, &[1e-3, 1e-5], Precision::F32);
}

#[test]
fn rectangular_predict_f64() {
    rect_case().check(Op::Predict, &[1e-3, 1e-6, 1e-9, 1e-12], Precision::F64);
}

#[test]
fn rectangular_predict_f32() {
    rect_case().check(Op::Predict, &[1e-3, 1e-5], Precision::F32);
}

/// Predict of a model holding a single pixel: the corner (0, 0), the farthest point of
/// the field from the phase centre, where the grid correction 1/ψ̂ is largest. A
/// legitimate model (one bright source at the edge), and the hardest for the kernel.
fn corner_source_check(precision: Precision, epsilons: &[f64]) {
    let base = low_case();
    let mut model = Array2::<f64>::zeros(base.model_yx.dim());
    model[[0, 0]] = 1.0;
    let vis_exact = predict_image(
        &base.uvw_r,
        &base.freq_c,
        &Image {
            geom: base.geom,
            data_yx: model.clone(),
        },
    )
    .unwrap();
    let case = Case {
        name: "LOW single corner source",
        model_yx: model,
        vis_exact,
        uvw_r: base.uvw_r.clone(),
        freq_c: base.freq_c.clone(),
        geom: base.geom,
        vis_rc: base.vis_rc.clone(),
        wgt_rc: base.wgt_rc.clone(),
        dirty_exact: base.dirty_exact.clone(),
    };
    case.check(Op::Predict, epsilons, precision);
}

#[test]
fn corner_source_predict_f64_and_f32() {
    corner_source_check(Precision::F64, &EPS_F64);
    corner_source_check(Precision::F32, &EPS_F32);
}
