//! The map tasks over a shard's windows:
//! - invert (cycle 0): dirty and PSF Taylor moments;
//! - residual (cycle c): apply the global T gains, predict the model, solve and apply
//!   per-window G/B gains, accumulate T normal equations when T is active, subtract and
//!   invert the residual — the fused pass of DESIGN.md.
//!
//! Windows that share their rows (the same uvw, as every window of an MSv4-like dataset
//! does) are imaged in batches: one gridder call over the channels of several windows
//! shares its w-plane FFTs among them, where one call per window pays them per window.
//! For one Taylor term the sum over windows of their adjoints is exactly the adjoint of
//! the batch (the gridder's accuracy ε holds for the batch as for each window). A batch
//! holds at most [`batch_budget`] bytes of visibilities (at least one window), so a
//! task's memory is bounded by the grid and that budget, not by its shard's size. With
//! more than one Taylor term every window is its own batch (its model and moment weight
//! differ). Where the memory bound is reachable, shards of several windows and residual
//! passes are imaged one moment at a time instead (`moment_pass.rs`).

use std::collections::BTreeMap;
use std::time::Instant;

use aperture_imaging::calib::{
    ApplyMode, GainTable, NormalEquations, SolutionType, SolveSpec, WeightUpdate, apply_gains,
    solve,
};
use aperture_imaging::coords::UvwMetres;
use aperture_imaging::gridder::{GridderOptions, invert, predict, predict_owned};
use aperture_imaging::image::ImageGeometry;
use aperture_imaging::vis::VisBlock;
use aperture_imaging::weighting::{
    UvDensity, WeightingSpec, imaging_weights, imaging_weights_with_density,
};
use ndarray::{Array2, s};
use num_complex::Complex64;

use super::common::{
    PartialUpload, kernel, large_blocks_mapped, mem_mark, read_window, release_free_memory,
};
use super::moments::MomentSum;
use super::partial::PartImage;
use super::weights::global_density;
use super::{Moments, StoredGains, TaskEnv, TaskError, TaskManifest};
use crate::plan::{Plan, Stage, TaskKind};
use crate::spec::{PrecisionSpec, SolutionTerm, TermSpec};

/// The solve spec of a calibration term of the job.
pub fn solve_spec(env: &TaskEnv, term: SolutionTerm, n_ant: usize) -> SolveSpec {
    let c = &env.plan.spec.calibration;
    let t: &TermSpec = c.term(term);
    let mut s = SolveSpec::new(match term {
        SolutionTerm::T => SolutionType::T,
        SolutionTerm::G => SolutionType::G,
        SolutionTerm::B => SolutionType::B,
    });
    s.interval_s = t.interval_seconds;
    s.refant = c.reference_antenna as usize;
    s.tol = t.tolerance;
    s.max_iter = t.max_iterations as usize;
    s.phase_only = t.phase_only || term == SolutionTerm::T;
    s.n_ant = Some(n_ant);
    s
}

/// Terms solved in the residual pass of `cycle` (ical only).
pub fn active_terms(env: &TaskEnv, cycle: u32) -> Vec<SolutionTerm> {
    if env.plan.spec.pipeline != crate::spec::PipelineKind::Ical || cycle == 0 {
        return Vec::new();
    }
    env.plan.spec.calibration.active_in(cycle)
}

/// The latest global T table solved at or before `cycle`, if any.
pub async fn latest_global_gains(
    env: &TaskEnv,
    cycle: u32,
    m: &mut TaskManifest,
) -> Result<Option<(u32, GainTable)>, TaskError> {
    for c in (1..=cycle).rev() {
        let key = Plan::global_gains_key(c);
        if env.out.exists(&key).await? {
            let t = Instant::now();
            let g: StoredGains = env.out.get_json(&key).await?;
            m.read_seconds += t.elapsed().as_secs_f64();
            return Ok(Some((c, g.to_table(&env.out.key_url(&key))?)));
        }
    }
    Ok(None)
}

