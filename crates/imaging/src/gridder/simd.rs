//! The instruction-set variants of the gridding inner loops: [`Portable`] Rust, and
//! [`Avx2`] (AVX2 + FMA intrinsics, x86-64 only), which `pass.rs` picks at run time.
//!
//! The degridding dot product is written with intrinsics because the compiler's own
//! vectorisation of it paired real with imaginary parts and left most of the work
//! scalar.

use super::real::Real;

/// Side of the per-tile buffers: a tile plus the largest kernel halo.
pub const BUF: usize = super::index::TILE + super::params::MAX_SUPPORT;

/// One part (real or imaginary) of a tile of the grid and its halo, row stride [`BUF`].
pub type TileBuf<T> = [T; BUF * BUF];

/// An instruction set the inner loops are compiled for.
pub trait Isa {
    /// Whether [`Isa::mul_add`] is fused (so other fused evaluations are fast too).
    const FUSED: bool;

    /// a·b + c (fused, with one rounding, where the CPU has FMA).
    fn mul_add<T: Real>(a: T, b: T, c: T) -> T;

    /// (Σ_a Σ_b re[s0 + a·BUF + b]·ku[a]·kv[b], the same for `im`): the degridded value
    /// of one sample whose footprint starts at `s0` of the tile buffers.
    fn tile_dot<T: Real, const W: usize>(
        re: &TileBuf<T>,
        im: &TileBuf<T>,
        s0: usize,
        ku: &[T; W],
        kv: &[T; W],
    ) -> (T, T);
}

/// Plain Rust: a product then a sum (on CPUs without FMA a fused operation is a slow
/// library call).
#[derive(Debug)]
pub struct Portable;

impl Isa for Portable {
    const FUSED: bool = false;

    #[inline(always)]
    fn mul_add<T: Real>(a: T, b: T, c: T) -> T {
        a * b + c
    }

    #[inline(always)]
    fn tile_dot<T: Real, const W: usize>(
        re: &TileBuf<T>,
        im: &TileBuf<T>,
        s0: usize,
        ku: &[T; W],
        kv: &[T; W],
    ) -> (T, T) {
        let part = |buf: &TileBuf<T>| {
            let mut acc = [T::zero(); W];
            for (a, &k) in ku.iter().enumerate() {
                let row = &buf[s0 + a * BUF..s0 + a * BUF + W];
                for (c, &g) in acc.iter_mut().zip(row) {
                    *c += g * k;
                }
            }
            acc.iter().zip(kv).fold(T::zero(), |s, (&c, &k)| s + c * k)
        };
        (part(re), part(im))
    }
}

/// AVX2 and FMA. Only for code compiled with `#[target_feature(enable = "avx2,fma")]`
/// and run on a CPU that has both (checked at run time by the caller).
#[cfg(target_arch = "x86_64")]
#[derive(Debug)]
pub struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Isa for Avx2 {
    const FUSED: bool = true;

    #[inline(always)]
    fn mul_add<T: Real>(a: T, b: T, c: T) -> T {
        a.fused_mul_add(b, c)
    }

    #[inline(always)]
    fn tile_dot<T: Real, const W: usize>(
        re: &TileBuf<T>,
        im: &TileBuf<T>,
        s0: usize,
        ku: &[T; W],
        kv: &[T; W],
    ) -> (T, T) {
        // The vector loads read up to 8 cells past the footprint of each row (and
        // multiply them by zero): they must stay inside the buffer.
        assert!(
            W <= super::params::MAX_SUPPORT && s0 + (W - 1) * BUF + 16 <= BUF * BUF,
            "footprint at {s0} (W = {W}) leaves the tile buffer"
        );
        // SAFETY: the caller runs this only on CPUs with AVX2 and FMA (type contract),
        // and the assertion above keeps every load inside `re` and `im`.
        unsafe { T::tile_dot_avx2::<W>(re, im, s0, ku, kv) }
    }
}

/// The AVX2 kernels per real type.
#[cfg(target_arch = "x86_64")]
pub trait Avx2Real: Sized {
    /// See [`Isa::tile_dot`].
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA, and `s0 + (W − 1)·BUF + 16 ≤ BUF²`.
    unsafe fn tile_dot_avx2<const W: usize>(
        re: &TileBuf<Self>,
        im: &TileBuf<Self>,
        s0: usize,
        ku: &[Self; W],
        kv: &[Self; W],
    ) -> (Self, Self);
}

/// Nothing to provide off x86-64.
#[cfg(not(target_arch = "x86_64"))]
pub trait Avx2Real {}

