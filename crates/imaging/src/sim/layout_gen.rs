//! The radial-band layout generator shared by the synthetic LOW and MID arrays: exact
//! station counts per annulus, a uniform-density disc or three logarithmic spiral arms,
//! rejection sampling for a minimum separation, stations on the curved Earth.

use super::detmath;
use super::rng::Rng;
use crate::ImagingError;
use crate::antenna::{Antenna, AntennaConfig};
use crate::coords::Enu;

/// Mean Earth radius (IUGG), m: the curvature used for the up coordinate.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// How stations are distributed inside an annulus.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BandShape {
    /// Uniform surface density (radius² uniform), any azimuth.
    Disc,
    /// Along the spiral arms; radii stratified log-uniformly so counts vary smoothly.
    Spiral,
}

/// An annulus r_inner < r ≤ r_outer (horizontal distance from the centre) holding exactly
/// `count` stations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    pub r_inner: f64,
    pub r_outer: f64,
    pub count: usize,
    pub shape: BandShape,
}

/// Logarithmic spiral arms θ_k(r) = phase0 + 2πk/n_arms + winding·ln(r / r_ref)
/// (a log spiral r ∝ e^{θ/winding}), with Gaussian scatter across the arm of standard
/// deviation max(scatter_min_m, scatter_frac·r).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpiralArms {
    pub n_arms: usize,
    pub phase0: f64,
    pub winding: f64,
    pub r_ref: f64,
    pub scatter_frac: f64,
    pub scatter_min_m: f64,
}

/// Everything that defines a synthetic layout.
#[derive(Debug, Clone, PartialEq)]
pub struct LayoutSpec {
    pub bands: Vec<Band>,
    pub arms: SpiralArms,
    /// Minimum horizontal distance between station centres, m.
    pub min_separation: f64,
    pub seed: u64,
}

impl LayoutSpec {
    /// A spec whose bands run between consecutive cumulative `anchors` (radius m, stations
    /// within it): uniform discs out to `disc_max_r` m, spiral arms beyond. The radii must
    /// increase (checked by [`generate`]) and the counts must not decrease.
    pub fn anchored(
        anchors: impl IntoIterator<Item = (f64, usize)>,
        disc_max_r: f64,
        arms: SpiralArms,
        min_separation: f64,
        seed: u64,
    ) -> Result<Self, ImagingError> {
        let mut bands = Vec::new();
        let (mut r_prev, mut n_prev) = (0.0, 0);
        for (i, (r, n)) in anchors.into_iter().enumerate() {
            let count = n.checked_sub(n_prev).ok_or_else(|| {
                ImagingError::invalid(
                    format!("anchors[{i}]"),
                    format!("{n} stations within {r} m is fewer than {n_prev} within {r_prev} m"),
                )
            })?;
            let shape = if r <= disc_max_r {
                BandShape::Disc
            } else {
                BandShape::Spiral
            };
            bands.push(Band {
                r_inner: r_prev,
                r_outer: r,
                count,
                shape,
            });
            (r_prev, n_prev) = (r, n);
        }
        Ok(Self {
            bands,
            arms,
            min_separation,
            seed,
        })
    }
}

/// Draws per station before giving up on a band position.
const MAX_TRIES: usize = 200_000;

/// Generates the stations band by band (inner first); returns positions and band indices.
///
/// Each position lies strictly inside its band as measured by `f64::hypot(e, n)` (the test
/// of `AntennaConfig::within_radius`), so cumulative counts at band edges are exact. The up
/// coordinate puts stations on a sphere of radius [`EARTH_RADIUS_M`] tangent at the centre:
/// u = √(R² − r²) − R = −r²/(R + √(R² − r²)).
pub fn generate(spec: &LayoutSpec) -> Result<Vec<(Enu, usize)>, ImagingError> {
    validate(spec)?;
    let mut rng = Rng::new(spec.seed);
    let total: usize = spec.bands.iter().map(|b| b.count).sum();
    let mut placed: Vec<(Enu, usize)> = Vec::with_capacity(total);
    let min2 = spec.min_separation * spec.min_separation;
    for (ib, band) in spec.bands.iter().enumerate() {
        for i in 0..band.count {
            let mut ok = false;
            for attempt in 0..MAX_TRIES {
                // After many failures in its stratum a spiral station may use the whole band.
                let stratum = (attempt < MAX_TRIES / 2).then_some(i);
                let (e, n) = draw(&mut rng, band, &spec.arms, stratum, i);
                let r = e.hypot(n);
                if !(r > band.r_inner && r <= band.r_outer) {
                    continue;
                }
                let clear = placed
                    .iter()
                    .all(|(p, _)| (p.e - e).powi(2) + (p.n - n).powi(2) >= min2);
                if clear {
                    let u = -(r * r) / (EARTH_RADIUS_M + (EARTH_RADIUS_M.powi(2) - r * r).sqrt());
                    placed.push((Enu { e, n, u }, ib));
                    ok = true;
                    break;
                }
            }
            if !ok {
                return Err(ImagingError::Unsupported(format!(
                    "layout: could not place station {} of band {}–{} m with separation {} m",
                    i + 1,
                    band.r_inner,
                    band.r_outer,
                    spec.min_separation
                )));
            }
        }
    }
    Ok(placed)
}

