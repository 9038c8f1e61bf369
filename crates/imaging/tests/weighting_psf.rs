//! Checks the PSF that each imaging-weighting scheme produces, end to end through the
//! gridder: uniform has a narrower main lobe and lower sidelobes than natural, Briggs
//! robust −2 reproduces uniform and +2 reproduces natural, every PSF peaks at exactly 1
//! at the image centre, and a Gaussian taper broadens the main lobe as the convolution
//! theorem predicts.

mod common;

use std::sync::OnceLock;

use aperture_imaging::coords::RaDec;
use aperture_imaging::gridder::{Precision, psf_image};
use aperture_imaging::image::{Image, ImageGeometry};
use aperture_imaging::sim::{SkyModel, hour_angles, low_config, simulate_block};
use aperture_imaging::vis::VisBlock;
use aperture_imaging::weighting::{WeightingScheme, WeightingSpec, imaging_weights};

use common::{max_baseline_lambda, opts, rel_l2};

const NPIX: usize = 192;
const C: usize = NPIX / 2;
const EPS: f64 = 1e-7;
const PIXELS_PER_BEAM: f64 = 3.0;

/// A LOW-like observation: stations within 3 km (314: the dense 1 km core plus the
/// inner spiral arms, so the uv coverage is centrally condensed like SKA-Low's and
/// natural weighting has the broad "shelf" that uniform weighting removes), 4 hour angles
/// over ±3 h at Dec −45°, 2 channels; 3 pixels per synthesised beam 1/B_max.
/// The visibilities are irrelevant for a PSF.
fn setup() -> &'static (VisBlock, ImageGeometry) {
    static S: OnceLock<(VisBlock, ImageGeometry)> = OnceLock::new();
    S.get_or_init(|| {
        let pc = RaDec::from_degrees(15.0, -45.0);
        let sky = SkyModel {
            sources: vec![],
            ref_freq_hz: 100e6,
        };
        let ha = hour_angles(4, 6.0).unwrap();
        let freq = [100e6, 110e6];
        let block =
            simulate_block(&low_config(3000.0).unwrap(), pc, &ha, &freq, &sky, 0.0, 0).unwrap();
        let cell = 1.0 / (PIXELS_PER_BEAM * max_baseline_lambda(&block.uvw_r, &block.freq_c));
        let geom = ImageGeometry::square(NPIX, cell, pc, 105e6, 20e6).unwrap();
        (block, geom)
    })
}

fn psf(spec: WeightingSpec) -> Image {
    let (block, geom) = setup();
    let (wgt, _) = imaging_weights(block, geom, &spec).unwrap();
    psf_image(
        &block.uvw_r,
        &block.freq_c,
        wgt.view(),
        geom,
        &opts(EPS, Precision::F64),
    )
    .unwrap()
    .0
}

fn scheme(s: WeightingScheme) -> WeightingSpec {
    WeightingSpec::new(s)
}

fn natural() -> &'static Image {
    static P: OnceLock<Image> = OnceLock::new();
    P.get_or_init(|| psf(scheme(WeightingScheme::Natural)))
}

fn uniform() -> &'static Image {
    static P: OnceLock<Image> = OnceLock::new();
    P.get_or_init(|| psf(scheme(WeightingScheme::Uniform)))
}

/// Full width at half maximum through the centre along x and along y, pixels: the
/// half-maximum crossing on each side, linearly interpolated between the last pixel
/// above ½ and the first below, summed over both sides.
fn fwhm_xy(get: impl Fn(i64, i64) -> f64) -> (f64, f64) {
    let half_width = |dx: i64, dy: i64| {
        let mut k = 1;
        while get(k * dx, k * dy) > 0.5 {
            k += 1;
        }
        let (a, b) = (get((k - 1) * dx, (k - 1) * dy), get(k * dx, k * dy));
        (k - 1) as f64 + (a - 0.5) / (a - b)
    };
    (
        half_width(1, 0) + half_width(-1, 0),
        half_width(0, 1) + half_width(0, -1),
    )
}

