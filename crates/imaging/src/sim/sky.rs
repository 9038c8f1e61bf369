//! Point-source sky models with power-law spectra, S(ν) = S₀ (ν/ν₀)^α, and seeded random
//! fields (uniform in (l, m) or on pixel centres, fluxes from a power-law count dN/dS ∝ S^−γ).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::detmath;
use super::rng::Rng;
use crate::ImagingError;
use crate::coords::RaDec;
use crate::image::{Image, ImageGeometry};

/// An unresolved source: direction, flux density at the model's reference frequency (Jy)
/// and spectral index α.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PointSource {
    pub dir: RaDec,
    pub flux_jy: f64,
    pub spectral_index: f64,
}

/// A list of point sources sharing a reference frequency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkyModel {
    pub sources: Vec<PointSource>,
    pub ref_freq_hz: f64,
}

impl PointSource {
    /// S(ν) = S₀ (ν/ν₀)^α.
    pub fn flux_at(&self, freq_hz: f64, ref_freq_hz: f64) -> f64 {
        self.flux_jy * (freq_hz / ref_freq_hz).powf(self.spectral_index)
    }
}

impl SkyModel {
    /// Checks the reference frequency and every source; the error names `sources[i]`.
    pub fn validate(&self) -> Result<(), ImagingError> {
        if !(self.ref_freq_hz.is_finite() && self.ref_freq_hz > 0.0) {
            return Err(ImagingError::invalid(
                "ref_freq_hz",
                format!("{} Hz; must be positive", self.ref_freq_hz),
            ));
        }
        for (i, s) in self.sources.iter().enumerate() {
            let ok = s.dir.ra.is_finite()
                && s.dir.dec.is_finite()
                && s.dir.dec.abs() <= std::f64::consts::FRAC_PI_2
                && s.flux_jy.is_finite()
                && s.spectral_index.is_finite();
            if !ok {
                return Err(ImagingError::invalid(
                    format!("sources[{i}]"),
                    format!(
                        "{s:?}: direction, flux and spectral index must be finite, |dec| ≤ 90°"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Flux of source `i` at `freq_hz`.
    pub fn flux_at(&self, i: usize, freq_hz: f64) -> Option<f64> {
        self.sources
            .get(i)
            .map(|s| s.flux_at(freq_hz, self.ref_freq_hz))
    }

    /// The model as an image at `freq_hz`: each source must lie on a pixel centre (to 1e-6
    /// pixel) of `geom`; its pixel gets S(ν)·n. A point of flux S is S·δ in solid angle,
    /// and dΩ = dl dm / n, so in the measurement equation V = Σ I/n e^{…} (DESIGN.md) the
    /// pixel value S·n reproduces the component's visibilities exactly.
    pub fn to_image(&self, geom: &ImageGeometry, freq_hz: f64) -> Result<Image, ImagingError> {
        self.validate()?;
        geom.validate()?;
        if !(freq_hz.is_finite() && freq_hz > 0.0) {
            return Err(ImagingError::invalid(
                "freq_hz",
                format!("{freq_hz} Hz; must be positive"),
            ));
        }
        let mut img = Image::zeros(*geom);
        for (i, s) in self.sources.iter().enumerate() {
            let lmn = s.dir.to_lmn(geom.phase_centre);
            let on_pixel = geom.radec_to_pixel(s.dir).and_then(|(x, y)| {
                let (xr, yr) = (x.round(), y.round());
                let inside =
                    xr >= 0.0 && yr >= 0.0 && xr < geom.npix_x as f64 && yr < geom.npix_y as f64;
                (inside && (x - xr).abs() < 1e-6 && (y - yr).abs() < 1e-6)
                    .then_some((xr as usize, yr as usize))
            });
            let Some((x, y)) = on_pixel else {
                return Err(ImagingError::invalid(
                    format!("sources[{i}]"),
                    "not on a pixel centre inside the image",
                ));
            };
            img.data_yx[[y, x]] += s.flux_at(freq_hz, self.ref_freq_hz) * lmn.n;
        }
        Ok(img)
    }
}

/// Parameters of a random field.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RandomSkySpec {
    pub n_sources: usize,
    /// Sources have |l| ≤ half_width_lm and |m| ≤ half_width_lm (direction cosines).
    pub half_width_lm: f64,
    pub flux_min_jy: f64,
    pub flux_max_jy: f64,
    /// γ of the differential counts dN/dS ∝ S^−γ between the flux limits.
    pub count_slope: f64,
    pub spectral_index_mean: f64,
    pub spectral_index_sigma: f64,
}

impl Default for RandomSkySpec {
    /// 10 sources within ±0.01 in l and m, 10 mJy–1 Jy with γ = 1.7 (roughly the slope of
    /// the differential 1.4 GHz counts between 10 mJy and 1 Jy), α = −0.7 ± 0.2 (the
    /// typical synchrotron index).
    fn default() -> Self {
        Self {
            n_sources: 10,
            half_width_lm: 0.01,
            flux_min_jy: 0.01,
            flux_max_jy: 1.0,
            count_slope: 1.7,
            spectral_index_mean: -0.7,
            spectral_index_sigma: 0.2,
        }
    }
}

impl RandomSkySpec {
    fn validate(&self) -> Result<(), ImagingError> {
        if !(self.half_width_lm > 0.0 && self.half_width_lm < std::f64::consts::FRAC_1_SQRT_2) {
            return Err(ImagingError::invalid(
                "half_width_lm",
                format!("{}; must be in (0, 1/√2)", self.half_width_lm),
            ));
        }
        if !(self.flux_min_jy > 0.0 && self.flux_min_jy.is_finite()) {
            return Err(ImagingError::invalid(
                "flux_min_jy",
                format!("{} Jy; must be positive", self.flux_min_jy),
            ));
        }
        if !(self.flux_max_jy >= self.flux_min_jy && self.flux_max_jy.is_finite()) {
            return Err(ImagingError::invalid(
                "flux_max_jy",
                format!("{} Jy; must be at least flux_min_jy", self.flux_max_jy),
            ));
        }
        if !self.count_slope.is_finite() {
            return Err(ImagingError::invalid("count_slope", "must be finite"));
        }
        if !(self.spectral_index_mean.is_finite()
            && self.spectral_index_sigma.is_finite()
            && self.spectral_index_sigma >= 0.0)
        {
            return Err(ImagingError::invalid(
                "spectral_index_sigma",
                "spectral index mean and sigma must be finite, sigma ≥ 0",
            ));
        }
        Ok(())
    }

    /// One flux from dN/dS ∝ S^−γ on [S_min, S_max] by inverting the cumulative count:
    /// S = [S_min^{1−γ} + U (S_max^{1−γ} − S_min^{1−γ})]^{1/(1−γ)} (γ ≠ 1), or
    /// S = S_min (S_max/S_min)^U (γ = 1).
    fn draw_flux(&self, rng: &mut Rng) -> f64 {
        let u = rng.uniform();
        let (a, b) = (self.flux_min_jy, self.flux_max_jy);
        let p = 1.0 - self.count_slope;
        let s = if p.abs() < 1e-12 {
            a * detmath::exp(u * detmath::ln(b / a))
        } else {
            let (ap, bp) = (
                detmath::exp(p * detmath::ln(a)),
                detmath::exp(p * detmath::ln(b)),
            );
            detmath::exp(detmath::ln(ap + u * (bp - ap)) / p)
        };
        s.clamp(a, b)
    }

    /// A source at `dir` with a flux from the counts and a Gaussian spectral index.
    fn draw_source(&self, dir: RaDec, rng: &mut Rng) -> PointSource {
        let flux_jy = self.draw_flux(rng);
        PointSource {
            dir,
            flux_jy,
            spectral_index: self.spectral_index_mean + self.spectral_index_sigma * rng.normal(),
        }
    }
}

/// The sky model of `sources` at `ref_freq_hz`, validated.
fn validated(sources: Vec<PointSource>, ref_freq_hz: f64) -> Result<SkyModel, ImagingError> {
    let sky = SkyModel {
        sources,
        ref_freq_hz,
    };
    sky.validate()?;
    Ok(sky)
}

/// A random field around `phase_centre`: positions uniform in the square |l|, |m| ≤
/// half-width, fluxes from the power-law counts, spectral indices Gaussian.
pub fn random_sky_lm(
    phase_centre: RaDec,
    ref_freq_hz: f64,
    spec: &RandomSkySpec,
    seed: u64,
) -> Result<SkyModel, ImagingError> {
    spec.validate()?;
    let mut rng = Rng::new(seed);
    let hw = spec.half_width_lm;
    let mut sources = Vec::with_capacity(spec.n_sources);
    for _ in 0..spec.n_sources {
        let l = rng.uniform_range(-hw, hw);
        let m = rng.uniform_range(-hw, hw);
        // |l|, |m| < 1/√2 keeps l² + m² < 1, so the direction exists.
        let dir = RaDec::from_lm(l, m, phase_centre)
            .ok_or_else(|| ImagingError::invalid("half_width_lm", "direction beyond horizon"))?;
        sources.push(spec.draw_source(dir, &mut rng));
    }
    validated(sources, ref_freq_hz)
}

/// A random field with every source exactly on a distinct pixel centre of `geom` within the
/// half-width, around `geom.phase_centre` (so gridded and exact predictions can be compared
/// without pixelisation error).
pub fn random_sky_on_pixels(
    geom: &ImageGeometry,
    ref_freq_hz: f64,
    spec: &RandomSkySpec,
    seed: u64,
) -> Result<SkyModel, ImagingError> {
    spec.validate()?;
    geom.validate()?;
    // Pixel offsets k from the centre with |k|·cell ≤ half-width, clipped to the image.
    let kmax = (spec.half_width_lm / geom.cell).floor() as i64;
    let range = |npix: usize| {
        let c = (npix / 2) as i64;
        ((c - kmax).max(0), (c + kmax).min(npix as i64 - 1))
    };
    let (x0, x1) = range(geom.npix_x);
    let (y0, y1) = range(geom.npix_y);
    let nx = (x1 - x0 + 1).max(0) as u64;
    let ny = (y1 - y0 + 1).max(0) as u64;
    if (spec.n_sources as u64) > nx * ny {
        return Err(ImagingError::invalid(
            "n_sources",
            format!(
                "{} sources but only {} pixels within the half-width",
                spec.n_sources,
                nx * ny
            ),
        ));
    }
    let mut rng = Rng::new(seed);
    let mut used = HashSet::with_capacity(spec.n_sources);
    let mut sources = Vec::with_capacity(spec.n_sources);
    while sources.len() < spec.n_sources {
        let x = x0 + rng.below(nx) as i64;
        let y = y0 + rng.below(ny) as i64;
        if !used.insert((x, y)) {
            continue;
        }
        let dir = geom
            .pixel_to_radec(x as f64, y as f64)
            .ok_or_else(|| ImagingError::invalid("cell", "pixel beyond the horizon"))?;
        sources.push(spec.draw_source(dir, &mut rng));
    }
    validated(sources, ref_freq_hz)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::invalid_name as name;

    #[test]
    fn flux_follows_the_power_law() {
        let s = PointSource {
            dir: RaDec::default(),
            flux_jy: 2.0,
            spectral_index: -0.7,
        };
        assert!((s.flux_at(200e6, 100e6) - 2.0 * 2f64.powf(-0.7)).abs() < 1e-15);
        assert_eq!(s.flux_at(100e6, 100e6), 2.0);
    }

    #[test]
    fn random_lm_field_respects_limits_and_seed() {
        let pc = RaDec::from_degrees(30.0, -30.0);
        let spec = RandomSkySpec {
            n_sources: 2000,
            ..Default::default()
        };
        let a = random_sky_lm(pc, 1e8, &spec, 5).unwrap();
        assert_eq!(a, random_sky_lm(pc, 1e8, &spec, 5).unwrap());
        assert_ne!(a, random_sky_lm(pc, 1e8, &spec, 6).unwrap());
        let mut idx = 0.0;
        for s in &a.sources {
            let p = s.dir.to_lmn(pc);
            assert!(p.l.abs() <= 0.01 + 1e-12 && p.m.abs() <= 0.01 + 1e-12);
            assert!((0.01..=1.0).contains(&s.flux_jy));
            idx += s.spectral_index;
        }
        // Mean spectral index −0.7 within 5 standard errors (σ = 0.2).
        assert!((idx / 2000.0 + 0.7).abs() < 5.0 * 0.2 / 2000f64.sqrt());
    }

    #[test]
    fn flux_distribution_matches_the_counts() {
        // For γ = 1.7 on [0.01, 1], the fraction above S is
        // (S^{-0.7} − 1)/(0.01^{-0.7} − 1); check at S = 0.1 within 5 binomial errors.
        let spec = RandomSkySpec {
            n_sources: 20_000,
            ..Default::default()
        };
        let sky = random_sky_lm(RaDec::default(), 1e8, &spec, 11).unwrap();
        let frac = sky.sources.iter().filter(|s| s.flux_jy > 0.1).count() as f64 / 20_000.0;
        let want = (0.1f64.powf(-0.7) - 1.0) / (0.01f64.powf(-0.7) - 1.0);
        let se = (want * (1.0 - want) / 20_000.0).sqrt();
        assert!((frac - want).abs() < 5.0 * se, "{frac} vs {want}");
    }

    #[test]
    fn pixel_field_sits_on_distinct_pixel_centres() {
        let geom =
            ImageGeometry::square(64, 1e-3, RaDec::from_degrees(10.0, -40.0), 1e8, 1e6).unwrap();
        let spec = RandomSkySpec {
            n_sources: 50,
            half_width_lm: 0.01,
            ..Default::default()
        };
        let sky = random_sky_on_pixels(&geom, 1e8, &spec, 3).unwrap();
        let mut seen = HashSet::new();
        for s in &sky.sources {
            let (x, y) = geom.radec_to_pixel(s.dir).unwrap();
            assert!((x - x.round()).abs() < 1e-6 && (y - y.round()).abs() < 1e-6);
            assert!((x.round() - 32.0).abs() <= 10.0 && (y.round() - 32.0).abs() <= 10.0);
            assert!(seen.insert((x.round() as i64, y.round() as i64)));
        }
        // 21 × 21 pixels within ±0.01 rad: 441 sources fill them, 442 cannot fit.
        let full = RandomSkySpec {
            n_sources: 441,
            ..spec
        };
        assert_eq!(
            random_sky_on_pixels(&geom, 1e8, &full, 3)
                .unwrap()
                .sources
                .len(),
            441
        );
        let too_many = RandomSkySpec {
            n_sources: 442,
            ..spec
        };
        assert_eq!(
            name(random_sky_on_pixels(&geom, 1e8, &too_many, 3)),
            "n_sources"
        );
        // to_image puts S·n on each pixel.
        let img = sky.to_image(&geom, 1e8).unwrap();
        let total: f64 = sky
            .sources
            .iter()
            .map(|s| s.flux_jy * s.dir.to_lmn(geom.phase_centre).n)
            .sum();
        assert!((img.data_yx.sum() - total).abs() < 1e-12 * total);
    }

    #[test]
    fn bad_specs_are_named() {
        let pc = RaDec::default();
        let bad = |f: fn(&mut RandomSkySpec)| {
            let mut s = RandomSkySpec::default();
            f(&mut s);
            s
        };
        assert_eq!(
            name(random_sky_lm(pc, 1e8, &bad(|s| s.half_width_lm = 0.9), 1)),
            "half_width_lm"
        );
        assert_eq!(
            name(random_sky_lm(pc, 1e8, &bad(|s| s.flux_min_jy = 0.0), 1)),
            "flux_min_jy"
        );
        assert_eq!(
            name(random_sky_lm(pc, 1e8, &bad(|s| s.flux_max_jy = 0.001), 1)),
            "flux_max_jy"
        );
        assert_eq!(
            name(random_sky_lm(pc, 0.0, &RandomSkySpec::default(), 1)),
            "ref_freq_hz"
        );
        let off = SkyModel {
            sources: vec![PointSource {
                dir: RaDec::from_lm(0.00123, 0.0, pc).unwrap(),
                flux_jy: 1.0,
                spectral_index: 0.0,
            }],
            ref_freq_hz: 1e8,
        };
        let geom = ImageGeometry::square(32, 1e-3, pc, 1e8, 0.0).unwrap();
        assert!(matches!(
            off.to_image(&geom, 1e8),
            Err(ImagingError::InvalidParameter { name, .. }) if name == "sources[0]"
        ));
    }
}
