//! The w-stacking driver: plane by plane, grid → pruned FFT → w-screen accumulate
//! (invert), or image → w-screen → pruned FFT → degrid (predict). The two are exact
//! adjoints of each other up to floating-point rounding.

use std::time::Instant;

use ndarray::{Array2, ArrayView2};
use num_complex::{Complex, Complex64};
use rayon::prelude::*;
use rustfft::num_traits::Zero;

use super::index::{TILE, VisIndex};
use super::kernel::{PieceEvaluator, PiecewiseKernel};
use super::layout::Layout;
use super::params::{DataExtent, Request, choose_layout};
use super::pass::{PassCtx, SharedMut, degrid_band, grid_band};
use super::planes::{PlaneFft, live_rows};
use super::real::Real;
use super::screen::{Screens, apply_correction, apply_correction_rows};
use super::{GridReport, StageTimes};
use crate::coords::UvwMetres;
use crate::image::ImageGeometry;
use crate::{ImagingError, SPEED_OF_LIGHT};

/// Extent of the samples selected by `keep`.
pub fn data_extent(
    uvw_r: &[UvwMetres],
    freq_c: &[f64],
    cell: f64,
    keep: impl Fn(usize, usize) -> bool + Sync,
) -> DataExtent {
    let (fmin, fmax) = freq_c
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(a, b), &f| (a.min(f), b.max(f)));
    let per_row: Vec<(usize, f64, f64, f64)> = uvw_r
        .par_iter()
        .enumerate()
        .map(|(r, p)| {
            let n = (0..freq_c.len()).filter(|&c| keep(r, c)).count();
            if n == 0 {
                return (0, f64::INFINITY, f64::NEG_INFINITY, 0.0);
            }
            // Samples are mirrored to w ≥ 0 (see `Layout::position`).
            let w = p.w.abs() / SPEED_OF_LIGHT;
            let uv = p.u.abs().max(p.v.abs()) * fmax / SPEED_OF_LIGHT * cell;
            (n, w * fmin, w * fmax, uv)
        })
        .collect();
    let mut e = DataExtent {
        nvis: 0,
        w_min: f64::INFINITY,
        w_max: f64::NEG_INFINITY,
        uv_extent: 0.0,
    };
    for (n, a, b, uv) in per_row {
        e.nvis += n;
        e.w_min = e.w_min.min(a);
        e.w_max = e.w_max.max(b);
        e.uv_extent = e.uv_extent.max(uv);
    }
    if e.nvis == 0 {
        e.w_min = 0.0;
        e.w_max = 0.0;
    }
    e
}

/// Everything prepared once per call.
struct Prepared<T: Real> {
    layout: Layout,
    index: VisIndex,
    uv_coef: Vec<T>,
    uv_degree: usize,
    w_kernel: PieceEvaluator,
    fft: PlaneFft<T>,
    /// First and last tile row with samples, per w-plane.
    bands: Vec<Option<(usize, usize)>>,
}

/// Chooses the layout, fits the kernels and indexes the samples selected by `keep`;
/// returns them with the stage times so far (`prepare` filled in).
fn prepare<T: Real>(
    uvw_r: &[UvwMetres],
    freq_c: &[f64],
    geom: &ImageGeometry,
    req: &Request,
    keep: impl Fn(usize, usize) -> bool + Sync + Copy,
) -> Result<(Prepared<T>, StageTimes), ImagingError> {
    let t = Instant::now();
    let _span = tracing::info_span!("prepare").entered();
    let extent = data_extent(uvw_r, freq_c, geom.cell, keep);
    let layout = choose_layout(geom, &extent, req)?;
    drop(_span);
    prepare_in(layout, uvw_r, freq_c, req, keep, t)
}

/// [`prepare`] with a layout chosen by the caller (one layout for several calls whose
/// sum is corrected once: [`invert_add`]); `t` is when preparing began.
fn prepare_in<T: Real>(
    layout: Layout,
    uvw_r: &[UvwMetres],
    freq_c: &[f64],
    req: &Request,
    keep: impl Fn(usize, usize) -> bool + Sync + Copy,
    t: Instant,
) -> Result<(Prepared<T>, StageTimes), ImagingError> {
    let _span = tracing::info_span!("prepare").entered();
    let tol = (req.epsilon * 0.05).max(1e-15);
    let uvk = PiecewiseKernel::fit(&layout.kernel, 0.0, tol);
    let alpha = std::f64::consts::TAU * layout.dw * layout.c_mid();
    let w_kernel = PieceEvaluator::new(&PiecewiseKernel::fit(&layout.kernel, alpha, tol));
    let index = VisIndex::build(uvw_r, freq_c, &layout, keep)?;
    let prep = Prepared {
        bands: index.plane_bands(layout.w_support(), layout.nplanes),
        uv_coef: uvk.coef_re.iter().map(|&c| T::from_f(c)).collect(),
        uv_degree: uvk.degree,
        w_kernel,
        fft: PlaneFft::new(&layout),
        index,
        layout,
    };
    let times = StageTimes {
        prepare: t.elapsed().as_secs_f64(),
        ..Default::default()
    };
    Ok((prep, times))
}