/// Model Taylor terms of `cycle` (the output of its deconvolve stage).
pub async fn read_model(
    env: &TaskEnv,
    cycle: u32,
    m: &mut TaskManifest,
) -> Result<Vec<Array2<f64>>, TaskError> {
    let key = Plan::model_key(cycle);
    let mut p = env.read_partial(&key, m).await?;
    // Taken, not copied: a copy doubled the model while it was read.
    (0..env.nmoment())
        .map(|t| {
            let name = Moments::model_name(t);
            p.arrays.remove(&name).ok_or_else(|| {
                TaskError::corrupt(&env.out.key_url(&key), format!("has no image {name:?}"))
            })
        })
        .collect()
}

fn model_at(model: &[Array2<f64>], x: f64) -> Array2<f64> {
    let mut img = model[0].clone();
    let mut xt = 1.0;
    for term in &model[1..] {
        xt *= x;
        img.scaled_add(xt, term);
    }
    img
}

/// Σ_t x^t · model_t, summed into the first term's array; each term is freed once added.
fn model_into(model: Vec<Array2<f64>>, x: f64) -> Option<Array2<f64>> {
    let mut terms = model.into_iter();
    let mut img = terms.next()?;
    let mut xt = 1.0;
    for term in terms {
        xt *= x;
        img.scaled_add(xt, &term);
    }
    Some(img)
}

fn no_terms(what: &str) -> TaskError {
    kernel(what, "the model has no Taylor terms")
}

pub(super) fn mean_freq(block: &VisBlock) -> f64 {
    block.freq_c.iter().sum::<f64>() / block.freq_c.len().max(1) as f64
}

/// A worker's fixed resident memory before any task data (binary, async runtime,
/// allocator, plan): measured 20 MB (`/usr/bin/time -f %M aperture worker` of a task
/// already done).
pub const PROCESS_BASELINE_BYTES: u64 = 20 << 20;

/// The memory bound of issue #4 for a map task: 1.5 × (padded grid + one window's
/// visibilities).
pub fn memory_bound(grid_bytes: u64, window_bytes: u64) -> u64 {
    (grid_bytes + window_bytes) * 3 / 2
}

/// Bytes a map task holds beside its batch's data while the gridder runs: the process
/// baseline, the padded grid, the gridder's output image (f64) and `held_images`
/// earlier f64 images (the dirty image while the PSF is gridded, the model). The
/// w-screens are made row by row with their n − 1 (`gridder/screen.rs`): one f64 per
/// quadrant column, negligible.
pub fn fixed_bytes(grid_bytes: u64, npix: u64, held_images: u64) -> u64 {
    let image = npix * npix * 8;
    PROCESS_BASELINE_BYTES + grid_bytes + image * (1 + held_images)
}

/// Bytes of visibilities ([`block_bytes`]) one batch may hold: what fits under
/// [`memory_bound`] beside [`fixed_bytes`], a batch holding about 7/4 of its blocks'
/// bytes while it is imaged (the blocks, and the joined data and weights). Where even
/// the process baseline exceeds the bound's headroom 0.5 × (grid + window) (images
/// below ~1000²), the bound cannot be met and batches may hold up to twice the grid's
/// bytes, for speed. At least one window is always imaged.
pub fn batch_budget_for(grid_bytes: u64, window_bytes: u64, npix: u64, held_images: u64) -> u64 {
    let bound = memory_bound(grid_bytes, window_bytes);
    if !bound_reachable(grid_bytes, window_bytes) {
        return 2 * grid_bytes;
    }
    bound.saturating_sub(fixed_bytes(grid_bytes, npix, held_images)) * 4 / 7
}

/// Whether [`memory_bound`] can be met at all: its headroom 0.5 × (grid + window) must
/// exceed the process baseline.
pub fn bound_reachable(grid_bytes: u64, window_bytes: u64) -> bool {
    memory_bound(grid_bytes, window_bytes) - grid_bytes - window_bytes > PROCESS_BASELINE_BYTES
}

/// The padded grid's bytes of the task's plan.
fn plan_grid_bytes(env: &TaskEnv) -> u64 {
    let nu = u64::from(env.plan.image.grid_nu);
    let per = match env.plan.spec.image.precision {
        PrecisionSpec::Double => 16,
        PrecisionSpec::Single => 8,
    };
    nu * nu * per
}

