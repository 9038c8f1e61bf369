//! Global (T) gain solutions between cycles: a compact JSON form of a T `GainTable`.

use aperture_imaging::calib::{FreqCells, GainTable, SolutionLayout, SolutionType};
use num_complex::Complex64;
use serde::{Deserialize, Serialize};

use super::TaskError;

/// A T solution table as stored under `cycles/NNN/gains-T.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredGains {
    pub solution: String,
    pub n_ant: usize,
    pub intervals: Vec<[f64; 2]>,
    /// [interval][antenna] → [re, im].
    pub gains: Vec<Vec<[f64; 2]>>,
    /// [interval][antenna] → flagged.
    pub flags: Vec<Vec<bool>>,
}

impl StoredGains {
    pub fn from_table(t: &GainTable) -> Self {
        let (ni, na) = (t.n_intervals(), t.n_ant);
        Self {
            solution: t.solution.name().into(),
            n_ant: na,
            intervals: t.layout.intervals.clone(),
            gains: (0..ni)
                .map(|i| {
                    (0..na)
                        .map(|a| [t.gains[[i, a, 0]].re, t.gains[[i, a, 0]].im])
                        .collect()
                })
                .collect(),
            flags: (0..ni)
                .map(|i| (0..na).map(|a| t.flags[[i, a, 0]]).collect())
                .collect(),
        }
    }

    pub fn to_table(&self, key: &str) -> Result<GainTable, TaskError> {
        let layout = SolutionLayout {
            intervals: self.intervals.clone(),
            cells: FreqCells::All,
        };
        let mut t = GainTable::unit(SolutionType::T, self.n_ant, layout)
            .map_err(|e| TaskError::corrupt(key, e.to_string()))?;
        for (i, row) in self.gains.iter().enumerate() {
            for (a, g) in row.iter().enumerate() {
                if i < t.n_intervals() && a < self.n_ant {
                    t.gains[[i, a, 0]] = Complex64::new(g[0], g[1]);
                    t.flags[[i, a, 0]] = self
                        .flags
                        .get(i)
                        .and_then(|f| f.get(a))
                        .copied()
                        .unwrap_or(true);
                }
            }
        }
        t.validate()
            .map_err(|e| TaskError::corrupt(key, e.to_string()))?;
        Ok(t)
    }
}
