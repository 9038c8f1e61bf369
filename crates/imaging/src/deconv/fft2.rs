//! Real 2-D FFTs on a zero-padded grid (rustfft), for exact linear convolutions of
//! image-sized arrays with a PSF or a scale kernel.
//!
//! A real `ny × nx` array sits in the corner of a `py × px` grid; kernels are placed with
//! their centre at grid origin (wrapped), so the circular convolution on the grid equals
//! the linear one on the image as long as the grid is larger than image + kernel extent.
//! Spectra are half spectra (`kx` in `0..=px/2`, all `ky`), row-major `[ky][kx]`. Two
//! real rows share one complex FFT (z = a + i b), and rows that are zero are skipped.

use std::sync::Arc;

use num_complex::{Complex32, Complex64};
use rayon::prelude::*;
use rustfft::num_traits::Zero;
use rustfft::{Fft, FftPlanner};

/// Columns transformed together (gathered into contiguous buffers).
const BLOCK: usize = 32;

/// Distance between gathered columns: py plus 4 values (64 bytes), so that the BLOCK
/// values of one spectrum row land in different cache sets (with a stride of py they
/// map to one set whenever 16·py is a multiple of 4096, e.g. py = 768).
fn col_stride(py: usize) -> usize {
    py + 4
}

/// Plans and sizes of one padded grid.
pub(crate) struct Grid {
    /// Image (data) size.
    pub nx: usize,
    pub ny: usize,
    /// Grid size, both even.
    pub px: usize,
    pub py: usize,
    /// Half-spectrum width, px/2 + 1.
    pub h: usize,
    /// Row pairs and column blocks are transformed in parallel (on the current rayon
    /// pool) when this is above 1; every row and column is transformed by the same code
    /// either way, so the result does not depend on it.
    threads: usize,
    row_fwd: Arc<dyn Fft<f64>>,
    row_inv: Arc<dyn Fft<f64>>,
    col_fwd: Arc<dyn Fft<f64>>,
    col_inv: Arc<dyn Fft<f64>>,
}

impl std::fmt::Debug for Grid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grid")
            .field("nx", &self.nx)
            .field("ny", &self.ny)
            .field("px", &self.px)
            .field("py", &self.py)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

/// One thread's buffers for row transforms: two real rows, their complex packing and the
/// FFT scratch.
struct RowWork {
    a: Vec<f64>,
    b: Vec<f64>,
    z: Vec<Complex64>,
    scratch: Vec<Complex64>,
    /// `a`/`b` hold non-zero values from the last pair.
    a_dirty: bool,
    b_dirty: bool,
}

impl RowWork {
    fn new(px: usize, fft: &dyn Fft<f64>) -> Self {
        Self {
            a: vec![0.0; px],
            b: vec![0.0; px],
            z: vec![Complex64::zero(); px],
            scratch: vec![Complex64::zero(); fft.get_inplace_scratch_len()],
            a_dirty: false,
            b_dirty: false,
        }
    }
}

/// The half spectrum shared by the column-block tasks, each of which reads and writes
/// only its own columns.
#[derive(Clone, Copy)]
struct SpecPtr(*mut Complex64);

// SAFETY: the pointer is only dereferenced by `Grid::column_block`, whose callers give
// every task a distinct column range, so no element is accessed by two threads; the
// spectrum outlives the tasks (they finish inside the `&mut` borrow that made it).
unsafe impl Send for SpecPtr {}
unsafe impl Sync for SpecPtr {}

impl Grid {
    /// A grid of `px × py` (both even, at least the image size) for `nx × ny` images,
    /// transformed on the calling thread.
    pub fn new(nx: usize, ny: usize, px: usize, py: usize) -> Self {
        debug_assert!(px >= nx && py >= ny && px.is_multiple_of(2) && py.is_multiple_of(2));
        let mut p = FftPlanner::<f64>::new();
        Self {
            nx,
            ny,
            px,
            py,
            h: px / 2 + 1,
            threads: 1,
            row_fwd: p.plan_fft_forward(px),
            row_inv: p.plan_fft_inverse(px),
            col_fwd: p.plan_fft_forward(py),
            col_inv: p.plan_fft_inverse(py),
        }
    }

    /// The same grid transformed in parallel on the current rayon pool when `threads` > 1
    /// (call its transforms inside a pool of that many threads).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// Number of complex values in a half spectrum.
    pub fn spectrum_len(&self) -> usize {
        self.py * self.h
    }

    /// A zeroed half spectrum.
    pub fn new_spectrum(&self) -> Vec<Complex64> {
        vec![Complex64::zero(); self.spectrum_len()]
    }

