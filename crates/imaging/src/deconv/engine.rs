//! The minor-cycle engine shared by Hogbom, multi-scale CLEAN and MSMFS.
//!
//! It works on T Taylor-term residuals R_t and S scales (T = S = 1 is Hogbom 1974;
//! T = 1 is multi-scale CLEAN, Cornwell 2008; T > 1 is MS-MFS, Rau & Cornwell 2011,
//! A&A 532, A71, §2–3). For every scale s it keeps the scale-convolved residuals
//! R_{s,t} = K_s ⊛ R_t; the cross PSFs H^{s',s}_j = K_{s'} ⊛ K_s ⊛ PSF_j are precomputed
//! over a patch of half-width W (+ the two kernel half-sizes) by FFT.
//!
//! One iteration: pick the scale and pixel with the largest bias_s·|R_{s,0}| inside the
//! window and at least the kernel half-size from the image edge (maintained tile
//! maxima, [`super::tiles`]); solve the T × T Hessian system
//! A^s a = R_{s,·}(x), A^s_{tq} = H^{s,s}_{t+q}(0); add gain·a_t·K_s at x to model term
//! t; subtract gain·Σ_q a_q H^{s',s}_{t'+q} from every R_{s',t'} inside the patch only.
//!
//! Patch subtraction leaves the PSF beyond the patch unsubtracted (σ_out, the largest
//! exterior sidelobe, times the flux cleaned at each position), so the minor loop runs
//! in cycles in the manner of Clark (1980, A&A 89, 377). With E = σ_out × ‖F‖₂, where F
//! is the flux cleaned in the cycle per W × W cell (far sidelobes of nearby components
//! add coherently, those of distant ones do not), a cycle ends when the peak falls to 2 %
//! of its start, or E reaches a quarter of the peak, or peak + 2E falls below the stop
//! level; then every residual is recomputed exactly,
//! R_{s,t} = K_s ⊛ (D_t − Σ_q m_q ⊛ PSF_{t+q}), with real FFTs on a grid padded so that
//! the circular convolution equals the linear one on the image. Stopping criteria are
//! checked on these exact residuals, so the returned residual is dirty − model ⊛ PSF
//! (the PSF taken as zero beyond its image). When the patch covers the whole PSF no
//! cycles are needed and each subtraction is already exact.

use std::collections::HashMap;

use num_complex::{Complex32, Complex64};
use rayon::prelude::*;

use super::fft2::{Grid, to_f32};
use super::params::{CleanParams, StopReason};
use super::psf::{default_support, main_lobe_fwhm, sidelobe_beyond};
use super::scales;
use super::stats::robust_rms;
use super::tiles::{PeakTracker, TILE};
use crate::ImagingError;
use crate::sim::good_fft_size;

/// A cycle ends when the peak falls to this fraction of its start…
const CYCLE_FLOOR: f64 = 0.02;
/// …or when the bound on the unsubtracted sidelobes reaches this fraction of the peak.
const CYCLE_ACCURACY: f64 = 0.25;
/// Divergence: the peak exceeds this many times the initial peak (WSClean's default
/// divergence limit)…
const DIVERGE_FACTOR: f64 = 4.0;
/// …or rose in this many consecutive iterations.
const DIVERGE_RUN: usize = 100;
/// The auto-threshold noise level is re-measured every this many iterations.
const RMS_EVERY: usize = 500;
/// The robust RMS is measured on at most this many pixels (a regular subsample).
const RMS_SAMPLES: usize = 1 << 18;

/// The deconvolution problem in Taylor-term form (T = 1 for one frequency).
pub(crate) struct Problem<'a> {
    pub nx: usize,
    pub ny: usize,
    /// D_t, T images `[y, x]` row-major.
    pub dirty: Vec<Vec<f64>>,
    /// PSF_j, 2T − 1 images; PSF_0 peaks at its centre pixel.
    pub psf: Vec<Vec<f64>>,
    /// Scales in pixels, sorted and de-duplicated (`[0]` for Hogbom).
    pub scales: Vec<f64>,
    /// 1 where components are allowed, 0 elsewhere.
    pub mask: Vec<f64>,
    pub params: &'a CleanParams,
}

