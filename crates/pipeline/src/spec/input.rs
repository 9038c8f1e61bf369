//! `spec.input`: an existing visibility dataset, a deterministic simulation or a CASA
//! MeasurementSet imported by the plan's first stage.
//!
//! Ranges are in the schema (`#[schemars(range)]`) and cross-field rules are CEL
//! (`#[x_kube(validation)]`), mirroring `validate.rs`, which stays the authority for
//! `aperture run`; see docs/crd.md.

use std::path::Path;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Exactly one of `visibilities`, `simulate` and `measurementSet`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, KubeSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(
    validation = Rule::new("has(self.visibilities) || has(self.simulate) || has(self.measurementSet)")
        .message("give exactly one of visibilities (a Zarr URL), simulate and measurementSet")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("(has(self.visibilities) ? 1 : 0) + (has(self.simulate) ? 1 : 0) + (has(self.measurementSet) ? 1 : 0) <= 1")
        .message("give exactly one of visibilities, simulate and measurementSet, not more")
        .reason(Reason::FieldValueForbidden)
)]
pub struct InputSpec {
    /// URL of a Zarr visibility dataset (as written by `aperture import` or a simulate
    /// stage): a path, file://, s3:// or memory://.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"\S"))]
    pub visibilities: Option<String>,
    /// Simulate the visibilities (written under `<output>/vis.zarr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulate: Option<SimulateSpec>,
    /// Import a CASA MeasurementSet (written under `<output>/vis.zarr` by the plan's
    /// `import` stage); the planner and the workers must be able to read its path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurement_set: Option<MeasurementSetSpec>,
}

/// The visibility column of a MeasurementSet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum MsColumnSpec {
    /// `DATA`: the observed visibilities.
    #[default]
    Data,
    /// `CORRECTED_DATA`: after calibration.
    Corrected,
    /// `MODEL_DATA`: a model's visibilities.
    Model,
}

impl MsColumnSpec {
    fn is_default(&self) -> bool {
        *self == Self::Data
    }
}

/// A CASA MeasurementSet (MSv2) imported as Stokes I, with the selection of
/// `aperture import ms` (docs/measurement-sets.md): one field, spectral windows, a channel
/// range and a time range; autocorrelations and rows with FLAG_ROW are dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeasurementSetSpec {
    /// The MeasurementSet directory on a filesystem the planner and every worker mount.
    /// `aperture run` reads a relative path relative to the manifest's directory; on
    /// Kubernetes give an absolute path.
    #[schemars(regex(pattern = r"\S"))]
    pub path: String,
    /// The visibility column: data (DATA), corrected (CORRECTED_DATA) or model
    /// (MODEL_DATA).
    #[serde(default, skip_serializing_if = "MsColumnSpec::is_default")]
    pub column: MsColumnSpec,
    /// FIELD id (one phase centre per dataset); default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<u32>,
    /// SPECTRAL_WINDOW ids; default every spectral window with rows of the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub spw: Option<Vec<u32>>,
    /// Channels `A:B` (A to B−1, like a Python slice; either end may be left out) of each
    /// selected spectral window; default all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^\s*[0-9]*\s*:\s*[0-9]*\s*$"))]
    pub channels: Option<String>,
    /// Times `START:END` in seconds after the first integration of the selection, or
    /// `mjd:START:END` in MJD seconds (the TIME column's scale); inclusive, compared with
    /// integration midpoints; either end may be left out; default all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(mjd:)?[^:]*:[^:]*$"))]
    pub time_range: Option<String>,
    /// Channels per output frequency window, 1 … 65536; windows never cross spectral
    /// windows, so it must divide each one's selected channels. Default: one window per
    /// spectral window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65_536))]
    pub channels_per_window: Option<u32>,
}