impl<T: Real> Prepared<T> {
    fn ctx<'a>(&'a self, uvw_r: &'a [UvwMetres], freq_c: &'a [f64]) -> PassCtx<'a, T> {
        PassCtx {
            layout: &self.layout,
            index: &self.index,
            uv_coef: &self.uv_coef,
            uv_degree: self.uv_degree,
            w_kernel: &self.w_kernel,
            uvw_r,
            freq_c,
        }
    }

    /// The span of one invert or predict, with the attributes a person filters on.
    fn span(&self, op: &'static str) -> tracing::Span {
        let lay = &self.layout;
        tracing::info_span!(
            "gridder",
            op,
            // As i64: OpenTelemetry attributes have no unsigned integers.
            nu = lay.nu as i64,
            nv = lay.nv as i64,
            support = lay.kernel.support as i64,
            nplanes = lay.nplanes as i64,
            nvis = self.index.entries.len() as i64,
            grid_seconds = tracing::field::Empty,
            fft_seconds = tracing::field::Empty,
        )
    }

    fn report(&self, nvis: usize, times: StageTimes) -> GridReport {
        GridReport {
            nu: self.layout.nu,
            nv: self.layout.nv,
            support: self.layout.kernel.support,
            beta: self.layout.kernel.beta,
            e0: self.layout.kernel.e0,
            sigma: self.layout.sigma,
            nplanes: self.layout.nplanes,
            kernel_degree: self.uv_degree,
            nvis,
            times,
        }
    }
}

/// A zeroed grid of `n` cells whose pages the system maps on first touch: allocated
/// zeroed (calloc(3): a grid-sized block is a fresh anonymous mapping, zero already, so
/// nothing is written), not filled with zeros, which would make every page resident.
/// The plane loops touch only the grid rows of their bands ([`band_rows`]: the v
/// transforms, the u transforms' gathers and scatters, the clearing between planes), so
/// the rows no sample reaches (|u| beyond the data's extent) never take memory: at
/// 2048² with 60″ cells, LOW's 600 m array reaches a quarter to a third of the rows
/// (issue #4's memory bound).
fn zeroed_grid<T: Real>(n: usize) -> Vec<Complex<T>> {
    if n == 0 {
        return Vec::new();
    }
    let layout = std::alloc::Layout::array::<Complex<T>>(n).expect("grid size overflows");
    // SAFETY: `layout` has a non-zero size (n > 0 and Complex<T> is two floats). `Real`
    // is implemented for f32 and f64 only (sealed by `simd::Avx2Real`, in a private
    // module), whose all-zero bit pattern is 0.0, so the n cells are initialised
    // Complex zeros; the block was allocated by the global allocator with the layout of
    // an array of n Complex<T>, exactly what Vec of capacity n deallocates with.
    unsafe {
        let p = std::alloc::alloc_zeroed(layout).cast::<Complex<T>>();
        if p.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Vec::from_raw_parts(p, n, n)
    }
}

/// Grid rows touched by bands first..=last.
fn band_rows(layout: &Layout, first: usize, last: usize) -> std::ops::Range<usize> {
    first * TILE..(last * TILE + TILE + layout.kernel.support).min(layout.nu)
}

/// Unnormalised adjoint of [`predict_raw`]: D(x, y) = Re Σ_k wgt_k V_k e^{2πi(ul+vm+w(n−1))}/n.
pub fn invert_raw<T: Real>(
    uvw_r: &[UvwMetres],
    freq_c: &[f64],
    vis_rc: ArrayView2<'_, Complex64>,
    wgt_rc: ArrayView2<'_, f64>,
    geom: &ImageGeometry,
    req: &Request,
) -> Result<(Array2<f64>, GridReport), ImagingError> {
    let t_start = Instant::now();
    let (vis, wgt) = (vis_rc.as_standard_layout(), wgt_rc.as_standard_layout());
    let (vis, wgt) = (slice(&vis), slice(&wgt));
    let keep = nonzero_weight(wgt, freq_c.len());
    let (prep, mut times) = prepare::<T>(uvw_r, freq_c, geom, req, keep)?;
    let mut acc = vec![0.0f64; geom.npix_x * geom.npix_y];
    let nvis = invert_planes(&prep, uvw_r, freq_c, vis, wgt, &mut acc, &mut times);
    let t = Instant::now();
    apply_correction(&prep.layout, &mut acc);
    times.correct = t.elapsed().as_secs_f64();
    times.total = t_start.elapsed().as_secs_f64();
    let img = Array2::from_shape_vec((geom.npix_y, geom.npix_x), acc).expect("image shape");
    Ok((img, prep.report(nvis, times)))
}