/// What the engine returns: T model and T residual terms.
pub(crate) struct Outcome {
    pub model: Vec<Vec<f64>>,
    pub residual: Vec<Vec<f64>>,
    pub iterations: usize,
    pub stop_reason: StopReason,
    pub initial_peak: f64,
    pub final_peak: f64,
}

/// A square patch of half-width `w`, `(2w + 1)²` row-major.
struct Patch {
    w: usize,
    data: Vec<f64>,
}

impl Patch {
    fn centre(&self) -> f64 {
        let n = 2 * self.w + 1;
        self.data[self.w * n + self.w]
    }
}

/// The FFT state for exact recomputation of the residuals, with its work buffers
/// (kept between cycles: fresh pages for every transform would cost more than it).
struct Sync {
    grid: Grid,
    /// Model transforms, T (only with T > 1: one term is transformed straight into
    /// `conv`).
    m_hat: Vec<Vec<Complex64>>,
    conv: Vec<Complex64>,
    work: Vec<Complex64>,
    /// PSF_j transforms, 2T − 1.
    psf_hat: Vec<Vec<Complex32>>,
    /// D_t transforms (only with more than one scale).
    dirty_hat: Vec<Vec<Complex32>>,
    /// Real transforms of the scale kernels, index s (empty for s = 0).
    kern_hat: Vec<Vec<f32>>,
}

struct Engine<'a> {
    p: Problem<'a>,
    nt: usize,
    /// Internal scales: index 0 is always the delta function (the plain residual).
    scales: Vec<f64>,
    selectable: Vec<bool>,
    bias: Vec<f64>,
    kernels: Vec<Vec<f64>>,
    khalf: Vec<usize>,
    /// patches[j][pair(s', s)].
    patches: Vec<Vec<Patch>>,
    /// Inverse Hessians, T × T row-major, per scale.
    ainv: Vec<Vec<f64>>,
    /// Peak of the plain-residual response to a unit component of scale s.
    resp: Vec<f64>,
    /// Largest exterior sidelobe beyond the PSF patch (relative to the peak).
    sigma_out: f64,
    /// Side of the cells over which cleaned flux is taken as coherent (the patch
    /// half-width).
    cell: usize,
    /// R_{s,t}: res[s][t].
    res: Vec<Vec<Vec<f64>>>,
    model: Vec<Vec<f64>>,
    trackers: Vec<PeakTracker>,
    sync: Option<Sync>,
    needs_cycles: bool,
    /// Threads of the pool the engine runs in (1: no pool, everything sequential).
    threads: usize,
}

/// Patch subtractions touching at least this many pixels are split over the pool's
/// threads by tile rows (smaller ones cost less than the hand-off).
const PAR_MIN_PIXELS: usize = 1 << 14;

/// Runs `f` on a rayon pool of `threads` threads (0 = one per core), or on the calling
/// thread when `threads` is 1, entering the caller's span there so that the phase spans
/// stay children of the task's (as the gridder does).
fn with_threads<R: Send>(
    threads: usize,
    f: impl FnOnce(usize) -> Result<R, ImagingError> + Send,
) -> Result<R, ImagingError> {
    if threads == 1 {
        return f(1);
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| ImagingError::Unsupported(format!("cannot start worker threads: {e}")))?;
    let n = pool.current_num_threads();
    let parent = tracing::Span::current();
    pool.install(move || parent.in_scope(|| f(n)))
}

fn pair(a: usize, b: usize) -> usize {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    hi * (hi + 1) / 2 + lo
}

