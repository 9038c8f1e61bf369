//! Criterion benchmarks of the deconvolution kernels on the SDP benchmark scenario's PSF
//! (LOW within 600 m, 7 times, 8 channels at 100–150 MHz, natural weighting) at 2048²
//! (`APERTURE_BENCH_DECONV_NPIX` changes it): Hogbom and multi-scale CLEAN of 30 point
//! sources and a Gaussian (niter 10 000, gain 0.1, threshold 1 mJy/beam, single
//! thread; Hogbom also on two threads), and MSMFS with two Taylor terms over four windows of two channels each.
//! The same images and settings are compared with radler by `scripts/bench-vs-radler.sh`.

use std::hint::black_box;

use aperture_imaging::deconv::{Algorithm, CleanParams, convolve_psf, deconvolve, deconvolve_mfs};
use aperture_imaging::gridder::{GridderOptions, Precision, psf_image};
use aperture_imaging::image::{Image, ImageGeometry};
use aperture_imaging::sim::Rng;
use aperture_imaging::sim::scenario::Scenario;
use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::{Array2, s};

/// Point sources (x, y, flux at ν₀, α) and the centre of a Gaussian (σ 6 px, 0.02
/// Jy/pixel at ν₀).
struct Sky {
    points: Vec<(usize, usize, f64, f64)>,
    gaussian: (usize, usize),
}

fn sky(n: usize, seed: u64) -> Sky {
    let mut rng = Rng::new(seed);
    let pick = |rng: &mut Rng| n / 4 + rng.below((n / 2) as u64) as usize;
    let g = (pick(&mut rng), pick(&mut rng));
    let pts = (0..30)
        .map(|_| {
            (
                pick(&mut rng),
                pick(&mut rng),
                10f64.powf(rng.uniform_range(-2.0, 0.0)),
                rng.uniform_range(-1.0, 0.5),
            )
        })
        .collect();
    Sky {
        points: pts,
        gaussian: g,
    }
}

/// The sky image at `ratio` = ν/ν₀ (the Gaussian has α = −0.7).
fn model(geom: &ImageGeometry, sky: &Sky, ratio: f64) -> Image {
    let n = geom.npix_x;
    let mut m = Array2::zeros((n, n));
    let (gx, gy) = sky.gaussian;
    for y in gy.saturating_sub(36)..(gy + 37).min(n) {
        for x in gx.saturating_sub(36)..(gx + 37).min(n) {
            let (dx, dy) = (x as f64 - gx as f64, y as f64 - gy as f64);
            m[[y, x]] += 0.02 * ratio.powf(-0.7) * (-(dx * dx + dy * dy) / 72.0).exp();
        }
    }
    for &(x, y, f, a) in &sky.points {
        m[[y, x]] += f * ratio.powf(a);
    }
    Image {
        geom: *geom,
        data_yx: m,
    }
}

fn deconv(c: &mut Criterion) {
    let npix = std::env::var("APERTURE_BENCH_DECONV_NPIX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2048);
    let scenario = Scenario {
        npix,
        ..Default::default()
    };
    let (block, geom) = scenario.build().expect("scenario");
    let opts = GridderOptions {
        epsilon: 1e-6,
        precision: Precision::F64,
        wstacking: true,
        threads: 0,
    };
    let wgt = block.effective_weight_rc();
    let (psf, _) = psf_image(&block.uvw_r, &block.freq_c, wgt.view(), &geom, &opts).expect("psf");
    let sky = sky(npix, 42);
    let dirty = convolve_psf(&model(&geom, &sky, 1.0), &psf).expect("dirty");

    let mut group = c.benchmark_group(format!("deconv/{npix}px"));
    group.sample_size(10);
    let base = CleanParams {
        niter: 10_000,
        gain: 0.1,
        threshold: 1e-3,
        scales: vec![0.0, 3.0, 10.0, 30.0],
        ..Default::default()
    };
    for (name, algorithm) in [
        ("hogbom", Algorithm::Hogbom),
        ("msclean", Algorithm::Msclean),
    ] {
        let p = CleanParams {
            algorithm,
            ..base.clone()
        };
        group.bench_function(name, |b| {
            b.iter(|| deconvolve(black_box(&dirty), &psf, &p).expect("deconvolve"))
        });
    }
    // The same Hogbom on a pool of two threads (FFTs, spectrum products and large patch
    // subtractions split; the same result).
    let p2 = CleanParams {
        threads: 2,
        ..base.clone()
    };
    group.bench_function("hogbom_2threads", |b| {
        b.iter(|| deconvolve(black_box(&dirty), &psf, &p2).expect("deconvolve"))
    });

    // MSMFS: four windows of two channels each.
    let nu0 = geom.freq_hz;
    let mut dirty_w = Vec::new();
    let mut psf_w = Vec::new();
    let mut weights = Vec::new();
    for w in 0..4 {
        let ch = 2 * w..2 * w + 2;
        let freq: Vec<f64> = block.freq_c[ch.clone()].to_vec();
        let f = 0.5 * (freq[0] + freq[1]);
        let g = ImageGeometry { freq_hz: f, ..geom };
        let wv = wgt.slice(s![.., ch]).to_owned();
        let (p, _) = psf_image(&block.uvw_r, &freq, wv.view(), &g, &opts).expect("window psf");
        dirty_w.push(convolve_psf(&model(&g, &sky, f / nu0), &p).expect("window dirty"));
        psf_w.push(p);
        weights.push(wv.sum());
    }
    let p = CleanParams {
        algorithm: Algorithm::Msmfs,
        nmoment: 2,
        ..base
    };
    group.bench_function("msmfs_nmoment2_4windows", |b| {
        b.iter(|| {
            deconvolve_mfs(black_box(&dirty_w), &psf_w, &weights, Some(nu0), &p).expect("mfs")
        })
    });
    group.finish();
}

criterion_group!(benches, deconv);
criterion_main!(benches);
