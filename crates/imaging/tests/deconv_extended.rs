//! Multi-scale CLEAN of a noise-free extended source (a circular Gaussian made exactly as
//! a sum of shifted PSFs, one per sky pixel): the residual RMS falls below 1 % of the
//! dirty peak and the model holds the source's flux.

mod deconv_support;

use aperture_imaging::deconv::{Algorithm, CleanParams, deconvolve};
use deconv_support::{image, max_abs, psf, rms, shifted_sum};
use ndarray::Array2;

/// A Gaussian of σ = 4 pixels (FWHM 9.4 pixels, three beams across) and peak 0.05
/// Jy/pixel at (120, 130): 5.03 Jy in all, plus a 0.3 Jy point source beside it.
fn sky() -> Array2<f64> {
    let mut s = Array2::zeros((256, 256));
    for y in 110..151 {
        for x in 100..141 {
            let (dx, dy) = (x as f64 - 120.0, y as f64 - 130.0);
            s[[y, x]] = 0.05 * (-(dx * dx + dy * dy) / 32.0).exp();
        }
    }
    s[[60, 190]] += 0.3;
    s
}

#[test]
fn multiscale_recovers_a_gaussian() {
    let p = psf();
    let sky = sky();
    let comps: Vec<(usize, usize, f64)> = sky
        .indexed_iter()
        .filter(|(_, v)| **v > 1e-12)
        .map(|((y, x), v)| (x, y, *v))
        .collect();
    let dirty = shifted_sum(&p, &comps);
    let peak = max_abs(&dirty);
    let params = CleanParams {
        algorithm: Algorithm::Msclean,
        niter: 3000,
        gain: 0.1,
        threshold: 1e-4 * peak,
        scales: vec![0.0, 3.0, 10.0, 30.0],
        ..Default::default()
    };
    let r = deconvolve(&image(&p.geom, dirty.clone()), &p, &params).unwrap();
    let res_rms = rms(&r.residual.data_yx);
    eprintln!(
        "{} iterations, {:?}, residual rms {res_rms:e} = {:.4} % of the dirty peak {peak}",
        r.iterations,
        r.stop_reason,
        100.0 * res_rms / peak
    );
    assert!(res_rms < 0.01 * peak);
    let total: f64 = r.model.data_yx.sum();
    let want: f64 = sky.sum();
    assert!(
        (total / want - 1.0).abs() < 0.01,
        "model flux {total} vs {want}"
    );
    // Hogbom with the same budget leaves more behind on the extended source.
    let h = deconvolve(
        &image(&p.geom, dirty),
        &p,
        &CleanParams {
            algorithm: Algorithm::Hogbom,
            ..params
        },
    )
    .unwrap();
    let h_rms = rms(&h.residual.data_yx);
    eprintln!("hogbom: residual rms {h_rms:e}");
    assert!(res_rms < h_rms);
}
