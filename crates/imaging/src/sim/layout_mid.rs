//! A deterministic synthetic SKA-Mid-like array: 197 dishes — 64 MeerKAT dishes of 13.5 m
//! and 133 SKA dishes of 15 m — with a dense core and three logarithmic spiral arms giving
//! baselines up to ~150 km.
//!
//! Radial anchors chosen here (horizontal radius → dishes within it, MeerKAT among them),
//! all hit exactly:
//!
//! | r (m)    | 250 | 500 | 1 000 | 4 000 | 12 000 | 35 000 | 87 000 |
//! |----------|-----|-----|-------|-------|--------|--------|--------|
//! | all      | 24  | 60  | 99    | 140   | 160    | 180    | 197    |
//! | MeerKAT  | 19  | 48  | 56    | 64    | 64     | 64     | 64     |
//!
//! Half the dishes (99) are within 1 km. As in MeerKAT, 48 MeerKAT dishes sit in a
//! ~1 km-diameter core and 16 spread out to 4 km (the generated MeerKAT baselines reach
//! 6.2 km; the real array's reach 8 km). Inside 1 km the density is uniform within each
//! annulus; beyond, dishes follow three log spiral arms (stratified log-uniform radii,
//! Gaussian scatter across the arm). Three arms 120° apart reaching ~85 km give a longest
//! baseline of about √3 · 85 km ≈ 147 km (142 km for the generated layout, whose outermost
//! dish is at 85.7 km). Dish centres are ≥ 20 m apart.

use super::layout_gen::{self, LayoutSpec, SpiralArms, antennas_of_kind};
use crate::ImagingError;
use crate::antenna::AntennaConfig;
use crate::coords::EarthLocation;

/// SKA dish diameter, m.
pub const SKA_DISH_DIAMETER: f64 = 15.0;
/// MeerKAT dish diameter, m.
pub const MEERKAT_DISH_DIAMETER: f64 = 13.5;
/// Minimum distance between dish centres, m.
pub const MID_MIN_SEPARATION: f64 = 20.0;
const MID_LAYOUT_SEED: u64 = 0x5CA1_0B0D_0001_0197;

/// (radius m, dishes within, MeerKAT dishes within) — the table above.
pub const MID_ANCHORS: [(f64, usize, usize); 7] = [
    (250.0, 24, 19),
    (500.0, 60, 48),
    (1_000.0, 99, 56),
    (4_000.0, 140, 64),
    (12_000.0, 160, 64),
    (35_000.0, 180, 64),
    (87_000.0, 197, 64),
];

/// The SKA-Mid site (lon 21.4430°, lat −30.7130°, 1053 m).
pub fn mid_site() -> EarthLocation {
    EarthLocation::from_degrees(21.4430, -30.7130, 1053.0)
}

/// The synthetic MID array cut to dishes within `rmax` metres (`f64::INFINITY` for all 197).
/// MeerKAT dishes come first, named `M000`…`M063`, then `SKA001`…`SKA133`; each kind is
/// ordered band by band from the centre outwards.
pub fn mid_config(rmax: f64) -> Result<AntennaConfig, ImagingError> {
    let placed = layout_gen::generate(&mid_spec()?)?;
    // Each band's MeerKAT dishes are spread evenly over its placement order: a random
    // subset in the disc bands, and from the inner to the outer edge in the spiral bands,
    // whose radii are stratified in placement order.
    let (mut meerkat, mut ska) = (Vec::new(), Vec::new());
    for dishes in placed.chunk_by(|a, b| a.1 == b.1) {
        let band = dishes[0].1;
        let n_mk = MID_ANCHORS[band].2 - band.checked_sub(1).map_or(0, |b| MID_ANCHORS[b].2);
        let n = dishes.len();
        for (j, &(enu, _)) in dishes.iter().enumerate() {
            if (j + 1) * n_mk / n > j * n_mk / n {
                meerkat.push(enu);
            } else {
                ska.push(enu);
            }
        }
    }
    let full = AntennaConfig {
        name: "MID".into(),
        location: mid_site(),
        antennas: antennas_of_kind(meerkat, MEERKAT_DISH_DIAMETER, |i| format!("M{i:03}"))
            .chain(antennas_of_kind(ska, SKA_DISH_DIAMETER, |i| {
                format!("SKA{:03}", i + 1)
            }))
            .collect(),
    };
    layout_gen::apply_rmax(full, rmax)
}

