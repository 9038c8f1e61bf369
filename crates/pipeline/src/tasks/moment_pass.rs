//! Map tasks one moment image at a time (shards of several windows, and residual
//! passes, where the memory bound is reachable: [`wanted`]), so that a worker holds one
//! grid, one image and one window whatever its shard's size (issue #4: peak RSS ≤
//! 1.5 × (padded grid + one window's visibilities)).
//!
//! Moment t of a shard is D_t = Σ_w x_w^t A_w(g V) (Rau & Cornwell 2011, eqs. 13–15;
//! `moments.rs`): the adjoint of all its windows with the weights g scaled by x_w^t.
//! [`InvertSum`] grids the windows one at a time into one image with one layout (chosen
//! from the extent of every window), corrected once; the image is streamed into the
//! partial upload and freed before the next moment is made.
//!
//! The windows are prepared once and spilled to a local scratch directory
//! (`tempfile`, under `TMPDIR`: the worker pod's `/tmp` `emptyDir`), then read back once
//! per moment:
//! - invert (cycle 0): pass A reads and weights each window and spills its uvw, data
//!   and imaging weights;
//! - residual: pass A weights each window and spills its weights and uvw, and apart
//!   the rest calibration needs (data, data weights, flags, antennas, times), so the
//!   store is read once per window (the global density, as large as an image, is freed
//!   after pass A); pass B reads the model's Taylor terms once, as their non-zero
//!   pixels where they are few (`Partial::read_nonzero_ranged`; otherwise each
//!   window's model is summed from ranged reads), makes the model at each window's x,
//!   Σ_t x^t m_t, in a zeroed image (only its rows with pixels become resident; the
//!   predict corrects only those), predicts from the spilled uvw alone, then reads the
//!   rest of the window back (the grid is freed by then), calibrates and spills the
//!   residual with its flagged weights.
//!
//! A one-window shard makes one image per gridder product and writes moment t as x^t
//! times it. Costs: 2n − 1 + n gridder calls per window in cycle 0 (n = Taylor terms;
//! the batched path makes 2), 1 predict and n inverts in a residual pass (batched: 1
//! and 1), and the spill (24 bytes a sample and a row; 57 a sample and 64 a row in
//! the residual).
//!
//! Σ over the windows of A_w with one layout is the adjoint of the batch with that
//! layout, within the gridder's ε of the per-window sums the batched path writes.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use aperture_imaging::coords::{RaDec, UvwMetres};
use aperture_imaging::gridder::{DataExtent, InvertSum, data_extent, merge_extents, predict_owned};
use aperture_imaging::vis::VisBlock;
use aperture_imaging::weighting::UvDensity;
use ndarray::Array2;
use num_complex::Complex64;
use tracing::Instrument;

use super::common::{PartialUpload, kernel, mem_mark, read_window};
use super::map::{MapAcc, MapCtx, calibrate_into_residual, flag_weights, mean_freq, weigh};
use super::partial::{NonZeroTerms, PartImage, Partial, READ_PIECE};
use super::{Moments, TaskEnv, TaskError, TaskManifest};
use crate::plan::{Plan, Stage};

/// The environment variable that overrides when this path is taken: `always`, `never`,
/// or unset (see [`wanted`]).
pub const MOMENT_PASSES_ENV: &str = "APERTURE_MOMENT_PASSES";

/// Whether a map task images its shard this way: where the memory bound is reachable
/// at all (`map::bound_reachable`; small images keep the batched path, whose gridder
/// calls are shared among windows, and hold their windows whole), for every shard of
/// more than one window (the batched path holds a sum per moment beside the gridder's
/// image) and for the residual of a single window (whose batched predict holds the
/// whole window; here only its uvw). A single window's invert keeps the batched path,
/// which already holds one image.
pub fn wanted(nwindows: usize, residual: bool, tight: bool) -> bool {
    match std::env::var(MOMENT_PASSES_ENV).as_deref() {
        Ok("always") => true,
        Ok("never") => false,
        _ => tight && (nwindows > 1 || residual),
    }
}

