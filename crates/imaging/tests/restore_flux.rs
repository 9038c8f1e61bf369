//! Restoration: model ⊛ beam + residual against an independent oracle (the Gaussian
//! written from its definition in sky coordinates and summed pixel by pixel), point
//! fluxes (peak = flux on a pixel; integrated flux = Σ pixels / beam area), sparse and
//! dense models (both convolution paths), Taylor terms, and bad inputs.

use std::f64::consts::PI;

use aperture_imaging::ImagingError;
use aperture_imaging::coords::RaDec;
use aperture_imaging::image::{Image, ImageGeometry};
use aperture_imaging::restore::{Beam, beam_image, fit_psf_beam, restore, restore_taylor};
use aperture_imaging::sim::Rng;
use ndarray::Array2;

const ARCSEC: f64 = PI / 180.0 / 3600.0;
const CELL: f64 = 2.0 * ARCSEC;

fn geom(npix: usize) -> ImageGeometry {
    ImageGeometry::square(npix, CELL, RaDec::from_degrees(15.0, -45.0), 1e8, 1e6).unwrap()
}

/// The brief's beam: 5 × 3 pixels at 30°.
fn beam() -> Beam {
    Beam::new(5.0 * CELL, 3.0 * CELL, f64::to_radians(30.0)).unwrap()
}

/// The peak-1 beam at sky offset (dl, dm), from its definition (north through east).
fn gauss(b: &Beam, dl: f64, dm: f64) -> f64 {
    let u_maj = dl * b.bpa_rad.sin() + dm * b.bpa_rad.cos();
    let u_min = dl * b.bpa_rad.cos() - dm * b.bpa_rad.sin();
    (-4.0 * 2f64.ln() * ((u_maj / b.bmaj_rad).powi(2) + (u_min / b.bmin_rad).powi(2))).exp()
}

/// Σ over model pixels of value × beam at the sky offset between pixel centres.
fn oracle(model: &Image, b: &Beam) -> Array2<f64> {
    let g = &model.geom;
    let comps: Vec<(f64, f64, f64)> = model
        .data_yx
        .indexed_iter()
        .filter(|(_, v)| **v != 0.0)
        .map(|((y, x), v)| {
            let (l, m) = g.pixel_to_lm(x as f64, y as f64);
            (l, m, *v)
        })
        .collect();
    Array2::from_shape_fn((g.npix_y, g.npix_x), |(y, x)| {
        let (l, m) = g.pixel_to_lm(x as f64, y as f64);
        comps
            .iter()
            .map(|(cl, cm, v)| v * gauss(b, l - cl, m - cm))
            .sum()
    })
}

fn max_abs(a: &Array2<f64>) -> f64 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}

fn noise(g: ImageGeometry, sigma: f64, seed: u64) -> Image {
    let mut rng = Rng::new(seed);
    Image {
        geom: g,
        data_yx: Array2::from_shape_fn((g.npix_y, g.npix_x), |_| sigma * rng.normal()),
    }
}

#[test]
fn a_point_source_keeps_its_flux_and_peak() {
    let g = geom(128);
    let b = beam();
    let residual = Image::zeros(g);
    for (x, y, s) in [(64, 64, 2.5), (40, 77, 0.3), (90, 31, -1.2)] {
        let mut model = Image::zeros(g);
        model.data_yx[[y, x]] = s;
        let r = restore(&model, &residual, &b).unwrap();
        // Peak = flux on the component's pixel.
        assert!((r.data_yx[[y, x]] - s).abs() < 1e-14, "peak at ({x}, {y})");
        let (_, px, py) = if s > 0.0 {
            r.peak()
        } else {
            let neg = Image {
                geom: g,
                data_yx: -&r.data_yx,
            };
            neg.peak()
        };
        assert_eq!((px, py), (x, y));
        // Integrated flux: Σ Jy/beam / (pixels per beam) = Jy. The sampled Gaussian's sum
        // equals its integral up to aliasing ~exp(−2π²σ²) ≈ 1e-14 for σ_min = 1.27 px.
        let flux = r.data_yx.sum() / b.area_pixels(g.cell);
        assert!((flux / s - 1.0).abs() < 1e-10, "flux {flux}, want {s}");
    }
}

#[test]
fn a_point_at_the_centre_restores_to_the_beam_image_plus_the_residual() {
    let g = geom(64);
    let b = beam();
    let residual = noise(g, 0.01, 4);
    let mut model = Image::zeros(g);
    model.data_yx[[32, 32]] = 1.7;
    let r = restore(&model, &residual, &b).unwrap();
    let want = beam_image(&b, &g).data_yx * 1.7 + &residual.data_yx;
    assert!(max_abs(&(&r.data_yx - &want)) < 1e-14);
    // And beam_image itself follows the definition in sky coordinates.
    let bi = beam_image(&b, &g);
    let def = Array2::from_shape_fn((64, 64), |(y, x)| {
        let (l, m) = g.pixel_to_lm(x as f64, y as f64);
        gauss(&b, l, m)
    });
    assert!(max_abs(&(&bi.data_yx - &def)) < 1e-14);
    // A PSF that is exactly the beam fits back to it.
    let f = fit_psf_beam(&bi).unwrap();
    assert!((f.bmaj_rad / b.bmaj_rad - 1.0).abs() < 1e-9);
}