#[cfg(not(target_arch = "x86_64"))]
impl Avx2Real for f64 {}

#[cfg(not(target_arch = "x86_64"))]
impl Avx2Real for f32 {}

#[cfg(target_arch = "x86_64")]
impl Avx2Real for f64 {
    #[inline(always)]
    unsafe fn tile_dot_avx2<const W: usize>(
        re: &TileBuf<f64>,
        im: &TileBuf<f64>,
        s0: usize,
        ku: &[f64; W],
        kv: &[f64; W],
    ) -> (f64, f64) {
        // SAFETY: as the caller guarantees.
        unsafe { avx2::tile_dot_f64::<W>(re, im, s0, ku, kv) }
    }
}

#[cfg(target_arch = "x86_64")]
impl Avx2Real for f32 {
    #[inline(always)]
    unsafe fn tile_dot_avx2<const W: usize>(
        re: &TileBuf<f32>,
        im: &TileBuf<f32>,
        s0: usize,
        ku: &[f32; W],
        kv: &[f32; W],
    ) -> (f32, f32) {
        // SAFETY: as the caller guarantees.
        unsafe { avx2::tile_dot_f32::<W>(re, im, s0, ku, kv) }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BUF, TileBuf};

    /// `kv` as `N` vectors of `L` lanes, zero past W.
    #[inline(always)]
    fn padded<T: Copy + Default, const W: usize>(kv: &[T; W]) -> [T; 16] {
        let mut k = [T::default(); 16];
        k[..W].copy_from_slice(kv);
        k
    }

