//! Typed coordinates: baseline uvw, direction cosines lmn, sky positions, hour angles,
//! local and geocentric antenna positions.
//!
//! Angles are radians unless a name says otherwise; positions are metres.

use serde::{Deserialize, Serialize};

use crate::SPEED_OF_LIGHT;

/// A baseline coordinate in metres (u east, v north, w towards the phase centre).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct UvwMetres {
    pub u: f64,
    pub v: f64,
    pub w: f64,
}

/// A baseline coordinate in wavelengths at one frequency.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct UvwLambda {
    pub u: f64,
    pub v: f64,
    pub w: f64,
}

impl UvwMetres {
    pub const fn new(u: f64, v: f64, w: f64) -> Self {
        Self { u, v, w }
    }

    /// Converts to wavelengths at `freq_hz`.
    pub fn to_lambda(self, freq_hz: f64) -> UvwLambda {
        let s = freq_hz / SPEED_OF_LIGHT;
        UvwLambda {
            u: self.u * s,
            v: self.v * s,
            w: self.w * s,
        }
    }

    /// Length of the projected (u, v) baseline in metres.
    pub fn uv_length(self) -> f64 {
        self.u.hypot(self.v)
    }
}

/// Direction cosines relative to the phase centre; `n = sqrt(1 − l² − m²)`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Lmn {
    pub l: f64,
    pub m: f64,
    pub n: f64,
}

impl Lmn {
    /// Builds lmn from (l, m); returns `None` when l² + m² > 1 (below the horizon of the
    /// tangent plane).
    pub fn from_lm(l: f64, m: f64) -> Option<Self> {
        let r2 = l * l + m * m;
        if r2 > 1.0 {
            return None;
        }
        Some(Self {
            l,
            m,
            n: (1.0 - r2).sqrt(),
        })
    }

    /// `n − 1` computed without cancellation for small l, m: −r²/(1 + n).
    pub fn n_minus_one(self) -> f64 {
        -(self.l * self.l + self.m * self.m) / (1.0 + self.n)
    }
}

/// A sky direction (ICRS/J2000 assumed), radians.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RaDec {
    pub ra: f64,
    pub dec: f64,
}

impl RaDec {
    pub const fn new(ra: f64, dec: f64) -> Self {
        Self { ra, dec }
    }

    pub fn from_degrees(ra_deg: f64, dec_deg: f64) -> Self {
        Self {
            ra: ra_deg.to_radians(),
            dec: dec_deg.to_radians(),
        }
    }

    /// Direction cosines of `self` relative to `centre` (the SIN/orthographic projection,
    /// as used by the FITS `RA---SIN`/`DEC--SIN` WCS).
    pub fn to_lmn(self, centre: RaDec) -> Lmn {
        let dra = self.ra - centre.ra;
        let (sd, cd) = self.dec.sin_cos();
        let (sd0, cd0) = centre.dec.sin_cos();
        let l = cd * dra.sin();
        let m = sd * cd0 - cd * sd0 * dra.cos();
        let n = sd * sd0 + cd * cd0 * dra.cos();
        Lmn { l, m, n }
    }

    /// Inverse of [`RaDec::to_lmn`] for a direction with n > 0.
    pub fn from_lm(l: f64, m: f64, centre: RaDec) -> Option<RaDec> {
        let lmn = Lmn::from_lm(l, m)?;
        let (sd0, cd0) = centre.dec.sin_cos();
        let dec = (m * cd0 + lmn.n * sd0).clamp(-1.0, 1.0).asin();
        let ra = centre.ra + l.atan2(lmn.n * cd0 - m * sd0);
        Some(RaDec {
            ra: ra.rem_euclid(std::f64::consts::TAU),
            dec,
        })
    }
}

/// An hour angle in radians (positive west of the meridian).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default, Serialize, Deserialize)]
pub struct HourAngle(pub f64);

impl HourAngle {
    pub fn from_hours(h: f64) -> Self {
        Self(h * std::f64::consts::PI / 12.0)
    }

    pub fn hours(self) -> f64 {
        self.0 * 12.0 / std::f64::consts::PI
    }
}

/// A position in the local east-north-up frame of the array, metres.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Enu {
    pub e: f64,
    pub n: f64,
    pub u: f64,
}

/// A geocentric (ITRF/ECEF) position in metres, or a difference of two.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Xyz {
    pub x: f64,
    pub y: f64,
    pub z: f64,
}

