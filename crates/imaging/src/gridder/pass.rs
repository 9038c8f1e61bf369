//! The inner gridding and degridding loops over one band of uv tiles for one w-plane.
//!
//! Gridding (the adjoint of degridding) accumulates, for every sample k and plane j,
//! G_j[iu, iv] += ψ_u(g_u − iu) ψ_v(g_v − iv) K_w(g_w − j) · wt_k V_k
//! into a small tile buffer that is flushed to the grid once per tile, as in ducc0's
//! wgridder (Arras et al. 2021, §3.2). Degridding reads each tile, with its halo, from a
//! small local copy split into real and imaginary parts, and sums each sample's
//! footprint with the vector kernels of [`super::simd`]. Kernel values come from the
//! piecewise polynomials of [`super::kernel::PiecewiseKernel`].

use num_complex::{Complex, Complex64};
use rustfft::num_traits::Zero;

use super::index::{Entry, TILE, VisIndex};
use super::kernel::PieceEvaluator;
use super::layout::{Layout, Position};
use super::real::{Real, cx};
#[cfg(target_arch = "x86_64")]
use super::simd::Avx2;
use super::simd::{BUF, Isa, Portable, TileBuf};
use crate::coords::UvwMetres;

/// Inputs shared by every band of one plane pass.
#[derive(Debug)]
pub struct PassCtx<'a, T: Real> {
    pub layout: &'a Layout,
    pub index: &'a VisIndex,
    /// Real u/v kernel coefficients, `[(degree + 1) × W]`.
    pub uv_coef: &'a [T],
    pub uv_degree: usize,
    /// Complex w kernel K_w(t) = ψ(t)·e^{2πi t dw c_mid}.
    pub w_kernel: &'a PieceEvaluator,
    pub uvw_r: &'a [UvwMetres],
    pub freq_c: &'a [f64],
}

/// A raw pointer for disjoint writes from parallel tasks.
#[derive(Debug, Clone, Copy)]
pub struct SharedMut<T>(pub *mut T);

impl<T> SharedMut<T> {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    #[inline(always)]
    pub fn ptr(self) -> *mut T {
        self.0
    }
}
// SAFETY: users guarantee that concurrent tasks write disjoint elements.
unsafe impl<T: Send> Send for SharedMut<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for SharedMut<T> {}

/// The `W` kernel pieces at `zu` and at `zv` by Horner's scheme, the two evaluations
/// interleaved so that their dependency chains overlap.
#[inline(always)]
fn horner2<T: Real, I: Isa, const W: usize>(
    coef: &[T],
    degree: usize,
    zu: T,
    zv: T,
) -> ([T; W], [T; W]) {
    let top: &[T; W] = coef[degree * W..degree * W + W]
        .try_into()
        .expect("W coefficients");
    let (mut ku, mut kv) = (*top, *top);
    for d in (0..degree).rev() {
        let c: &[T; W] = coef[d * W..d * W + W].try_into().expect("W coefficients");
        for i in 0..W {
            ku[i] = I::mul_add(ku[i], zu, c[i]);
            kv[i] = I::mul_add(kv[i], zv, c[i]);
        }
    }
    (ku, kv)
}

/// w-kernel value of plane `plane` for a sample whose first plane is `iw0`.
#[inline(always)]
fn w_weight<I: Isa>(
    w_kernel: &PieceEvaluator,
    wstacking: bool,
    plane: usize,
    iw0: i64,
    zw: f64,
) -> Complex64 {
    if !wstacking {
        return Complex64::new(1.0, 0.0);
    }
    if I::FUSED {
        w_kernel.eval_fused(plane - iw0 as usize, zw)
    } else {
        w_kernel.eval(plane - iw0 as usize, zw)
    }
}

/// How many entries ahead the input rows are prefetched: entries are in tile order, so
/// their rows are scattered through memory and the loads would otherwise stall. Of 3, 6,
/// 12 and 32, 6 gave the fewest CPU samples in the gridding and degridding loops of
/// `aperture bench kernels` (f64, 1024²; 32 cost 20 % more than 6).
const PREFETCH: usize = 6;

#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint; it never faults, even for invalid addresses.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Prefetches the uvw row of the entry `PREFETCH` positions after `i`, and lets `data`
/// prefetch whatever it reads at that entry's flat [row, chan] index.
#[inline(always)]
fn prefetch_ahead(
    entries: &[Entry],
    i: usize,
    uvw_r: &[UvwMetres],
    nchan: usize,
    data: impl Fn(usize),
) {
    if let Some(e) = entries.get(i + PREFETCH) {
        prefetch(uvw_r.as_ptr().wrapping_add(e.row as usize));
        data(e.row as usize * nchan + e.chan as usize);
    }
}

/// Grid position and u, v kernel values of one sample.
#[inline(always)]
fn sample_kernels<T: Real, I: Isa, const W: usize>(
    ctx: &PassCtx<'_, T>,
    e: &Entry,
) -> (Position, [T; W], [T; W]) {
    let p = ctx
        .layout
        .position(ctx.uvw_r[e.row as usize], ctx.freq_c[e.chan as usize]);
    let (ku, kv) = horner2::<T, I, W>(ctx.uv_coef, ctx.uv_degree, T::from_f(p.zu), T::from_f(p.zv));
    (p, ku, kv)
}

