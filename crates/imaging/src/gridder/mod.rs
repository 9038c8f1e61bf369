//! The w-stacking gridder and degridder (Arras et al. 2021; Ye et al. 2022): the caller
//! gives an accuracy `epsilon` and the code picks the kernel support, oversampling and
//! number of w-planes by a cost model.
//!
//! [`invert`] is the exact adjoint of [`predict`] (same kernels, same planes); both
//! agree with the direct Fourier transform of [`crate::sim::dft`] to a relative L2
//! error ≤ epsilon. Conventions are those of the crate root.

mod engine;
pub mod fft_size;
pub mod index;
pub mod kernel;
pub mod kernel_design;
pub mod kernel_table;
pub mod layout;
pub mod params;
mod pass;
mod planes;
pub mod real;
mod screen;
mod simd;

use ndarray::{Array2, ArrayView2};
use num_complex::Complex64;
use serde::Serialize;

use crate::ImagingError;
use crate::coords::UvwMetres;
use crate::image::{Image, ImageGeometry};
use engine::ModelImage;
pub use engine::data_extent;
pub use fft_size::good_fft_size;
pub use params::{CallCost, DataExtent, Request, choose_layout_costed, choose_layout_parts};

/// Floating-point precision of the gridding computation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Precision {
    F32,
    F64,
}

impl std::str::FromStr for Precision {
    type Err = ImagingError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "f32" | "single" => Ok(Self::F32),
            "f64" | "double" => Ok(Self::F64),
            _ => Err(ImagingError::invalid(
                "precision",
                format!("'{s}'; expected f32 or f64"),
            )),
        }
    }
}

/// What the caller asks of the gridder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GridderOptions {
    /// Requested relative L2 accuracy versus the exact DFT.
    pub epsilon: f64,
    pub precision: Precision,
    /// Correct for w by w-stacking (default); false gives the flat-sky 2-D transform.
    pub wstacking: bool,
    /// Worker threads; 0 = all cores.
    pub threads: usize,
}

impl Default for GridderOptions {
    fn default() -> Self {
        Self {
            epsilon: 1e-5,
            precision: Precision::F64,
            wstacking: true,
            threads: 0,
        }
    }
}

impl Precision {
    /// The accuracies the gridder accepts in this precision, (smallest, largest).
    pub fn epsilon_range(self) -> (f64, f64) {
        params::epsilon_range(self == Precision::F64)
    }
}

impl GridderOptions {
    fn request(&self) -> Request {
        Request {
            epsilon: self.epsilon,
            double: self.precision == Precision::F64,
            wstacking: self.wstacking,
        }
    }
}

/// Wall-clock seconds spent in each phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StageTimes {
    pub prepare: f64,
    pub grid: f64,
    pub fft: f64,
    pub correct: f64,
    pub total: f64,
}

/// What the gridder chose and how long it took.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GridReport {
    pub nu: usize,
    pub nv: usize,
    pub support: usize,
    pub beta: f64,
    /// Exponent of the kernel's semicircle (ψ = exp(β((1 − (2x/W)²)^e0 − 1))).
    pub e0: f64,
    pub sigma: f64,
    pub nplanes: usize,
    pub kernel_degree: usize,
    /// Samples gridded or degridded.
    pub nvis: usize,
    pub times: StageTimes,
}

fn with_threads<R: Send>(
    threads: usize,
    f: impl FnOnce() -> Result<R, ImagingError> + Send,
) -> Result<R, ImagingError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| ImagingError::Unsupported(format!("cannot start worker threads: {e}")))?;
    // The pool's thread does not inherit the caller's span: enter it there, so the
    // kernel's phase spans stay children of the task that called them.
    let parent = tracing::Span::current();
    pool.install(move || parent.in_scope(f))
}

fn check_inputs(uvw_r: &[UvwMetres], freq_c: &[f64]) -> Result<(), ImagingError> {
    for (i, p) in uvw_r.iter().enumerate() {
        if !(p.u.is_finite() && p.v.is_finite() && p.w.is_finite()) {
            return Err(ImagingError::NonFinite {
                name: "uvw".into(),
                index: i,
            });
        }
    }
    for (i, &f) in freq_c.iter().enumerate() {
        if !(f.is_finite() && f > 0.0) {
            return Err(ImagingError::invalid(
                "freq",
                format!("channel {i} has frequency {f} Hz"),
            ));
        }
    }
    Ok(())
}

