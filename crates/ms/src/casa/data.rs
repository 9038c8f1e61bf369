//! The data pass: for a group of windows of one spectral window, the selected rows are
//! read in blocks (data, FLAG and weight cells sliced to the group's channels, one bulk
//! casacore call per column and block, [`Tab::cells_into`]) and turned into Stokes-I
//! samples on the grid for every window of the group. Reading (serialised by the
//! casacore lock, on the calling thread) overlaps with the Stokes-I decoding of the
//! previous block on a second thread.
//!
//! Memory: the group's blocks plus at most [`BUFFERS`] raw row blocks of about
//! [`BLOCK_BYTES`] each (one being read, one being decoded, one waiting), plus casacore's
//! tile cache, which `cc/bulk.cc` sizes to two tile-rows per tiled column.

use std::ops::Range;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use aperture_imaging::vis::VisBlock;
use num_complex::{Complex, Complex64};
use rubbl_casatables::GlueDataType as T;

use super::rows::check_main_columns;
use super::table::Tab;
use crate::corr::{Hand, Sample, StokesI, combine_parallel, direct};
use crate::error::MsError;
use crate::plan::{Plan, SelectedSpw, WeightSource};

/// Bytes of raw cells (data, flags, weights) read per block of rows.
pub(crate) const BLOCK_BYTES: usize = 16 << 20;
/// Raw row blocks in flight between the reading and the decoding thread.
pub(crate) const BUFFERS: usize = 3;

/// The data column's cells as stored.
#[derive(Debug, Default)]
enum VisCells {
    #[default]
    None,
    Single(Vec<Complex<f32>>),
    Double(Vec<Complex<f64>>),
}

/// One block of rows' cells: `[row][chan][corr]` over the group's channels (weights
/// `[row][corr]` unless per channel).
#[derive(Debug, Default)]
struct RawBlock {
    /// The grid cell each row fills.
    cells: Vec<usize>,
    vis: VisCells,
    flag: Vec<bool>,
    weight: Vec<f32>,
}

/// What the decoder needs to know about the cells' layout.
#[derive(Debug, Clone, Copy)]
struct CellLayout {
    ncorr: usize,
    /// Channels read per row (the group's), from channel `chan0` of the spectral window.
    nsel: usize,
    chan0: usize,
    per_channel_weight: bool,
    stokes_i: StokesI,
}

impl CellLayout {
    fn hand(&self, raw: &RawBlock, r: usize, c: usize, corr: usize) -> Hand {
        let i = (r * self.nsel + c) * self.ncorr + corr;
        let vis = match &raw.vis {
            VisCells::Single(v) => Complex64::new(f64::from(v[i].re), f64::from(v[i].im)),
            VisCells::Double(v) => v[i],
            VisCells::None => Complex64::new(0.0, 0.0),
        };
        let weight = if self.per_channel_weight {
            raw.weight[i]
        } else {
            raw.weight[r * self.ncorr + corr]
        };
        Hand {
            vis,
            weight: f64::from(weight),
            flag: raw.flag[i],
        }
    }

    /// Stokes I of row `r`, channel `c` (relative to `chan0`).
    fn sample(&self, raw: &RawBlock, r: usize, c: usize) -> Sample {
        match self.stokes_i {
            StokesI::Parallel { p, q } => {
                combine_parallel(self.hand(raw, r, c, p), self.hand(raw, r, c, q))
            }
            StokesI::Direct { i } => direct(self.hand(raw, r, c, i)),
        }
    }
}

/// Decodes raw blocks into the group's blocks until the reader hangs up, handing each
/// raw block back for reuse.
fn decode(
    lay: CellLayout,
    windows: &[Range<usize>],
    blocks: &mut [VisBlock],
    full: Receiver<RawBlock>,
    empty: SyncSender<RawBlock>,
) {
    for raw in full {
        for (r, &cell) in raw.cells.iter().enumerate() {
            for (block, chans) in blocks.iter_mut().zip(windows) {
                let mut vis = block.vis_rc.row_mut(cell);
                let mut weight = block.weight_rc.row_mut(cell);
                let mut flag = block.flag_rc.row_mut(cell);
                for (k, c) in chans.clone().enumerate() {
                    let smp = lay.sample(&raw, r, c - lay.chan0);
                    vis[k] = smp.vis;
                    weight[k] = smp.weight;
                    flag[k] = smp.flag;
                }
            }
        }
        // The reader may have finished; then the block is simply dropped.
        let _ = empty.try_send(raw);
    }
}

/// Reads one block of rows into `raw`.
fn read_block(
    main: &mut Tab,
    plan: &Plan,
    spw: &SelectedSpw,
    lay: &CellLayout,
    (column, double): (&str, bool),
    rows: &[u64],
    raw: &mut RawBlock,
) -> Result<(), MsError> {
    let (nchan, ncorr) = (spw.nchan, spw.ncorr);
    let shape = || {
        format!(
            "{} ({nchan} channels of SPECTRAL_WINDOW {} x {ncorr} correlations of \
             POLARIZATION {})",
            nchan * ncorr,
            spw.spw_id,
            spw.pol_id
        )
    };
    let per_corr = || {
        format!(
            "{ncorr} (one per correlation of POLARIZATION {})",
            spw.pol_id
        )
    };
    let (c, n) = (ncorr as i64, nchan as i64);
    let slice = (
        &[0, lay.chan0 as i64][..],
        &[c, lay.nsel as i64][..],
        &[c, n][..],
    );
    let whole = (&[0][..], &[c][..], &[c][..]);
    match (&mut raw.vis, double) {
        (VisCells::Double(v), true) => main.cells_into(column, rows, slice, v, shape)?,
        (VisCells::Single(v), false) => main.cells_into(column, rows, slice, v, shape)?,
        (vis, true) => {
            let mut v = Vec::new();
            main.cells_into(column, rows, slice, &mut v, shape)?;
            *vis = VisCells::Double(v);
        }
        (vis, false) => {
            let mut v = Vec::new();
            main.cells_into(column, rows, slice, &mut v, shape)?;
            *vis = VisCells::Single(v);
        }
    }
    main.cells_into("FLAG", rows, slice, &mut raw.flag, shape)?;
    match plan.weight_source {
        WeightSource::Spectrum => {
            main.cells_into("WEIGHT_SPECTRUM", rows, slice, &mut raw.weight, shape)?;
        }
        WeightSource::Weight => {
            main.cells_into("WEIGHT", rows, whole, &mut raw.weight, per_corr)?;
        }
        WeightSource::Sigma => {
            main.cells_into("SIGMA", rows, whole, &mut raw.weight, per_corr)?;
            for s in &mut raw.weight {
                *s = 1.0 / (*s * *s);
            }
        }
    }
    Ok(())
}