/// Inverse of a small symmetric positive-definite matrix by Gauss–Jordan elimination;
/// `None` if it is (numerically) singular.
fn invert(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut m = a.to_vec();
    let mut inv = vec![0.0; n * n];
    for i in 0..n {
        inv[i * n + i] = 1.0;
    }
    let scale = (0..n).map(|i| a[i * n + i].abs()).fold(0.0, f64::max);
    for c in 0..n {
        let piv = (c..n).max_by(|&i, &j| m[i * n + c].abs().total_cmp(&m[j * n + c].abs()))?;
        if m[piv * n + c].abs().is_nan() || m[piv * n + c].abs() <= 1e-10 * scale {
            return None;
        }
        for k in 0..n {
            m.swap(c * n + k, piv * n + k);
            inv.swap(c * n + k, piv * n + k);
        }
        let d = m[c * n + c];
        for k in 0..n {
            m[c * n + k] /= d;
            inv[c * n + k] /= d;
        }
        for r in 0..n {
            if r != c {
                let f = m[r * n + c];
                for k in 0..n {
                    m[r * n + k] -= f * m[c * n + k];
                    inv[r * n + k] -= f * inv[c * n + k];
                }
            }
        }
    }
    Some(inv)
}

/// Cuts the centred PSF image into a `(2e + 1)²` array centred on its centre pixel
/// (zero beyond the image).
fn cut(psf: &[f64], nx: usize, ny: usize, e: usize) -> Vec<f64> {
    let n = 2 * e + 1;
    let (cx, cy) = ((nx / 2) as isize, (ny / 2) as isize);
    let mut out = vec![0.0; n * n];
    for j in 0..n {
        let y = cy + j as isize - e as isize;
        if y < 0 || y >= ny as isize {
            continue;
        }
        for i in 0..n {
            let x = cx + i as isize - e as isize;
            if x >= 0 && x < nx as isize {
                out[j * n + i] = psf[y as usize * nx + x as usize];
            }
        }
    }
    out
}

impl<'a> Engine<'a> {
    fn new(p: Problem<'a>, threads: usize) -> Result<Self, ImagingError> {
        let (nx, ny) = (p.nx, p.ny);
        let nt = p.dirty.len();
        let params = p.params;
        let mut sc = vec![0.0];
        sc.extend(p.scales.iter().copied().filter(|&a| a > 0.0));
        let mut selectable = vec![p.scales.contains(&0.0)];
        selectable.resize(sc.len(), true);
        let ns = sc.len();
        let kernels: Vec<Vec<f64>> = sc.iter().map(|&a| scales::kernel(a)).collect();
        let khalf: Vec<usize> = sc.iter().map(|&a| scales::half_size(a)).collect();
        let kmax = khalf.iter().copied().max().unwrap_or(0);

        let (cx, cy) = (nx / 2, ny / 2);
        let peak0 = p.psf[0][cy * nx + cx];
        let beyond = sidelobe_beyond(&p.psf[0], nx, ny, peak0);
        let rfull = nx.max(ny) / 2;
        let w = params
            .psf_support
            .unwrap_or_else(|| default_support(&beyond, nx, ny))
            .min(rfull);
        let needs_cycles = w < rfull;
        let sigma_out = beyond.get(w).copied().unwrap_or(0.0);
        let fwhm = main_lobe_fwhm(&p.psf[0], nx, ny, peak0);
        let bias = scales::bias(&sc, params.scale_bias, fwhm);
        tracing::debug!(
            psf_support = w,
            sigma_out,
            needs_cycles,
            beam_fwhm_px = fwhm,
            ?sc,
            ?bias,
            "deconvolution setup"
        );

        let patches = Self::make_patches(&p, &kernels, &khalf, w);
        // Hessians per scale.
        let mut ainv = Vec::with_capacity(ns);
        for s in 0..ns {
            let mut a = vec![0.0; nt * nt];
            for t in 0..nt {
                for q in 0..nt {
                    a[t * nt + q] = patches[t + q][pair(s, s)].centre();
                }
            }
            let singular = || {
                if nt == 1 {
                    ImagingError::invalid(
                        "scales",
                        format!(
                            "scale {} px: the scale-convolved PSF is not positive at its centre",
                            sc[s]
                        ),
                    )
                } else {
                    ImagingError::invalid(
                        "nmoment",
                        format!(
                            "{nt} Taylor terms are not constrained by these frequency windows \
                             (the Hessian of scale {} px is singular); use fewer terms or \
                             windows spread over more bandwidth",
                            sc[s]
                        ),
                    )
                }
            };
            if a[0].is_nan() || a[0] <= 0.0 {
                return Err(singular());
            }
            ainv.push(invert(&a, nt).ok_or_else(singular)?);
        }
        let resp: Vec<f64> = (0..ns).map(|s| patches[0][pair(0, s)].centre()).collect();

        let sync = if needs_cycles || ns > 1 {
            Some(Self::make_sync(&p, &kernels, &khalf, kmax, threads))
        } else {
            None
        };
        let res = vec![vec![vec![0.0; nx * ny]; nt]; ns];
        // A scale-s component must fit inside the image (WSClean's scale border), else
        // its clipped model would not match the cross PSFs subtracted for it.
        let trackers = khalf.iter().map(|&k| PeakTracker::new(nx, ny, k)).collect();
        Ok(Self {
            nt,
            scales: sc,
            selectable,
            bias,
            kernels,
            khalf,
            patches,
            ainv,
            resp,
            sigma_out,
            cell: w.max(1),
            res,
            model: vec![vec![0.0; nx * ny]; nt],
            trackers,
            sync,
            needs_cycles,
            threads,
            p,
        })
    }

