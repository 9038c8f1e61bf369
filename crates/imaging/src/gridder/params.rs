//! Choosing the gridding parameters from the requested accuracy: for each candidate
//! oversampling factor σ the smallest kernel support W that meets `epsilon` is taken,
//! and the (σ, W) pair with the lowest estimated run time wins (the cost-model approach
//! of ducc0's wgridder, Arras et al. 2021 §3.3).

use super::fft_size::good_fft_size;
use super::kernel::EsKernel;
use super::layout::Layout;
use crate::ImagingError;
use crate::image::ImageGeometry;

/// Smallest and largest kernel supports the gridder implements.
pub const MIN_SUPPORT: usize = 4;
pub const MAX_SUPPORT: usize = 16;
/// In f32 the monomial kernel polynomials of wider supports lose accuracy to
/// cancellation, so single precision uses W ≤ 8 (enough for epsilon ≥ 1e-5).
pub const MAX_SUPPORT_F32: usize = 8;

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

/// Per-dimension aliasing error of the ES kernel with support `w` and oversampling σ,
/// the empirical law of Barnett et al. 2019 (§4.2), ε ≈ exp(−π W √(1 − 1/σ)), scaled by
/// a factor calibrated against the exact DFT in this crate's accuracy tests.
pub fn kernel_error(w: usize, sigma: f64) -> f64 {
    ERROR_SCALE * (-std::f64::consts::PI * w as f64 * (1.0 - 1.0 / sigma).sqrt()).exp()
}

/// Calibration factor of [`kernel_error`], set by the worst case of
/// `tests/gridder_accuracy.rs`: predicting a single source in the image corner, where the
/// grid correction is largest. With 15 that case missed epsilon 1e-9 by 16 %; with 30 the
/// worst case over all tests and epsilons is 0.42 ε.
const ERROR_SCALE: f64 = 30.0;

/// Shape parameter β for support W and oversampling σ (Barnett et al. 2019, §4.1:
/// β = γ π W (1 − 1/(2σ)), γ ≈ 0.98).
pub fn kernel_beta(w: usize, sigma: f64) -> f64 {
    0.98 * std::f64::consts::PI * w as f64 * (1.0 - 0.5 / sigma)
}

/// Costs (seconds per unit) of the gridding passes, single-threaded, fitted to the phase
/// times `aperture bench kernels --json` reports on the reference machine (1.44 M samples,
/// 1024²): f64 W = 8, 1750², 65 planes: grid 0.96 s, FFT + screen 1.22 s; f32 W = 7,
/// 1440², 54 planes: grid 0.57 s, FFT + screen 0.38 s. Only their ratios steer the choice.
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
    let ndim = if req.wstacking { 3.0 } else { 2.0 };
    let mut best: Option<(f64, Layout)> = None;
    for step in 0..=28 {
        let sigma = 1.15 + 0.05 * step as f64;
        let max_w = if req.double {
            MAX_SUPPORT
        } else {
            MAX_SUPPORT_F32
        };
        let Some(w) = (MIN_SUPPORT..=max_w).find(|&w| ndim * kernel_error(w, sigma) <= req.epsilon)
        else {
            continue;
        };
        let nu = good_fft_size(((geom.npix_x as f64 * sigma).ceil() as usize).max(2 * w + 16));
        let nv = good_fft_size(((geom.npix_y as f64 * sigma).ceil() as usize).max(2 * w + 16));
        let sig_eff = (nu as f64 / geom.npix_x as f64).min(nv as f64 / geom.npix_y as f64);
        let (nplanes, dw, w0) = if req.wstacking {
            let dw = 1.0 / (sig_eff * 2.0 * c_half);
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
            * (rows * (nu * nv) as f64 * (nv as f64).log2()
                + (geom.npix_y * nu) as f64 * (nu as f64).log2());
        let screen = if req.wstacking {
            cost.screen_per_pixel * (geom.npix_x * geom.npix_y) as f64
        } else {
            0.0
        };
        let total = grid + nplanes as f64 * (fft_plane + screen);
        let layout = Layout {
            npix_x: geom.npix_x,
            npix_y: geom.npix_y,
            cell: geom.cell,
            nu,
            nv,
            sigma: sig_eff,
            kernel: EsKernel {
                support: w,
                beta: kernel_beta(w, sig_eff),
            },
            wstacking: req.wstacking,
            nplanes,
            w0,
            dw,
            c_half,
        };
        if best.as_ref().is_none_or(|(t, _)| total < *t) {
            best = Some((total, layout));
        }
    }
    best.map(|(t, l)| (l, t)).ok_or_else(|| {
        ImagingError::invalid(
            "epsilon",
            format!(
                "{:e} cannot be reached with kernel supports up to {MAX_SUPPORT}",
                req.epsilon
            ),
        )
    })
}
