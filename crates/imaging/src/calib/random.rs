//! Random antenna gains for simulations, tests and benchmarks: per-antenna phase and
//! amplitude screens, deterministic from a seed.

use ndarray::Array3;
use num_complex::Complex64;
use serde::{Deserialize, Serialize};

use super::layout::SolutionLayout;
use super::spec::SolutionType;
use super::table::GainTable;
use crate::ImagingError;
use crate::sim::rng::Rng;

/// The statistics of random gains g = exp(σ_a·x)·exp(i·σ_φ·y), x, y ~ N(0, 1), drawn
/// independently per antenna, interval and frequency cell. For small σ_a the fractional
/// amplitude rms is σ_a; amplitudes are always positive.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RandomGainSpec {
    /// σ_φ, degrees.
    pub phase_rms_deg: f64,
    /// σ_a, fractional (0 for phase-only gains).
    pub amp_rms: f64,
}

impl RandomGainSpec {
    pub fn validate(&self) -> Result<(), ImagingError> {
        if !(self.phase_rms_deg.is_finite() && self.phase_rms_deg >= 0.0) {
            return Err(ImagingError::invalid(
                "phase_rms_deg",
                format!("{}; must be finite and non-negative", self.phase_rms_deg),
            ));
        }
        if !(self.amp_rms.is_finite() && (0.0..=1.0).contains(&self.amp_rms)) {
            return Err(ImagingError::invalid(
                "amp_rms",
                format!("{}; must be between 0 and 1", self.amp_rms),
            ));
        }
        Ok(())
    }
}

/// A table of random gains for `n_ant` antennas on `layout` (no flags, no statistics,
/// no reference antenna). Antenna a draws from `Rng::stream(seed, a)`, interval-major
/// then cell, amplitude before phase, so the table does not depend on anything but its
/// arguments. T tables must be phase-only (`amp_rms = 0`).
pub fn random_gains(
    solution: SolutionType,
    n_ant: usize,
    layout: SolutionLayout,
    spec: &RandomGainSpec,
    seed: u64,
) -> Result<GainTable, ImagingError> {
    spec.validate()?;
    if solution == SolutionType::T && spec.amp_rms != 0.0 {
        return Err(ImagingError::invalid(
            "amp_rms",
            format!("{}; T gains are phase-only", spec.amp_rms),
        ));
    }
    let mut table = GainTable::unit(solution, n_ant, layout)?;
    let (ni, nc) = (table.n_intervals(), table.n_cells());
    let sigma_phi = spec.phase_rms_deg.to_radians();
    let mut gains = Array3::from_elem((ni, n_ant, nc), Complex64::new(1.0, 0.0));
    for a in 0..n_ant {
        let mut rng = Rng::stream(seed, a as u64);
        for i in 0..ni {
            for c in 0..nc {
                let amp = (spec.amp_rms * rng.normal()).exp();
                let phase = sigma_phi * rng.normal();
                gains[[i, a, c]] = if spec.amp_rms == 0.0 {
                    let (s, co) = phase.sin_cos();
                    Complex64::new(co, s)
                } else {
                    Complex64::from_polar(amp, phase)
                };
            }
        }
    }
    table.gains = gains;
    table.phase_only = spec.amp_rms == 0.0;
    table.validate()?;
    Ok(table)
}
