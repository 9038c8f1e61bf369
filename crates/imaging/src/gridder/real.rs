//! The floating-point types the gridder runs in (f32 and f64).

use num_complex::Complex;
use rustfft::FftNum;

/// A real type the gridding kernels are generic over.
pub trait Real:
    FftNum
    + super::simd::Avx2Real
    + Copy
    + Send
    + Sync
    + Default
    + PartialOrd
    + std::ops::AddAssign
    + std::ops::MulAssign
    + std::fmt::Debug
    + 'static
{
    fn from_f(x: f64) -> Self;
    fn to_f(self) -> f64;
    /// self·a + b with one rounding (a single instruction on CPUs with FMA; a slow
    /// library call on those without).
    fn fused_mul_add(self, a: Self, b: Self) -> Self;
}

impl Real for f64 {
    #[inline(always)]
    fn from_f(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn to_f(self) -> f64 {
        self
    }
    #[inline(always)]
    fn fused_mul_add(self, a: Self, b: Self) -> Self {
        self.mul_add(a, b)
    }
}

impl Real for f32 {
    #[inline(always)]
    fn from_f(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn to_f(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn fused_mul_add(self, a: Self, b: Self) -> Self {
        self.mul_add(a, b)
    }
}

/// Converts a complex f64 to the working precision.
#[inline(always)]
pub fn cx<T: Real>(c: num_complex::Complex64) -> Complex<T> {
    Complex::new(T::from_f(c.re), T::from_f(c.im))
}
