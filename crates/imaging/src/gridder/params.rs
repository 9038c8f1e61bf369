//! Choosing the gridding parameters from the requested accuracy: every (W, σ) row of the
//! kernel table ([`super::kernel_table`]) whose error bound meets `epsilon` is a
//! candidate, and the one with the lowest estimated run time wins (the kernel database
//! and cost model of ducc0's wgridder, Arras et al. 2021 §3.3).

use super::fft_size::{fast_fft_size, fft_length_factor};
use super::kernel_design::KernelDesign;
use super::kernel_table::KERNEL_TABLE;
use super::layout::Layout;
use crate::ImagingError;
use crate::image::ImageGeometry;

/// Smallest and largest kernel supports the gridder implements.
pub const MIN_SUPPORT: usize = 4;
pub const MAX_SUPPORT: usize = 16;
/// In f32 the monomial kernel polynomials of wider supports lose accuracy to
/// cancellation, so single precision uses W ≤ 8 (enough for epsilon ≥ 1e-5).
pub const MAX_SUPPORT_F32: usize = 8;

/// The oversampling factors of the kernel table, 1.15 to 2.50 in steps of 0.05.
pub const TABLE_SIGMAS: [f64; 28] = [
    1.15, 1.20, 1.25, 1.30, 1.35, 1.40, 1.45, 1.50, 1.55, 1.60, 1.65, 1.70, 1.75, 1.80, 1.85, 1.90,
    1.95, 2.00, 2.05, 2.10, 2.15, 2.20, 2.25, 2.30, 2.35, 2.40, 2.45, 2.50,
];

/// The accuracies the gridder accepts, (smallest, largest), in f64 (`double`) or f32.
pub fn epsilon_range(double: bool) -> (f64, f64) {
    (if double { 1e-12 } else { 1e-5 }, 0.1)
}

/// What the caller asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Request {
    /// Relative L2 accuracy against the exact direct Fourier transform.
    pub epsilon: f64,
    /// Whether the computation runs in f64 (else f32).
    pub double: bool,
    /// Whether to correct for w (w-stacking); false gives the flat-sky 2-D transform.
    pub wstacking: bool,
}

/// Facts about the data that drive the choice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DataExtent {
    /// Number of samples to grid.
    pub nvis: usize,
    /// Range of w over the samples, wavelengths.
    pub w_min: f64,
    pub w_max: f64,
    /// Largest max(|u|, |v|)·cell over the samples (u, v in wavelengths; at most 0.5 for a
    /// sampled image), used to estimate how many grid rows carry data.
    pub uv_extent: f64,
}

/// Safety factor on the kernel table's aliasing error in [`error_bound`]; see there.
pub const SAFETY: f64 = 1.0;

/// Factor on the rounding term of [`error_bound`]. On the hardest case of
/// `tests/gridder_accuracy.rs` (predict of one source in the image corner, f32) the
/// rounding part of the error, √(e_f32² − e_f64²), measured 0.08–1.1 × u·gain³ over five
/// layouts (W 7–8, σ 1.30–1.55).
pub const ROUNDING: f64 = 2.0;

/// Bound on the relative L2 error (against the exact DFT) of gridding with the table row
/// `d` in `ndim` dimensions (3 with w-stacking: u, v and w; 2 without), computing in f64
/// (`double`) or f32: `SAFETY · ndim · d.error + ROUNDING · u · d.gain^ndim`.
///
/// Aliasing: a source at image coordinates (ξ_u, ξ_v, ξ_w) reaches the samples with its
/// aliases m ≠ 0 in every dimension; these are orthogonal, so its relative error is
/// √(Π_d (1 + e_d(ξ_d)²) − 1) ≈ √(Σ_d e_d²) ≤ √ndim · max e (the table's error is the
/// maximum over the field of the one-dimensional e). The bound ndim · e leaves a factor
/// √ndim for what the table does not model, chiefly the piecewise-polynomial
/// approximation of the kernel (fitted to 5 % of epsilon).
///
/// Rounding: a relative rounding u of the grid values (2⁻⁵³ in f64, 2⁻²⁴ in f32) reaches
/// a source at the edge of the field amplified by the kernel's rounding gain in each
/// dimension (`kernel_design::rounding_gain`). It matters in f32, where it rules out the
/// smallest σ at epsilon ≲ 1e-4, and at the smallest f64 epsilons.
pub fn error_bound(d: &KernelDesign, ndim: usize, double: bool) -> f64 {
    let u = if double {
        f64::EPSILON / 2.0
    } else {
        f32::EPSILON as f64 / 2.0
    };
    let dims = ndim as i32;
    SAFETY * ndim as f64 * d.error + ROUNDING * u * d.gain.powi(dims)
}