/// PSF value at offset (dx, dy) from the centre.
fn at(p: &Image) -> impl Fn(i64, i64) -> f64 + '_ {
    move |dx, dy| p.data_yx[[(C as i64 + dy) as usize, (C as i64 + dx) as usize]]
}

/// Peak |PSF| beyond `r_px` pixels from the centre.
fn peak_beyond(p: &Image, r_px: f64) -> f64 {
    p.data_yx
        .indexed_iter()
        .filter(|((y, x), _)| (*x as f64 - C as f64).hypot(*y as f64 - C as f64) > r_px)
        .map(|(_, v)| v.abs())
        .fold(0.0, f64::max)
}

fn l2(p: &Image) -> f64 {
    p.data_yx.iter().map(|v| v * v).sum::<f64>().sqrt()
}

#[test]
fn every_psf_peaks_at_one_at_the_centre() {
    let mut specs = vec![
        scheme(WeightingScheme::Natural),
        scheme(WeightingScheme::Uniform),
    ];
    for robust in [-2.0, -0.5, 0.0, 1.0, 2.0] {
        specs.push(scheme(WeightingScheme::Briggs { robust }));
    }
    specs.push(scheme(WeightingScheme::Briggs { robust: 0.0 }).with_taper(0.01));
    for spec in specs {
        let (peak, x, y) = psf(spec).peak();
        eprintln!("{spec:?}: peak {peak:.12} at ({x}, {y})");
        assert_eq!((x, y), (C, C), "{spec:?}");
        // The exact PSF is Σw/Σw = 1 at the centre; the gridder is within epsilon.
        assert!((peak - 1.0).abs() <= EPS, "{spec:?}: peak {peak}");
    }
}

#[test]
fn uniform_has_a_narrower_main_lobe_and_lower_sidelobes_than_natural() {
    let (n, u) = (natural(), uniform());
    let (fn_x, fn_y) = fwhm_xy(at(n));
    let (fu_x, fu_y) = fwhm_xy(at(u));
    // Sidelobes: everything beyond 2 synthesised beams (2/B_max = 2·PIXELS_PER_BEAM px),
    // the array's resolution. Natural weighting of this centrally condensed array has a
    // broad plateau there (the core's own beam); uniform weighting removes it.
    let r_side = 2.0 * PIXELS_PER_BEAM;
    let (sn, su) = (peak_beyond(n, r_side), peak_beyond(u, r_side));
    // Briggs's (1995) criterion: uniform weighting minimises Σ PSF² over the image, the
    // integrated sidelobe power (by Parseval, Σ over occupied uv cells of the squared
    // gridded weight, smallest when every occupied cell carries equal weight).
    let (ln, lu) = (l2(n), l2(u));
    eprintln!(
        "natural: FWHM {fn_x:.2} × {fn_y:.2} px, peak sidelobe beyond {r_side} px {sn:.3}, \
         ‖PSF‖₂ {ln:.3}\nuniform: FWHM {fu_x:.2} × {fu_y:.2} px, peak sidelobe {su:.3}, \
         ‖PSF‖₂ {lu:.3}"
    );
    assert!(fu_x < fn_x && fu_y < fn_y, "uniform main lobe not narrower");
    // Uniform weighting's main lobe is about the diffraction limit of the longest
    // baselines: the FWHM of a uniformly filled disc of radius B_max is 0.705/B_max,
    // ≈ 2.1 px at 3 px per 1/B_max; allow for the incomplete coverage.
    assert!(
        (1.5..3.5).contains(&fu_x) && (1.5..3.5).contains(&fu_y),
        "uniform FWHM {fu_x} × {fu_y} px"
    );
    assert!(su < sn, "uniform peak sidelobe {su} not below natural {sn}");
    assert!(lu < ln, "uniform ‖PSF‖₂ {lu} not below natural {ln}");
}

