//! Image-domain factors of the w-stacking transform: the per-plane w-screens
//! e^{2πi w_j (n − 1)} and the final correction 1/(n ψ̂_u ψ̂_v ψ̂_w) (Ye et al. 2022,
//! eq. 9; Arras et al. 2021, eq. 8), stored for one quadrant since both depend only on
//! |X| and |Y|.

use std::sync::{Arc, Mutex};

use num_complex::Complex64;
use rayon::prelude::*;

use super::layout::Layout;

/// n − 1 for pixel offsets (|X|, |Y|), cancellation-free.
#[inline]
pub fn n_minus_one(layout: &Layout, qx: usize, qy: usize) -> f64 {
    let l = qx as f64 * layout.cell;
    let m = qy as f64 * layout.cell;
    n_minus_one_of(l * l, m * m)
}

/// n − 1 = −r²/(1 + √(1 − r²)) for r² = l² + m² (no cancellation near the centre).
/// Branch-free, so the screen row loop vectorises through it.
#[inline(always)]
fn n_minus_one_of(l2: f64, m2: f64) -> f64 {
    let r2 = l2 + m2;
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
    apply_correction_rows(layout, data_yx, None)
}

/// [`apply_correction`] on the rows y where `live_y[y]` (all rows with `None`); the
/// others are left as they are (all-zero rows of a model, whose correction is zero:
/// not writing them keeps their pages untouched, so a zeroed model image takes memory
/// only where it has pixels).
pub fn apply_correction_rows(layout: &Layout, data_yx: &mut [f64], live_y: Option<&[bool]>) {
    let quad = correction_quadrant(layout);
    let (nx, ny) = (layout.npix_x, layout.npix_y);
    let qnx = nx / 2 + 1;
    data_yx.par_chunks_mut(nx).enumerate().for_each(|(y, row)| {
        if live_y.is_some_and(|l| !l[y]) {
            return;
        }
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

/// Correction tables of at most this many bytes are kept for the next call.
const KEPT_CORRECTION_BYTES: usize = 4 << 20;

/// The last correction quadrant made, with its layout: a map task's predict and invert
/// share one layout, so the second call reuses the first's table. Kept only when small
/// (images up to about 2000²), so large images pay no memory beside the grid.
static LAST_CORRECTION: Mutex<Option<(Layout, Arc<Vec<f64>>)>> = Mutex::new(None);

/// 1/(n ψ̂_u ψ̂_v ψ̂_w) on one quadrant (|X| in 0..=npix_x/2, |Y| in 0..=npix_y/2), from the
/// cache when the last table was made for an equal layout.
fn correction_quadrant(layout: &Layout) -> Arc<Vec<f64>> {
    let lock = || LAST_CORRECTION.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((l, q)) = lock().as_ref()
        && l == layout
    {
        return q.clone();
    }
    let quad = Arc::new(make_correction_quadrant(layout));
    if quad.len() * std::mem::size_of::<f64>() <= KEPT_CORRECTION_BYTES {
        *lock() = Some((layout.clone(), quad.clone()));
    }
    quad
}

/// [`correction_quadrant`], computed.
fn make_correction_quadrant(layout: &Layout) -> Vec<f64> {
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
    quad
}

/// The w-screen e^{2πi w_j (n − 1)} of the current plane, made one row at a time where
/// it is applied, n − 1 included: only l² per quadrant column is stored (one f64 per
/// |X|), not the screen nor n − 1 per pixel, so the gridder's memory beside its grid and
/// output image stays small (issue #4's bound of 1.5 × (grid + one window)). Each value
/// is exact to a few ulp (no recurrence across planes) and n − 1 has the bits of
/// [`n_minus_one`].
#[derive(Debug)]
pub struct Screens {
    /// l² = (|X| · cell)² per quadrant column.
    l2_q: Vec<f64>,
    /// Pixel size, radians.
    cell: f64,
    /// w of the current plane, wavelengths.
    w: f64,
}

/// (cos 2πt, sin 2πt) to a few ulp: reduction to an eighth of a turn, then the
/// minimax polynomials of sin and cos on |x| ≤ π/4, rotated back by quarter turns.
/// Branch-free, so the row loop vectorises.
// The coefficients are kept digit for digit as published.
#[allow(clippy::excessive_precision)]
#[inline(always)]
fn cis_turns(t: f64) -> (f64, f64) {
    // Round to nearest by the 1.5·2⁵² trick (valid for |t| < 2⁵¹): `f64::round` is a
    // library call on baseline x86-64 and would stop the loop from vectorising.
    const ROUND: f64 = 6_755_399_441_055_744.0;
    let r = t - ((t + ROUND) - ROUND);
    let q = (4.0 * r + ROUND) - ROUND;
    let x = std::f64::consts::TAU * (r - 0.25 * q);
    let x2 = x * x;
    // Cephes' sin and cos polynomials on [0, π/4] (S. Moshier).
    let s = x + x
        * x2
        * (-1.666_666_666_666_663_072_95e-1
            + x2 * (8.333_333_333_322_118_588_78e-3
                + x2 * (-1.984_126_982_958_953_859_96e-4
                    + x2 * (2.755_731_362_138_572_452_13e-6
                        + x2 * (-2.505_074_776_285_780_728_66e-8
                            + x2 * 1.589_623_015_765_465_680_60e-10)))));
    let c = 1.0 - 0.5 * x2
        + x2 * x2
            * (4.166_666_666_666_659_292_18e-2
                + x2 * (-1.388_888_888_887_305_641_16e-3
                    + x2 * (2.480_158_728_885_170_453_48e-5
                        + x2 * (-2.755_731_417_929_673_881_12e-7
                            + x2 * (2.087_570_084_197_473_167_78e-9
                                + x2 * -1.135_853_652_138_768_173_00e-11)))));
    // Rotate (c, s) by q quarter turns, q in −2..=2: (−q·s, q·c) for odd q,
    // (1 − |q|)·(c, s) for even q.
    let odd = q.abs() == 1.0;
    let even_sign = 1.0 - q.abs();
    (
        if odd { -q * s } else { even_sign * c },
        if odd { q * c } else { even_sign * s },
    )
}

impl Screens {
    pub fn new(layout: &Layout) -> Self {
        let (qnx, _) = quadrant_dims(layout);
        let l2_q = (0..qnx)
            .map(|qx| {
                let l = qx as f64 * layout.cell;
                l * l
            })
            .collect();
        Self {
            l2_q,
            cell: layout.cell,
            w: layout.plane_w(0),
        }
    }

    /// Moves the screen to plane `plane`.
    pub fn advance_to(&mut self, layout: &Layout, plane: usize) {
        self.w = layout.plane_w(plane);
    }

    /// Fills `out` (npix_x/2 + 1 values) with the screen for |Y| = qy, indexed by |X|: with
    /// AVX2 when the CPU has it (four lanes instead of SSE2's two; the same operations,
    /// so the same bits: Rust does not contract to FMA on its own, and √ and ÷ are
    /// correctly rounded in every lane), else portably.
    #[inline]
    pub fn fill_row(&self, qy: usize, out: &mut [Complex64]) {
        let m = qy as f64 * self.cell;
        let m2 = m * m;
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { fill_row_avx2(self.w, m2, &self.l2_q, out) };
            return;
        }
        fill_row_portable(self.w, m2, &self.l2_q, out);
    }
}

/// e^{2πi w (n − 1)} for n − 1 of each l² in `l2` with m² = `m2`, into `out`.
#[inline(always)]
fn fill_row_portable(w: f64, m2: f64, l2: &[f64], out: &mut [Complex64]) {
    for (o, &l2) in out.iter_mut().zip(l2) {
        let (re, im) = cis_turns(w * n_minus_one_of(l2, m2));
        *o = Complex64::new(re, im);
    }
}

/// [`fill_row_portable`] compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill_row_avx2(w: f64, m2: f64, l2: &[f64], out: &mut [Complex64]) {
    fill_row_portable(w, m2, l2, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gridder::params::wide_test_layout;

    /// The branch-free phasor agrees with libm's sin_cos over many turns and at the
    /// quarter-turn seams.
    #[test]
    fn cis_turns_matches_sin_cos() {
        let mut worst = 0.0f64;
        let seams = (-16..=16).map(|k| k as f64 * 0.125);
        let spread = (0..20_001).map(|i| (i as f64 - 10_000.0) * 0.013_7);
        for t in seams.chain(spread) {
            let (c, s) = cis_turns(t);
            let r = t - t.round();
            let (ws, wc) = (std::f64::consts::TAU * r).sin_cos();
            worst = worst.max((c - wc).abs()).max((s - ws).abs());
        }
        assert!(worst < 4e-16, "{worst}");
    }

    /// Correcting only the live rows gives the full correction's bits on those rows and
    /// leaves the others as they were (here a marker, to see that they are not written).
    #[test]
    fn live_rows_correction_equals_the_full_correction() {
        let lay = wide_test_layout(64);
        let (nx, ny) = (lay.npix_x, lay.npix_y);
        let img: Vec<f64> = (0..nx * ny)
            .map(|i| ((i * 7919 % 1000) as f64 - 500.0) * 1e-3)
            .collect();
        let live: Vec<bool> = (0..ny).map(|y| y % 3 == 1).collect();
        let mut full = img.clone();
        apply_correction(&lay, &mut full);
        let mut part: Vec<f64> = img
            .chunks_exact(nx)
            .zip(&live)
            .flat_map(|(row, l)| row.iter().map(move |v| if *l { *v } else { 7.0 }))
            .collect();
        apply_correction_rows(&lay, &mut part, Some(&live));
        for (y, l) in live.iter().enumerate() {
            let (f, p) = (&full[y * nx..][..nx], &part[y * nx..][..nx]);
            if *l {
                assert!(
                    f.iter().zip(p).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "row {y}"
                );
            } else {
                assert!(p.iter().all(|v| *v == 7.0), "row {y} was written");
            }
        }
    }

    /// The kept correction table is the one the layout makes, and a different layout
    /// gets its own (the cache is keyed by the whole layout).
    #[test]
    fn kept_correction_is_the_layouts_own() {
        let a = wide_test_layout(200);
        let b = wide_test_layout(120);
        for lay in [&a, &b, &a, &a] {
            let kept = correction_quadrant(lay);
            let fresh = make_correction_quadrant(lay);
            assert_eq!(kept.len(), fresh.len());
            assert!(
                kept.iter()
                    .zip(&fresh)
                    .all(|(x, y)| x.to_bits() == y.to_bits())
            );
        }
    }

    /// Rows of l² and m² over the whole n − 1 range of an image (r² up to 1/2).
    fn l2_row(cell: f64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|q| {
                let l = q as f64 * cell;
                l * l
            })
            .collect()
    }

    /// The AVX2 row gives the portable row's bits, and both give e^{2πi w (n − 1)} of
    /// the stored-value path (n − 1 made apart, then the phasor) bit for bit.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_rows_equal_portable_rows() {
        if !std::is_x86_feature_detected!("avx2") {
            return;
        }
        let cell = 0.7 / 1001.0;
        let l2 = l2_row(cell, 1001);
        for qy in [0usize, 1, 333, 1000] {
            let m = qy as f64 * cell;
            let m2 = m * m;
            for w in [0.0, 1.5, -733.25, 15_001.7] {
                let mut a = vec![Complex64::default(); l2.len()];
                let mut b = a.clone();
                fill_row_portable(w, m2, &l2, &mut a);
                // SAFETY: AVX2 checked above.
                unsafe { fill_row_avx2(w, m2, &l2, &mut b) };
                let same = |x: &Complex64, y: &Complex64| {
                    x.re.to_bits() == y.re.to_bits() && x.im.to_bits() == y.im.to_bits()
                };
                assert!(a.iter().zip(&b).all(|(x, y)| same(x, y)), "w = {w}");
                for (qx, x) in a.iter().enumerate() {
                    let l = qx as f64 * cell;
                    let r2 = l * l + m * m;
                    let c = -r2 / (1.0 + (1.0 - r2).sqrt());
                    let (re, im) = cis_turns(w * c);
                    assert!(same(x, &Complex64::new(re, im)), "w = {w}, ({qx}, {qy})");
                }
            }
        }
    }

    /// The screen row is e^{2πi w (n − 1)} with n = √(1 − l² − m²), to 1e-12 (libm, with
    /// n − 1 formed directly: cancellation near the centre costs a few 1e-16·|w|).
    #[test]
    fn rows_match_the_direct_screen() {
        let cell = 0.6 / 800.0;
        let l2 = l2_row(cell, 801);
        let mut worst = 0.0f64;
        for qy in [0usize, 7, 400, 800] {
            let m = qy as f64 * cell;
            for w in [0.5, -120.25, 200.0] {
                let mut row = vec![Complex64::default(); l2.len()];
                fill_row_portable(w, m * m, &l2, &mut row);
                for (qx, got) in row.iter().enumerate() {
                    let l = qx as f64 * cell;
                    let n = (1.0 - l * l - m * m).sqrt();
                    let (s, c) = (std::f64::consts::TAU * w * (n - 1.0)).sin_cos();
                    worst = worst.max((got.re - c).abs()).max((got.im - s).abs());
                }
            }
        }
        assert!(worst < 1e-12, "{worst}");
    }
}
