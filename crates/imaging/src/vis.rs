//! The visibility block: one set of rows (baseline × time) over a list of channels,
//! Stokes I, with weights, flags, uvw in metres, antenna pairs and times.

use ndarray::Array2;
use num_complex::Complex64;

use crate::ImagingError;
use crate::coords::{RaDec, UvwMetres};

/// Stokes-I visibilities and their metadata. Arrays are named by axis order:
/// `_r` per row, `_c` per channel, `_rc` per row and channel.
#[derive(Debug, Clone, PartialEq)]
pub struct VisBlock {
    /// Baseline coordinates in metres, one per row.
    pub uvw_r: Vec<UvwMetres>,
    /// Channel centre frequencies in Hz.
    pub freq_c: Vec<f64>,
    /// Complex visibilities in Jy, [row, chan].
    pub vis_rc: Array2<Complex64>,
    /// Non-negative weights, [row, chan].
    pub weight_rc: Array2<f64>,
    /// True where a sample is flagged (excluded), [row, chan].
    pub flag_rc: Array2<bool>,
    /// First and second antenna index per row.
    pub ant1_r: Vec<u32>,
    pub ant2_r: Vec<u32>,
    /// Time of each row, seconds (MJD seconds, or relative when simulated).
    pub time_r: Vec<f64>,
    /// The phase centre the uvw refer to.
    pub phase_centre: RaDec,
}

impl VisBlock {
    /// A block with the given geometry, zero visibilities, unit weights and no flags.
    pub fn zeros(
        uvw_r: Vec<UvwMetres>,
        freq_c: Vec<f64>,
        ant1_r: Vec<u32>,
        ant2_r: Vec<u32>,
        time_r: Vec<f64>,
        phase_centre: RaDec,
    ) -> Self {
        let (nr, nc) = (uvw_r.len(), freq_c.len());
        Self {
            uvw_r,
            freq_c,
            vis_rc: Array2::zeros((nr, nc)),
            weight_rc: Array2::ones((nr, nc)),
            flag_rc: Array2::from_elem((nr, nc), false),
            ant1_r,
            ant2_r,
            time_r,
            phase_centre,
        }
    }

    pub fn n_rows(&self) -> usize {
        self.uvw_r.len()
    }

    pub fn n_chan(&self) -> usize {
        self.freq_c.len()
    }

    /// Number of (row, channel) samples.
    pub fn n_vis(&self) -> usize {
        self.n_rows() * self.n_chan()
    }

    /// Checks shapes, finiteness and value ranges; the error names the offending array.
    pub fn validate(&self) -> Result<(), ImagingError> {
        let (nr, nc) = (self.n_rows(), self.n_chan());
        let want = format!("[{nr}, {nc}]");
        for (name, shape) in [
            ("vis", self.vis_rc.dim()),
            ("weight", self.weight_rc.dim()),
            ("flag", self.flag_rc.dim()),
        ] {
            if shape != (nr, nc) {
                return Err(ImagingError::ShapeMismatch {
                    name: name.into(),
                    expected: want.clone(),
                    got: format!("[{}, {}]", shape.0, shape.1),
                });
            }
        }
        for (name, len) in [
            ("ant1", self.ant1_r.len()),
            ("ant2", self.ant2_r.len()),
            ("time", self.time_r.len()),
        ] {
            if len != nr {
                return Err(ImagingError::ShapeMismatch {
                    name: name.into(),
                    expected: format!("[{nr}]"),
                    got: format!("[{len}]"),
                });
            }
        }
        if nc == 0 {
            return Err(ImagingError::invalid("freq", "no channels"));
        }
        for (i, f) in self.freq_c.iter().enumerate() {
            if !f.is_finite() || *f <= 0.0 {
                return Err(ImagingError::invalid(
                    "freq",
                    format!("channel {i} has frequency {f} Hz; frequencies must be positive"),
                ));
            }
        }
        for (i, p) in self.uvw_r.iter().enumerate() {
            if !(p.u.is_finite() && p.v.is_finite() && p.w.is_finite()) {
                return Err(ImagingError::NonFinite {
                    name: "uvw".into(),
                    index: i,
                });
            }
        }
        for (i, v) in self.vis_rc.iter().enumerate() {
            if !(v.re.is_finite() && v.im.is_finite()) {
                return Err(ImagingError::NonFinite {
                    name: "vis".into(),
                    index: i,
                });
            }
        }
        for (i, w) in self.weight_rc.iter().enumerate() {
            if !w.is_finite() || *w < 0.0 {
                return Err(ImagingError::invalid(
                    "weight",
                    format!("element {i} is {w}; weights must be finite and non-negative"),
                ));
            }
        }
        Ok(())
    }

    /// Effective weights: the weight where unflagged, zero where flagged, [row, chan].
    pub fn effective_weight_rc(&self) -> Array2<f64> {
        let mut w = self.weight_rc.clone();
        w.zip_mut_with(&self.flag_rc, |w, &f| {
            if f {
                *w = 0.0
            }
        });
        w
    }

    /// Longest |uvw| over rows in metres, as (max |u|, max |v|, max |w|).
    pub fn max_abs_uvw(&self) -> UvwMetres {
        let mut m = UvwMetres::default();
        for p in &self.uvw_r {
            m.u = m.u.max(p.u.abs());
            m.v = m.v.max(p.v.abs());
            m.w = m.w.max(p.w.abs());
        }
        m
    }
}