    /// Forward transform into `spec` of the real grid whose row `gy` is written by
    /// `fill(gy, row)` into a zeroed row of length `px`; `fill` returns false when it left
    /// the row zero.
    pub fn forward(&self, spec: &mut [Complex64], fill: impl Fn(usize, &mut [f64]) -> bool + Sync) {
        let h = self.h;
        // Whether each pair of grid rows holds data: only those rows are gathered for the
        // column transforms.
        let mut used = vec![false; self.py / 2];
        let work = || RowWork::new(self.px, &*self.row_fwd);
        if self.threads > 1 {
            spec.par_chunks_mut(2 * h)
                .zip(used.par_iter_mut())
                .enumerate()
                .for_each_init(work, |w, (i, (pair, u))| {
                    *u = self.forward_pair(2 * i, pair, w, &fill);
                });
        } else {
            let mut w = work();
            for (i, (pair, u)) in spec.chunks_mut(2 * h).zip(used.iter_mut()).enumerate() {
                *u = self.forward_pair(2 * i, pair, &mut w, &fill);
            }
        }
        let rows: Vec<usize> = (0..self.py).filter(|&gy| used[gy / 2]).collect();
        self.columns(spec, false, Some(&rows), self.py);
    }

    /// The half-spectrum rows `gy` and `gy + 1` (`pair`, 2h values) of the grid rows
    /// `fill` writes; false when both are zero.
    fn forward_pair(
        &self,
        gy: usize,
        pair: &mut [Complex64],
        w: &mut RowWork,
        fill: &impl Fn(usize, &mut [f64]) -> bool,
    ) -> bool {
        let (px, h) = (self.px, self.h);
        if w.a_dirty {
            w.a.fill(0.0);
        }
        if w.b_dirty {
            w.b.fill(0.0);
        }
        w.a_dirty = fill(gy, &mut w.a);
        w.b_dirty = fill(gy + 1, &mut w.b);
        let (ra, rb) = pair.split_at_mut(h);
        if !w.a_dirty && !w.b_dirty {
            ra.fill(Complex64::zero());
            rb.fill(Complex64::zero());
            return false;
        }
        for ((zx, &ax), &bx) in w.z.iter_mut().zip(&w.a).zip(&w.b) {
            *zx = Complex64::new(ax, bx);
        }
        self.row_fwd.process_with_scratch(&mut w.z, &mut w.scratch);
        // Split the spectra of the two real rows: A = (Z_k + Z*_{-k})/2,
        // B = (Z_k − Z*_{-k})/(2i).
        let z = &w.z;
        for k in 0..h {
            let zk = z[k];
            let zc = z[(px - k) % px].conj();
            ra[k] = (zk + zc) * 0.5;
            let d = zk - zc;
            rb[k] = Complex64::new(d.im * 0.5, -d.re * 0.5);
        }
        true
    }

    /// Inverse transform of `spec` (destroyed) into the `ny × nx` image `out`, each value
    /// multiplied by `scale` (pass 1/(px·py) for the normalised inverse).
    pub fn inverse(&self, spec: &mut [Complex64], out: &mut [f64], scale: f64) {
        self.inverse_with(spec, out, |o, v| *o = v * scale);
    }

    /// Inverse transform of `spec` (destroyed), handing every image value v to
    /// `put(&mut out[y·nx + x], v)` (the unnormalised transform: scale v there).
    pub fn inverse_with(
        &self,
        spec: &mut [Complex64],
        out: &mut [f64],
        put: impl Fn(&mut f64, f64) + Sync,
    ) {
        let (nx, ny, h) = (self.nx, self.ny, self.h);
        self.columns(spec, true, None, ny);
        let spec = &spec[..ny * h];
        let out = &mut out[..ny * nx];
        let work = || {
            (
                vec![Complex64::zero(); self.px],
                vec![Complex64::zero(); self.row_inv.get_inplace_scratch_len()],
            )
        };
        if self.threads > 1 {
            out.par_chunks_mut(2 * nx)
                .zip(spec.par_chunks(2 * h))
                .for_each_init(work, |(z, scratch), (o, s)| {
                    self.inverse_pair(s, o, z, scratch, &put)
                });
        } else {
            let (mut z, mut scratch) = work();
            for (o, s) in out.chunks_mut(2 * nx).zip(spec.chunks(2 * h)) {
                self.inverse_pair(s, o, &mut z, &mut scratch, &put);
            }
        }
    }

