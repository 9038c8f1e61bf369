//! Criterion benchmarks of restoration: the beam fit on a 512² PSF, and restoring a
//! 2048² image from a sparse Högbom-like model (1000 components, direct convolution) and
//! from a dense model (every pixel non-zero, FFT convolution).

use std::hint::black_box;

use aperture_imaging::coords::RaDec;
use aperture_imaging::image::{Image, ImageGeometry};
use aperture_imaging::restore::{Beam, beam_image, fit_psf_beam, restore};
use aperture_imaging::sim::Rng;
use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;

fn restore_bench(c: &mut Criterion) {
    let cell = (2.0f64 / 3600.0).to_radians();
    let geom = |n| {
        ImageGeometry::square(n, cell, RaDec::from_degrees(15.0, -45.0), 1e8, 1e6)
            .expect("geometry")
    };
    let beam = Beam::new(5.0 * cell, 3.0 * cell, 30f64.to_radians()).expect("beam");

    let mut group = c.benchmark_group("restore");
    group.sample_size(10);

    let psf = beam_image(&beam, &geom(512));
    group.bench_function("fit_psf_beam/512px", |b| {
        b.iter(|| fit_psf_beam(black_box(&psf)).expect("fit"))
    });

    let g = geom(2048);
    let mut rng = Rng::new(1);
    let residual = Image {
        geom: g,
        data_yx: Array2::from_shape_fn((2048, 2048), |_| 1e-3 * rng.normal()),
    };
    let mut sparse = Image::zeros(g);
    for _ in 0..1000 {
        let (x, y) = (rng.below(2048) as usize, rng.below(2048) as usize);
        sparse.data_yx[[y, x]] += rng.uniform_range(0.01, 1.0);
    }
    let dense = Image {
        geom: g,
        data_yx: Array2::from_shape_fn((2048, 2048), |_| rng.uniform()),
    };
    group.bench_function("restore/2048px/1000-components", |b| {
        b.iter(|| restore(black_box(&sparse), &residual, &beam).expect("restore"))
    });
    group.bench_function("restore/2048px/dense", |b| {
        b.iter(|| restore(black_box(&dense), &residual, &beam).expect("restore"))
    });
    group.finish();
}

criterion_group!(benches, restore_bench);
criterion_main!(benches);