    /// H^{s',s}_j over half-width w + k_s + k_{s'}, by FFT on a small grid (or cut
    /// directly from the PSF when there is only the delta scale).
    fn make_patches(
        p: &Problem,
        kernels: &[Vec<f64>],
        khalf: &[usize],
        w: usize,
    ) -> Vec<Vec<Patch>> {
        let (nx, ny) = (p.nx, p.ny);
        let ns = kernels.len();
        let kmax = khalf.iter().copied().max().unwrap_or(0);
        if kmax == 0 {
            return p
                .psf
                .iter()
                .map(|psf| {
                    vec![Patch {
                        w,
                        data: cut(psf, nx, ny, w),
                    }]
                })
                .collect();
        }
        let e = w + 4 * kmax;
        let q = good_fft_size(2 * w + 8 * kmax + 2);
        let g = Grid::new(q, q, q, q);
        let kh: Vec<Vec<Complex64>> = kernels
            .iter()
            .zip(khalf)
            .map(|(k, &h)| {
                let mut s = g.new_spectrum();
                g.forward(&mut s, g.centred(k, 2 * h + 1, 2 * h + 1));
                s
            })
            .collect();
        let norm = 1.0 / (q * q) as f64;
        let mut out = Vec::with_capacity(p.psf.len());
        let mut img = vec![0.0; q * q];
        let mut work = g.new_spectrum();
        for psf in &p.psf {
            let c = cut(psf, nx, ny, e);
            let mut ph = g.new_spectrum();
            g.forward(&mut ph, g.centred(&c, 2 * e + 1, 2 * e + 1));
            let mut per = Vec::with_capacity(ns * (ns + 1) / 2);
            for hi in 0..ns {
                for lo in 0..=hi {
                    for (i, wv) in work.iter_mut().enumerate() {
                        *wv = ph[i] * kh[hi][i] * kh[lo][i];
                    }
                    g.inverse(&mut work, &mut img, norm);
                    let pw = w + khalf[hi] + khalf[lo];
                    let n = 2 * pw + 1;
                    let mut data = vec![0.0; n * n];
                    for j in 0..n {
                        let gy = (j as isize - pw as isize).rem_euclid(q as isize) as usize;
                        for i in 0..n {
                            let gx = (i as isize - pw as isize).rem_euclid(q as isize) as usize;
                            data[j * n + i] = img[gy * q + gx];
                        }
                    }
                    debug_assert_eq!(per.len(), pair(lo, hi));
                    per.push(Patch { w: pw, data });
                }
            }
            out.push(per);
        }
        out
    }

