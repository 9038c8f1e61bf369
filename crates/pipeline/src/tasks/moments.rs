//! Taylor-term moments over frequency windows (Rau & Cornwell 2011, eqs. 13–15): with
//! x = (ν − ν₀)/ν₀, dirty moments D_t = Σ_ν x^t A_ν(w V) and PSF moments
//! P_k = Σ_ν x^k A_ν(w), A the unnormalised adjoint; both divided by Σ w at the end.

use ndarray::Array2;

/// Moment bookkeeping for `nmoment` Taylor terms about `ref_freq_hz`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moments {
    pub nmoment: usize,
    pub ref_freq_hz: f64,
}

impl Moments {
    pub fn x(&self, freq_hz: f64) -> f64 {
        (freq_hz - self.ref_freq_hz) / self.ref_freq_hz
    }

    /// Names of the dirty (residual) moment images.
    pub fn dirty_name(t: usize) -> String {
        format!("d{t}")
    }

    /// Names of the PSF moment images (2·nmoment − 1 of them).
    pub fn psf_name(k: usize) -> String {
        format!("p{k}")
    }

    /// Names of the model Taylor terms.
    pub fn model_name(t: usize) -> String {
        format!("m{t}")
    }

    pub fn n_psf(&self) -> usize {
        2 * self.nmoment - 1
    }
}

/// Σ_b x_b^t · I_b over the batches b of a task, for the moments t < n (eqs. 13–15).
/// While a single batch has contributed it holds that batch's image and x, and moment t
/// is x^t · I, written scaled and never made: a one-window task holds one image per
/// gridder product, not one per moment. From the second batch on it holds n images.
#[derive(Debug, Default)]
pub enum MomentSum {
    #[default]
    Empty,
    One {
        img: Array2<f64>,
        x: f64,
    },
    Many(Vec<Array2<f64>>),
}

impl MomentSum {
    /// Adds x^t · `img` to every moment t < `n`.
    pub fn add(&mut self, n: usize, x: f64, img: Array2<f64>) {
        *self = match std::mem::take(self) {
            MomentSum::Empty => MomentSum::One { img, x },
            MomentSum::One { img: a, x: xa } => {
                let mut all: Vec<Array2<f64>> = Vec::with_capacity(n);
                let higher: Vec<Array2<f64>> =
                    (1..n).map(|t| a.mapv(|v| v * xa.powi(t as i32))).collect();
                all.push(a);
                all.extend(higher);
                add_scaled(&mut all, x, &img);
                MomentSum::Many(all)
            }
            MomentSum::Many(mut all) => {
                add_scaled(&mut all, x, &img);
                MomentSum::Many(all)
            }
        };
    }

    /// Moment t < `n` as (image, scale): the sum is scale · image. `zeros` stands in
    /// for a sum nothing was added to.
    pub fn moment<'a>(&'a self, t: usize, zeros: &'a Array2<f64>) -> (&'a Array2<f64>, f64) {
        match self {
            MomentSum::Empty => (zeros, 1.0),
            MomentSum::One { img, x } => (img, x.powi(t as i32)),
            MomentSum::Many(all) => all.get(t).map_or((zeros, 1.0), |a| (a, 1.0)),
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, MomentSum::Empty)
    }
}

fn add_scaled(all: &mut [Array2<f64>], x: f64, img: &Array2<f64>) {
    for (t, a) in all.iter_mut().enumerate() {
        a.scaled_add(x.powi(t as i32), img);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lazy sum equals the sums of x^t · I made directly, for 1, 2 and 3 batches.
    #[test]
    fn moment_sum_matches_direct_sums() {
        let n = 3;
        let imgs: Vec<(f64, Array2<f64>)> = (0..3)
            .map(|b| {
                let x = 0.1 * b as f64 - 0.07;
                (
                    x,
                    Array2::from_shape_fn((4, 5), |(y, i)| (y * 5 + i + b) as f64),
                )
            })
            .collect();
        for nb in 1..=3 {
            let mut sum = MomentSum::default();
            for (x, img) in &imgs[..nb] {
                sum.add(n, *x, img.clone());
            }
            let zeros = Array2::zeros((4, 5));
            for t in 0..n {
                let mut want = Array2::<f64>::zeros((4, 5));
                for (x, img) in &imgs[..nb] {
                    want.scaled_add(x.powi(t as i32), img);
                }
                let (a, s) = sum.moment(t, &zeros);
                let got = a.mapv(|v| v * s);
                let err = (&got - &want).iter().fold(0.0f64, |m, v| m.max(v.abs()));
                assert!(err < 1e-12, "{nb} batches, moment {t}: {err}");
            }
        }
        let empty = MomentSum::default();
        let zeros = Array2::zeros((2, 2));
        assert_eq!(empty.moment(1, &zeros), (&zeros, 1.0));
    }
}