/// The values of a standard-layout array (see `as_standard_layout`).
fn slice<'a, A>(a: &'a ndarray::CowArray<'_, A, ndarray::Ix2>) -> &'a [A] {
    a.as_slice().expect("standard layout")
}

/// An invert's sample filter over `[row, chan]` weights: a non-zero weight.
fn nonzero_weight(wgt: &[f64], nchan: usize) -> impl Fn(usize, usize) -> bool + Sync + Copy + '_ {
    move |r, c| wgt[r * nchan + c] != 0.0
}

/// Adds the uncorrected adjoint of these samples, gridded with `layout`, into `acc_yx`
/// (npix_y × npix_x, row-major): the sum of such calls with one layout, corrected once
/// by [`correct_sum`], is the adjoint of all their samples in one call with that
/// layout (the plane loop is linear in the data). `layout` must cover the samples'
/// w and uv (chosen from an extent that contains theirs: the caller checks).
pub fn invert_add<T: Real>(
    layout: &Layout,
    uvw_r: &[UvwMetres],
    freq_c: &[f64],
    vis_rc: ArrayView2<'_, Complex64>,
    wgt_rc: ArrayView2<'_, f64>,
    req: &Request,
    acc_yx: &mut [f64],
) -> Result<GridReport, ImagingError> {
    let t_start = Instant::now();
    let (vis, wgt) = (vis_rc.as_standard_layout(), wgt_rc.as_standard_layout());
    let (vis, wgt) = (slice(&vis), slice(&wgt));
    let keep = nonzero_weight(wgt, freq_c.len());
    let (prep, mut times) = prepare_in::<T>(layout.clone(), uvw_r, freq_c, req, keep, t_start)?;
    let nvis = invert_planes(&prep, uvw_r, freq_c, vis, wgt, acc_yx, &mut times);
    times.total = t_start.elapsed().as_secs_f64();
    Ok(prep.report(nvis, times))
}

/// Corrects a sum of [`invert_add`] calls with `layout` (the gridding and w-stacking
/// correction of one invert, applied once).
pub fn correct_sum(layout: &Layout, acc_yx: &mut [f64]) {
    apply_correction(layout, acc_yx);
}

/// The plane loop of an invert: grid → pruned FFT → w-screen, added into `acc`
/// (uncorrected). Returns the samples gridded.
fn invert_planes<T: Real>(
    prep: &Prepared<T>,
    uvw_r: &[UvwMetres],
    freq_c: &[f64],
    vis: &[Complex64],
    wgt: &[f64],
    acc: &mut [f64],
    times: &mut StageTimes,
) -> usize {
    let lay = &prep.layout;
    let span = prep.span("invert").entered();
    let ctx = prep.ctx(uvw_r, freq_c);
    let nv = lay.nv;
    let mut grid = zeroed_grid::<T>(lay.nu * nv);
    let mut screens = lay.wstacking.then(|| Screens::new(lay));
    let mut dirty_rows: Option<std::ops::Range<usize>> = None;
    for plane in 0..lay.nplanes {
        let Some((b0, b1)) = prep.bands[plane] else {
            continue;
        };
        let _p = tracing::trace_span!("plane", plane).entered();
        if let Some(r) = dirty_rows.take() {
            grid[r.start * nv..r.end * nv]
                .par_iter_mut()
                .for_each(|c| *c = Complex::zero());
        }
        let t = Instant::now();
        {
            let _g = tracing::debug_span!("grid", plane = plane as i64).entered();
            for parity in 0..2 {
                let off = parity * TILE * nv;
                grid[off..]
                    .par_chunks_mut(2 * TILE * nv)
                    .enumerate()
                    .for_each(|(c, chunk)| {
                        let tu = 2 * c + parity;
                        if tu >= b0 && tu <= b1 {
                            grid_band(&ctx, plane, tu, vis, wgt, chunk, tu * TILE);
                        }
                    });
            }
        }
        times.grid += t.elapsed().as_secs_f64();
        let rows = band_rows(lay, b0, b1);
        let t = Instant::now();
        if let Some(s) = screens.as_mut() {
            let _w = tracing::debug_span!("wscreen", plane = plane as i64).entered();
            s.advance_to(lay, plane);
        }
        {
            let _f = tracing::debug_span!("fft", plane = plane as i64).entered();
            prep.fft.rows_v(lay, &mut grid, rows.clone(), true);
            prep.fft
                .columns_to_image(lay, &grid, rows.clone(), screens.as_ref(), acc);
        }
        times.fft += t.elapsed().as_secs_f64();
        dirty_rows = Some(rows);
    }
    drop(grid);
    span.record("grid_seconds", times.grid);
    span.record("fft_seconds", times.fft);
    ctx.index.entries.len()
}