    fn make_sync(
        p: &Problem,
        kernels: &[Vec<f64>],
        khalf: &[usize],
        kmax: usize,
        threads: usize,
    ) -> Sync {
        let (nx, ny) = (p.nx, p.ny);
        // Wrap-free for kernels of offsets −(n/2 + k)..n/2 − 1 + k on n pixels.
        let px = good_fft_size(nx + nx / 2 + kmax);
        let py = good_fft_size(ny + ny / 2 + kmax);
        let grid = Grid::new(nx, ny, px, py).with_threads(threads);
        let mut spec = grid.new_spectrum();
        let psf_hat = p
            .psf
            .iter()
            .map(|psf| {
                grid.forward(&mut spec, grid.centred(psf, nx, ny));
                to_f32(&spec)
            })
            .collect();
        let multi = kernels.len() > 1;
        let dirty_hat = if multi {
            p.dirty
                .iter()
                .map(|d| {
                    grid.forward(&mut spec, grid.corner(d));
                    to_f32(&spec)
                })
                .collect()
        } else {
            Vec::new()
        };
        let kern_hat = kernels
            .iter()
            .zip(khalf)
            .enumerate()
            .map(|(s, (k, &h))| {
                if s == 0 {
                    return Vec::new();
                }
                grid.forward(&mut spec, grid.centred(k, 2 * h + 1, 2 * h + 1));
                // A centred, point-symmetric kernel has a real transform.
                spec.iter().map(|c| c.re as f32).collect()
            })
            .collect();
        Sync {
            m_hat: vec![Vec::new(); p.dirty.len()],
            // The setup transform's buffer, reused.
            conv: spec,
            work: if multi {
                grid.new_spectrum()
            } else {
                Vec::new()
            },
            grid,
            psf_hat,
            dirty_hat,
            kern_hat,
        }
    }

    /// Recomputes every R_{s,t} exactly from the dirty terms and the model, and rebuilds
    /// the peak trackers.
    fn resync(&mut self) {
        let _span = tracing::debug_span!("deconv_resync").entered();
        let nt = self.nt;
        let ns = self.scales.len();
        match &mut self.sync {
            None => {
                // Only reached before the first iteration: R_{0,t} = D_t.
                for t in 0..nt {
                    self.res[0][t].copy_from_slice(&self.p.dirty[t]);
                }
            }
            Some(sy) => {
                let g = &sy.grid;
                let par = self.threads > 1;
                let norm = 1.0 / (g.px * g.py) as f64;
                let mut any_model = false;
                let mut has = vec![false; nt];
                for (q, m) in self.model.iter().enumerate() {
                    if m.iter().any(|v| *v != 0.0) {
                        has[q] = true;
                        any_model = true;
                        if nt > 1 {
                            let mh = &mut sy.m_hat[q];
                            if mh.is_empty() {
                                *mh = g.new_spectrum();
                            }
                            g.forward(mh, g.corner(m));
                        }
                    }
                }
                for t in 0..nt {
                    // conv = Σ_q m̂_q PSF̂_{t+q} (the sum from 0, as the terms add).
                    if nt == 1 {
                        if has[0] {
                            g.forward(&mut sy.conv, g.corner(&self.model[0]));
                            let ph = &sy.psf_hat[0];
                            let mul = |(c, p): (&mut Complex64, &Complex32)| {
                                *c = Complex64::default() + *c * widen(*p);
                            };
                            if par {
                                sy.conv.par_iter_mut().zip(ph.par_iter()).for_each(mul);
                            } else {
                                sy.conv.iter_mut().zip(ph).for_each(mul);
                            }
                        } else {
                            sy.conv.fill(Complex64::default());
                        }
                    } else {
                        sy.conv.fill(Complex64::default());
                        for q in (0..nt).filter(|&q| has[q]) {
                            let ph = &sy.psf_hat[t + q];
                            let mh = &sy.m_hat[q];
                            let acc = |((c, m), p): ((&mut Complex64, &Complex64), &Complex32)| {
                                *c += m * widen(*p);
                            };
                            if par {
                                sy.conv
                                    .par_iter_mut()
                                    .zip(mh.par_iter())
                                    .zip(ph.par_iter())
                                    .for_each(acc);
                            } else {
                                sy.conv.iter_mut().zip(mh).zip(ph).for_each(acc);
                            }
                        }
                    }
                    for s in 1..ns {
                        let kh = &sy.kern_hat[s];
                        let dh = &sy.dirty_hat[t];
                        let conv = &sy.conv;
                        let prod = |(i, wv): (usize, &mut Complex64)| {
                            *wv = (widen(dh[i]) - conv[i]) * kh[i] as f64;
                        };
                        if par {
                            sy.work.par_iter_mut().enumerate().for_each(prod);
                        } else {
                            sy.work.iter_mut().enumerate().for_each(prod);
                        }
                        g.inverse(&mut sy.work, &mut self.res[s][t], norm);
                    }
                    let plain = &mut self.res[0][t];
                    plain.copy_from_slice(&self.p.dirty[t]);
                    if any_model {
                        // R = D − (model ⊛ PSF), straight from the inverse transform.
                        g.inverse_with(&mut sy.conv, plain, |r, v| *r -= v * norm);
                    }
                }
            }
        }
        for s in 0..ns {
            self.trackers[s].rebuild(&self.res[s][0], &self.p.mask);
        }
    }