/// [`batch_budget_for`] of the task's plan: the invert holds its dirty image while the
/// PSF is gridded, the residual its model's Taylor terms.
pub fn batch_budget(env: &TaskEnv, residual: bool) -> u64 {
    let held = if residual { env.nmoment() as u64 } else { 1 };
    batch_budget_for(
        plan_grid_bytes(env),
        env.plan.facts.window_bytes(),
        u64::from(env.plan.image.npix),
        held,
    )
}

/// Bytes of a block in memory: complex f64 visibility, f64 weight, flag and f64
/// imaging weight per sample; uvw, antennas and time per row.
fn block_bytes(b: &VisBlock) -> u64 {
    block_bytes_for(b.n_vis() as u64, b.n_rows() as u64)
}

/// [`block_bytes`] of a block of `nvis` samples in `nrows` rows (the planner's view).
pub fn block_bytes_for(nvis: u64, nrows: u64) -> u64 {
    nvis * (16 + 8 + 1 + 8) + nrows * (24 + 8 + 8)
}

/// One window read and weighted, waiting in a batch.
struct Window {
    w: u32,
    block: VisBlock,
    /// Imaging weights (density, taper), before the data flags of calibration.
    wgt_rc: Array2<f64>,
}

/// What the map task needs for every batch.
pub(super) struct MapCtx<'a> {
    pub(super) env: &'a TaskEnv,
    pub(super) geom: ImageGeometry,
    pub(super) opts: GridderOptions,
    pub(super) mom: Moments,
    /// Model Taylor terms (residual passes).
    model: Option<Vec<Array2<f64>>>,
    /// The latest global T table.
    global: Option<(u32, GainTable)>,
    terms: Vec<SolutionTerm>,
    n_ant: usize,
    pub(super) residual: bool,
    /// The memory bound is reachable: freed memory is handed back before each gridder
    /// call (where it is not, small grids skip the trims and the page faults they cost).
    tight: bool,
}

impl MapCtx<'_> {
    /// [`release_free_memory`] when the memory bound is in reach.
    pub(super) fn trim(&self) {
        if self.tight {
            release_free_memory();
        }
    }
}

/// What the map task sums over its batches.
#[derive(Default)]
pub(super) struct MapAcc {
    /// Dirty (residual) and PSF Taylor moments.
    dirty: MomentSum,
    psf: MomentSum,
    pub(super) sumwt: f64,
    pub(super) chi2_before: f64,
    pub(super) chi2_after: f64,
    pub(super) neq_t: Option<NormalEquations>,
    pub(super) shard_tables: Vec<serde_json::Value>,
}

pub(super) fn weigh(
    block: &VisBlock,
    density: Option<&UvDensity>,
    geom: &ImageGeometry,
    wspec: &WeightingSpec,
    w: u32,
) -> Result<Array2<f64>, TaskError> {
    let _s = tracing::info_span!("weights", window = i64::from(w)).entered();
    match density {
        Some(d) => imaging_weights_with_density(block, d, wspec),
        None => imaging_weights(block, geom, wspec),
    }
    .map(|(w, _)| w)
    .map_err(|e| kernel(&format!("window {w}"), e))
}

/// Copies `part` into the columns `c0..` of `all`.
fn put_columns<T: Copy>(all: &mut Array2<T>, c0: usize, part: &Array2<T>) {
    all.slice_mut(s![.., c0..c0 + part.ncols()]).assign(part);
}

