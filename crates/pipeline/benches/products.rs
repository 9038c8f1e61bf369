//! Product encoding benchmark: the restore task's FITS (BITPIX −32, full WCS) and PNG
//! quick-look of one image, in memory, at 512² and 2048².

use aperture_imaging::coords::RaDec;
use aperture_imaging::image::{Image, ImageGeometry};
use aperture_pipeline::formats::fits::{FitsWriteOptions, encode_fits_image};
use aperture_pipeline::formats::png::encode_png_quicklook;
use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;

/// A noise-like field with a few bright points: what a restored image looks like to
/// the encoders (the percentile stretch and the deflate stream both depend on it).
fn image(npix: usize) -> Image {
    let geom = ImageGeometry::square(
        npix,
        (10.0_f64 / 3600.0).to_radians(),
        RaDec::from_degrees(15.0, -45.0),
        1.4e8,
        5e7,
    )
    .expect("geometry");
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut data_yx = Array2::from_shape_fn((npix, npix), |_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 * 1e-3
    });
    for k in 1..8 {
        data_yx[[k * npix / 9, (k * 7 * npix / 9) % npix]] = k as f64;
    }
    Image { geom, data_yx }
}

fn bench(c: &mut Criterion) {
    for npix in [512, 2048] {
        let img = image(npix);
        let opts = FitsWriteOptions {
            bunit: "JY/BEAM".into(),
            ..Default::default()
        };
        c.bench_function(&format!("encode_fits_{npix}"), |b| {
            b.iter(|| encode_fits_image(&img, &opts).expect("fits"))
        });
        c.bench_function(&format!("encode_png_{npix}"), |b| {
            b.iter(|| encode_png_quicklook(&img, "products/bench.png").expect("png"))
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
