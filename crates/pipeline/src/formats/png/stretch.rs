//! A robust display stretch for radio images: clip to the [0.5, 99.9] percentiles, then
//! an asinh curve (Lupton et al. 1999, AJ 118, 1406) that keeps faint emission and noise
//! visible next to bright sources.

use ndarray::Array2;

/// Percentiles of the clip range.
const LO_PERCENTILE: f64 = 0.5;
const HI_PERCENTILE: f64 = 99.9;
/// Softening of the asinh curve, as a fraction of the clip range.
const ASINH_SOFTENING: f64 = 0.1;
/// At most this many pixels (an even stride through the image) set the percentiles.
const MAX_SAMPLES: usize = 1 << 20;

/// Maps pixel values to [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stretch {
    pub lo: f64,
    pub hi: f64,
}

/// The `p`-th percentile (nearest rank) of `v`, which it reorders; `v` must be non-empty.
fn percentile(v: &mut [f64], p: f64) -> f64 {
    let k = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    let (_, x, _) = v.select_nth_unstable_by(k.min(v.len() - 1), f64::total_cmp);
    *x
}

impl Stretch {
    /// Chooses the clip range from the finite pixels of `data`. When the percentiles
    /// coincide (e.g. one bright pixel on a blank field) the full range is used; a
    /// constant image gives `lo == hi`, which [`Stretch::apply`] maps to 0.
    pub fn from_data(data: &Array2<f64>) -> Self {
        let stride = data.len().div_ceil(MAX_SAMPLES).max(1);
        let mut sample: Vec<f64> = data
            .iter()
            .step_by(stride)
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        if sample.is_empty() {
            return Self { lo: 0.0, hi: 0.0 };
        }
        let lo = percentile(&mut sample, LO_PERCENTILE);
        let hi = percentile(&mut sample, HI_PERCENTILE);
        if hi > lo {
            return Self { lo, hi };
        }
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for &v in data.iter().filter(|v| v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        Self { lo, hi }
    }

    /// The display level of `v` in [0, 1]; non-finite pixels and constant images give 0.
    pub fn apply(&self, v: f64) -> f64 {
        let range = self.hi - self.lo;
        if !(range > 0.0 && range.is_finite() && v.is_finite()) {
            return 0.0;
        }
        let t = ((v - self.lo) / range).clamp(0.0, 1.0);
        (t / ASINH_SOFTENING).asinh() / (1.0 / ASINH_SOFTENING).asinh()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_outliers_and_is_monotonic() {
        let mut d = Array2::from_shape_fn((40, 40), |(y, x)| (y * 40 + x) as f64);
        d[[0, 0]] = -1e9;
        d[[39, 39]] = 1e9;
        let s = Stretch::from_data(&d);
        assert!(s.lo > -1e9 && s.hi < 1e9);
        assert_eq!(s.apply(-1e9), 0.0);
        assert_eq!(s.apply(1e9), 1.0);
        assert!(s.apply(500.0) < s.apply(501.0));
    }

    #[test]
    fn constant_and_empty_images() {
        let s = Stretch::from_data(&Array2::from_elem((16, 16), 3.0));
        assert_eq!(s.apply(3.0), 0.0);
        let s = Stretch::from_data(&Array2::from_elem((16, 16), f64::NAN));
        assert_eq!(s.apply(f64::NAN), 0.0);
    }
}
