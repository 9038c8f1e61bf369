//! Checks the flux scale and astrometry of the dirty image and the PSF on simulated
//! point sources: an off-centre source on a pixel centre peaks at exactly that pixel
//! with S/n (the exact DFT value there), a source at the phase centre peaks at its flux,
//! and the PSF peaks at exactly 1 at (npix/2, npix/2).

mod common;

use aperture_imaging::coords::RaDec;
use aperture_imaging::gridder::{GridderOptions, Precision, dirty_image, psf_image};
use aperture_imaging::image::ImageGeometry;
use aperture_imaging::sim::{PointSource, SkyModel, low_config, simulate_block};
use aperture_imaging::vis::VisBlock;

use common::{cell_for, exact_adjoint_at, opts};

const NPIX: usize = 128;

/// A LOW-like observation (stations within 300 m, 4 hour angles over ±2 h, 2 channels)
/// of a single source of flux `flux` Jy at `dir`, and the geometry for 3 pixels per
/// synthesised beam around `pc`.
fn observe_one(pc: RaDec, dir: RaDec, flux: f64, alpha: f64) -> (VisBlock, ImageGeometry) {
    let sky = SkyModel {
        sources: vec![PointSource {
            dir,
            flux_jy: flux,
            spectral_index: alpha,
        }],
        ref_freq_hz: 100e6,
    };
    let cfg = low_config(300.0).unwrap();
    let ha = aperture_imaging::sim::hour_angles(4, 4.0).unwrap();
    let freq = [95e6, 105e6];
    let block = simulate_block(&cfg, pc, &ha, &freq, &sky, 0.0, 0).unwrap();
    let cell = cell_for(&block.uvw_r, &block.freq_c, 3.0);
    let geom = ImageGeometry::square(NPIX, cell, pc, 100e6, 10e6).unwrap();
    (block, geom)
}

/// The geometry `observe_one` will produce for phase centre `pc` (the cell depends only
/// on the array, times and channels, not on the sky).
fn geometry(pc: RaDec) -> ImageGeometry {
    observe_one(pc, pc, 1.0, 0.0).1
}

fn pc() -> RaDec {
    RaDec::from_degrees(15.0, -45.0)
}

#[test]
fn off_centre_source_peaks_at_its_pixel_with_flux_over_n() {
    let (x, y) = (20usize, 101usize);
    let geom = geometry(pc());
    let dir = geom.pixel_to_radec(x as f64, y as f64).unwrap();
    let n = dir.to_lmn(pc()).n;
    let flux = 2.5;
    let (block, geom2) = observe_one(pc(), dir, flux, 0.0);
    assert_eq!(geom, geom2);
    let (l, m) = geom.pixel_to_lm(x as f64, y as f64);
    eprintln!(
        "source at pixel ({x}, {y}): l = {l:.4}, m = {m:.4}, n = {n:.6}, cell {:.3e} rad, \
         {} visibilities",
        geom.cell,
        block.n_vis()
    );
    // Exact value at the source pixel: (1/n) Σ w S e^{−iφ} e^{+iφ} / Σ w = S/n.
    let sum_w: f64 = block.weight_rc.sum();
    let exact = exact_adjoint_at(
        &block.uvw_r,
        &block.freq_c,
        &block.vis_rc,
        &block.weight_rc,
        &geom,
        x,
        y,
    ) / sum_w;
    assert!(
        (exact - flux / n).abs() <= 1e-12 * flux,
        "DFT at the source pixel {exact} vs S/n = {}",
        flux / n
    );
    for (eps, precision) in [
        (1e-6, Precision::F64),
        (1e-10, Precision::F64),
        (1e-4, Precision::F32),
    ] {
        let (img, _) = dirty_image(
            &block.uvw_r,
            &block.freq_c,
            block.vis_rc.view(),
            block.weight_rc.view(),
            &geom,
            &opts(eps, precision),
        )
        .unwrap();
        let (peak, px, py) = img.peak();
        let rel = (peak - flux / n).abs() / (flux / n);
        let rel_dft = (peak - exact).abs() / exact.abs();
        eprintln!(
            "{precision:?} eps {eps:.0e}: peak {peak:.12} at ({px}, {py}); S/n = {:.12}, \
             S = {flux}; relative error {rel:.2e} (vs DFT {rel_dft:.2e})",
            flux / n
        );
        assert_eq!((px, py), (x, y), "peak not at the source pixel");
        assert!(
            rel <= eps,
            "{precision:?} eps {eps:e}: peak off S/n by {rel:e}"
        );
        assert!(
            rel_dft <= eps,
            "{precision:?} eps {eps:e}: peak off the DFT by {rel_dft:e}"
        );
        // The check above sees the 1/n: S/n differs from S by far more than epsilon.
        assert!((peak - flux).abs() > 10.0 * eps * flux);
    }
}

#[test]
fn source_at_phase_centre_peaks_at_its_flux() {
    // With a spectral index the peak is the weighted mean flux over the channels
    // (unit weights here): Σ_c S(ν_c) / nchan.
    let flux = 1.7;
    let alpha = -0.7;
    let (block, geom) = observe_one(pc(), pc(), flux, alpha);
    let want: f64 = block
        .freq_c
        .iter()
        .map(|f| flux * (f / 100e6).powf(alpha))
        .sum::<f64>()
        / block.n_chan() as f64;
    for (eps, precision) in [
        (1e-6, Precision::F64),
        (1e-9, Precision::F64),
        (1e-12, Precision::F64),
        (1e-5, Precision::F32),
    ] {
        let (img, _) = dirty_image(
            &block.uvw_r,
            &block.freq_c,
            block.vis_rc.view(),
            block.weight_rc.view(),
            &geom,
            &opts(eps, precision),
        )
        .unwrap();
        let (peak, px, py) = img.peak();
        let rel = (peak - want).abs() / want;
        eprintln!(
            "{precision:?} eps {eps:.0e}: centre peak {peak:.14} at ({px}, {py}), want {want:.14}, relative error {rel:.2e}"
        );
        assert_eq!((px, py), (NPIX / 2, NPIX / 2));
        assert!(rel <= eps, "{precision:?} eps {eps:e}: peak off by {rel:e}");
    }
}

#[test]
fn psf_peaks_at_one_at_the_centre() {
    let (block, geom) = observe_one(pc(), pc(), 1.0, 0.0);
    for (eps, precision) in [
        (1e-3, Precision::F64),
        (1e-6, Precision::F64),
        (1e-12, Precision::F64),
        (1e-5, Precision::F32),
    ] {
        let o: GridderOptions = opts(eps, precision);
        let (psf, _) = psf_image(
            &block.uvw_r,
            &block.freq_c,
            block.weight_rc.view(),
            &geom,
            &o,
        )
        .unwrap();
        let (peak, px, py) = psf.peak();
        eprintln!("{precision:?} eps {eps:.0e}: PSF peak {peak:.14} at ({px}, {py})");
        assert_eq!((px, py), (NPIX / 2, NPIX / 2));
        assert!(
            (peak - 1.0).abs() <= eps,
            "{precision:?} eps {eps:e}: PSF peak {peak}"
        );
    }
}
