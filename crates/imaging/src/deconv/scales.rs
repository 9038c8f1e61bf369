//! Multi-scale basis functions and the scale bias.
//!
//! Scale α (pixels) is the diameter of a tapered, truncated parabola (Cornwell 2008,
//! IEEE JSTSP 2, 793, §3): (1 − (r/α)²) times a Hann taper that reaches zero at
//! r = (n + 1)/2 on an n × n support, n = 2⌈α/2⌉ + 1, normalised to unit sum, so a
//! component's amplitude is its total flux. This is WSClean's "tapered quadratic" shape
//! (Offringa & Smirnov 2017, MNRAS 471, 301); α = 0 is the delta function.
//!
//! Scale bias (WSClean's `-multiscale-scale-bias` β): the peak of the scale-α residual is
//! multiplied by β^(−log₂(α/α₁)) before the scales are compared, where α₁ = 2 × the PSF
//! main-lobe FWHM in pixels (WSClean's first automatic scale) and scale 0 keeps factor 1.

/// Half-size k of the n = 2k + 1 support of scale `alpha`.
pub(crate) fn half_size(alpha: f64) -> usize {
    if alpha <= 0.0 {
        0
    } else {
        (alpha * 0.5).ceil() as usize
    }
}

/// The unit-sum kernel of scale `alpha`, `n × n` row-major with n = 2·half_size + 1.
pub(crate) fn kernel(alpha: f64) -> Vec<f64> {
    let k = half_size(alpha);
    let n = 2 * k + 1;
    if k == 0 {
        return vec![1.0];
    }
    let mut out = vec![0.0; n * n];
    let c = k as f64;
    for y in 0..n {
        for x in 0..n {
            let (dx, dy) = (x as f64 - c, y as f64 - c);
            let r = (dx * dx + dy * dy).sqrt();
            let hann = if 2.0 * r <= (n + 1) as f64 {
                0.5 * (1.0 + (2.0 * std::f64::consts::PI * r / (n + 1) as f64).cos())
            } else {
                0.0
            };
            let shape = if r < alpha {
                1.0 - (r / alpha).powi(2)
            } else {
                0.0
            };
            out[y * n + x] = hann * shape;
        }
    }
    let sum: f64 = out.iter().sum();
    out.iter_mut().for_each(|v| *v /= sum);
    out
}

/// The multiplicative bias of each scale (see the module documentation).
pub(crate) fn bias(scales: &[f64], scale_bias: f64, beam_fwhm_px: f64) -> Vec<f64> {
    let first = (2.0 * beam_fwhm_px).max(1.0);
    scales
        .iter()
        .map(|&a| {
            if a <= 0.0 || scales.len() < 2 {
                1.0
            } else {
                scale_bias.powf(-(a / first).log2())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_are_normalised_symmetric_and_sized() {
        for alpha in [0.0, 1.0, 3.0, 10.0, 30.0] {
            let k = kernel(alpha);
            let n = 2 * half_size(alpha) + 1;
            assert_eq!(k.len(), n * n);
            assert!((k.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            for y in 0..n {
                for x in 0..n {
                    assert!(k[y * n + x] >= 0.0);
                    assert!((k[y * n + x] - k[(n - 1 - y) * n + x]).abs() < 1e-15);
                    assert!((k[y * n + x] - k[x * n + y]).abs() < 1e-15);
                }
            }
            // Peak at the centre.
            let c = n / 2;
            assert!(k.iter().all(|v| *v <= k[c * n + c]));
        }
        assert_eq!(half_size(30.0), 15);
        assert_eq!(half_size(3.0), 2);
    }

    #[test]
    fn wsclean_bias() {
        // α₁ = 2 × 4 px = 8 px: β^(−log2(α/8)).
        let b = bias(&[0.0, 8.0, 16.0, 4.0], 0.6, 4.0);
        assert_eq!(b[0], 1.0);
        assert!((b[1] - 1.0).abs() < 1e-15);
        assert!((b[2] - 1.0 / 0.6).abs() < 1e-12);
        assert!((b[3] - 0.6).abs() < 1e-12);
        assert_eq!(bias(&[0.0, 8.0], 1.0, 4.0), vec![1.0, 1.0]);
    }
}
