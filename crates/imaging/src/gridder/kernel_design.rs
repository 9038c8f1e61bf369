//! Numerical design of the ES kernel's shape, the generator behind
//! [`super::kernel_table`]: the worst-case aliasing error of a kernel on an oversampled
//! grid, estimated from the kernel's true Fourier transform, and the (β, e0) that
//! minimise it for a support W and oversampling factor σ (what ducc0's kernel database
//! holds; Barnett, Magland & af Klinteberg 2019 §4; Arras et al. 2021 §3.3).

use super::kernel::{EsKernel, FourierRule};

/// Alias orders summed explicitly (|m| ≤ `ALIASES`); the rest is bounded analytically.
pub const ALIASES: usize = 16;

/// Steps of the phase recurrence between exact restarts.
const REFRESH: usize = 8;

/// Image coordinates sampled on [0, 1/(2σ)] when looking for the worst one.
pub const IMAGE_SAMPLES: usize = 65;

/// Worst-case relative aliasing error of one dimension of gridding with kernel `k` on a
/// grid oversampled by `sigma`:
///
/// max over ξ ∈ [0, 1/(2σ)] of √(Σ_{m≠0} ψ̂(ξ + m)²) / ψ̂(ξ),
///
/// ξ being the image coordinate in cycles per grid cell (the image edge is at 1/(2σ)).
/// For a sample at a uniformly random position within a grid cell, the m-th alias of a
/// source at ξ reaches it with relative amplitude ψ̂(ξ + m)/ψ̂(ξ) and a phase that varies
/// with the position, so this is the RMS relative error of gridded samples (and, by
/// adjointness, of the image) for a source at the worst place in the field (Barnett et
/// al. 2019 §4). ψ̂ comes from [`FourierRule`] for |m| ≤ [`ALIASES`]; beyond, only the
/// edge step of the truncated kernel is accounted for (ψ̂ ~ e^{−β}/(π|ξ|)). Summing to
/// |m| ≤ 64 instead changes the result by under 0.1 % for errors above 1e-10 and by 2 %
/// at 1e-12; below ~1e-13 the estimate reaches its rounding floor.
pub fn aliasing_error(k: &EsKernel, sigma: f64) -> f64 {
    aliasing_profile(k, sigma, IMAGE_SAMPLES)
        .into_iter()
        .fold(0.0, f64::max)
}

/// The error of [`aliasing_error`] at `n` equispaced image coordinates on [0, 1/(2σ)].
pub fn aliasing_profile(k: &EsKernel, sigma: f64, n: usize) -> Vec<f64> {
    aliasing_profile_with(k, sigma, n, ALIASES)
}

/// [`aliasing_profile`] summing alias orders |m| ≤ `aliases` (at least 1) explicitly.
pub fn aliasing_profile_with(k: &EsKernel, sigma: f64, n: usize, aliases: usize) -> Vec<f64> {
    assert!(aliases >= 1, "at least the first alias on each side");
    let m_max = aliases as i64;
    let rule = FourierRule::new(k, m_max as f64 + 0.5);
    let edge = (-k.beta).exp();
    (0..n)
        .map(|i| {
            let xi = 0.5 / sigma * i as f64 / (n - 1).max(1) as f64;
            // ψ̂(xi + m) for m = −M..=M by a rotation per node: e^{2πi x (xi + m)}.
            let mut sums = vec![0.0; 2 * aliases + 1];
            for (&x, &g) in rule.x.iter().zip(&rule.g) {
                let t = std::f64::consts::TAU * x;
                let (s0, c0) = (t * (xi - m_max as f64)).sin_cos();
                let (ss, cs) = t.sin_cos();
                let (mut c, mut s) = (c0, s0);
                for (i, v) in sums.iter_mut().enumerate() {
                    if i > 0 && i % REFRESH == 0 {
                        // Restart the recurrence exactly: its rounding would otherwise
                        // grow with the number of steps and swamp the tiniest aliases.
                        (s, c) = (t * (xi + (i as i64 - m_max) as f64)).sin_cos();
                    }
                    *v += g * c;
                    (c, s) = (c * cs - s * ss, s * cs + c * ss);
                }
            }
            let main = sums[aliases];
            let alias: f64 = sums
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != aliases)
                .map(|(_, v)| v * v)
                .sum();
            // Σ_{|m|>M} (e^{−β}/(π(ξ+m)))² ≤ 2 e^{−2β}/(π² (M − ½)).
            let tail = 2.0 * edge * edge / (std::f64::consts::PI.powi(2) * (m_max as f64 - 0.5));
            (alias + tail).sqrt() / main.abs()
        })
        .collect()
}

/// Image samples and alias orders of the estimate [`design`] searches with.
const SEARCH_SAMPLES: usize = 65;
const SEARCH_ALIASES: usize = 4;

/// Rounding gain of kernel `k` at oversampling `sigma`, per dimension: ‖ψ‖₂/ψ̂(1/(2σ)).
///
/// A relative perturbation δ of the grid values (rounding in the FFT, the accumulation,
/// the w-screens) reaches a degridded sample through the kernel footprint with RMS
/// δ·|G|·‖ψ‖₂ per dimension, while the signal of a source at the edge of the field
/// arrives with |G|·ψ̂(1/(2σ)); the same holds for the adjoint. So rounding of size u
/// becomes a relative error of about u times this gain to the power of the number of
/// dimensions for a source at the edge, which the parameter choice must allow for in f32.
/// ‖ψ‖₂² = ∫ψ² is ψ̂(0) of the kernel with 2β (ψ² = exp(2β(s^e0 − 1))).
pub fn rounding_gain(k: &EsKernel, sigma: f64) -> f64 {
    let squared = EsKernel {
        beta: 2.0 * k.beta,
        ..*k
    };
    squared.fourier(0.0).sqrt() / k.fourier(0.5 / sigma)
}