#[test]
fn sparse_and_dense_models_match_the_oracle() {
    let g = geom(64);
    let residual = noise(g, 0.05, 9);
    for b in [
        beam(),
        Beam::new(9.0 * CELL, 2.0 * CELL, f64::to_radians(-70.0)).unwrap(),
        Beam::circular(3.0 * CELL).unwrap(),
    ] {
        // A Högbom-like sparse model (direct path) and a dense extended one (FFT path),
        // components near the edges too.
        let mut rng = Rng::new(11);
        let mut sparse = Image::zeros(g);
        for _ in 0..30 {
            let (x, y) = (rng.below(64) as usize, rng.below(64) as usize);
            sparse.data_yx[[y, x]] += rng.uniform_range(-0.5, 2.0);
        }
        sparse.data_yx[[0, 0]] = 1.0;
        sparse.data_yx[[63, 63]] = 1.0;
        let dense = Image {
            geom: g,
            data_yx: Array2::from_shape_fn((64, 64), |(y, x)| {
                let r2 = (x as f64 - 30.0).powi(2) + (y as f64 - 36.0).powi(2);
                (-r2 / 200.0).exp() + 0.01 * rng.normal()
            }),
        };
        for model in [&sparse, &dense] {
            let r = restore(model, &residual, &b).unwrap();
            let want = oracle(model, &b) + &residual.data_yx;
            let err = max_abs(&(&r.data_yx - &want));
            assert!(err < 1e-12 * max_abs(&want), "{b:?}: {err}");
        }
    }
}

#[test]
fn integrated_flux_of_an_extended_model_is_conserved() {
    let g = geom(256);
    let b = beam();
    // A Gaussian blob of total flux 10 Jy well inside the image.
    let s2 = 36.0f64;
    let mut model = Image {
        geom: g,
        data_yx: Array2::from_shape_fn((256, 256), |(y, x)| {
            let r2 = (x as f64 - 120.0).powi(2) + (y as f64 - 140.0).powi(2);
            (-0.5 * r2 / s2).exp()
        }),
    };
    let total = model.data_yx.sum();
    model.data_yx.mapv_inplace(|v| v * 10.0 / total);
    let r = restore(&model, &Image::zeros(g), &b).unwrap();
    let flux = r.data_yx.sum() / b.area_pixels(g.cell);
    assert!((flux - 10.0).abs() < 1e-9, "{flux}");
}

#[test]
fn taylor_terms_are_restored_one_by_one() {
    let g = geom(64);
    let b = beam();
    let mut m0 = Image::zeros(g);
    let mut m1 = Image::zeros(g);
    m0.data_yx[[20, 30]] = 2.0;
    m1.data_yx[[20, 30]] = -1.4;
    let (r0, r1) = (noise(g, 0.01, 1), noise(g, 0.002, 2));
    let t = restore_taylor(&[m0.clone(), m1.clone()], &[r0.clone(), r1.clone()], &b).unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t[0], restore(&m0, &r0, &b).unwrap());
    assert_eq!(t[1], restore(&m1, &r1, &b).unwrap());
    assert!(restore_taylor(&[m0.clone()], &[r0.clone(), r1], &b).is_err());
    assert!(restore_taylor(&[], &[], &b).is_err());
    let other = Image::zeros(geom(32));
    assert!(restore_taylor(&[m0, other.clone()], &[r0, other], &b).is_err());
}

#[test]
fn mismatched_or_non_finite_inputs_are_refused() {
    let g = geom(64);
    let b = beam();
    let model = Image::zeros(g);
    let residual = Image::zeros(g);

    let small = Image::zeros(geom(32));
    assert!(matches!(
        restore(&model, &small, &b),
        Err(ImagingError::ShapeMismatch { .. })
    ));
    let mut g2 = g;
    g2.cell *= 1.01;
    let e = restore(&model, &Image::zeros(g2), &b).unwrap_err();
    assert!(e.to_string().contains("cell"), "{e}");
    let mut g3 = g;
    g3.phase_centre.dec += 1e-3;
    let e = restore(&model, &Image::zeros(g3), &b).unwrap_err();
    assert!(e.to_string().contains("phase centre"), "{e}");

    let mut nan = model.clone();
    nan.data_yx[[5, 6]] = f64::NAN;
    assert_eq!(
        restore(&nan, &residual, &b).unwrap_err(),
        ImagingError::NonFinite {
            name: "model".into(),
            index: 5 * 64 + 6
        }
    );
    let mut inf = residual.clone();
    inf.data_yx[[0, 1]] = f64::NEG_INFINITY;
    assert!(matches!(
        restore(&model, &inf, &b),
        Err(ImagingError::NonFinite { name, .. }) if name == "residual"
    ));

    let bad = Beam {
        bmaj_rad: CELL,
        bmin_rad: 2.0 * CELL,
        bpa_rad: 0.0,
    };
    assert!(restore(&model, &residual, &bad).is_err());
    let bad = Beam {
        bmaj_rad: f64::NAN,
        bmin_rad: 2.0 * CELL,
        bpa_rad: 0.0,
    };
    assert!(restore(&model, &residual, &bad).is_err());
}
