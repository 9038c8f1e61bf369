//! The data pass: for a group of windows of one spectral window, each selected row's
//! data, FLAG and weight cells are read once (in row order) and turned into Stokes-I
//! samples on the grid, channel by channel, for every window of the group. Memory: the
//! group's blocks plus one row's cells.

use aperture_imaging::vis::VisBlock;
use num_complex::{Complex, Complex64};
use rubbl_casatables::GlueDataType as T;

use super::rows::check_main_columns;
use super::table::Tab;
use crate::corr::{Hand, Sample, StokesI, combine_parallel, direct};
use crate::error::MsError;
use crate::plan::{Plan, SelectedSpw, WeightSource};

/// One row's cells, flattened `[chan][corr]` (weights `[corr]` unless per channel).
struct RowCells {
    vis: Vec<Complex64>,
    flag: Vec<bool>,
    weight: Vec<f64>,
    per_channel_weight: bool,
}

impl RowCells {
    fn hand(&self, ncorr: usize, chan: usize, corr: usize) -> Hand {
        let i = chan * ncorr + corr;
        Hand {
            vis: self.vis[i],
            weight: if self.per_channel_weight {
                self.weight[i]
            } else {
                self.weight[corr]
            },
            flag: self.flag[i],
        }
    }

    fn sample(&self, spw: &SelectedSpw, chan: usize) -> Sample {
        match spw.stokes_i {
            StokesI::Parallel { p, q } => {
                combine_parallel(self.hand(spw.ncorr, chan, p), self.hand(spw.ncorr, chan, q))
            }
            StokesI::Direct { i } => direct(self.hand(spw.ncorr, chan, i)),
        }
    }
}

fn read_row(
    main: &mut Tab,
    plan: &Plan,
    spw: &SelectedSpw,
    column: &str,
    double: bool,
    row: u64,
) -> Result<RowCells, MsError> {
    let (nchan, ncorr) = (spw.nchan, spw.ncorr);
    let n = nchan * ncorr;
    let shape = || {
        format!(
            "{n} ({nchan} channels of SPECTRAL_WINDOW {} x {ncorr} correlations of \
             POLARIZATION {})",
            spw.spw_id, spw.pol_id
        )
    };
    let vis: Vec<Complex64> = if double {
        main.cell_of::<Complex<f64>>(column, row, n, shape)?
    } else {
        main.cell_of::<Complex<f32>>(column, row, n, shape)?
            .into_iter()
            .map(|c| Complex64::new(f64::from(c.re), f64::from(c.im)))
            .collect()
    };
    let flag = main.cell_of::<bool>("FLAG", row, n, shape)?;
    let per_corr = || {
        format!(
            "{ncorr} (one per correlation of POLARIZATION {})",
            spw.pol_id
        )
    };
    let (weight, per_channel_weight) = match plan.weight_source {
        WeightSource::Spectrum => (main.cell_of::<f32>("WEIGHT_SPECTRUM", row, n, shape)?, true),
        WeightSource::Weight => (main.cell_of::<f32>("WEIGHT", row, ncorr, per_corr)?, false),
        WeightSource::Sigma => {
            let s = main.cell_of::<f32>("SIGMA", row, ncorr, per_corr)?;
            (s.into_iter().map(|s| 1.0 / (s * s)).collect(), false)
        }
    };
    Ok(RowCells {
        vis,
        flag,
        weight: weight.into_iter().map(f64::from).collect(),
        per_channel_weight,
    })
}

/// Reads windows `group` of `plan` (all of one spectral window) in one pass over their
/// rows; returns one block per window, rows on the plan's grid (time-major).
pub(crate) fn read_group(
    main: &mut Tab,
    plan: &Plan,
    group: &[usize],
) -> Result<Vec<VisBlock>, MsError> {
    let Some(&first) = group.first() else {
        return Ok(Vec::new());
    };
    if let Some(&w) = group.iter().find(|&&w| w >= plan.windows.len()) {
        return Err(MsError::selection(
            "windows",
            format!("window {w} of {}", plan.windows.len()),
        ));
    }
    let s = plan.windows[first].spw;
    if group.iter().any(|&w| plan.windows[w].spw != s) {
        return Err(MsError::selection(
            "windows",
            "a group must hold windows of one spectral window",
        ));
    }
    let column = plan.column.column();
    let double = check_main_columns(main, column)? == T::TpDComplex;
    let spw = &plan.spws[s];
    let mut blocks: Vec<VisBlock> = group.iter().map(|&w| plan.empty_block(w)).collect();
    for &(row, cell) in &plan.layout.spw_rows[s] {
        let cells = read_row(main, plan, spw, column, double, row)?;
        for (block, &w) in blocks.iter_mut().zip(group) {
            let chans = plan.windows[w].chans.clone();
            let start = chans.start;
            let mut vis = block.vis_rc.row_mut(cell);
            let mut weight = block.weight_rc.row_mut(cell);
            let mut flag = block.flag_rc.row_mut(cell);
            for c in chans {
                let smp = cells.sample(spw, c);
                vis[c - start] = smp.vis;
                weight[c - start] = smp.weight;
                flag[c - start] = smp.flag;
            }
        }
    }
    Ok(blocks)
}
