//! Criterion benchmarks of the gridder: `invert` and `predict` on a reduced SDP benchmark
//! scenario (256² image, LOW stations within 300 m, 3 times, 8 channels), single thread,
//! f64 at epsilon 1e-5 and f32 at 1e-4; plus the exact DFT on a tiny case for reference.

use std::hint::black_box;

use aperture_imaging::coords::{RaDec, UvwMetres};
use aperture_imaging::gridder::{GridderOptions, Precision, invert, predict};
use aperture_imaging::image::{Image, ImageGeometry};
use aperture_imaging::sim::scenario::Scenario;
use aperture_imaging::sim::{Rng, invert_image, predict_image};
use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;
use num_complex::Complex64;

fn gridder(c: &mut Criterion) {
    let scenario = Scenario {
        npix: 256,
        ntimes: 3,
        rmax: 300.0,
        ..Default::default()
    };
    let (block, geom) = scenario.build().expect("scenario");
    // Predict models: a few bright pixels (a CLEAN model: the predict skips the screens
    // and u transforms of its empty rows) and a dense one (every row live).
    let mut model = Array2::<f64>::zeros((geom.npix_y, geom.npix_x));
    for (k, (x, y)) in [(128, 128), (40, 200), (230, 17), (90, 91)]
        .into_iter()
        .enumerate()
    {
        model[[y, x]] = 1.0 + k as f64;
    }
    let mut rng = Rng::new(7);
    let dense = Array2::from_shape_fn((geom.npix_y, geom.npix_x), |_| rng.uniform() - 0.5);
    let mut group = c.benchmark_group(format!("gridder/{}px/{}vis", geom.npix_x, block.n_vis()));
    group.sample_size(10);
    for (label, precision, epsilon) in [
        ("f64_1e-5", Precision::F64, 1e-5),
        ("f32_1e-4", Precision::F32, 1e-4),
    ] {
        let opts = GridderOptions {
            epsilon,
            precision,
            wstacking: true,
            threads: 1,
        };
        group.bench_function(format!("invert/{label}"), |b| {
            b.iter(|| {
                invert(
                    black_box(&block.uvw_r),
                    &block.freq_c,
                    block.vis_rc.view(),
                    block.weight_rc.view(),
                    &geom,
                    &opts,
                )
                .expect("invert")
            })
        });
        for (kind, m) in [("sparse", &model), ("dense", &dense)] {
            group.bench_function(format!("predict_{kind}/{label}"), |b| {
                b.iter(|| {
                    predict(
                        black_box(&block.uvw_r),
                        &block.freq_c,
                        m.view(),
                        &geom,
                        &opts,
                    )
                    .expect("predict")
                })
            });
        }
    }
    group.finish();
}

/// The exact DFT (the accuracy oracle) on a tiny case: 32² image, 200 rows × 2 channels.
fn dft(c: &mut Criterion) {
    let geom = ImageGeometry::square(32, 0.01, RaDec::from_degrees(15.0, -45.0), 1e8, 1e6)
        .expect("geometry");
    let mut rng = Rng::new(1);
    let uvw: Vec<UvwMetres> = (0..200)
        .map(|_| {
            UvwMetres::new(
                100.0 * rng.normal(),
                100.0 * rng.normal(),
                30.0 * rng.normal(),
            )
        })
        .collect();
    let freq = [1.0e8, 1.1e8];
    let vis = Array2::from_shape_fn((200, 2), |_| Complex64::new(rng.normal(), rng.normal()));
    let wgt = Array2::<f64>::ones((200, 2));
    let model = Image {
        geom,
        data_yx: Array2::from_shape_fn((32, 32), |_| rng.normal()),
    };
    let mut group = c.benchmark_group("dft/32px/400vis");
    group.sample_size(10);
    group.bench_function("invert_image", |b| {
        b.iter(|| invert_image(black_box(&uvw), &freq, &vis, &wgt, &geom).expect("dft invert"))
    });
    group.bench_function("predict_image", |b| {
        b.iter(|| predict_image(black_box(&uvw), &freq, &model).expect("dft predict"))
    });
    group.finish();
}

criterion_group!(benches, gridder, dft);
criterion_main!(benches);