    /// Image rows from the half-spectrum rows `spec` (one or two rows of h values) into
    /// `out` (as many rows of nx values).
    fn inverse_pair(
        &self,
        spec: &[Complex64],
        out: &mut [f64],
        z: &mut [Complex64],
        scratch: &mut [Complex64],
        put: &impl Fn(&mut f64, f64),
    ) {
        let (px, h, nx) = (self.px, self.h, self.nx);
        let zeros;
        let (ra, rb) = if spec.len() >= 2 * h {
            spec.split_at(h)
        } else {
            // The last row of an odd image height pairs with a zero row.
            zeros = vec![Complex64::zero(); h];
            (spec, &zeros[..])
        };
        // Z = A + iB over the full row, from the Hermitian halves.
        for k in 0..h {
            z[k] = Complex64::new(ra[k].re - rb[k].im, ra[k].im + rb[k].re);
        }
        for k in h..px {
            let (ak, bk) = (ra[px - k].conj(), rb[px - k].conj());
            z[k] = Complex64::new(ak.re - bk.im, ak.im + bk.re);
        }
        self.row_inv.process_with_scratch(z, scratch);
        let (oa, ob) = out.split_at_mut(nx);
        for (o, v) in oa.iter_mut().zip(z.iter()) {
            put(o, v.re);
        }
        for (o, v) in ob.iter_mut().zip(z.iter()) {
            put(o, v.im);
        }
    }

    /// Transforms every column of the half spectrum along y. Only `rows` are read (all
    /// when `None`; the others must be zero) and rows at and beyond `keep` are not
    /// written back.
    fn columns(&self, spec: &mut [Complex64], inverse: bool, rows: Option<&[usize]>, keep: usize) {
        let (py, h) = (self.py, self.h);
        assert!(spec.len() >= py * h, "half spectrum too short");
        let fft = if inverse {
            &self.col_inv
        } else {
            &self.col_fwd
        };
        let work = || {
            (
                vec![Complex64::zero(); BLOCK * col_stride(py)],
                vec![Complex64::zero(); fft.get_inplace_scratch_len()],
            )
        };
        let ptr = SpecPtr(spec.as_mut_ptr());
        let block = |(buf, scratch): &mut (Vec<Complex64>, Vec<Complex64>), c0: usize| {
            // SAFETY: `spec` holds py·h values (checked above) and is exclusively borrowed
            // for this call; block c0 touches only columns c0..c0 + BLOCK, disjoint from
            // every other block's.
            unsafe { self.column_block(ptr, c0, &**fft, buf, scratch, rows, keep) }
        };
        if self.threads > 1 {
            (0..h.div_ceil(BLOCK))
                .into_par_iter()
                .for_each_init(work, |w, b| block(w, b * BLOCK));
        } else {
            let mut w = work();
            for c0 in (0..h).step_by(BLOCK) {
                block(&mut w, c0);
            }
        }
    }

    /// The column transforms of columns c0..min(c0 + BLOCK, h) (see [`Self::columns`]).
    ///
    /// # Safety
    /// `spec` must point to py·h values that no other thread accesses in these columns
    /// during the call.
    #[allow(clippy::too_many_arguments)]
    unsafe fn column_block(
        &self,
        spec: SpecPtr,
        c0: usize,
        fft: &dyn Fft<f64>,
        buf: &mut [Complex64],
        scratch: &mut [Complex64],
        rows: Option<&[usize]>,
        keep: usize,
    ) {
        let (py, h) = (self.py, self.h);
        let nb = BLOCK.min(h - c0);
        let cs = col_stride(py);
        let buf = &mut buf[..nb * cs];
        if rows.is_some() {
            buf.fill(Complex64::zero());
        }
        let mut gather = |y: usize| {
            // SAFETY: y < py and c0 + nb ≤ h, inside the spectrum; these columns are ours.
            let row = unsafe { std::slice::from_raw_parts(spec.0.add(y * h + c0), nb) };
            for (b, v) in row.iter().enumerate() {
                buf[b * cs + y] = *v;
            }
        };
        match rows {
            Some(rows) => rows.iter().for_each(|&y| gather(y)),
            None => (0..py).for_each(gather),
        }
        for col in buf.chunks_exact_mut(cs) {
            fft.process_with_scratch(&mut col[..py], scratch);
        }
        for y in 0..keep {
            // SAFETY: as above.
            let row = unsafe { std::slice::from_raw_parts_mut(spec.0.add(y * h + c0), nb) };
            for (b, v) in row.iter_mut().enumerate() {
                *v = buf[b * cs + y];
            }
        }
    }

