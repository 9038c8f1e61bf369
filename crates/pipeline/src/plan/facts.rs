//! Facts about the input visibilities that the planner needs (sizes, frequency span,
//! uvw extent), from a simulation spec or from a dataset's metadata.

use aperture_imaging::coords::RaDec;
use aperture_imaging::sim::uvw::{hour_angles, synthesize_uvw};
use serde::{Deserialize, Serialize};

use super::PlanError;
use crate::spec::SimulateSpec;

/// Sizes and extents of the input; O(1), whatever the number of windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputFacts {
    pub nwindows: u32,
    /// Channels per window (the largest, if they differ).
    pub channels_per_window: u32,
    pub ntimes: u32,
    pub nbaselines: u32,
    pub nantennas: u32,
    pub freq_min_hz: f64,
    pub freq_max_hz: f64,
    /// Longest projected baseline and largest |w| over the data, metres.
    pub max_uv_m: f64,
    pub max_w_m: f64,
    pub phase_centre: RaDec,
    pub station_diameter_m: f64,
}

impl InputFacts {
    /// Rows (time × baseline) of one window.
    pub fn rows(&self) -> u64 {
        u64::from(self.ntimes) * u64::from(self.nbaselines)
    }

    /// Upper edge of window `w`'s band (windows split [freq_min, freq_max] evenly, as
    /// `FrequencySetup` does); the gridder's cost is set by its highest frequency.
    pub fn window_freq_max(&self, w: u32) -> f64 {
        if self.nwindows <= 1 {
            return self.freq_max_hz;
        }
        let step = (self.freq_max_hz - self.freq_min_hz) / f64::from(self.nwindows);
        self.freq_min_hz + step * f64::from(w + 1)
    }

    /// Bytes of one window's visibilities in memory (complex f64 + weight + flag + uvw).
    pub fn window_bytes(&self) -> u64 {
        self.rows() * (u64::from(self.channels_per_window) * (16 + 8 + 1) + 24 + 16)
    }

    /// Facts of a simulated observation, computed from the same array layout and
    /// hour angles the simulate stage uses (cheap: uvw only, no visibilities).
    pub fn from_simulation(sim: &SimulateSpec) -> Result<Self, PlanError> {
        let config = sim
            .array_config()
            .map_err(|e| PlanError::input("spec.input.simulate.rmax", e.to_string()))?;
        let ha = hour_angles(sim.ntimes as usize, sim.span_hours)
            .map_err(|e| PlanError::input("spec.input.simulate.ntimes", e.to_string()))?;
        let centre = RaDec::from_degrees(sim.ra_deg, sim.dec_deg);
        let rows = synthesize_uvw(&config, centre, &ha)
            .map_err(|e| PlanError::input("spec.input.simulate", e.to_string()))?;
        let (mut uv, mut w) = (0.0f64, 0.0f64);
        for p in &rows.uvw_r {
            uv = uv.max(p.uv_length());
            w = w.max(p.w.abs());
        }
        let nant = config.len();
        let diameter = config
            .antennas
            .iter()
            .map(|a| a.diameter)
            .fold(0.0, f64::max);
        let (fmin, fmax) = (sim.freq_min_hz, sim.freq_max_hz);
        Ok(Self {
            nwindows: sim.frequency_windows,
            channels_per_window: sim.channels_per_window,
            ntimes: sim.ntimes,
            nbaselines: config.n_baselines() as u32,
            nantennas: nant as u32,
            freq_min_hz: fmin,
            freq_max_hz: fmax,
            max_uv_m: uv,
            max_w_m: w,
            phase_centre: centre,
            station_diameter_m: diameter,
        })
    }
}
