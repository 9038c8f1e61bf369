//! The resolved selection of a MeasurementSet ([`Plan`]): the field and its phase centre,
//! the spectral windows with their channels and Stokes-I recipe, the time bounds, the
//! grid of rows, the uvw of each grid cell, the output windows and the row counts. Plain
//! data: it can be sent to another thread and serialised into an import manifest.

use std::ops::Range;

use aperture_imaging::coords::{RaDec, UvwMetres};
use aperture_imaging::vis::VisBlock;
use serde::Serialize;

use crate::corr::{Basis, StokesI};
use crate::layout::Layout;
use crate::select::DataColumn;
use crate::windows::{WindowPlan, group_windows};

/// Where the per-correlation weights come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum WeightSource {
    /// WEIGHT_SPECTRUM: one weight per channel and correlation.
    #[serde(rename = "WEIGHT_SPECTRUM")]
    Spectrum,
    /// WEIGHT: one weight per correlation, the same for every channel.
    #[serde(rename = "WEIGHT")]
    Weight,
    /// 1/SIGMA², per correlation.
    #[serde(rename = "SIGMA")]
    Sigma,
}

impl WeightSource {
    /// The column the weights are read from.
    pub fn column(self) -> &'static str {
        match self {
            Self::Spectrum => "WEIGHT_SPECTRUM",
            Self::Weight => "WEIGHT",
            Self::Sigma => "SIGMA",
        }
    }
}

/// One selected spectral window.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectedSpw {
    pub spw_id: usize,
    pub ddid: usize,
    pub pol_id: usize,
    /// Channels of the spectral window in the selection.
    pub chans: Range<usize>,
    /// Their frequencies, Hz.
    pub freq_hz: Vec<f64>,
    /// Channels and correlations of the spectral window's cells.
    pub nchan: usize,
    pub ncorr: usize,
    pub stokes_i: StokesI,
    pub basis: Basis,
}

/// How many main-table rows were kept and why the others were not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RowCounts {
    /// Rows of the main table.
    pub total: u64,
    /// Rows of other fields or spectral windows, or outside the time range.
    pub not_selected: u64,
    /// Autocorrelations (ANTENNA1 = ANTENNA2) dropped.
    pub autocorrelations: u64,
    /// Rows with FLAG_ROW set dropped.
    pub flag_row: u64,
    /// Rows read.
    pub selected: u64,
}

/// The resolved selection and the output's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub column: DataColumn,
    pub field: usize,
    pub field_name: String,
    pub phase_centre: RaDec,
    pub spws: Vec<SelectedSpw>,
    /// Inclusive bounds on TIME (MJD seconds) actually applied.
    pub time_bounds: (f64, f64),
    pub weight_source: WeightSource,
    pub layout: Layout,
    /// UVW of each grid cell (metres, as stored: antenna 2 minus antenna 1); (0, 0, 0)
    /// for empty cells.
    pub uvw_r: Vec<UvwMetres>,
    pub windows: Vec<WindowPlan>,
    pub rows: RowCounts,
}

/// Bytes of one (row, channel) sample of a [`VisBlock`]: vis, weight, flag.
const SAMPLE_BYTES: usize = 16 + 8 + 1;

impl Plan {
    /// All output channels' frequencies, window after window, Hz.
    pub fn freq_c(&self) -> Vec<f64> {
        self.windows
            .iter()
            .flat_map(|w| w.freq_hz.iter().copied())
            .collect()
    }

    /// Output samples (grid cells × channels).
    pub fn n_samples(&self) -> usize {
        self.layout.ncell() * self.windows.iter().map(|w| w.chans.len()).sum::<usize>()
    }

    /// Memory of one output channel over the grid, bytes.
    pub fn bytes_per_channel(&self) -> usize {
        self.layout.ncell().saturating_mul(SAMPLE_BYTES)
    }

    /// Groups of consecutive windows (of one spectral window) read in one pass over the
    /// main table, each holding at most `budget_bytes` of blocks (at least one window).
    pub fn window_groups(&self, budget_bytes: usize) -> Vec<Vec<usize>> {
        group_windows(&self.windows, self.bytes_per_channel(), budget_bytes)
    }

    /// An all-flagged block for window `w` on the grid (time-major), with the cells'
    /// uvw, times and antennas and the field's phase centre.
    pub fn empty_block(&self, w: usize) -> VisBlock {
        let l = &self.layout;
        let (ncell, nbl) = (l.ncell(), l.nbaseline());
        let mut b = VisBlock::zeros(
            self.uvw_r.clone(),
            self.windows[w].freq_hz.clone(),
            (0..ncell).map(|c| l.ant1[c % nbl]).collect(),
            (0..ncell).map(|c| l.ant2[c % nbl]).collect(),
            (0..ncell).map(|c| l.time_s[c / nbl]).collect(),
            self.phase_centre,
        );
        b.weight_rc.fill(0.0);
        b.flag_rc.fill(true);
        b
    }
}
