//! A MeasurementSet input (`spec.input.measurementSet`) as the planner and the import
//! stage see it: the MS opened through aperture-ms with the spec's selection resolved
//! ([`MsSource`]), and what follows from it: the planner's [`InputFacts`], the Zarr
//! dataset's metadata and `UVW` (written once, before any import task), the windows of
//! one task read in passes over the main table, and the import manifest stored in the
//! dataset (docs/measurement-sets.md).
//!
//! casacore calls block and a [`aperture_ms::MeasurementSet`] stays on the thread that
//! opened it, so async callers run [`MsSource::open`] on a blocking thread.

use std::ops::Range;

use aperture_ms::{MeasurementSet, MsError, MsMeta, Plan as MsPlan};
use ndarray::Array3;
use serde_json::{Value, json};

use super::{InputFacts, PlanError};
use crate::FormatError;
use crate::formats::bundle::VisDtype;
use crate::formats::zarr_vis::{RowGrid, VisDatasetMeta, WindowMeta};
use crate::spec::MeasurementSetSpec;

/// The field path MeasurementSet errors are reported under.
pub const FIELD: &str = "spec.input.measurementSet";

/// Memory for the blocks of one pass over the main table in an import task, bytes (the
/// default `--read-buffer` of `aperture import ms`).
pub const READ_BUFFER_BYTES: usize = 512 << 20;

/// An opened MeasurementSet's subtables and the resolved selection (plain data; the
/// tables themselves are closed again).
#[derive(Debug, Clone)]
pub struct MsSource {
    pub meta: MsMeta,
    pub plan: MsPlan,
}

/// `e` as a planning error under [`FIELD`] (the message names the path, table and
/// column, or the selection field).
pub fn plan_error(e: MsError) -> PlanError {
    PlanError::input(FIELD, e.to_string())
}

impl MsSource {
    /// Opens the MS of `spec` (blocking: casacore), resolves its selection and reads the
    /// per-row columns and the grid's UVW. The tables are closed on return.
    pub fn open(spec: &MeasurementSetSpec) -> Result<Self, PlanError> {
        let sel = spec
            .selection()
            .map_err(|e| PlanError::input(e.field().to_string(), e.to_string()))?;
        let mut ms = MeasurementSet::open(&spec.path).map_err(plan_error)?;
        let plan = ms
            .plan(&sel, spec.channels_per_window.map(|c| c as usize))
            .map_err(plan_error)?;
        Ok(Self {
            meta: ms.meta().clone(),
            plan,
        })
    }

    /// Opens the MS of `spec` on a blocking thread.
    pub async fn open_blocking(spec: &MeasurementSetSpec) -> Result<Self, PlanError> {
        let spec = spec.clone();
        tokio::task::spawn_blocking(move || Self::open(&spec))
            .await
            .map_err(|e| {
                PlanError::input(FIELD, format!("the MeasurementSet reader failed: {e}"))
            })?
    }

    /// Channels per output window (all windows are equally wide).
    pub fn channels_per_window(&self) -> usize {
        self.plan.windows.first().map_or(0, |w| w.chans.len())
    }

    /// The planner's facts: sizes, band, uv and w extent of the selected rows.
    pub fn facts(&self) -> InputFacts {
        let l = &self.plan.layout;
        let (mut uv, mut w) = (0.0f64, 0.0f64);
        for p in &self.plan.uvw_r {
            uv = uv.max(p.uv_length());
            w = w.max(p.w.abs());
        }
        let freq = self.plan.freq_c();
        let diameter = self
            .meta
            .antennas
            .iter()
            .map(|a| a.dish_diameter_m)
            .filter(|d| d.is_finite() && *d > 0.0)
            .fold(0.0, f64::max);
        InputFacts {
            nwindows: self.plan.windows.len() as u32,
            channels_per_window: self.channels_per_window() as u32,
            ntimes: l.ntime() as u32,
            nbaselines: l.nbaseline() as u32,
            nantennas: self.meta.antennas.len() as u32,
            freq_min_hz: freq.iter().copied().fold(f64::INFINITY, f64::min),
            freq_max_hz: freq.iter().copied().fold(0.0, f64::max),
            max_uv_m: uv,
            max_w_m: w,
            phase_centre: self.plan.phase_centre,
            station_diameter_m: if diameter > 0.0 { diameter } else { 38.0 },
        }
    }

