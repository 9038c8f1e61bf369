//! The calibration normal equations: per solution (interval × frequency cell) and
//! antenna pair p < q, the pre-summed terms zz = Σ w·V_pq·conj(M_pq) and
//! mm = Σ w·|M_pq|², plus Σ w·|V_pq|² per solution for χ².
//!
//! For gains constant over the summed samples, χ² = Σ w·|V − g_p·conj(g_q)·M|² =
//! Σ w|V|² − 2 Re Σ conj(g_p conj(g_q))·zz + Σ |g_p|²|g_q|²·mm, so the data enter the
//! least-squares problem only through these sums and solving from them is exact. Sums
//! over rows, channels, windows or workers can therefore be formed anywhere (the reduce
//! tree of the distributed ICAL) and solved once.

use ndarray::ArrayView2;
use num_complex::Complex64;
use serde::{Deserialize, Serialize};

use super::layout::SolutionLayout;
use super::spec::{SolutionType, SolveSpec, refant_error};
use crate::ImagingError;
use crate::vis::VisBlock;

/// Index of antenna pair (p, q), p < q < n, in the packed upper triangle (row-major).
#[inline]
pub fn pair_index(p: usize, q: usize, n: usize) -> usize {
    debug_assert!(p < q && q < n);
    p * (2 * n - p - 1) / 2 + (q - p - 1)
}

/// Number of antenna pairs p < q of `n` antennas.
pub fn n_pairs(n: usize) -> usize {
    n * n.saturating_sub(1) / 2
}

/// Largest number of (solution, pair) terms held in memory (24 bytes each: 12 GiB).
const MAX_TERMS: usize = 1 << 29;

/// Pre-summed calibration terms on a solution layout. Serialisable, so partial sums can
/// be stored and summed elsewhere ([`NormalEquations::add`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormalEquations {
    solution: SolutionType,
    n_ant: usize,
    layout: SolutionLayout,
    /// Σ w·V·conj(M), [interval][cell][pair], flattened.
    #[serde(with = "complex_vec")]
    zz: Vec<Complex64>,
    /// Σ w·|M|², same layout as `zz`.
    mm: Vec<f64>,
    /// Σ w·|V|², [interval][cell].
    vv: Vec<f64>,
    /// Number of samples summed (unflagged, positive weight), [interval][cell].
    n_samples: Vec<u64>,
}

impl NormalEquations {
    /// Empty (all-zero) normal equations for `n_ant` antennas on `layout`.
    pub fn new(
        solution: SolutionType,
        n_ant: usize,
        layout: SolutionLayout,
    ) -> Result<Self, ImagingError> {
        if n_ant < 2 {
            return Err(ImagingError::invalid(
                "n_ant",
                format!("{n_ant}; at least 2 antennas are needed"),
            ));
        }
        layout.validate()?;
        check_cells_match(solution, &layout)?;
        let nsol = layout.n_intervals() * layout.n_cells();
        let nterms = nsol
            .checked_mul(n_pairs(n_ant))
            .filter(|&n| n <= MAX_TERMS)
            .ok_or_else(|| {
                ImagingError::Unsupported(format!(
                    "{} intervals x {} frequency cells x {} antenna pairs is too many normal-equation \
                     terms to hold in memory (limit {MAX_TERMS}); use longer intervals or fewer cells",
                    layout.n_intervals(),
                    layout.n_cells(),
                    n_pairs(n_ant)
                ))
            })?;
        Ok(Self {
            solution,
            n_ant,
            layout,
            zz: vec![Complex64::new(0.0, 0.0); nterms],
            mm: vec![0.0; nterms],
            vv: vec![0.0; nsol],
            n_samples: vec![0; nsol],
        })
    }

    /// The normal equations of one block: the layout comes from the block's times
    /// (`spec.interval_s`) and channels (T: all frequencies, G: the block is one
    /// window, B: each channel); the antenna count is `spec.n_ant` or one more than the
    /// largest antenna index. `model_vis_rc` is the model M [row, chan] (same shape as
    /// `block.vis_rc`); `weight_rc` the sample weights (usually `block.weight_rc`).
    /// Flagged samples are skipped whatever their weight; autocorrelations are skipped.
    pub fn accumulate(
        block: &VisBlock,
        model_vis_rc: ArrayView2<Complex64>,
        weight_rc: ArrayView2<f64>,
        spec: &SolveSpec,
    ) -> Result<Self, ImagingError> {
        spec.validate()?;
        block.validate()?;
        let n_ant = match spec.n_ant {
            Some(n) => n,
            None => {
                let max = block
                    .ant1_r
                    .iter()
                    .chain(&block.ant2_r)
                    .copied()
                    .max()
                    .unwrap_or(0);
                max as usize + 1
            }
        };
        if spec.refant >= n_ant {
            return Err(refant_error(spec.refant, n_ant));
        }
        let layout = SolutionLayout::for_block(block, spec.solution, spec.interval())?;
        let mut ne = Self::new(spec.solution, n_ant, layout)?;
        ne.add_block(block, model_vis_rc, weight_rc)?;
        Ok(ne)
    }

