//! The SDP benchmark scenario (LOW-like array, few times, a band of channels) used by
//! `aperture bench kernels`, the criterion benches and the ducc0 comparison script.

use super::layout_low::low_config;
use super::simulate::simulate_block;
use super::sky::{RandomSkySpec, random_sky_lm};
use super::uvw::hour_angles;
use crate::ImagingError;
use crate::coords::RaDec;
use crate::image::ImageGeometry;
use crate::vis::VisBlock;

/// Parameters of a benchmark observation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scenario {
    /// Array radius kept, metres (600 m keeps 227 LOW stations).
    pub rmax: f64,
    pub ntimes: usize,
    /// Total hour-angle span, hours.
    pub span_hours: f64,
    pub nchan: usize,
    pub f_min: f64,
    pub f_max: f64,
    pub npix: usize,
    /// Pixels per synthesised beam at the highest frequency.
    pub oversampling: f64,
    pub phase_centre: RaDec,
}

impl Default for Scenario {
    /// The figure named in issue #2: rmax 600 m (227 stations), 7 times over ±3 h,
    /// 8 channels at 100–150 MHz (1.44 M visibilities), a 1024² image at 3 pixels per
    /// beam, phase centre RA 15°, Dec −45° (RASCIL's benchmark defaults).
    fn default() -> Self {
        Self {
            rmax: 600.0,
            ntimes: 7,
            span_hours: 6.0,
            nchan: 8,
            f_min: 100e6,
            f_max: 150e6,
            npix: 1024,
            oversampling: 3.0,
            phase_centre: RaDec::from_degrees(15.0, -45.0),
        }
    }
}

impl Scenario {
    /// Channel centres: `nchan` values evenly spanning [f_min, f_max] inclusive.
    pub fn freq_c(&self) -> Vec<f64> {
        if self.nchan == 1 {
            return vec![self.f_min];
        }
        (0..self.nchan)
            .map(|i| self.f_min + (self.f_max - self.f_min) * i as f64 / (self.nchan - 1) as f64)
            .collect()
    }

    /// The scenario's cell for `block`: 1/(oversampling × longest projected baseline in
    /// wavelengths at the highest frequency), radians.
    pub fn cell_for(&self, block: &VisBlock) -> f64 {
        let fmax = block.freq_c.iter().cloned().fold(0.0, f64::max);
        let bmax = block
            .uvw_r
            .iter()
            .map(|p| p.uv_length())
            .fold(0.0, f64::max);
        1.0 / (self.oversampling * bmax * fmax / crate::SPEED_OF_LIGHT)
    }

    /// Simulates the block (5 point sources near the centre, no noise) and the image
    /// geometry (cell = 1/(oversampling × longest baseline in wavelengths)).
    pub fn build(&self) -> Result<(VisBlock, ImageGeometry), ImagingError> {
        let config = low_config(self.rmax)?;
        let ha = hour_angles(self.ntimes, self.span_hours)?;
        let freq_c = self.freq_c();
        let spec = RandomSkySpec {
            n_sources: 5,
            half_width_lm: 0.05,
            ..Default::default()
        };
        let sky = random_sky_lm(self.phase_centre, self.f_min, &spec, 42)?;
        let block = simulate_block(&config, self.phase_centre, &ha, &freq_c, &sky, 0.0, 1)?;
        let cell = self.cell_for(&block);
        let geom = ImageGeometry::square(
            self.npix,
            cell,
            self.phase_centre,
            0.5 * (self.f_min + self.f_max),
            self.f_max - self.f_min,
        )?;
        Ok((block, geom))
    }
}
