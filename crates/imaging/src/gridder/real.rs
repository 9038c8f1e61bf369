//! The floating-point types the gridder runs in (f32 and f64).

use num_complex::Complex;
use rustfft::FftNum;

/// A real type the gridding kernels are generic over.
pub trait Real:
    FftNum
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
    /// Name as accepted by `--precision`.
    const NAME: &'static str;
    /// Smallest epsilon the gridder accepts in this precision.
    const MIN_EPSILON: f64;
    fn from_f(x: f64) -> Self;
    fn to_f(self) -> f64;
    fn mul_add(self, a: Self, b: Self) -> Self;
}

impl Real for f64 {
    const NAME: &'static str = "f64";
    const MIN_EPSILON: f64 = 1e-12;
    #[inline(always)]
    fn from_f(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn to_f(self) -> f64 {
        self
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        // Plain multiply-add: with FMA enabled by target features LLVM contracts it,
        // without them it stays fast (a libm fma call would not).
        self * a + b
    }
}

impl Real for f32 {
    const NAME: &'static str = "f32";
    const MIN_EPSILON: f64 = 1e-5;
    #[inline(always)]
    fn from_f(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn to_f(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        self * a + b
    }
}

/// Converts a complex f64 to the working precision.
#[inline(always)]
pub fn cx<T: Real>(c: num_complex::Complex64) -> Complex<T> {
    Complex::new(T::from_f(c.re), T::from_f(c.im))
}