/// A window prepared and spilled.
struct Spilled {
    w: u32,
    /// x = (ν − ν₀)/ν₀ of the window's mean frequency (as the batched path takes it).
    x: f64,
    freq_c: Vec<f64>,
    nrow: usize,
    path: PathBuf,
    phase_centre: RaDec,
}

impl Spilled {
    fn nvis(&self) -> usize {
        self.nrow * self.freq_c.len()
    }
}

fn spill_error(path: &Path, e: std::io::Error) -> TaskError {
    TaskError::Retryable(format!("scratch file {}: {e}", path.display()))
}

/// Writes the values of a spill record: the imaging weights, then (when given) the uvw,
/// then (when given) the visibilities, all f64 little-endian.
fn write_spill(
    path: &Path,
    wgt_rc: &Array2<f64>,
    rest: Option<(&[UvwMetres], Option<&Array2<Complex64>>)>,
) -> Result<(), TaskError> {
    let f = File::create(path).map_err(|e| spill_error(path, e))?;
    let mut out = BufWriter::with_capacity(1 << 20, f);
    let mut put = |v: f64| out.write_all(&v.to_le_bytes());
    let mut go = || -> std::io::Result<()> {
        for v in wgt_rc.iter() {
            put(*v)?;
        }
        if let Some((uvw_r, vis_rc)) = rest {
            for p in uvw_r {
                put(p.u)?;
                put(p.v)?;
                put(p.w)?;
            }
            for v in vis_rc.into_iter().flatten() {
                put(v.re)?;
                put(v.im)?;
            }
        }
        Ok(())
    };
    go().map_err(|e| spill_error(path, e))?;
    out.flush().map_err(|e| spill_error(path, e))
}

/// Reads `n` f64 values of a spill record, in pieces of 1 MiB.
fn read_f64s(src: &mut impl Read, n: usize, path: &Path) -> Result<Vec<f64>, TaskError> {
    read_values(src, n, path, f64::from_le_bytes)
}

/// Reads `n` values of `N` bytes each, decoded by `decode`, in pieces of about 1 MiB
/// (decoded straight into the returned vector).
fn read_values<const N: usize, T>(
    src: &mut impl Read,
    n: usize,
    path: &Path,
    decode: impl Fn([u8; N]) -> T,
) -> Result<Vec<T>, TaskError> {
    let mut vals = Vec::with_capacity(n);
    let mut buf = vec![0u8; (1 << 20) / N * N];
    while vals.len() < n {
        let take = ((n - vals.len()) * N).min(buf.len());
        src.read_exact(&mut buf[..take])
            .map_err(|e| spill_error(path, e))?;
        vals.extend(
            buf[..take]
                .chunks_exact(N)
                .map(|c| decode(c.try_into().unwrap_or([0; N]))),
        );
    }
    Ok(vals)
}

fn complex_from_le(b: [u8; 16]) -> Complex64 {
    let (re, im) = b.split_at(8);
    let f = |h: &[u8]| f64::from_le_bytes(h.try_into().unwrap_or([0; 8]));
    Complex64::new(f(re), f(im))
}

/// The path of the rest of a spilled window ([`write_block_spill`]).
fn block_path(s: &Spilled) -> PathBuf {
    s.path.with_extension("block")
}