/// Images one batch of windows with identical rows (one window when the moments
/// differ per window): one predict and one invert (plus one PSF invert in cycle 0) over
/// all its channels; calibration per window on its columns.
fn image_batch(
    ctx: &MapCtx<'_>,
    acc: &mut MapAcc,
    batch: Vec<Window>,
    last_model: Option<Vec<Array2<f64>>>,
    m: &mut TaskManifest,
) -> Result<BatchOut, TaskError> {
    let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
        return Err(kernel("map task", "an empty batch"));
    };
    let what = if batch.len() == 1 {
        format!("window {}", first.w)
    } else {
        format!("windows {}–{}", first.w, last.w)
    };
    let x = ctx.mom.x(mean_freq(&first.block));
    let nrow = first.block.n_rows();
    let freq_c: Vec<f64> = batch
        .iter()
        .flat_map(|w| w.block.freq_c.iter().copied())
        .collect();
    let nchan = freq_c.len();
    let single = batch.len() == 1;
    // Model visibilities of the whole batch (one Taylor term, or one window).
    let predict_model = |img_yx: ndarray::ArrayView2<'_, f64>| {
        ctx.trim();
        predict(&first.block.uvw_r, &freq_c, img_yx, &ctx.geom, &ctx.opts)
            .map(|(v, _)| v)
            .map_err(|e| kernel(&format!("{what}: predict"), e))
    };
    let mut mvis_rc = match (last_model, &ctx.model) {
        // The task's last batch: the model's terms are summed in place and dropped
        // before the invert.
        (Some(model), _) => {
            let img = model_into(model, x).ok_or_else(|| no_terms(&what))?;
            ctx.trim();
            mem_mark("before predict");
            let v = predict_owned(&first.block.uvw_r, &freq_c, img, &ctx.geom, &ctx.opts)
                .map_err(|e| kernel(&format!("{what}: predict"), e))?
                .0;
            mem_mark("predicted");
            Some(v)
        }
        (None, Some(model)) => {
            // One Taylor term is the model itself: no copy beside the gridder's.
            let img = (model.len() > 1).then(|| model_at(model, x));
            let img_yx = match (&img, model.first()) {
                (Some(i), _) => i.view(),
                (None, Some(m0)) => m0.view(),
                (None, None) => return Err(no_terms(&what)),
            };
            Some(predict_model(img_yx)?)
        }
        (None, None) => None,
    };
    // The imaged visibilities and weights of the batch: the residual overwrites the
    // model visibilities in place; the data of cycle 0 are copied into one array
    // (a single window is imaged from its own arrays).
    let mut data_rc: Option<Array2<Complex64>> = None;
    let mut wgt_all: Option<Array2<f64>> = None;
    let mut uvw_r: Vec<UvwMetres> = Vec::new();
    // A single window's data of cycle 0, imaged from its own array.
    let mut single_vis: Option<Array2<Complex64>> = None;
    let nb = batch.len();
    let mut c0 = 0;
    for (i, win) in batch.into_iter().enumerate() {
        let Window {
            w,
            mut block,
            wgt_rc,
        } = win;
        let nc = block.n_chan();
        if let Some(all) = &mut mvis_rc {
            calibrate_into_residual(ctx, acc, w, &mut block, all.slice_mut(s![.., c0..c0 + nc]))?;
        }
        let mut wgt_rc = wgt_rc;
        let resid = mvis_rc.as_ref().map(|a| a.slice(s![.., c0..c0 + nc]));
        flag_weights(acc, &block, &mut wgt_rc, resid);
        m.windows += 1;
        m.visibilities += block.n_vis() as u64;
        if single {
            wgt_all = Some(wgt_rc);
            // Only what the invert reads is kept (the rows' uvw, and the data in cycle
            // 0): the block's weights, flags, antennas and times are freed before the
            // grid is made.
            uvw_r = std::mem::take(&mut block.uvw_r);
            if mvis_rc.is_none() {
                single_vis = Some(std::mem::take(&mut block.vis_rc));
            }
            drop(block);
        } else {
            let wa = wgt_all.get_or_insert_with(|| Array2::zeros((nrow, nchan)));
            put_columns(wa, c0, &wgt_rc);
            if mvis_rc.is_none() {
                let da = data_rc
                    .get_or_insert_with(|| Array2::from_elem((nrow, nchan), Complex64::default()));
                put_columns(da, c0, &block.vis_rc);
            }
            if i + 1 == nb {
                uvw_r = std::mem::take(&mut block.uvw_r);
            }
        }
        c0 += nc;
    }
    let uvw = uvw_r;
    let wgt_rc = wgt_all.unwrap_or_else(|| Array2::zeros((nrow, nchan)));
    let vis_rc = match (&mvis_rc, &data_rc, &single_vis) {
        (Some(r), _, _) => r.view(),
        (None, Some(d), _) => d.view(),
        (None, None, Some(v)) => v.view(),
        (None, None, None) => return Err(kernel(&what, "no visibilities")),
    };
    ctx.trim();
    mem_mark("before invert");
    let (dirty_yx, _) = invert(&uvw, &freq_c, vis_rc, wgt_rc.view(), &ctx.geom, &ctx.opts)
        .map_err(|e| kernel(&format!("{what}: invert"), e))?;
    mem_mark("inverted");
    // The visibilities are done with: only the rows and weights stay for the PSF.
    drop(mvis_rc);
    drop(data_rc);
    drop(single_vis);
    acc.sumwt += wgt_rc.sum();
    let psf = (!ctx.residual).then_some(PsfJob {
        uvw,
        freq_c,
        wgt_rc,
        what,
    });
    Ok(BatchOut { dirty_yx, x, psf })
}

