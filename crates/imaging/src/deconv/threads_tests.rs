//! Tests that the deconvolution's result does not depend on its thread count: 1, 2 and
//! 3 threads give the same model and residual bit for bit (Hogbom with Clark cycles and
//! pool-split patch subtractions, multi-scale CLEAN, MSMFS), and the residual is
//! dirty − model ⊛ PSF (the independent check of [`super::convolve_psf`]).

use ndarray::Array2;

use super::{Algorithm, CleanParams, convolve_psf, deconvolve, deconvolve_mfs};
use crate::coords::RaDec;
use crate::image::{Image, ImageGeometry};
use crate::sim::Rng;

/// Not a multiple of the 16-pixel tile in y, nor square.
const NX: usize = 200;
const NY: usize = 150;

fn geom(freq_hz: f64) -> ImageGeometry {
    ImageGeometry {
        npix_x: NX,
        npix_y: NY,
        cell: 1e-4,
        phase_centre: RaDec::from_degrees(10.0, -30.0),
        freq_hz,
        bandwidth_hz: 1e6,
    }
}

/// A Gaussian main lobe (FWHM `fwhm` pixels) on slowly decaying ripples that reach the
/// image edge, peaking at 1 at the centre pixel.
fn psf(fwhm: f64, freq_hz: f64) -> Image {
    let s2 = (fwhm / (8.0 * 2f64.ln()).sqrt()).powi(2);
    let (cx, cy) = ((NX / 2) as f64, (NY / 2) as f64);
    Image {
        geom: geom(freq_hz),
        data_yx: Array2::from_shape_fn((NY, NX), |(y, x)| {
            let (dx, dy) = (x as f64 - cx, y as f64 - cy);
            let r2 = dx * dx + dy * dy;
            let ripple = 0.08 * (0.31 * dx).cos() * (0.23 * dy).cos() * (-r2 / 2e4).exp();
            let v = (-r2 / (2.0 * s2)).exp() + ripple;
            if r2 == 0.0 { 1.0 } else { v.min(0.9) }
        }),
    }
}

/// Point sources (some near the edges) and Gaussian blobs through `p`, plus noise.
fn dirty(p: &Image, seed: u64, spectral: f64) -> Image {
    let mut rng = Rng::new(seed);
    let mut m = Array2::zeros((NY, NX));
    for (x, y, f) in [
        (100, 75, 1.0),
        (30, 20, 0.6),
        (190, 140, 0.4),
        (5, 100, 0.3),
    ] {
        m[[y, x]] = f * spectral;
    }
    for (x, y, f) in [(60usize, 110usize, 0.05), (150, 40, 0.03)] {
        for j in 0..11 {
            for i in 0..11 {
                let r2 = ((i as f64 - 5.0).powi(2) + (j as f64 - 5.0).powi(2)) / 8.0;
                m[[y + j - 5, x + i - 5]] += f * (-r2).exp();
            }
        }
    }
    let model = Image {
        geom: p.geom,
        data_yx: m,
    };
    let mut d = convolve_psf(&model, p).unwrap();
    d.data_yx.mapv_inplace(|v| v + 1e-3 * rng.normal());
    d
}

fn params(algorithm: Algorithm, threads: usize) -> CleanParams {
    CleanParams {
        algorithm,
        niter: 300,
        gain: 0.2,
        // A 141 × 141 patch (split over the threads where it lies inside the image) on a
        // 200 × 150 image: cycles with exact FFT recomputations.
        psf_support: Some(70),
        scales: vec![0.0, 4.0, 9.0],
        threads,
        ..CleanParams::default()
    }
}

fn same(a: &Image, b: &Image, what: &str) {
    let diff = a
        .data_yx
        .iter()
        .zip(&b.data_yx)
        .filter(|(x, y)| x.to_bits() != y.to_bits())
        .count();
    assert_eq!(diff, 0, "{what}: {diff} pixels differ");
}

/// max |residual − (dirty − model ⊛ PSF)| relative to the dirty peak.
fn residual_error(dirty: &Image, psf: &Image, model: &Image, residual: &Image) -> f64 {
    let mp = convolve_psf(model, psf).unwrap();
    let peak = dirty.data_yx.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let err = dirty
        .data_yx
        .iter()
        .zip(&mp.data_yx)
        .zip(&residual.data_yx)
        .map(|((d, m), r)| (d - m - r).abs())
        .fold(0.0, f64::max);
    err / peak
}

#[test]
fn single_frequency_results_do_not_depend_on_threads() {
    let p = psf(4.0, 1e8);
    let d = dirty(&p, 11, 1.0);
    for alg in [Algorithm::Hogbom, Algorithm::Msclean] {
        let one = deconvolve(&d, &p, &params(alg, 1)).unwrap();
        assert!(
            one.iterations > 50,
            "{alg:?}: {} iterations",
            one.iterations
        );
        let err = residual_error(&d, &p, &one.model, &one.residual);
        // The engine keeps the PSF's transform in single precision.
        assert!(
            err < 1e-6,
            "{alg:?}: residual off dirty − model ⊛ PSF by {err:e}"
        );
        for threads in [2, 3] {
            let r = deconvolve(&d, &p, &params(alg, threads)).unwrap();
            let what = format!("{alg:?}, {threads} threads");
            same(&one.model, &r.model, &format!("{what}: model"));
            same(&one.residual, &r.residual, &format!("{what}: residual"));
            assert_eq!(one.iterations, r.iterations, "{what}");
            assert_eq!(one.stop_reason, r.stop_reason, "{what}");
            assert_eq!(one.final_peak.to_bits(), r.final_peak.to_bits(), "{what}");
        }
    }
}

#[test]
fn msmfs_results_do_not_depend_on_threads() {
    let freqs = [90e6, 100e6, 110e6];
    let psfs: Vec<Image> = freqs.iter().map(|&f| psf(4.0 * 1e8 / f, f)).collect();
    let dirty: Vec<Image> = psfs
        .iter()
        .zip(&freqs)
        .map(|(p, &f)| dirty(p, 5, (f / 1e8).powf(-0.7)))
        .collect();
    let weights = [1.0, 1.2, 0.9];
    let run = |threads| {
        let p = CleanParams {
            nmoment: 2,
            ..params(Algorithm::Msmfs, threads)
        };
        deconvolve_mfs(&dirty, &psfs, &weights, None, &p).unwrap()
    };
    let one = run(1);
    assert!(one.iterations > 50, "{} iterations", one.iterations);
    let two = run(2);
    for t in 0..2 {
        same(
            &one.model_taylor[t],
            &two.model_taylor[t],
            &format!("model term {t}"),
        );
        same(
            &one.residual_taylor[t],
            &two.residual_taylor[t],
            &format!("residual term {t}"),
        );
    }
    assert_eq!(one.iterations, two.iterations);
}