/// Spills what a residual pass needs of the window beside its uvw (spilled with the
/// imaging weights) to calibrate after the predict: visibilities, data weights, flags,
/// antennas and times, little-endian. Read back by [`read_block_spill`], so the store is
/// read once per window.
fn write_block_spill(path: &Path, block: &VisBlock) -> Result<(), TaskError> {
    let f = File::create(path).map_err(|e| spill_error(path, e))?;
    let mut out = BufWriter::with_capacity(1 << 20, f);
    let mut go = || -> std::io::Result<()> {
        for v in block.vis_rc.iter() {
            out.write_all(&v.re.to_le_bytes())?;
            out.write_all(&v.im.to_le_bytes())?;
        }
        for v in block.weight_rc.iter() {
            out.write_all(&v.to_le_bytes())?;
        }
        for f in block.flag_rc.iter() {
            out.write_all(&[u8::from(*f)])?;
        }
        for a in block.ant1_r.iter().chain(&block.ant2_r) {
            out.write_all(&a.to_le_bytes())?;
        }
        for t in &block.time_r {
            out.write_all(&t.to_le_bytes())?;
        }
        out.flush()
    };
    go().map_err(|e| spill_error(path, e))
}

/// The window spilled by [`write_block_spill`], with its rows' `uvw_r`; the file is
/// removed once read.
fn read_block_spill(s: &Spilled, uvw_r: Vec<UvwMetres>) -> Result<VisBlock, TaskError> {
    let path = block_path(s);
    let f = File::open(&path).map_err(|e| spill_error(&path, e))?;
    let mut src = BufReader::with_capacity(1 << 16, f);
    let shape = (s.nrow, s.freq_c.len());
    let bad = |_| TaskError::Retryable(format!("scratch file {}: bad shape", path.display()));
    let n = s.nvis();
    let vis = read_values(&mut src, n, &path, complex_from_le)?;
    let vis_rc = Array2::from_shape_vec(shape, vis).map_err(bad)?;
    let weight_rc = Array2::from_shape_vec(shape, read_f64s(&mut src, n, &path)?).map_err(bad)?;
    let flags = read_values(&mut src, n, &path, |b: [u8; 1]| b[0] != 0)?;
    let flag_rc = Array2::from_shape_vec(shape, flags).map_err(bad)?;
    let ant1_r = read_values(&mut src, s.nrow, &path, u32::from_le_bytes)?;
    let ant2_r = read_values(&mut src, s.nrow, &path, u32::from_le_bytes)?;
    let time_r = read_f64s(&mut src, s.nrow, &path)?;
    drop(src);
    std::fs::remove_file(&path).map_err(|e| spill_error(&path, e))?;
    Ok(VisBlock {
        uvw_r,
        freq_c: s.freq_c.clone(),
        vis_rc,
        weight_rc,
        flag_rc,
        ant1_r,
        ant2_r,
        time_r,
        phase_centre: s.phase_centre,
    })
}

/// Model Taylor terms of the residual pass, held as their non-zero pixels when there
/// are at most one per 8 image pixels over all terms (12 bytes each: at most 1.5 bytes
/// a pixel, 6 MB at 2048², against 32 MiB an image per term); `None` otherwise (each
/// window's model is then summed from ranged reads, [`TaskEnv::read_partial_sum`]).
async fn read_model_nonzero(
    env: &TaskEnv,
    key: &str,
    names: &[String],
    m: &mut TaskManifest,
) -> Result<Option<NonZeroTerms>, TaskError> {
    let t = Instant::now();
    let url = env.out.key_url(key);
    let len = env
        .out
        .head(key)
        .await?
        .ok_or_else(|| TaskError::corrupt(&url, "is missing".to_string()))?;
    let npix = u64::from(env.plan.image.npix).pow(2) as usize;
    let read = |r: std::ops::Range<u64>| async move {
        Ok::<_, TaskError>(env.out.get_range(key, r).await?)
    };
    let terms = Partial::read_nonzero_ranged(len, &url, names, READ_PIECE, npix / 8, read)
        .instrument(tracing::info_span!("read", key))
        .await?;
    m.bytes_in += len;
    m.read_seconds += t.elapsed().as_secs_f64();
    Ok(terms)
}

/// A spilled window read back: weights, and uvw with visibilities unless only the
/// weights are asked for (`rows`) or the data are not (`vis`).
struct Record {
    wgt_rc: Array2<f64>,
    uvw_r: Vec<UvwMetres>,
    vis_rc: Option<Array2<Complex64>>,
}