/// A geodetic site: longitude, latitude (radians), height above the WGS84 ellipsoid (m).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct EarthLocation {
    pub lon: f64,
    pub lat: f64,
    pub height: f64,
}

const WGS84_A: f64 = 6_378_137.0;
const WGS84_F: f64 = 1.0 / 298.257_223_563;

impl EarthLocation {
    pub fn from_degrees(lon_deg: f64, lat_deg: f64, height: f64) -> Self {
        Self {
            lon: lon_deg.to_radians(),
            lat: lat_deg.to_radians(),
            height,
        }
    }

    /// Geocentric ITRF position of this site (WGS84 ellipsoid).
    pub fn to_xyz(self) -> Xyz {
        let e2 = WGS84_F * (2.0 - WGS84_F);
        let (sl, cl) = self.lat.sin_cos();
        let nrad = WGS84_A / (1.0 - e2 * sl * sl).sqrt();
        Xyz {
            x: (nrad + self.height) * cl * self.lon.cos(),
            y: (nrad + self.height) * cl * self.lon.sin(),
            z: (nrad * (1.0 - e2) + self.height) * sl,
        }
    }

    /// Site from a geocentric position (Bowring's iteration, sub-millimetre on Earth).
    pub fn from_xyz(p: Xyz) -> Self {
        let e2 = WGS84_F * (2.0 - WGS84_F);
        let lon = p.y.atan2(p.x);
        let r = p.x.hypot(p.y);
        let mut lat = p.z.atan2(r * (1.0 - e2));
        let mut height = 0.0;
        for _ in 0..8 {
            let sl = lat.sin();
            let nrad = WGS84_A / (1.0 - e2 * sl * sl).sqrt();
            height = r / lat.cos() - nrad;
            lat = p.z.atan2(r * (1.0 - e2 * nrad / (nrad + height)));
        }
        Self { lon, lat, height }
    }

    /// Rotates a geocentric offset (ITRF difference vector) into local ENU at this site.
    pub fn xyz_offset_to_enu(self, d: Xyz) -> Enu {
        let (sl, cl) = self.lon.sin_cos();
        let (sp, cp) = self.lat.sin_cos();
        Enu {
            e: -sl * d.x + cl * d.y,
            n: -sp * cl * d.x - sp * sl * d.y + cp * d.z,
            u: cp * cl * d.x + cp * sl * d.y + sp * d.z,
        }
    }

    /// Inverse of [`EarthLocation::xyz_offset_to_enu`].
    pub fn enu_to_xyz_offset(self, p: Enu) -> Xyz {
        let (sl, cl) = self.lon.sin_cos();
        let (sp, cp) = self.lat.sin_cos();
        Xyz {
            x: -sl * p.e - sp * cl * p.n + cp * cl * p.u,
            y: cl * p.e - sp * sl * p.n + cp * sl * p.u,
            z: cp * p.n + sp * p.u,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radec_lm_round_trip() {
        let c = RaDec::from_degrees(15.0, -45.0);
        let s = RaDec::from_degrees(17.0, -43.5);
        let lmn = s.to_lmn(c);
        let back = RaDec::from_lm(lmn.l, lmn.m, c).unwrap();
        assert!((back.ra - s.ra).abs() < 1e-12 && (back.dec - s.dec).abs() < 1e-12);
        assert!((lmn.n * lmn.n + lmn.l * lmn.l + lmn.m * lmn.m - 1.0).abs() < 1e-12);
    }

    #[test]
    fn n_minus_one_matches_direct() {
        let p = Lmn::from_lm(0.3, -0.2).unwrap();
        assert!((p.n_minus_one() - (p.n - 1.0)).abs() < 1e-15);
    }

    #[test]
    fn enu_xyz_round_trip() {
        let site = EarthLocation::from_degrees(116.76, -26.82, 377.0);
        let p = Enu {
            e: 1234.5,
            n: -987.0,
            u: 3.0,
        };
        let q = site.xyz_offset_to_enu(site.enu_to_xyz_offset(p));
        assert!((p.e - q.e).abs() < 1e-9 && (p.n - q.n).abs() < 1e-9 && (p.u - q.u).abs() < 1e-9);
        let back = EarthLocation::from_xyz(site.to_xyz());
        assert!((back.lat - site.lat).abs() < 1e-12 && (back.height - site.height).abs() < 1e-4);
    }
}
