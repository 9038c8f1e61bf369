//! Bad input gets an error naming the option or image at fault, never a panic or NaN:
//! PSF and dirty image of different shapes or grids, a PSF without its peak at the
//! centre, niter 0, out-of-range controls, non-finite pixels (with their index), empty
//! windows, bad scales, nmoment outside 1–3, mismatched window counts and weights in
//! MFS, and spectral-index inputs.

use aperture_imaging::ImagingError;
use aperture_imaging::coords::RaDec;
use aperture_imaging::deconv::{
    Algorithm, CleanParams, CleanWindow, deconvolve, deconvolve_mfs, spectral_index,
};
use aperture_imaging::image::{Image, ImageGeometry};
use ndarray::Array2;

const N: usize = 32;

fn geom(freq: f64) -> ImageGeometry {
    ImageGeometry::square(N, 1e-3, RaDec::from_degrees(10.0, -30.0), freq, 1e6).unwrap()
}

/// A Gaussian PSF (FWHM 3 pixels) peaking at 1 at the centre, at `freq`.
fn psf(freq: f64) -> Image {
    let s2 = (3.0f64 / (8.0 * 2f64.ln()).sqrt()).powi(2);
    Image {
        geom: geom(freq),
        data_yx: Array2::from_shape_fn((N, N), |(y, x)| {
            let (dx, dy) = (x as f64 - 16.0, y as f64 - 16.0);
            (-(dx * dx + dy * dy) / (2.0 * s2)).exp()
        }),
    }
}

/// Two point sources through that PSF.
fn dirty(freq: f64) -> Image {
    let p = psf(freq);
    let mut d = Array2::zeros((N, N));
    for (x, y, f) in [(16usize, 16usize, 1.0), (8, 20, 0.5)] {
        for oy in 0..N {
            for ox in 0..N {
                let (px, py) = (ox as isize - x as isize + 16, oy as isize - y as isize + 16);
                if (0..N as isize).contains(&px) && (0..N as isize).contains(&py) {
                    d[[oy, ox]] += f * p.data_yx[[py as usize, px as usize]];
                }
            }
        }
    }
    Image {
        geom: geom(freq),
        data_yx: d,
    }
}

/// The field an error names.
fn name<T: std::fmt::Debug>(r: Result<T, ImagingError>) -> String {
    match r {
        Err(ImagingError::InvalidParameter { name, .. })
        | Err(ImagingError::ShapeMismatch { name, .. })
        | Err(ImagingError::NonFinite { name, .. }) => name,
        other => format!("not a named error: {other:?}"),
    }
}

fn clean(params: CleanParams) -> String {
    name(deconvolve(&dirty(1e8), &psf(1e8), &params))
}

#[test]
fn good_inputs_work() {
    // The baseline the other cases perturb.
    let r = deconvolve(&dirty(1e8), &psf(1e8), &CleanParams::default()).unwrap();
    assert!((r.model.data_yx[[16, 16]] - 1.0).abs() < 1e-3);
}

#[test]
fn controls_out_of_range() {
    let p = CleanParams::default;
    assert_eq!(clean(CleanParams { niter: 0, ..p() }), "niter");
    for g in [0.0, -0.1, 1.5, f64::NAN, f64::INFINITY] {
        assert_eq!(clean(CleanParams { gain: g, ..p() }), "gain", "{g}");
    }
    for t in [-1e-3, f64::NAN, f64::INFINITY] {
        assert_eq!(
            clean(CleanParams {
                threshold: t,
                ..p()
            }),
            "threshold",
            "{t}"
        );
    }
    for f in [-0.1, 1.0, f64::NAN] {
        assert_eq!(
            clean(CleanParams {
                fractional_threshold: f,
                ..p()
            }),
            "fractional_threshold"
        );
    }
    for a in [0.0, -3.0, f64::NAN] {
        assert_eq!(
            clean(CleanParams {
                auto_threshold: Some(a),
                ..p()
            }),
            "auto_threshold"
        );
    }
    assert_eq!(
        clean(CleanParams {
            psf_support: Some(0),
            ..p()
        }),
        "psf_support"
    );
    assert_eq!(
        clean(CleanParams {
            algorithm: Algorithm::Msmfs,
            ..p()
        }),
        "algorithm"
    );
    let ms = || CleanParams {
        algorithm: Algorithm::Msclean,
        scales: vec![0.0, 3.0],
        ..p()
    };
    for s in [vec![], vec![0.0, -2.0], vec![f64::NAN], vec![0.0, 16.0]] {
        assert_eq!(
            clean(CleanParams {
                scales: s.clone(),
                ..ms()
            }),
            "scales",
            "{s:?}"
        );
    }
    for b in [0.0, -0.6, f64::NAN] {
        assert_eq!(
            clean(CleanParams {
                scale_bias: b,
                ..ms()
            }),
            "scale_bias"
        );
    }
}

