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

/// [`check_inputs`], and the visibilities and weights are `[row, chan]` of those.
fn check_invert_inputs(
    uvw_r: &[UvwMetres],
    freq_c: &[f64],
    vis_dim: (usize, usize),
    wgt_dim: (usize, usize),
) -> Result<(), ImagingError> {
    check_inputs(uvw_r, freq_c)?;
    let shape = (uvw_r.len(), freq_c.len());
    for (name, got) in [("vis", vis_dim), ("weight", wgt_dim)] {
        if got != shape {
            return Err(ImagingError::ShapeMismatch {
                name: name.into(),
                expected: format!("[{}, {}]", shape.0, shape.1),
                got: format!("[{}, {}]", got.0, got.1),
            });
        }
    }
    Ok(())
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
    check_invert_inputs(uvw_r, freq_c, vis_rc.dim(), wgt_rc.dim())?;
    let req = opts.request();
    with_threads(opts.threads, || match opts.precision {
        Precision::F64 => engine::invert_raw::<f64>(uvw_r, freq_c, vis_rc, wgt_rc, geom, &req),
        Precision::F32 => engine::invert_raw::<f32>(uvw_r, freq_c, vis_rc, wgt_rc, geom, &req),
    })
}

/// The extent covering the samples of both `a` and `b` (samples add; an empty extent
/// adds nothing to the ranges).
pub fn merge_extents(a: DataExtent, b: DataExtent) -> DataExtent {
    match (a.nvis, b.nvis) {
        (0, _) => b,
        (_, 0) => a,
        _ => DataExtent {
            nvis: a.nvis + b.nvis,
            w_min: a.w_min.min(b.w_min),
            w_max: a.w_max.max(b.w_max),
            uv_extent: a.uv_extent.max(b.uv_extent),
        },
    }
}

/// The adjoint of several calls' samples summed into one image, one call at a time:
/// [`InvertSum::add`] grids each call's samples with one layout, chosen at
/// [`InvertSum::new`] from an extent covering them all, into one uncorrected image, and
/// [`InvertSum::finish`] corrects the sum once. The result is the adjoint of all the
/// samples in one [`invert`] call with that layout (within the gridder's ε of the
/// direct transform), but only one call's samples and one grid are ever held: a shard
/// sums a Taylor moment over its windows this way (issue #4's memory bound).
#[derive(Debug)]
pub struct InvertSum {
    layout: layout::Layout,
    extent: DataExtent,
    opts: GridderOptions,
    shape_yx: (usize, usize),
    acc_yx: Vec<f64>,
}

impl InvertSum {
    /// An empty sum over samples within `extent` (e.g. [`data_extent`] of every call's
    /// samples, merged with [`merge_extents`]). Its `nvis` weighs the layout's cost
    /// model: the samples of one call (each call pays its own FFTs), not their sum.
    pub fn new(
        geom: &ImageGeometry,
        extent: DataExtent,
        opts: &GridderOptions,
    ) -> Result<Self, ImagingError> {
        let layout = params::choose_layout(geom, &extent, &opts.request())?;
        Ok(Self {
            layout,
            extent,
            opts: *opts,
            shape_yx: (geom.npix_y, geom.npix_x),
            acc_yx: vec![0.0; geom.npix_x * geom.npix_y],
        })
    }

    /// Adds the unnormalised adjoint of these samples (as [`invert`] takes them). Samples
    /// outside the extent given at [`InvertSum::new`] are an error.
    pub fn add(
        &mut self,
        uvw_r: &[UvwMetres],
        freq_c: &[f64],
        vis_rc: ArrayView2<'_, Complex64>,
        wgt_rc: ArrayView2<'_, f64>,
    ) -> Result<GridReport, ImagingError> {
        check_invert_inputs(uvw_r, freq_c, vis_rc.dim(), wgt_rc.dim())?;
        let e = data_extent(uvw_r, freq_c, self.layout.cell, |r, c| {
            wgt_rc[[r, c]] != 0.0
        });
        let x = &self.extent;
        let tol = |v: f64| 1e-9 * v.abs().max(1.0);
        if e.nvis > 0
            && (e.w_min < x.w_min - tol(x.w_min)
                || e.w_max > x.w_max + tol(x.w_max)
                || e.uv_extent > x.uv_extent + tol(x.uv_extent))
        {
            return Err(ImagingError::invalid(
                "uvw",
                format!(
                    "samples with w in [{:.3}, {:.3}] and uv extent {:.4} are outside the \
                     summed extent (w in [{:.3}, {:.3}], uv extent {:.4})",
                    e.w_min, e.w_max, e.uv_extent, x.w_min, x.w_max, x.uv_extent
                ),
            ));
        }
        let req = self.opts.request();
        let (lay, acc) = (&self.layout, &mut self.acc_yx);
        with_threads(self.opts.threads, || match self.opts.precision {
            Precision::F64 => {
                engine::invert_add::<f64>(lay, uvw_r, freq_c, vis_rc, wgt_rc, &req, acc)
            }
            Precision::F32 => {
                engine::invert_add::<f32>(lay, uvw_r, freq_c, vis_rc, wgt_rc, &req, acc)
            }
        })
    }