/// Bands between consecutive anchors: uniform discs inside 1 km, spiral arms outside.
fn mid_spec() -> Result<LayoutSpec, ImagingError> {
    let arms = SpiralArms {
        n_arms: 3,
        phase0: -std::f64::consts::FRAC_PI_6,
        winding: 0.5,
        r_ref: 1_000.0,
        scatter_frac: 0.04,
        scatter_min_m: 30.0,
    };
    LayoutSpec::anchored(
        MID_ANCHORS.map(|(r, n, _)| (r, n)),
        1_000.0,
        arms,
        MID_MIN_SEPARATION,
        MID_LAYOUT_SEED,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::layout_gen::min_pair_distance;

    /// The dishes of `c` of diameter `d`, as a configuration.
    fn kind(c: &AntennaConfig, d: f64) -> AntennaConfig {
        AntennaConfig {
            antennas: c
                .antennas
                .iter()
                .filter(|a| a.diameter == d)
                .cloned()
                .collect(),
            ..c.clone()
        }
    }

    #[test]
    fn counts_kinds_and_anchors_are_exact() {
        let all = mid_config(f64::INFINITY).unwrap();
        assert_eq!(all.len(), 197);
        let mk = kind(&all, MEERKAT_DISH_DIAMETER);
        assert_eq!(mk.len(), 64);
        assert_eq!(kind(&all, SKA_DISH_DIAMETER).len(), 133);
        for (r, n, n_mk) in MID_ANCHORS {
            assert_eq!(all.within_radius(r).len(), n, "dishes within {r} m");
            assert_eq!(
                mk.within_radius(r).len(),
                n_mk,
                "MeerKAT dishes within {r} m"
            );
        }
        assert_eq!(all.antennas[0].name, "M000");
        assert_eq!(all.antennas[63].name, "M063");
        assert_eq!(all.antennas[64].name, "SKA001");
        assert_eq!(all.antennas[196].name, "SKA133");
        assert!(all.antennas[..64].iter().all(|a| a.diameter == 13.5));
        assert!(all.antennas[64..].iter().all(|a| a.diameter == 15.0));
    }

    #[test]
    fn meerkat_core_and_outliers_reach_four_km() {
        // The module's figures: a ~1 km-diameter core of 48, outliers out to 4 km,
        // MeerKAT baselines up to 6.2 km.
        let mk = kind(&mid_config(f64::INFINITY).unwrap(), MEERKAT_DISH_DIAMETER);
        let core = mk.within_radius(500.0);
        assert_eq!(core.len(), 48);
        assert!(core.max_baseline() <= 1_000.0);
        let outer = mk
            .antennas
            .iter()
            .map(|a| a.enu.e.hypot(a.enu.n))
            .fold(0.0, f64::max);
        assert!(
            (3_500.0..=4_000.0).contains(&outer),
            "outermost MeerKAT {outer} m"
        );
        let bmax = mk.max_baseline();
        assert!((6.15e3..6.25e3).contains(&bmax), "MeerKAT longest {bmax} m");
    }

    #[test]
    fn separation_extent_and_determinism() {
        let all = mid_config(f64::INFINITY).unwrap();
        let pos: Vec<_> = all.antennas.iter().map(|a| a.enu).collect();
        assert!(min_pair_distance(&pos) >= MID_MIN_SEPARATION);
        let bmax = all.max_baseline();
        assert!(
            (141.5e3..142.5e3).contains(&bmax),
            "longest baseline {bmax} m"
        );
        let outer = pos.iter().map(|p| p.e.hypot(p.n)).fold(0.0, f64::max);
        assert!(
            (85.6e3..85.7e3).contains(&outer),
            "outermost dish {outer} m"
        );
        assert_eq!(all, mid_config(f64::INFINITY).unwrap());
        assert_eq!(mid_config(1_000.0).unwrap().len(), 99);
        assert!(mid_config(-5.0).is_err());
    }
}
