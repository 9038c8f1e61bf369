//! Least-squares fit of an elliptical Gaussian to the main lobe of a PSF, as CASA's
//! `fitpsf` and WSClean do: the pixels above [`MAIN_LOBE_LEVEL`] of the peak that are
//! connected to the centre, a Gaussian of peak 1 centred on the PSF centre, and the
//! quadratic form a·dx² + 2b·dx·dy + c·dy² of its exponent fitted by Levenberg–Marquardt
//! (Marquardt 1963) from a log-linear start (the weighted linear fit of −2 ln PSF).

use std::collections::VecDeque;

use crate::ImagingError;
use crate::image::Image;

use super::beam::{Beam, Quadratic};

/// Pixels above this fraction of the peak, connected to the centre, form the main lobe
/// that is fitted (CASA's 0.35).
pub const MAIN_LOBE_LEVEL: f64 = 0.35;

/// The centre must hold the image maximum to within this relative tolerance (f32 FITS
/// pixels round at 6e-8).
const PEAK_TOL: f64 = 1e-6;

const MAX_ITER: usize = 200;

/// A fitted pixel: offset from the centre and PSF value relative to the centre.
#[derive(Debug, Clone, Copy)]
struct Sample {
    dx: f64,
    dy: f64,
    v: f64,
}

/// Fits the restoring beam to `psf`, which must peak at pixel (npix_x/2, npix_y/2) (as
/// the gridder's PSF does); the fitted Gaussian has the peak value of that pixel.
///
/// Errors (naming `psf`): a shape that disagrees with the geometry, NaN or infinite
/// pixels, an empty PSF, a maximum away from the centre, a main lobe that reaches the
/// image edge (image too small or cell too coarse for the beam), or a main lobe narrower
/// than a pixel.
pub fn fit_psf_beam(psf: &Image) -> Result<Beam, ImagingError> {
    let data = &psf.data_yx;
    let (ny, nx) = data.dim();
    if (ny, nx) != (psf.geom.npix_y, psf.geom.npix_x) {
        return Err(ImagingError::ShapeMismatch {
            name: "psf".into(),
            expected: format!("{} x {} (geometry)", psf.geom.npix_x, psf.geom.npix_y),
            got: format!("{nx} x {ny}"),
        });
    }
    if !(psf.geom.cell.is_finite() && psf.geom.cell > 0.0) {
        return Err(ImagingError::invalid(
            "psf",
            format!("cell {} rad; must be positive", psf.geom.cell),
        ));
    }
    if nx < 3 || ny < 3 {
        return Err(ImagingError::invalid(
            "psf",
            format!("{nx} x {ny} pixels is too small to hold a main lobe"),
        ));
    }
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(ImagingError::NonFinite {
            name: "psf".into(),
            index: i,
        });
    }
    let (cx, cy) = (nx / 2, ny / 2);
    let centre = data[[cy, cx]];
    let (peak, px, py) = psf.peak();
    if peak <= 0.0 {
        return Err(ImagingError::invalid(
            "psf",
            "no positive pixel (an all-zero or negative image); a PSF peaks at its centre",
        ));
    }
    if centre < peak * (1.0 - PEAK_TOL) {
        return Err(ImagingError::invalid(
            "psf",
            format!(
                "its maximum {peak:.6} is at pixel (x={px}, y={py}), not at the centre \
                 (x={cx}, y={cy}), which holds {centre:.6}; a PSF must peak at its centre"
            ),
        ));
    }

    let samples = main_lobe(psf, cx, cy, centre)?;
    let start = log_linear(&samples).unwrap_or_else(|| circular_guess(samples.len()));
    let q = levenberg_marquardt(&samples, start);
    q.to_beam(psf.geom.cell)
        .filter(|b| b.validate().is_ok())
        .ok_or_else(|| {
            ImagingError::invalid(
                "psf",
                "its main lobe could not be fitted by an elliptical Gaussian",
            )
        })
}

