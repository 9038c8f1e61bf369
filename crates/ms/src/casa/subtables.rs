//! Reading the subtables the imaging needs (SPECTRAL_WINDOW, POLARIZATION,
//! DATA_DESCRIPTION, FIELD, ANTENNA, OBSERVATION) into [`MsMeta`], checking each column's
//! type and each value's range first.

use std::path::Path;

use aperture_imaging::coords::{RaDec, Xyz};
use rubbl_casatables::GlueDataType as T;

use super::table::{Shape, Tab};
use crate::error::MsError;
use crate::meta::{AntennaRow, DataDescription, Field, MsMeta, Polarization, SpectralWindow};

/// A non-negative id read from an int column, or an error naming the row.
fn id(tab: &Tab, column: &str, row: u64, v: i32, nmax: usize, of: &str) -> Result<usize, MsError> {
    match usize::try_from(v) {
        Ok(i) if i < nmax => Ok(i),
        _ => Err(tab.bad(
            column,
            Some(row),
            format!("{v} is not a row of {of}, which has {nmax} rows"),
        )),
    }
}

fn spectral_windows(ms: &Path) -> Result<Vec<SpectralWindow>, MsError> {
    let mut t = Tab::open(ms, "SPECTRAL_WINDOW")?;
    t.require("CHAN_FREQ", &[T::TpDouble], Shape::Array)?;
    t.require("CHAN_WIDTH", &[T::TpDouble], Shape::Array)?;
    t.require("REF_FREQUENCY", &[T::TpDouble], Shape::Scalar)?;
    t.require("MEAS_FREQ_REF", &[T::TpInt], Shape::Scalar)?;
    let ref_freq = t.column::<f64>("REF_FREQUENCY")?;
    let frame = t.column::<i32>("MEAS_FREQ_REF")?;
    let names = if t.has("NAME") {
        t.require("NAME", &[T::TpString], Shape::Scalar)?;
        t.column::<String>("NAME")?
    } else {
        vec![String::new(); t.n_rows() as usize]
    };
    let mut out = Vec::new();
    for row in 0..t.n_rows() {
        let freq = t.cell::<f64>("CHAN_FREQ", row)?;
        let width = t.cell::<f64>("CHAN_WIDTH", row)?;
        if freq.is_empty() {
            return Err(t.bad("CHAN_FREQ", Some(row), "has no channels"));
        }
        if let Some(c) = freq.iter().position(|f| !(f.is_finite() && *f > 0.0)) {
            return Err(t.bad(
                "CHAN_FREQ",
                Some(row),
                format!(
                    "channel {c} is {} Hz; frequencies must be positive",
                    freq[c]
                ),
            ));
        }
        if width.len() != freq.len() {
            return Err(t.bad(
                "CHAN_WIDTH",
                Some(row),
                format!("has {} values for {} channels", width.len(), freq.len()),
            ));
        }
        let r = row as usize;
        out.push(SpectralWindow {
            id: r,
            name: names[r].clone(),
            chan_freq_hz: freq,
            chan_width_hz: width,
            ref_freq_hz: ref_freq[r],
            meas_freq_ref: frame[r],
        });
    }
    Ok(out)
}

fn polarizations(ms: &Path) -> Result<Vec<Polarization>, MsError> {
    let mut t = Tab::open(ms, "POLARIZATION")?;
    t.require("CORR_TYPE", &[T::TpInt], Shape::Array)?;
    (0..t.n_rows())
        .map(|row| {
            Ok(Polarization {
                id: row as usize,
                corr_type: t.cell::<i32>("CORR_TYPE", row)?,
            })
        })
        .collect()
}

fn data_descriptions(ms: &Path, nspw: usize, npol: usize) -> Result<Vec<DataDescription>, MsError> {
    let mut t = Tab::open(ms, "DATA_DESCRIPTION")?;
    t.require("SPECTRAL_WINDOW_ID", &[T::TpInt], Shape::Scalar)?;
    t.require("POLARIZATION_ID", &[T::TpInt], Shape::Scalar)?;
    let spw = t.column::<i32>("SPECTRAL_WINDOW_ID")?;
    let pol = t.column::<i32>("POLARIZATION_ID")?;
    let mut out = Vec::with_capacity(spw.len());
    for (r, (&s, &p)) in spw.iter().zip(&pol).enumerate() {
        let row = r as u64;
        out.push(DataDescription {
            id: r,
            spw_id: id(&t, "SPECTRAL_WINDOW_ID", row, s, nspw, "SPECTRAL_WINDOW")?,
            pol_id: id(&t, "POLARIZATION_ID", row, p, npol, "POLARIZATION")?,
        });
    }
    Ok(out)
}