impl MeasurementSetSpec {
    /// The selection for aperture-ms; errors name the field
    /// (`spec.input.measurementSet.channels`, `….timeRange`).
    pub fn selection(&self) -> Result<aperture_ms::Selection, super::SpecError> {
        let field = |name: &str| format!("spec.input.measurementSet.{name}");
        let channels = self
            .channels
            .as_deref()
            .map(str::parse::<aperture_ms::ChannelRange>)
            .transpose()
            .map_err(|e| super::SpecError::invalid(field("channels"), e.to_string()))?;
        let time = self
            .time_range
            .as_deref()
            .map(str::parse::<aperture_ms::TimeRange>)
            .transpose()
            .map_err(|e| super::SpecError::invalid(field("timeRange"), e.to_string()))?;
        let mut spws: Option<Vec<usize>> = self
            .spw
            .as_ref()
            .map(|l| l.iter().map(|&s| s as usize).collect());
        if let Some(l) = spws.as_mut() {
            l.sort_unstable();
            l.dedup();
        }
        Ok(aperture_ms::Selection {
            column: match self.column {
                MsColumnSpec::Data => aperture_ms::DataColumn::Data,
                MsColumnSpec::Corrected => aperture_ms::DataColumn::Corrected,
                MsColumnSpec::Model => aperture_ms::DataColumn::Model,
            },
            field: self.field.map(|f| f as usize),
            spws,
            channels,
            time,
        })
    }

    /// Makes a relative `path` absolute, relative to `base` (the manifest's directory).
    pub fn resolve_relative_to(&mut self, base: &Path) {
        let p = Path::new(&self.path);
        if p.is_relative() {
            let joined = base.join(p);
            let abs = std::fs::canonicalize(&joined)
                .or_else(|_| std::path::absolute(&joined))
                .unwrap_or(joined);
            self.path = abs.display().to_string();
        }
    }
}

/// Array configurations the simulator knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum Telescope {
    /// SKA-Low (512 stations of 38 m).
    #[default]
    Low,
    /// SKA-Mid with MeerKAT (197 dishes).
    Mid,
}

/// A simulated observation: the array within `rmax` of its centre, `ntimes` snapshots
/// over `spanHours`, `frequencyWindows` windows of `channelsPerWindow` channels dividing
/// the band [freqMinHz, freqMaxHz] evenly (channel centres at the middle of each channel,
/// as `aperture simulate`), point sources, noise and antenna gains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("self.freqMaxHz > self.freqMinHz")
    .message("freqMaxHz must exceed freqMinHz")
    .field_path(".freqMaxHz"))]
pub struct SimulateSpec {
    #[serde(default)]
    pub telescope: Telescope,
    /// Array radius in metres, 10 … 100000.
    #[serde(default = "d_rmax")]
    #[schemars(range(min = 10.0, max = 100_000.0))]
    pub rmax: f64,
    /// Frequency windows, 1 … 100000.
    #[serde(default = "d_windows")]
    #[schemars(range(min = 1, max = 100_000))]
    pub frequency_windows: u32,
    /// Channels per window, 1 … 65536.
    #[serde(default = "d_one")]
    #[schemars(range(min = 1, max = 65_536))]
    pub channels_per_window: u32,
    /// Lower band edge in Hz, 1e6 … 1e12.
    #[serde(default = "d_fmin")]
    #[schemars(range(min = 1e6, max = 1e12))]
    pub freq_min_hz: f64,
    /// Upper band edge in Hz, above freqMinHz and at most 1e12.
    #[serde(default = "d_fmax")]
    #[schemars(range(max = 1e12))]
    pub freq_max_hz: f64,
    /// Snapshots, 1 … 100000.
    #[serde(default = "d_ntimes")]
    #[schemars(range(min = 1, max = 100_000))]
    pub ntimes: u32,
    /// Hour-angle span of the snapshots, 0 … 24 hours.
    #[serde(default = "d_span")]
    #[schemars(range(min = 0.0, max = 24.0))]
    pub span_hours: f64,
    /// Phase centre right ascension, degrees (−360 … 360).
    #[serde(default = "d_ra")]
    #[schemars(range(min = -360.0, max = 360.0))]
    pub ra_deg: f64,
    /// Phase centre declination, degrees (−90 … 90).
    #[serde(default = "d_dec")]
    #[schemars(range(min = -90.0, max = 90.0))]
    pub dec_deg: f64,
    #[serde(default)]
    pub sky: SkySpec,
    /// Thermal noise per visibility (Jy, rms of each of re and im), 0 … 1e6.
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1e6))]
    pub noise_jy: f64,
    /// Per-antenna gain phase rms in degrees (0 = no corruption), 0 … 180.
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 180.0))]
    pub gain_phase_rms_deg: f64,
    /// Per-antenna fractional gain amplitude rms (0 = none), 0 … 0.9.
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 0.9))]
    pub gain_amplitude_rms: f64,
    #[serde(default = "d_seed")]
    pub seed: u64,
}

