//! StEFCal (Salvini & Wijnholds 2014, "Fast gain calibration in radio astronomy using
//! alternating direction implicit methods: Analysis and applications", A&A 571, A97,
//! Algorithm 1) on pre-summed normal-equation terms of one solution.
//!
//! With Z_pq = Σ w·V_pq·conj(M_pq) and M_pq = Σ w·|M_pq|² (Z_qp = conj(Z_pq), M
//! symmetric), χ² as a function of g_p alone, the other gains h_q fixed, is minimised by
//! g_p = Σ_q Z_pq·h_q / Σ_q M_pq·|h_q|² — the alternating least-squares update, done
//! for all p from the previous iterate. Every second iteration the relative change
//! ‖g_i − g_{i−1}‖/‖g_i‖ is compared with the tolerance and, if not yet converged,
//! g_i ← (g_i + g_{i−1})/2, which turns the oscillating plain iteration into a
//! convergent one. The phase-only variant maximises Re(conj(g_p)·Σ_q Z_pq h_q) over
//! |g_p| = 1: g_p = a/|a| for a = Σ_q Z_pq h_q, and the averaged iterate is normalised.

use num_complex::Complex64;

/// The outcome of one solve (before the reference antenna is applied).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stefcal {
    /// Gains; zero for inactive antennas.
    pub gains: Vec<Complex64>,
    /// Antennas with data to another active antenna.
    pub active: Vec<bool>,
    pub iterations: usize,
    pub converged: bool,
}

/// Antennas constrained by the data: those with positive Σ mm to other such antennas
/// (found by repeatedly dropping antennas whose partners have all been dropped).
pub(crate) fn active_antennas(n: usize, mm: &[f64]) -> Vec<bool> {
    let mut active = vec![true; n];
    let mut deg = vec![0.0; n];
    loop {
        deg.iter_mut().for_each(|d| *d = 0.0);
        let mut idx = 0;
        for p in 0..n {
            for q in p + 1..n {
                let m = mm[idx];
                idx += 1;
                if m > 0.0 && active[p] && active[q] {
                    deg[p] += m;
                    deg[q] += m;
                }
            }
        }
        let mut changed = false;
        for p in 0..n {
            if active[p] && deg[p] <= 0.0 {
                active[p] = false;
                changed = true;
            }
        }
        if !changed {
            return active;
        }
    }
}

/// num_p = Σ_q Z_pq g_q and den_p = Σ_q M_pq |g_q|² over packed pairs p < q.
fn sums(
    n: usize,
    zz: &[Complex64],
    mm: &[f64],
    g: &[Complex64],
    num: &mut [Complex64],
    den: &mut [f64],
) {
    num.iter_mut().for_each(|x| *x = Complex64::new(0.0, 0.0));
    den.iter_mut().for_each(|x| *x = 0.0);
    let mut idx = 0;
    for p in 0..n {
        let gp = g[p];
        let gp2 = gp.norm_sqr();
        let (mut nump, mut denp) = (Complex64::new(0.0, 0.0), 0.0);
        let zrow = &zz[idx..idx + (n - p - 1)];
        let mrow = &mm[idx..idx + (n - p - 1)];
        idx += n - p - 1;
        for (k, (z, m)) in zrow.iter().zip(mrow).enumerate() {
            let q = p + 1 + k;
            let gq = g[q];
            nump += z * gq;
            denp += m * gq.norm_sqr();
            num[q] += z.conj() * gp;
            den[q] += m * gp2;
        }
        num[p] += nump;
        den[p] += denp;
    }
}

/// `z / |z|`, or `fallback` when z is zero.
fn unit(z: Complex64, fallback: Complex64) -> Complex64 {
    let a = z.norm();
    if a > 0.0 && a.is_finite() {
        z / a
    } else {
        fallback
    }
}