#[test]
fn windows() {
    let p = CleanParams::default;
    assert_eq!(
        clean(CleanParams {
            window: CleanWindow::NoEdge(16),
            ..p()
        }),
        "window"
    );
    let empty = Array2::from_elem((N, N), false);
    assert_eq!(
        clean(CleanParams {
            window: CleanWindow::Mask(empty),
            ..p()
        }),
        "window"
    );
    let wrong = Array2::from_elem((N, N + 2), true);
    assert_eq!(
        clean(CleanParams {
            window: CleanWindow::Mask(wrong),
            ..p()
        }),
        "window"
    );
}

#[test]
fn psf_not_matching_the_dirty_image() {
    let d = dirty(1e8);
    let p = CleanParams::default();
    let mut small = psf(1e8);
    small.geom.npix_x = 16;
    small.geom.npix_y = 16;
    small.data_yx = Array2::zeros((16, 16));
    assert_eq!(name(deconvolve(&d, &small, &p)), "psf");
    let mut cell = psf(1e8);
    cell.geom.cell *= 1.01;
    assert_eq!(name(deconvolve(&d, &cell, &p)), "psf");
    let mut centre = psf(1e8);
    centre.geom.phase_centre = RaDec::from_degrees(10.0, -29.0);
    assert_eq!(name(deconvolve(&d, &centre, &p)), "psf");
    // Peak one pixel off the centre.
    let mut off = psf(1e8);
    off.data_yx[[16, 17]] = 1.2;
    assert_eq!(name(deconvolve(&d, &off, &p)), "psf");
    // Negative at the centre.
    let mut neg = psf(1e8);
    neg.data_yx.mapv_inplace(|v| -v);
    assert_eq!(name(deconvolve(&d, &neg, &p)), "psf");
    // The array does not match the geometry.
    let mut bad = dirty(1e8);
    bad.data_yx = Array2::zeros((N, N - 1));
    assert_eq!(name(deconvolve(&bad, &psf(1e8), &p)), "dirty");
}

