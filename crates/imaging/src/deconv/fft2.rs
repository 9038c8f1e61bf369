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
use rustfft::num_traits::Zero;
use rustfft::{Fft, FftPlanner};

/// Columns transformed together (gathered into contiguous buffers).
const BLOCK: usize = 32;

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
            .finish_non_exhaustive()
    }
}

impl Grid {
    /// A grid of `px × py` (both even, at least the image size) for `nx × ny` images.
    pub fn new(nx: usize, ny: usize, px: usize, py: usize) -> Self {
        debug_assert!(px >= nx && py >= ny && px.is_multiple_of(2) && py.is_multiple_of(2));
        let mut p = FftPlanner::<f64>::new();
        Self {
            nx,
            ny,
            px,
            py,
            h: px / 2 + 1,
            row_fwd: p.plan_fft_forward(px),
            row_inv: p.plan_fft_inverse(px),
            col_fwd: p.plan_fft_forward(py),
            col_inv: p.plan_fft_inverse(py),
        }
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
    pub fn forward(&self, spec: &mut [Complex64], mut fill: impl FnMut(usize, &mut [f64]) -> bool) {
        let (px, h) = (self.px, self.h);
        let mut a = vec![0.0; px];
        let mut b = vec![0.0; px];
        let mut z = vec![Complex64::zero(); px];
        let mut scratch = vec![Complex64::zero(); self.row_fwd.get_inplace_scratch_len()];
        let (mut a_dirty, mut b_dirty) = (false, false);
        // Grid rows holding data: only these are gathered for the column transforms.
        let mut rows = Vec::new();
        for gy in (0..self.py).step_by(2) {
            if a_dirty {
                a.fill(0.0);
            }
            if b_dirty {
                b.fill(0.0);
            }
            a_dirty = fill(gy, &mut a);
            b_dirty = gy + 1 < self.py && fill(gy + 1, &mut b);
            let (ra, rest) = spec[gy * h..].split_at_mut(h);
            let rb = &mut rest[..h];
            if !a_dirty && !b_dirty {
                ra.fill(Complex64::zero());
                rb.fill(Complex64::zero());
                continue;
            }
            rows.push(gy);
            if gy + 1 < self.py {
                rows.push(gy + 1);
            }
            for ((zx, &ax), &bx) in z.iter_mut().zip(&a).zip(&b) {
                *zx = Complex64::new(ax, bx);
            }
            self.row_fwd.process_with_scratch(&mut z, &mut scratch);
            // Split the spectra of the two real rows: A = (Z_k + Z*_{-k})/2,
            // B = (Z_k − Z*_{-k})/(2i).
            for k in 0..h {
                let zk = z[k];
                let zc = z[(px - k) % px].conj();
                ra[k] = (zk + zc) * 0.5;
                let d = zk - zc;
                rb[k] = Complex64::new(d.im * 0.5, -d.re * 0.5);
            }
        }
        self.columns(spec, false, Some(&rows), self.py);
    }

    /// Inverse transform of `spec` (destroyed) into the `ny × nx` image `out`, each value
    /// multiplied by `scale` (pass 1/(px·py) for the normalised inverse).
    pub fn inverse(&self, spec: &mut [Complex64], out: &mut [f64], scale: f64) {
        let (px, h, nx, ny) = (self.px, self.h, self.nx, self.ny);
        self.columns(spec, true, None, ny);
        let mut z = vec![Complex64::zero(); px];
        let mut scratch = vec![Complex64::zero(); self.row_inv.get_inplace_scratch_len()];
        let zeros = vec![Complex64::zero(); h];
        for gy in (0..ny).step_by(2) {
            let ra = &spec[gy * h..(gy + 1) * h];
            let rb = if gy + 1 < ny {
                &spec[(gy + 1) * h..(gy + 2) * h]
            } else {
                &zeros[..]
            };
            // Z = A + iB over the full row, from the Hermitian halves.
            for k in 0..h {
                z[k] = Complex64::new(ra[k].re - rb[k].im, ra[k].im + rb[k].re);
            }
            for k in h..px {
                let (ak, bk) = (ra[px - k].conj(), rb[px - k].conj());
                z[k] = Complex64::new(ak.re - bk.im, ak.im + bk.re);
            }
            self.row_inv.process_with_scratch(&mut z, &mut scratch);
            for (o, v) in out[gy * nx..(gy + 1) * nx].iter_mut().zip(&z) {
                *o = v.re * scale;
            }
            if gy + 1 < ny {
                for (o, v) in out[(gy + 1) * nx..(gy + 2) * nx].iter_mut().zip(&z) {
                    *o = v.im * scale;
                }
            }
        }
    }

    /// Transforms every column of the half spectrum along y. Only `rows` are read (all
    /// when `None`; the others must be zero) and rows at and beyond `keep` are not
    /// written back.
    fn columns(&self, spec: &mut [Complex64], inverse: bool, rows: Option<&[usize]>, keep: usize) {
        let (py, h) = (self.py, self.h);
        let fft = if inverse {
            &self.col_inv
        } else {
            &self.col_fwd
        };
        let mut buf = vec![Complex64::zero(); BLOCK * py];
        let mut scratch = vec![Complex64::zero(); fft.get_inplace_scratch_len()];
        for c0 in (0..h).step_by(BLOCK) {
            let nb = BLOCK.min(h - c0);
            if rows.is_some() {
                buf[..nb * py].fill(Complex64::zero());
            }
            let mut gather = |y: usize| {
                let row = &spec[y * h + c0..y * h + c0 + nb];
                for (b, v) in row.iter().enumerate() {
                    buf[b * py + y] = *v;
                }
            };
            match rows {
                Some(rows) => rows.iter().for_each(|&y| gather(y)),
                None => (0..py).for_each(gather),
            }
            fft.process_with_scratch(&mut buf[..nb * py], &mut scratch);
            for y in 0..keep {
                let row = &mut spec[y * h + c0..y * h + c0 + nb];
                for (b, v) in row.iter_mut().enumerate() {
                    *v = buf[b * py + y];
                }
            }
        }
    }

    /// Row filler placing an `ny × nx` image (`[y, x]` row-major) at the grid corner.
    pub fn corner<'a>(&self, img: &'a [f64]) -> impl FnMut(usize, &mut [f64]) -> bool + 'a {
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
    ) -> impl FnMut(usize, &mut [f64]) -> bool + 'a {
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
        for &(nx, ny, kx, ky) in &[(20, 14, 20, 14), (9, 11, 5, 3), (16, 16, 16, 16)] {
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
            let g = Grid::new(nx, ny, px, py);
            let mut si = g.new_spectrum();
            g.forward(&mut si, g.corner(&img));
            let mut sk = g.new_spectrum();
            g.forward(&mut sk, g.centred(&k, kx, ky));
            for (a, b) in si.iter_mut().zip(&sk) {
                *a *= b;
            }
            let mut out = vec![0.0; nx * ny];
            g.inverse(&mut si, &mut out, 1.0 / (px * py) as f64);
            let want = brute(&img, nx, ny, &k, kx, ky);
            let err = out
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(err < 1e-12, "{nx}x{ny} kernel {kx}x{ky}: max error {err}");
        }
    }
}