/// Random point sources inside the inner part of the field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(
    validation = Rule::new("self.fluxMaxJy >= self.fluxMinJy")
        .message("fluxMaxJy must be at least fluxMinJy")
        .field_path(".fluxMaxJy"),
    validation = Rule::new("self.alphaMax >= self.alphaMin")
        .message("alphaMax must be at least alphaMin")
        .field_path(".alphaMax")
)]
pub struct SkySpec {
    /// Number of sources, 0 … 10000.
    #[serde(default = "d_sources")]
    #[schemars(range(max = 10_000))]
    pub sources: u32,
    /// Faintest source flux density, Jy (0 … 1e6).
    #[serde(default = "d_flux_min")]
    #[schemars(range(min = 0.0, max = 1e6))]
    pub flux_min_jy: f64,
    /// Brightest source flux density, Jy (fluxMinJy … 1e6).
    #[serde(default = "d_flux_max")]
    #[schemars(range(max = 1e6))]
    pub flux_max_jy: f64,
    /// Spectral index range of the sources (S ∝ ν^α about the band centre), −5 … 5.
    #[serde(default = "d_alpha_min")]
    #[schemars(range(min = -5.0, max = 5.0))]
    pub alpha_min: f64,
    /// Upper end of the spectral index range (alphaMin … 5).
    #[serde(default = "d_alpha_max")]
    #[schemars(range(max = 5.0))]
    pub alpha_max: f64,
    /// Sources lie within this fraction of the image half-width from the centre, 0 … 0.95.
    #[serde(default = "d_extent")]
    #[schemars(range(min = 0.0, max = 0.95))]
    pub extent: f64,
}

impl Default for SkySpec {
    fn default() -> Self {
        Self {
            sources: d_sources(),
            flux_min_jy: d_flux_min(),
            flux_max_jy: d_flux_max(),
            alpha_min: d_alpha_min(),
            alpha_max: d_alpha_max(),
            extent: d_extent(),
        }
    }
}

impl SimulateSpec {
    /// The simulated array: the telescope's stations within `rmax`.
    pub fn array_config(
        &self,
    ) -> Result<aperture_imaging::antenna::AntennaConfig, aperture_imaging::ImagingError> {
        match self.telescope {
            Telescope::Low => aperture_imaging::sim::layout_low::low_config(self.rmax),
            Telescope::Mid => aperture_imaging::sim::layout_mid::mid_config(self.rmax),
        }
    }
}

impl Default for SimulateSpec {
    fn default() -> Self {
        Self {
            telescope: Telescope::Low,
            rmax: d_rmax(),
            frequency_windows: d_windows(),
            channels_per_window: d_one(),
            freq_min_hz: d_fmin(),
            freq_max_hz: d_fmax(),
            ntimes: d_ntimes(),
            span_hours: d_span(),
            ra_deg: d_ra(),
            dec_deg: d_dec(),
            sky: SkySpec::default(),
            noise_jy: 0.0,
            gain_phase_rms_deg: 0.0,
            gain_amplitude_rms: 0.0,
            seed: d_seed(),
        }
    }
}

fn d_rmax() -> f64 {
    600.0
}
fn d_windows() -> u32 {
    16
}
fn d_one() -> u32 {
    1
}
fn d_fmin() -> f64 {
    100e6
}
fn d_fmax() -> f64 {
    150e6
}
fn d_ntimes() -> u32 {
    7
}
fn d_span() -> f64 {
    6.0
}
fn d_ra() -> f64 {
    15.0
}
fn d_dec() -> f64 {
    -45.0
}
fn d_seed() -> u64 {
    42
}
fn d_sources() -> u32 {
    5
}
fn d_flux_min() -> f64 {
    0.5
}
fn d_flux_max() -> f64 {
    5.0
}
fn d_alpha_min() -> f64 {
    -1.0
}
fn d_alpha_max() -> f64 {
    0.0
}
fn d_extent() -> f64 {
    0.5
}

/// `spec.predict`: a model image (FITS, Jy/pixel, SIN projection about the data's phase
/// centre) whose visibilities the `predict` pipeline writes to `<output>/predicted.zarr`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PredictSpec {
    /// URL of the model FITS image: a path, file://, s3:// or memory://.
    #[schemars(regex(pattern = r"\S"))]
    pub model_image: String,
}