/// Calibrates window `w` against its model visibilities `mvis_rc` and overwrites them
/// with the residual r = v − m: its T normal equations are summed into `acc`, the
/// global T gains applied, and G/B solved and applied on this window alone.
pub(super) fn calibrate_into_residual(
    ctx: &MapCtx<'_>,
    acc: &mut MapAcc,
    w: u32,
    block: &mut VisBlock,
    mut mvis_rc: ndarray::ArrayViewMut2<'_, Complex64>,
) -> Result<(), TaskError> {
    let wwhat = format!("window {w}");
    let mvis = mvis_rc.view();
    let _solve = tracing::info_span!("solve", window = i64::from(w), terms = ?ctx.terms).entered();
    if ctx.terms.contains(&SolutionTerm::T) {
        let spec = solve_spec(ctx.env, SolutionTerm::T, ctx.n_ant);
        let data_w = block.effective_weight_rc();
        let ne = NormalEquations::accumulate(block, mvis, data_w.view(), &spec)
            .map_err(|e| kernel(&format!("{wwhat}: T normal equations"), e))?;
        match &mut acc.neq_t {
            Some(a) => a.add(&ne).map_err(|e| kernel(&wwhat, e))?,
            None => acc.neq_t = Some(ne),
        }
    }
    if let Some((_, table)) = &ctx.global {
        apply_gains(block, table, ApplyMode::Correct, WeightUpdate::Keep)
            .map_err(|e| kernel(&format!("{wwhat}: apply T gains"), e))?;
    }
    for term in ctx.terms.iter().filter(|t| **t != SolutionTerm::T) {
        let spec = solve_spec(ctx.env, *term, ctx.n_ant);
        let data_w = block.effective_weight_rc();
        let ne = NormalEquations::accumulate(block, mvis, data_w.view(), &spec)
            .map_err(|e| kernel(&format!("{wwhat}: {term:?} normal equations"), e))?;
        let table =
            solve(&ne, &spec).map_err(|e| kernel(&format!("{wwhat}: {term:?} solve"), e))?;
        apply_gains(block, &table, ApplyMode::Correct, WeightUpdate::Keep)
            .map_err(|e| kernel(&format!("{wwhat}: apply {term:?} gains"), e))?;
        acc.shard_tables.push(serde_json::json!({
            "window": w,
            "term": format!("{term:?}"),
            "flagged": table.n_flagged(),
            "gains": (0..table.n_ant).map(|a| {
                let g = table.gains[[0, a, 0]];
                [g.re, g.im]
            }).collect::<Vec<_>>(),
        }));
    }
    drop(_solve);
    // Residual in place: r = v − m, where the model visibilities were.
    mvis_rc.zip_mut_with(&block.vis_rc, |mv, v| *mv = *v - *mv);
    Ok(())
}

/// Zeroes the imaging weights `wgt_rc` where the block's data weights (after
/// calibration) flag a sample, and sums χ² of the data and of the residual `resid_rc`
/// (residual passes) into `acc`.
pub(super) fn flag_weights(
    acc: &mut MapAcc,
    block: &VisBlock,
    wgt_rc: &mut Array2<f64>,
    resid_rc: Option<ndarray::ArrayView2<'_, Complex64>>,
) {
    let eff = block.effective_weight_rc();
    wgt_rc.zip_mut_with(&eff, |g, e| {
        if *e <= 0.0 {
            *g = 0.0
        }
    });
    if let Some(r_rc) = resid_rc {
        for ((r, v), e) in r_rc.iter().zip(block.vis_rc.iter()).zip(&eff) {
            if *e > 0.0 {
                acc.chi2_after += e * r.norm_sqr();
                acc.chi2_before += e * v.norm_sqr();
            }
        }
    }
}

