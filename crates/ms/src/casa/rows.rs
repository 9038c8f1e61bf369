//! The first pass over the main table: its columns' types checked, the selection resolved
//! against the subtables, the per-row columns (DATA_DESC_ID, FIELD_ID, ANTENNA1/2,
//! FLAG_ROW, TIME) read one at a time to choose rows, the grid built and each grid cell's
//! UVW read (in bulk blocks of rows). Memory: one scalar column of the whole table at a
//! time (≤ 8 bytes a row), plus the chosen rows.

use std::collections::BTreeMap;

use aperture_imaging::coords::UvwMetres;
use rubbl_casatables::GlueDataType as T;

use super::table::{Shape, Tab};
use crate::error::MsError;
use crate::layout::{Layout, SelectedRow};
use crate::meta::MsMeta;
use crate::plan::{Plan, RowCounts, SelectedSpw, WeightSource};
use crate::select::Selection;
use crate::windows::plan_windows;

/// Checks the main-table columns every read needs and the chosen data column; returns
/// the data column's element type (complex or double complex).
pub(crate) fn check_main_columns(main: &mut Tab, data_column: &str) -> Result<T, MsError> {
    for c in [
        "TIME",
        "ANTENNA1",
        "ANTENNA2",
        "DATA_DESC_ID",
        "FIELD_ID",
        "UVW",
        "FLAG",
    ] {
        let (types, shape) = match c {
            "TIME" => (&[T::TpDouble][..], Shape::Scalar),
            "UVW" => (&[T::TpDouble][..], Shape::Array),
            "FLAG" => (&[T::TpBool][..], Shape::Array),
            _ => (&[T::TpInt][..], Shape::Scalar),
        };
        main.require(c, types, shape)?;
    }
    if main.has("FLAG_ROW") {
        main.require("FLAG_ROW", &[T::TpBool], Shape::Scalar)?;
    }
    main.require(data_column, &[T::TpComplex, T::TpDComplex], Shape::Array)
}

/// The weight column to use: WEIGHT_SPECTRUM when present with a cell of the right size
/// in `probe_row`, else WEIGHT, else SIGMA.
fn weight_source(main: &mut Tab, probe: Option<(u64, usize)>) -> Result<WeightSource, MsError> {
    if main.has("WEIGHT_SPECTRUM") {
        main.require("WEIGHT_SPECTRUM", &[T::TpFloat], Shape::Array)?;
        // An MS may carry the column with undefined cells; then WEIGHT holds the weights.
        let usable = match probe {
            Some((row, n)) => main
                .cell::<f32>("WEIGHT_SPECTRUM", row)
                .is_ok_and(|v| v.len() == n),
            None => true,
        };
        if usable {
            return Ok(WeightSource::Spectrum);
        }
    }
    if main.has("WEIGHT") {
        main.require("WEIGHT", &[T::TpFloat], Shape::Array)?;
        return Ok(WeightSource::Weight);
    }
    if main.has("SIGMA") {
        main.require("SIGMA", &[T::TpFloat], Shape::Array)?;
        return Ok(WeightSource::Sigma);
    }
    Err(MsError::MissingColumn {
        path: main.ms_path().to_path_buf(),
        table: "MAIN".into(),
        column: "WEIGHT (nor WEIGHT_SPECTRUM, nor SIGMA)".into(),
    })
}

/// An int column as non-negative ids, or an error naming the first bad row.
fn ids(main: &mut Tab, column: &str) -> Result<Vec<u32>, MsError> {
    let v = main.column::<i32>(column)?;
    match v.iter().position(|&x| x < 0) {
        Some(r) => Err(main.bad(column, Some(r as u64), format!("{} is negative", v[r]))),
        None => Ok(v.into_iter().map(|x| x as u32).collect()),
    }
}

/// Rows of UVW read per bulk call.
const UVW_BLOCK_ROWS: usize = 1 << 16;

/// The UVW of each grid cell (from its first row; zero for empty cells), read in
/// blocks of rows in row order.
fn read_uvw(main: &mut Tab, layout: &Layout) -> Result<Vec<UvwMetres>, MsError> {
    let mut uvw_r = vec![UvwMetres::default(); layout.ncell()];
    let mut by_row: Vec<(u64, usize)> = layout
        .uvw_row
        .iter()
        .enumerate()
        .filter_map(|(cell, r)| r.map(|r| (r, cell)))
        .collect();
    by_row.sort_unstable();
    let (mut rows, mut p) = (Vec::with_capacity(UVW_BLOCK_ROWS), Vec::<f64>::new());
    for chunk in by_row.chunks(UVW_BLOCK_ROWS) {
        rows.clear();
        rows.extend(chunk.iter().map(|&(r, _)| r));
        let three = &[3][..];
        main.cells_into("UVW", &rows, (&[0], three, three), &mut p, || {
            "3 (u, v, w)".into()
        })?;
        for (&(r, cell), p) in chunk.iter().zip(p.chunks_exact(3)) {
            if p.iter().any(|v| !v.is_finite()) {
                return Err(main.bad("UVW", Some(r), format!("{p:?} is not finite")));
            }
            uvw_r[cell] = UvwMetres::new(p[0], p[1], p[2]);
        }
    }
    Ok(uvw_r)
}