    /// Adds the terms of `block` (see [`NormalEquations::accumulate`]) on this layout.
    /// Every check happens before anything is added, so on error `self` is unchanged;
    /// errors name the field (vis, model_vis, weight, ant1/ant2, time, freq).
    pub fn add_block(
        &mut self,
        block: &VisBlock,
        model_vis_rc: ArrayView2<Complex64>,
        weight_rc: ArrayView2<f64>,
    ) -> Result<(), ImagingError> {
        block.validate()?;
        let (nr, nc) = (block.n_rows(), block.n_chan());
        for (name, dim) in [
            ("model_vis", model_vis_rc.dim()),
            ("weight", weight_rc.dim()),
        ] {
            if dim != (nr, nc) {
                return Err(ImagingError::ShapeMismatch {
                    name: name.into(),
                    expected: format!("[{nr}, {nc}] (as vis)"),
                    got: format!("[{}, {}]", dim.0, dim.1),
                });
            }
        }
        if let Some(i) = model_vis_rc
            .iter()
            .position(|v| !(v.re.is_finite() && v.im.is_finite()))
        {
            return Err(ImagingError::NonFinite {
                name: "model_vis".into(),
                index: i,
            });
        }
        if let Some((i, w)) = weight_rc
            .iter()
            .enumerate()
            .find(|(_, w)| !(w.is_finite() && **w >= 0.0))
        {
            return Err(ImagingError::invalid(
                "weight",
                format!("element {i} is {w}; weights must be finite and non-negative"),
            ));
        }
        if let Some(i) = block.time_r.iter().position(|t| !t.is_finite()) {
            return Err(ImagingError::NonFinite {
                name: "time".into(),
                index: i,
            });
        }
        for (name, ants) in [("ant1", &block.ant1_r), ("ant2", &block.ant2_r)] {
            if let Some(r) = ants.iter().position(|&a| a as usize >= self.n_ant) {
                return Err(ImagingError::invalid(
                    name,
                    format!(
                        "row {r} has antenna {}, but the solution has {} antennas (0..{})",
                        ants[r],
                        self.n_ant,
                        self.n_ant - 1
                    ),
                ));
            }
        }
        let interval_r = self.layout.row_intervals(&block.time_r)?;
        let cell_c = self.layout.channel_cells(&block.freq_c)?;

        let (n, ncell, npair) = (self.n_ant, self.layout.n_cells(), n_pairs(self.n_ant));
        for r in 0..nr {
            let (a1, a2) = (block.ant1_r[r] as usize, block.ant2_r[r] as usize);
            if a1 == a2 {
                continue;
            }
            // Row p > q holds conj of the (q, p) visibility: V_qp = conj(V_pq).
            let (pair, conj) = if a1 < a2 {
                (pair_index(a1, a2, n), false)
            } else {
                (pair_index(a2, a1, n), true)
            };
            let sol0 = interval_r[r] * ncell;
            for c in 0..nc {
                let w = weight_rc[[r, c]];
                if w == 0.0 || block.flag_rc[[r, c]] {
                    continue;
                }
                let (v, m) = (block.vis_rc[[r, c]], model_vis_rc[[r, c]]);
                let sol = sol0 + cell_c[c];
                let idx = sol * npair + pair;
                self.zz[idx] += if conj {
                    w * v.conj() * m
                } else {
                    w * v * m.conj()
                };
                self.mm[idx] += w * m.norm_sqr();
                self.vv[sol] += w * v.norm_sqr();
                self.n_samples[sol] += 1;
            }
        }
        Ok(())
    }

    /// Adds `other` term by term (the reduction of partial sums). Both must have the same
    /// solution type, antenna count and layout (intervals and cells equal exactly).
    pub fn add(&mut self, other: &NormalEquations) -> Result<(), ImagingError> {
        other.validate()?;
        let mismatch = |what: String| Err(ImagingError::invalid("normal_equations", what));
        if self.solution != other.solution {
            return mismatch(format!(
                "cannot add {} terms to {} terms",
                other.solution, self.solution
            ));
        }
        if self.n_ant != other.n_ant {
            return mismatch(format!(
                "cannot add terms for {} antennas to terms for {}",
                other.n_ant, self.n_ant
            ));
        }
        if self.layout.intervals != other.layout.intervals {
            return mismatch(format!(
                "time intervals differ ({} vs {})",
                other.layout.describe_intervals(),
                self.layout.describe_intervals()
            ));
        }
        if self.layout.cells != other.layout.cells {
            return mismatch(format!(
                "frequency cells differ ({} vs {})",
                other.layout.describe_cells(),
                self.layout.describe_cells()
            ));
        }
        for (a, b) in self.zz.iter_mut().zip(&other.zz) {
            *a += b;
        }
        for (a, b) in self.mm.iter_mut().zip(&other.mm) {
            *a += b;
        }
        for (a, b) in self.vv.iter_mut().zip(&other.vv) {
            *a += b;
        }
        for (a, b) in self.n_samples.iter_mut().zip(&other.n_samples) {
            *a += b;
        }
        Ok(())
    }