/// The main lobe: pixels above [`MAIN_LOBE_LEVEL`]·centre 4-connected to the centre,
/// plus the 3×3 block around it (so an undersampled lobe still constrains a, b, c).
fn main_lobe(psf: &Image, cx: usize, cy: usize, centre: f64) -> Result<Vec<Sample>, ImagingError> {
    let data = &psf.data_yx;
    let (ny, nx) = data.dim();
    let level = MAIN_LOBE_LEVEL * centre;
    let mut seen = vec![false; nx * ny];
    let mut queue = VecDeque::from([(cx, cy)]);
    seen[cy * nx + cx] = true;
    let mut samples = Vec::new();
    let sample = |x: usize, y: usize| Sample {
        dx: x as f64 - cx as f64,
        dy: y as f64 - cy as f64,
        v: data[[y, x]] / centre,
    };
    while let Some((x, y)) = queue.pop_front() {
        if x == 0 || y == 0 || x == nx - 1 || y == ny - 1 {
            return Err(ImagingError::invalid(
                "psf",
                format!(
                    "its main lobe (pixels above {MAIN_LOBE_LEVEL} of the peak) reaches the \
                     image edge at pixel (x={x}, y={y}); the image is too small for the beam \
                     (too few pixels or too fine a cell)"
                ),
            ));
        }
        samples.push(sample(x, y));
        for (nx_, ny_) in [(x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)] {
            let k = ny_ * nx + nx_;
            if !seen[k] && data[[ny_, nx_]] > level {
                seen[k] = true;
                queue.push_back((nx_, ny_));
            }
        }
    }
    if samples.len() == 1 {
        return Err(ImagingError::invalid(
            "psf",
            format!(
                "its main lobe is a single pixel (no neighbour above {MAIN_LOBE_LEVEL} of the \
                 peak): the cell is too coarse to sample the beam"
            ),
        ));
    }
    for y in cy - 1..=cy + 1 {
        for x in cx - 1..=cx + 1 {
            if !seen[y * nx + x] {
                samples.push(sample(x, y));
            }
        }
    }
    Ok(samples)
}

/// Weighted linear least squares of −2 ln v = a dx² + 2b dx dy + c dy² over the samples
/// with v > 0.01 (weights v², the log's error propagated from an error in v).
fn log_linear(samples: &[Sample]) -> Option<Quadratic> {
    let mut n = [[0.0; 3]; 3];
    let mut r = [0.0; 3];
    for s in samples.iter().filter(|s| s.v > 0.01 && s.v < 1.0) {
        let basis = [s.dx * s.dx, 2.0 * s.dx * s.dy, s.dy * s.dy];
        let t = -2.0 * s.v.ln();
        let w = s.v * s.v;
        for i in 0..3 {
            r[i] += w * basis[i] * t;
            for j in 0..3 {
                n[i][j] += w * basis[i] * basis[j];
            }
        }
    }
    let p = solve3(n, r)?;
    let q = Quadratic {
        a: p[0],
        b: p[1],
        c: p[2],
    };
    q.is_positive_definite().then_some(q)
}

/// A circular Gaussian whose region above [`MAIN_LOBE_LEVEL`] covers `n` pixels:
/// π σ² · 2 ln(1/level) = n.
fn circular_guess(n: usize) -> Quadratic {
    let s2 = n.max(1) as f64 / (2.0 * std::f64::consts::PI * (1.0 / MAIN_LOBE_LEVEL).ln());
    Quadratic {
        a: 1.0 / s2,
        b: 0.0,
        c: 1.0 / s2,
    }
}

/// Sum of squared residuals Σ (G − v)², the normal matrix JᵀJ and the gradient Jᵀr of
/// the residuals r = G(dx, dy; a, b, c) − v.
fn normal_equations(samples: &[Sample], q: &Quadratic) -> (f64, [[f64; 3]; 3], [f64; 3]) {
    let mut cost = 0.0;
    let mut jtj = [[0.0; 3]; 3];
    let mut jtr = [0.0; 3];
    for s in samples {
        let g = q.gaussian(s.dx, s.dy);
        let r = g - s.v;
        let j = [
            -0.5 * g * s.dx * s.dx,
            -g * s.dx * s.dy,
            -0.5 * g * s.dy * s.dy,
        ];
        cost += r * r;
        for i in 0..3 {
            jtr[i] += j[i] * r;
            for k in 0..3 {
                jtj[i][k] += j[i] * j[k];
            }
        }
    }
    (cost, jtj, jtr)
}

