//! Platform-independent elementary functions (ln, exp, sin/cos) built only from IEEE-754
//! correctly rounded operations (+, −, ×, ÷, sqrt), so seeded simulations are bit-identical
//! on every platform, unlike the system libm (Rust's `f64::ln`/`exp`/`sin` call it, and
//! their results may differ in the last bit between platforms). They feed the random
//! draws — normal deviates, power-law fluxes and the LOW/MID layouts, which are part of
//! the arrays' definition — not the imaging physics, which uses std.
//!
//! Methods are the classic ones of fdlibm (Sun Microsystems, 1993): argument reduction by
//! powers of two / multiples of π/2 with split (Cody–Waite) constants, then a short series.
//! Tested against std: ln within 3ε and exp within 2ε relative, sin/cos within ε absolute
//! for |x| ≤ 1e5 and 2ε relative for |x| ≤ 7.

use std::f64::consts::{FRAC_1_SQRT_2, LN_2};

/// ln 2 split so that `k·LN2_HI` is exact for |k| < 2^20 (fdlibm `ln2_hi`, `ln2_lo`).
const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000); // 6.93147180369123816490e-1
const LN2_LO: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76); // 1.90821492927058770002e-10
/// π/2 split in two (fdlibm `pio2_1`, `pio2_1t`); `k·PIO2_1` is exact for |k| < 2^20.
const PIO2_1: f64 = f64::from_bits(0x3FF9_21FB_5440_0000); // 1.57079632673412561417
const PIO2_1T: f64 = f64::from_bits(0x3DD0_B461_1A62_6331); // 6.07710050650619224932e-11