    /// Largest |R_{0,0}| inside the window.
    fn plain_peak(&self) -> f64 {
        self.trackers[0].best().0
    }

    /// The scale and pixel with the largest biased peak.
    fn select(&self) -> Option<(usize, usize)> {
        let mut best: Option<(f64, usize, usize)> = None;
        for s in 0..self.scales.len() {
            if !self.selectable[s] {
                continue;
            }
            let (v, i) = self.trackers[s].best();
            if v <= 0.0 {
                continue;
            }
            let score = v * self.bias[s];
            if best.is_none_or(|b| score > b.0) {
                best = Some((score, s, i));
            }
        }
        best.map(|(_, s, i)| (s, i))
    }

    /// Adds a component of amplitudes `amp` (per Taylor term) at scale `s`, pixel `idx`.
    fn add_component(&mut self, s: usize, idx: usize, amp: &[f64]) {
        let (nx, ny) = (self.p.nx, self.p.ny);
        let (x, y) = ((idx % nx) as isize, (idx / nx) as isize);
        // Model: amp_t × K_s at (x, y), clipped to the image.
        let k = self.khalf[s] as isize;
        let kn = 2 * k + 1;
        let kern = &self.kernels[s];
        for (t, m) in self.model.iter_mut().enumerate() {
            for j in 0..kn {
                let yy = y + j - k;
                if yy < 0 || yy >= ny as isize {
                    continue;
                }
                for i in 0..kn {
                    let xx = x + i - k;
                    if xx >= 0 && xx < nx as isize {
                        m[yy as usize * nx + xx as usize] += amp[t] * kern[(j * kn + i) as usize];
                    }
                }
            }
        }
        // Residuals: R_{s',t'} −= Σ_q amp_q H^{s',s}_{t'+q} over the patch.
        for s2 in 0..self.scales.len() {
            let pi = pair(s2, s);
            let w = self.patches[0][pi].w as isize;
            let n = (2 * w + 1) as usize;
            let (x0, x1) = (
                (x - w).max(0) as usize,
                ((x + w + 1).min(nx as isize)) as usize,
            );
            let (y0, y1) = (
                (y - w).max(0) as usize,
                ((y + w + 1).min(ny as isize)) as usize,
            );
            let hx0 = (x0 as isize - x + w) as usize;
            // Row yy of the image takes row hy of the patch.
            let hy0 = (y0 as isize - y + w) as usize;
            if self.threads > 1 && (x1 - x0) * (y1 - y0) >= PAR_MIN_PIXELS {
                self.subtract_par(s2, pi, amp, (x0, x1), (y0, y1), hx0, hy0);
                continue;
            }
            for t2 in 0..self.nt {
                let r = &mut self.res[s2][t2];
                for (q, &a) in amp.iter().enumerate() {
                    if a == 0.0 {
                        continue;
                    }
                    let h = &self.patches[t2 + q][pi].data;
                    subtract_rows(r, nx, h, n, a, (x0, x1), (y0, y1), hx0, hy0, 0);
                }
            }
            self.trackers[s2].update(&self.res[s2][0], &self.p.mask, x0, x1, y0, y1);
        }
    }

