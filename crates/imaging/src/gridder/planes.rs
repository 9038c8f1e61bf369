//! Pruned 2-D transforms between one w-plane's uv grid and the image (the FFT part of
//! w-stacking). Only grid rows that hold data are transformed along v, and only the
//! columns the image keeps are transformed along u, in cache-sized blocks of columns
//! gathered into contiguous rows.

use std::sync::Arc;

use num_complex::{Complex, Complex64};
use rayon::prelude::*;
use rustfft::num_traits::Zero;
use rustfft::{Fft, FftDirection, FftPlanner};

use super::layout::Layout;
use super::pass::SharedMut;
use super::real::Real;
use super::screen::Screens;

/// Image columns (y values) transformed together in the u pass.
const BLOCK: usize = 32;

/// Row stride of a column block: `n` plus 8 elements, so that the transposing copies
/// (one element per row, 32 rows) do not map every row to the same cache set, as a
/// power-of-two `n` would (a stride that is a multiple of 4 KiB).
fn padded(n: usize) -> usize {
    n + 8
}

/// FFT plans for one layout.
pub struct PlaneFft<T: Real> {
    inv_u: Arc<dyn Fft<T>>,
    fwd_u: Arc<dyn Fft<T>>,
    inv_v: Arc<dyn Fft<T>>,
    fwd_v: Arc<dyn Fft<T>>,
}

impl<T: Real> std::fmt::Debug for PlaneFft<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaneFft").finish_non_exhaustive()
    }
}

/// Grid column (along v) of image row y.
#[inline(always)]
fn col_of(y: usize, npix_y: usize, nv: usize) -> usize {
    (y + nv - npix_y / 2) % nv
}

impl<T: Real> PlaneFft<T> {
    pub fn new(layout: &Layout) -> Self {
        let mut p = FftPlanner::<T>::new();
        Self {
            inv_u: p.plan_fft(layout.nu, FftDirection::Inverse),
            fwd_u: p.plan_fft(layout.nu, FftDirection::Forward),
            inv_v: p.plan_fft(layout.nv, FftDirection::Inverse),
            fwd_v: p.plan_fft(layout.nv, FftDirection::Forward),
        }
    }

    /// Transforms grid rows `rows` along v, in parallel.
    pub fn rows_v(
        &self,
        layout: &Layout,
        grid: &mut [Complex<T>],
        rows: std::ops::Range<usize>,
        inverse: bool,
    ) {
        let _span = tracing::trace_span!("fft_v", rows = rows.len()).entered();
        let nv = layout.nv;
        let fft = if inverse { &self.inv_v } else { &self.fwd_v };
        let per_task = 8;
        grid[rows.start * nv..rows.end * nv]
            .par_chunks_mut(nv * per_task)
            .for_each_init(
                || vec![Complex::zero(); fft.get_inplace_scratch_len()],
                |scratch, chunk| fft.process_with_scratch(chunk, scratch),
            );
    }

    /// Invert: transforms the kept columns along u (rows `rows` hold data, the rest are
    /// zero) and adds Re(screen · F) into `acc_yx`.
    pub fn columns_to_image(
        &self,
        layout: &Layout,
        grid: &[Complex<T>],
        rows: std::ops::Range<usize>,
        screens: Option<&Screens>,
        acc_yx: &mut [f64],
    ) {
        let _span = tracing::trace_span!("fft_u_screen").entered();
        let (nu, nv, nx, ny) = (layout.nu, layout.nv, layout.npix_x, layout.npix_y);
        let ld = padded(nu);
        let fft = &self.inv_u;
        let qnx = nx / 2 + 1;
        acc_yx.par_chunks_mut(nx * BLOCK).enumerate().for_each_init(
            || {
                (
                    vec![Complex::<T>::zero(); ld * BLOCK],
                    vec![Complex::<T>::zero(); fft.get_inplace_scratch_len()],
                    vec![Complex64::new(1.0, 0.0); if screens.is_some() { qnx } else { 0 }],
                )
            },
            |(buf, scratch, srow), (blk, acc)| {
                let y0 = blk * BLOCK;
                let nb = acc.len() / nx;
                // Rows outside `rows` are zero in the grid; the rest are overwritten below.
                for col in buf.chunks_exact_mut(ld).take(nb) {
                    col[..rows.start]
                        .iter_mut()
                        .for_each(|c| *c = Complex::zero());
                    col[rows.end..nu]
                        .iter_mut()
                        .for_each(|c| *c = Complex::zero());
                }
                let c0 = col_of(y0, ny, nv);
                if c0 + nb <= nv {
                    // The block's grid columns are contiguous: copy a short run per row.
                    for iu in rows.clone() {
                        let g = &grid[iu * nv + c0..][..nb];
                        for (b, &v) in g.iter().enumerate() {
                            buf[b * ld + iu] = v;
                        }
                    }
                } else {
                    let cols: Vec<usize> = (0..nb).map(|b| col_of(y0 + b, ny, nv)).collect();
                    for iu in rows.clone() {
                        let g = &grid[iu * nv..(iu + 1) * nv];
                        for (b, &col) in cols.iter().enumerate() {
                            buf[b * ld + iu] = g[col];
                        }
                    }
                }
                for col in buf.chunks_exact_mut(ld).take(nb) {
                    fft.process_with_scratch(&mut col[..nu], scratch);
                }
                for b in 0..nb {
                    let y = y0 + b;
                    let qy = y.abs_diff(ny / 2);
                    let src = &buf[b * ld..b * ld + nu];
                    let dst = &mut acc[b * nx..(b + 1) * nx];
                    // Image x < nx/2 takes grid row nu − nx/2 + x, the rest x − nx/2.
                    let (dlo, dhi) = dst.split_at_mut(nx / 2);
                    let (slo, shi) = (&src[nu - nx / 2..], &src[..nx - nx / 2]);
                    match screens {
                        Some(s) => {
                            // Screen index |x − nx/2|: nx/2 − x below the centre.
                            s.fill_row(qy, srow);
                            let rev = srow[1..=nx / 2].iter().rev();
                            for ((d, f), sc) in dlo.iter_mut().zip(slo).zip(rev) {
                                *d += f.re.to_f() * sc.re - f.im.to_f() * sc.im;
                            }
                            for ((d, f), sc) in dhi.iter_mut().zip(shi).zip(srow.iter()) {
                                *d += f.re.to_f() * sc.re - f.im.to_f() * sc.im;
                            }
                        }
                        None => {
                            for (d, f) in dlo.iter_mut().zip(slo).chain(dhi.iter_mut().zip(shi)) {
                                *d += f.re.to_f();
                            }
                        }
                    }
                }
            },
        );
    }

