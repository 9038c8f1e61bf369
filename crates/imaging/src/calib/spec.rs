//! What a gain solve is asked for: the solution type (RASCIL's T, G, B), the solution
//! interval, the reference antenna, the convergence controls and phase-only solving.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ImagingError;

/// The solution types, named as in RASCIL's `calibration_context`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SolutionType {
    /// Scalar phase-only: one phase per antenna and interval, shared by every frequency
    /// of every window (always phase-only).
    T,
    /// Amplitude and phase per antenna, interval and frequency window.
    G,
    /// Amplitude and phase per antenna, interval and channel (bandpass).
    B,
}

impl SolutionType {
    /// "T", "G" or "B".
    pub fn name(self) -> &'static str {
        match self {
            Self::T => "T",
            Self::G => "G",
            Self::B => "B",
        }
    }
}

impl fmt::Display for SolutionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SolutionType {
    type Err = ImagingError;

    /// Parses "T", "G" or "B" (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "T" => Ok(Self::T),
            "G" => Ok(Self::G),
            "B" => Ok(Self::B),
            _ => Err(ImagingError::invalid(
                "solution",
                format!("unknown solution type {s:?}; expected T, G or B"),
            )),
        }
    }
}

/// Default convergence tolerance on the relative change of the gains.
pub const DEFAULT_TOL: f64 = 1e-8;
/// Default maximum number of StEFCal iterations.
pub const DEFAULT_MAX_ITER: usize = 200;

/// The parameters of one gain solve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SolveSpec {
    pub solution: SolutionType,
    /// Solution interval in seconds; `None` (or +∞) solves over the whole observation.
    /// An interval holds the times t with t − t_first < interval (relative slack 1e-9,
    /// so an interval of exactly k integrations holds k of them).
    pub interval_s: Option<f64>,
    /// Reference antenna: its phase is set to 0 in every solution. When it has no
    /// unflagged data in a solution, the next antenna (cyclically) that has is used and
    /// recorded in [`super::SolutionStats::refant`].
    pub refant: usize,
    /// Convergence when ‖g_i − g_{i−1}‖ / ‖g_i‖ ≤ tol (checked every second iteration).
    pub tol: f64,
    /// At most this many iterations; a solution that has not converged is flagged.
    pub max_iter: usize,
    /// Solve for phases only (|g| = 1). Always true for T.
    pub phase_only: bool,
    /// Number of antennas of the solution; `None` = one more than the largest antenna
    /// index in the data. Give it when several blocks are summed, so they agree.
    pub n_ant: Option<usize>,
}

impl SolveSpec {
    /// Defaults: whole observation, reference antenna 0, tol 1e-8, 200 iterations,
    /// amplitude and phase (phase only for T), antenna count from the data.
    pub fn new(solution: SolutionType) -> Self {
        Self {
            solution,
            interval_s: None,
            refant: 0,
            tol: DEFAULT_TOL,
            max_iter: DEFAULT_MAX_ITER,
            phase_only: solution == SolutionType::T,
            n_ant: None,
        }
    }

    /// True when only phases are solved for (asked for, or a T solution).
    pub fn is_phase_only(&self) -> bool {
        self.phase_only || self.solution == SolutionType::T
    }

    /// The interval with +∞ mapped to `None`.
    pub fn interval(&self) -> Option<f64> {
        self.interval_s.filter(|d| d.is_finite())
    }

    /// Checks the ranges; the error names the field.
    pub fn validate(&self) -> Result<(), ImagingError> {
        if let Some(d) = self.interval_s
            && (d.is_nan() || d <= 0.0)
        {
            return Err(ImagingError::invalid(
                "interval",
                format!("{d} s; must be a positive number of seconds"),
            ));
        }
        if !(self.tol.is_finite() && self.tol > 0.0 && self.tol < 1.0) {
            return Err(ImagingError::invalid(
                "tol",
                format!("{}; must be in (0, 1)", self.tol),
            ));
        }
        if self.max_iter == 0 {
            return Err(ImagingError::invalid("max_iter", "must be at least 1"));
        }
        if let Some(n) = self.n_ant {
            if n < 2 {
                return Err(ImagingError::invalid(
                    "n_ant",
                    format!("{n}; at least 2 antennas are needed"),
                ));
            }
            if self.refant >= n {
                return Err(refant_error(self.refant, n));
            }
        }
        Ok(())
    }
}

/// The error for a reference antenna outside 0..n_ant.
pub(crate) fn refant_error(refant: usize, n_ant: usize) -> ImagingError {
    ImagingError::invalid(
        "refant",
        format!(
            "antenna {refant} does not exist; antennas are 0..{}",
            n_ant.saturating_sub(1)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_defaults() {
        for t in [SolutionType::T, SolutionType::G, SolutionType::B] {
            assert_eq!(t.name().parse::<SolutionType>().unwrap(), t);
        }
        assert_eq!("g".parse::<SolutionType>().unwrap(), SolutionType::G);
        assert!("K".parse::<SolutionType>().is_err());
        assert!(SolveSpec::new(SolutionType::T).is_phase_only());
        let mut g = SolveSpec::new(SolutionType::G);
        assert!(!g.is_phase_only());
        g.interval_s = Some(f64::INFINITY);
        assert_eq!(g.interval(), None);
        assert!(g.validate().is_ok());
    }

    #[test]
    fn bad_values_name_their_field() {
        let name = |s: SolveSpec| crate::sim::invalid_name(s.validate());
        let base = SolveSpec::new(SolutionType::G);
        assert_eq!(
            name(SolveSpec {
                interval_s: Some(0.0),
                ..base.clone()
            }),
            "interval"
        );
        assert_eq!(
            name(SolveSpec {
                interval_s: Some(f64::NAN),
                ..base.clone()
            }),
            "interval"
        );
        assert_eq!(
            name(SolveSpec {
                tol: 0.0,
                ..base.clone()
            }),
            "tol"
        );
        assert_eq!(
            name(SolveSpec {
                max_iter: 0,
                ..base.clone()
            }),
            "max_iter"
        );
        assert_eq!(
            name(SolveSpec {
                n_ant: Some(4),
                refant: 4,
                ..base
            }),
            "refant"
        );
    }
}
