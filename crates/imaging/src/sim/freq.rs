//! Frequency windows × channels: [f_min, f_max] split into `windows · channels_per_window`
//! equal channels; a window is a run of consecutive channels.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::ImagingError;

/// A band divided into windows of equal channels. Channel k (0-based, over the whole band)
/// is centred at f_min + (k + ½)·Δν with Δν = (f_max − f_min)/(windows · channels_per_window),
/// and belongs to window ⌊k / channels_per_window⌋.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FrequencySetup {
    pub windows: usize,
    pub channels_per_window: usize,
    /// Lower edge of the band, Hz.
    pub f_min: f64,
    /// Upper edge of the band, Hz.
    pub f_max: f64,
}

impl FrequencySetup {
    /// A validated setup.
    pub fn new(
        windows: usize,
        channels_per_window: usize,
        f_min: f64,
        f_max: f64,
    ) -> Result<Self, ImagingError> {
        let s = Self {
            windows,
            channels_per_window,
            f_min,
            f_max,
        };
        s.validate()?;
        Ok(s)
    }

    /// Checks counts ≥ 1 and 0 < f_min < f_max < ∞; the error names the field.
    pub fn validate(&self) -> Result<(), ImagingError> {
        if self.windows == 0 {
            return Err(ImagingError::invalid("windows", "must be at least 1"));
        }
        if self.channels_per_window == 0 {
            return Err(ImagingError::invalid(
                "channels_per_window",
                "must be at least 1",
            ));
        }
        if self.windows.checked_mul(self.channels_per_window).is_none() {
            return Err(ImagingError::invalid(
                "channels_per_window",
                "windows × channels_per_window overflows",
            ));
        }
        if !(self.f_min.is_finite() && self.f_min > 0.0) {
            return Err(ImagingError::invalid(
                "f_min",
                format!("{} Hz; must be positive", self.f_min),
            ));
        }
        if !(self.f_max.is_finite() && self.f_max > self.f_min) {
            return Err(ImagingError::invalid(
                "f_max",
                format!(
                    "{} Hz; must be finite and above f_min = {} Hz",
                    self.f_max, self.f_min
                ),
            ));
        }
        Ok(())
    }

    /// Total number of channels.
    pub fn n_chan(&self) -> usize {
        self.windows.saturating_mul(self.channels_per_window)
    }

    /// Channel width Δν, Hz.
    pub fn channel_width(&self) -> Result<f64, ImagingError> {
        self.validate()?;
        Ok((self.f_max - self.f_min) / self.n_chan() as f64)
    }

    /// Centre frequencies of all channels, Hz, ascending.
    pub fn freq_c(&self) -> Result<Vec<f64>, ImagingError> {
        self.centres(0..self.n_chan())
    }

    /// Centre frequencies of `channels`, Hz.
    fn centres(&self, channels: Range<usize>) -> Result<Vec<f64>, ImagingError> {
        let dnu = self.channel_width()?;
        Ok(channels
            .map(|k| self.f_min + (k as f64 + 0.5) * dnu)
            .collect())
    }

    /// The window holding channel `chan`.
    pub fn window_of(&self, chan: usize) -> Result<usize, ImagingError> {
        self.validate()?;
        if chan >= self.n_chan() {
            return Err(ImagingError::invalid(
                "chan",
                format!("channel {chan} of {}", self.n_chan()),
            ));
        }
        Ok(chan / self.channels_per_window)
    }

    /// The channel indices of window `window`.
    pub fn channels_of(&self, window: usize) -> Result<Range<usize>, ImagingError> {
        self.validate()?;
        if window >= self.windows {
            return Err(ImagingError::invalid(
                "window",
                format!("window {window} of {}", self.windows),
            ));
        }
        let start = window * self.channels_per_window;
        Ok(start..start + self.channels_per_window)
    }

    /// Centre frequencies of the channels of window `window`, Hz.
    pub fn window_freq_c(&self, window: usize) -> Result<Vec<f64>, ImagingError> {
        self.centres(self.channels_of(window)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::invalid_name as name;

    #[test]
    fn channels_tile_the_band() {
        let s = FrequencySetup::new(4, 2, 100e6, 108e6).unwrap();
        assert_eq!(s.n_chan(), 8);
        assert_eq!(s.channel_width().unwrap(), 1e6);
        let f = s.freq_c().unwrap();
        let want = [
            100.5e6, 101.5e6, 102.5e6, 103.5e6, 104.5e6, 105.5e6, 106.5e6, 107.5e6,
        ];
        for (a, b) in f.iter().zip(want) {
            assert!((a - b).abs() < 1e-6);
        }
        assert_eq!(s.window_of(0).unwrap(), 0);
        assert_eq!(s.window_of(3).unwrap(), 1);
        assert_eq!(s.window_of(7).unwrap(), 3);
        assert_eq!(s.channels_of(2).unwrap(), 4..6);
        assert_eq!(s.window_freq_c(1).unwrap(), vec![f[2], f[3]]);
        assert!(s.window_of(8).is_err() && s.channels_of(4).is_err());
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(name(FrequencySetup::new(0, 1, 1e8, 2e8)), "windows");
        assert_eq!(
            name(FrequencySetup::new(1, 0, 1e8, 2e8)),
            "channels_per_window"
        );
        assert_eq!(name(FrequencySetup::new(1, 1, 0.0, 2e8)), "f_min");
        assert_eq!(name(FrequencySetup::new(1, 1, 2e8, 2e8)), "f_max");
        assert_eq!(name(FrequencySetup::new(1, 1, 1e8, f64::NAN)), "f_max");
        let bad = FrequencySetup {
            windows: 0,
            channels_per_window: 1,
            f_min: 1.0,
            f_max: 2.0,
        };
        assert!(bad.freq_c().is_err());
    }
}
