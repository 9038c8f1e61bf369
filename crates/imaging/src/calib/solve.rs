//! Solving normal equations into a gain table: StEFCal per solution (in parallel over
//! solutions), the reference antenna, flags for unconstrained antennas and for solutions
//! that did not converge, and χ² before and after.

use ndarray::{Array2, Array3};
use num_complex::Complex64;
use rayon::prelude::*;

use super::normal::NormalEquations;
use super::spec::{SolveSpec, refant_error};
use super::stefcal::{chi2_minus_vv, stefcal};
use super::table::{GainTable, SolutionStats};
use crate::ImagingError;

/// One solved (interval, cell): gains and flags per antenna, and statistics.
struct Solved {
    gains: Vec<Complex64>,
    flags: Vec<bool>,
    stats: SolutionStats,
}

/// The first antenna from `want` on (cyclically) that `usable` allows.
fn pick_refant(want: usize, usable: &[bool]) -> Option<usize> {
    let n = usable.len();
    (0..n).map(|k| (want + k) % n).find(|&a| usable[a])
}

fn solve_one(ne: &NormalEquations, sol: usize, spec: &SolveSpec) -> Solved {
    let n = ne.n_ant();
    let (zz, mm) = (ne.zz(sol), ne.mm(sol));
    let phase_only = spec.is_phase_only();
    let s = stefcal(n, zz, mm, phase_only, spec.tol, spec.max_iter);
    let mut gains = s.gains;
    let usable: Vec<bool> = gains
        .iter()
        .zip(&s.active)
        .map(|(g, &a)| a && g.norm() > 0.0 && g.re.is_finite() && g.im.is_finite())
        .collect();
    let refant = pick_refant(spec.refant, &usable);
    if let Some(r) = refant {
        let rot = gains[r].conj() / gains[r].norm();
        for g in gains.iter_mut() {
            *g *= rot;
        }
        // |rot| = 1 up to rounding; keep phase-only gains on the unit circle.
        if phase_only {
            for (g, &u) in gains.iter_mut().zip(&usable) {
                if u {
                    *g /= g.norm();
                }
            }
        }
    }
    let vv = ne.vv(sol);
    let ones: Vec<Complex64> = vec![Complex64::new(1.0, 0.0); n];
    let chi2_before = (vv + chi2_minus_vv(n, zz, mm, &ones)).max(0.0);
    let chi2_after = (vv + chi2_minus_vv(n, zz, mm, &gains)).max(0.0);
    let mut flags = vec![false; n];
    for p in 0..n {
        if !usable[p] {
            // Not a gain: the data do not constrain this antenna.
            gains[p] = Complex64::new(0.0, 0.0);
            flags[p] = true;
        } else if !s.converged {
            flags[p] = true;
        }
    }
    Solved {
        gains,
        flags,
        stats: SolutionStats {
            iterations: s.iterations,
            converged: s.converged,
            chi2_before,
            chi2_after,
            n_samples: ne.n_samples(sol),
            refant,
        },
    }
}

/// Solves the normal equations for the gains of every solution (StEFCal, see
/// [`super::stefcal`]): the reference antenna's phase is set to 0 (or the next antenna's
/// with data, recorded in the statistics), antennas without data are flagged with gain
/// 0, and every gain of a solution that did not converge within `spec.max_iter` is
/// flagged (its values kept for inspection). `spec.solution` must be the type the
/// equations were accumulated for.
pub fn solve(ne: &NormalEquations, spec: &SolveSpec) -> Result<GainTable, ImagingError> {
    spec.validate()?;
    ne.validate()?;
    if spec.solution != ne.solution() {
        return Err(ImagingError::invalid(
            "solution",
            format!(
                "the normal equations were accumulated for {} solutions, not {}",
                ne.solution(),
                spec.solution
            ),
        ));
    }
    let n = ne.n_ant();
    if let Some(want) = spec.n_ant
        && want != n
    {
        return Err(ImagingError::invalid(
            "n_ant",
            format!("{want}, but the normal equations are for {n} antennas"),
        ));
    }
    if spec.refant >= n {
        return Err(refant_error(spec.refant, n));
    }
    let (ni, nc) = (ne.layout().n_intervals(), ne.layout().n_cells());
    let solved: Vec<Solved> = (0..ni * nc)
        .into_par_iter()
        .map(|sol| solve_one(ne, sol, spec))
        .collect();
    let mut gains = Array3::from_elem((ni, n, nc), Complex64::new(0.0, 0.0));
    let mut flags = Array3::from_elem((ni, n, nc), true);
    let mut stats = Vec::with_capacity(ni * nc);
    for (sol, s) in solved.into_iter().enumerate() {
        let (i, c) = (sol / nc, sol % nc);
        for a in 0..n {
            gains[[i, a, c]] = s.gains[a];
            flags[[i, a, c]] = s.flags[a];
        }
        stats.push(s.stats);
    }
    let stats = Array2::from_shape_vec((ni, nc), stats)
        .map_err(|e| ImagingError::invalid("stats", e.to_string()))?;
    let table = GainTable {
        solution: spec.solution,
        phase_only: spec.is_phase_only(),
        n_ant: n,
        reference_antenna: Some(spec.refant),
        layout: ne.layout().clone(),
        gains,
        flags,
        stats: Some(stats),
    };
    table.validate()?;
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refant_falls_through_to_the_next_usable_antenna() {
        assert_eq!(pick_refant(2, &[true, true, false, false, true]), Some(4));
        assert_eq!(pick_refant(3, &[true, false, false, false]), Some(0));
        assert_eq!(pick_refant(1, &[false, false]), None);
    }
}