    /// The patch subtraction of [`Self::add_component`] for scale `s2` (pair index `pi`)
    /// over x0..x1 × y0..y1, split by tile rows over the pool's threads, each rescanning
    /// its own tile row afterwards. Every pixel takes the same subtractions in the same
    /// order as on one thread, so the result is the same bit for bit.
    #[allow(clippy::too_many_arguments)]
    fn subtract_par(
        &mut self,
        s2: usize,
        pi: usize,
        amp: &[f64],
        xs: (usize, usize),
        ys: (usize, usize),
        hx0: usize,
        hy0: usize,
    ) {
        let nx = self.p.nx;
        let band = TILE * nx;
        let (tx, ty) = PeakTracker::tile_span(xs.0, xs.1, ys.0, ys.1);
        // bands[i][t2]: the image rows of tile row ty.0 + i of R_{s2,t2}.
        let mut bands: Vec<Vec<&mut [f64]>> = (ty.0..ty.1).map(|_| Vec::new()).collect();
        for r in self.res[s2].iter_mut() {
            for (b, rows) in bands.iter_mut().zip(r[ty.0 * band..].chunks_mut(band)) {
                b.push(rows);
            }
        }
        let (dims, rows) = self.trackers[s2].rows_mut(ty);
        let (patches, mask) = (&self.patches, &self.p.mask);
        bands
            .into_par_iter()
            .zip(rows)
            .for_each(|(mut terms, mut row)| {
                let y_base = row.ty() * TILE;
                let yr = (ys.0.max(y_base), ys.1.min(y_base + TILE));
                for (t2, r) in terms.iter_mut().enumerate() {
                    for (q, &a) in amp.iter().enumerate() {
                        if a == 0.0 {
                            continue;
                        }
                        let h = &patches[t2 + q][pi];
                        let n = 2 * h.w + 1;
                        let hy = hy0 + (yr.0 - ys.0);
                        subtract_rows(r, nx, &h.data, n, a, xs, yr, hx0, hy, y_base);
                    }
                }
                row.rescan(&dims, terms[0], mask, tx);
            });
    }

    /// Robust RMS of the plain term-0 residual over the whole image (subsampled).
    fn noise(&self) -> f64 {
        let r = &self.res[0][0];
        let step = r.len().div_ceil(RMS_SAMPLES).max(1);
        let sample: Vec<f64> = r.iter().step_by(step).copied().collect();
        robust_rms(&sample)
    }

    /// The stop level and the criterion that sets it.
    fn stop_level(&self, initial: f64, rms: f64) -> (f64, StopReason) {
        let pr = self.p.params;
        let mut best = (pr.threshold, StopReason::Threshold);
        let frac = pr.fractional_threshold * initial;
        if frac > best.0 {
            best = (frac, StopReason::FractionalThreshold);
        }
        if let Some(a) = pr.auto_threshold
            && a * rms > best.0
        {
            best = (a * rms, StopReason::AutoThreshold);
        }
        best
    }

