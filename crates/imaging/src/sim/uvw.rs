//! Earth-rotation synthesis: baseline uvw (metres) for every cross-correlation baseline
//! at each hour angle, rows time-major, following Thompson, Moran & Swenson (2017),
//! "Interferometry and Synthesis in Radio Astronomy", 3rd ed., eq. 4.1 and §4.2.

use crate::ImagingError;
use crate::antenna::AntennaConfig;
use crate::coords::{EarthLocation, Enu, HourAngle, RaDec, UvwMetres};

/// Solar seconds per sidereal second: one sidereal day is 86164.0905 s = 0.99726958 days.
pub const SIDEREAL_FACTOR: f64 = 0.997_269_58;

/// The rows of a synthesised observation: time-major, then baselines (a1, a2), a1 < a2.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineRows {
    /// uvw of ant2 − uvw of ant1 (the MeasurementSet convention), metres.
    pub uvw_r: Vec<UvwMetres>,
    pub ant1_r: Vec<u32>,
    pub ant2_r: Vec<u32>,
    /// Seconds relative to transit of the phase centre (hour angle 0).
    pub time_r: Vec<f64>,
}

/// Local equatorial coordinates (X towards H = 0, δ = 0; Y towards H = −6 h, δ = 0; Z to the
/// north celestial pole) of an ENU position at geodetic latitude `lat` (TMS eq. 4.4 inverse):
/// X = −sin(lat)·N + cos(lat)·U, Y = E, Z = cos(lat)·N + sin(lat)·U. This frame is the
/// geocentric one turned to the site's meridian, so the rotation is
/// [`EarthLocation::enu_to_xyz_offset`] for a site at longitude 0.
pub fn enu_to_local_xyz(p: Enu, lat: f64) -> [f64; 3] {
    let site = EarthLocation {
        lon: 0.0,
        lat,
        height: 0.0,
    };
    let d = site.enu_to_xyz_offset(p);
    [d.x, d.y, d.z]
}

/// uvw of a local-equatorial vector for hour angle `h` and declination `dec` (TMS eq. 4.1):
/// u = sin H·X + cos H·Y; v = −sin δ cos H·X + sin δ sin H·Y + cos δ·Z;
/// w = cos δ cos H·X − cos δ sin H·Y + sin δ·Z.
pub fn xyz_to_uvw(xyz: [f64; 3], h: HourAngle, dec: f64) -> UvwMetres {
    let [x, y, z] = xyz;
    let (sh, ch) = h.0.sin_cos();
    let (sd, cd) = dec.sin_cos();
    UvwMetres {
        u: sh * x + ch * y,
        v: -sd * ch * x + sd * sh * y + cd * z,
        w: cd * ch * x - cd * sh * y + sd * z,
    }
}

/// Seconds since transit for an hour angle: H · 86400/(2π) · [`SIDEREAL_FACTOR`].
pub fn hour_angle_to_seconds(h: HourAngle) -> f64 {
    h.0 * 86_400.0 / std::f64::consts::TAU * SIDEREAL_FACTOR
}

/// `ntimes` hour angles evenly spaced over `span_hours`, centred on transit, end points
/// included (like `numpy.linspace(-span/2, span/2, ntimes)`); `ntimes = 1` gives [0].
pub fn hour_angles(ntimes: usize, span_hours: f64) -> Result<Vec<HourAngle>, ImagingError> {
    if ntimes == 0 {
        return Err(ImagingError::invalid("ntimes", "must be at least 1"));
    }
    if !(span_hours.is_finite() && (0.0..24.0).contains(&span_hours)) {
        return Err(ImagingError::invalid(
            "span_hours",
            format!("{span_hours} h; must be in [0, 24)"),
        ));
    }
    if ntimes == 1 {
        return Ok(vec![HourAngle(0.0)]);
    }
    let step = span_hours / (ntimes - 1) as f64;
    Ok((0..ntimes)
        .map(|k| HourAngle::from_hours(-span_hours / 2.0 + k as f64 * step))
        .collect())
}