/// Resolves `sel` and reads the row columns, the grid and its UVW.
pub(crate) fn plan(
    main: &mut Tab,
    meta: &MsMeta,
    sel: &Selection,
    channels_per_window: Option<usize>,
) -> Result<Plan, MsError> {
    check_main_columns(main, sel.column.column())?;

    // Field.
    if meta.fields.is_empty() {
        return Err(main.bad("FIELD_ID", None, "the FIELD subtable has no rows"));
    }
    let field = sel.field.unwrap_or(0);
    let Some(fld) = meta.fields.get(field) else {
        return Err(MsError::selection(
            format!("--field {field}"),
            format!(
                "the MeasurementSet has {} fields (0-{})",
                meta.fields.len(),
                meta.fields.len() - 1
            ),
        ));
    };

    // Rows of the field, by data description.
    let nrows = main.n_rows();
    let field_r = ids(main, "FIELD_ID")?;
    let ddid_r = ids(main, "DATA_DESC_ID")?;
    let mut rows_per_dd: BTreeMap<usize, u64> = BTreeMap::new();
    for (r, (&f, &d)) in field_r.iter().zip(&ddid_r).enumerate() {
        if f as usize == field {
            if d as usize >= meta.data_descriptions.len() {
                return Err(main.bad(
                    "DATA_DESC_ID",
                    Some(r as u64),
                    format!(
                        "{d} is not a row of DATA_DESCRIPTION, which has {} rows",
                        meta.data_descriptions.len()
                    ),
                ));
            }
            *rows_per_dd.entry(d as usize).or_default() += 1;
        }
    }
    drop(field_r);
    if rows_per_dd.is_empty() {
        return Err(MsError::selection(
            format!("--field {field}"),
            format!("field {field} ({}) has no rows in the main table", fld.name),
        ));
    }
    // Spectral window → data descriptions with rows of the field.
    let mut dds_of_spw: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &d in rows_per_dd.keys() {
        dds_of_spw
            .entry(meta.data_descriptions[d].spw_id)
            .or_default()
            .push(d);
    }
    let spw_ids: Vec<usize> = match &sel.spws {
        None => dds_of_spw.keys().copied().collect(),
        Some(list) => {
            for &s in list {
                if s >= meta.spectral_windows.len() {
                    return Err(MsError::selection(
                        format!("--spw {s}"),
                        format!(
                            "the MeasurementSet has {} spectral windows",
                            meta.spectral_windows.len()
                        ),
                    ));
                }
                if !dds_of_spw.contains_key(&s) {
                    return Err(MsError::selection(
                        format!("--spw {s}"),
                        format!("field {field} has no rows in spectral window {s}"),
                    ));
                }
            }
            let mut ids = list.clone();
            ids.sort_unstable();
            ids.dedup();
            ids
        }
    };
    if spw_ids.is_empty() {
        return Err(MsError::selection("--spw", "no spectral window selected"));
    }
    let mut spws = Vec::new();
    let mut sel_of_dd: BTreeMap<usize, usize> = BTreeMap::new();
    for &s in &spw_ids {
        let dds = &dds_of_spw[&s];
        if dds.len() > 1 {
            return Err(MsError::selection(
                format!("--spw {s}"),
                format!(
                    "spectral window {s} has rows under data descriptions {dds:?} \
                     (several polarization setups), which is not supported"
                ),
            ));
        }
        let dd = meta.data_descriptions[dds[0]];
        let spw = &meta.spectral_windows[s];
        let pol = &meta.polarizations[dd.pol_id];
        let Some((stokes_i, basis)) = pol.stokes_i() else {
            return Err(MsError::UnsupportedCorrelations {
                path: meta.path.clone(),
                pol_id: dd.pol_id,
                types: pol.describe(),
            });
        };
        let chans = match &sel.channels {
            None => 0..spw.nchan(),
            Some(c) => c.resolve(spw.nchan()).ok_or(MsError::ChannelRange {
                spw: s,
                range: c.as_given(spw.nchan()),
                nchan: spw.nchan(),
            })?,
        };
        sel_of_dd.insert(dd.id, spws.len());
        spws.push(SelectedSpw {
            spw_id: s,
            ddid: dd.id,
            pol_id: dd.pol_id,
            freq_hz: spw.chan_freq_hz[chans.clone()].to_vec(),
            chans,
            nchan: spw.nchan(),
            ncorr: pol.corr_type.len(),
            stokes_i,
            basis,
        });
    }
    let windows = plan_windows(
        &spws
            .iter()
            .map(|s| (s.spw_id, s.chans.clone(), s.freq_hz.clone()))
            .collect::<Vec<_>>(),
        channels_per_window,
    )?;

    // Rows of the field and spectral windows: their index and selection index.
    let mut chosen: Vec<(u64, usize)> = Vec::new();
    let mut counts = RowCounts {
        total: nrows,
        ..RowCounts::default()
    };
    for (r, &d) in ddid_r.iter().enumerate() {
        match sel_of_dd.get(&(d as usize)) {
            Some(&s) => chosen.push((r as u64, s)),
            None => counts.not_selected += 1,
        }
    }
    drop(ddid_r);
    // The field test is applied again here: rows of other fields may share a ddid.
    let field_r = ids(main, "FIELD_ID")?;
    chosen.retain(|&(r, _)| {
        let keep = field_r[r as usize] as usize == field;
        if !keep {
            counts.not_selected += 1;
        }
        keep
    });
    drop(field_r);

    // Time range, relative to the first integration of the field and spectral windows.
    let time_r = main.column::<f64>("TIME")?;
    if let Some(&(r, _)) = chosen
        .iter()
        .find(|&&(r, _)| !time_r[r as usize].is_finite())
    {
        return Err(main.bad(
            "TIME",
            Some(r),
            format!("{} is not finite", time_r[r as usize]),
        ));
    }
    let (t0, t1) = chosen
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &(r, _)| {
            let t = time_r[r as usize];
            (a.min(t), b.max(t))
        });
    let time_bounds = match &sel.time {
        Some(tr) => tr.absolute(t0),
        None => (f64::NEG_INFINITY, f64::INFINITY),
    };
    let mut rows: Vec<SelectedRow> = chosen
        .iter()
        .filter_map(|&(r, s)| {
            let t = time_r[r as usize];
            if t < time_bounds.0 || t > time_bounds.1 {
                counts.not_selected += 1;
                return None;
            }
            Some(SelectedRow {
                row: r,
                time: t,
                ant1: 0,
                ant2: 0,
                spw: s,
            })
        })
        .collect();
    drop(chosen);
    drop(time_r);
    if rows.is_empty()
        && let Some(tr) = &sel.time
    {
        return Err(MsError::selection(
            "--time-range",
            format!(
                "selects no rows: the selected integrations run from 0 to {:.3} s after the \
                 first (MJD seconds {t0:.3} to {t1:.3}); the range asks for {}:{} {}",
                t1 - t0,
                tr.start.map_or(String::new(), |v| v.to_string()),
                tr.end.map_or(String::new(), |v| v.to_string()),
                if tr.mjd {
                    "in MJD seconds"
                } else {
                    "in seconds after the first"
                }
            ),
        ));
    }
    for (i, col) in ["ANTENNA1", "ANTENNA2"].into_iter().enumerate() {
        let a = ids(main, col)?;
        for row in &mut rows {
            let v = a[row.row as usize];
            if v as usize >= meta.antennas.len() {
                return Err(main.bad(
                    col,
                    Some(row.row),
                    format!(
                        "{v} is not a row of ANTENNA, which has {} rows",
                        meta.antennas.len()
                    ),
                ));
            }
            if i == 0 {
                row.ant1 = v;
            } else {
                row.ant2 = v;
            }
        }
    }
    rows.retain(|r| {
        let auto = r.ant1 == r.ant2;
        if auto {
            counts.autocorrelations += 1;
        }
        !auto
    });
    if main.has("FLAG_ROW") {
        let f = main.column::<bool>("FLAG_ROW")?;
        rows.retain(|r| {
            let flagged = f[r.row as usize];
            if flagged {
                counts.flag_row += 1;
            }
            !flagged
        });
    }
    counts.selected = rows.len() as u64;
    if rows.is_empty() {
        return Err(MsError::selection(
            "selection",
            format!(
                "no cross-correlation rows without FLAG_ROW remain ({} autocorrelations, {} \
                 flagged rows dropped)",
                counts.autocorrelations, counts.flag_row
            ),
        ));
    }

    let layout = Layout::build(&meta.path, &rows, spws.len())?;
    drop(rows);
    let uvw_r = read_uvw(main, &layout)?;
    let probe = layout.spw_rows[0]
        .first()
        .map(|&(r, _)| (r, spws[0].nchan * spws[0].ncorr));
    let weight_source = weight_source(main, probe)?;
    Ok(Plan {
        column: sel.column,
        field,
        field_name: fld.name.clone(),
        phase_centre: fld.phase_centre,
        spws,
        time_bounds,
        weight_source,
        layout,
        uvw_r,
        windows,
        rows: counts,
    })
}