    /// The dataset's metadata as the import stage writes it: complex64 visibilities (as
    /// `DATA` is stored) in chunks of the default time length, like `aperture import ms`
    /// with its defaults, `UVW` written at creation; see [`dataset_meta`].
    pub fn dataset_meta(&self) -> Result<VisDatasetMeta, FormatError> {
        let mut m = dataset_meta(&self.meta, &self.plan, VisDtype::Complex64, None)?;
        m.uvw_at_create = true;
        Ok(m)
    }

    /// UVW of the grid; see [`uvw_tb3`].
    pub fn uvw_tb3(&self) -> Array3<f64> {
        uvw_tb3(&self.plan)
    }

    /// The groups of windows `windows` (a shard) is read in: consecutive windows of one
    /// spectral window, each group's blocks within `budget_bytes` (one window at least).
    pub fn groups(&self, windows: Range<usize>, budget_bytes: usize) -> Vec<Vec<usize>> {
        self.plan
            .window_groups(budget_bytes)
            .into_iter()
            .map(|g| {
                g.into_iter()
                    .filter(|w| windows.contains(w))
                    .collect::<Vec<_>>()
            })
            .filter(|g| !g.is_empty())
            .collect()
    }

    /// Whether `facts` (from planning) still describe this MS: the import tasks re-open
    /// it, and a MeasurementSet changed since planning must not be half-imported.
    pub fn check_unchanged(&self, facts: &InputFacts) -> Result<(), String> {
        let now = self.facts();
        let same = now.nwindows == facts.nwindows
            && now.channels_per_window == facts.channels_per_window
            && now.ntimes == facts.ntimes
            && now.nbaselines == facts.nbaselines
            && now.freq_min_hz == facts.freq_min_hz
            && now.freq_max_hz == facts.freq_max_hz
            && now.max_uv_m == facts.max_uv_m;
        if same {
            Ok(())
        } else {
            Err(format!(
                "{}: the MeasurementSet changed since the job was planned ({} windows × {} \
                 channels, {} times × {} baselines then; {} × {}, {} × {} now); re-plan with \
                 --force",
                self.meta.path.display(),
                facts.nwindows,
                facts.channels_per_window,
                facts.ntimes,
                facts.nbaselines,
                now.nwindows,
                now.channels_per_window,
                now.ntimes,
                now.nbaselines
            ))
        }
    }

    /// The import manifest of this source: see [`import_manifest`].
    pub fn manifest(&self, flagged: u64, seconds: f64) -> Value {
        import_manifest(&self.meta, &self.plan, flagged, seconds)
    }
}

/// The metadata of the dataset imported from `plan` of `meta` (by the import stage and
/// `aperture import ms` alike): the grid, windows, phase centre, telescope and array;
/// visibilities stored as `vis_dtype`, in chunks of `time_chunk` times (at most all;
/// default [`VisDatasetMeta::default_time_chunk`]).
pub fn dataset_meta(
    meta: &MsMeta,
    plan: &MsPlan,
    vis_dtype: VisDtype,
    time_chunk: Option<usize>,
) -> Result<VisDatasetMeta, FormatError> {
    let l = &plan.layout;
    let (ncell, nbl) = (l.ncell(), l.nbaseline());
    let grid = RowGrid::from_rows(
        &(0..ncell).map(|c| l.time_s[c / nbl]).collect::<Vec<_>>(),
        &(0..ncell).map(|c| l.ant1[c % nbl]).collect::<Vec<_>>(),
        &(0..ncell).map(|c| l.ant2[c % nbl]).collect::<Vec<_>>(),
    )?;
    let cpw = plan.windows.first().map_or(0, |w| w.chans.len());
    let windows = WindowMeta::split(&plan.freq_c(), cpw)?;
    let mut m = VisDatasetMeta::new(&grid, windows, plan.phase_centre)?;
    m.vis_dtype = vis_dtype;
    m.time_chunk = match time_chunk {
        Some(t) => t.min(m.ntime),
        None => m.default_time_chunk(cpw),
    };
    m.telescope = meta.telescope.clone();
    m.station_diameter_m = meta.common_dish_diameter();
    m.array = Some(meta.antenna_config());
    m.validate()?;
    Ok(m)
}