fn cost(samples: &[Sample], q: &Quadratic) -> f64 {
    samples
        .iter()
        .map(|s| (q.gaussian(s.dx, s.dy) - s.v).powi(2))
        .sum()
}

/// Levenberg–Marquardt on (a, b, c), keeping the form positive definite; returns the
/// best form found.
fn levenberg_marquardt(samples: &[Sample], start: Quadratic) -> Quadratic {
    let mut q = start;
    let mut mu = 1e-3;
    let (mut c0, mut jtj, mut jtr) = normal_equations(samples, &q);
    for _ in 0..MAX_ITER {
        if c0 <= 1e-30 * samples.len() as f64 {
            break;
        }
        let mut improved = false;
        while mu < 1e12 {
            let mut m = jtj;
            for i in 0..3 {
                m[i][i] += mu * jtj[i][i].max(1e-300);
            }
            let Some(d) = solve3(m, [-jtr[0], -jtr[1], -jtr[2]]) else {
                mu *= 4.0;
                continue;
            };
            let trial = Quadratic {
                a: q.a + d[0],
                b: q.b + d[1],
                c: q.c + d[2],
            };
            if trial.is_positive_definite() {
                let c1 = cost(samples, &trial);
                if c1 < c0 {
                    let step = (d[0].abs() + d[1].abs() + d[2].abs())
                        / (q.a.abs() + q.b.abs() + q.c.abs());
                    let gain = (c0 - c1) / c0;
                    q = trial;
                    (c0, jtj, jtr) = normal_equations(samples, &q);
                    mu = (mu / 3.0).max(1e-12);
                    improved = step > 1e-14 && gain > 1e-15;
                    break;
                }
            }
            mu *= 4.0;
        }
        if !improved {
            break;
        }
    }
    q
}

/// Solves the 3×3 system m·x = r by Cramer's rule; `None` when (nearly) singular.
fn solve3(m: [[f64; 3]; 3], r: [f64; 3]) -> Option<[f64; 3]> {
    let det = |m: &[[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(&m);
    let scale = m.iter().flatten().map(|v| v.abs()).fold(0.0, f64::max);
    if !(d.is_finite() && d.abs() > 1e-14 * scale.powi(3)) {
        return None;
    }
    let mut x = [0.0; 3];
    for (k, xk) in x.iter_mut().enumerate() {
        let mut mk = m;
        for i in 0..3 {
            mk[i][k] = r[i];
        }
        *xk = det(&mk) / d;
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solve3_solves_and_refuses_singular_systems() {
        let m = [[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]];
        let x = [1.0, -2.0, 0.5];
        let r = [0, 1, 2].map(|i| (0..3).map(|j| m[i][j] * x[j]).sum::<f64>());
        let got = solve3(m, r).unwrap();
        for i in 0..3 {
            assert!((got[i] - x[i]).abs() < 1e-12);
        }
        assert!(solve3([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 0.0, 1.0]], r).is_none());
    }

    #[test]
    fn marquardt_recovers_a_form_from_a_poor_start() {
        let truth = Quadratic {
            a: 0.3,
            b: 0.08,
            c: 0.15,
        };
        let samples: Vec<Sample> = (-4..=4)
            .flat_map(|y| (-4..=4).map(move |x| (x as f64, y as f64)))
            .map(|(dx, dy)| Sample {
                dx,
                dy,
                v: truth.gaussian(dx, dy),
            })
            .collect();
        let q = levenberg_marquardt(&samples, circular_guess(20));
        assert!((q.a - truth.a).abs() < 1e-9, "{q:?}");
        assert!((q.b - truth.b).abs() < 1e-9, "{q:?}");
        assert!((q.c - truth.c).abs() < 1e-9, "{q:?}");
    }
}
