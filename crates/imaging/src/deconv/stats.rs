//! Robust noise estimate for the auto-threshold.

/// 1.4826 × the median absolute deviation from the median: the standard deviation of
/// Gaussian noise, insensitive to the few bright pixels of sources (WSClean's
/// `-auto-threshold` estimator). 0 for an empty slice.
pub(crate) fn robust_rms(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    let med = median_in_place(&mut v);
    v.iter_mut().for_each(|x| *x = (*x - med).abs());
    1.4826 * median_in_place(&mut v)
}

/// Median (the upper one for an even count) by selection; reorders `v`.
fn median_in_place(v: &mut [f64]) -> f64 {
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    *m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_noise_with_outliers() {
        let mut rng = crate::sim::Rng::new(11);
        let mut v: Vec<f64> = (0..200_000).map(|_| 0.3 * rng.normal()).collect();
        for x in v.iter_mut().take(500) {
            *x = 1e3;
        }
        // Standard error of the MAD estimate is about 1.1σ/√n ≈ 0.25 %.
        let r = robust_rms(&v);
        assert!((r / 0.3 - 1.0).abs() < 0.02, "{r}");
        assert_eq!(robust_rms(&[]), 0.0);
    }
}
