//! What can go wrong reading a MeasurementSet: one variant per meaning, each message
//! naming the table (`MAIN` for the main table) and the column or option at fault.

use std::ops::Range;
use std::path::PathBuf;

/// Errors of the MeasurementSet reader.
#[derive(Debug, thiserror::Error)]
pub enum MsError {
    /// aperture was compiled without casacore.
    #[error(
        "{path}: aperture was built without MeasurementSet support (cargo feature `ms`); \
         rebuild with `cargo build --features ms` (the `aperture` binary enables it by default)",
        path = path.display()
    )]
    NoSupport { path: PathBuf },

    /// The path is not a casacore table directory.
    #[error("{path}: is not a MeasurementSet ({reason})", path = path.display())]
    NotAMeasurementSet { path: PathBuf, reason: String },

    /// A subtable the reader needs does not exist.
    #[error("{path}: has no {table} subtable", path = path.display())]
    MissingTable { path: PathBuf, table: String },

    /// A column the reader needs does not exist.
    #[error("{path}: table {table} has no column {column}", path = path.display())]
    MissingColumn {
        path: PathBuf,
        table: String,
        column: String,
    },

    /// A column exists with another data type or shape than the MeasurementSet
    /// definition gives it.
    #[error("{path}: column {table}/{column} is {found}; expected {expected}", path = path.display())]
    ColumnType {
        path: PathBuf,
        table: String,
        column: String,
        expected: String,
        found: String,
    },

    /// A value in a table is out of range or inconsistent with another table.
    #[error("{path}: {table}/{column}{at}: {reason}", path = path.display(),
            at = row.map(|r| format!(" row {r}")).unwrap_or_default())]
    BadValue {
        path: PathBuf,
        table: String,
        column: String,
        row: Option<u64>,
        reason: String,
    },

    /// The correlations of a polarization setup give no Stokes I.
    #[error(
        "{path}: POLARIZATION/CORR_TYPE row {pol_id} holds correlations [{types}], from which \
         Stokes I cannot be formed; aperture needs both parallel hands (XX and YY, or RR and \
         LL) or I itself",
        path = path.display()
    )]
    UnsupportedCorrelations {
        path: PathBuf,
        pol_id: usize,
        types: String,
    },

    /// A channel range outside a spectral window.
    #[error(
        "channels {start}:{end}: outside SPECTRAL_WINDOW {spw}, which has {nchan} channels \
         (0:{nchan})",
        start = range.start, end = range.end
    )]
    ChannelRange {
        spw: usize,
        range: Range<usize>,
        nchan: usize,
    },

    /// The selection (field, spectral windows, time range, windows) cannot be honoured.
    #[error("{option}: {reason}")]
    Selection { option: String, reason: String },

    /// casacore reported an error reading a table.
    #[error("{path}: casacore error reading {table}: {reason}", path = path.display())]
    Casacore {
        path: PathBuf,
        table: String,
        reason: String,
    },
}

impl MsError {
    pub(crate) fn selection(option: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Selection {
            option: option.into(),
            reason: reason.into(),
        }
    }
}
