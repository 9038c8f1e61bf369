//! The exponential-of-semicircle (ES) gridding kernel (Barnett, Magland & af Klinteberg
//! 2019, eq. 1.8) in the two-parameter form of ducc0's kernel database,
//! ψ(x) = exp(β((1 − (2x/W)²)^e0 − 1)) on |x| ≤ W/2 grid cells (e0 = ½ is Barnett's
//! kernel), its piecewise-polynomial approximation for fast evaluation (as in ducc0's
//! `HornerKernel`), and its Fourier transform ψ̂ for the grid correction.

use num_complex::Complex64;

/// The ES kernel of support `support` cells and shape parameters `beta` and `e0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EsKernel {
    pub support: usize,
    pub beta: f64,
    /// Exponent of the semicircle; ½ gives the one-parameter kernel of Barnett et al.
    pub e0: f64,
}

impl EsKernel {
    /// ψ(x) for x in grid cells; zero outside |x| ≤ W/2.
    pub fn eval(&self, x: f64) -> f64 {
        let z = 2.0 * x / self.support as f64;
        if z.abs() >= 1.0 {
            return 0.0;
        }
        self.eval_semicircle((1.0 - z) * (1.0 + z))
    }

    /// ψ as a function of s = 1 − (2x/W)² ∈ [0, 1].
    #[inline]
    fn eval_semicircle(&self, s: f64) -> f64 {
        let p = if self.e0 == 0.5 {
            s.sqrt()
        } else {
            s.powf(self.e0)
        };
        (self.beta * (p - 1.0)).exp()
    }

    /// ψ̂(ξ) = ∫ ψ(x) e^{−2πixξ} dx (real and even), by Gauss–Legendre quadrature.
    pub fn fourier(&self, xi: f64) -> f64 {
        FourierRule::new(self, xi.abs()).eval(xi)
    }

    /// A reusable evaluator of ψ̂ on |ξ| ≤ 1 (the quadrature rule is computed once).
    pub fn fourier_fn(&self) -> impl Fn(f64) -> f64 + '_ {
        let rule = FourierRule::new(self, 1.0);
        move |xi| rule.eval(xi)
    }

    /// A fast evaluator of ψ̂ on [0, xi_max] (Chebyshev interpolation in ξ², since ψ̂
    /// is even and entire), accurate to ~1e-14 relative to ψ̂(0).
    pub fn fourier_table(&self, xi_max: f64) -> ChebyshevFn {
        let rule = FourierRule::new(self, xi_max);
        ChebyshevFn::fit(|s| rule.eval(s.max(0.0).sqrt()), 0.0, xi_max * xi_max, 48)
    }
}

/// A quadrature rule for ψ̂(ξ) = 2∫₀^{W/2} ψ(x) cos(2πxξ) dx, accurate for |ξ| up to the
/// `xi_max` it was built for. The substitution x = (W/2)·sin θ removes the square-root
/// edge of the semicircle (ψ becomes smooth in θ up to a (π/2 − θ)^{2·e0} term), and
/// the θ range is split into panels of 16-point Gauss–Legendre, enough of them to follow
/// cos(2πxξ).
#[derive(Debug, Clone)]
pub struct FourierRule {
    /// Nodes x_j in grid cells.
    pub x: Vec<f64>,
    /// Weights including ψ(x_j), the Jacobian and the factor 2 of the even integrand.
    pub g: Vec<f64>,
}

impl FourierRule {
    pub fn new(k: &EsKernel, xi_max: f64) -> Self {
        let a = k.support as f64 / 2.0;
        let gl = gauss_legendre(16);
        // Two periods of cos(2πxξ) per panel at most (16 nodes follow that to 1e-16),
        // and at least 6 panels for the kernel's own shape.
        let npanel = ((a * xi_max).ceil() as usize).max(6);
        let h = std::f64::consts::FRAC_PI_2 / npanel as f64;
        let mut x = Vec::with_capacity(npanel * gl.len());
        let mut g = Vec::with_capacity(npanel * gl.len());
        for p in 0..npanel {
            let t0 = p as f64 * h;
            for &(t, w) in &gl {
                let theta = t0 + 0.5 * h * (t + 1.0);
                let (s, c) = theta.sin_cos();
                // 1 − sin²θ = cos²θ, computed without cancellation.
                let psi = k.eval_semicircle(c * c);
                x.push(a * s);
                g.push(2.0 * 0.5 * h * w * a * c * psi);
            }
        }
        Self { x, g }
    }

    /// ψ̂(ξ).
    pub fn eval(&self, xi: f64) -> f64 {
        let f = std::f64::consts::TAU * xi;
        self.x
            .iter()
            .zip(&self.g)
            .map(|(&x, &g)| g * (f * x).cos())
            .sum()
    }
}