/// UVW of `plan`'s grid as [time, baseline, 3], metres.
pub fn uvw_tb3(plan: &MsPlan) -> Array3<f64> {
    let l = &plan.layout;
    let mut a = Array3::<f64>::zeros((l.ntime(), l.nbaseline(), 3));
    for (c, p) in plan.uvw_r.iter().enumerate() {
        let (t, b) = (c / l.nbaseline(), c % l.nbaseline());
        a[[t, b, 0]] = p.u;
        a[[t, b, 1]] = p.v;
        a[[t, b, 2]] = p.w;
    }
    a
}

/// The import manifest stored as the dataset's `extra.imported_from`, by the import
/// stage and by `aperture import ms` alike: MS path, selection, row and sample counts,
/// flagged fraction.
pub fn import_manifest(meta: &MsMeta, plan: &MsPlan, flagged: u64, seconds: f64) -> Value {
    let samples = plan.n_samples() as u64;
    let spws: Vec<Value> = plan
        .spws
        .iter()
        .map(|s| {
            let spw = meta.spectral_windows.get(s.spw_id);
            json!({
                "id": s.spw_id,
                "name": spw.map(|w| w.name.clone()),
                "data_description_id": s.ddid,
                "channels": [s.chans.start, s.chans.end],
                "nchan": s.nchan,
                "frequency_frame": spw.map(|w| w.frame()),
                "polarization_id": s.pol_id,
                "correlations": meta.polarizations.get(s.pol_id).map(|p| p.describe()),
                "basis": s.basis.name(),
            })
        })
        .collect();
    let path = std::path::absolute(&meta.path).unwrap_or_else(|_| meta.path.clone());
    let t = plan.time_bounds;
    let bound = |v: f64| if v.is_finite() { json!(v) } else { Value::Null };
    json!({
        "measurement_set": path.display().to_string(),
        "column": plan.column.column(),
        "selection": {
            "field": plan.field,
            "field_name": plan.field_name,
            "phase_centre_frame": meta.fields.get(plan.field).map(|f| f.frame.clone()),
            "spectral_windows": spws,
            "time_range_mjd_s": [bound(t.0), bound(t.1)],
        },
        "stokes_i": "(P+Q)/2 of the parallel hands (XX,YY or RR,LL), weight 4/(1/wP + 1/wQ); \
                     one usable hand (unflagged, weight > 0): that hand and its weight",
        "weights": plan.weight_source,
        "uvw": "as stored: antenna 2 minus antenna 1",
        "rows": plan.rows,
        "grid": {
            "times": plan.layout.ntime(),
            "baselines": plan.layout.nbaseline(),
            "empty_cells": plan.layout.empty_cells(),
        },
        "channels": plan.windows.iter().map(|w| w.chans.len()).sum::<usize>(),
        "windows": plan.windows.len(),
        "samples": samples,
        "flagged_samples": flagged,
        "flagged_fraction": if samples > 0 { flagged as f64 / samples as f64 } else { 0.0 },
        "seconds": seconds,
        "aperture_version": env!("CARGO_PKG_VERSION"),
    })
}