    /// Checks internal consistency (array lengths, finite non-negative terms), e.g. after
    /// deserialisation; the error names `normal_equations`.
    pub fn validate(&self) -> Result<(), ImagingError> {
        let bad = |what: String| Err(ImagingError::invalid("normal_equations", what));
        if self.n_ant < 2 {
            return bad(format!("{} antennas; at least 2 are needed", self.n_ant));
        }
        self.layout.validate()?;
        check_cells_match(self.solution, &self.layout)?;
        let nsol = self.layout.n_intervals() * self.layout.n_cells();
        let nterms = nsol.checked_mul(n_pairs(self.n_ant));
        if nterms != Some(self.zz.len()) || self.mm.len() != self.zz.len() {
            return bad(format!(
                "{} zz and {} mm terms for {nsol} solutions of {} antennas",
                self.zz.len(),
                self.mm.len(),
                self.n_ant
            ));
        }
        if self.vv.len() != nsol || self.n_samples.len() != nsol {
            return bad(format!(
                "{} vv and {} sample counts for {nsol} solutions",
                self.vv.len(),
                self.n_samples.len()
            ));
        }
        if let Some(i) = self
            .zz
            .iter()
            .position(|z| !(z.re.is_finite() && z.im.is_finite()))
        {
            return Err(ImagingError::NonFinite {
                name: "normal_equations.zz".into(),
                index: i,
            });
        }
        for (name, v) in [
            ("normal_equations.mm", &self.mm),
            ("normal_equations.vv", &self.vv),
        ] {
            if let Some(i) = v.iter().position(|x| !(x.is_finite() && *x >= 0.0)) {
                return Err(ImagingError::invalid(
                    name,
                    format!("element {i} is {}; must be finite and non-negative", v[i]),
                ));
            }
        }
        Ok(())
    }

    pub fn solution(&self) -> SolutionType {
        self.solution
    }

    pub fn n_ant(&self) -> usize {
        self.n_ant
    }

    pub fn layout(&self) -> &SolutionLayout {
        &self.layout
    }

    /// Index of solution (interval, cell) in the flattened [interval][cell] order.
    pub fn solution_index(&self, interval: usize, cell: usize) -> usize {
        interval * self.layout.n_cells() + cell
    }

    /// zz of solution `sol` (see [`NormalEquations::solution_index`]), packed pairs.
    pub fn zz(&self, sol: usize) -> &[Complex64] {
        let np = n_pairs(self.n_ant);
        &self.zz[sol * np..(sol + 1) * np]
    }

    /// mm of solution `sol`, packed pairs.
    pub fn mm(&self, sol: usize) -> &[f64] {
        let np = n_pairs(self.n_ant);
        &self.mm[sol * np..(sol + 1) * np]
    }

    /// Σ w|V|² of solution `sol`.
    pub fn vv(&self, sol: usize) -> f64 {
        self.vv[sol]
    }

    /// Samples summed into solution `sol`.
    pub fn n_samples(&self, sol: usize) -> u64 {
        self.n_samples[sol]
    }
}

/// T solutions use the single all-frequency cell, G and B frequency ranges.
fn check_cells_match(solution: SolutionType, layout: &SolutionLayout) -> Result<(), ImagingError> {
    use super::layout::FreqCells;
    match (solution, &layout.cells) {
        (SolutionType::T, FreqCells::All) => Ok(()),
        (SolutionType::G | SolutionType::B, FreqCells::Ranges(_)) => Ok(()),
        (s, _) => Err(ImagingError::invalid(
            "frequency_cells",
            format!(
                "{s} solutions need {}",
                if s == SolutionType::T {
                    "the single all-frequency cell"
                } else {
                    "frequency ranges"
                }
            ),
        )),
    }
}

/// Serde for `Vec<Complex64>` as a sequence of `[re, im]` pairs.
mod complex_vec {
    use num_complex::Complex64;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &[Complex64], s: S) -> Result<S::Ok, S::Error> {
        let pairs: Vec<[f64; 2]> = v.iter().map(|z| [z.re, z.im]).collect();
        pairs.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Complex64>, D::Error> {
        let pairs = Vec::<[f64; 2]>::deserialize(d)?;
        Ok(pairs
            .into_iter()
            .map(|[re, im]| Complex64::new(re, im))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_index_packs_the_upper_triangle() {
        let n = 7;
        let mut k = 0;
        for p in 0..n {
            for q in p + 1..n {
                assert_eq!(pair_index(p, q, n), k);
                k += 1;
            }
        }
        assert_eq!(k, n_pairs(n));
    }
}
