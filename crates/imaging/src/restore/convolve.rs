//! Restoration: the CLEAN model (Jy/pixel) convolved with the peak-1 restoring beam plus
//! the residual (Högbom 1974; Thompson, Moran & Swenson 2017 §11.1), so a point of S
//! Jy/pixel on a pixel becomes a beam of peak S Jy/beam.
//!
//! The convolution is a linear (not circular) one with the beam sampled on the grid and
//! truncated below 1e-18 of its peak. It is done directly over the non-zero model pixels
//! when the model is sparse (a Högbom model), else by FFT on a grid padded by the
//! kernel's half-width, whichever costs fewer operations; both are exact to rounding.

use ndarray::{Array2, Zip};
use num_complex::Complex64;
use rayon::prelude::*;
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

use crate::ImagingError;
use crate::image::Image;
use crate::sim::good_fft_size;

use super::beam::{Beam, Quadratic, beam_kernel};

/// Relative tolerance on the cell and phase centre of images that must share a grid.
const GRID_TOL: f64 = 1e-9;

/// How the model is convolved with the beam.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    /// Adds a beam patch per non-zero model pixel.
    Direct,
    /// Multiplies spectra on a padded grid.
    Fft,
}

/// Restored image = `model` ⊛ beam + `residual`, Jy/beam, on the residual's grid.
///
/// `model` is in Jy/pixel and `residual` in Jy/beam; both must have the same shape, cell
/// and phase centre, and finite pixels. A point of S Jy/pixel on a pixel gives a peak of
/// S Jy/beam, and the restored image's sum over the beam area in pixels
/// ([`Beam::area_pixels`]) is the model's flux in Jy.
pub fn restore(model: &Image, residual: &Image, beam: &Beam) -> Result<Image, ImagingError> {
    beam.validate()?;
    check_image("model", model)?;
    check_image("residual", residual)?;
    check_same_grid("residual", residual, "model", model)?;
    let q = beam.pixel_quadratic(model.geom.cell);
    let mut data_yx = residual.data_yx.clone();
    convolve_add(&model.data_yx, &q, None, &mut data_yx);
    Ok(Image {
        geom: residual.geom,
        data_yx,
    })
}

/// Restores each Taylor term: term t = `model_taylor[t]` ⊛ beam + `residual_taylor[t]`
/// (Rau & Cornwell 2011 §2.4), all with the same beam (the MFS beam of term 0's PSF).
pub fn restore_taylor(
    model_taylor: &[Image],
    residual_taylor: &[Image],
    beam: &Beam,
) -> Result<Vec<Image>, ImagingError> {
    if model_taylor.is_empty() {
        return Err(ImagingError::invalid(
            "model_taylor",
            "no Taylor terms to restore",
        ));
    }
    if model_taylor.len() != residual_taylor.len() {
        return Err(ImagingError::ShapeMismatch {
            name: "residual_taylor".into(),
            expected: format!("{} Taylor terms (as the model)", model_taylor.len()),
            got: format!("{}", residual_taylor.len()),
        });
    }
    for (t, m) in model_taylor.iter().enumerate().skip(1) {
        check_same_grid(
            &format!("model_taylor[{t}]"),
            m,
            "model_taylor[0]",
            &model_taylor[0],
        )?;
    }
    model_taylor
        .iter()
        .zip(residual_taylor)
        .map(|(m, r)| restore(m, r, beam))
        .collect()
}

/// Data shape agrees with the geometry and every pixel is finite.
fn check_image(name: &str, img: &Image) -> Result<(), ImagingError> {
    let (ny, nx) = img.data_yx.dim();
    if (ny, nx) != (img.geom.npix_y, img.geom.npix_x) {
        return Err(ImagingError::ShapeMismatch {
            name: name.into(),
            expected: format!("{} x {} (geometry)", img.geom.npix_x, img.geom.npix_y),
            got: format!("{nx} x {ny}"),
        });
    }
    if let Some(index) = img.data_yx.iter().position(|v| !v.is_finite()) {
        return Err(ImagingError::NonFinite {
            name: name.into(),
            index,
        });
    }
    Ok(())
}