/// Gauss–Legendre nodes and weights on [−1, 1] (Newton iteration on P_n).
pub fn gauss_legendre(n: usize) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut dp = 1.0;
        for _ in 0..100 {
            let (mut p0, mut p1) = (1.0, x);
            for k in 2..=n {
                let p2 = ((2 * k - 1) as f64 * x * p1 - (k - 1) as f64 * p0) / k as f64;
                p0 = p1;
                p1 = p2;
            }
            dp = n as f64 * (x * p1 - p0) / (x * x - 1.0);
            let dx = p1 / dp;
            x -= dx;
            if dx.abs() < 1e-16 {
                break;
            }
        }
        out.push((x, 2.0 / ((1.0 - x * x) * dp * dp)));
    }
    out
}

/// A function on [a, b] represented by its Chebyshev interpolant (Clenshaw evaluation).
#[derive(Debug, Clone)]
pub struct ChebyshevFn {
    a: f64,
    b: f64,
    coef: Vec<f64>,
}

impl ChebyshevFn {
    /// Interpolates `f` at `n` Chebyshev points of the first kind on [a, b].
    pub fn fit(f: impl Fn(f64) -> f64, a: f64, b: f64, n: usize) -> Self {
        let nodes: Vec<f64> = (0..n)
            .map(|k| (std::f64::consts::PI * (k as f64 + 0.5) / n as f64).cos())
            .collect();
        let vals: Vec<f64> = nodes
            .iter()
            .map(|&z| f(0.5 * (a + b) + 0.5 * (b - a) * z))
            .collect();
        let coef = (0..n)
            .map(|j| {
                let s: f64 = (0..n)
                    .map(|k| {
                        vals[k]
                            * (std::f64::consts::PI * j as f64 * (k as f64 + 0.5) / n as f64).cos()
                    })
                    .sum();
                s * if j == 0 { 1.0 } else { 2.0 } / n as f64
            })
            .collect();
        Self { a, b, coef }
    }

    /// Evaluates the interpolant at x (extrapolates mildly outside [a, b]).
    pub fn eval(&self, x: f64) -> f64 {
        let z = (2.0 * x - self.a - self.b) / (self.b - self.a);
        let (mut b1, mut b2) = (0.0, 0.0);
        for &c in self.coef.iter().skip(1).rev() {
            let t = 2.0 * z * b1 - b2 + c;
            b2 = b1;
            b1 = t;
        }
        z * b1 - b2 + self.coef[0]
    }
}

/// Monomial coefficients (in z ∈ [−1, 1]) of the degree-`deg` Chebyshev interpolant
/// of `f` on [−1, 1]; index = power.
fn monomial_fit(f: impl Fn(f64) -> f64, deg: usize) -> Vec<f64> {
    let n = deg + 1;
    let cheb = ChebyshevFn::fit(f, -1.0, 1.0, n);
    // Convert Σ c_j T_j(z) to monomials with the T recurrence.
    let mut out = vec![0.0; n];
    let mut t_prev = vec![0.0; n];
    let mut t_cur = vec![0.0; n];
    t_prev[0] = 1.0; // T0
    if n > 1 {
        t_cur[1] = 1.0; // T1
    }
    for (j, &c) in cheb.coef.iter().enumerate() {
        let t = match j {
            0 => &t_prev,
            _ => &t_cur,
        };
        for p in 0..n {
            out[p] += c * t[p];
        }
        if j >= 1 && j + 1 < n {
            let mut t_next = vec![0.0; n];
            for p in 0..n {
                if p > 0 {
                    t_next[p] += 2.0 * t_cur[p - 1];
                }
                t_next[p] -= t_prev[p];
            }
            t_prev = std::mem::replace(&mut t_cur, t_next);
        }
    }
    out
}

/// The kernel split into its `W` unit-width pieces, each a polynomial in the
/// fractional grid offset, evaluated with Horner's scheme (ducc0's `HornerKernel`).
///
/// For a sample at grid coordinate g, with i0 = ⌈g − W/2⌉ and δ = i0 − g + W/2 ∈ [0, 1),
/// piece i gives K(W/2 − δ − i), the kernel weight of grid cell i0 + i.
/// `coef[d * W + i]` is the coefficient of z^d, z = 2δ − 1, for piece i.
#[derive(Debug, Clone)]
pub struct PiecewiseKernel {
    pub support: usize,
    pub degree: usize,
    /// Real parts, `[degree + 1][support]`.
    pub coef_re: Vec<f64>,
    /// Imaginary parts (all zero for a real kernel).
    pub coef_im: Vec<f64>,
    /// Largest deviation from the exact kernel seen on a dense test grid.
    pub max_fit_error: f64,
}

