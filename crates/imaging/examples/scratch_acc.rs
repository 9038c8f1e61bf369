//! Scratch accuracy check of the gridder against an inline DFT (development aid).
use aperture_imaging::coords::{RaDec, UvwMetres};
use aperture_imaging::gridder::{self, GridderOptions, Precision};
use aperture_imaging::image::ImageGeometry;
use ndarray::Array2;
use num_complex::Complex64;

fn main() {
    let args: Vec<f64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let eps = args.first().copied().unwrap_or(1e-5);
    let prec = if args.get(1).copied().unwrap_or(64.0) == 32.0 {
        Precision::F32
    } else {
        Precision::F64
    };
    let npix = 128usize;
    let fov = 0.4; // radians (wide)
    let cell = fov / npix as f64;
    let geom =
        ImageGeometry::square(npix, cell, RaDec::from_degrees(0.0, -30.0), 1e8, 1e6).unwrap();
    let c = 299_792_458.0;
    let freq = vec![1.0e8, 1.2e8];
    let umax_lambda = 0.45 / cell;
    let bmax = umax_lambda * c / 1.2e8;
    let mut s: u64 = 12345;
    let mut rnd = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let nrow = 300;
    let uvw: Vec<UvwMetres> = (0..nrow)
        .map(|_| {
            UvwMetres::new(
                (2.0 * rnd() - 1.0) * bmax / 1.5,
                (2.0 * rnd() - 1.0) * bmax / 1.5,
                (2.0 * rnd() - 1.0) * bmax / 3.0,
            )
        })
        .collect();
    let vis = Array2::from_shape_fn((nrow, 2), |_| Complex64::new(rnd() - 0.5, rnd() - 0.5));
    let wgt = Array2::from_elem((nrow, 2), 1.0);
    let opts = GridderOptions {
        epsilon: eps,
        precision: prec,
        wstacking: true,
        threads: 1,
    };
    let (img, rep) = gridder::invert(&uvw, &freq, vis.view(), wgt.view(), &geom, &opts).unwrap();
    // DFT
    let mut num = 0.0;
    let mut den = 0.0;
    for y in 0..npix {
        for x in 0..npix {
            let (l, m) = geom.pixel_to_lm(x as f64, y as f64);
            let r2 = l * l + m * m;
            let n = (1.0 - r2).sqrt();
            let nm1 = -r2 / (1.0 + n);
            let mut acc = 0.0;
            for r in 0..nrow {
                for (ch, &f) in freq.iter().enumerate() {
                    let s = f / c;
                    let p = &uvw[r];
                    let ph = std::f64::consts::TAU * (p.u * s * l + p.v * s * m + p.w * s * nm1);
                    let v = vis[(r, ch)];
                    acc += v.re * ph.cos() - v.im * ph.sin();
                }
            }
            let exact = acc / n;
            num += (img[(y, x)] - exact).powi(2);
            den += exact * exact;
        }
    }
    println!(
        "invert eps {eps:e}: rel L2 err {:.3e}  report {:?}",
        (num / den).sqrt(),
        rep
    );
    // predict
    let model = Array2::from_shape_fn((npix, npix), |_| rnd() - 0.5);
    let (pv, rep) = gridder::predict(&uvw, &freq, model.view(), &geom, &opts).unwrap();
    let mut num = 0.0;
    let mut den = 0.0;
    for r in 0..nrow {
        for (ch, &f) in freq.iter().enumerate() {
            let s = f / c;
            let p = &uvw[r];
            let mut acc = Complex64::new(0.0, 0.0);
            for y in 0..npix {
                for x in 0..npix {
                    let (l, m) = geom.pixel_to_lm(x as f64, y as f64);
                    let r2 = l * l + m * m;
                    let n = (1.0 - r2).sqrt();
                    let nm1 = -r2 / (1.0 + n);
                    let ph = -std::f64::consts::TAU * (p.u * s * l + p.v * s * m + p.w * s * nm1);
                    acc += Complex64::from_polar(model[(y, x)] / n, ph);
                }
            }
            num += (pv[(r, ch)] - acc).norm_sqr();
            den += acc.norm_sqr();
        }
    }
    println!(
        "predict eps {eps:e}: rel L2 err {:.3e} planes {}",
        (num / den).sqrt(),
        rep.nplanes
    );
    // adjointness
    let (img2, _) = gridder::invert(&uvw, &freq, vis.view(), wgt.view(), &geom, &opts).unwrap();
    let lhs: f64 = pv
        .iter()
        .zip(vis.iter())
        .map(|(a, b)| (a.conj() * b).re)
        .sum();
    let rhs: f64 = model.iter().zip(img2.iter()).map(|(a, b)| a * b).sum();
    println!(
        "adjoint: {lhs} vs {rhs}: rel {:.3e}",
        (lhs - rhs).abs() / lhs.abs()
    );
}
