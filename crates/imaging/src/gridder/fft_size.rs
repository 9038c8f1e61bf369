//! FFT-friendly transform sizes (products of 2, 3, 5 and 7).

/// The smallest even n' ≥ n whose only prime factors are 2, 3, 5 and 7.
pub fn good_fft_size(n: usize) -> usize {
    let mut m = n.max(2);
    loop {
        if m.is_multiple_of(2) {
            let mut r = m;
            for p in [2, 3, 5, 7] {
                while r.is_multiple_of(p) {
                    r /= p;
                }
            }
            if r == 1 {
                return m;
            }
        }
        m += 1;
    }
}

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
