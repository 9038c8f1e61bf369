//! The gain table: complex antenna gains g [interval, antenna, frequency cell] with
//! flags and, for solved tables, per-solution statistics.

use ndarray::{Array2, Array3, Axis, concatenate};
use num_complex::Complex64;
use serde::{Deserialize, Serialize};

use super::layout::{FreqCells, SolutionLayout};
use super::spec::{SolutionType, refant_error};
use crate::ImagingError;

/// A phase-only gain must have |g| within this of 1.
pub const UNIT_MODULUS_TOL: f64 = 1e-9;

/// Statistics of one solution (interval × frequency cell).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SolutionStats {
    /// StEFCal iterations run.
    pub iterations: usize,
    /// True when the relative change fell below the tolerance; false solutions are
    /// flagged.
    pub converged: bool,
    /// χ² = Σ w|V − M|² with unit gains (the data against the bare model).
    pub chi2_before: f64,
    /// χ² = Σ w|V − g_p conj(g_q) M|² with the solved gains.
    pub chi2_after: f64,
    /// Samples (row × channel) in the solution.
    pub n_samples: u64,
    /// The antenna whose phase was set to 0: the requested reference antenna, or the
    /// next one with data when it had none; `None` when no antenna had data.
    pub refant: Option<usize>,
}

/// Antenna gains on a solution layout. Convention: a row with ant1 = p, ant2 = q holds
/// V_pq = g_p · conj(g_q) · M_pq.
#[derive(Debug, Clone, PartialEq)]
pub struct GainTable {
    pub solution: SolutionType,
    /// Amplitudes are 1 (phase-only solutions, or phase-only screens).
    pub phase_only: bool,
    pub n_ant: usize,
    /// The reference antenna asked for (`None` for tables not made by a solver).
    pub reference_antenna: Option<usize>,
    pub layout: SolutionLayout,
    /// Gains, [interval, antenna, cell]. Flagged gains carry no meaning (unconstrained
    /// antennas hold 0).
    pub gains: Array3<Complex64>,
    /// True where a gain must not be used, [interval, antenna, cell].
    pub flags: Array3<bool>,
    /// Per-solution statistics, [interval, cell], for solved tables.
    pub stats: Option<Array2<SolutionStats>>,
}

impl GainTable {
    /// A table of unit gains, nothing flagged, no statistics.
    pub fn unit(
        solution: SolutionType,
        n_ant: usize,
        layout: SolutionLayout,
    ) -> Result<Self, ImagingError> {
        let shape = (layout.n_intervals(), n_ant, layout.n_cells());
        let t = Self {
            solution,
            phase_only: solution == SolutionType::T,
            n_ant,
            reference_antenna: None,
            gains: Array3::from_elem(shape, Complex64::new(1.0, 0.0)),
            flags: Array3::from_elem(shape, false),
            layout,
            stats: None,
        };
        t.validate()?;
        Ok(t)
    }

    pub fn n_intervals(&self) -> usize {
        self.layout.n_intervals()
    }

    pub fn n_cells(&self) -> usize {
        self.layout.n_cells()
    }

    /// The gain of `antenna` in (interval, cell), or `None` when flagged.
    pub fn gain(&self, interval: usize, antenna: usize, cell: usize) -> Option<Complex64> {
        let i = [interval, antenna, cell];
        (!self.flags[i]).then(|| self.gains[i])
    }

    /// Number of flagged gains.
    pub fn n_flagged(&self) -> usize {
        self.flags.iter().filter(|&&f| f).count()
    }

    /// Checks shapes, the layout, the cells against the solution type, finite gains,
    /// |g| = 1 for phase-only tables and the reference antenna; errors name the field.
    pub fn validate(&self) -> Result<(), ImagingError> {
        if self.n_ant == 0 {
            return Err(ImagingError::invalid("antennas", "a table needs antennas"));
        }
        self.layout.validate()?;
        match (self.solution, &self.layout.cells) {
            (SolutionType::T, FreqCells::All)
            | (SolutionType::G | SolutionType::B, FreqCells::Ranges(_)) => {}
            (SolutionType::T, _) => {
                return Err(ImagingError::invalid(
                    "frequency_cells",
                    "T solutions have one cell for all frequencies",
                ));
            }
            (s, _) => {
                return Err(ImagingError::invalid(
                    "frequency_cells",
                    format!("{s} solutions need frequency ranges, not all frequencies"),
                ));
            }
        }
        let want = (self.n_intervals(), self.n_ant, self.n_cells());
        for (name, dim) in [("gains", self.gains.dim()), ("flags", self.flags.dim())] {
            if dim != want {
                return Err(ImagingError::ShapeMismatch {
                    name: name.into(),
                    expected: format!(
                        "[{}, {}, {}] (interval, antenna, cell)",
                        want.0, want.1, want.2
                    ),
                    got: format!("[{}, {}, {}]", dim.0, dim.1, dim.2),
                });
            }
        }
        if let Some(s) = &self.stats
            && s.dim() != (want.0, want.2)
        {
            return Err(ImagingError::ShapeMismatch {
                name: "stats".into(),
                expected: format!("[{}, {}] (interval, cell)", want.0, want.2),
                got: format!("[{}, {}]", s.dim().0, s.dim().1),
            });
        }
        if let Some(i) = self
            .gains
            .iter()
            .position(|g| !(g.re.is_finite() && g.im.is_finite()))
        {
            return Err(ImagingError::NonFinite {
                name: "gains".into(),
                index: i,
            });
        }
        if self.solution == SolutionType::T && !self.phase_only {
            return Err(ImagingError::invalid(
                "phase_only",
                "T solutions are phase-only",
            ));
        }
        if self.phase_only
            && let Some(((i, a, c), g)) = self
                .gains
                .indexed_iter()
                .find(|(ix, g)| !self.flags[*ix] && (g.norm() - 1.0).abs() > UNIT_MODULUS_TOL)
        {
            return Err(ImagingError::invalid(
                "gains",
                format!(
                    "phase-only table has |g| = {} at interval {i}, antenna {a}, cell {c}",
                    g.norm()
                ),
            ));
        }
        if let Some(r) = self.reference_antenna
            && r >= self.n_ant
        {
            return Err(refant_error(r, self.n_ant));
        }
        Ok(())
    }

