//! A deterministic synthetic SKA-Low-like array: 512 stations of 35 m, a dense core and
//! three logarithmic spiral arms, with the cumulative station counts of LOWBD2 as RASCIL's
//! `create_named_configuration("LOWBD2", rmax=…)` keeps it.
//!
//! Radial anchors (horizontal radius → stations within it), all hit exactly:
//!
//! | r (m)  | 100 | 300 | 600 | 1 000 | 3 000 | 10 000 | 30 000 | 65 000 |
//! |--------|-----|-----|-----|-------|-------|--------|--------|--------|
//! | count  | 13  | 94  | 227 | 251   | 314   | 398    | 476    | 512    |
//!
//! The 600 m anchor is the benchmark scenario of the SDP Dask memo (LOW, rmax = 600 m:
//! 227 stations in RASCIL). Inside 1 km the density is uniform within each annulus
//! (random positions, rejection-sampled so station centres are ≥ 35 m apart — the stations
//! touch at most); beyond 1 km stations follow three log spiral arms with stratified,
//! log-uniform radii and Gaussian scatter across the arm. The outermost station lies at
//! 63.8 km.

use super::layout_gen::{self, LayoutSpec, SpiralArms, antennas_of_kind};
use crate::ImagingError;
use crate::antenna::AntennaConfig;
use crate::coords::EarthLocation;

/// Station diameter, m.
pub const LOW_STATION_DIAMETER: f64 = 35.0;
/// Minimum distance between station centres, m (one station diameter).
pub const LOW_MIN_SEPARATION: f64 = 35.0;
/// Fixed internal seed: the layout is part of the definition, not a user choice.
const LOW_LAYOUT_SEED: u64 = 0x5CA1_0B0D_0002_0512;

/// The cumulative anchors (radius m, stations within) of the table above.
pub const LOW_ANCHORS: [(f64, usize); 8] = [
    (100.0, 13),
    (300.0, 94),
    (600.0, 227),
    (1_000.0, 251),
    (3_000.0, 314),
    (10_000.0, 398),
    (30_000.0, 476),
    (65_000.0, 512),
];

/// The SKA-Low site (lon 116.7644°, lat −26.8247°, 377 m).
pub fn low_site() -> EarthLocation {
    EarthLocation::from_degrees(116.7644, -26.8247, 377.0)
}

/// The synthetic LOW array cut to stations within `rmax` metres of the centre (`f64::INFINITY`
/// for all 512). Stations are named `S0001`…`S0512`, inner stations first.
pub fn low_config(rmax: f64) -> Result<AntennaConfig, ImagingError> {
    let placed = layout_gen::generate(&low_spec()?)?;
    let positions = placed.into_iter().map(|(enu, _)| enu);
    let full = AntennaConfig {
        name: "LOW".into(),
        location: low_site(),
        antennas: antennas_of_kind(positions, LOW_STATION_DIAMETER, |i| {
            format!("S{:04}", i + 1)
        })
        .collect(),
    };
    layout_gen::apply_rmax(full, rmax)
}

/// Bands between consecutive anchors: uniform discs inside 1 km, spiral arms outside.
fn low_spec() -> Result<LayoutSpec, ImagingError> {
    let arms = SpiralArms {
        n_arms: 3,
        phase0: std::f64::consts::FRAC_PI_2,
        winding: 0.5,
        r_ref: 1_000.0,
        scatter_frac: 0.04,
        scatter_min_m: 40.0,
    };
    LayoutSpec::anchored(
        LOW_ANCHORS,
        1_000.0,
        arms,
        LOW_MIN_SEPARATION,
        LOW_LAYOUT_SEED,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::layout_gen::min_pair_distance;

    #[test]
    fn cumulative_counts_hit_every_anchor_exactly() {
        let all = low_config(f64::INFINITY).unwrap();
        assert_eq!(all.len(), 512);
        for (r, n) in LOW_ANCHORS {
            assert_eq!(all.within_radius(r).len(), n, "stations within {r} m");
            assert_eq!(low_config(r).unwrap().len(), n, "low_config({r})");
        }
        let outer = all
            .antennas
            .iter()
            .map(|a| a.enu.e.hypot(a.enu.n))
            .fold(0.0, f64::max);
        assert!((63.7e3..63.8e3).contains(&outer), "outermost {outer} m");
    }

    #[test]
    fn stations_do_not_overlap_and_names_sites_are_right() {
        let all = low_config(f64::INFINITY).unwrap();
        let pos: Vec<_> = all.antennas.iter().map(|a| a.enu).collect();
        assert!(min_pair_distance(&pos) >= LOW_MIN_SEPARATION);
        assert_eq!(all.antennas[0].name, "S0001");
        assert_eq!(all.antennas[511].name, "S0512");
        assert!(all.antennas.iter().all(|a| a.diameter == 35.0));
        assert!((all.location.lat.to_degrees() + 26.8247).abs() < 1e-12);
        assert!((all.location.lon.to_degrees() - 116.7644).abs() < 1e-12);
    }

    #[test]
    fn deterministic_and_rmax_filters() {
        assert_eq!(low_config(1e9).unwrap(), low_config(1e9).unwrap());
        let core = low_config(300.0).unwrap();
        assert_eq!(core.len(), 94);
        assert!(
            core.antennas
                .iter()
                .all(|a| a.enu.e.hypot(a.enu.n) <= 300.0)
        );
        assert!(low_config(0.0).is_err());
        assert!(low_config(f64::NAN).is_err());
        assert!(low_config(1.0).is_err());
    }

    #[test]
    fn outer_stations_follow_three_arms() {
        // Azimuths of the stations beyond 3 km cluster around three arms 120° apart with a
        // Gaussian scatter of σ = 4 % of r across the arm, i.e. 0.04 rad: all 198 lie within
        // 5σ = 0.2 rad of their arm (the largest offset is 0.13 rad).
        let all = low_config(f64::INFINITY).unwrap();
        let tau = std::f64::consts::TAU;
        let mut far = 0;
        for a in &all.antennas {
            let r = a.enu.e.hypot(a.enu.n);
            if r <= 3_000.0 {
                continue;
            }
            far += 1;
            let base = std::f64::consts::FRAC_PI_2 + 0.5 * (r / 1_000.0).ln();
            let theta = a.enu.n.atan2(a.enu.e);
            let best = (0..3)
                .map(|k| {
                    let d = (theta - base - tau * k as f64 / 3.0).rem_euclid(tau);
                    d.min(tau - d)
                })
                .fold(f64::INFINITY, f64::min);
            assert!(best < 5.0 * 0.04, "{} is {best} rad off any arm", a.name);
        }
        assert_eq!(far, 512 - 314);
    }
}
