//! What the subtables of a MeasurementSet say (MSv2, Kemball & Wieringa, "MeasurementSet
//! definition version 2.0", AIPS++ Note 229): spectral windows, polarization setups,
//! data descriptions, fields, antennas and the telescope, as plain data.

use std::path::PathBuf;

use aperture_imaging::antenna::{Antenna, AntennaConfig};
use aperture_imaging::coords::{EarthLocation, RaDec, Xyz};
use serde::Serialize;

use crate::corr::{Basis, StokesI, corr_list};

/// One row of SPECTRAL_WINDOW.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpectralWindow {
    pub id: usize,
    pub name: String,
    /// CHAN_FREQ: channel centre frequencies, Hz, in the frame `frame`.
    pub chan_freq_hz: Vec<f64>,
    /// CHAN_WIDTH, Hz (may be negative for descending channels).
    pub chan_width_hz: Vec<f64>,
    /// REF_FREQUENCY, Hz.
    pub ref_freq_hz: f64,
    /// MEAS_FREQ_REF: the casacore `MFrequency::Types` code (5 = TOPO, 1 = LSRK …).
    pub meas_freq_ref: i32,
}

impl SpectralWindow {
    pub fn nchan(&self) -> usize {
        self.chan_freq_hz.len()
    }

    /// The name of the frequency frame `meas_freq_ref`.
    pub fn frame(&self) -> String {
        frequency_frame(self.meas_freq_ref)
    }
}

/// The name of a casacore `MFrequency::Types` code.
pub fn frequency_frame(code: i32) -> String {
    const NAMES: [&str; 9] = [
        "REST", "LSRK", "LSRD", "BARY", "GEO", "TOPO", "GALACTO", "LGROUP", "CMB",
    ];
    match usize::try_from(code).ok().and_then(|i| NAMES.get(i)) {
        Some(n) => (*n).to_owned(),
        None if code == 64 => "Undefined".to_owned(),
        None => format!("unknown ({code})"),
    }
}

/// One row of POLARIZATION.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Polarization {
    pub id: usize,
    /// CORR_TYPE: casacore Stokes type codes, one per correlation.
    pub corr_type: Vec<i32>,
}

impl Polarization {
    /// How Stokes I is made from these correlations, if it can be.
    pub fn stokes_i(&self) -> Option<(StokesI, Basis)> {
        StokesI::from_corr_types(&self.corr_type)
    }

    /// The correlations, e.g. `XX(9), XY(10), YX(11), YY(12)`.
    pub fn describe(&self) -> String {
        corr_list(&self.corr_type)
    }
}

/// One row of DATA_DESCRIPTION.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DataDescription {
    pub id: usize,
    pub spw_id: usize,
    pub pol_id: usize,
}

/// One row of FIELD.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Field {
    pub id: usize,
    pub name: String,
    /// PHASE_DIR (its zeroth polynomial term), radians.
    #[serde(skip)]
    pub phase_centre: RaDec,
    /// The direction reference frame of PHASE_DIR (MEASINFO `Ref`, e.g. "J2000").
    pub frame: String,
}

/// One row of ANTENNA.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AntennaRow {
    pub name: String,
    /// POSITION: geocentric ITRF metres.
    pub position: Xyz,
    /// DISH_DIAMETER, metres.
    pub dish_diameter_m: f64,
}

/// Everything the reader learns from the subtables and the main table's description.
#[derive(Debug, Clone, PartialEq)]
pub struct MsMeta {
    pub path: PathBuf,
    /// Rows of the main table.
    pub nrows: u64,
    /// The main table's columns.
    pub columns: Vec<String>,
    pub spectral_windows: Vec<SpectralWindow>,
    pub polarizations: Vec<Polarization>,
    pub data_descriptions: Vec<DataDescription>,
    pub fields: Vec<Field>,
    pub antennas: Vec<AntennaRow>,
    /// OBSERVATION/TELESCOPE_NAME of the first observation (None when empty).
    pub telescope: Option<String>,
}

impl MsMeta {
    pub fn has_column(&self, name: &str) -> bool {
        self.columns.iter().any(|c| c == name)
    }

    /// The antennas as the imaging crate's configuration: the site is the centroid of the
    /// ITRF positions (on the WGS84 ellipsoid), positions east-north-up about it.
    pub fn antenna_config(&self) -> AntennaConfig {
        let n = self.antennas.len().max(1) as f64;
        let mut c = Xyz::default();
        for a in &self.antennas {
            c.x += a.position.x / n;
            c.y += a.position.y / n;
            c.z += a.position.z / n;
        }
        let location = EarthLocation::from_xyz(c);
        let antennas = self
            .antennas
            .iter()
            .map(|a| Antenna {
                name: a.name.clone(),
                enu: location.xyz_offset_to_enu(Xyz {
                    x: a.position.x - c.x,
                    y: a.position.y - c.y,
                    z: a.position.z - c.z,
                }),
                diameter: a.dish_diameter_m,
            })
            .collect();
        AntennaConfig {
            name: self.telescope.clone().unwrap_or_default(),
            location,
            antennas,
        }
    }

    /// The dish diameter when every antenna has the same positive one.
    pub fn common_dish_diameter(&self) -> Option<f64> {
        let d = self.antennas.first()?.dish_diameter_m;
        (d.is_finite() && d > 0.0 && self.antennas.iter().all(|a| a.dish_diameter_m == d))
            .then_some(d)
    }
}