/// Reads windows `group` of `plan` (all of one spectral window) in one pass over their
/// rows; returns one block per window, rows on the plan's grid (time-major).
pub(crate) fn read_group(
    main: &mut Tab,
    plan: &Plan,
    group: &[usize],
) -> Result<Vec<VisBlock>, MsError> {
    read_group_in_blocks(main, plan, group, BLOCK_BYTES)
}

/// [`read_group`] reading blocks of about `block_bytes` of raw cells (at least a row).
fn read_group_in_blocks(
    main: &mut Tab,
    plan: &Plan,
    group: &[usize],
    block_bytes: usize,
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
    let windows: Vec<Range<usize>> = group
        .iter()
        .map(|&w| plan.windows[w].chans.clone())
        .collect();
    // The channels read: those of the group's windows (consecutive in practice).
    let chan0 = windows.iter().map(|c| c.start).min().unwrap_or(0);
    let chan1 = windows.iter().map(|c| c.end).max().unwrap_or(0);
    let lay = CellLayout {
        ncorr: spw.ncorr,
        nsel: chan1 - chan0,
        chan0,
        per_channel_weight: plan.weight_source == WeightSource::Spectrum,
        stokes_i: spw.stokes_i,
    };
    let row_bytes = lay.nsel * lay.ncorr * (if double { 16 } else { 8 } + 1 + 4);
    let block_rows = (block_bytes / row_bytes.max(1)).max(1);

    let rows = &plan.layout.spw_rows[s];
    let block_rows = block_rows.min(rows.len()).max(1);
    let (full_tx, full_rx) = sync_channel::<RawBlock>(1);
    let (empty_tx, empty_rx) = sync_channel::<RawBlock>(BUFFERS);
    std::thread::scope(|scope| {
        let windows = &windows;
        // The decoder allocates (and first touches) the group's blocks while the first
        // rows are read.
        let decoder = scope.spawn(move || {
            let mut blocks: Vec<VisBlock> = group.iter().map(|&w| plan.empty_block(w)).collect();
            decode(lay, windows, &mut blocks, full_rx, empty_tx);
            blocks
        });
        let mut row_numbers = Vec::with_capacity(block_rows);
        let read = (|| {
            for chunk in rows.chunks(block_rows) {
                let mut raw = empty_rx.try_recv().unwrap_or_default();
                row_numbers.clear();
                row_numbers.extend(chunk.iter().map(|&(r, _)| r));
                raw.cells.clear();
                raw.cells.extend(chunk.iter().map(|&(_, c)| c));
                read_block(
                    main,
                    plan,
                    spw,
                    &lay,
                    (column, double),
                    &row_numbers,
                    &mut raw,
                )?;
                if full_tx.send(raw).is_err() {
                    break;
                }
            }
            Ok(())
        })();
        drop(full_tx);
        match decoder.join() {
            Ok(blocks) => read.map(|()| blocks),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::Selection;

    #[test]
    fn blocks_of_any_size_give_the_same_samples() {
        // The fixture's rows read one at a time, seven at a time and all at once, for
        // its two spectral windows split into windows of 2 channels read as one group.
        let ms = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/data/ms/low-linear.ms");
        let _casacore = crate::casacore_lock();
        let mut main = Tab::open(&ms, "MAIN").unwrap();
        let meta = super::super::subtables::read_meta(&ms, &main).unwrap();
        let plan =
            super::super::rows::plan(&mut main, &meta, &Selection::default(), Some(2)).unwrap();
        let spw0: Vec<usize> = (0..plan.windows.len())
            .filter(|&w| plan.windows[w].spw == 0)
            .collect();
        assert!(spw0.len() >= 2, "{spw0:?}");
        let row_bytes = plan.spws[0].nchan * plan.spws[0].ncorr * 13;
        let all = read_group_in_blocks(&mut main, &plan, &spw0, usize::MAX).unwrap();
        for bytes in [1, 7 * row_bytes] {
            let got = read_group_in_blocks(&mut main, &plan, &spw0, bytes).unwrap();
            for (a, b) in all.iter().zip(&got) {
                assert_eq!(a.vis_rc, b.vis_rc, "{bytes}");
                assert_eq!(a.weight_rc, b.weight_rc, "{bytes}");
                assert_eq!(a.flag_rc, b.flag_rc, "{bytes}");
            }
        }
        // Each window read alone equals its part of the group.
        for (k, &w) in spw0.iter().enumerate() {
            let one = read_group_in_blocks(&mut main, &plan, &[w], 1).unwrap();
            assert_eq!(one[0].vis_rc, all[k].vis_rc);
            assert_eq!(one[0].flag_rc, all[k].flag_rc);
        }
        assert!(all[0].flag_rc.iter().any(|&f| !f));
    }
}