fn fields(ms: &Path) -> Result<Vec<Field>, MsError> {
    let mut t = Tab::open(ms, "FIELD")?;
    t.require("PHASE_DIR", &[T::TpDouble], Shape::Array)?;
    let names = if t.has("NAME") {
        t.require("NAME", &[T::TpString], Shape::Scalar)?;
        t.column::<String>("NAME")?
    } else {
        vec![String::new(); t.n_rows() as usize]
    };
    let scale = match t.units("PHASE_DIR").as_deref() {
        None => 1.0,
        Some([u, ..]) if u == "rad" => 1.0,
        Some([u, ..]) if u == "deg" => std::f64::consts::PI / 180.0,
        Some(other) => {
            return Err(t.bad(
                "PHASE_DIR",
                None,
                format!("units {other:?}; expected rad or deg"),
            ));
        }
    };
    let frame = t
        .measinfo("PHASE_DIR", "Ref")
        .unwrap_or_else(|| "J2000".into());
    let mut out = Vec::new();
    for row in 0..t.n_rows() {
        // [npoly + 1][2], direction fastest: the first two values are the 0th term.
        let d = t.cell::<f64>("PHASE_DIR", row)?;
        if d.len() < 2 || !d.len().is_multiple_of(2) {
            return Err(t.bad(
                "PHASE_DIR",
                Some(row),
                format!(
                    "has {} values; expected (longitude, latitude) pairs",
                    d.len()
                ),
            ));
        }
        let (ra, dec) = (d[0] * scale, d[1] * scale);
        if !(ra.is_finite() && dec.is_finite() && dec.abs() <= std::f64::consts::FRAC_PI_2) {
            return Err(t.bad(
                "PHASE_DIR",
                Some(row),
                format!("({ra}, {dec}) rad is not a direction"),
            ));
        }
        out.push(Field {
            id: row as usize,
            name: names[row as usize].clone(),
            phase_centre: RaDec::new(ra.rem_euclid(std::f64::consts::TAU), dec),
            frame: frame.clone(),
        });
    }
    Ok(out)
}

fn antennas(ms: &Path) -> Result<Vec<AntennaRow>, MsError> {
    let mut t = Tab::open(ms, "ANTENNA")?;
    t.require("NAME", &[T::TpString], Shape::Scalar)?;
    t.require("POSITION", &[T::TpDouble], Shape::Array)?;
    t.require("DISH_DIAMETER", &[T::TpDouble], Shape::Scalar)?;
    let names = t.column::<String>("NAME")?;
    let diam = t.column::<f64>("DISH_DIAMETER")?;
    let mut out = Vec::new();
    for row in 0..t.n_rows() {
        let p = t.cell_of::<f64>("POSITION", row, 3, || "3 (x, y, z)".into())?;
        if p.iter().any(|v| !v.is_finite()) {
            return Err(t.bad("POSITION", Some(row), format!("{p:?} is not finite")));
        }
        let r = row as usize;
        out.push(AntennaRow {
            name: names[r].clone(),
            position: Xyz {
                x: p[0],
                y: p[1],
                z: p[2],
            },
            dish_diameter_m: diam[r],
        });
    }
    Ok(out)
}

/// TELESCOPE_NAME of the first OBSERVATION row; `None` without the table or rows.
fn telescope(ms: &Path) -> Result<Option<String>, MsError> {
    let mut t = match Tab::open(ms, "OBSERVATION") {
        Ok(t) => t,
        Err(MsError::MissingTable { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    if t.n_rows() == 0 || !t.has("TELESCOPE_NAME") {
        return Ok(None);
    }
    t.require("TELESCOPE_NAME", &[T::TpString], Shape::Scalar)?;
    let name: String = t.scalar("TELESCOPE_NAME", 0)?;
    Ok((!name.trim().is_empty()).then(|| name.trim().to_owned()))
}

/// The subtables of the MeasurementSet at `ms`, and the main table's size and columns.
pub(crate) fn read_meta(ms: &Path, main: &Tab) -> Result<MsMeta, MsError> {
    let spectral_windows = spectral_windows(ms)?;
    let polarizations = polarizations(ms)?;
    let data_descriptions = data_descriptions(ms, spectral_windows.len(), polarizations.len())?;
    Ok(MsMeta {
        path: ms.to_path_buf(),
        nrows: main.n_rows(),
        columns: main.columns().to_vec(),
        fields: fields(ms)?,
        antennas: antennas(ms)?,
        telescope: telescope(ms)?,
        spectral_windows,
        polarizations,
        data_descriptions,
    })
}