impl PiecewiseKernel {
    /// Fits the complex kernel K(t) = ψ(t)·e^{iαt} (α = 0 gives the real ES kernel)
    /// with the smallest degree whose error is below `tol` (capped at 24).
    pub fn fit(es: &EsKernel, alpha: f64, tol: f64) -> Self {
        let w = es.support;
        // The kernel is cut off at e^{−β} with a square-root edge no polynomial follows
        // more closely; asking for more only raises the degree.
        let tol = tol.max(2.0 * (-es.beta).exp());
        let kfun = |t: f64| -> Complex64 { Complex64::from_polar(es.eval(t), alpha * t) };
        let mut degree = (w + 1).max(4);
        loop {
            let mut coef_re = vec![0.0; (degree + 1) * w];
            let mut coef_im = vec![0.0; (degree + 1) * w];
            for i in 0..w {
                let piece = |z: f64| {
                    let delta = 0.5 * (z + 1.0);
                    kfun(w as f64 / 2.0 - delta - i as f64)
                };
                let re = monomial_fit(|z| piece(z).re, degree);
                let im = monomial_fit(|z| piece(z).im, degree);
                for d in 0..=degree {
                    coef_re[d * w + i] = re[d];
                    coef_im[d * w + i] = im[d];
                }
            }
            let mut k = Self {
                support: w,
                degree,
                coef_re,
                coef_im,
                max_fit_error: 0.0,
            };
            let mut err = 0.0f64;
            for s in 0..=256 {
                let delta = s as f64 / 256.0 * 0.999_999;
                for i in 0..w {
                    let exact = kfun(w as f64 / 2.0 - delta - i as f64);
                    err = err.max((k.eval_piece(i, delta) - exact).norm());
                }
            }
            k.max_fit_error = err;
            if err <= tol || degree >= 24 {
                return k;
            }
            degree += 1;
        }
    }

    /// Evaluates piece `i` at offset δ (slow path, for tests and the w direction).
    pub fn eval_piece(&self, i: usize, delta: f64) -> Complex64 {
        let z = 2.0 * delta - 1.0;
        let (mut re, mut im) = (0.0, 0.0);
        for d in (0..=self.degree).rev() {
            re = re * z + self.coef_re[d * self.support + i];
            im = im * z + self.coef_im[d * self.support + i];
        }
        Complex64::new(re, im)
    }
}

/// A complex piecewise kernel rearranged for fast evaluation of one piece at a time (the
/// w kernel, evaluated per sample and plane): per piece, the coefficients in powers of
/// z² of the even and odd parts, p(z) = E(z²) + z·O(z²), highest power first, as
/// [Re E, Im E, Re O, Im O]. The four Horner chains are independent, so they run side
/// by side (one vector register) at half the depth of one chain in z.
#[derive(Debug, Clone)]
pub struct PieceEvaluator {
    support: usize,
    /// Coefficient quadruples per piece.
    pairs: usize,
    coef: Vec<[f64; 4]>,
}

impl PieceEvaluator {
    pub fn new(k: &PiecewiseKernel) -> Self {
        let pairs = (k.degree + 2) / 2;
        let mut coef = vec![[0.0; 4]; pairs * k.support];
        for i in 0..k.support {
            for q in 0..pairs {
                // Highest power of z² first.
                let p = pairs - 1 - q;
                let get = |d: usize, c: &[f64]| {
                    if d <= k.degree {
                        c[d * k.support + i]
                    } else {
                        0.0
                    }
                };
                coef[i * pairs + q] = [
                    get(2 * p, &k.coef_re),
                    get(2 * p, &k.coef_im),
                    get(2 * p + 1, &k.coef_re),
                    get(2 * p + 1, &k.coef_im),
                ];
            }
        }
        Self {
            support: k.support,
            pairs,
            coef,
        }
    }

    /// Piece `i` at z = 2δ − 1 (the same value as [`PiecewiseKernel::eval_piece`] at δ).
    #[inline(always)]
    pub fn eval(&self, i: usize, z: f64) -> Complex64 {
        assert!(i < self.support, "piece {i} of {}", self.support);
        let c = &self.coef[i * self.pairs..(i + 1) * self.pairs];
        let z2 = z * z;
        let mut acc = [0.0f64; 4];
        for q in c {
            for (a, &b) in acc.iter_mut().zip(q) {
                *a = *a * z2 + b;
            }
        }
        Complex64::new(acc[0] + z * acc[2], acc[1] + z * acc[3])
    }

