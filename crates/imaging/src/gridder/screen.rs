//! Image-domain factors of the w-stacking transform: the per-plane w-screens
//! e^{2πi w_j (n − 1)} and the final correction 1/(n ψ̂_u ψ̂_v ψ̂_w) (Ye et al. 2022,
//! eq. 9; Arras et al. 2021, eq. 8), stored for one quadrant since both depend only on
//! |X| and |Y|.

use num_complex::Complex64;
use rayon::prelude::*;

use super::layout::Layout;

/// n − 1 for pixel offsets (|X|, |Y|), cancellation-free.
#[inline]
pub fn n_minus_one(layout: &Layout, qx: usize, qy: usize) -> f64 {
    let l = qx as f64 * layout.cell;
    let m = qy as f64 * layout.cell;
    let r2 = l * l + m * m;
    -r2 / (1.0 + (1.0 - r2).sqrt())
}

/// Quadrant dimensions (|X| in 0..=npix_x/2, |Y| in 0..=npix_y/2).
pub fn quadrant_dims(layout: &Layout) -> (usize, usize) {
    (layout.npix_x / 2 + 1, layout.npix_y / 2 + 1)
}

/// Multiplies an image (`[npix_y, npix_x]` row-major) by the real correction factor
/// (−1)^{X+Y} / (n ψ̂_u ψ̂_v ψ̂_w) of its pixel offsets, in place. Without w-stacking, n and
/// ψ̂_w are omitted (the flat-sky approximation, as ducc0 does with `do_wgridding=False`).
pub fn apply_correction(layout: &Layout, data_yx: &mut [f64]) {
    let k = layout.kernel;
    let ft = k.fourier_fn();
    let cu: Vec<f64> = (0..=layout.npix_x / 2)
        .map(|q| ft(q as f64 / layout.nu as f64))
        .collect();
    let cv: Vec<f64> = (0..=layout.npix_y / 2)
        .map(|q| ft(q as f64 / layout.nv as f64))
        .collect();
    let wtab = layout
        .wstacking
        .then(|| k.fourier_table(layout.c_half * layout.dw * 1.0001));
    let (nx, ny) = (layout.npix_x, layout.npix_y);
    let qnx = nx / 2 + 1;
    // 1/(n ψ̂_u ψ̂_v ψ̂_w) on one quadrant, then mapped with the sign (−1)^{X+Y}.
    let mut quad = vec![0.0; qnx * (ny / 2 + 1)];
    quad.par_chunks_mut(qnx).enumerate().for_each(|(qy, row)| {
        for (qx, q) in row.iter_mut().enumerate() {
            let mut f = cu[qx] * cv[qy];
            if let Some(t) = &wtab {
                let c = n_minus_one(layout, qx, qy);
                let xi = (c - layout.c_mid()) * layout.dw;
                f *= t.eval(xi * xi) * (1.0 + c);
            }
            *q = 1.0 / f;
        }
    });
    data_yx.par_chunks_mut(nx).enumerate().for_each(|(y, row)| {
        let qrow = &quad[y.abs_diff(ny / 2) * qnx..][..qnx];
        let ysign = if (y + ny / 2 + nx / 2) % 2 == 0 {
            1.0
        } else {
            -1.0
        };
        for (x, o) in row.iter_mut().enumerate() {
            let v = qrow[x.abs_diff(nx / 2)];
            *o *= if x % 2 == 0 { ysign * v } else { -ysign * v };
        }
    });
}

/// The w-screens of successive planes, advanced by a complex recurrence and refreshed
/// exactly every few planes to keep rounding error at the 1e-15 level.
#[derive(Debug)]
pub struct Screens {
    /// n − 1 per quadrant pixel, `[qy, qx]`.
    c_q: Vec<f64>,
    /// Current screen e^{2πi w_j c}.
    pub cur_q: Vec<Complex64>,
    /// Per-plane step e^{2πi dw c}.
    step_q: Vec<Complex64>,
    pub qnx: usize,
    plane: usize,
}

const REFRESH: usize = 16;

fn phasor(turns: f64) -> Complex64 {
    let t = turns - turns.round();
    let (s, c) = (std::f64::consts::TAU * t).sin_cos();
    Complex64::new(c, s)
}

impl Screens {
    pub fn new(layout: &Layout) -> Self {
        let (qnx, qny) = quadrant_dims(layout);
        let mut c_q = vec![0.0; qnx * qny];
        c_q.par_chunks_mut(qnx).enumerate().for_each(|(qy, row)| {
            for (qx, c) in row.iter_mut().enumerate() {
                *c = n_minus_one(layout, qx, qy);
            }
        });
        let step_q = c_q.par_iter().map(|&c| phasor(layout.dw * c)).collect();
        let mut s = Self {
            cur_q: vec![Complex64::new(1.0, 0.0); c_q.len()],
            c_q,
            step_q,
            qnx,
            plane: 0,
        };
        s.set_exact(layout, 0);
        s
    }

    fn set_exact(&mut self, layout: &Layout, plane: usize) {
        let w = layout.plane_w(plane);
        self.cur_q
            .par_iter_mut()
            .zip(self.c_q.par_iter())
            .for_each(|(s, &c)| *s = phasor(w * c));
        self.plane = plane;
    }

    /// Moves the screen to plane `plane` (must not go backwards).
    pub fn advance_to(&mut self, layout: &Layout, plane: usize) {
        if plane == self.plane {
            return;
        }
        if plane < self.plane || plane - self.plane > 1 || plane.is_multiple_of(REFRESH) {
            self.set_exact(layout, plane);
            return;
        }
        self.cur_q
            .par_iter_mut()
            .zip(self.step_q.par_iter())
            .for_each(|(s, st)| *s *= st);
        self.plane = plane;
    }

    /// The screen for |Y| = qy, indexed by |X|.
    #[inline(always)]
    pub fn row(&self, qy: usize) -> &[Complex64] {
        &self.cur_q[qy * self.qnx..(qy + 1) * self.qnx]
    }
}
