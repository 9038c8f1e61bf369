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

/// Which rows of an image `[y, x]` hold a non-zero pixel: the rows
/// [`PlaneFft::image_to_columns`] transforms.
pub fn live_rows(img_yx: &[f64], nx: usize) -> Vec<bool> {
    img_yx
        .chunks_exact(nx)
        .map(|row| row.iter().any(|&v| v != 0.0))
        .collect()
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

/// A parallel task's buffers: a block of columns, the FFT's scratch and its screen rows.
struct BlockState<T: Real> {
    buf: Vec<Complex<T>>,
    scratch: Vec<Complex<T>>,
    cache: ScreenRows,
}

impl<T: Real> BlockState<T> {
    fn new(ld: usize, scratch: usize, qnx: usize) -> Self {
        Self {
            buf: vec![Complex::zero(); ld * BLOCK],
            scratch: vec![Complex::zero(); scratch],
            cache: ScreenRows {
                rows: Vec::new(),
                filled: Vec::new(),
                q0: 0,
                n: 0,
                qnx,
            },
        }
    }
}

/// Screen rows |Y| = q0 .. q0 + n of the current plane, `[n, qnx]`, each made on its
/// first use (a sparse model's empty rows never need theirs).
struct ScreenRows {
    rows: Vec<Complex64>,
    filled: Vec<bool>,
    q0: usize,
    n: usize,
    qnx: usize,
}

impl ScreenRows {
    /// Holds the rows of a pair of mirrored blocks of `nb` rows, to be made on first
    /// use: the block below the centre has |Y| = q0 + 1 ..= q0 + nb, the one above
    /// q0 .. q0 + nb (|Y| ≤ `half`).
    fn hold_pair(&mut self, q0: usize, nb: usize, half: usize) {
        self.hold(q0, (nb + 1).min(half + 1 - q0));
    }

    fn hold(&mut self, q0: usize, n: usize) {
        self.rows.resize(n * self.qnx, Complex64::default());
        self.filled.clear();
        self.filled.resize(n, false);
        (self.q0, self.n) = (q0, n);
    }

    /// The row |Y| = `qy`: made now unless it is held and made.
    fn row(&mut self, s: &Screens, qy: usize) -> &[Complex64] {
        if !(self.q0..self.q0 + self.n).contains(&qy) {
            self.hold(qy, 1);
        }
        let i = qy - self.q0;
        let row = &mut self.rows[i * self.qnx..][..self.qnx];
        if !self.filled[i] {
            s.fill_row(qy, row);
            self.filled[i] = true;
        }
        row
    }
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
    /// zero) and adds Re(screen · F) into `acc_yx`. With w-screens and an even npix_y,
    /// the blocks of rows are taken in mirrored pairs (Y and −Y have the same screen),
    /// so each screen row is made once per plane, not twice.
    pub fn columns_to_image(
        &self,
        layout: &Layout,
        grid: &[Complex<T>],
        rows: std::ops::Range<usize>,
        screens: Option<&Screens>,
        acc_yx: &mut [f64],
    ) {
        self.columns_to_image_in(layout, grid, rows, screens, acc_yx, true)
    }

    /// [`PlaneFft::columns_to_image`], with the mirrored blocks paired or not.
    fn columns_to_image_in(
        &self,
        layout: &Layout,
        grid: &[Complex<T>],
        rows: std::ops::Range<usize>,
        screens: Option<&Screens>,
        acc_yx: &mut [f64],
        pair: bool,
    ) {
        let _span = tracing::trace_span!("fft_u_screen").entered();
        let (nu, nx, ny) = (layout.nu, layout.npix_x, layout.npix_y);
        let ld = padded(nu);
        let fft = &self.inv_u;
        let init = || BlockState::<T>::new(ld, fft.get_inplace_scratch_len(), nx / 2 + 1);
        let block = |st: &mut BlockState<T>, y0: usize, acc: &mut [f64]| {
            self.columns_block(layout, grid, rows.clone(), screens, st, y0, acc)
        };
        match screens {
            Some(_) if pair && ny % 2 == 0 => {
                let half = ny / 2;
                let (top, bottom) = acc_yx.split_at_mut(half * nx);
                top.par_rchunks_mut(nx * BLOCK)
                    .zip(bottom.par_chunks_mut(nx * BLOCK))
                    .enumerate()
                    .for_each_init(init, |st, (k, (acc_t, acc_b))| {
                        let nb = acc_b.len() / nx;
                        st.cache.hold_pair(k * BLOCK, nb, half);
                        block(st, half - k * BLOCK - nb, acc_t);
                        block(st, half + k * BLOCK, acc_b);
                    });
            }
            _ => acc_yx
                .par_chunks_mut(nx * BLOCK)
                .enumerate()
                .for_each_init(init, |st, (blk, acc)| block(st, blk * BLOCK, acc)),
        }
    }

    /// One block of image rows `y0..` of [`PlaneFft::columns_to_image`].
    #[allow(clippy::too_many_arguments)]
    fn columns_block(
        &self,
        layout: &Layout,
        grid: &[Complex<T>],
        rows: std::ops::Range<usize>,
        screens: Option<&Screens>,
        st: &mut BlockState<T>,
        y0: usize,
        acc: &mut [f64],
    ) {
        let (nu, nv, nx, ny) = (layout.nu, layout.nv, layout.npix_x, layout.npix_y);
        let ld = padded(nu);
        let BlockState {
            buf,
            scratch,
            cache,
        } = st;
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
            self.inv_u.process_with_scratch(&mut col[..nu], scratch);
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
                    let srow = cache.row(s, qy);
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
    }

    /// Predict: places conj(screen)·image into the kept columns, transforms them along u
    /// and writes rows `rows` of those columns into `grid` (the adjoint of
    /// [`PlaneFft::columns_to_image`]), with mirrored blocks paired as there. Image rows
    /// whose `live_y` is false are all zero (a CLEAN model is mostly empty rows): their
    /// columns are written as zeros with no screen row and no transform.
    pub fn image_to_columns(
        &self,
        layout: &Layout,
        img_yx: &[f64],
        live_y: &[bool],
        screens: Option<&Screens>,
        grid: &mut [Complex<T>],
        rows: std::ops::Range<usize>,
    ) {
        self.image_to_columns_in(layout, img_yx, live_y, screens, grid, rows, true)
    }

    /// [`PlaneFft::image_to_columns`], with the mirrored blocks paired or not.
    #[allow(clippy::too_many_arguments)]
    fn image_to_columns_in(
        &self,
        layout: &Layout,
        img_yx: &[f64],
        live_y: &[bool],
        screens: Option<&Screens>,
        grid: &mut [Complex<T>],
        rows: std::ops::Range<usize>,
        pair: bool,
    ) {
        let _span = tracing::trace_span!("screen_fft_u").entered();
        let (nu, nx, ny) = (layout.nu, layout.npix_x, layout.npix_y);
        let ld = padded(nu);
        let fft = &self.fwd_u;
        let out = SharedMut(grid.as_mut_ptr());
        let init = || BlockState::<T>::new(ld, fft.get_inplace_scratch_len(), nx / 2 + 1);
        let block = |st: &mut BlockState<T>, y0: usize, nb: usize| {
            let img = &img_yx[y0 * nx..(y0 + nb) * nx];
            let live = &live_y[y0..y0 + nb];
            self.image_block(layout, img, live, screens, out, rows.clone(), st, y0)
        };
        match screens {
            Some(_) if pair && ny % 2 == 0 => {
                let half = ny / 2;
                (0..half.div_ceil(BLOCK))
                    .into_par_iter()
                    .for_each_init(init, |st, k| {
                        let nb = BLOCK.min(half - k * BLOCK);
                        st.cache.hold_pair(k * BLOCK, nb, half);
                        block(st, half - k * BLOCK - nb, nb);
                        block(st, half + k * BLOCK, nb);
                    });
            }
            _ => (0..ny.div_ceil(BLOCK))
                .into_par_iter()
                .for_each_init(init, |st, blk| {
                    block(st, blk * BLOCK, BLOCK.min(ny - blk * BLOCK))
                }),
        }
    }

    /// One block of image rows `y0..` of [`PlaneFft::image_to_columns`].
    #[allow(clippy::too_many_arguments)]
    fn image_block(
        &self,
        layout: &Layout,
        img: &[f64],
        live: &[bool],
        screens: Option<&Screens>,
        out: SharedMut<Complex<T>>,
        rows: std::ops::Range<usize>,
        st: &mut BlockState<T>,
        y0: usize,
    ) {
        let (nu, nv, nx, ny) = (layout.nu, layout.nv, layout.npix_x, layout.npix_y);
        let ld = padded(nu);
        let BlockState {
            buf,
            scratch,
            cache,
        } = st;
        let nb = img.len() / nx;
        for b in 0..nb {
            let qy = (y0 + b).abs_diff(ny / 2);
            let src = &img[b * nx..(b + 1) * nx];
            let dst = &mut buf[b * ld..b * ld + nu];
            if !live[b] {
                // The transform of an empty row is zero.
                dst.iter_mut().for_each(|c| *c = Complex::zero());
                continue;
            }
            // Image x < nx/2 goes to grid row nu − nx/2 + x, the rest to x − nx/2;
            // the rows in between are zero.
            let (dlo, dhi) = dst.split_at_mut(nu - nx / 2);
            let (dlo, dzero) = dlo.split_at_mut(nx - nx / 2);
            dzero.iter_mut().for_each(|c| *c = Complex::zero());
            let (slo, shi) = src.split_at(nx / 2);
            match screens {
                Some(s) => {
                    let srow = cache.row(s, qy);
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
        for (col, _) in buf.chunks_exact_mut(ld).zip(live).filter(|(_, l)| **l) {
            self.fwd_u.process_with_scratch(&mut col[..nu], scratch);
        }
        let c0 = col_of(y0, ny, nv);
        if c0 + nb <= nv {
            // The block's grid columns are contiguous: write a short run per row.
            for iu in rows.clone() {
                // SAFETY: as below; the run iu·nv + c0 .. + nb lies inside row iu.
                let g = unsafe { std::slice::from_raw_parts_mut(out.ptr().add(iu * nv + c0), nb) };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gridder::params::wide_test_layout;

    /// A wide 200² layout (half the rows, 100, is not a multiple of the block) with
    /// w-stacking.
    fn layout() -> Layout {
        wide_test_layout(200)
    }

    fn same(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    /// Pairing mirrored blocks (each screen row made once) gives the bits of one block
    /// at a time, in both directions.
    #[test]
    fn paired_blocks_equal_single_blocks() {
        let lay = layout();
        assert!(lay.nplanes > 3, "{}", lay.nplanes);
        let fft = PlaneFft::<f64>::new(&lay);
        let mut screens = Screens::new(&lay);
        screens.advance_to(&lay, 3);
        let (nu, nv) = (lay.nu, lay.nv);
        let val = |i: usize| ((i * 7919) % 1013) as f64 / 1013.0 - 0.5;
        let grid: Vec<Complex<f64>> = (0..nu * nv)
            .map(|i| Complex::new(val(i), val(i + 17)))
            .collect();
        let rows = 5..nu - 9;
        let npix = lay.npix_x * lay.npix_y;
        let mut a = vec![0.25; npix];
        let mut b = a.clone();
        fft.columns_to_image_in(&lay, &grid, rows.clone(), Some(&screens), &mut a, true);
        fft.columns_to_image_in(&lay, &grid, rows.clone(), Some(&screens), &mut b, false);
        assert!(same(&a, &b), "invert");
        assert!(a.iter().any(|&v| v != 0.25));
        let img: Vec<f64> = (0..npix).map(val).collect();
        let live = live_rows(&img, lay.npix_x);
        let mut ga = vec![Complex::zero(); nu * nv];
        let mut gb = ga.clone();
        fft.image_to_columns_in(
            &lay,
            &img,
            &live,
            Some(&screens),
            &mut ga,
            rows.clone(),
            true,
        );
        fft.image_to_columns_in(&lay, &img, &live, Some(&screens), &mut gb, rows, false);
        let flat = |g: &[Complex<f64>]| g.iter().flat_map(|c| [c.re, c.im]).collect::<Vec<_>>();
        assert!(same(&flat(&ga), &flat(&gb)), "predict");
        assert!(ga.iter().any(|c| c.norm_sqr() > 0.0));
    }

    /// A model with empty rows (a CLEAN model) gives the grid that transforming every
    /// row gives: the skipped rows' columns are zero, the others have the same bits,
    /// whatever the grid held from the plane before.
    #[test]
    fn empty_rows_skipped_give_the_full_transform() {
        let lay = layout();
        let fft = PlaneFft::<f64>::new(&lay);
        let mut screens = Screens::new(&lay);
        screens.advance_to(&lay, 2);
        let (nu, nv, nx) = (lay.nu, lay.nv, lay.npix_x);
        let npix = nx * lay.npix_y;
        // Components on 5 rows, two of them mirrored about the centre.
        let mut img = vec![0.0; npix];
        for (y, x, v) in [
            (3, 7, 1.5),
            (40, 100, -0.25),
            (100, 3, 2.0),
            (101, 150, 0.5),
        ] {
            img[y * nx + x] = v;
        }
        img[(lay.npix_y - 1) * nx + 11] = 0.75;
        let live = live_rows(&img, nx);
        assert_eq!(live.iter().filter(|&&l| l).count(), 5);
        let all = vec![true; lay.npix_y];
        let rows = 3..nu - 4;
        for pair in [true, false] {
            let stale = |i: usize| Complex::new(i as f64, -1.0);
            let mut sparse: Vec<Complex<f64>> = (0..nu * nv).map(stale).collect();
            let mut dense = sparse.clone();
            fft.image_to_columns_in(
                &lay,
                &img,
                &live,
                Some(&screens),
                &mut sparse,
                rows.clone(),
                pair,
            );
            fft.image_to_columns_in(
                &lay,
                &img,
                &all,
                Some(&screens),
                &mut dense,
                rows.clone(),
                pair,
            );
            // == rather than bits: a transform of zeros may hold −0.0.
            assert!(sparse == dense, "pair {pair}");
            assert!(sparse[rows.start * nv..].iter().any(|c| c.norm_sqr() > 0.0));
        }
    }
}
