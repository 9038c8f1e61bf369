//! Mapping visibility rows to the dataset's (time × baseline) grid: the distinct times
//! (ascending) and antenna pairs (ascending by (ant1, ant2)) of a set of rows, each row's
//! cell, and reordering a block onto the full grid (missing cells flagged).

use aperture_imaging::coords::UvwMetres;
use aperture_imaging::vis::VisBlock;
use ndarray::Array2;
use num_complex::Complex64;

use crate::error::FormatError;

/// The grid spanned by some rows, and where each row lands on it.
#[derive(Debug, Clone, PartialEq)]
pub struct RowGrid {
    /// Distinct times, ascending.
    pub time_s: Vec<f64>,
    /// Distinct (ant1, ant2) pairs, ascending.
    pub ant1: Vec<u32>,
    pub ant2: Vec<u32>,
    /// Cell `t · nbaseline + b` of each row.
    cell_r: Vec<usize>,
}

/// Grids with more than this many cells per row (plus [`SPARSE_SLACK`]) are refused: the
/// rows are then not a time × baseline observation (e.g. per-row jittered times) and
/// the grid would waste memory on missing cells.
const MAX_CELLS_PER_ROW: usize = 4;
const SPARSE_SLACK: usize = 1 << 16;

impl RowGrid {
    /// The grid of rows given by their times and antenna pairs. Times are compared
    /// exactly (equal f64 = same integration). Errors name the offending row: a
    /// non-finite time, or a row with the time and antennas of an earlier row.
    pub fn from_rows(time_r: &[f64], ant1_r: &[u32], ant2_r: &[u32]) -> Result<Self, FormatError> {
        let nrow = time_r.len();
        if ant1_r.len() != nrow || ant2_r.len() != nrow {
            return Err(FormatError::invalid(
                "ant1/ant2",
                format!(
                    "{} and {} antenna values for {nrow} rows",
                    ant1_r.len(),
                    ant2_r.len()
                ),
            ));
        }
        if nrow == 0 {
            return Err(FormatError::invalid("rows", "no rows"));
        }
        if let Some(r) = time_r.iter().position(|t| !t.is_finite()) {
            return Err(FormatError::invalid(
                format!("row {r}"),
                format!("time {} is not finite", time_r[r]),
            ));
        }
        let mut time_s = time_r.to_vec();
        time_s.sort_by(f64::total_cmp);
        time_s.dedup_by(|a, b| a.to_bits() == b.to_bits() || *a == *b);
        let mut pairs: Vec<(u32, u32)> =
            ant1_r.iter().copied().zip(ant2_r.iter().copied()).collect();
        pairs.sort_unstable();
        pairs.dedup();
        let (ntime, nbl) = (time_s.len(), pairs.len());
        let ncell = ntime.saturating_mul(nbl);
        if ncell
            > nrow
                .saturating_mul(MAX_CELLS_PER_ROW)
                .saturating_add(SPARSE_SLACK)
        {
            return Err(FormatError::invalid(
                "time",
                format!(
                    "the {nrow} rows have {ntime} distinct times and {nbl} distinct antenna pairs: \
                     a {ntime} x {nbl} grid of which at most {nrow} cells would be filled; \
                     rows of one integration must share exactly the same time"
                ),
            ));
        }
        // Each row's cell; `first[cell]` is the first row there, to name duplicates.
        const NONE: usize = usize::MAX;
        let mut first = vec![NONE; ncell];
        let mut cell_r = Vec::with_capacity(nrow);
        for r in 0..nrow {
            let t = time_s.partition_point(|&x| x < time_r[r]);
            let b = pairs.partition_point(|&p| p < (ant1_r[r], ant2_r[r]));
            let cell = t * nbl + b;
            if first[cell] != NONE {
                return Err(FormatError::invalid(
                    format!("row {r}"),
                    format!(
                        "duplicates row {}: same time {} s and antennas {}-{}",
                        first[cell], time_r[r], ant1_r[r], ant2_r[r]
                    ),
                ));
            }
            first[cell] = r;
            cell_r.push(cell);
        }
        Ok(Self {
            time_s,
            ant1: pairs.iter().map(|p| p.0).collect(),
            ant2: pairs.iter().map(|p| p.1).collect(),
            cell_r,
        })
    }

    pub fn ntime(&self) -> usize {
        self.time_s.len()
    }

    pub fn nbaseline(&self) -> usize {
        self.ant1.len()
    }

    /// Cells of the grid: ntime · nbaseline.
    pub fn ncell(&self) -> usize {
        self.ntime() * self.nbaseline()
    }

    /// Cells no row falls in.
    pub fn missing_cells(&self) -> usize {
        self.ncell() - self.cell_r.len()
    }

    /// True when the rows are already the whole grid in grid order (row r in cell r), as
    /// `aperture_imaging::sim` produces them.
    pub fn is_identity(&self) -> bool {
        self.cell_r.len() == self.ncell() && self.cell_r.iter().enumerate().all(|(r, &c)| r == c)
    }

