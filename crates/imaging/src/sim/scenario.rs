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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_documented_benchmark() {
        let s = Scenario::default();
        let config = low_config(s.rmax).unwrap();
        assert_eq!(config.len(), 227);
        // 227·226/2 = 25 651 baselines × 7 times × 8 channels ≈ 1.44 M visibilities.
        assert_eq!(config.n_baselines() * s.ntimes * s.nchan, 1_436_456);
        let f = s.freq_c();
        assert_eq!((f.len(), f[0], f[7]), (8, 100e6, 150e6));
        assert!(
            f.windows(2)
                .all(|w| (w[1] - w[0] - 50e6 / 7.0).abs() < 1e-6)
        );
    }

    #[test]
    fn build_gives_the_block_and_a_geometry_at_the_asked_oversampling() {
        let s = Scenario {
            rmax: 100.0,
            ntimes: 2,
            nchan: 1,
            npix: 64,
            ..Default::default()
        };
        let (block, geom) = s.build().unwrap();
        assert_eq!((block.n_rows(), block.n_chan()), (2 * 13 * 12 / 2, 1));
        assert_eq!(block.freq_c, [100e6]);
        // cell · B_max (wavelengths) = 1/oversampling.
        let bmax = block
            .uvw_r
            .iter()
            .map(|p| p.uv_length())
            .fold(0.0, f64::max);
        let b_lambda = bmax * 100e6 / crate::SPEED_OF_LIGHT;
        assert!((geom.cell * b_lambda - 1.0 / 3.0).abs() < 1e-15);
        assert_eq!((geom.npix_x, geom.npix_y, geom.freq_hz), (64, 64, 125e6));
        assert!(block.vis_rc.iter().any(|v| v.norm() > 0.0));
    }
}
