//! FFT-friendly transform sizes (products of 2, 3, 5 and 7), and which of them rustfft
//! transforms fastest.

use std::cell::RefCell;
use std::collections::HashMap;

/// The smallest even n' ≥ n whose only prime factors are 2, 3, 5 and 7 (one
/// implementation, shared with the imaging advice in `sim::advise`).
pub use crate::sim::advise::good_fft_size;

/// How much slower rustfft runs per n log₂ n at length `n` than at its best lengths,
/// from the factors of 5 and 7 in `n`: 1 with at most one of them, +0.15 for each more.
/// Measured single-threaded (rustfft 6.4.1, AVX planner, 16 transforms in place, best
/// of 15; lengths 300–3300, the smooth even ones): lengths of 2s and 3s and at most one
/// 5 or 7 took 0.12–0.16 ns per n log₂ n; 750 = 2·3·5³ took 0.21, 700 = 2²·5²·7 0.23,
/// 2500 = 2²·5⁴ 0.25, while 768 = 2⁸·3 took 0.148 and 756 = 2²·3³·7 0.152.
pub fn fft_length_factor(n: usize) -> f64 {
    let exponent = |p: usize| {
        let (mut m, mut e) = (n.max(1), 0usize);
        while m.is_multiple_of(p) {
            m /= p;
            e += 1;
        }
        e
    };
    1.0 + 0.15 * (exponent(5) + exponent(7)).saturating_sub(1) as f64
}

/// Lengths up to this fraction above the smallest smooth one are considered.
const SLACK: f64 = 1.0 / 16.0;

/// The transform length the gridder uses for at least `n` points: among the smooth even
/// lengths from `n` to `n` + 1/16, the one with the least n log₂ n ×
/// [`fft_length_factor`] (e.g. 768 rather than 750 = 2·3·5³).
pub fn fast_fft_size(n: usize) -> usize {
    // The planner asks this for every kernel row of every sampled window, with few
    // distinct n: remembered per thread (scanning the 1/16 above n is ~n/32 divisions).
    thread_local! {
        static KNOWN: RefCell<HashMap<usize, usize>> = RefCell::new(HashMap::new());
    }
    if let Some(m) = KNOWN.with(|k| k.borrow().get(&n).copied()) {
        return m;
    }
    let m = search_fast_fft_size(n);
    KNOWN.with(|k| {
        let mut k = k.borrow_mut();
        if k.len() >= 4096 {
            k.clear();
        }
        k.insert(n, m);
    });
    m
}

/// [`fast_fft_size`], searched.
fn search_fast_fft_size(n: usize) -> usize {
    let first = good_fft_size(n);
    let cost = |m: usize| m as f64 * (m as f64).log2() * fft_length_factor(m);
    let limit = first as f64 * (1.0 + SLACK);
    let mut best = first;
    let mut m = first;
    while m < usize::MAX / 2 {
        m = good_fft_size(m + 1);
        if m as f64 > limit {
            break;
        }
        if cost(m) < cost(best) {
            best = m;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::{fast_fft_size, fft_length_factor, good_fft_size};

    #[test]
    fn sizes_are_smooth_and_minimal() {
        assert_eq!(good_fft_size(1000), 1000);
        assert_eq!(good_fft_size(1001), 1008);
        assert_eq!(good_fft_size(1537), 1568);
        assert_eq!(good_fft_size(3), 4);
        for n in 2..2000 {
            let g = good_fft_size(n);
            assert!(g >= n && g.is_multiple_of(2));
        }
    }

    #[test]
    fn slow_lengths_are_avoided() {
        assert_eq!(fft_length_factor(768), 1.0);
        assert_eq!(fft_length_factor(640), 1.0);
        assert_eq!(fft_length_factor(900), 1.15);
        assert_eq!(fft_length_factor(750), 1.3);
        // 750 = 2·3·5³ gives way to 756 = 2²·3³·7 (768 costs more: n log n grows).
        assert_eq!(fast_fft_size(745), 756);
        assert_eq!(fast_fft_size(1500), 1512);
        // Fast lengths stay.
        assert_eq!(fast_fft_size(768), 768);
        assert_eq!(fast_fft_size(1024), 1024);
        for n in (16..5000).step_by(7) {
            let m = fast_fft_size(n);
            assert_eq!(m, fast_fft_size(n));
            assert_eq!(m, super::search_fast_fft_size(n));
            assert!(m >= n && m == good_fft_size(m), "{n} -> {m}");
            assert!(
                m as f64 <= good_fft_size(n) as f64 * (1.0 + super::SLACK),
                "{n} -> {m}"
            );
            let c = |k: usize| k as f64 * (k as f64).log2() * fft_length_factor(k);
            assert!(c(m) <= c(good_fft_size(n)), "{n} -> {m}");
        }
    }
}
