//! Radians → degrees for the files aperture writes (FITS `CRVALi`/`CDELTi`, the bundle's
//! `meta.json`), chosen so that reading them back (`f64::to_radians`, as
//! `RaDec::from_degrees` and the FITS reader do) gives the same radians, bit for bit.
//!
//! `f64::to_degrees` alone does not: 15° becomes 0.2617993877991494 rad, which converts
//! back to 14.999999999999998°. This picks the shortest decimal whose radians are the
//! given bits, so an angle that started as a short number of degrees is written as that
//! number.

/// `rad` in degrees: the shortest decimal `d` with `d.to_radians() == rad` (bitwise),
/// or, when no `f64` converts to exactly `rad`, `rad.to_degrees()`.
pub(crate) fn rad_to_deg(rad: f64) -> f64 {
    let deg = rad.to_degrees();
    if !deg.is_finite() {
        return deg;
    }
    let exact = |d: f64| d.to_radians().to_bits() == rad.to_bits();
    // 17 significant digits reproduce `deg` itself, so this also tries the plain value.
    let shortest = (1..=17)
        .filter_map(|digits| format!("{deg:.*e}", digits - 1).parse::<f64>().ok())
        .find(|&d| exact(d));
    if let Some(d) = shortest {
        return d;
    }
    // The preimage, if any, is within a few units in the last place of `deg`.
    let (mut below, mut above) = (deg, deg);
    for _ in 0..4 {
        below = below.next_down();
        above = above.next_up();
        if let Some(d) = [below, above].into_iter().find(|&d| exact(d)) {
            return d;
        }
    }
    deg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_degree_values_come_back_exactly() {
        for d in [
            0.0_f64,
            -0.0,
            15.0,
            150.1,
            -30.5,
            201.365,
            -43.019,
            83.63,
            22.01,
            359.95,
            90.0,
            -90.0,
            30.0 / 3600.0,
            1e-3,
            1.0 / 3.0,
        ] {
            assert_eq!(rad_to_deg(d.to_radians()).to_bits(), d.to_bits(), "{d}");
        }
        // The case the plain conversion gets wrong.
        assert_ne!(15.0_f64.to_radians().to_degrees(), 15.0);
    }

    #[test]
    fn any_radian_value_reads_back_to_itself_when_it_can() {
        let mut misses = 0;
        for i in 0..20_000 {
            let rad = (i as f64 * 0.618_033_988_749_894_9).sin() * std::f64::consts::PI;
            let d = rad_to_deg(rad);
            if d.to_radians().to_bits() != rad.to_bits() {
                misses += 1;
                assert_eq!(d, rad.to_degrees());
            }
            // Never more than an ulp or two from the plain conversion.
            assert!((d - rad.to_degrees()).abs() <= 4.0 * f64::EPSILON * d.abs().max(1e-300));
        }
        // About 9% of radian values have no degree preimage at all.
        assert!(misses < 20_000 / 10, "{misses}");
    }
}
