//! Applying a gain table to visibilities: correct (divide by g_p·conj(g_q)) or corrupt
//! (multiply), each the inverse of the other, with optional weight scaling (CASA's
//! `calwt`) and flagging of samples whose gains are flagged.

use ndarray::Axis;
use ndarray::parallel::prelude::*;
use num_complex::Complex64;

use super::table::GainTable;
use crate::ImagingError;
use crate::vis::VisBlock;

/// What applying a table does to the visibilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyMode {
    /// V ← V / (g_p·conj(g_q)): removes the gains (calibrates). Undoes `Corrupt`.
    Correct,
    /// V ← V · g_p·conj(g_q): puts the gains on (simulates them). Undoes `Correct`.
    Corrupt,
}

impl ApplyMode {
    /// The mode that undoes this one.
    pub fn inverse(self) -> Self {
        match self {
            Self::Correct => Self::Corrupt,
            Self::Corrupt => Self::Correct,
        }
    }
}

/// What happens to the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightUpdate {
    /// Scale weights as the noise variance changes: × |g_p g_q|² when correcting,
    /// ÷ |g_p g_q|² when corrupting (CASA `applycal` with `calwt=True`), so the two
    /// modes stay exact inverses.
    Scale,
    /// Leave weights as they are (e.g. corrupting a noise-free simulation before noise
    /// of a fixed σ is added).
    Keep,
}

/// What an application changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ApplyReport {
    /// Samples (row × channel) whose visibilities were changed.
    pub applied: usize,
    /// Samples newly flagged because a gain was flagged, zero or non-finite.
    pub newly_flagged: usize,
}

/// Applies `table` to `block` in place. Each row's time is mapped to its interval and
/// each channel's frequency to its cell; a time or frequency outside the table, or an
/// antenna the table does not have, is an error naming it, and then the block is left
/// unchanged. Samples with a flagged (or zero) gain are flagged and their visibilities
/// left as they are. Already-flagged samples are transformed too, so correct and
/// corrupt undo each other exactly (up to rounding).
pub fn apply_gains(
    block: &mut VisBlock,
    table: &GainTable,
    mode: ApplyMode,
    weights: WeightUpdate,
) -> Result<ApplyReport, ImagingError> {
    table.validate()?;
    block.validate()?;
    for (name, ants) in [("ant1", &block.ant1_r), ("ant2", &block.ant2_r)] {
        if let Some(r) = ants.iter().position(|&a| a as usize >= table.n_ant) {
            return Err(ImagingError::invalid(
                name,
                format!(
                    "row {r} has antenna {}, but the gain table has {} antennas (0..{})",
                    ants[r],
                    table.n_ant,
                    table.n_ant - 1
                ),
            ));
        }
    }
    if let Some(i) = block.time_r.iter().position(|t| !t.is_finite()) {
        return Err(ImagingError::NonFinite {
            name: "time".into(),
            index: i,
        });
    }
    let interval_r = table.layout.row_intervals(&block.time_r)?;
    let cell_c = table.layout.channel_cells(&block.freq_c)?;

    let VisBlock {
        vis_rc,
        weight_rc,
        flag_rc,
        ant1_r,
        ant2_r,
        ..
    } = block;
    let (ant1_r, ant2_r): (&[u32], &[u32]) = (ant1_r, ant2_r);
    let counts: Vec<(usize, usize)> = vis_rc
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(weight_rc.axis_iter_mut(Axis(0)))
        .zip(flag_rc.axis_iter_mut(Axis(0)))
        .enumerate()
        .map(|(r, ((mut vis_c, mut w_c), mut f_c))| {
            let (p, q, i) = (ant1_r[r] as usize, ant2_r[r] as usize, interval_r[r]);
            let (mut applied, mut flagged) = (0, 0);
            for (c, &cell) in cell_c.iter().enumerate() {
                let (gp, gq) = (table.gains[[i, p, cell]], table.gains[[i, q, cell]]);
                let g = gp * gq.conj();
                let g2 = g.norm_sqr();
                let bad = table.flags[[i, p, cell]]
                    || table.flags[[i, q, cell]]
                    || !(g2 > 0.0 && g2.is_finite());
                if bad {
                    if !f_c[c] {
                        f_c[c] = true;
                        flagged += 1;
                    }
                    continue;
                }
                match mode {
                    ApplyMode::Correct => {
                        vis_c[c] /= g;
                        if weights == WeightUpdate::Scale {
                            w_c[c] *= g2;
                        }
                    }
                    ApplyMode::Corrupt => {
                        vis_c[c] *= g;
                        if weights == WeightUpdate::Scale {
                            w_c[c] /= g2;
                        }
                    }
                }
                applied += 1;
            }
            (applied, flagged)
        })
        .collect();
    let (applied, newly_flagged) = counts
        .into_iter()
        .fold((0, 0), |(a, f), (x, y)| (a + x, f + y));
    Ok(ApplyReport {
        applied,
        newly_flagged,
    })
}

/// g_p·conj(g_q) for row antennas (p, q) at interval `i` and cell `c` (no flag check).
pub fn baseline_gain(table: &GainTable, i: usize, p: usize, q: usize, c: usize) -> Complex64 {
    table.gains[[i, p, c]] * table.gains[[i, q, c]].conj()
}
