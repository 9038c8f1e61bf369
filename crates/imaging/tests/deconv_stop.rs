//! Every stop reason is reachable and reported with the peaks that justify it: niter,
//! absolute, fractional and auto thresholds (on a noisy image, against the robust noise
//! level), nothing to clean (an empty residual or nothing inside the window) and
//! divergence (a PSF whose transform is negative, for which CLEAN cannot converge).

mod deconv_support;

use aperture_imaging::deconv::{CleanParams, CleanWindow, StopReason, deconvolve};
use aperture_imaging::image::{Image, ImageGeometry};
use aperture_imaging::sim::Rng;
use deconv_support::{flux_near, image, max_abs, psf, shifted_sum};
use ndarray::Array2;

const SOURCES: [(usize, usize, f64); 3] = [(128, 128, 1.0), (80, 170, 0.4), (180, 60, 0.1)];

fn dirty() -> Image {
    let p = psf();
    image(&p.geom, shifted_sum(&p, &SOURCES))
}

#[test]
fn niter() {
    let r = deconvolve(
        &dirty(),
        &psf(),
        &CleanParams {
            niter: 7,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((r.stop_reason, r.iterations), (StopReason::Niter, 7));
    // Seven components of gain 0.1 at the brightest source: 1 − 0.9⁷ of it is taken.
    let m = r.model.data_yx[[128, 128]];
    assert!((m - (1.0 - 0.9f64.powi(7))).abs() < 2e-3, "{m}");
}

#[test]
fn absolute_threshold() {
    let params = CleanParams {
        threshold: 0.05,
        ..Default::default()
    };
    let r = deconvolve(&dirty(), &psf(), &params).unwrap();
    assert_eq!(r.stop_reason, StopReason::Threshold);
    assert!(
        r.final_peak <= 0.05 && r.final_peak > 0.03,
        "{}",
        r.final_peak
    );
    assert!((max_abs(&r.residual.data_yx) - r.final_peak).abs() < 1e-12);
}

#[test]
fn fractional_threshold() {
    let params = CleanParams {
        fractional_threshold: 0.2,
        threshold: 0.01,
        ..Default::default()
    };
    let r = deconvolve(&dirty(), &psf(), &params).unwrap();
    assert_eq!(r.stop_reason, StopReason::FractionalThreshold);
    assert!(
        r.final_peak <= 0.2 * r.initial_peak,
        "{} {}",
        r.final_peak,
        r.initial_peak
    );
}

#[test]
fn auto_threshold() {
    let mut d = dirty();
    let mut rng = Rng::new(5);
    let sigma = 2e-3;
    d.data_yx.mapv_inplace(|v| v + sigma * rng.normal());
    let params = CleanParams {
        auto_threshold: Some(5.0),
        niter: 10_000,
        ..Default::default()
    };
    let r = deconvolve(&d, &psf(), &params).unwrap();
    assert_eq!(r.stop_reason, StopReason::AutoThreshold);
    // The level is 5 × the robust RMS of the residual (≈ σ: the residual is mostly noise).
    assert!(r.final_peak <= 5.0 * 1.05 * sigma, "{}", r.final_peak);
    assert!(r.final_peak > 5.0 * 0.8 * sigma, "{}", r.final_peak);
    // All three sources were cleaned: the model flux within the main lobe (noise moves
    // the last components to neighbouring pixels) is within the stop level (5σ) plus one
    // σ of noise of the true flux.
    for &(x, y, f) in &SOURCES {
        let got = flux_near(&r.model.data_yx, x, y, 1);
        assert!((got - f).abs() < 6.0 * sigma, "({x}, {y}): {got} vs {f}");
    }
}

#[test]
fn nothing_to_clean() {
    let p = psf();
    let zero = image(&p.geom, Array2::zeros((256, 256)));
    let r = deconvolve(&zero, &p, &CleanParams::default()).unwrap();
    assert_eq!(
        (r.stop_reason, r.iterations),
        (StopReason::NothingToClean, 0)
    );
    assert_eq!((r.initial_peak, r.final_peak), (0.0, 0.0));
    assert!(r.model.data_yx.iter().all(|v| *v == 0.0));
    // Emission only outside the window: nothing to clean inside it.
    let mut m = Array2::from_elem((256, 256), false);
    m[[10, 10]] = true;
    let mut d = Array2::zeros((256, 256));
    d[[200, 200]] = 1.0;
    let r = deconvolve(
        &image(&p.geom, d),
        &p,
        &CleanParams {
            window: CleanWindow::Mask(m),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        (r.stop_reason, r.iterations),
        (StopReason::NothingToClean, 0)
    );
}

#[test]
fn diverging() {
    // PSF 1 at the centre and −1 on both sides in x: its transform 1 − 2 cos(2πu) is
    // negative at low u, so CLEAN with gain 1 amplifies the residual.
    let geom = ImageGeometry::square(32, 1e-4, Default::default(), 1e8, 1e6).unwrap();
    let mut p = Array2::zeros((32, 32));
    p[[16, 16]] = 1.0;
    p[[16, 15]] = -1.0;
    p[[16, 17]] = -1.0;
    let mut d = Array2::zeros((32, 32));
    d[[16, 16]] = 1.0;
    let params = CleanParams {
        gain: 1.0,
        niter: 100_000,
        ..Default::default()
    };
    let r = deconvolve(&image(&geom, d), &image(&geom, p), &params).unwrap();
    assert_eq!(r.stop_reason, StopReason::Diverging, "{r:?}");
    assert!(r.iterations < 100_000);
    assert!(r.model.data_yx.iter().all(|v| v.is_finite()));
}