/// One candidate (e, n) in `band`; `index` is the station's index within the band.
fn draw(
    rng: &mut Rng,
    band: &Band,
    arms: &SpiralArms,
    stratum: Option<usize>,
    index: usize,
) -> (f64, f64) {
    let tau = std::f64::consts::TAU;
    match band.shape {
        BandShape::Disc => {
            let (a2, b2) = (band.r_inner * band.r_inner, band.r_outer * band.r_outer);
            let r = (a2 + rng.uniform_open() * (b2 - a2)).sqrt();
            let (s, c) = detmath::sin_cos(tau * rng.uniform());
            (r * c, r * s)
        }
        BandShape::Spiral => {
            let t = match stratum {
                Some(i) => (i as f64 + rng.uniform_open()) / band.count as f64,
                None => rng.uniform_open(),
            };
            let ln_in = detmath::ln(band.r_inner);
            let ln_out = detmath::ln(band.r_outer);
            let r = detmath::exp(ln_in + t * (ln_out - ln_in));
            let arm = (index % arms.n_arms) as f64;
            let sigma = arms.scatter_min_m.max(arms.scatter_frac * r);
            let theta = arms.phase0
                + tau * arm / arms.n_arms as f64
                + arms.winding * detmath::ln(r / arms.r_ref)
                + sigma * rng.normal() / r;
            let (s, c) = detmath::sin_cos(theta);
            (r * c, r * s)
        }
    }
}

fn validate(spec: &LayoutSpec) -> Result<(), ImagingError> {
    let mut prev = 0.0;
    for (i, b) in spec.bands.iter().enumerate() {
        if !(b.r_inner >= prev && b.r_outer > b.r_inner && b.r_outer.is_finite()) {
            return Err(ImagingError::invalid(
                format!("bands[{i}]"),
                "bands must be contiguous, increasing and finite",
            ));
        }
        if b.shape == BandShape::Spiral && b.r_inner <= 0.0 {
            return Err(ImagingError::invalid(
                format!("bands[{i}]"),
                "a spiral band needs a positive inner radius",
            ));
        }
        prev = b.r_outer;
    }
    if spec.arms.n_arms == 0 || !(spec.arms.r_ref.is_finite() && spec.arms.r_ref > 0.0) {
        return Err(ImagingError::invalid(
            "arms",
            "need at least one arm and a positive reference radius",
        ));
    }
    if !(spec.min_separation >= 0.0 && spec.min_separation.is_finite()) {
        return Err(ImagingError::invalid(
            "min_separation",
            "must be finite and non-negative",
        ));
    }
    Ok(())
}

/// Antennas of one kind (one diameter) at `positions`, the i-th (from 0) named `name(i)`.
pub fn antennas_of_kind(
    positions: impl IntoIterator<Item = Enu>,
    diameter: f64,
    name: impl Fn(usize) -> String,
) -> impl Iterator<Item = Antenna> {
    positions
        .into_iter()
        .enumerate()
        .map(move |(i, enu)| Antenna {
            name: name(i),
            enu,
            diameter,
        })
}