    /// Predict: places conj(screen)·image into the kept columns, transforms them along u
    /// and writes rows `rows` of those columns into `grid` (the adjoint of
    /// [`PlaneFft::columns_to_image`]).
    pub fn image_to_columns(
        &self,
        layout: &Layout,
        img_yx: &[f64],
        screens: Option<&Screens>,
        grid: &mut [Complex<T>],
        rows: std::ops::Range<usize>,
    ) {
        let _span = tracing::trace_span!("screen_fft_u").entered();
        let (nu, nv, nx, ny) = (layout.nu, layout.nv, layout.npix_x, layout.npix_y);
        let ld = padded(nu);
        let fft = &self.fwd_u;
        let out = SharedMut(grid.as_mut_ptr());
        let qnx = nx / 2 + 1;
        img_yx.par_chunks(nx * BLOCK).enumerate().for_each_init(
            || {
                (
                    vec![Complex::<T>::zero(); ld * BLOCK],
                    vec![Complex::<T>::zero(); fft.get_inplace_scratch_len()],
                    vec![Complex64::new(1.0, 0.0); if screens.is_some() { qnx } else { 0 }],
                )
            },
            |(buf, scratch, srow), (blk, img)| {
                let y0 = blk * BLOCK;
                let nb = img.len() / nx;
                for b in 0..nb {
                    let qy = (y0 + b).abs_diff(ny / 2);
                    let src = &img[b * nx..(b + 1) * nx];
                    let dst = &mut buf[b * ld..b * ld + nu];
                    // Image x < nx/2 goes to grid row nu − nx/2 + x, the rest to x − nx/2;
                    // the rows in between are zero.
                    let (dlo, dhi) = dst.split_at_mut(nu - nx / 2);
                    let (dlo, dzero) = dlo.split_at_mut(nx - nx / 2);
                    dzero.iter_mut().for_each(|c| *c = Complex::zero());
                    let (slo, shi) = src.split_at(nx / 2);
                    match screens {
                        Some(s) => {
                            s.fill_row(qy, srow);
                            let rev = srow[1..=nx / 2].iter().rev();
                            for ((d, &v), sc) in dhi.iter_mut().zip(slo).zip(rev) {
                                *d = Complex::new(T::from_f(sc.re * v), T::from_f(-sc.im * v));
                            }
                            for ((d, &v), sc) in dlo.iter_mut().zip(shi).zip(srow.iter()) {
                                *d = Complex::new(T::from_f(sc.re * v), T::from_f(-sc.im * v));
                            }
                        }
                        None => {
                            let all = dhi.iter_mut().zip(slo).chain(dlo.iter_mut().zip(shi));
                            for (d, &v) in all {
                                *d = Complex::new(T::from_f(v), T::zero());
                            }
                        }
                    }
                }
                for col in buf.chunks_exact_mut(ld).take(nb) {
                    fft.process_with_scratch(&mut col[..nu], scratch);
                }
                let c0 = col_of(y0, ny, nv);
                if c0 + nb <= nv {
                    // The block's grid columns are contiguous: write a short run per row.
                    for iu in rows.clone() {
                        // SAFETY: as below; the run iu·nv + c0 .. + nb lies inside row iu.
                        let g = unsafe {
                            std::slice::from_raw_parts_mut(out.ptr().add(iu * nv + c0), nb)
                        };
                        for (b, v) in g.iter_mut().enumerate() {
                            *v = buf[b * ld + iu];
                        }
                    }
                    return;
                }
                let cols: Vec<usize> = (0..nb).map(|b| col_of(y0 + b, ny, nv)).collect();
                for iu in rows.clone() {
                    for (b, &col) in cols.iter().enumerate() {
                        // SAFETY: each block owns distinct grid columns (distinct y map
                        // to distinct v columns since npix_y ≤ nv), so tasks never write
                        // the same element; `grid` outlives the parallel loop.
                        unsafe {
                            *out.ptr().add(iu * nv + col) = buf[b * ld + iu];
                        }
                    }
                }
            },
        );
    }

    /// Predict: zeroes the columns the image does not keep in rows `rows`, then
    /// transforms those rows along v (forward).
    pub fn clear_and_rows_v_forward(
        &self,
        layout: &Layout,
        grid: &mut [Complex<T>],
        rows: std::ops::Range<usize>,
    ) {
        let (nv, ny) = (layout.nv, layout.npix_y);
        grid[rows.start * nv..rows.end * nv]
            .par_chunks_mut(nv)
            .for_each(|row| {
                row[ny / 2..nv - ny / 2]
                    .iter_mut()
                    .for_each(|c| *c = Complex::zero())
            });
        self.rows_v(layout, grid, rows, false);
    }
}