/// What one batch gives: its dirty image, its x, and what its PSF needs (cycle 0).
struct BatchOut {
    dirty_yx: Array2<f64>,
    x: f64,
    psf: Option<PsfJob>,
}

/// The rows, channels and weights of a batch whose PSF is still to be gridded.
struct PsfJob {
    uvw: Vec<UvwMetres>,
    freq_c: Vec<f64>,
    wgt_rc: Array2<f64>,
    what: String,
}

/// The unnormalised PSF of a batch: the adjoint of unit visibilities.
fn psf_of(ctx: &MapCtx<'_>, job: PsfJob) -> Result<Array2<f64>, TaskError> {
    let ones = Array2::from_elem(job.wgt_rc.dim(), Complex64::new(1.0, 0.0));
    ctx.trim();
    mem_mark("before PSF");
    invert(
        &job.uvw,
        &job.freq_c,
        ones.view(),
        job.wgt_rc.view(),
        &ctx.geom,
        &ctx.opts,
    )
    .map(|(p, _)| {
        mem_mark("PSF gridded");
        p
    })
    .map_err(|e| kernel(&format!("{}: PSF", job.what), e))
}

/// Images a batch into the task's moment sums.
fn image_into(
    ctx: &MapCtx<'_>,
    acc: &mut MapAcc,
    batch: Vec<Window>,
    last_model: Option<Vec<Array2<f64>>>,
    m: &mut TaskManifest,
) -> Result<(), TaskError> {
    let out = image_batch(ctx, acc, batch, last_model, m)?;
    acc.dirty.add(ctx.mom.nmoment, out.x, out.dirty_yx);
    if let Some(job) = out.psf {
        let psf_yx = psf_of(ctx, job)?;
        acc.psf.add(ctx.mom.n_psf(), out.x, psf_yx);
    }
    Ok(())
}

pub async fn run(
    env: &TaskEnv,
    st: &Stage,
    index: u32,
    m: &mut TaskManifest,
) -> Result<(), TaskError> {
    run_with(env, st, index, m, None).await
}