#[test]
fn non_finite_pixels_are_named_with_their_index() {
    let p = CleanParams::default();
    for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let mut d = dirty(1e8);
        d.data_yx[[7, 5]] = v;
        match deconvolve(&d, &psf(1e8), &p) {
            Err(ImagingError::NonFinite { name, index }) => {
                assert_eq!(index, 7 * N + 5);
                assert!(
                    name.starts_with("dirty") && name.contains("x=5, y=7"),
                    "{name}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
    let mut q = psf(1e8);
    q.data_yx[[0, 3]] = f64::NAN;
    assert!(name(deconvolve(&dirty(1e8), &q, &p)).starts_with("psf"));
}

#[test]
fn mfs_inputs() {
    let f = [1.0e8, 1.2e8, 1.4e8];
    let d: Vec<Image> = f.iter().map(|&v| dirty(v)).collect();
    let p: Vec<Image> = f.iter().map(|&v| psf(v)).collect();
    let w = [1.0, 1.0, 1.0];
    let params = |nmoment| CleanParams {
        algorithm: Algorithm::Msmfs,
        nmoment,
        scales: vec![0.0, 3.0],
        ..Default::default()
    };
    let mfs = |d: &[Image], p: &[Image], w: &[f64], r, prm| name(deconvolve_mfs(d, p, w, r, &prm));
    // The baseline works.
    assert!(deconvolve_mfs(&d, &p, &w, None, &params(2)).is_ok());
    for n in [0, 4] {
        assert_eq!(mfs(&d, &p, &w, None, params(n)), "nmoment");
    }
    assert_eq!(mfs(&[], &[], &[], None, params(2)), "dirty");
    assert_eq!(mfs(&d, &p[..2], &w, None, params(2)), "psf");
    assert_eq!(mfs(&d, &p, &w[..2], None, params(2)), "weights");
    assert_eq!(mfs(&d, &p, &[1.0, -1.0, 1.0], None, params(2)), "weights");
    assert_eq!(mfs(&d, &p, &[0.0, 0.0, 0.0], None, params(2)), "weights");
    assert_eq!(
        mfs(&d, &p, &[1.0, f64::NAN, 1.0], None, params(2)),
        "weights"
    );
    assert_eq!(mfs(&d, &p, &w, Some(-1e8), params(2)), "ref_freq_hz");
    assert_eq!(
        mfs(
            &d,
            &p,
            &w,
            None,
            CleanParams {
                niter: 0,
                ..params(2)
            }
        ),
        "niter"
    );
    // A window on another grid, a PSF at another frequency than its dirty image.
    let mut d2 = d.clone();
    d2[1].geom.cell *= 2.0;
    assert_eq!(mfs(&d2, &p, &w, None, params(2)), "dirty[1]");
    let mut p2 = p.clone();
    p2[2] = psf(1.3e8);
    assert_eq!(mfs(&d, &p2, &w, None, params(2)), "psf[2]");
    // Three Taylor terms from two distinct frequencies (one window has zero weight).
    assert_eq!(mfs(&d, &p, &[1.0, 0.0, 1.0], None, params(3)), "nmoment");
    let same: Vec<Image> = (0..3).map(|_| dirty(1e8)).collect();
    let same_p: Vec<Image> = (0..3).map(|_| psf(1e8)).collect();
    assert_eq!(mfs(&same, &same_p, &w, None, params(2)), "nmoment");
    let mut nan = d.clone();
    nan[2].data_yx[[1, 2]] = f64::NAN;
    assert!(mfs(&nan, &p, &w, None, params(2)).starts_with("dirty[2]"));
}

#[test]
fn spectral_index_inputs() {
    let g = geom(1e8);
    let i0 = Image {
        geom: g,
        data_yx: Array2::from_elem((N, N), 0.0),
    };
    let mut i1 = i0.clone();
    i1.data_yx.fill(1.0);
    assert_eq!(
        name(spectral_index(std::slice::from_ref(&i0), 0.0)),
        "model_taylor"
    );
    assert_eq!(
        name(spectral_index(&[i0.clone(), i1.clone()], -1.0)),
        "threshold_jy"
    );
    let mut small = i1.clone();
    small.data_yx = Array2::zeros((4, 4));
    small.geom.npix_x = 4;
    small.geom.npix_y = 4;
    assert_eq!(
        name(spectral_index(&[i0.clone(), small], 0.0)),
        "model_taylor[1]"
    );
    // I0 = 0 everywhere (and tiny where set): blank, never NaN or infinite.
    let mut t0 = i0.clone();
    t0.data_yx[[3, 3]] = 1e-320;
    t0.data_yx[[4, 4]] = 2.0;
    let a = spectral_index(&[t0, i1], 0.0).unwrap();
    assert!(a.data_yx.iter().all(|v| v.is_finite()));
    assert_eq!(a.data_yx[[4, 4]], 0.5);
    assert_eq!(a.data_yx[[3, 3]], 0.0);
    assert_eq!(a.data_yx[[0, 0]], 0.0);
}