    /// f64, 4 lanes: rows of the footprint are summed as ⌈W/4⌉ vectors along v,
    /// weighted by ku, then dotted with kv.
    ///
    /// # Safety
    /// AVX2 and FMA; `s0 + (W − 1)·BUF + 16 ≤ BUF²`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub unsafe fn tile_dot_f64<const W: usize>(
        re: &TileBuf<f64>,
        im: &TileBuf<f64>,
        s0: usize,
        ku: &[f64; W],
        kv: &[f64; W],
    ) -> (f64, f64) {
        const L: usize = 4;
        let n = W.div_ceil(L);
        let mut ar = [_mm256_setzero_pd(); 4];
        let mut ai = [_mm256_setzero_pd(); 4];
        for (a, &k) in ku.iter().enumerate() {
            let k = _mm256_set1_pd(k);
            let o = s0 + a * BUF;
            for j in 0..n {
                // SAFETY: o + L·j + L ≤ s0 + (W − 1)·BUF + 16 ≤ BUF² (caller).
                let (r, i) = unsafe {
                    (
                        _mm256_loadu_pd(re.as_ptr().add(o + L * j)),
                        _mm256_loadu_pd(im.as_ptr().add(o + L * j)),
                    )
                };
                ar[j] = _mm256_fmadd_pd(r, k, ar[j]);
                ai[j] = _mm256_fmadd_pd(i, k, ai[j]);
            }
        }
        let kp = padded(kv);
        let kv = if W.is_multiple_of(L) {
            kv.as_slice()
        } else {
            &kp[..]
        };
        let (mut sr, mut si) = (_mm256_setzero_pd(), _mm256_setzero_pd());
        for j in 0..n {
            // SAFETY: L·j + L ≤ W when W is a multiple of L, else ≤ 16 = kp.len().
            let k = unsafe { _mm256_loadu_pd(kv.as_ptr().add(L * j)) };
            sr = _mm256_fmadd_pd(ar[j], k, sr);
            si = _mm256_fmadd_pd(ai[j], k, si);
        }
        // [sr0+sr1, si0+si1, sr2+sr3, si2+si3], then the two halves.
        let h = _mm256_hadd_pd(sr, si);
        let s = _mm_add_pd(_mm256_castpd256_pd128(h), _mm256_extractf128_pd::<1>(h));
        (_mm_cvtsd_f64(s), _mm_cvtsd_f64(_mm_unpackhi_pd(s, s)))
    }

    /// f32, 8 lanes: as [`tile_dot_f64`].
    ///
    /// # Safety
    /// AVX2 and FMA; `s0 + (W − 1)·BUF + 16 ≤ BUF²`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub unsafe fn tile_dot_f32<const W: usize>(
        re: &TileBuf<f32>,
        im: &TileBuf<f32>,
        s0: usize,
        ku: &[f32; W],
        kv: &[f32; W],
    ) -> (f32, f32) {
        const L: usize = 8;
        let n = W.div_ceil(L);
        let mut ar = [_mm256_setzero_ps(); 2];
        let mut ai = [_mm256_setzero_ps(); 2];
        for (a, &k) in ku.iter().enumerate() {
            let k = _mm256_set1_ps(k);
            let o = s0 + a * BUF;
            for j in 0..n {
                // SAFETY: o + L·j + L ≤ s0 + (W − 1)·BUF + 16 ≤ BUF² (caller).
                let (r, i) = unsafe {
                    (
                        _mm256_loadu_ps(re.as_ptr().add(o + L * j)),
                        _mm256_loadu_ps(im.as_ptr().add(o + L * j)),
                    )
                };
                ar[j] = _mm256_fmadd_ps(r, k, ar[j]);
                ai[j] = _mm256_fmadd_ps(i, k, ai[j]);
            }
        }
        let kp = padded(kv);
        let kv = if W.is_multiple_of(L) {
            kv.as_slice()
        } else {
            &kp[..]
        };
        let (mut sr, mut si) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for j in 0..n {
            // SAFETY: L·j + L ≤ W when W is a multiple of L, else ≤ 16 = kp.len().
            let k = unsafe { _mm256_loadu_ps(kv.as_ptr().add(L * j)) };
            sr = _mm256_fmadd_ps(ar[j], k, sr);
            si = _mm256_fmadd_ps(ai[j], k, si);
        }
        // Lanes [r01, r23, i01, i23 | r45, r67, i45, i67], halves added, then pairs.
        let h = _mm256_hadd_ps(sr, si);
        let s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
        let s = _mm_hadd_ps(s, s);
        (_mm_cvtss_f32(s), _mm_cvtss_f32(_mm_shuffle_ps::<1>(s, s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::Rng;

    /// The sum written out term by term in f64 (the oracle).
    fn direct<T: Real, const W: usize>(
        buf: &TileBuf<T>,
        s0: usize,
        ku: &[T; W],
        kv: &[T; W],
    ) -> f64 {
        let mut s = 0.0;
        for a in 0..W {
            for b in 0..W {
                s += buf[s0 + a * BUF + b].to_f() * ku[a].to_f() * kv[b].to_f();
            }
        }
        s
    }

    /// Both variants against the oracle for one support, at footprints in the corners
    /// of the tile (the vector loads then reach furthest past the footprint).
    fn check<T: Real, const W: usize>(tol: f64) {
        let mut rng = Rng::new(W as u64);
        let mut fill = || -> TileBuf<T> {
            let mut b = [T::zero(); BUF * BUF];
            for x in b.iter_mut() {
                *x = T::from_f(2.0 * rng.uniform() - 1.0);
            }
            b
        };
        let (re, im) = (fill(), fill());
        let mut rng = Rng::new(100 + W as u64);
        let mut kern = || -> [T; W] { std::array::from_fn(|_| T::from_f(rng.uniform())) };
        let (ku, kv) = (kern(), kern());
        let last = super::super::index::TILE - 1;
        for (bu, bv) in [(0, 0), (last, last), (0, last), (last, 0), (7, 3)] {
            let s0 = bu * BUF + bv;
            let want = (direct(&re, s0, &ku, &kv), direct(&im, s0, &ku, &kv));
            let scale = (W * W) as f64;
            let mut got = vec![Portable::tile_dot(&re, &im, s0, &ku, &kv)];
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                got.push(Avx2::tile_dot(&re, &im, s0, &ku, &kv));
            }
            for (r, i) in got {
                assert!((r.to_f() - want.0).abs() <= tol * scale, "W={W} re at {s0}");
                assert!((i.to_f() - want.1).abs() <= tol * scale, "W={W} im at {s0}");
            }
        }
    }

    macro_rules! all_supports {
        ($t:ty, $tol:expr) => {
            check::<$t, 4>($tol);
            check::<$t, 5>($tol);
            check::<$t, 6>($tol);
            check::<$t, 7>($tol);
            check::<$t, 8>($tol);
            check::<$t, 9>($tol);
            check::<$t, 10>($tol);
            check::<$t, 11>($tol);
            check::<$t, 12>($tol);
            check::<$t, 13>($tol);
            check::<$t, 14>($tol);
            check::<$t, 15>($tol);
            check::<$t, 16>($tol);
        };
    }

    #[test]
    fn tile_dot_matches_the_direct_sum_for_every_support() {
        all_supports!(f64, 1e-15);
        all_supports!(f32, 1e-6);
    }
}
