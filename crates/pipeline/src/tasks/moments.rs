//! Taylor-term moments over frequency windows (Rau & Cornwell 2011, eqs. 13–15): with
//! x = (ν − ν₀)/ν₀, dirty moments D_t = Σ_ν x^t A_ν(w V) and PSF moments
//! P_k = Σ_ν x^k A_ν(w), A the unnormalised adjoint; both divided by Σ w at the end.

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