/// Errors unless `img` (named `name`) has the shape, cell and phase centre of
/// `reference` (named `ref_name`).
pub(crate) fn check_same_grid(
    name: &str,
    img: &Image,
    ref_name: &str,
    reference: &Image,
) -> Result<(), ImagingError> {
    let (g, r) = (&img.geom, &reference.geom);
    if (g.npix_x, g.npix_y) != (r.npix_x, r.npix_y) || img.data_yx.dim() != reference.data_yx.dim()
    {
        return Err(ImagingError::ShapeMismatch {
            name: name.into(),
            expected: format!("{} x {} pixels (as {ref_name})", r.npix_x, r.npix_y),
            got: format!("{} x {}", g.npix_x, g.npix_y),
        });
    }
    if (g.cell - r.cell).abs() > GRID_TOL * r.cell {
        return Err(ImagingError::ShapeMismatch {
            name: format!("{name} cell"),
            expected: format!("{:e} rad (as {ref_name})", r.cell),
            got: format!("{:e} rad", g.cell),
        });
    }
    let d_ra = (g.phase_centre.ra - r.phase_centre.ra).abs();
    let d_ra = d_ra.min(std::f64::consts::TAU - d_ra) * r.phase_centre.dec.cos();
    let d_dec = (g.phase_centre.dec - r.phase_centre.dec).abs();
    // A tolerance of a billionth of a pixel.
    if d_ra.hypot(d_dec) > GRID_TOL * r.cell {
        return Err(ImagingError::ShapeMismatch {
            name: format!("{name} phase centre"),
            expected: format!(
                "RA {:.9} deg, Dec {:.9} deg (as {ref_name})",
                r.phase_centre.ra.to_degrees(),
                r.phase_centre.dec.to_degrees()
            ),
            got: format!(
                "RA {:.9} deg, Dec {:.9} deg",
                g.phase_centre.ra.to_degrees(),
                g.phase_centre.dec.to_degrees()
            ),
        });
    }
    Ok(())
}

/// Adds `data_yx` ⊛ the Gaussian `q` (linear convolution, output on the input's grid)
/// to `out`, by `method` or the cheaper one.
pub(crate) fn convolve_add(
    data_yx: &Array2<f64>,
    q: &Quadratic,
    method: Option<Method>,
    out: &mut Array2<f64>,
) {
    let (ny, nx) = data_yx.dim();
    // No two pixels are further apart than n − 1.
    let kernel = beam_kernel(q, nx.saturating_sub(1), ny.saturating_sub(1));
    let (ky, kx) = kernel.dim();
    let (ry, rx) = (ky / 2, kx / 2);
    let (mx, my) = (good_fft_size(nx + rx), good_fft_size(ny + ry));
    let method = method.unwrap_or_else(|| {
        let nnz = data_yx.iter().filter(|v| **v != 0.0).count() as f64;
        let direct = nnz * (kx * ky) as f64;
        // Three 2-D complex transforms (≈ 5 N log₂N flops each, kernel and inverse
        // included) against 2 flops per multiply-add of the direct sum.
        let n = (mx * my) as f64;
        let fft = 3.0 * 2.5 * n * n.log2();
        if direct <= fft {
            Method::Direct
        } else {
            Method::Fft
        }
    });
    tracing::debug!(?method, kx, ky, mx, my, "restoring-beam convolution");
    match method {
        Method::Direct => direct(data_yx, &kernel, out),
        Method::Fft => fft_convolve(data_yx, &kernel, mx, my, out),
    }
}

