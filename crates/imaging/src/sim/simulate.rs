//! One-call simulation of a visibility block: earth-rotation uvw, exact point-component
//! visibilities, optional thermal noise; unit weights and no flags.

use super::dft::predict_components;
use super::noise::add_thermal_noise;
use super::sky::SkyModel;
use super::uvw::synthesize_uvw;
use crate::ImagingError;
use crate::antenna::AntennaConfig;
use crate::coords::{HourAngle, RaDec};
use crate::vis::VisBlock;

/// Simulates `sky` observed by `config` at `hour_angles` and channel frequencies `freq_c`
/// (Hz), phased to `phase_centre`; adds N(0, noise_sigma²) to the real and imaginary parts
/// (noise from `seed`; `noise_sigma = 0` for none). Rows are time-major, baselines a1 < a2.
pub fn simulate_block(
    config: &AntennaConfig,
    phase_centre: RaDec,
    hour_angles: &[HourAngle],
    freq_c: &[f64],
    sky: &SkyModel,
    noise_sigma: f64,
    seed: u64,
) -> Result<VisBlock, ImagingError> {
    if freq_c.is_empty() {
        return Err(ImagingError::invalid("freq", "no channels"));
    }
    if !(noise_sigma.is_finite() && noise_sigma >= 0.0) {
        return Err(ImagingError::invalid(
            "noise_sigma",
            format!("{noise_sigma} Jy; must be finite and non-negative"),
        ));
    }
    let rows = synthesize_uvw(config, phase_centre, hour_angles)?;
    let vis_rc = predict_components(&rows.uvw_r, freq_c, phase_centre, sky)?;
    let mut block = VisBlock::zeros(
        rows.uvw_r,
        freq_c.to_vec(),
        rows.ant1_r,
        rows.ant2_r,
        rows.time_r,
        phase_centre,
    );
    block.vis_rc = vis_rc;
    add_thermal_noise(&mut block.vis_rc, noise_sigma, seed)?;
    block.validate()?;
    Ok(block)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ImageGeometry;
    use crate::sim::dft::invert_image;
    use crate::sim::layout_low::low_config;
    use crate::sim::sky::PointSource;
    use crate::sim::uvw::hour_angles;

    fn sky_at(dir: RaDec, flux: f64) -> SkyModel {
        SkyModel {
            sources: vec![PointSource {
                dir,
                flux_jy: flux,
                spectral_index: -0.7,
            }],
            ref_freq_hz: 1e8,
        }
    }

    #[test]
    fn noiseless_source_at_phase_centre() {
        let cfg = low_config(100.0).unwrap();
        let pc = RaDec::from_degrees(15.0, -45.0);
        let ha = hour_angles(3, 4.0).unwrap();
        let freq = [0.9e8, 1.1e8];
        let b = simulate_block(&cfg, pc, &ha, &freq, &sky_at(pc, 1.5), 0.0, 1).unwrap();
        assert_eq!(b.n_rows(), 3 * 13 * 12 / 2);
        assert!(b.weight_rc.iter().all(|&w| w == 1.0) && b.flag_rc.iter().all(|&f| !f));
        for ((_, c), z) in b.vis_rc.indexed_iter() {
            let s = 1.5 * (freq[c] / 1e8).powf(-0.7);
            assert!((z.re - s).abs() < 1e-13 && z.im.abs() < 1e-13);
        }
    }

    #[test]
    fn noise_is_seeded_and_has_the_asked_sigma() {
        let cfg = low_config(300.0).unwrap();
        let pc = RaDec::from_degrees(15.0, -45.0);
        let ha = hour_angles(2, 1.0).unwrap();
        let sky = SkyModel {
            sources: vec![],
            ref_freq_hz: 1e8,
        };
        let a = simulate_block(&cfg, pc, &ha, &[1e8], &sky, 0.5, 3).unwrap();
        let b = simulate_block(&cfg, pc, &ha, &[1e8], &sky, 0.5, 3).unwrap();
        assert_eq!(a, b);
        let n = a.n_vis() as f64;
        let var = a.vis_rc.iter().map(|z| z.re * z.re).sum::<f64>() / n;
        // 5 standard errors of a variance estimate: σ²·√(2/n).
        assert!((var - 0.25).abs() < 5.0 * 0.25 * (2.0 / n).sqrt());
        assert!(simulate_block(&cfg, pc, &ha, &[1e8], &sky, -1.0, 3).is_err());
        assert!(simulate_block(&cfg, pc, &ha, &[], &sky, 0.0, 3).is_err());
    }

    #[test]
    fn dirty_image_of_an_off_centre_source_peaks_where_it_should() {
        // Normalised dirty image (adjoint / Σw) of a point of flux S peaks at its pixel with
        // S/n (DESIGN.md convention).
        let cfg = low_config(300.0).unwrap();
        let pc = RaDec::from_degrees(0.0, -27.0);
        let geom = ImageGeometry::square(32, 2e-3, pc, 1e8, 1e6).unwrap();
        let dir = geom.pixel_to_radec(20.0, 9.0).unwrap();
        let n = dir.to_lmn(pc).n;
        let ha = hour_angles(3, 6.0).unwrap();
        let b = simulate_block(&cfg, pc, &ha, &[1e8], &sky_at(dir, 2.0), 0.0, 0).unwrap();
        let d = invert_image(&b.uvw_r, &b.freq_c, &b.vis_rc, &b.weight_rc, &geom).unwrap();
        let (peak, x, y) = d.peak();
        assert_eq!((x, y), (20, 9));
        assert!((peak / b.weight_rc.sum() - 2.0 / n).abs() < 1e-12);
    }
}