    /// `block` (whose rows this grid was built from) with one row per grid cell, time-major:
    /// rows moved to their cells; cells without a row get zero visibility, zero weight,
    /// flag set, uvw (0, 0, 0), the cell's time and antennas.
    pub fn regrid(&self, block: &VisBlock) -> Result<VisBlock, FormatError> {
        if block.n_rows() != self.cell_r.len() {
            return Err(FormatError::invalid(
                "block",
                format!(
                    "has {} rows; the grid was built from {}",
                    block.n_rows(),
                    self.cell_r.len()
                ),
            ));
        }
        if self.is_identity() {
            return Ok(block.clone());
        }
        let (ncell, nchan, nbl) = (self.ncell(), block.n_chan(), self.nbaseline());
        let mut out = VisBlock {
            uvw_r: vec![UvwMetres::default(); ncell],
            freq_c: block.freq_c.clone(),
            vis_rc: Array2::from_elem((ncell, nchan), Complex64::new(0.0, 0.0)),
            weight_rc: Array2::zeros((ncell, nchan)),
            flag_rc: Array2::from_elem((ncell, nchan), true),
            ant1_r: (0..ncell).map(|c| self.ant1[c % nbl]).collect(),
            ant2_r: (0..ncell).map(|c| self.ant2[c % nbl]).collect(),
            time_r: (0..ncell).map(|c| self.time_s[c / nbl]).collect(),
            phase_centre: block.phase_centre,
        };
        for (r, &c) in self.cell_r.iter().enumerate() {
            out.uvw_r[c] = block.uvw_r[r];
            out.vis_rc.row_mut(c).assign(&block.vis_rc.row(r));
            out.weight_rc.row_mut(c).assign(&block.weight_rc.row(r));
            out.flag_rc.row_mut(c).assign(&block.flag_rc.row(r));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aperture_imaging::coords::RaDec;

    #[test]
    fn simulated_order_is_the_identity() {
        let g = RowGrid::from_rows(
            &[5.0, 5.0, 5.0, 7.0, 7.0, 7.0],
            &[0, 0, 1, 0, 0, 1],
            &[1, 2, 2, 1, 2, 2],
        )
        .unwrap();
        assert_eq!((g.ntime(), g.nbaseline()), (2, 3));
        assert!(g.is_identity());
        assert_eq!(g.missing_cells(), 0);
    }

    #[test]
    fn irregular_rows_are_moved_and_gaps_flagged() {
        // Rows out of order, baseline 0-2 missing at t = 7.
        let time = [7.0, 5.0, 5.0, 7.0, 5.0];
        let a1 = [1, 0, 1, 0, 0];
        let a2 = [2, 1, 2, 1, 2];
        let g = RowGrid::from_rows(&time, &a1, &a2).unwrap();
        assert_eq!(g.time_s, [5.0, 7.0]);
        assert_eq!(
            (g.ant1.clone(), g.ant2.clone()),
            (vec![0, 0, 1], vec![1, 2, 2])
        );
        assert_eq!(g.missing_cells(), 1);
        assert!(!g.is_identity());
        let mut b = VisBlock::zeros(
            (0..5).map(|r| UvwMetres::new(r as f64, 0.0, 0.0)).collect(),
            vec![1e8],
            a1.to_vec(),
            a2.to_vec(),
            time.to_vec(),
            RaDec::from_degrees(0.0, 0.0),
        );
        for r in 0..5 {
            b.vis_rc[[r, 0]] = Complex64::new(r as f64 + 1.0, 0.0);
        }
        let out = g.regrid(&b).unwrap();
        // Cell order: (5,0-1)=row1, (5,0-2)=row4, (5,1-2)=row2, (7,0-1)=row3, (7,0-2)=gap, (7,1-2)=row0.
        let re: Vec<f64> = out.vis_rc.column(0).iter().map(|v| v.re).collect();
        assert_eq!(re, [2.0, 5.0, 3.0, 4.0, 0.0, 1.0]);
        assert_eq!(
            out.flag_rc.column(0).to_vec(),
            [false, false, false, false, true, false]
        );
        assert_eq!(out.weight_rc[[4, 0]], 0.0);
        assert_eq!((out.time_r[4], out.ant1_r[4], out.ant2_r[4]), (7.0, 0, 2));
        assert_eq!(out.uvw_r[5].u, 0.0);
        assert_eq!(out.uvw_r[0].u, 1.0);
        out.validate().unwrap();
    }

    #[test]
    fn duplicates_and_bad_times_name_the_row() {
        let e = RowGrid::from_rows(&[1.0, 2.0, 1.0], &[0, 0, 0], &[1, 1, 1]).unwrap_err();
        assert!(
            e.to_string().contains("row 2") && e.to_string().contains("duplicates row 0"),
            "{e}"
        );
        let e = RowGrid::from_rows(&[1.0, f64::NAN], &[0, 0], &[1, 1]).unwrap_err();
        assert!(e.to_string().contains("row 1"), "{e}");
    }

    #[test]
    fn jittered_times_are_refused() {
        let n = 100_000;
        let time: Vec<f64> = (0..n).map(|r| r as f64 * 1e-3).collect();
        let a1: Vec<u32> = (0..n).map(|r| (r % 400) as u32).collect();
        let a2: Vec<u32> = a1.iter().map(|a| a + 1).collect();
        let e = RowGrid::from_rows(&time, &a1, &a2).unwrap_err();
        assert!(e.to_string().contains("same time"), "{e}");
    }
}