/// Synthesises the rows of an observation of `phase_centre` at `hour_angles` with every
/// baseline of `config` (no autocorrelations). Only the declination of the phase centre
/// matters, as the hour angles are given.
pub fn synthesize_uvw(
    config: &AntennaConfig,
    phase_centre: RaDec,
    hour_angles: &[HourAngle],
) -> Result<BaselineRows, ImagingError> {
    let nant = config.len();
    if nant < 2 {
        return Err(ImagingError::invalid(
            "config",
            format!(
                "{} has {nant} antenna(s); at least 2 are needed",
                config.name
            ),
        ));
    }
    if nant > u32::MAX as usize {
        return Err(ImagingError::invalid(
            "config",
            "too many antennas for u32 ids",
        ));
    }
    if hour_angles.is_empty() {
        return Err(ImagingError::invalid("hour_angles", "no hour angles"));
    }
    if let Some(i) = hour_angles.iter().position(|h| !h.0.is_finite()) {
        return Err(ImagingError::NonFinite {
            name: "hour_angles".into(),
            index: i,
        });
    }
    let dec = phase_centre.dec;
    if !(dec.is_finite() && dec.abs() <= std::f64::consts::FRAC_PI_2) {
        return Err(ImagingError::invalid(
            "phase_centre.dec",
            format!("{dec} rad; must be within ±π/2"),
        ));
    }
    for (i, a) in config.antennas.iter().enumerate() {
        if !(a.enu.e.is_finite() && a.enu.n.is_finite() && a.enu.u.is_finite()) {
            return Err(ImagingError::NonFinite {
                name: format!("config.antennas[{i}].enu"),
                index: i,
            });
        }
    }
    let lat = config.location.lat;
    let xyz: Vec<[f64; 3]> = config
        .antennas
        .iter()
        .map(|a| enu_to_local_xyz(a.enu, lat))
        .collect();
    let nbl = config.n_baselines();
    let nrow = nbl * hour_angles.len();
    let mut rows = BaselineRows {
        uvw_r: Vec::with_capacity(nrow),
        ant1_r: Vec::with_capacity(nrow),
        ant2_r: Vec::with_capacity(nrow),
        time_r: Vec::with_capacity(nrow),
    };
    for &h in hour_angles {
        let t = hour_angle_to_seconds(h);
        let ant_uvw: Vec<UvwMetres> = xyz.iter().map(|&p| xyz_to_uvw(p, h, dec)).collect();
        for a1 in 0..nant {
            for a2 in a1 + 1..nant {
                let (p, q) = (ant_uvw[a1], ant_uvw[a2]);
                rows.uvw_r
                    .push(UvwMetres::new(q.u - p.u, q.v - p.v, q.w - p.w));
                rows.ant1_r.push(a1 as u32);
                rows.ant2_r.push(a2 as u32);
                rows.time_r.push(t);
            }
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::antenna::Antenna;

    fn config(lat_deg: f64, pos: &[Enu]) -> AntennaConfig {
        AntennaConfig {
            name: "t".into(),
            location: EarthLocation::from_degrees(21.0, lat_deg, 0.0),
            antennas: pos
                .iter()
                .enumerate()
                .map(|(i, &enu)| Antenna {
                    name: format!("a{i}"),
                    enu,
                    diameter: 15.0,
                })
                .collect(),
        }
    }

    fn enu(e: f64, n: f64, u: f64) -> Enu {
        Enu { e, n, u }
    }

    #[test]
    fn row_order_and_times() {
        let c = config(-30.0, &[enu(0., 0., 0.), enu(1., 0., 0.), enu(0., 1., 0.)]);
        let ha = hour_angles(3, 2.0).unwrap();
        assert_eq!(ha.len(), 3);
        assert!((ha[0].hours() + 1.0).abs() < 1e-15 && ha[1].0 == 0.0);
        let rows = synthesize_uvw(&c, RaDec::from_degrees(0.0, -30.0), &ha).unwrap();
        assert_eq!(rows.ant1_r, [0, 0, 1, 0, 0, 1, 0, 0, 1]);
        assert_eq!(rows.ant2_r, [1, 2, 2, 1, 2, 2, 1, 2, 2]);
        // One sidereal hour = 3600 · 0.99726958 s.
        assert!((rows.time_r[8] - 3600.0 * 0.997_269_58).abs() < 1e-9);
        assert!((rows.time_r[0] + 3600.0 * 0.997_269_58).abs() < 1e-9);
        assert_eq!(hour_angles(1, 8.0).unwrap(), [HourAngle(0.0)]);
        assert!(hour_angles(0, 8.0).is_err() && hour_angles(3, f64::NAN).is_err());
    }

    #[test]
    fn hand_computed_case_at_transit() {
        // lat = δ = −30°: the source is at the zenith at H = 0. A north baseline of 100 m
        // then has (u, v, w) = (0, 100, 0); an east one (100, 0, 0); an up one (0, 0, 10).
        let c = config(
            -30.0,
            &[
                enu(0., 0., 0.),
                enu(0., 100., 0.),
                enu(100., 0., 0.),
                enu(0., 0., 10.),
            ],
        );
        let rows = synthesize_uvw(&c, RaDec::from_degrees(0.0, -30.0), &[HourAngle(0.0)]).unwrap();
        let want = [(0.0, 100.0, 0.0), (100.0, 0.0, 0.0), (0.0, 0.0, 10.0)];
        for (k, (u, v, w)) in want.into_iter().enumerate() {
            let p = rows.uvw_r[k];
            assert!(
                (p.u - u).abs() < 1e-12 && (p.v - v).abs() < 1e-12 && (p.w - w).abs() < 1e-12,
                "baseline {k}: {p:?}"
            );
        }
        // Pole: at δ = +90° the uv plane is the equatorial plane; at H = 6 h (π/2) a north
        // baseline at lat 0 (X = 0, Z = 100) has u = 0, v = 100·cos δ = 0, w = 100.
        let c = config(0.0, &[enu(0., 0., 0.), enu(0., 100., 0.)]);
        let rows = synthesize_uvw(
            &c,
            RaDec::from_degrees(0.0, 90.0),
            &[HourAngle::from_hours(6.0)],
        )
        .unwrap();
        let p = rows.uvw_r[0];
        assert!(p.u.abs() < 1e-12 && p.v.abs() < 1e-12 && (p.w - 100.0).abs() < 1e-12);
    }

    #[test]
    fn rotation_preserves_baseline_length() {
        let pos = [
            enu(0., 0., 0.),
            enu(1234.5, -321.0, 4.0),
            enu(-50.0, 2000.0, -7.5),
            enu(10.0, 20.0, 30.0),
        ];
        let c = config(-26.8, &pos);
        let ha = hour_angles(7, 8.0).unwrap();
        let rows = synthesize_uvw(&c, RaDec::from_degrees(10.0, -45.0), &ha).unwrap();
        for (r, p) in rows.uvw_r.iter().enumerate() {
            let (a, b) = (pos[rows.ant1_r[r] as usize], pos[rows.ant2_r[r] as usize]);
            let len = ((b.e - a.e).powi(2) + (b.n - a.n).powi(2) + (b.u - a.u).powi(2)).sqrt();
            let got = (p.u * p.u + p.v * p.v + p.w * p.w).sqrt();
            assert!((got - len).abs() < 1e-12 * len, "row {r}: {got} vs {len}");
        }
    }

    #[test]
    fn baseline_pointing_at_the_source_is_all_w() {
        // The source direction in local XYZ is s = (cos δ cos H, −cos δ sin H, sin δ); a
        // baseline L·s, turned back into ENU, must give (0, 0, L).
        let (lat, dec, h, len) = (-0.47_f64, -0.8_f64, HourAngle(0.6), 321.0);
        let s = [dec.cos() * h.0.cos(), -dec.cos() * h.0.sin(), dec.sin()];
        let [x, y, z] = s.map(|c| c * len);
        let (sl, cl) = lat.sin_cos();
        let b = enu(y, -sl * x + cl * z, cl * x + sl * z);
        let mut c = config(0.0, &[enu(0., 0., 0.), b]);
        c.location.lat = lat;
        let rows = synthesize_uvw(&c, RaDec::new(1.0, dec), &[h]).unwrap();
        let p = rows.uvw_r[0];
        assert!(p.u.abs() < 1e-12 * len && p.v.abs() < 1e-12 * len);
        assert!((p.w - len).abs() < 1e-12 * len);
    }

    #[test]
    fn rejects_bad_input() {
        let one = config(0.0, &[enu(0., 0., 0.)]);
        let two = config(0.0, &[enu(0., 0., 0.), enu(1., 0., 0.)]);
        let pc = RaDec::default();
        assert!(synthesize_uvw(&one, pc, &[HourAngle(0.0)]).is_err());
        assert!(synthesize_uvw(&two, pc, &[]).is_err());
        assert!(synthesize_uvw(&two, pc, &[HourAngle(f64::NAN)]).is_err());
        assert!(synthesize_uvw(&two, RaDec::new(0.0, 2.0), &[HourAngle(0.0)]).is_err());
    }
}
