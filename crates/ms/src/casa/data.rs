//! The data pass: for a group of windows of one spectral window, the selected rows are
//! read in blocks (data, FLAG and weight cells sliced to the group's channels, one bulk
//! casacore call per column and block, [`Tab::cells_into`]) and turned into Stokes-I
//! samples on the grid for every window of the group. Reading (serialised by the
//! casacore lock, on the calling thread) overlaps with the Stokes-I decoding of the
//! previous block on a second thread. In [`read_time_chunks`] a third thread reads the
//! column files ahead of the reader into the page cache ([`crate::prefetch`]), so a
//! cold MS is paged in while the previous blocks are read and decoded.
//!
//! Memory: the group's blocks plus at most [`BUFFERS`] raw row blocks of about
//! [`BLOCK_BYTES`] each (one being read, one being decoded, one waiting), plus casacore's
//! tile cache, which `cc/bulk.cc` sizes to two tile-rows per tiled column.

use std::ops::Range;
use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};

use aperture_imaging::vis::VisBlock;
use num_complex::{Complex, Complex32, Complex64};
use rubbl_casatables::GlueDataType as T;

use super::rows::check_main_columns;
use super::table::Tab;
use crate::chunks::{ChunkPool, ChunkValues, Precision, TimeChunk, WindowChunk};
use crate::corr::{Hand, Sample, StokesI, combine_parallel, direct};
use crate::error::MsError;
use crate::plan::{Plan, SelectedSpw, WeightSource};
use crate::prefetch::{self, PrefetchFile};

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

/// This thread's CPU time, seconds (0 where unavailable).
fn thread_cpu_s() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to fill.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } != 0 {
        return 0.0;
    }
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// The storage-manager files a data pass over `column` reads (with FLAG and the
/// weights), for the read-ahead; none when casacore cannot say (call under the casacore
/// lock).
fn read_ahead_files(main: &mut Tab, column: &str, weights: WeightSource) -> Vec<PrefetchFile> {
    let weights = match weights {
        WeightSource::Spectrum => "WEIGHT_SPECTRUM",
        WeightSource::Weight => "WEIGHT",
        WeightSource::Sigma => "SIGMA",
    };
    match main.storage_files(&[column, "FLAG", weights]) {
        Ok(files) => {
            for f in &files {
                tracing::debug!(path = %f.path.display(), map = ?f.map, "read ahead");
            }
            files
        }
        Err(e) => {
            tracing::debug!(error = %e, "no read-ahead");
            Vec::new()
        }
    }
}

/// Starts reading ahead the first [`prefetch::WINDOW_BYTES`] of the files of `column`,
/// FLAG and the weights (WEIGHT_SPECTRUM, else WEIGHT) on a thread of its own, which
/// ends once advised: the data pass that follows planning usually starts at row 0 (call
/// under the casacore lock; when disabled or unknown, nothing happens).
pub(crate) fn read_ahead_first(main: &mut Tab, column: &str) {
    if !prefetch::enabled() {
        return;
    }
    let weights = if main.has("WEIGHT_SPECTRUM") {
        WeightSource::Spectrum
    } else {
        WeightSource::Weight
    };
    let files = read_ahead_files(main, column, weights);
    if !files.is_empty() {
        let _ = std::thread::Builder::new()
            .name("ms-prefetch".into())
            .spawn(move || prefetch::run_first(&files, prefetch::WINDOW_BYTES));
    }
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

/// A group must name windows of `plan` (`first` among them), all of one spectral window;
/// returns that spectral window.
fn check_group(plan: &Plan, group: &[usize], first: usize) -> Result<usize, MsError> {
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
    Ok(s)
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
    let s = check_group(plan, group, first)?;
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

/// A raw block of rows of time chunk `tc` for [`read_time_chunks`]; `last` marks the
/// chunk's last block (a chunk without rows is one empty block).
#[derive(Debug, Default)]
struct ChunkRaw {
    tc: usize,
    last: bool,
    raw: RawBlock,
}

/// Where the decoder of [`read_time_chunks`] puts samples: the group's windows, the
/// grid's baselines and the chunks' length in integrations.
#[derive(Debug, Clone)]
struct ChunkShape<'a> {
    windows: &'a [(usize, Range<usize>)],
    nbl: usize,
    ntime: usize,
    time_chunk: usize,
    precision: Precision,
}

impl ChunkShape<'_> {
    fn times(&self, tc: usize) -> Range<usize> {
        let t0 = tc * self.time_chunk;
        t0..(t0 + self.time_chunk).min(self.ntime)
    }

    /// Chunk `tc` in buffers from `pool`, its values not yet set.
    fn unset(&self, tc: usize, pool: &ChunkPool) -> TimeChunk {
        TimeChunk {
            index: tc,
            times: self.times(tc),
            windows: self
                .windows
                .iter()
                .map(|(w, chans)| {
                    let len = self.time_chunk * self.nbl * chans.len();
                    WindowChunk::from_pool(*w, len, self.precision, pool)
                })
                .collect(),
        }
    }
}