    /// The table with every solution's gains multiplied by conj(g_r)/|g_r|, so antenna
    /// `refant` has phase 0 (for comparing tables up to the arbitrary overall phase).
    /// Solutions where `refant` is flagged or zero are left as they are.
    pub fn rotated_to(&self, refant: usize) -> Result<GainTable, ImagingError> {
        if refant >= self.n_ant {
            return Err(refant_error(refant, self.n_ant));
        }
        let mut out = self.clone();
        for i in 0..self.n_intervals() {
            for c in 0..self.n_cells() {
                let r = self.gains[[i, refant, c]];
                if self.flags[[i, refant, c]] || r.norm() == 0.0 {
                    continue;
                }
                let rot = r.conj() / r.norm();
                for a in 0..self.n_ant {
                    out.gains[[i, a, c]] *= rot;
                }
            }
        }
        Ok(out)
    }

    /// Joins tables of disjoint frequency cells (e.g. the per-window G or B solutions of
    /// several workers) into one, cells in ascending frequency. The tables must agree on
    /// solution type, phase-only, antennas, reference antenna and intervals.
    pub fn concat_cells(tables: &[GainTable]) -> Result<GainTable, ImagingError> {
        let Some(first) = tables.first() else {
            return Err(ImagingError::invalid("tables", "no tables to join"));
        };
        let mut parts: Vec<(f64, &GainTable)> = Vec::with_capacity(tables.len());
        for (k, t) in tables.iter().enumerate() {
            t.validate()?;
            let FreqCells::Ranges(r) = &t.layout.cells else {
                return Err(ImagingError::invalid(
                    "tables",
                    "T tables (all frequencies) cannot be joined by frequency; sum their normal \
                     equations instead",
                ));
            };
            let differs = |what: &str| {
                Err(ImagingError::invalid(
                    "tables",
                    format!("table {k} differs from table 0 in {what}"),
                ))
            };
            if t.solution != first.solution {
                return differs("solution type");
            }
            if t.phase_only != first.phase_only {
                return differs("phase_only");
            }
            if t.n_ant != first.n_ant {
                return differs("number of antennas");
            }
            if t.reference_antenna != first.reference_antenna {
                return differs("reference antenna");
            }
            if t.layout.intervals != first.layout.intervals {
                return differs("time intervals");
            }
            if t.stats.is_some() != first.stats.is_some() {
                return differs("having solution statistics");
            }
            parts.push((r[0][0], t));
        }
        parts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let ranges: Vec<[f64; 2]> = parts
            .iter()
            .flat_map(|(_, t)| match &t.layout.cells {
                FreqCells::Ranges(r) => r.clone(),
                FreqCells::All => Vec::new(),
            })
            .collect();
        let layout = SolutionLayout {
            intervals: first.layout.intervals.clone(),
            cells: FreqCells::Ranges(ranges),
        };
        layout.validate()?;
        let gain_views: Vec<_> = parts.iter().map(|(_, t)| t.gains.view()).collect();
        let gains = concatenate(Axis(2), &gain_views)
            .map_err(|e| ImagingError::invalid("tables", e.to_string()))?;
        let flag_views: Vec<_> = parts.iter().map(|(_, t)| t.flags.view()).collect();
        let flags = concatenate(Axis(2), &flag_views)
            .map_err(|e| ImagingError::invalid("tables", e.to_string()))?;
        let stats = match first.stats {
            None => None,
            Some(_) => {
                let views: Vec<_> = parts
                    .iter()
                    .filter_map(|(_, t)| t.stats.as_ref().map(|s| s.view()))
                    .collect();
                Some(
                    concatenate(Axis(1), &views)
                        .map_err(|e| ImagingError::invalid("tables", e.to_string()))?,
                )
            }
        };
        let out = GainTable {
            solution: first.solution,
            phase_only: first.phase_only,
            n_ant: first.n_ant,
            reference_antenna: first.reference_antenna,
            layout,
            gains,
            flags,
            stats,
        };
        out.validate()?;
        Ok(out)
    }
}