/// Costs (seconds per unit) of the gridding passes, single-threaded, fitted to the phase
/// times `aperture bench kernels --json` reported on the reference machine (1.44 M
/// samples, 1024²) for the layouts chosen before the kernel table: f64 W = 8, 1750², 65
/// planes: grid 0.96 s, FFT + screen 1.22 s; f32 W = 7, 1440², 54 planes: grid 0.57 s,
/// FFT + screen 0.38 s. For today's f64 choice (W = 8, 1500², 57 planes) the model gives
/// grid 0.97 s and FFT + screen 0.84 s against 0.69–0.79 s and 0.60–0.66 s measured (a
/// loaded machine, after the w-kernel and prefetch changes of `pass.rs`): 1.2–1.4× high
/// in both terms alike, so the ranking of layouts holds and the planner's task sizes err
/// long. Only the ratios steer the choice.
#[derive(Debug, Clone, Copy)]
struct CostModel {
    grid_per_cell: f64,
    kernel_per_term: f64,
    fft_per_point_log: f64,
    screen_per_pixel: f64,
}

const COST_F64: CostModel = CostModel {
    grid_per_cell: 0.55e-9,
    kernel_per_term: 0.28e-9,
    fft_per_point_log: 0.42e-9,
    screen_per_pixel: 1.0e-9,
};
const COST_F32: CostModel = CostModel {
    grid_per_cell: 0.48e-9,
    kernel_per_term: 0.24e-9,
    fft_per_point_log: 0.21e-9,
    screen_per_pixel: 0.63e-9,
};

/// Range of n − 1 over the image: (c_min, c_max = 0 at the centre pixel).
fn n_minus_one_range(geom: &ImageGeometry) -> f64 {
    let (lmax, mmax) = geom.lm_extent();
    let r2 = lmax * lmax + mmax * mmax;
    -r2 / (1.0 + (1.0 - r2).sqrt())
}

/// Picks the layout with the lowest estimated cost that meets the request.
pub fn choose_layout(
    geom: &ImageGeometry,
    data: &DataExtent,
    req: &Request,
) -> Result<Layout, ImagingError> {
    choose_layout_costed(geom, data, req).map(|(layout, _)| layout)
}

/// [`choose_layout`], also returning the cost model's estimate of one single-threaded
/// invert (or predict) with that layout, in seconds on the reference machine. The job
/// planner sizes its tasks with it.
pub fn choose_layout_costed(
    geom: &ImageGeometry,
    data: &DataExtent,
    req: &Request,
) -> Result<(Layout, f64), ImagingError> {
    choose_layout_parts(geom, data, req).map(|(layout, cost)| (layout, cost.total()))
}

/// The cost model's estimate of one gridder call, split into the part that grows with
/// the samples and the part paid once per call (the w-planes' FFTs and screens).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallCost {
    /// Gridding or degridding the samples: nvis × w-support × (support² cell updates +
    /// kernel evaluation), seconds.
    pub gridding: f64,
    /// nplanes × (pruned 2-D FFT + w-screen), seconds.
    pub planes: f64,
}

impl CallCost {
    /// Seconds of the whole call.
    pub fn total(&self) -> f64 {
        self.gridding + self.planes
    }
}