/// Sets the cells of `chunk` that no row filled (`filled[cell]` false: cells without a
/// selected row, and the padding past the last integration) to 0 with weight 0, flagged.
fn fill_empty_cells(chunk: &mut TimeChunk, shape: &ChunkShape<'_>, filled: &[bool]) {
    for ((_, chans), out) in shape.windows.iter().zip(&mut chunk.windows) {
        let n = chans.len();
        for (cell, _) in filled.iter().enumerate().filter(|(_, f)| !**f) {
            let at = cell * n..(cell + 1) * n;
            out.flag[at.clone()].fill(true);
            match &mut out.values {
                ChunkValues::Single { vis, weight } => {
                    vis[at.clone()].fill(Complex32::new(0.0, 0.0));
                    weight[at].fill(0.0);
                }
                ChunkValues::Double { vis, weight } => {
                    vis[at.clone()].fill(Complex64::new(0.0, 0.0));
                    weight[at].fill(0.0);
                }
            }
        }
    }
}

/// Whether a hand is usable: unflagged, a positive finite weight and a finite value
/// (as [`Hand`]'s own test).
#[inline(always)]
fn usable(v: Complex64, w: f64, f: bool) -> bool {
    !f && w.is_finite() && w > 0.0 && v.re.is_finite() && v.im.is_finite()
}

/// Stokes I of one row's channels `c0..` (relative to the cells' first) from hands `p`
/// and `q`, into f32: [`combine_parallel`] sample by sample, computed the same way (in
/// f64, then narrowed), with the choice made by selects rather than branches. The
/// cells are `[chan][corr]` (`nc` correlations); weights are `[chan][corr]`
/// (`w_stride` = `nc`) or one per correlation (`w_stride` = 0).
#[inline(never)]
fn parallel_hands_f32(
    (vis, flag, weight): (&[Complex32], &[bool], &[f32]),
    (nc, w_stride, p, q, c0): (usize, usize, usize, usize, usize),
    (out_vis, out_weight, out_flag): (&mut [Complex32], &mut [f32], &mut [bool]),
) {
    let widen = |v: Complex32| Complex64::new(f64::from(v.re), f64::from(v.im));
    for (k, ((ov, ow), of)) in out_vis
        .iter_mut()
        .zip(out_weight.iter_mut())
        .zip(out_flag.iter_mut())
        .enumerate()
    {
        let (i, iw) = ((c0 + k) * nc, (c0 + k) * w_stride);
        let (vp, vq) = (widen(vis[i + p]), widen(vis[i + q]));
        let (wp, wq) = (f64::from(weight[iw + p]), f64::from(weight[iw + q]));
        let (up, uq) = (usable(vp, wp, flag[i + p]), usable(vq, wq, flag[i + q]));
        let both_v = (vp + vq) * 0.5;
        let both_w = 4.0 / (1.0 / wp + 1.0 / wq);
        let (v, w) = match (up, uq) {
            (true, true) => (both_v, both_w),
            (true, false) => (vp, wp),
            (false, true) => (vq, wq),
            (false, false) => (Sample::FLAGGED.vis, Sample::FLAGGED.weight),
        };
        *ov = Complex32::new(v.re as f32, v.im as f32);
        *ow = w as f32;
        *of = !(up || uq);
    }
}