/// The model image of a predict: borrowed (copied once for the correction) or owned
/// (corrected in place).
pub enum ModelImage<'a> {
    View(ArrayView2<'a, f64>),
    Owned(Array2<f64>),
}

/// Predict: V_k = Σ_{x,y} I(x,y)/n · e^{−2πi(ul+vm+w(n−1))} for every row and channel.
pub fn predict_raw<T: Real>(
    uvw_r: &[UvwMetres],
    freq_c: &[f64],
    img_yx: ModelImage<'_>,
    geom: &ImageGeometry,
    req: &Request,
) -> Result<(Array2<Complex64>, GridReport), ImagingError> {
    let t_start = Instant::now();
    let dim = match &img_yx {
        ModelImage::View(v) => v.dim(),
        ModelImage::Owned(a) => a.dim(),
    };
    if dim != (geom.npix_y, geom.npix_x) {
        return Err(ImagingError::ShapeMismatch {
            name: "model image".into(),
            expected: format!("[{}, {}]", geom.npix_y, geom.npix_x),
            got: format!("[{}, {}]", dim.0, dim.1),
        });
    }
    let (prep, mut times) = prepare::<T>(uvw_r, freq_c, geom, req, |_, _| true)?;
    let lay = &prep.layout;
    let span = prep.span("predict").entered();
    let ctx = prep.ctx(uvw_r, freq_c);
    let t = Instant::now();
    // An owned model is corrected in place (no second image-sized buffer).
    let mut img: Vec<f64> = match img_yx {
        ModelImage::View(v) => v.iter().copied().collect(),
        ModelImage::Owned(a) if a.is_standard_layout() => a.into_raw_vec_and_offset().0,
        ModelImage::Owned(a) => a.iter().copied().collect(),
    };
    // Only rows with a non-zero pixel are corrected (the correction keeps zeros zero):
    // the empty rows of a zeroed model stay unwritten, and take no memory.
    let live_y = live_rows(&img, geom.npix_x);
    apply_correction_rows(lay, &mut img, Some(&live_y));
    times.correct = t.elapsed().as_secs_f64();
    let nv = lay.nv;
    let mut grid = zeroed_grid::<T>(lay.nu * nv);
    let mut out = Array2::<Complex64>::zeros((uvw_r.len(), freq_c.len()));
    let out_ptr = SharedMut(out.as_mut_ptr());
    let mut screens = lay.wstacking.then(|| Screens::new(lay));
    for plane in 0..lay.nplanes {
        let Some((b0, b1)) = prep.bands[plane] else {
            continue;
        };
        let _p = tracing::trace_span!("plane", plane).entered();
        let rows = band_rows(lay, b0, b1);
        let t = Instant::now();
        if let Some(s) = screens.as_mut() {
            let _w = tracing::debug_span!("wscreen", plane = plane as i64).entered();
            s.advance_to(lay, plane);
        }
        {
            let _f = tracing::debug_span!("fft", plane = plane as i64).entered();
            prep.fft.image_to_columns(
                lay,
                &img,
                &live_y,
                screens.as_ref(),
                &mut grid,
                rows.clone(),
            );
            prep.fft
                .clear_and_rows_v_forward(lay, &mut grid, rows.clone());
        }
        times.fft += t.elapsed().as_secs_f64();
        let t = Instant::now();
        {
            let _g = tracing::debug_span!("degrid", plane = plane as i64).entered();
            (b0..=b1).into_par_iter().for_each(|tu| {
                degrid_band(&ctx, plane, tu, &grid, out_ptr);
            });
        }
        times.grid += t.elapsed().as_secs_f64();
    }
    times.total = t_start.elapsed().as_secs_f64();
    span.record("grid_seconds", times.grid);
    span.record("fft_seconds", times.fft);
    Ok((out, prep.report(ctx.index.entries.len(), times)))
}