/// One designed kernel: support, oversampling factor, shape, its [`aliasing_error`] and
/// its [`rounding_gain`] at that oversampling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KernelDesign {
    pub support: usize,
    pub sigma: f64,
    pub beta: f64,
    pub e0: f64,
    /// Worst-case relative aliasing error per dimension.
    pub error: f64,
    /// [`rounding_gain`] per dimension.
    pub gain: f64,
}

impl KernelDesign {
    /// A table row (what the generated [`super::kernel_table`] is made of).
    pub const fn row(
        support: usize,
        sigma: f64,
        beta: f64,
        e0: f64,
        error: f64,
        gain: f64,
    ) -> Self {
        Self {
            support,
            sigma,
            beta,
            e0,
            error,
            gain,
        }
    }

    /// The kernel itself.
    pub fn kernel(&self) -> EsKernel {
        EsKernel {
            support: self.support,
            beta: self.beta,
            e0: self.e0,
        }
    }
}

/// Finds the (β, e0) minimising [`aliasing_error`] for support `support` and oversampling
/// `sigma`, by Nelder–Mead on (β/W, e0) and log error, restarted until it stops improving.
/// The start is Barnett et al.'s β = 0.98·π·W·(1 − 1/(2σ)) (§4.1) and e0 = ½.
pub fn design(support: usize, sigma: f64) -> KernelDesign {
    let w = support as f64;
    let objective = |p: [f64; 2]| -> f64 {
        let (b, e0) = (p[0], p[1]);
        if !(0.5..=3.5).contains(&b) || !(0.3..=1.0).contains(&e0) {
            return f64::INFINITY;
        }
        let k = EsKernel {
            support,
            beta: b * w,
            e0,
        };
        // A cheaper estimate while searching (fewer image points and explicit aliases;
        // the far aliases only matter at the 1e-14 rounding floor), the full one after.
        let e = aliasing_profile_with(&k, sigma, SEARCH_SAMPLES, SEARCH_ALIASES);
        e.into_iter().fold(0.0, f64::max).ln()
    };
    let mut best = [0.98 * std::f64::consts::PI * (1.0 - 0.5 / sigma), 0.5];
    let mut best_f = objective(best);
    for _ in 0..4 {
        let (p, f) = nelder_mead(&objective, best, [0.08, 0.03], 1e-7, 300);
        let improved = f < best_f - 1e-6;
        if f < best_f {
            (best, best_f) = (p, f);
        }
        if !improved {
            break;
        }
    }
    let mut d = KernelDesign {
        support,
        sigma,
        beta: best[0] * w,
        e0: best[1],
        error: 0.0,
        gain: 0.0,
    };
    d.error = aliasing_error(&d.kernel(), sigma);
    d.gain = rounding_gain(&d.kernel(), sigma);
    d
}

/// Minimises `f` over the plane from `start` with a simplex of steps `step`, until the
/// simplex's values agree to `ftol` or `max_eval` evaluations (Nelder & Mead 1965, with
/// the standard coefficients 1, 2, ½, ½).
fn nelder_mead(
    f: &impl Fn([f64; 2]) -> f64,
    start: [f64; 2],
    step: [f64; 2],
    ftol: f64,
    max_eval: usize,
) -> ([f64; 2], f64) {
    let mut pts = [
        start,
        [start[0] + step[0], start[1]],
        [start[0], start[1] + step[1]],
    ];
    let mut val = pts.map(f);
    let mut evals = 3;
    let comb =
        |a: [f64; 2], b: [f64; 2], t: f64| [a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])];
    while evals < max_eval {
        let mut order = [0, 1, 2];
        order.sort_by(|&i, &j| val[i].total_cmp(&val[j]));
        pts = order.map(|i| pts[i]);
        val = order.map(|i| val[i]);
        if (val[2] - val[0]).abs() <= ftol {
            break;
        }
        let centroid = comb(pts[0], pts[1], 0.5);
        let refl = comb(centroid, pts[2], -1.0);
        let fr = f(refl);
        evals += 1;
        if fr < val[0] {
            let exp = comb(centroid, pts[2], -2.0);
            let fe = f(exp);
            evals += 1;
            (pts[2], val[2]) = if fe < fr { (exp, fe) } else { (refl, fr) };
        } else if fr < val[1] {
            (pts[2], val[2]) = (refl, fr);
        } else {
            let con = if fr < val[2] {
                comb(centroid, refl, 0.5)
            } else {
                comb(centroid, pts[2], 0.5)
            };
            let fc = f(con);
            evals += 1;
            if fc < val[2].min(fr) {
                (pts[2], val[2]) = (con, fc);
            } else {
                for i in 1..3 {
                    pts[i] = comb(pts[0], pts[i], 0.5);
                    val[i] = f(pts[i]);
                }
                evals += 2;
            }
        }
    }
    let i = (0..3)
        .min_by(|&i, &j| val[i].total_cmp(&val[j]))
        .unwrap_or(0);
    (pts[i], val[i])
}