fn read_spill(s: &Spilled, rows: bool, vis: bool) -> Result<Record, TaskError> {
    read_spill_in(s, true, rows, vis)
}

/// [`read_spill`], the weights skipped unless `weights` (an empty array then).
fn read_spill_in(s: &Spilled, weights: bool, rows: bool, vis: bool) -> Result<Record, TaskError> {
    let path = &s.path;
    let mut f = File::open(path).map_err(|e| spill_error(path, e))?;
    if !weights {
        f.seek(SeekFrom::Start(8 * s.nvis() as u64))
            .map_err(|e| spill_error(path, e))?;
    }
    let mut src = BufReader::with_capacity(1 << 16, f);
    let shape = (s.nrow, s.freq_c.len());
    let bad = |_| TaskError::Retryable(format!("scratch file {}: bad shape", path.display()));
    let wgt_rc = if weights {
        Array2::from_shape_vec(shape, read_f64s(&mut src, s.nvis(), path)?).map_err(bad)?
    } else {
        Array2::zeros((0, 0))
    };
    let mut uvw_r = Vec::new();
    let mut vis_rc = None;
    if rows {
        let flat = read_f64s(&mut src, 3 * s.nrow, path)?;
        uvw_r = flat
            .chunks_exact(3)
            .map(|c| UvwMetres::new(c[0], c[1], c[2]))
            .collect();
        drop(flat);
        if vis {
            let flat = read_f64s(&mut src, 2 * s.nvis(), path)?;
            let v: Vec<Complex64> = flat
                .chunks_exact(2)
                .map(|c| Complex64::new(c[0], c[1]))
                .collect();
            drop(flat);
            vis_rc = Some(Array2::from_shape_vec(shape, v).map_err(bad)?);
        }
    }
    Ok(Record {
        wgt_rc,
        uvw_r,
        vis_rc,
    })
}

/// The extent of the samples with non-zero weight.
fn extent_of(uvw_r: &[UvwMetres], freq_c: &[f64], wgt_rc: &Array2<f64>, cell: f64) -> DataExtent {
    data_extent(uvw_r, freq_c, cell, |r, c| wgt_rc[[r, c]] != 0.0)
}

/// The extent of the windows so far and one more, with the samples of the largest
/// window, not their sum: each [`InvertSum::add`] grids and transforms one window, so
/// the layout is weighed for one window's samples (with their sum, the cost model picks
/// a larger grid, over the memory bound, for fewer planes).
fn merge_window(all: DataExtent, one: DataExtent) -> DataExtent {
    let nvis = all.nvis.max(one.nvis);
    DataExtent {
        nvis,
        ..merge_extents(all, one)
    }
}

const EMPTY: DataExtent = DataExtent {
    nvis: 0,
    w_min: 0.0,
    w_max: 0.0,
    uv_extent: 0.0,
};