    /// The corrected sum, `[y, x]`.
    pub fn finish(mut self) -> Array2<f64> {
        let (lay, acc) = (&self.layout, &mut self.acc_yx);
        with_threads(self.opts.threads, || {
            engine::correct_sum(lay, acc);
            Ok(())
        })
        .unwrap_or_else(|_| engine::correct_sum(lay, acc));
        Array2::from_shape_vec(self.shape_yx, self.acc_yx).expect("image shape")
    }
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

#[cfg(test)]
mod sum_tests {
    use super::*;
    use crate::coords::RaDec;
    use crate::sim::Rng;

    /// Two windows (the same rows at two frequencies) summed one at a time equal the
    /// adjoint of both in one call, which picks its layout from the same (merged)
    /// extent: the same planes, so rounding is all that differs. A window outside the
    /// summed extent is refused.
    #[test]
    fn sum_of_windows_equals_one_call() {
        let npix = 64;
        let cell = 0.2f64.to_radians() / npix as f64;
        let geom = ImageGeometry::square(npix, cell, RaDec::new(0.3, -0.5), 1.15e8, 3e7)
            .expect("geometry");
        let mut rng = Rng::new(7);
        let bmax = 0.3 / cell * crate::SPEED_OF_LIGHT / 1.3e8;
        let uvw_r: Vec<UvwMetres> = (0..400)
            .map(|_| {
                let (u, v, w) = (rng.uniform(), rng.uniform(), rng.uniform());
                UvwMetres::new(
                    bmax * (2.0 * u - 1.0),
                    bmax * (2.0 * v - 1.0),
                    bmax * (w - 0.5),
                )
            })
            .collect();
        let freq_c = [1.0e8, 1.3e8];
        let vis_rc = Array2::from_shape_fn((400, 2), |(r, c)| {
            Complex64::new((r as f64 * 0.37 + c as f64).sin(), (r as f64 * 0.11).cos())
        });
        let wgt_rc = Array2::from_shape_fn((400, 2), |(r, c)| {
            if (r + c) % 7 == 0 {
                0.0
            } else {
                1.0 + (r % 5) as f64
            }
        });
        for precision in [Precision::F64, Precision::F32] {
            let opts = GridderOptions {
                epsilon: if precision == Precision::F64 {
                    1e-9
                } else {
                    1e-5
                },
                precision,
                threads: 2,
                ..Default::default()
            };
            let (want, _) = invert(&uvw_r, &freq_c, vis_rc.view(), wgt_rc.view(), &geom, &opts)
                .expect("one call");
            let col = |c: usize| {
                (
                    vis_rc.slice(ndarray::s![.., c..c + 1]),
                    wgt_rc.slice(ndarray::s![.., c..c + 1]),
                )
            };
            let extent = (0..2)
                .map(|c| {
                    data_extent(&uvw_r, &freq_c[c..c + 1], cell, |r, _| {
                        col(c).1[[r, 0]] != 0.0
                    })
                })
                .fold(
                    DataExtent {
                        nvis: 0,
                        w_min: 0.0,
                        w_max: 0.0,
                        uv_extent: 0.0,
                    },
                    merge_extents,
                );
            let mut sum = InvertSum::new(&geom, extent, &opts).expect("sum");
            for c in [1, 0] {
                let (v, w) = col(c);
                sum.add(&uvw_r, &freq_c[c..c + 1], v, w).expect("add");
            }
            let got = sum.finish();
            let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let err = (&got - &want).iter().fold(0.0f64, |m, v| m.max(v.abs())) / scale;
            // Below ε: a sum with another layout would differ by about ε.
            let tol = if precision == Precision::F64 {
                1e-10
            } else {
                1e-5
            };
            assert!(err < tol, "{precision:?}: {err}");
            // Window 1 alone sets a smaller extent: window 0's w range is outside it.
            let (v1, w1) = col(1);
            let e1 = data_extent(&uvw_r, &freq_c[1..], cell, |r, _| w1[[r, 0]] != 0.0);
            let e0 = data_extent(&uvw_r, &freq_c[..1], cell, |r, _| col(0).1[[r, 0]] != 0.0);
            let mut one = InvertSum::new(&geom, e0, &opts).expect("sum");
            let err = one
                .add(&uvw_r, &freq_c[1..], v1, w1)
                .expect_err("outside the extent");
            assert!(
                err.to_string().contains("outside the summed extent"),
                "{err}"
            );
            assert!(e1.w_max > e0.w_max);
        }
    }
}
