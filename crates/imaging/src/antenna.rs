//! Antenna (station/dish) configurations: names, local positions, diameters, site.

use serde::{Deserialize, Serialize};

use crate::coords::{EarthLocation, Enu};

/// One antenna or station of an array.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Antenna {
    pub name: String,
    /// Position relative to the array reference point, local east-north-up metres.
    pub enu: Enu,
    /// Dish or station diameter in metres.
    pub diameter: f64,
}

/// An array configuration: its site and its antennas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AntennaConfig {
    pub name: String,
    pub location: EarthLocation,
    pub antennas: Vec<Antenna>,
}

impl AntennaConfig {
    pub fn len(&self) -> usize {
        self.antennas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.antennas.is_empty()
    }

    /// Number of cross-correlation baselines, n(n−1)/2.
    pub fn n_baselines(&self) -> usize {
        let n = self.antennas.len();
        n * n.saturating_sub(1) / 2
    }

    /// Keeps the antennas within `rmax` metres (horizontal distance) of the array centre,
    /// like RASCIL's `create_named_configuration(..., rmax=...)`.
    pub fn within_radius(&self, rmax: f64) -> AntennaConfig {
        AntennaConfig {
            name: self.name.clone(),
            location: self.location,
            antennas: self
                .antennas
                .iter()
                .filter(|a| a.enu.e.hypot(a.enu.n) <= rmax)
                .cloned()
                .collect(),
        }
    }

    /// Longest horizontal baseline in metres.
    pub fn max_baseline(&self) -> f64 {
        let mut best = 0.0f64;
        for (i, a) in self.antennas.iter().enumerate() {
            for b in &self.antennas[i + 1..] {
                best = best.max((a.enu.e - b.enu.e).hypot(a.enu.n - b.enu.n));
            }
        }
        best
    }
}