/// Moment `t` of the spilled windows: Σ_w x_w^t A_w(g V), or of unit visibilities
/// (`psf`), summed window by window into one image.
fn moment_image(
    ctx: &MapCtx<'_>,
    spilled: &[Spilled],
    extent: DataExtent,
    t: usize,
    psf: bool,
    m: &mut TaskManifest,
) -> Result<Array2<f64>, TaskError> {
    let what = if psf {
        Moments::psf_name(t)
    } else {
        Moments::dirty_name(t)
    };
    let mut sum = InvertSum::new(&ctx.geom, extent, &ctx.opts)
        .map_err(|e| kernel(&format!("moment {what}"), e))?;
    for s in spilled {
        let ts = Instant::now();
        let rec = read_spill(s, true, !psf)?;
        let spill_s = ts.elapsed().as_secs_f64();
        m.read_seconds += spill_s;
        let tc = Instant::now();
        let Record {
            mut wgt_rc,
            uvw_r,
            vis_rc,
        } = rec;
        let xt = s.x.powi(t as i32);
        if t > 0 {
            wgt_rc.mapv_inplace(|g| g * xt);
        }
        let vis_rc = match vis_rc {
            Some(v) => v,
            None => Array2::from_elem(wgt_rc.dim(), Complex64::new(1.0, 0.0)),
        };
        ctx.trim();
        mem_mark(&format!("before {what} window {}", s.w));
        let _span = tracing::info_span!("window", window = i64::from(s.w), moment = what.as_str())
            .entered();
        sum.add(&uvw_r, &s.freq_c, vis_rc.view(), wgt_rc.view())
            .map_err(|e| kernel(&format!("window {}: {what}", s.w), e))?;
        mem_mark(&format!("{what} window {} gridded", s.w));
        m.compute_seconds += tc.elapsed().as_secs_f64();
    }
    let tc = Instant::now();
    let img = sum.finish();
    m.compute_seconds += tc.elapsed().as_secs_f64();
    Ok(img)
}