/// [`run`], one moment at a time (`Some(true)`, `moment_pass.rs`) or batched
/// (`Some(false)`), whatever [`super::moment_pass::wanted`] says.
pub(super) async fn run_with(
    env: &TaskEnv,
    st: &Stage,
    index: u32,
    m: &mut TaskManifest,
    moment_passes: Option<bool>,
) -> Result<(), TaskError> {
    let geom: ImageGeometry = env.geometry()?;
    let wspec = env.weighting();
    let mom = Moments {
        nmoment: env.nmoment(),
        ref_freq_hz: env.plan.image.ref_freq_hz,
    };
    let residual = st.kind == TaskKind::Residual;
    let tight = bound_reachable(plan_grid_bytes(env), env.plan.facts.window_bytes());
    if tight {
        large_blocks_mapped();
    }
    mem_mark("start");
    let mut density = global_density(env, m).await?;
    mem_mark("density read");
    // The model is read when the first batch is imaged: a one-window shard has
    // weighted its window and freed the global density by then.
    let model = None;
    let global = if residual {
        latest_global_gains(env, st.cycle, m).await?
    } else {
        None
    };
    let mut ctx = MapCtx {
        env,
        geom,
        opts: env.gridder(),
        mom,
        model,
        global,
        terms: active_terms(env, st.cycle),
        n_ant: env.plan.facts.nantennas as usize,
        residual,
        tight,
    };
    let windows = env.plan.shards[index as usize].window_range();
    let passes =
        moment_passes.unwrap_or_else(|| super::moment_pass::wanted(windows.len(), residual, tight));
    if passes {
        return super::moment_pass::run(&ctx, density, st, index, m).await;
    }
    let mut acc = MapAcc::default();
    let budget = batch_budget(env, residual);
    let ds = env.dataset().await?;
    let last_w = windows.clone().last();
    let mut batch: Vec<Window> = Vec::new();
    let mut batch_bytes = 0u64;
    let mut batches = 0u64;
    let mut reading = 0.0;
    for w in windows {
        let block = read_window(&ds, w, m).await?;
        mem_mark("window read");
        let t = Instant::now();
        let wgt_rc = weigh(&block, density.as_ref(), &geom, &wspec, w)?;
        if Some(w) == last_w {
            // Every window is weighted: the global density is no longer needed.
            density = None;
        }
        mem_mark("window weighted");
        let bytes = block_bytes(&block);
        let joins = batch.first().is_some_and(|f| {
            mom.nmoment == 1
                && batch_bytes + bytes <= budget
                && f.block.uvw_r == block.uvw_r
                && f.block.ant1_r == block.ant1_r
                && f.block.ant2_r == block.ant2_r
        });
        if !joins && !batch.is_empty() {
            let span = batch_span(&batch);
            if residual && batches == 0 {
                // Counted as read time, not compute.
                let tr = Instant::now();
                ctx.model = Some(read_model(env, st.cycle, m).await?);
                reading += tr.elapsed().as_secs_f64();
            }
            span.in_scope(|| image_into(&ctx, &mut acc, std::mem::take(&mut batch), None, m))?;
            batch_bytes = 0;
            batches += 1;
        }
        batch.push(Window { w, block, wgt_rc });
        batch_bytes += bytes;
        m.compute_seconds += t.elapsed().as_secs_f64() - std::mem::take(&mut reading);
    }
    let tree = st
        .tree
        .clone()
        .unwrap_or_else(|| Plan::cycle_tree(st.cycle));
    let key = Plan::partial_key(&tree, index);
    if !batch.is_empty() {
        let model = match ctx.model.take() {
            Some(model) => Some(model),
            None if residual => Some(read_model(env, st.cycle, m).await?),
            None => None,
        };
        mem_mark("model read");
        let t = Instant::now();
        let span = batch_span(&batch);
        if !residual && batches == 0 {
            // The shard's only batch of cycle 0: its dirty moments are written before
            // its PSF is gridded, so the two images are never held together.
            let out = span.in_scope(|| image_batch(&ctx, &mut acc, batch, model, m))?;
            m.compute_seconds += t.elapsed().as_secs_f64();
            m.set("gridder_batches", 1u64);
            let (ny, nx) = (geom.npix_y, geom.npix_x);
            let names: Vec<String> = (0..mom.nmoment)
                .map(Moments::dirty_name)
                .chain((0..mom.n_psf()).map(Moments::psf_name))
                .collect();
            let shapes: Vec<(String, [usize; 2])> =
                names.iter().map(|n| (n.clone(), [ny, nx])).collect();
            let mut scalars = BTreeMap::new();
            scalars.insert("sumwt".to_string(), acc.sumwt);
            let mut up = PartialUpload::begin(&env.out, &key, &shapes, &scalars, None, m).await?;
            let xt = |t: usize| out.x.powi(t as i32);
            for (t, name) in names[..mom.nmoment].iter().enumerate() {
                let img = PartImage {
                    name,
                    data: &out.dirty_yx,
                    scale: xt(t),
                };
                up.write(img, m).await?;
            }
            drop(out.dirty_yx);
            // Nothing of the dirty image stays buffered while the PSF is gridded.
            up.flush(m).await?;
            mem_mark("dirty written");
            let Some(job) = out.psf else {
                return Err(kernel("invert", "no PSF inputs"));
            };
            let t = Instant::now();
            let psf_yx = span.in_scope(|| psf_of(&ctx, job))?;
            m.compute_seconds += t.elapsed().as_secs_f64();
            for (k, name) in names[mom.nmoment..].iter().enumerate() {
                let img = PartImage {
                    name,
                    data: &psf_yx,
                    scale: xt(k),
                };
                up.write(img, m).await?;
            }
            up.finish(m).await?;
            mem_mark("written");
            return Ok(());
        }
        span.in_scope(|| image_into(&ctx, &mut acc, batch, model, m))?;
        m.compute_seconds += t.elapsed().as_secs_f64();
        batches += 1;
    }
    // Gridder calls per image made (fewer than windows when windows were batched).
    m.set("gridder_batches", batches);
    drop(density);
    // Moment t of one batch is written as x^t times its image; a shard without
    // windows gives zeros.
    let (ny, nx) = (geom.npix_y, geom.npix_x);
    let MapAcc {
        dirty,
        psf,
        sumwt,
        chi2_before,
        chi2_after,
        neq_t,
        shard_tables,
    } = acc;
    let zeros = if dirty.is_empty() {
        Array2::zeros((ny, nx))
    } else {
        Array2::zeros((0, 0))
    };
    let psf_names = if residual { 0 } else { mom.n_psf() };
    let mut named: Vec<(String, &Array2<f64>, f64)> = Vec::new();
    for t in 0..mom.nmoment {
        let (data, scale) = dirty.moment(t, &zeros);
        named.push((Moments::dirty_name(t), data, scale));
    }
    for k in 0..psf_names {
        let (data, scale) = psf.moment(k, &zeros);
        named.push((Moments::psf_name(k), data, scale));
    }
    let images: Vec<PartImage<'_>> = named
        .iter()
        .map(|(name, data, scale)| PartImage {
            name,
            data,
            scale: *scale,
        })
        .collect();
    let mut scalars = BTreeMap::new();
    scalars.insert("sumwt".to_string(), sumwt);
    if residual {
        scalars.insert("chi2_data".into(), chi2_before);
        scalars.insert("chi2_residual".into(), chi2_after);
    }
    if !shard_tables.is_empty() {
        let key = Plan::shard_gains_key(st.cycle, index);
        env.out.put_json(&key, &shard_tables).await?;
    }
    env.write_images(&key, &images, &scalars, neq_t.as_ref(), m)
        .await?;
    mem_mark("written");
    Ok(())
}

