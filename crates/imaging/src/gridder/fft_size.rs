//! FFT-friendly transform sizes (products of 2, 3, 5 and 7).

/// The smallest even n' ≥ n whose only prime factors are 2, 3, 5 and 7 (one
/// implementation, shared with the imaging advice in `sim::advise`).
pub use crate::sim::advise::good_fft_size;

#[cfg(test)]
mod tests {
    use super::good_fft_size;

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
}