/// Adds `value` × kernel around every non-zero pixel.
fn direct(data_yx: &Array2<f64>, kernel: &Array2<f64>, out: &mut Array2<f64>) {
    let (ny, nx) = data_yx.dim();
    let (ky, kx) = kernel.dim();
    let (ry, rx) = ((ky / 2) as isize, (kx / 2) as isize);
    for ((y0, x0), &s) in data_yx.indexed_iter() {
        if s == 0.0 {
            continue;
        }
        // Output columns x0 − rx … x0 + rx clipped to the image.
        let xa = (x0 as isize - rx).max(0) as usize;
        let xb = ((x0 as isize + rx) as usize).min(nx - 1);
        let ka = (xa as isize - (x0 as isize - rx)) as usize;
        for y in (y0 as isize - ry).max(0) as usize..=((y0 as isize + ry) as usize).min(ny - 1) {
            let krow = kernel.row((y as isize - (y0 as isize - ry)) as usize);
            let mut orow = out.row_mut(y);
            for (o, k) in orow
                .slice_mut(ndarray::s![xa..=xb])
                .iter_mut()
                .zip(krow.slice(ndarray::s![ka..ka + (xb - xa + 1)]))
            {
                *o += s * k;
            }
        }
    }
}

/// Adds the circular convolution on an `mx` × `my` grid (≥ image + kernel half-width, so no
/// wrap-around reaches the image), the kernel's centre at the origin.
fn fft_convolve(
    data_yx: &Array2<f64>,
    kernel: &Array2<f64>,
    mx: usize,
    my: usize,
    out: &mut Array2<f64>,
) {
    let ny = data_yx.nrows();
    let (ky, kx) = kernel.dim();
    let (ry, rx) = (ky / 2, kx / 2);
    let mut planner = FftPlanner::<f64>::new();
    let plans = Plans {
        fwd_x: planner.plan_fft_forward(mx),
        inv_x: planner.plan_fft_inverse(mx),
        fwd_y: planner.plan_fft_forward(my),
        inv_y: planner.plan_fft_inverse(my),
    };
    let zero = Complex64::new(0.0, 0.0);

    // The kernel's spectrum; the kernel is real and even, so the spectrum is real.
    let mut k = vec![zero; mx * my];
    for ((y, x), &v) in kernel.indexed_iter() {
        let yy = (y + my - ry) % my;
        let xx = (x + mx - rx) % mx;
        k[yy * mx + xx] = Complex64::new(v, 0.0);
    }
    let kernel_rows: Vec<usize> = (0..=ry).chain(my - ry..my).collect();
    let k_t = forward_2d(&plans, k, mx, my, &kernel_rows);
    let scale = 1.0 / (mx * my) as f64;
    let spectrum: Vec<f64> = k_t.iter().map(|c| c.re * scale).collect();
    drop(k_t);

    // The model's spectrum (rows ny.. are zero), times the kernel's.
    let mut m = vec![zero; mx * my];
    for (y, row) in data_yx.outer_iter().enumerate() {
        for (x, &v) in row.iter().enumerate() {
            m[y * mx + x] = Complex64::new(v, 0.0);
        }
    }
    let rows: Vec<usize> = (0..ny).collect();
    let mut m_t = forward_2d(&plans, m, mx, my, &rows);
    m_t.par_iter_mut()
        .zip(spectrum.par_iter())
        .for_each(|(c, s)| *c *= *s);

    // Back: along y on the transposed grid, then along x for the image rows only.
    rows_fft(&plans.inv_y, &mut m_t, my);
    let mut back = transpose(&m_t, mx, my);
    drop(m_t);
    rows_fft(&plans.inv_x, &mut back[..ny * mx], mx);
    Zip::indexed(out).par_for_each(|(y, x), o| *o += back[y * mx + x].re);
}

struct Plans {
    fwd_x: Arc<dyn Fft<f64>>,
    inv_x: Arc<dyn Fft<f64>>,
    fwd_y: Arc<dyn Fft<f64>>,
    inv_y: Arc<dyn Fft<f64>>,
}