/// Stokes I of row `r` for every channel of `chans` into `out` at sample `at`.
fn decode_row(
    lay: &CellLayout,
    raw: &RawBlock,
    r: usize,
    chans: &Range<usize>,
    out: &mut WindowChunk,
    at: usize,
) {
    let n = chans.len();
    let flag = &mut out.flag[at..at + n];
    match (&mut out.values, &raw.vis, lay.stokes_i) {
        // The usual case, without the per-sample dispatch of `CellLayout::sample`.
        (
            ChunkValues::Single { vis, weight },
            VisCells::Single(cells),
            StokesI::Parallel { p, q },
        ) => {
            let (nc, c0) = (lay.ncorr, chans.start - lay.chan0);
            let row = r * lay.nsel * nc..(r + 1) * lay.nsel * nc;
            let (w_row, w_stride) = if lay.per_channel_weight {
                (&raw.weight[row.clone()], nc)
            } else {
                (&raw.weight[r * nc..(r + 1) * nc], 0)
            };
            parallel_hands_f32(
                (&cells[row.clone()], &raw.flag[row], w_row),
                (nc, w_stride, p, q, c0),
                (&mut vis[at..at + n], &mut weight[at..at + n], flag),
            );
        }
        (ChunkValues::Single { vis, weight }, _, _) => {
            let (vis, weight) = (&mut vis[at..at + n], &mut weight[at..at + n]);
            for (k, c) in chans.clone().enumerate() {
                let s = lay.sample(raw, r, c - lay.chan0);
                vis[k] = Complex32::new(s.vis.re as f32, s.vis.im as f32);
                weight[k] = s.weight as f32;
                flag[k] = s.flag;
            }
        }
        (ChunkValues::Double { vis, weight }, _, _) => {
            let (vis, weight) = (&mut vis[at..at + n], &mut weight[at..at + n]);
            for (k, c) in chans.clone().enumerate() {
                let s = lay.sample(raw, r, c - lay.chan0);
                vis[k] = s.vis;
                weight[k] = s.weight;
                flag[k] = s.flag;
            }
        }
    }
}

/// Decodes raw blocks into time chunks (in buffers from `pool`), handing each complete
/// one to `sink`, until the reader hangs up or `sink` declines (returns false).
fn decode_chunks(
    lay: CellLayout,
    shape: &ChunkShape<'_>,
    pool: &ChunkPool,
    full: Receiver<ChunkRaw>,
    empty: SyncSender<ChunkRaw>,
    sink: &mut (dyn FnMut(TimeChunk) -> bool + Send),
) {
    let mut current: Option<TimeChunk> = None;
    // The chunk's cells a row has filled.
    let mut filled = vec![false; shape.time_chunk * shape.nbl];
    for block in full {
        let tc = block.tc;
        let chunk = match &mut current {
            Some(c) if c.index == tc => c,
            _ => {
                filled.fill(false);
                current.insert(shape.unset(tc, pool))
            }
        };
        let base = tc * shape.time_chunk * shape.nbl;
        for (r, &cell) in block.raw.cells.iter().enumerate() {
            filled[cell - base] = true;
            for ((_, chans), out) in shape.windows.iter().zip(&mut chunk.windows) {
                decode_row(&lay, &block.raw, r, chans, out, (cell - base) * chans.len());
            }
        }
        let last = block.last;
        // The reader may have finished; then the block is simply dropped.
        let _ = empty.try_send(block);
        if last && let Some(mut done) = current.take() {
            fill_empty_cells(&mut done, shape, &filled);
            let real = done.times.len() * shape.nbl;
            for (w, (_, chans)) in done.windows.iter_mut().zip(shape.windows) {
                let n = real * chans.len();
                w.flagged = w.flag[..n].iter().filter(|&&f| f).count() as u64;
            }
            if !sink(done) {
                return;
            }
        }
    }
}

/// Reads time chunks `chunks` (ascending, of `time_chunk` integrations each) of windows
/// `group` of `plan` (all of one spectral window), handing each to `sink` in order as
/// soon as its rows are decoded; stops early when `sink` returns false. The chunks'
/// buffers come from `pool` when it has some. Each block of rows is read under the
/// casacore lock (taken here, per block: the caller must not hold it), while a second
/// thread decodes the previous block and calls `sink`.
pub(crate) fn read_time_chunks(
    main: &mut Tab,
    plan: &Plan,
    group: &[usize],
    (time_chunk, chunks): (usize, &[usize]),
    (precision, pool): (Precision, &ChunkPool),
    sink: &mut (dyn FnMut(TimeChunk) -> bool + Send),
) -> Result<(), MsError> {
    read_time_chunks_in_blocks(
        main,
        plan,
        group,
        (time_chunk, chunks),
        (precision, pool),
        sink,
        BLOCK_BYTES,
    )
}