/// Natural logarithm; NaN for x < 0 or NaN, −∞ at 0, +∞ at +∞.
///
/// x = 2^k·m with m ∈ [1/√2, √2); ln m = 2·atanh(s), s = (m − 1)/(m + 1), |s| ≤ 0.172,
/// summed as an odd power series to s^27.
pub fn ln(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x.is_infinite() {
        return f64::INFINITY;
    }
    let (mut m, mut k) = frexp(x);
    // frexp gives m ∈ [0.5, 1); move it to [1/√2, √2).
    if m < FRAC_1_SQRT_2 {
        m *= 2.0;
        k -= 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    // 2·atanh(s) = 2(s + s³/3 + s⁵/5 + …); Horner from the highest term.
    let mut poly = 0.0;
    let mut j = 27.0;
    while j > 1.0 {
        poly = (poly + 1.0 / j) * s2;
        j -= 2.0;
    }
    let series = 2.0 * s * (1.0 + poly);
    let kf = k as f64;
    kf * LN2_HI + (series + kf * LN2_LO)
}

/// Exponential; overflows to +∞ above ~709.78 and underflows to 0 below ~−745.1.
///
/// x = k·ln2 + r with |r| ≤ ln2/2, e^r by its Taylor series to r^15, then scaled by 2^k.
pub fn exp(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x > 709.79 {
        return f64::INFINITY;
    }
    if x < -745.2 {
        return 0.0;
    }
    let k = (x / LN_2).round();
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let mut poly = 1.0;
    let mut j = 15.0;
    while j >= 1.0 {
        poly = 1.0 + poly * r / j;
        j -= 1.0;
    }
    ldexp(poly, k as i32)
}

/// (sin x, cos x) for finite x; accurate to a few ulp for |x| ≤ 1e5 (the reduction uses
/// a two-part π/2), NaN for non-finite x.
pub fn sin_cos(x: f64) -> (f64, f64) {
    if !x.is_finite() {
        return (f64::NAN, f64::NAN);
    }
    let k = (x * std::f64::consts::FRAC_2_PI).round();
    let r = (x - k * PIO2_1) - k * PIO2_1T;
    let r2 = r * r;
    // Taylor series on |r| ≤ π/4, Horner form: sin r = r(1 − r²/(2·3)(1 − r²/(4·5)(…))),
    // cos r = 1 − r²/(1·2)(1 − r²/(3·4)(…)); to r^19 / r^20, truncation < 1e-19.
    let mut s = 0.0;
    let mut c = 0.0;
    let mut j = 19.0;
    while j > 1.0 {
        s = (1.0 - s) * r2 / (j * (j - 1.0));
        c = (1.0 - c) * r2 / ((j + 1.0) * j);
        j -= 2.0;
    }
    let sin_r = r * (1.0 - s);
    let cos_r = 1.0 - (1.0 - c) * r2 / 2.0;
    // Quadrant k mod 4 (k is an exact integer in f64 for the ranges used).
    match (k.rem_euclid(4.0)) as u8 {
        0 => (sin_r, cos_r),
        1 => (cos_r, -sin_r),
        2 => (-sin_r, -cos_r),
        _ => (-cos_r, sin_r),
    }
}

/// Splits a positive finite x into (m, k) with x = m·2^k, m ∈ [0.5, 1).
fn frexp(x: f64) -> (f64, i32) {
    let bits = x.to_bits();
    let exp_bits = ((bits >> 52) & 0x7ff) as i32;
    if exp_bits == 0 {
        // Subnormal: scale into the normal range first.
        let (m, k) = frexp(x * 2f64.powi(54));
        return (m, k - 54);
    }
    let m = f64::from_bits((bits & !(0x7ff << 52)) | (1022u64 << 52));
    (m, exp_bits - 1022)
}

/// x·2^k, exact when the result is a normal number.
fn ldexp(x: f64, k: i32) -> f64 {
    let mut y = x;
    let mut k = k;
    while k > 1000 {
        y *= 2f64.powi(1000);
        k -= 1000;
    }
    while k < -1000 {
        y *= 2f64.powi(-1000);
        k += 1000;
    }
    y * pow2(k)
}

/// 2^k for −1022 ≤ k ≤ 1023 by building the bit pattern (2f64.powi is exact there too,
/// but this avoids relying on it).
fn pow2(k: i32) -> f64 {
    let k = k.clamp(-1022, 1023);
    f64::from_bits(((k + 1023) as u64) << 52)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::rng::Rng;

    const EPS: f64 = f64::EPSILON;

    /// |a − b| in units of ε·|b| (b from std, itself within an ulp of the true value).
    fn rel_eps(a: f64, b: f64) -> f64 {
        (a - b).abs() / (b.abs() * EPS)
    }

    // Tolerances: std's libm is within 1 ulp (≤ ε relative) of the truth; the functions
    // here measure at most 2ε (ln, near 1 and across binades), 1ε (exp, sin/cos relative
    // for small x) and ½ε absolute (sin/cos up to 1e5) from std over 2·10⁶ random points,
    // so the limits below leave about one ulp of margin.

    #[test]
    fn ln_matches_std_to_three_eps() {
        let mut r = Rng::new(11);
        for _ in 0..200_000 {
            // Log-uniform over the normal range, and close to 1 where ln is small.
            let x = 2f64.powf(r.uniform_range(-1020.0, 1020.0));
            assert!(rel_eps(ln(x), x.ln()) <= 3.0, "ln({x})");
            let y = 1.0 + r.uniform_range(-1e-3, 1e-3);
            if y != 1.0 {
                assert!(rel_eps(ln(y), y.ln()) <= 3.0, "ln({y})");
            }
        }
        for x in [
            FRAC_1_SQRT_2,
            0.5,
            2.0,
            1.0 + EPS,
            1.0 - EPS / 2.0,
            f64::MAX,
        ] {
            assert!(rel_eps(ln(x), x.ln()) <= 3.0, "ln({x})");
        }
        assert_eq!(ln(1.0), 0.0);
        // Subnormals are rescaled into the normal range first.
        for x in [5e-320, f64::MIN_POSITIVE / 3.0, 4.9e-324] {
            assert!(rel_eps(ln(x), x.ln()) <= 3.0, "ln({x})");
        }
        assert!(ln(-1.0).is_nan() && ln(f64::NAN).is_nan());
        assert_eq!(
            (ln(0.0), ln(f64::INFINITY)),
            (f64::NEG_INFINITY, f64::INFINITY)
        );
    }

    #[test]
    fn exp_matches_std_to_two_eps() {
        let mut r = Rng::new(12);
        for _ in 0..200_000 {
            // Results from the smallest normal (e^−708) to near overflow.
            let x = r.uniform_range(-708.0, 709.7);
            assert!(rel_eps(exp(x), x.exp()) <= 2.0, "exp({x})");
            let x = r.uniform_range(-1.0, 1.0);
            assert!(rel_eps(exp(x), x.exp()) <= 2.0, "exp({x})");
        }
        // Subnormal results keep fewer bits; they are rounded once, as std's are.
        let mut x = -745.0;
        while x < -708.0 {
            assert!((exp(x) - x.exp()).abs() <= f64::from_bits(1), "exp({x})");
            x += 0.731;
        }
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(800.0), f64::INFINITY);
        assert_eq!(exp(-800.0), 0.0);
        assert!(exp(f64::NAN).is_nan());
    }

    #[test]
    fn sin_cos_match_std_to_one_eps() {
        let mut r = Rng::new(13);
        for _ in 0..200_000 {
            // Absolute error over the documented range |x| ≤ 1e5: the two-part π/2 keeps
            // the reduced argument exact to far below an ulp there.
            let x = r.uniform_range(-1e5, 1e5);
            let (s, c) = sin_cos(x);
            assert!(
                (s - x.sin()).abs() <= EPS && (c - x.cos()).abs() <= EPS,
                "x = {x}"
            );
            // Relative error for the small angles of the layout generator.
            let x = r.uniform_range(-7.0, 7.0);
            let (s, c) = sin_cos(x);
            assert!(
                rel_eps(s, x.sin()) <= 2.0 && rel_eps(c, x.cos()) <= 2.0,
                "x = {x}"
            );
        }
        // Quadrant boundaries.
        for k in -8..=8 {
            let x = k as f64 * std::f64::consts::FRAC_PI_2;
            let (s, c) = sin_cos(x);
            assert!(
                (s - x.sin()).abs() <= EPS && (c - x.cos()).abs() <= EPS,
                "x = {x}"
            );
        }
        assert_eq!(sin_cos(0.0), (0.0, 1.0));
        let (s, c) = sin_cos(f64::INFINITY);
        assert!(s.is_nan() && c.is_nan());
    }
}
