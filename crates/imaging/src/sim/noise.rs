//! Thermal noise: seeded complex Gaussian noise on visibilities, and the radiometer
//! equation for its standard deviation (Wrobel & Walker 1999, "Sensitivity", in Synthesis
//! Imaging in Radio Astronomy II, eq. 9-23, with efficiency η_s = 1).

use ndarray::parallel::prelude::*;
use ndarray::{Array2, Axis};
use num_complex::Complex64;

use super::rng::Rng;
use crate::ImagingError;

/// Standard deviation of the real (and of the imaginary) part of one visibility:
/// σ = SEFD / √(2 Δν τ), for two identical antennas of system-equivalent flux density
/// `sefd_jy`, channel width `bandwidth_hz` and integration time `integration_s`.
pub fn radiometer_sigma(
    sefd_jy: f64,
    bandwidth_hz: f64,
    integration_s: f64,
) -> Result<f64, ImagingError> {
    for (name, v) in [
        ("sefd_jy", sefd_jy),
        ("bandwidth_hz", bandwidth_hz),
        ("integration_s", integration_s),
    ] {
        if !(v.is_finite() && v > 0.0) {
            return Err(ImagingError::invalid(
                name,
                format!("{v}; must be positive"),
            ));
        }
    }
    Ok(sefd_jy / (2.0 * bandwidth_hz * integration_s).sqrt())
}

/// Adds independent N(0, σ²) noise to the real and imaginary parts of every sample.
///
/// Row r draws from `Rng::stream(seed, r)`, so the result does not depend on the number of
/// threads. σ = 0 leaves the visibilities unchanged.
pub fn add_thermal_noise(
    vis_rc: &mut Array2<Complex64>,
    sigma: f64,
    seed: u64,
) -> Result<(), ImagingError> {
    if !(sigma.is_finite() && sigma >= 0.0) {
        return Err(ImagingError::invalid(
            "noise_sigma",
            format!("{sigma} Jy; must be finite and non-negative"),
        ));
    }
    if sigma == 0.0 {
        return Ok(());
    }
    vis_rc
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(r, mut row_c)| {
            let mut rng = Rng::stream(seed, r as u64);
            for v in row_c.iter_mut() {
                let re = sigma * rng.normal();
                let im = sigma * rng.normal();
                *v += Complex64::new(re, im);
            }
        });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radiometer_equation() {
        // 1000 Jy, 1 MHz, 10 s: 1000/√(2e7) = 0.2236 Jy.
        let s = radiometer_sigma(1000.0, 1e6, 10.0).unwrap();
        assert!((s - 1000.0 / 2e7f64.sqrt()).abs() < 1e-15);
        assert!(radiometer_sigma(1000.0, 0.0, 10.0).is_err());
        assert!(radiometer_sigma(f64::NAN, 1e6, 10.0).is_err());
    }

    #[test]
    fn noise_statistics_and_determinism() {
        let (nr, nc, sigma) = (500, 100, 0.7);
        let mut v = Array2::<Complex64>::from_elem((nr, nc), Complex64::new(1.0, -2.0));
        add_thermal_noise(&mut v, sigma, 9).unwrap();
        let n = (nr * nc) as f64;
        let (mut sr, mut si, mut srr, mut sii, mut sri) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for z in &v {
            let (a, b) = (z.re - 1.0, z.im + 2.0);
            sr += a;
            si += b;
            srr += a * a;
            sii += b * b;
            sri += a * b;
        }
        // 5-standard-error tolerances: mean σ/√n, variance σ²√(2/n), covariance σ²/√n.
        assert!((sr / n).abs() < 5.0 * sigma / n.sqrt());
        assert!((si / n).abs() < 5.0 * sigma / n.sqrt());
        let s2 = sigma * sigma;
        assert!((srr / n - s2).abs() < 5.0 * s2 * (2.0 / n).sqrt());
        assert!((sii / n - s2).abs() < 5.0 * s2 * (2.0 / n).sqrt());
        assert!((sri / n).abs() < 5.0 * s2 / n.sqrt());
        // Row r is stream r of the seed, whatever thread drew it: a serial replay matches.
        for r in [0, 1, 257, nr - 1] {
            let mut rng = Rng::stream(9, r as u64);
            for c in 0..nc {
                let want = Complex64::new(1.0 + sigma * rng.normal(), -2.0 + sigma * rng.normal());
                assert_eq!(v[[r, c]], want, "row {r}, channel {c}");
            }
        }
        let mut u = Array2::<Complex64>::zeros((2, 2));
        add_thermal_noise(&mut u, 0.0, 9).unwrap();
        assert!(u.iter().all(|z| *z == Complex64::new(0.0, 0.0)));
        assert!(add_thermal_noise(&mut u, -1.0, 9).is_err());
    }
}
