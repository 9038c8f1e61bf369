//! The (time × baseline) grid of the selected rows: the distinct times (ascending) and
//! antenna pairs (ascending by (ant1, ant2)), and for each selected spectral window the
//! main-table rows in row order with the grid cell each fills. Output blocks are
//! time-major over this grid, as aperture's visibility store and simulator order them.

use crate::error::MsError;

/// One selected main-table row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SelectedRow {
    pub row: u64,
    pub time: f64,
    pub ant1: u32,
    pub ant2: u32,
    /// Index of the row's spectral window in the selection.
    pub spw: usize,
}

/// The grid and where each selected row lands on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Distinct times (TIME, MJD seconds), ascending.
    pub time_s: Vec<f64>,
    /// Distinct antenna pairs, ascending.
    pub ant1: Vec<u32>,
    pub ant2: Vec<u32>,
    /// Per selected spectral window: (main-table row, cell `t·nbaseline + b`), ascending
    /// by row.
    pub spw_rows: Vec<Vec<(u64, usize)>>,
    /// Per cell: the first main-table row (of any spectral window) there, whose UVW the
    /// cell takes; `None` for a cell no row fills.
    pub uvw_row: Vec<Option<u64>>,
}

/// Grids with more cells than this many per filled cell (plus a slack) are refused: the
/// rows do not share integration times (e.g. baseline-dependent averaging).
const MAX_CELLS_PER_ROW: usize = 4;
const SPARSE_SLACK: usize = 1 << 16;

impl Layout {
    /// The grid of `rows` (any order) for `nspw` selected spectral windows. Errors name
    /// the MAIN rows: two rows of one spectral window with the same time and antennas,
    /// or times that do not form integrations.
    pub fn build(
        path: &std::path::Path,
        rows: &[SelectedRow],
        nspw: usize,
    ) -> Result<Self, MsError> {
        let bad = |column: &str, row: Option<u64>, reason: String| MsError::BadValue {
            path: path.to_path_buf(),
            table: "MAIN".into(),
            column: column.into(),
            row,
            reason,
        };
        let mut time_s: Vec<f64> = rows.iter().map(|r| r.time).collect();
        time_s.sort_by(f64::total_cmp);
        time_s.dedup();
        let mut pairs: Vec<(u32, u32)> = rows.iter().map(|r| (r.ant1, r.ant2)).collect();
        pairs.sort_unstable();
        pairs.dedup();
        let (ntime, nbl) = (time_s.len(), pairs.len());
        let ncell = ntime.saturating_mul(nbl);
        let filled = rows.len() / nspw.max(1);
        if ncell
            > filled
                .saturating_mul(MAX_CELLS_PER_ROW)
                .saturating_add(SPARSE_SLACK)
        {
            return Err(bad(
                "TIME",
                None,
                format!(
                    "the selected rows have {ntime} distinct times and {nbl} antenna pairs, a \
                     grid of {ncell} cells of which at most {filled} are filled; aperture \
                     needs the rows of one integration to share the same TIME (data with \
                     baseline-dependent averaging are not supported)"
                ),
            ));
        }
        const NONE: u64 = u64::MAX;
        let mut uvw_row = vec![NONE; ncell];
        let mut spw_rows: Vec<Vec<(u64, usize)>> = vec![Vec::new(); nspw];
        let mut seen: Vec<Vec<u64>> = vec![Vec::new(); nspw];
        for r in rows {
            let t = time_s.partition_point(|&x| x < r.time);
            let b = pairs.partition_point(|&p| p < (r.ant1, r.ant2));
            let cell = t * nbl + b;
            if r.spw >= nspw {
                return Err(bad(
                    "DATA_DESC_ID",
                    Some(r.row),
                    format!("spectral window index {} of {nspw}", r.spw),
                ));
            }
            let s = &mut seen[r.spw];
            if s.is_empty() {
                s.resize(ncell, NONE);
            }
            if s[cell] != NONE {
                let (a, b) = (s[cell].min(r.row), s[cell].max(r.row));
                return Err(bad(
                    "TIME",
                    Some(b),
                    format!(
                        "duplicates row {a}: same time {} s, antennas {}-{} and data \
                         description",
                        r.time, r.ant1, r.ant2
                    ),
                ));
            }
            s[cell] = r.row;
            uvw_row[cell] = uvw_row[cell].min(r.row);
            spw_rows[r.spw].push((r.row, cell));
        }
        for v in &mut spw_rows {
            v.sort_unstable();
        }
        Ok(Self {
            time_s,
            ant1: pairs.iter().map(|p| p.0).collect(),
            ant2: pairs.iter().map(|p| p.1).collect(),
            spw_rows,
            uvw_row: uvw_row
                .into_iter()
                .map(|r| (r != NONE).then_some(r))
                .collect(),
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

    /// Cells no selected row of any spectral window fills.
    pub fn empty_cells(&self) -> usize {
        self.uvw_row.iter().filter(|r| r.is_none()).count()
    }

    /// Selected rows of every spectral window.
    pub fn nrows(&self) -> usize {
        self.spw_rows.iter().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn row(row: u64, time: f64, ant1: u32, ant2: u32, spw: usize) -> SelectedRow {
        SelectedRow {
            row,
            time,
            ant1,
            ant2,
            spw,
        }
    }

    #[test]
    fn rows_of_two_spws_share_one_grid() {
        // spw 0: t=5 (0-1, 0-2), t=7 (0-1); spw 1: t=7 (0-2, 0-1), in another order.
        let rows = [
            row(0, 5.0, 0, 1, 0),
            row(1, 5.0, 0, 2, 0),
            row(2, 7.0, 0, 1, 0),
            row(3, 7.0, 0, 2, 1),
            row(4, 7.0, 0, 1, 1),
        ];
        let l = Layout::build(Path::new("x.ms"), &rows, 2).unwrap();
        assert_eq!(l.time_s, [5.0, 7.0]);
        assert_eq!((l.ant1.clone(), l.ant2.clone()), (vec![0, 0], vec![1, 2]));
        assert_eq!(l.spw_rows[0], [(0, 0), (1, 1), (2, 2)]);
        assert_eq!(l.spw_rows[1], [(3, 3), (4, 2)]);
        assert_eq!(l.uvw_row, [Some(0), Some(1), Some(2), Some(3)]);
        assert_eq!((l.empty_cells(), l.nrows()), (0, 5));
    }

    #[test]
    fn duplicates_name_both_rows() {
        let rows = [row(3, 5.0, 0, 1, 0), row(8, 5.0, 0, 1, 0)];
        let e = Layout::build(Path::new("x.ms"), &rows, 1)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("MAIN/TIME row 8") && e.contains("duplicates row 3"),
            "{e}"
        );
    }

    #[test]
    fn jittered_times_are_refused() {
        let rows: Vec<_> = (0..100_000u32)
            .map(|r| row(u64::from(r), f64::from(r) * 1e-3, r % 300, r % 300 + 1, 0))
            .collect();
        let e = Layout::build(Path::new("x.ms"), &rows, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("share the same TIME"), "{e}");
    }
}