/// The map task of a shard, one moment at a time (module docs).
pub(super) async fn run(
    ctx: &MapCtx<'_>,
    mut density: Option<UvDensity>,
    st: &Stage,
    index: u32,
    m: &mut TaskManifest,
) -> Result<(), TaskError> {
    let env = ctx.env;
    let wspec = env.weighting();
    let cell = ctx.geom.cell;
    let ds = env.dataset().await?;
    let windows = env.plan.shards[index as usize].window_range();
    let scratch = tempfile::Builder::new()
        .prefix("aperture-moments-")
        .tempdir()
        .map_err(|e| TaskError::Retryable(format!("scratch directory: {e}")))?;
    let mut acc = MapAcc::default();
    let mut extent = EMPTY;
    let mut spilled: Vec<Spilled> = Vec::new();
    let mut spill_bytes = 0u64;
    // Pass A: weights (and, in cycle 0, everything the moments read).
    for w in windows {
        let block = read_window(&ds, w, m).await?;
        let t = Instant::now();
        let mut wgt_rc = weigh(&block, density.as_ref(), &ctx.geom, &wspec, w)?;
        m.windows += 1;
        m.visibilities += block.n_vis() as u64;
        let s = Spilled {
            w,
            x: ctx.mom.x(mean_freq(&block)),
            freq_c: block.freq_c.clone(),
            nrow: block.n_rows(),
            path: scratch.path().join(format!("{w}.bin")),
            phase_centre: block.phase_centre,
        };
        if ctx.residual {
            write_spill(&s.path, &wgt_rc, Some((&block.uvw_r, None)))?;
            write_block_spill(&block_path(&s), &block)?;
            spill_bytes += (8 * s.nvis() + 24 * s.nrow) as u64;
            spill_bytes += (25 * s.nvis() + 16 * s.nrow) as u64;
        } else {
            flag_weights(&mut acc, &block, &mut wgt_rc, None);
            acc.sumwt += wgt_rc.sum();
            extent = merge_window(extent, extent_of(&block.uvw_r, &s.freq_c, &wgt_rc, cell));
            write_spill(&s.path, &wgt_rc, Some((&block.uvw_r, Some(&block.vis_rc))))?;
            spill_bytes += (8 * 3 * s.nvis() + 24 * s.nrow) as u64;
        }
        spilled.push(s);
        mem_mark("window spilled");
        m.compute_seconds += t.elapsed().as_secs_f64();
    }
    // Every window is weighted: the global density is no longer needed.
    density.take();
    // Pass B (residual): predict, calibrate, subtract; the residual is spilled.
    if ctx.residual {
        let model_key = Plan::model_key(st.cycle);
        // The model's terms are read once, as their non-zero pixels where they are few.
        let names: Vec<String> = (0..ctx.mom.nmoment).map(Moments::model_name).collect();
        let nonzero = read_model_nonzero(env, &model_key, &names, m).await?;
        m.set(
            "model_nonzero_bytes",
            nonzero.as_ref().map_or(0, NonZeroTerms::bytes) as u64,
        );
        for s in &spilled {
            // The predict needs only the rows' uvw: the window and its weights are read
            // after it, once the grid is freed.
            let ts = Instant::now();
            let uvw_r = read_spill_in(s, false, true, false)?.uvw_r;
            m.read_seconds += ts.elapsed().as_secs_f64();
            let scales: Vec<f64> = (0..ctx.mom.nmoment).map(|t| s.x.powi(t as i32)).collect();
            let img = match &nonzero {
                None => {
                    let terms: Vec<(String, f64)> =
                        names.iter().cloned().zip(scales.iter().copied()).collect();
                    env.read_partial_sum(&model_key, &terms, m).await?
                }
                Some(_) => Array2::zeros((0, 0)),
            };
            let t = Instant::now();
            let img = match &nonzero {
                Some(nz) => nz.sum(&scales),
                None => img,
            };
            let what = format!("window {}", s.w);
            ctx.trim();
            mem_mark("before predict");
            let mut mvis_rc = {
                let _span = tracing::info_span!("window", window = i64::from(s.w)).entered();
                predict_owned(&uvw_r, &s.freq_c, img, &ctx.geom, &ctx.opts)
                    .map_err(|e| kernel(&format!("{what}: predict"), e))?
                    .0
            };
            mem_mark("predicted");
            m.compute_seconds += t.elapsed().as_secs_f64();
            // The rest of the window comes from the scratch file (the store is read
            // once per window), once the grid is freed.
            let ts = Instant::now();
            let mut block = read_block_spill(s, uvw_r)?;
            let mut wgt_rc = read_spill(s, false, false)?.wgt_rc;
            m.read_seconds += ts.elapsed().as_secs_f64();
            let t = Instant::now();
            calibrate_into_residual(ctx, &mut acc, s.w, &mut block, mvis_rc.view_mut())?;
            flag_weights(&mut acc, &block, &mut wgt_rc, Some(mvis_rc.view()));
            acc.sumwt += wgt_rc.sum();
            extent = merge_window(extent, extent_of(&block.uvw_r, &s.freq_c, &wgt_rc, cell));
            let uvw_r = std::mem::take(&mut block.uvw_r);
            drop(block);
            write_spill(&s.path, &wgt_rc, Some((&uvw_r, Some(&mvis_rc))))?;
            spill_bytes += (8 * 3 * s.nvis() + 24 * s.nrow) as u64;
            m.compute_seconds += t.elapsed().as_secs_f64();
        }
    }
    // The partial: its header (scalars and normal equations are known now), then each
    // moment image as soon as it is made.
    let tree = st
        .tree
        .clone()
        .unwrap_or_else(|| Plan::cycle_tree(st.cycle));
    let key = Plan::partial_key(&tree, index);
    let nmom = ctx.mom.nmoment;
    let npsf = if ctx.residual { 0 } else { ctx.mom.n_psf() };
    let images: Vec<(String, usize, bool)> = (0..nmom)
        .map(|t| (Moments::dirty_name(t), t, false))
        .chain((0..npsf).map(|k| (Moments::psf_name(k), k, true)))
        .collect();
    let (ny, nx) = (ctx.geom.npix_y, ctx.geom.npix_x);
    let shapes: Vec<(String, [usize; 2])> = images
        .iter()
        .map(|(n, _, _)| (n.clone(), [ny, nx]))
        .collect();
    let mut scalars = std::collections::BTreeMap::new();
    scalars.insert("sumwt".to_string(), acc.sumwt);
    if ctx.residual {
        scalars.insert("chi2_data".into(), acc.chi2_before);
        scalars.insert("chi2_residual".into(), acc.chi2_after);
    }
    if !acc.shard_tables.is_empty() {
        let gkey = Plan::shard_gains_key(st.cycle, index);
        env.out.put_json(&gkey, &acc.shard_tables).await?;
    }
    // The upload (its header holds the normal equations) begins once the first image
    // is made, so the header is not held beside the first gridder call.
    let neq = acc.neq_t.take();
    drop(acc);
    let mut up: Option<PartialUpload> = None;
    // One window: moment t is x^t times its image (written scaled, made once).
    let single_x = match spilled.as_slice() {
        [one] => Some(one.x),
        _ => None,
    };
    let mut held: Option<(bool, Array2<f64>)> = None;
    for (name, t, psf) in &images {
        let reuse = single_x.is_some() && held.as_ref().is_some_and(|(p, _)| p == psf);
        if !reuse {
            // The previous image is freed before the next is made.
            drop(held.take());
            let made = if single_x.is_some() { 0 } else { *t };
            held = Some((*psf, moment_image(ctx, &spilled, extent, made, *psf, m)?));
        }
        let scale = single_x.map_or(1.0, |x| x.powi(*t as i32));
        let Some((_, img)) = &held else {
            return Err(kernel("map task", "no moment image"));
        };
        let up = match &mut up {
            Some(u) => u,
            None => up.insert(
                PartialUpload::begin(&env.out, &key, &shapes, &scalars, neq.as_ref(), m).await?,
            ),
        };
        up.write(
            PartImage {
                name,
                data: img,
                scale,
            },
            m,
        )
        .await?;
        up.flush(m).await?;
        mem_mark("moment written");
    }
    drop(held);
    drop(neq);
    match up {
        Some(up) => {
            up.finish(m).await?;
        }
        None => return Err(kernel("map task", "no moment images")),
    }
    // Gridder calls per image (one per window), images made, and the scratch bytes.
    m.set("gridder_batches", spilled.len() as u64);
    let made = if single_x.is_some() {
        1 + usize::from(npsf > 0)
    } else {
        images.len()
    };
    m.set("moment_passes", made as u64);
    m.set("spill_bytes", spill_bytes);
    mem_mark("written");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::map::run_with;
    use super::super::{Partial, TaskEnv};
    use super::*;
    use crate::executor::{prepare, run_inline};
    use crate::plan::TaskKind;
    use crate::spec::parse_job;
    use crate::storage::Store;

    const EPSILON: f64 = 1e-6;

    /// An ICAL of 4 windows in shards of `WPS`, 2 Taylor terms, T and G from cycle 1.
    const JOB: &str = "apiVersion: aperture.dev/v1alpha1
kind: ImagingJob
metadata: {name: moments}
spec:
  pipeline: ical
  input:
    simulate:
      telescope: LOW
      rmax: 200
      frequencyWindows: 4
      ntimes: 2
      sky: {sources: 2, fluxMinJy: 2, fluxMaxJy: 4, extent: 0.3}
      gainPhaseRmsDeg: 20
      gainAmplitudeRms: 0.05
  image: {npixel: 64, epsilon: 1.0e-6, weighting: {type: robust, robust: 0}}
  deconvolution: {algorithm: msmfs, nmoment: 2, scales: [0], niter: 50, gain: 0.2}
  calibration: {context: TG, T: {firstCycle: 1}, G: {firstCycle: 1}}
  majorCycles: 2
  parallelism: {windowsPerShard: WPS}
";

    fn rel_l2(a: &ndarray::Array2<f64>, b: &ndarray::Array2<f64>) -> f64 {
        let d: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
        let n: f64 = b.iter().map(|y| y * y).sum();
        (d / n.max(f64::MIN_POSITIVE)).sqrt()
    }

    /// The partial of a map task made batched (per-window images summed as x^t · I_w:
    /// the per-window oracle) and one moment at a time.
    async fn both(env: &TaskEnv, kind: TaskKind) -> (Partial, Partial, serde_json::Value) {
        let st = env
            .plan
            .stages
            .iter()
            .find(|s| s.kind == kind && (kind == TaskKind::Invert || s.cycle == 1))
            .expect("stage")
            .clone();
        let tree = st
            .tree
            .clone()
            .unwrap_or_else(|| Plan::cycle_tree(st.cycle));
        let key = Plan::partial_key(&tree, 0);
        let mut out = Vec::new();
        let mut passes = serde_json::Value::Null;
        for forced in [false, true] {
            let mut m = TaskManifest::start(&st, 0);
            run_with(env, &st, 0, &mut m, Some(forced))
                .await
                .expect("map task");
            if forced {
                passes = m.result.get("moment_passes").cloned().unwrap_or_default();
            }
            let bytes = env.out.get(&key).await.expect("partial");
            out.push(Partial::from_bytes(&bytes, &key).expect("parses"));
        }
        let new = out.pop().expect("new");
        let old = out.pop().expect("old");
        (old, new, passes)
    }

    fn compare(old: &Partial, new: &Partial, what: &str) {
        assert_eq!(
            old.arrays.keys().collect::<Vec<_>>(),
            new.arrays.keys().collect::<Vec<_>>(),
            "{what}"
        );
        for (name, a) in &old.arrays {
            let err = rel_l2(&new.arrays[name], a);
            // Both are within ε of the exact sums (different layouts): 3ε apart at most.
            assert!(err < 3.0 * EPSILON, "{what} {name}: relative L2 {err}");
        }
        assert_eq!(old.scalars.len(), new.scalars.len(), "{what}");
        for (k, v) in &old.scalars {
            let w = new.scalars[k];
            assert!(
                (v - w).abs() <= 1e-9 * v.abs().max(1e-30),
                "{what} {k}: {v} vs {w}"
            );
        }
        match (&old.neq, &new.neq) {
            (Some(a), Some(b)) => assert_eq!(
                serde_json::to_value(a).expect("neq"),
                serde_json::to_value(b).expect("neq"),
                "{what}: normal equations"
            ),
            (None, None) => {}
            _ => panic!("{what}: normal equations in one partial only"),
        }
    }

    /// A shard of 4 windows with 2 Taylor terms: the invert (d0, d1, p0, p1, p2) and a
    /// residual pass with T and G self-calibration made one moment at a time equal the
    /// batched path's per-window sums within the gridder's ε, with the same sum of
    /// weights, χ² and T normal equations; so does a shard of one window, whose moments
    /// are x^t times one image (2 images made in the invert, 1 in the residual).
    #[test]
    fn moment_passes_equal_per_window_sums() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        for (wps, invert_made, residual_made) in [(4, 5, 2), (1, 2, 1)] {
            rt.block_on(async {
                let dir = tempfile::tempdir().expect("tempdir");
                let yaml = JOB.replace("WPS", &wps.to_string());
                let j = parse_job(&yaml, "moments.yaml").expect("job");
                let (plan, out) = prepare(&j, &dir.path().display().to_string(), false)
                    .await
                    .expect("prepare");
                assert_eq!(plan.shards.len(), 4 / wps, "shards of {wps} windows");
                let vis = Store::from_url(&plan.visibilities).expect("vis");
                let env = TaskEnv { plan, out, vis };
                run_inline(&env).await.expect("job runs");
                let (old, new, made) = both(&env, TaskKind::Invert).await;
                assert_eq!(made, serde_json::json!(invert_made), "{wps}");
                assert_eq!(new.arrays.len(), 5);
                compare(&old, &new, &format!("{wps} windows: invert"));
                let (old, new, made) = both(&env, TaskKind::Residual).await;
                assert_eq!(made, serde_json::json!(residual_made), "{wps}");
                assert!(old.scalars["chi2_residual"] > 0.0);
                compare(&old, &new, &format!("{wps} windows: residual"));
            });
        }
    }
}