/// The span of one batch: `window` (the first) and `windows` (how many).
fn batch_span(batch: &[Window]) -> tracing::Span {
    let first = batch.first().map_or(0, |w| w.w);
    tracing::info_span!(
        "window",
        window = i64::from(first),
        windows = batch.len() as i64
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A LOW-like window: 7 times × 25651 baselines × 1 channel (the 600 m array).
    const ROWS: u64 = 7 * 25_651;

    fn window() -> u64 {
        ROWS * (25 + 40)
    }

    fn grid(nu: u64) -> u64 {
        nu * nu * 16
    }

    /// Where the bound can be met at all (2048² and larger), a batch never holds more
    /// than what fits under it beside the grid, images and baseline: with these sizes
    /// and the images a task holds (the dirty image or the model: at least one), that is
    /// less than one window, so every window is its own batch.
    #[test]
    fn large_images_batch_within_the_bound() {
        for (npix, nu) in [(2048u64, 2560u64), (4096, 5120), (8192, 10240)] {
            for held in [0, 1, 2] {
                let budget = batch_budget_for(grid(nu), window(), npix, held);
                let bound = memory_bound(grid(nu), window());
                let fixed = fixed_bytes(grid(nu), npix, held);
                assert!(
                    fixed >= bound || fixed + budget * 7 / 4 <= bound,
                    "{npix}²: budget {budget} over the bound {bound} beside {fixed}"
                );
                if held > 0 {
                    assert!(budget < window(), "{npix}²: {budget} lets windows batch");
                }
            }
        }
    }

    /// Small images, where the process baseline alone is over the headroom, keep
    /// batching (2 × the grid) for speed; a window whose rows outweigh the headroom
    /// makes the bound reachable and the budget the honest remainder (under one more
    /// window: the bound counts a single window).
    #[test]
    fn small_images_keep_batching() {
        let (npix, nu) = (512u64, 882u64);
        let small_window = 30_600 * (25 + 40);
        assert_eq!(
            batch_budget_for(grid(nu), small_window, npix, 1),
            2 * grid(nu)
        );
        let big_window = 200 * small_window;
        let b = batch_budget_for(grid(nu), big_window, npix, 1);
        let bound = memory_bound(grid(nu), big_window);
        assert!(fixed_bytes(grid(nu), npix, 1) + b * 7 / 4 <= bound);
        assert!(b > 0 && b < big_window, "{b}");
    }
}