/// Grids the samples of band `tu` (tile row) for `plane` into `chunk`, which holds grid
/// rows starting at `row0`. `vis` and `wgt` are the flattened [row, chan] arrays.
#[inline(always)]
fn grid_band_impl<T: Real, I: Isa, const W: usize>(
    ctx: &PassCtx<'_, T>,
    plane: usize,
    tu: usize,
    vis: &[Complex64],
    wgt: &[f64],
    chunk: &mut [Complex<T>],
    row0: usize,
) {
    let lay = ctx.layout;
    let nv = lay.nv;
    let nchan = ctx.freq_c.len();
    let lo = (plane + 1).saturating_sub(lay.w_support());
    let mut buf = [Complex::<T>::zero(); BUF * BUF];
    for tv in 0..ctx.index.ntiles_v {
        let tile = tu * ctx.index.ntiles_v + tv;
        let mut any = false;
        for range in ctx.index.tile_ranges(tile, lo, plane) {
            any = true;
            let entries = &ctx.index.entries[range];
            for (i, e) in entries.iter().enumerate() {
                prefetch_ahead(entries, i, ctx.uvw_r, nchan, |k| {
                    prefetch(vis.as_ptr().wrapping_add(k));
                    prefetch(wgt.as_ptr().wrapping_add(k));
                });
                let (p, ku, kv) = sample_kernels::<T, I, W>(ctx, e);
                let k = e.row as usize * nchan + e.chan as usize;
                let kw = w_weight::<I>(ctx.w_kernel, lay.wstacking, plane, p.iw0, p.zw);
                let v0 = vis[k];
                let val = cx::<T>(if p.flip { v0.conj() } else { v0 } * wgt[k] * kw);
                let bu = p.iu0 as usize - tu * TILE;
                let bv = p.iv0 as usize - tv * TILE;
                for a in 0..W {
                    let rv = val * ku[a];
                    let s = (bu + a) * BUF + bv;
                    let row: &mut [Complex<T>; W] =
                        (&mut buf[s..s + W]).try_into().expect("W cells");
                    for b in 0..W {
                        row[b].re = I::mul_add(rv.re, kv[b], row[b].re);
                        row[b].im = I::mul_add(rv.im, kv[b], row[b].im);
                    }
                }
            }
        }
        if !any {
            continue;
        }
        // Flush the tile buffer into the grid and clear it.
        let rows = BUF.min(lay.nu - tu * TILE);
        let cols = BUF.min(nv - tv * TILE);
        for a in 0..rows {
            let g = (tu * TILE + a - row0) * nv + tv * TILE;
            let dst = &mut chunk[g..g + cols];
            let src = &mut buf[a * BUF..a * BUF + cols];
            for (d, s) in dst.iter_mut().zip(src.iter_mut()) {
                *d = *d + *s;
                *s = Complex::zero();
            }
        }
    }
}

/// Copies the cells of tile (`tu`, `tv`) and its kernel halo, grid rows
/// `tu·TILE..+rows` and columns `tv·TILE..+cols`, into `re` and `im` (row stride `BUF`),
/// the real and imaginary parts apart so that the degridding loop reads whole vectors
/// of one part (ducc0's wgridder degrids from such a per-tile copy likewise).
#[inline(always)]
fn load_tile<T: Real>(
    grid: &[Complex<T>],
    nv: usize,
    (tu, tv): (usize, usize),
    (rows, cols): (usize, usize),
    re: &mut TileBuf<T>,
    im: &mut TileBuf<T>,
) {
    for a in 0..rows {
        let g = (tu * TILE + a) * nv + tv * TILE;
        let src = &grid[g..g + cols];
        let (dr, di) = (
            &mut re[a * BUF..a * BUF + cols],
            &mut im[a * BUF..a * BUF + cols],
        );
        for ((c, r), i) in src.iter().zip(dr).zip(di) {
            *r = c.re;
            *i = c.im;
        }
    }
}