/// Keeps the antennas within `rmax` metres like RASCIL's `rmax` (`+∞` keeps all); an error
/// names `rmax` when it is NaN or not positive, or leaves fewer than two antennas.
pub fn apply_rmax(config: AntennaConfig, rmax: f64) -> Result<AntennaConfig, ImagingError> {
    if rmax.is_nan() || rmax <= 0.0 {
        return Err(ImagingError::invalid(
            "rmax",
            format!("{rmax} m; must be positive (use infinity for the whole array)"),
        ));
    }
    let kept = config.within_radius(rmax);
    if kept.len() < 2 {
        return Err(ImagingError::invalid(
            "rmax",
            format!(
                "{rmax} m keeps {} antenna(s) of {}; at least 2 are needed for a baseline",
                kept.len(),
                config.name
            ),
        ));
    }
    Ok(kept)
}

/// Smallest horizontal distance between any two positions.
#[cfg(test)]
pub fn min_pair_distance(pos: &[Enu]) -> f64 {
    let mut best = f64::INFINITY;
    for (i, a) in pos.iter().enumerate() {
        for b in &pos[i + 1..] {
            best = best.min((a.e - b.e).hypot(a.n - b.n));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARMS: SpiralArms = SpiralArms {
        n_arms: 3,
        phase0: 0.0,
        winding: 0.5,
        r_ref: 100.0,
        scatter_frac: 0.0,
        scatter_min_m: 0.0,
    };

    /// 10 stations in a disc to 100 m, 30 on unscattered arms to 1 km.
    fn spec() -> LayoutSpec {
        LayoutSpec::anchored([(100.0, 10), (1000.0, 40)], 100.0, ARMS, 20.0, 3).unwrap()
    }

    #[test]
    fn anchors_become_contiguous_bands() {
        let s = spec();
        let want = [
            (0.0, 100.0, 10, BandShape::Disc),
            (100.0, 1000.0, 30, BandShape::Spiral),
        ];
        assert_eq!(s.bands.len(), want.len());
        for (b, (r_inner, r_outer, count, shape)) in s.bands.iter().zip(want) {
            assert_eq!(
                *b,
                Band {
                    r_inner,
                    r_outer,
                    count,
                    shape
                }
            );
        }
        let e = LayoutSpec::anchored([(100.0, 10), (200.0, 9)], 100.0, ARMS, 20.0, 3);
        assert!(
            matches!(e, Err(ImagingError::InvalidParameter { name, .. }) if name == "anchors[1]")
        );
    }

    #[test]
    fn band_counts_separation_and_curvature() {
        let out = generate(&spec()).unwrap();
        let pos: Vec<Enu> = out.iter().map(|p| p.0).collect();
        let config = AntennaConfig {
            name: "t".into(),
            location: Default::default(),
            antennas: antennas_of_kind(pos.iter().copied(), 1.0, |i| i.to_string()).collect(),
        };
        assert_eq!(config.within_radius(100.0).len(), 10);
        assert_eq!(config.within_radius(1000.0).len(), 40);
        assert!(
            out.iter()
                .enumerate()
                .all(|(i, p)| p.1 == usize::from(i >= 10))
        );
        assert!(min_pair_distance(&pos) >= 20.0);
        for p in &pos {
            // Sag of a sphere: u ≈ −r²/2R to first order.
            let r2 = p.e * p.e + p.n * p.n;
            assert!((p.u + r2 / (2.0 * EARTH_RADIUS_M)).abs() < 1e-9 * (1.0 + r2 / 1e6));
        }
    }

    #[test]
    fn spiral_without_scatter_lies_on_the_arms() {
        let s = spec();
        let out = generate(&s).unwrap();
        for (k, (p, _)) in out.iter().skip(10).enumerate() {
            let r = p.e.hypot(p.n);
            let arm = (k % 3) as f64;
            let want = arm * std::f64::consts::TAU / 3.0 + 0.5 * (r / 100.0).ln();
            let d = (p.n.atan2(p.e) - want).rem_euclid(std::f64::consts::TAU);
            assert!(d.min(std::f64::consts::TAU - d) < 1e-9, "station {k}");
        }
    }

    #[test]
    fn impossible_packing_is_an_error_not_a_hang_or_panic() {
        let mut s = spec();
        s.bands.truncate(1);
        s.bands[0].count = 200;
        s.min_separation = 30.0;
        assert!(matches!(generate(&s), Err(ImagingError::Unsupported(_))));
        s.bands[0].r_outer = -1.0;
        assert!(generate(&s).is_err());
    }
}