fn read_time_chunks_in_blocks(
    main: &mut Tab,
    plan: &Plan,
    group: &[usize],
    (time_chunk, chunks): (usize, &[usize]),
    (precision, pool): (Precision, &ChunkPool),
    sink: &mut (dyn FnMut(TimeChunk) -> bool + Send),
    block_bytes: usize,
) -> Result<(), MsError> {
    let Some(&first) = group.first() else {
        return Ok(());
    };
    if time_chunk == 0 {
        return Err(MsError::selection("time chunk", "must be at least 1"));
    }
    let s = check_group(plan, group, first)?;
    let l = &plan.layout;
    let nchunks = l.ntime().div_ceil(time_chunk);
    if let Some(&tc) = chunks.iter().find(|&&tc| tc >= nchunks) {
        return Err(MsError::selection(
            "time chunks",
            format!("chunk {tc} of {nchunks}"),
        ));
    }
    let column = plan.column.column();
    let (double, files) = {
        let _guard = crate::casacore_lock();
        let double = check_main_columns(main, column)? == T::TpDComplex;
        (double, read_ahead_files(main, column, plan.weight_source))
    };
    let spw = &plan.spws[s];
    let windows: Vec<(usize, Range<usize>)> = group
        .iter()
        .map(|&w| (w, plan.windows[w].chans.clone()))
        .collect();
    let chan0 = windows.iter().map(|c| c.1.start).min().unwrap_or(0);
    let chan1 = windows.iter().map(|c| c.1.end).max().unwrap_or(0);
    let lay = CellLayout {
        ncorr: spw.ncorr,
        nsel: chan1 - chan0,
        chan0,
        per_channel_weight: plan.weight_source == WeightSource::Spectrum,
        stokes_i: spw.stokes_i,
    };
    let row_bytes = lay.nsel * lay.ncorr * (if double { 16 } else { 8 } + 1 + 4);
    let block_rows = (block_bytes / row_bytes.max(1)).max(1);
    let shape = ChunkShape {
        windows: &windows,
        nbl: l.nbaseline(),
        ntime: l.ntime(),
        time_chunk,
        precision,
    };
    // The spectral window's rows of each wanted chunk, ascending by row.
    let cells_per_chunk = time_chunk * l.nbaseline();
    let mut slot = vec![usize::MAX; nchunks];
    for (i, &tc) in chunks.iter().enumerate() {
        slot[tc] = i;
    }
    let mut rows_of: Vec<Vec<(u64, usize)>> = vec![Vec::new(); chunks.len()];
    for &(row, cell) in &l.spw_rows[s] {
        let i = slot[cell / cells_per_chunk];
        if i != usize::MAX {
            rows_of[i].push((row, cell));
        }
    }

    let block_rows = block_rows.min(rows_of.iter().map(Vec::len).max().unwrap_or(1).max(1));
    // The row span of each block read, in order, for the read-ahead.
    let spans: Vec<Range<u64>> = rows_of
        .iter()
        .flat_map(|rows| rows.chunks(block_rows))
        .filter_map(|b| Some(b.first()?.0..b.last()?.0 + 1))
        .collect();
    let (full_tx, full_rx) = sync_channel::<ChunkRaw>(1);
    let (empty_tx, empty_rx) = sync_channel::<ChunkRaw>(BUFFERS);
    let (at_tx, at_rx) = channel::<usize>();
    std::thread::scope(|scope| {
        let shape = &shape;
        let spans = &spans;
        // Read-ahead is advice: without its thread the pass only loses the overlap.
        if !files.is_empty() && prefetch::enabled() {
            let _ = std::thread::Builder::new()
                .name("ms-prefetch".into())
                .spawn_scoped(scope, move || {
                    prefetch::run(&files, spans, prefetch::WINDOW_BYTES, &at_rx)
                });
        }
        let mut block_index = 0;
        let (mut read_s, mut read_cpu_s) = (0.0f64, 0.0f64);
        // Named for profiles; fails only as `scope.spawn` would (it panics).
        let decoder = std::thread::Builder::new()
            .name("ms-decode".into())
            .spawn_scoped(scope, move || {
                decode_chunks(lay, shape, pool, full_rx, empty_tx, sink)
            })
            .expect("cannot start the MeasurementSet decoding thread");
        let mut row_numbers = Vec::with_capacity(block_rows);
        let read = (|| {
            for (&tc, rows) in chunks.iter().zip(&rows_of) {
                let nblocks = rows.len().div_ceil(block_rows).max(1);
                for b in 0..nblocks {
                    let part = &rows
                        [(b * block_rows).min(rows.len())..((b + 1) * block_rows).min(rows.len())];
                    let mut block = empty_rx.try_recv().unwrap_or_default();
                    block.tc = tc;
                    block.last = b + 1 == nblocks;
                    row_numbers.clear();
                    row_numbers.extend(part.iter().map(|&(r, _)| r));
                    block.raw.cells.clear();
                    block.raw.cells.extend(part.iter().map(|&(_, c)| c));
                    if !part.is_empty() {
                        // The prefetch thread may have ended early; then this is ignored.
                        let _ = at_tx.send(block_index);
                        block_index += 1;
                        let t0 = (std::time::Instant::now(), thread_cpu_s());
                        let _guard = crate::casacore_lock();
                        read_block(
                            main,
                            plan,
                            spw,
                            &lay,
                            (column, double),
                            &row_numbers,
                            &mut block.raw,
                        )?;
                        read_s += t0.0.elapsed().as_secs_f64();
                        read_cpu_s += thread_cpu_s() - t0.1;
                    }
                    if full_tx.send(block).is_err() {
                        return Ok(());
                    }
                }
            }
            Ok(())
        })();
        drop(full_tx);
        // Ends the read-ahead.
        drop(at_tx);
        // Wall time beyond CPU time in casacore's reads: waiting for page-ins (or for a
        // core) (docs/performance.md).
        tracing::debug!(blocks = block_index, read_s, read_cpu_s, "data pass read");
        match decoder.join() {
            Ok(()) => read,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::Selection;

    /// The fixture's main table and its plan in windows of 2 channels (call with the
    /// casacore lock held).
    fn fixture_in_windows_of_2() -> (Tab, Plan) {
        let ms = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/data/ms/low-linear.ms");
        let mut main = Tab::open(&ms, "MAIN").unwrap();
        let meta = super::super::subtables::read_meta(&ms, &main).unwrap();
        let plan =
            super::super::rows::plan(&mut main, &meta, &Selection::default(), Some(2)).unwrap();
        (main, plan)
    }

    #[test]
    fn the_read_ahead_finds_the_columns_files_and_their_tiles() {
        // The fixture (python-casacore's getdminfo): 1930 rows; DATA, FLAG and
        // WEIGHT_SPECTRUM in TiledShapeStMan managers 0, 1, 2, one hypercube each of
        // tiles of 128 rows across the whole cell, buckets of 16384, 256 and 8192 bytes:
        // ⌈1930 / 128⌉ = 16 rows of tiles, files of 262144, 4096 and 131072 bytes; the
        // headers table.f0..f2 are mapped in proportion. WEIGHT is in StandardStMan 4.
        let _casacore = crate::casacore_lock();
        let (mut main, _) = fixture_in_windows_of_2();
        let got: Vec<(String, prefetch::RowMap)> =
            read_ahead_files(&mut main, "DATA", WeightSource::Spectrum)
                .iter()
                .map(summary)
                .collect();
        let tiled = |tile_bytes| prefetch::RowMap::Tiled {
            tile_rows: 128,
            tile_bytes,
        };
        let header = prefetch::RowMap::Proportional { nrows: 1930 };
        assert_eq!(
            got,
            vec![
                ("table.f0".into(), header),
                ("table.f0_TSM1".into(), tiled(16384)),
                ("table.f1".into(), header),
                ("table.f1_TSM1".into(), tiled(256)),
                ("table.f2".into(), header),
                ("table.f2_TSM1".into(), tiled(8192)),
            ]
        );
        let sizes: Vec<u64> = read_ahead_files(&mut main, "DATA", WeightSource::Spectrum)
            .iter()
            .filter(|f| f.path.to_string_lossy().contains("_TSM"))
            .map(|f| f.map.size)
            .collect();
        assert_eq!(sizes, [262_144, 4096, 131_072]);
        // WEIGHT instead: StandardStMan's file in proportion (its index, table.f4i, is
        // not a data file of the manager's and is left out).
        let got: Vec<String> = read_ahead_files(&mut main, "DATA", WeightSource::Weight)
            .iter()
            .map(|f| summary(f).0)
            .collect();
        assert_eq!(
            got,
            [
                "table.f0",
                "table.f0_TSM1",
                "table.f1",
                "table.f1_TSM1",
                "table.f4"
            ]
        );
        // A column the table lacks: no read-ahead, not an error.
        assert!(read_ahead_files(&mut main, "CORRECTED_DATA", WeightSource::Weight).is_empty());
    }

    fn summary(f: &PrefetchFile) -> (String, prefetch::RowMap) {
        let name = f.path.file_name().unwrap().to_string_lossy().into_owned();
        (name, f.map.map)
    }

    #[test]
    fn blocks_of_any_size_give_the_same_samples() {
        // The fixture's rows read one at a time, seven at a time and all at once, for
        // its two spectral windows split into windows of 2 channels read as one group.
        let _casacore = crate::casacore_lock();
        let (mut main, plan) = fixture_in_windows_of_2();
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

    #[test]
    fn time_chunks_are_the_blocks_cut_along_time() {
        // Oracle: the group read whole (read_group_in_blocks above), narrowed to f32 and
        // cut into chunks of 1, 2 and 3 integrations (padding flagged), read in blocks of
        // one row and of all rows; a subset of chunks gives just those chunks. The chunks
        // are read into reused buffers full of garbage (NaN, weight 5, unflagged): every
        // sample must be overwritten, empty cells and padding included.
        let guard = crate::casacore_lock();
        let (mut main, plan) = fixture_in_windows_of_2();
        let group: Vec<usize> = (0..plan.windows.len())
            .filter(|&w| plan.windows[w].spw == 1)
            .collect();
        let whole = read_group_in_blocks(&mut main, &plan, &group, usize::MAX).unwrap();
        drop(guard);
        let (nt, nbl) = (plan.layout.ntime(), plan.layout.nbaseline());
        for tchunk in [1, 2, 3] {
            for bytes in [1, usize::MAX] {
                let nchunks = nt.div_ceil(tchunk);
                let wanted: Vec<usize> = if tchunk == 1 {
                    vec![0, nchunks - 1]
                } else {
                    (0..nchunks).collect()
                };
                let mut got = Vec::new();
                let pool = ChunkPool::default();
                let len = tchunk * nbl * plan.windows[group[0]].chans.len();
                for _ in 0..2 * group.len() {
                    pool.give(vec![Complex32::new(f32::NAN, 1.0); len]);
                    pool.give(vec![5.0f32; len]);
                    pool.give(vec![false; len]);
                }
                read_time_chunks_in_blocks(
                    &mut main,
                    &plan,
                    &group,
                    (tchunk, &wanted),
                    (Precision::Single, &pool),
                    &mut |c| {
                        got.push(c);
                        true
                    },
                    bytes,
                )
                .unwrap();
                assert_eq!(
                    got.iter().map(|c| c.index).collect::<Vec<_>>(),
                    wanted,
                    "{tchunk}"
                );
                for c in &got {
                    for (k, wc) in c.windows.iter().enumerate() {
                        let b = &whole[k];
                        let nchan = b.n_chan();
                        let len = tchunk * nbl * nchan;
                        let ChunkValues::Single { vis, weight } = &wc.values else {
                            panic!("f32 asked for")
                        };
                        assert_eq!((vis.len(), weight.len(), wc.flag.len()), (len, len, len));
                        let mut flagged = 0;
                        for i in 0..len {
                            let (row, ch) = (c.index * tchunk * nbl + i / nchan, i % nchan);
                            if row < nt * nbl {
                                let v = b.vis_rc[[row, ch]];
                                assert_eq!(vis[i], Complex32::new(v.re as f32, v.im as f32));
                                assert_eq!(weight[i], b.weight_rc[[row, ch]] as f32);
                                assert_eq!(wc.flag[i], b.flag_rc[[row, ch]]);
                                flagged += u64::from(wc.flag[i]);
                            } else {
                                assert!(wc.flag[i] && weight[i] == 0.0, "padding");
                                assert_eq!(vis[i], Complex32::new(0.0, 0.0), "padding");
                            }
                        }
                        assert_eq!(wc.flagged, flagged);
                    }
                }
            }
        }
        // A sink that declines stops the read after one chunk.
        let mut n = 0;
        read_time_chunks(
            &mut main,
            &plan,
            &group,
            (1, &[0, 1, 2]),
            (Precision::Double, &ChunkPool::default()),
            &mut |c| {
                assert!(matches!(c.windows[0].values, ChunkValues::Double { .. }));
                n += 1;
                false
            },
        )
        .unwrap();
        assert_eq!(n, 1);
        let _guard = crate::casacore_lock();
        drop(main);
    }
}