/// Degrids band `tu` of `plane` from the full grid, adding each sample's contribution
/// into `out` (flattened [row, chan]); the adjoint of [`grid_band_impl`]: per sample,
/// Σ_a Σ_b G_j[iu0 + a, iv0 + b] ψ_u(a) ψ_v(b) · conj K_w. Each tile with samples is
/// first copied with its halo into a small local buffer ([`load_tile`]).
#[inline(always)]
fn degrid_band_impl<T: Real, I: Isa, const W: usize>(
    ctx: &PassCtx<'_, T>,
    plane: usize,
    tu: usize,
    grid: &[Complex<T>],
    out: SharedMut<Complex64>,
) {
    let lay = ctx.layout;
    let nv = lay.nv;
    let nchan = ctx.freq_c.len();
    let lo = (plane + 1).saturating_sub(lay.w_support());
    let mut buf_re = [T::zero(); BUF * BUF];
    let mut buf_im = [T::zero(); BUF * BUF];
    let rows = (TILE + W - 1).min(lay.nu - tu * TILE);
    for tv in 0..ctx.index.ntiles_v {
        let tile = tu * ctx.index.ntiles_v + tv;
        let mut ranges = ctx.index.tile_ranges(tile, lo, plane).peekable();
        if ranges.peek().is_none() {
            continue;
        }
        let cols = (TILE + W - 1).min(nv - tv * TILE);
        load_tile(grid, nv, (tu, tv), (rows, cols), &mut buf_re, &mut buf_im);
        for range in ranges {
            let entries = &ctx.index.entries[range];
            for (i, e) in entries.iter().enumerate() {
                prefetch_ahead(entries, i, ctx.uvw_r, nchan, |k| {
                    prefetch(out.ptr().wrapping_add(k));
                });
                let (p, ku, kv) = sample_kernels::<T, I, W>(ctx, e);
                let s0 = (p.iu0 as usize - tu * TILE) * BUF + (p.iv0 as usize - tv * TILE);
                let (sr, si) = I::tile_dot::<T, W>(&buf_re, &buf_im, s0, &ku, &kv);
                let kw = w_weight::<I>(ctx.w_kernel, lay.wstacking, plane, p.iw0, p.zw);
                let val = Complex64::new(sr.to_f(), si.to_f()) * kw.conj();
                let val = if p.flip { val.conj() } else { val };
                // SAFETY: every (row, chan) occurs in exactly one index entry and each
                // entry belongs to one band, so no two tasks write the same element.
                unsafe {
                    *out.ptr().add(e.row as usize * nchan + e.chan as usize) += val;
                }
            }
        }
    }
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// For an `#[inline(always)]` kernel `$imp`, generates `$avx`, a copy compiled with AVX2
/// and FMA enabled (with the [`Avx2`] inner loops), and `$disp`, which runs that copy when
/// the CPU supports it and `$imp` with [`Portable`] loops otherwise.
macro_rules! multiversion {
    ($disp:ident, $avx:ident, $imp:ident, ($($arg:ident: $ty:ty),* $(,)?)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $avx<T: Real, const W: usize>($($arg: $ty),*) {
            $imp::<T, Avx2, W>($($arg),*)
        }

        fn $disp<T: Real, const W: usize>($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if has_avx2() {
                // SAFETY: the CPU supports AVX2 and FMA (checked above).
                unsafe { $avx::<T, W>($($arg),*) };
                return;
            }
            $imp::<T, Portable, W>($($arg),*)
        }
    };
}

multiversion!(
    grid_band_w,
    grid_band_avx2,
    grid_band_impl,
    (
        ctx: &PassCtx<'_, T>,
        plane: usize,
        tu: usize,
        vis: &[Complex64],
        wgt: &[f64],
        chunk: &mut [Complex<T>],
        row0: usize,
    )
);
multiversion!(
    degrid_band_w,
    degrid_band_avx2,
    degrid_band_impl,
    (
        ctx: &PassCtx<'_, T>,
        plane: usize,
        tu: usize,
        grid: &[Complex<T>],
        out: SharedMut<Complex64>,
    )
);

macro_rules! by_support {
    ($w:expr, $f:ident, $t:ty, $($arg:expr),*) => {
        match $w {
            4 => $f::<$t, 4>($($arg),*),
            5 => $f::<$t, 5>($($arg),*),
            6 => $f::<$t, 6>($($arg),*),
            7 => $f::<$t, 7>($($arg),*),
            8 => $f::<$t, 8>($($arg),*),
            9 => $f::<$t, 9>($($arg),*),
            10 => $f::<$t, 10>($($arg),*),
            11 => $f::<$t, 11>($($arg),*),
            12 => $f::<$t, 12>($($arg),*),
            13 => $f::<$t, 13>($($arg),*),
            14 => $f::<$t, 14>($($arg),*),
            15 => $f::<$t, 15>($($arg),*),
            _ => $f::<$t, 16>($($arg),*),
        }
    };
}

/// Grids band `tu` of `plane` (see [`grid_band_impl`]).
pub fn grid_band<T: Real>(
    ctx: &PassCtx<'_, T>,
    plane: usize,
    tu: usize,
    vis: &[Complex64],
    wgt: &[f64],
    chunk: &mut [Complex<T>],
    row0: usize,
) {
    by_support!(
        ctx.layout.kernel.support,
        grid_band_w,
        T,
        ctx,
        plane,
        tu,
        vis,
        wgt,
        chunk,
        row0
    )
}

/// Degrids band `tu` of `plane` (see [`degrid_band_impl`]).
pub fn degrid_band<T: Real>(
    ctx: &PassCtx<'_, T>,
    plane: usize,
    tu: usize,
    grid: &[Complex<T>],
    out: SharedMut<Complex64>,
) {
    by_support!(
        ctx.layout.kernel.support,
        degrid_band_w,
        T,
        ctx,
        plane,
        tu,
        grid,
        out
    )
}