    /// Row filler placing an `ny × nx` image (`[y, x]` row-major) at the grid corner.
    pub fn corner<'a>(&self, img: &'a [f64]) -> impl Fn(usize, &mut [f64]) -> bool + Sync + 'a {
        let (nx, ny) = (self.nx, self.ny);
        move |gy, row| {
            if gy >= ny {
                return false;
            }
            let src = &img[gy * nx..(gy + 1) * nx];
            if src.iter().all(|v| *v == 0.0) {
                return false;
            }
            row[..nx].copy_from_slice(src);
            true
        }
    }

    /// Row filler placing a `ky × kx` kernel (`[y, x]` row-major) with its pixel
    /// (kx/2, ky/2) at grid origin, wrapped.
    pub fn centred<'a>(
        &self,
        kern: &'a [f64],
        kx: usize,
        ky: usize,
    ) -> impl Fn(usize, &mut [f64]) -> bool + Sync + 'a {
        let (px, py) = (self.px, self.py);
        let (cx, cy) = ((kx / 2) as isize, (ky / 2) as isize);
        move |gy, row| {
            let dy = if gy < py / 2 {
                gy as isize
            } else {
                gy as isize - py as isize
            };
            let y = cy + dy;
            if y < 0 || y >= ky as isize {
                return false;
            }
            let src = &kern[y as usize * kx..(y as usize + 1) * kx];
            let mut any = false;
            for (x, &v) in src.iter().enumerate() {
                if v != 0.0 {
                    let gx = (x as isize - cx).rem_euclid(px as isize) as usize;
                    row[gx] = v;
                    any = true;
                }
            }
            any
        }
    }
}

/// A half spectrum kept in single precision (cached PSF and dirty-image transforms).
pub(crate) fn to_f32(spec: &[Complex64]) -> Vec<Complex32> {
    spec.iter()
        .map(|c| Complex32::new(c.re as f32, c.im as f32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct linear convolution of an image with a centred kernel, on the image.
    fn brute(img: &[f64], nx: usize, ny: usize, k: &[f64], kx: usize, ky: usize) -> Vec<f64> {
        let mut out = vec![0.0; nx * ny];
        for y in 0..ny {
            for x in 0..nx {
                let v = img[y * nx + x];
                if v == 0.0 {
                    continue;
                }
                for j in 0..ky {
                    for i in 0..kx {
                        let ox = x as isize + i as isize - (kx / 2) as isize;
                        let oy = y as isize + j as isize - (ky / 2) as isize;
                        if ox >= 0 && oy >= 0 && (ox as usize) < nx && (oy as usize) < ny {
                            out[oy as usize * nx + ox as usize] += v * k[j * kx + i];
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn padded_convolution_is_the_linear_one() {
        let mut rng = crate::sim::Rng::new(7);
        for &(nx, ny, kx, ky) in &[
            (20, 14, 20, 14),
            (9, 11, 5, 3),
            (16, 16, 16, 16),
            (90, 37, 31, 9),
        ] {
            let img: Vec<f64> = (0..nx * ny)
                .map(|_| {
                    if rng.uniform() < 0.3 {
                        rng.normal()
                    } else {
                        0.0
                    }
                })
                .collect();
            let k: Vec<f64> = (0..kx * ky).map(|_| rng.normal()).collect();
            let px = crate::sim::good_fft_size(nx + kx / 2 + 2);
            let py = crate::sim::good_fft_size(ny + ky / 2 + 2);
            let convolve = |threads: usize| {
                let g = Grid::new(nx, ny, px, py).with_threads(threads);
                let mut si = g.new_spectrum();
                g.forward(&mut si, g.corner(&img));
                let mut sk = g.new_spectrum();
                g.forward(&mut sk, g.centred(&k, kx, ky));
                for (a, b) in si.iter_mut().zip(&sk) {
                    *a *= b;
                }
                let mut out = vec![0.0; nx * ny];
                g.inverse(&mut si, &mut out, 1.0 / (px * py) as f64);
                out
            };
            let out = convolve(1);
            let want = brute(&img, nx, ny, &k, kx, ky);
            let err = out
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(err < 1e-12, "{nx}x{ny} kernel {kx}x{ky}: max error {err}");
            // Rows and column blocks on several threads: the same values bit for bit.
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(3)
                .build()
                .unwrap();
            let par = pool.install(|| convolve(3));
            assert!(
                out.iter()
                    .zip(&par)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{nx}x{ny}: 3 threads differ from 1"
            );
        }
    }
}