    fn run(mut self) -> Outcome {
        let pr = self.p.params;
        let nt = self.nt;
        self.resync();
        let initial = self.plain_peak();
        let finish = |e: Self, iterations, stop_reason, initial_peak| {
            let final_peak = e.plain_peak();
            let residual = e.res.into_iter().next().unwrap_or_default();
            Outcome {
                model: e.model,
                residual,
                iterations,
                stop_reason,
                initial_peak,
                final_peak,
            }
        };
        if initial == 0.0 {
            return finish(self, 0, StopReason::NothingToClean, 0.0);
        }
        let auto = pr.auto_threshold.is_some();
        let mut rms = if auto { self.noise() } else { 0.0 };
        let mut iters = 0usize;
        let mut amp = vec![0.0; nt];
        let mut rising = 0usize;
        let mut diverging = false;
        let mut cycles = 0usize;
        let reason = loop {
            let peak = self.plain_peak();
            let (level, why) = self.stop_level(initial, rms);
            if peak == 0.0 {
                break StopReason::NothingToClean;
            }
            if peak <= level {
                break why;
            }
            if diverging {
                break StopReason::Diverging;
            }
            if iters >= pr.niter {
                break StopReason::Niter;
            }
            // One cycle of patch subtractions.
            let floor = CYCLE_FLOOR * peak;
            // Flux cleaned per W × W cell in this cycle and the sum of its squares.
            let mut cleaned: HashMap<usize, f64> = HashMap::new();
            let mut cleaned_sq = 0.0f64;
            let mut done = 0usize;
            let mut last = peak;
            let mut level = level;
            while iters < pr.niter {
                let now = self.plain_peak();
                if self.needs_cycles {
                    // Deep enough for one cycle, or the unsubtracted sidelobes start to
                    // matter, or the stop level is reached even allowing for them.
                    let err = self.sigma_out * cleaned_sq.max(0.0).sqrt();
                    if now <= floor || err >= CYCLE_ACCURACY * now || now + 2.0 * err <= level {
                        break;
                    }
                } else if now <= level {
                    break;
                }
                rising = if now > last { rising + 1 } else { 0 };
                last = now;
                if now > DIVERGE_FACTOR * initial || rising >= DIVERGE_RUN {
                    diverging = true;
                    break;
                }
                let Some((s, idx)) = self.select() else {
                    break;
                };
                let ai = &self.ainv[s];
                for (t, a) in amp.iter_mut().enumerate() {
                    let mut v = 0.0;
                    for q in 0..nt {
                        v += ai[t * nt + q] * self.res[s][q][idx];
                    }
                    *a = pr.gain * v;
                }
                if !amp.iter().all(|a| a.is_finite()) {
                    diverging = true;
                    break;
                }
                self.add_component(s, idx, &amp);
                let cell =
                    (idx % self.p.nx) / self.cell + (idx / self.p.nx) / self.cell * self.p.nx;
                let f = cleaned.entry(cell).or_insert(0.0);
                let old = *f;
                *f += amp[0] * self.resp[s];
                cleaned_sq += *f * *f - old * old;
                iters += 1;
                done += 1;
                if auto && done.is_multiple_of(RMS_EVERY) {
                    rms = self.noise();
                    level = self.stop_level(initial, rms).0;
                }
            }
            if done > 0 && self.needs_cycles {
                let approx = self.plain_peak();
                self.resync();
                cycles += 1;
                tracing::debug!(
                    cycle = cycles,
                    iterations = done,
                    start_peak = peak,
                    approx_peak = approx,
                    exact_peak = self.plain_peak(),
                    sidelobe_bound = self.sigma_out * cleaned_sq.max(0.0).sqrt(),
                    "cycle"
                );
            }
            if auto {
                rms = self.noise();
            }
            if done == 0 && !diverging {
                // Nothing could be taken (should not happen: the peak is above every
                // floor after an exact resync); stop rather than loop.
                break if iters >= pr.niter {
                    StopReason::Niter
                } else {
                    StopReason::NothingToClean
                };
            }
        };
        tracing::debug!(iterations = iters, cycles, ?reason, "minor cycle done");
        finish(self, iters, reason, initial)
    }
}

/// r[yy, x] −= a·h[hy + yy − y0, hx0 + x − x0] for yy in y0..y1, x in x0..x1, where `r`
/// holds image rows (of `nx`) from row `y_base` on and `h` is an `n`-wide patch.
#[allow(clippy::too_many_arguments)]
#[inline]
fn subtract_rows(
    r: &mut [f64],
    nx: usize,
    h: &[f64],
    n: usize,
    a: f64,
    (x0, x1): (usize, usize),
    (y0, y1): (usize, usize),
    hx0: usize,
    hy0: usize,
    y_base: usize,
) {
    for yy in y0..y1 {
        let hy = hy0 + (yy - y0);
        let hrow = &h[hy * n + hx0..hy * n + hx0 + (x1 - x0)];
        let ro = (yy - y_base) * nx;
        let rrow = &mut r[ro + x0..ro + x1];
        for (rv, hv) in rrow.iter_mut().zip(hrow) {
            *rv -= a * hv;
        }
    }
}

/// A single-precision spectrum value in double precision.
#[inline]
fn widen(p: Complex32) -> Complex64 {
    Complex64::new(p.re as f64, p.im as f64)
}

/// Runs the minor cycle on `p`, on `p.params.threads` threads.
pub(crate) fn run(p: Problem) -> Result<Outcome, ImagingError> {
    let _span = tracing::info_span!("deconvolve", nx = p.nx, ny = p.ny).entered();
    with_threads(p.params.threads, |threads| {
        Ok(Engine::new(p, threads)?.run())
    })
}