/// 2-D forward transform of the row-major `my` × `mx` grid `g` whose non-zero rows are
/// `rows`; returns the spectrum transposed (`mx` rows of length `my`).
fn forward_2d(
    plans: &Plans,
    mut g: Vec<Complex64>,
    mx: usize,
    my: usize,
    rows: &[usize],
) -> Vec<Complex64> {
    // Only the non-zero rows need a transform along x.
    let mut chunks: Vec<&mut [Complex64]> = g.chunks_mut(mx).collect();
    let mut selected: Vec<&mut [Complex64]> = Vec::with_capacity(rows.len());
    let mut want = vec![false; my];
    for &r in rows {
        want[r] = true;
    }
    for (i, c) in chunks.drain(..).enumerate() {
        if want[i] {
            selected.push(c);
        }
    }
    let fft = &plans.fwd_x;
    selected.into_par_iter().for_each_init(
        || vec![Complex64::new(0.0, 0.0); fft.get_inplace_scratch_len()],
        |scratch, row| fft.process_with_scratch(row, scratch),
    );
    let mut t = transpose(&g, my, mx);
    drop(g);
    rows_fft(&plans.fwd_y, &mut t, my);
    t
}

/// Transforms each length-`n` row of `g` in place, in parallel.
fn rows_fft(fft: &Arc<dyn Fft<f64>>, g: &mut [Complex64], n: usize) {
    g.par_chunks_mut(n * 8).for_each_init(
        || vec![Complex64::new(0.0, 0.0); fft.get_inplace_scratch_len()],
        |scratch, chunk| fft.process_with_scratch(chunk, scratch),
    );
}

/// The transpose of a row-major `rows` × `cols` matrix, in cache blocks.
fn transpose(src: &[Complex64], rows: usize, cols: usize) -> Vec<Complex64> {
    const B: usize = 32;
    let mut dst = vec![Complex64::new(0.0, 0.0); rows * cols];
    dst.par_chunks_mut(rows * B)
        .enumerate()
        .for_each(|(cb, block)| {
            // block holds destination rows c0..c0+B (source columns).
            let c0 = cb * B;
            let nc = block.len() / rows;
            for r0 in (0..rows).step_by(B) {
                for r in r0..(r0 + B).min(rows) {
                    let srow = &src[r * cols + c0..r * cols + c0 + nc];
                    for (dc, v) in srow.iter().enumerate() {
                        block[dc * rows + r] = *v;
                    }
                }
            }
        });
    dst
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute-force linear convolution with the untruncated Gaussian.
    fn brute(data: &Array2<f64>, q: &Quadratic) -> Array2<f64> {
        let (ny, nx) = data.dim();
        Array2::from_shape_fn((ny, nx), |(y, x)| {
            let mut s = 0.0;
            for ((y0, x0), &v) in data.indexed_iter() {
                if v != 0.0 {
                    s += v * q.gaussian(x as f64 - x0 as f64, y as f64 - y0 as f64);
                }
            }
            s
        })
    }

    #[test]
    fn direct_and_fft_agree_with_brute_force() {
        let cell = 1.0;
        let beams = [
            Beam::new(5.0, 3.0, 30f64.to_radians()).unwrap(),
            Beam::new(2.5, 2.5, 0.0).unwrap(),
            // A beam wider than the image: the kernel is capped at the image size.
            Beam::new(40.0, 9.0, -70f64.to_radians()).unwrap(),
        ];
        for (nx, ny) in [(24, 20), (17, 31)] {
            let mut rng = crate::sim::Rng::new(3);
            let data = Array2::from_shape_fn((ny, nx), |_| {
                if rng.uniform() < 0.3 {
                    rng.normal()
                } else {
                    0.0
                }
            });
            for b in &beams {
                let q = b.pixel_quadratic(cell);
                let want = brute(&data, &q);
                let peak = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                for method in [Method::Direct, Method::Fft] {
                    let mut got = Array2::zeros(data.dim());
                    convolve_add(&data, &q, Some(method), &mut got);
                    let err = (&got - &want).iter().fold(0.0f64, |m, v| m.max(v.abs()));
                    assert!(err < 1e-12 * peak, "{method:?} {nx}x{ny} {b:?}: {err}");
                }
            }
        }
    }

    #[test]
    fn transpose_is_a_transpose() {
        let (r, c) = (37, 70);
        let src: Vec<Complex64> = (0..r * c).map(|i| Complex64::new(i as f64, 0.0)).collect();
        let t = transpose(&src, r, c);
        for i in 0..r {
            for j in 0..c {
                assert_eq!(t[j * r + i], src[i * c + j]);
            }
        }
    }
}