    /// [`Self::eval`] with fused multiply-adds: for code compiled with FMA enabled
    /// (elsewhere each fused operation is a slow library call).
    #[inline(always)]
    pub fn eval_fused(&self, i: usize, z: f64) -> Complex64 {
        assert!(i < self.support, "piece {i} of {}", self.support);
        let c = &self.coef[i * self.pairs..(i + 1) * self.pairs];
        let z2 = z * z;
        let mut acc = [0.0f64; 4];
        for q in c {
            for (a, &b) in acc.iter_mut().zip(q) {
                *a = a.mul_add(z2, b);
            }
        }
        Complex64::new(acc[2].mul_add(z, acc[0]), acc[3].mul_add(z, acc[1]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauss_legendre_integrates_polynomials_exactly() {
        let q = gauss_legendre(10);
        let s: f64 = q.iter().map(|&(x, w)| w * x.powi(18)).sum();
        assert!((s - 2.0 / 19.0).abs() < 1e-14);
    }

    #[test]
    fn fourier_of_kernel_matches_brute_force_sum() {
        let k = EsKernel {
            support: 8,
            beta: 18.0,
            e0: 0.5,
        };
        brute_force_check(&k, &[0.0, 0.1, 0.33]);
        // The two-parameter kernel, and far out where ψ̂ is at the e^{−β} floor (what the
        // aliasing estimate of `kernel_design` sums).
        let k = EsKernel {
            support: 8,
            beta: 15.0,
            e0: 0.54,
        };
        brute_force_check(&k, &[0.0, 0.2, 0.45, 1.3, 3.7]);
    }

    fn brute_force_check(k: &EsKernel, xis: &[f64]) {
        let f0 = k.fourier(0.0);
        for &xi in xis {
            // Midpoint rule with a fine step is accurate for this smooth integrand.
            let n = 200_000;
            let h = 8.0 / n as f64;
            let brute: f64 = (0..n)
                .map(|i| {
                    let x = -4.0 + (i as f64 + 0.5) * h;
                    k.eval(x) * (std::f64::consts::TAU * x * xi).cos() * h
                })
                .sum();
            let q = k.fourier(xi);
            assert!(
                (q - brute).abs() < 1e-9 * brute.abs() + 1e-13 * f0,
                "xi {xi}: {q} vs {brute}"
            );
        }
    }

    #[test]
    fn fourier_table_matches_quadrature() {
        let k = EsKernel {
            support: 12,
            beta: 27.0,
            e0: 0.52,
        };
        let t = k.fourier_table(0.45);
        let f0 = k.fourier(0.0);
        for i in 0..=100 {
            let xi = 0.45 * i as f64 / 100.0;
            assert!((t.eval(xi * xi) - k.fourier(xi)).abs() < 1e-13 * f0);
        }
    }

    #[test]
    fn piecewise_fit_reproduces_kernel() {
        for (w, beta) in [(4, 9.0f64), (8, 18.0), (16, 37.0)] {
            let es = EsKernel {
                support: w,
                beta,
                e0: 0.5,
            };
            let pk = PiecewiseKernel::fit(&es, 0.0, 1e-14);
            let floor = (2.0 * (-beta).exp()).max(1e-13);
            assert!(pk.max_fit_error <= floor, "W={w}: {}", pk.max_fit_error);
            assert!(pk.degree < 24, "W={w}: degree {}", pk.degree);
            // Pieces tile the kernel: piece i at δ equals ψ(W/2 − δ − i).
            let d = 0.3;
            assert!((pk.eval_piece(1, d).re - es.eval(w as f64 / 2.0 - d - 1.0)).abs() <= floor);
            let pc = PiecewiseKernel::fit(&es, 0.7, 1e-13);
            let exact = Complex64::from_polar(
                es.eval(w as f64 / 2.0 - d - 2.0),
                0.7 * (w as f64 / 2.0 - d - 2.0),
            );
            assert!((pc.eval_piece(2, d) - exact).norm() <= floor.max(1e-12));
            // The even/odd evaluator gives the same values.
            let fast = PieceEvaluator::new(&pc);
            for i in 0..w {
                for delta in [0.0, 0.17, 0.5, 0.93] {
                    let (a, b) = (fast.eval(i, 2.0 * delta - 1.0), pc.eval_piece(i, delta));
                    assert!((a - b).norm() <= 1e-14 * (1.0 + b.norm()), "W={w} i={i}");
                    let f = fast.eval_fused(i, 2.0 * delta - 1.0);
                    assert!((f - b).norm() <= 1e-14 * (1.0 + b.norm()), "W={w} i={i}");
                }
            }
        }
    }
}