/// [`choose_layout_costed`] with the estimate split into its [`CallCost`] parts.
pub fn choose_layout_parts(
    geom: &ImageGeometry,
    data: &DataExtent,
    req: &Request,
) -> Result<(Layout, CallCost), ImagingError> {
    geom.validate()?;
    let (min_eps, max_eps) = epsilon_range(req.double);
    if !(req.epsilon.is_finite() && req.epsilon >= min_eps && req.epsilon <= max_eps) {
        return Err(ImagingError::invalid(
            "epsilon",
            format!(
                "{:e} is outside the supported range [{min_eps:e}, {max_eps}] for {} precision",
                req.epsilon,
                if req.double { "f64" } else { "f32" }
            ),
        ));
    }
    if !(data.w_min.is_finite() && data.w_max.is_finite() && data.w_max >= data.w_min) {
        return Err(ImagingError::invalid("uvw", "w range is not finite"));
    }
    let cost = if req.double { COST_F64 } else { COST_F32 };
    let c_min = n_minus_one_range(geom);
    let c_half = -0.5 * c_min;
    // Three dimensions (u, v, w) contribute errors; without w-stacking only two.
    let ndim = if req.wstacking { 3 } else { 2 };
    let max_w = if req.double {
        MAX_SUPPORT
    } else {
        MAX_SUPPORT_F32
    };
    let mut best: Option<(CallCost, Layout)> = None;
    for d in KERNEL_TABLE.iter() {
        let w = d.support;
        if w > max_w || error_bound(d, ndim, req.double) > req.epsilon {
            continue;
        }
        let sigma = d.sigma;
        let nu = fast_fft_size(((geom.npix_x as f64 * sigma).ceil() as usize).max(2 * w + 16));
        let nv = fast_fft_size(((geom.npix_y as f64 * sigma).ceil() as usize).max(2 * w + 16));
        let sig_eff = (nu as f64 / geom.npix_x as f64).min(nv as f64 / geom.npix_y as f64);
        // The w direction is sampled at the kernel's design σ: the image then spans
        // |ξ_w| ≤ c_half·dw = 1/(2σ), the range the table's error covers.
        let (nplanes, dw, w0) = if req.wstacking {
            let dw = 1.0 / (sigma * 2.0 * c_half);
            let n = ((data.w_max - data.w_min) / dw).ceil() as usize + w;
            (n, dw, data.w_min - 0.5 * w as f64 * dw)
        } else {
            (1, 1.0, 0.0)
        };
        let wp = if req.wstacking { w } else { 1 } as f64;
        let degree = (w + 3) as f64;
        let grid = data.nvis as f64
            * wp
            * ((w * w) as f64 * cost.grid_per_cell
                + 2.0 * w as f64 * degree * cost.kernel_per_term);
        let rows = ((2.0 * data.uv_extent * nu as f64 + (2 * w + 16) as f64) / nu as f64).min(1.0);
        let fft_plane = cost.fft_per_point_log
            * (rows * (nu * nv) as f64 * (nv as f64).log2() * fft_length_factor(nv)
                + (geom.npix_y * nu) as f64 * (nu as f64).log2() * fft_length_factor(nu));
        let screen = if req.wstacking {
            cost.screen_per_pixel * (geom.npix_x * geom.npix_y) as f64
        } else {
            0.0
        };
        let call = CallCost {
            gridding: grid,
            planes: nplanes as f64 * (fft_plane + screen),
        };
        let layout = Layout {
            npix_x: geom.npix_x,
            npix_y: geom.npix_y,
            cell: geom.cell,
            nu,
            nv,
            sigma: sig_eff,
            kernel: d.kernel(),
            wstacking: req.wstacking,
            nplanes,
            w0,
            dw,
            c_half,
        };
        if best.as_ref().is_none_or(|(t, _)| call.total() < t.total()) {
            best = Some((call, layout));
        }
    }
    best.map(|(c, l)| (l, c)).ok_or_else(|| {
        ImagingError::invalid(
            "epsilon",
            format!(
                "{:e} cannot be reached with kernel supports up to {max_w} in {} precision",
                req.epsilon,
                if req.double { "f64" } else { "f32" }
            ),
        )
    })
}

/// A w-stacking layout of `npix`² at 2 mrad cells (a wide field: n − 1 reaches −0.02
/// at 200²), for tests of the plane transforms.
#[cfg(test)]
pub(crate) fn wide_test_layout(npix: usize) -> Layout {
    use crate::coords::RaDec;
    let geom = ImageGeometry::square(npix, 2e-3, RaDec::from_degrees(0.0, -30.0), 1e8, 1e6)
        .expect("geometry");
    let data = DataExtent {
        nvis: 1000,
        w_min: 0.0,
        w_max: 300.0,
        uv_extent: 0.4,
    };
    let req = Request {
        epsilon: 1e-6,
        double: true,
        wstacking: true,
    };
    choose_layout(&geom, &data, &req).expect("layout")
}