#[test]
fn robust_limits_reproduce_uniform_and_natural() {
    // Briggs: w/(1 + W_k f²) with f² = (5·10^−R)²/(ΣW²/ΣW). R = −2: W_k f² ≫ 1, so the
    // weights are ∝ w/W_k (uniform) up to 1/(W_k f²) ~ 4e-6 of the mean density. R = +2:
    // W_k f² ~ 2.5e-3·W_k/W̄ ≪ 1, natural up to that fraction.
    let m2 = psf(scheme(WeightingScheme::Briggs { robust: -2.0 }));
    let p2 = psf(scheme(WeightingScheme::Briggs { robust: 2.0 }));
    let (du, dn) = (
        rel_l2(&m2.data_yx, &uniform().data_yx),
        rel_l2(&p2.data_yx, &natural().data_yx),
    );
    let (du_far, dn_far) = (
        rel_l2(&m2.data_yx, &natural().data_yx),
        rel_l2(&p2.data_yx, &uniform().data_yx),
    );
    eprintln!(
        "robust −2 vs uniform {du:.2e} (vs natural {du_far:.2e}); \
         robust +2 vs natural {dn:.2e} (vs uniform {dn_far:.2e})"
    );
    assert!(du < 0.01, "robust −2 differs from uniform by {du:e}");
    assert!(dn < 0.01, "robust +2 differs from natural by {dn:e}");
    // And the comparison is meaningful: the two limits are far apart.
    assert!(du_far > 0.5 && dn_far > 0.5);
}

/// The normalised convolution (P ⊛ g)/(P ⊛ g)(0) at offset (dx, dy), g the image-plane
/// Gaussian of FWHM `theta_px` pixels, summed over g's support (to 3 FWHM, g < 1e-10).
fn convolved(p: &Image, theta_px: f64) -> impl Fn(i64, i64) -> f64 + '_ {
    let reach = (3.0 * theta_px).ceil() as i64;
    let k = 4.0 * std::f64::consts::LN_2 / (theta_px * theta_px);
    let raw = move |dx: i64, dy: i64| {
        let mut s = 0.0;
        for ey in -reach..=reach {
            for ex in -reach..=reach {
                let g = (-k * (ex * ex + ey * ey) as f64).exp();
                s += g * at(p)(dx - ex, dy - ey);
            }
        }
        s
    };
    let norm = raw(0, 0);
    move |dx, dy| raw(dx, dy) / norm
}

#[test]
fn taper_broadens_the_main_lobe_as_the_convolution_theorem_predicts() {
    // Multiplying the weights by the taper T(u) = FT of the normalised Gaussian g of FWHM
    // θ convolves the PSF with g (then renormalised to a peak of 1). The PSF is band-
    // limited below the pixel Nyquist frequency, so the pixel sum equals the integral;
    // what remains is the w-term (PSF not quite shift-invariant), negligible within the
    // main lobe. So the tapered PSF's FWHM must be that of P ⊛ g to ~1 %, and wider
    // than P's.
    let (_, geom) = setup();
    let (fx, fy) = fwhm_xy(at(natural()));
    let theta_px = fx.max(fy);
    let tapered = psf(scheme(WeightingScheme::Natural).with_taper(theta_px * geom.cell));
    let (tx, ty) = fwhm_xy(at(&tapered));
    let (cx, cy) = fwhm_xy(convolved(natural(), theta_px));
    eprintln!(
        "natural FWHM {fx:.3} × {fy:.3} px; taper θ = {theta_px:.3} px: tapered FWHM \
         {tx:.3} × {ty:.3}, P ⊛ g {cx:.3} × {cy:.3}; Gaussian-beam guess √(b² + θ²) = \
         {:.3} × {:.3}",
        fx.hypot(theta_px),
        fy.hypot(theta_px)
    );
    assert!(
        tx > 1.2 * fx && ty > 1.2 * fy,
        "taper did not broaden the PSF"
    );
    assert!(
        (tx / cx - 1.0).abs() < 0.01 && (ty / cy - 1.0).abs() < 0.01,
        "tapered FWHM {tx:.3} × {ty:.3} vs convolution {cx:.3} × {cy:.3}"
    );
}
