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
//! Half the dishes (99) are within 1 km; 48 MeerKAT dishes sit in its ~1 km-diameter core and
//! 16 out to 4 km (8 km baselines), as in MeerKAT. Inside 1 km the density is uniform within
//! each annulus; beyond, dishes follow three log spiral arms (stratified log-uniform radii,
//! Gaussian scatter across the arm). Three arms 120° apart reaching ~85 km give a longest
//! baseline of about √3 · 85 km ≈ 147 km (142 km for the generated layout). Dish centres
//! are ≥ 20 m apart.

use super::layout_gen::{self, Band, BandShape, LayoutSpec, SpiralArms};
use crate::ImagingError;
use crate::antenna::{Antenna, AntennaConfig};
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
/// ordered from the centre outwards.
pub fn mid_config(rmax: f64) -> Result<AntennaConfig, ImagingError> {
    let placed = layout_gen::generate(&mid_spec())?;
    // Within each band the first `meerkat` dishes placed are MeerKAT dishes.
    let mut meerkat = Vec::new();
    let mut ska = Vec::new();
    let mut band_start = 0;
    let mut prev_band = usize::MAX;
    for (i, (enu, band)) in placed.into_iter().enumerate() {
        if band != prev_band {
            (band_start, prev_band) = (i, band);
        }
        let n_mk_band = MID_ANCHORS[band].2 - band.checked_sub(1).map_or(0, |b| MID_ANCHORS[b].2);
        if i - band_start < n_mk_band {
            meerkat.push(enu);
        } else {
            ska.push(enu);
        }
    }
    let antennas = meerkat
        .into_iter()
        .enumerate()
        .map(|(i, enu)| Antenna {
            name: format!("M{i:03}"),
            enu,
            diameter: MEERKAT_DISH_DIAMETER,
        })
        .chain(ska.into_iter().enumerate().map(|(i, enu)| Antenna {
            name: format!("SKA{:03}", i + 1),
            enu,
            diameter: SKA_DISH_DIAMETER,
        }))
        .collect();
    let full = AntennaConfig {
        name: "MID".into(),
        location: mid_site(),
        antennas,
    };
    layout_gen::apply_rmax(full, rmax)
}

fn mid_spec() -> LayoutSpec {
    let mut bands = Vec::with_capacity(MID_ANCHORS.len());
    let (mut r_prev, mut n_prev) = (0.0, 0);
    for (r, n, _) in MID_ANCHORS {
        bands.push(Band {
            r_inner: r_prev,
            r_outer: r,
            count: n - n_prev,
            shape: if r <= 1_000.0 {
                BandShape::Disc
            } else {
                BandShape::Spiral
            },
        });
        (r_prev, n_prev) = (r, n);
    }
    LayoutSpec {
        bands,
        arms: SpiralArms {
            n_arms: 3,
            phase0: -std::f64::consts::FRAC_PI_6,
            winding: 0.5,
            r_ref: 1_000.0,
            scatter_frac: 0.04,
            scatter_min_m: 30.0,
        },
        min_separation: MID_MIN_SEPARATION,
        seed: MID_LAYOUT_SEED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coords::Enu;
    use crate::sim::layout_gen::{count_within, min_pair_distance};

    #[test]
    fn counts_kinds_and_anchors_are_exact() {
        let all = mid_config(f64::INFINITY).unwrap();
        assert_eq!(all.len(), 197);
        let pos: Vec<Enu> = all.antennas.iter().map(|a| a.enu).collect();
        let mk: Vec<Enu> = all
            .antennas
            .iter()
            .filter(|a| a.diameter == MEERKAT_DISH_DIAMETER)
            .map(|a| a.enu)
            .collect();
        assert_eq!(mk.len(), 64);
        for (r, n, n_mk) in MID_ANCHORS {
            assert_eq!(count_within(&pos, r), n, "dishes within {r} m");
            assert_eq!(count_within(&mk, r), n_mk, "MeerKAT dishes within {r} m");
        }
        assert_eq!(all.antennas[0].name, "M000");
        assert_eq!(all.antennas[63].name, "M063");
        assert_eq!(all.antennas[64].name, "SKA001");
        assert_eq!(all.antennas[196].name, "SKA133");
        assert!(all.antennas[64..].iter().all(|a| a.diameter == 15.0));
    }

    #[test]
    fn separation_extent_and_determinism() {
        let all = mid_config(f64::INFINITY).unwrap();
        let pos: Vec<Enu> = all.antennas.iter().map(|a| a.enu).collect();
        assert!(min_pair_distance(&pos) >= MID_MIN_SEPARATION);
        let bmax = all.max_baseline();
        assert!((130e3..=170e3).contains(&bmax), "longest baseline {bmax} m");
        assert_eq!(all, mid_config(f64::INFINITY).unwrap());
        assert_eq!(mid_config(1_000.0).unwrap().len(), 99);
        assert!(mid_config(-5.0).is_err());
    }
}