/// Runs StEFCal on the packed terms of `n` antennas, starting from unit gains.
pub(crate) fn stefcal(
    n: usize,
    zz: &[Complex64],
    mm: &[f64],
    phase_only: bool,
    tol: f64,
    max_iter: usize,
) -> Stefcal {
    let active = active_antennas(n, mm);
    let zero = Complex64::new(0.0, 0.0);
    let one = Complex64::new(1.0, 0.0);
    let mut g: Vec<Complex64> = active.iter().map(|&a| if a { one } else { zero }).collect();
    if !active.iter().any(|&a| a) {
        return Stefcal {
            gains: g,
            active,
            iterations: 0,
            converged: false,
        };
    }
    let mut g_new = g.clone();
    let mut num = vec![zero; n];
    let mut den = vec![0.0; n];
    let mut iterations = 0;
    let mut converged = false;
    for it in 1..=max_iter {
        iterations = it;
        sums(n, zz, mm, &g, &mut num, &mut den);
        for p in 0..n {
            g_new[p] = if !active[p] {
                zero
            } else if phase_only {
                unit(num[p], g[p])
            } else if den[p] > 0.0 {
                num[p] / den[p]
            } else {
                g[p]
            };
        }
        if it % 2 == 0 {
            let (mut dn, mut nn) = (0.0, 0.0);
            for (a, b) in g_new.iter().zip(&g) {
                dn += (a - b).norm_sqr();
                nn += a.norm_sqr();
            }
            if dn <= tol * tol * nn {
                std::mem::swap(&mut g, &mut g_new);
                converged = true;
                break;
            }
            for (a, b) in g.iter_mut().zip(&g_new) {
                let avg = 0.5 * (*a + b);
                *a = if phase_only { unit(avg, *b) } else { avg };
            }
        } else {
            std::mem::swap(&mut g, &mut g_new);
        }
    }
    Stefcal {
        gains: g,
        active,
        iterations,
        converged,
    }
}

/// χ² − Σw|V|² for gains `g`: Σ_{p<q} [|g_p|²|g_q|²·mm − 2 Re(conj(g_p conj g_q)·zz)].
pub(crate) fn chi2_minus_vv(n: usize, zz: &[Complex64], mm: &[f64], g: &[Complex64]) -> f64 {
    let mut s = 0.0;
    let mut idx = 0;
    for p in 0..n {
        let gp = g[p];
        for q in p + 1..n {
            let (z, m) = (zz[idx], mm[idx]);
            idx += 1;
            if m == 0.0 && z == Complex64::new(0.0, 0.0) {
                continue;
            }
            let gg = gp * g[q].conj();
            s += gg.norm_sqr() * m - 2.0 * (gg.conj() * z).re;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calib::normal::{n_pairs, pair_index};

    /// Terms of noise-free data V_pq = g_p conj(g_q) M_pq with |M| = 1, unit weights.
    fn terms(g: &[Complex64]) -> (Vec<Complex64>, Vec<f64>) {
        let n = g.len();
        let mut zz = vec![Complex64::new(0.0, 0.0); n_pairs(n)];
        let mm = vec![1.0; n_pairs(n)];
        for p in 0..n {
            for q in p + 1..n {
                zz[pair_index(p, q, n)] = g[p] * g[q].conj();
            }
        }
        (zz, mm)
    }

    #[test]
    fn recovers_gains_up_to_a_phase_and_chi2_vanishes() {
        let g: Vec<Complex64> = (0..9)
            .map(|k| Complex64::from_polar(1.0 + 0.1 * (k as f64).sin(), 0.7 * k as f64))
            .collect();
        let (zz, mm) = terms(&g);
        let s = stefcal(9, &zz, &mm, false, 1e-13, 500);
        assert!(s.converged && s.active.iter().all(|&a| a));
        let rot = s.gains[0].conj() / s.gains[0].norm() * g[0] / g[0].norm();
        for (a, b) in s.gains.iter().zip(&g) {
            assert!((a * rot - b).norm() < 1e-11, "{a} vs {b}");
        }
        let vv: f64 = zz.iter().map(|z| z.norm_sqr()).sum();
        assert!((vv + chi2_minus_vv(9, &zz, &mm, &s.gains)).abs() < 1e-10 * vv);
    }

    #[test]
    fn antennas_without_data_are_inactive() {
        let n = 5;
        let mut mm = vec![1.0; n_pairs(n)];
        for q in 0..n {
            if q != 3 {
                let (a, b) = (q.min(3), q.max(3));
                mm[pair_index(a, b, n)] = 0.0;
            }
        }
        assert_eq!(active_antennas(n, &mm), [true, true, true, false, true]);
        // Antennas 3 and 4 have no data at all.
        let mut mm = vec![0.0; n_pairs(n)];
        mm[pair_index(0, 1, n)] = 1.0;
        mm[pair_index(0, 2, n)] = 1.0;
        assert_eq!(active_antennas(n, &mm), [true, true, true, false, false]);
        let s = stefcal(
            n,
            &vec![Complex64::new(0.0, 0.0); n_pairs(n)],
            &[0.0; 10],
            false,
            1e-8,
            10,
        );
        assert!(!s.converged && s.iterations == 0 && s.active.iter().all(|&a| !a));
    }
}