/// The unnormalised adjoint of [`predict`] ("vis2dirty"):
/// D(x, y) = Re Σ_k wgt_k V_k e^{2πi(u l + v m + w(n − 1))} / n, returned `[y, x]`.
/// Samples with zero weight are skipped.
pub fn invert(
    uvw_r: &[UvwMetres],
    freq_c: &[f64],
    vis_rc: ArrayView2<'_, Complex64>,
    wgt_rc: ArrayView2<'_, f64>,
    geom: &ImageGeometry,
    opts: &GridderOptions,
) -> Result<(Array2<f64>, GridReport), ImagingError> {
    check_inputs(uvw_r, freq_c)?;
    let shape = (uvw_r.len(), freq_c.len());
    for (name, got) in [("vis", vis_rc.dim()), ("weight", wgt_rc.dim())] {
        if got != shape {
            return Err(ImagingError::ShapeMismatch {
                name: name.into(),
                expected: format!("[{}, {}]", shape.0, shape.1),
                got: format!("[{}, {}]", got.0, got.1),
            });
        }
    }
    let req = opts.request();
    with_threads(opts.threads, || match opts.precision {
        Precision::F64 => engine::invert_raw::<f64>(uvw_r, freq_c, vis_rc, wgt_rc, geom, &req),
        Precision::F32 => engine::invert_raw::<f32>(uvw_r, freq_c, vis_rc, wgt_rc, geom, &req),
    })
}

/// Predicts visibilities of a model image ("dirty2vis"):
/// V_k = Σ_{x,y} I(x, y)/n · e^{−2πi(u l + v m + w(n − 1))}, returned `[row, chan]`.
pub fn predict(
    uvw_r: &[UvwMetres],
    freq_c: &[f64],
    img_yx: ArrayView2<'_, f64>,
    geom: &ImageGeometry,
    opts: &GridderOptions,
) -> Result<(Array2<Complex64>, GridReport), ImagingError> {
    check_model(uvw_r, freq_c, img_yx.view())?;
    predict_model(uvw_r, freq_c, ModelImage::View(img_yx), geom, opts)
}

/// [`predict`] of an image the caller gives up: the gridder corrects it in place
/// instead of copying it, so the call holds one image-sized buffer fewer.
pub fn predict_owned(
    uvw_r: &[UvwMetres],
    freq_c: &[f64],
    img_yx: Array2<f64>,
    geom: &ImageGeometry,
    opts: &GridderOptions,
) -> Result<(Array2<Complex64>, GridReport), ImagingError> {
    check_model(uvw_r, freq_c, img_yx.view())?;
    predict_model(uvw_r, freq_c, ModelImage::Owned(img_yx), geom, opts)
}

/// The inputs of a predict: rows and channels as for [`invert`], a finite model.
fn check_model(
    uvw_r: &[UvwMetres],
    freq_c: &[f64],
    img_yx: ArrayView2<'_, f64>,
) -> Result<(), ImagingError> {
    check_inputs(uvw_r, freq_c)?;
    match img_yx.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(ImagingError::NonFinite {
            name: "model image".into(),
            index: i,
        }),
        None => Ok(()),
    }
}

fn predict_model(
    uvw_r: &[UvwMetres],
    freq_c: &[f64],
    img_yx: ModelImage<'_>,
    geom: &ImageGeometry,
    opts: &GridderOptions,
) -> Result<(Array2<Complex64>, GridReport), ImagingError> {
    let req = opts.request();
    with_threads(opts.threads, || match opts.precision {
        Precision::F64 => engine::predict_raw::<f64>(uvw_r, freq_c, img_yx, geom, &req),
        Precision::F32 => engine::predict_raw::<f32>(uvw_r, freq_c, img_yx, geom, &req),
    })
}

/// The dirty image in Jy/beam: the weighted adjoint divided by the sum of weights, so a
/// 1 Jy source at the phase centre peaks at 1 and the PSF peaks at 1.
pub fn dirty_image(
    uvw_r: &[UvwMetres],
    freq_c: &[f64],
    vis_rc: ArrayView2<'_, Complex64>,
    wgt_rc: ArrayView2<'_, f64>,
    geom: &ImageGeometry,
    opts: &GridderOptions,
) -> Result<(Image, GridReport), ImagingError> {
    let sum_w: f64 = wgt_rc.iter().sum();
    if sum_w <= 0.0 {
        return Err(ImagingError::Unsupported(
            "no unflagged data with positive weight to image".into(),
        ));
    }
    let (mut d, rep) = invert(uvw_r, freq_c, vis_rc, wgt_rc, geom, opts)?;
    d.mapv_inplace(|v| v / sum_w);
    Ok((
        Image {
            geom: *geom,
            data_yx: d,
        },
        rep,
    ))
}

/// The point-spread function: the dirty image of unit visibilities with the same
/// weights, peaking at 1 at the image centre.
pub fn psf_image(
    uvw_r: &[UvwMetres],
    freq_c: &[f64],
    wgt_rc: ArrayView2<'_, f64>,
    geom: &ImageGeometry,
    opts: &GridderOptions,
) -> Result<(Image, GridReport), ImagingError> {
    let ones = Array2::from_elem(wgt_rc.dim(), Complex64::new(1.0, 0.0));
    dirty_image(uvw_r, freq_c, ones.view(), wgt_rc, geom, opts)
}
