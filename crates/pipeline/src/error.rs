//! The pipeline crate's format error type: one enum of meanings, each naming the file,
//! key or field that was wrong.

use std::io;
use std::path::{Path, PathBuf};

use aperture_imaging::ImagingError;
use thiserror::Error;

/// Errors reading or writing aperture's file formats (FITS images, PNG quick-looks,
/// numpy bundles). Every message names the file, key or option at fault.
#[derive(Debug, Error)]
pub enum FormatError {
    /// A required input file or directory does not exist.
    #[error("{} does not exist", path.display())]
    Missing { path: PathBuf },
    /// An operating-system error while `op` (e.g. "reading", "renaming") `path`.
    #[error("error {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// An array file holds the wrong element type.
    #[error("{}: wrong dtype: expected {expected}, got {got}", path.display())]
    Dtype {
        path: PathBuf,
        expected: String,
        got: String,
    },
    /// An array file has the wrong number of dimensions or the wrong shape.
    #[error("{}: wrong shape: expected {expected}, got {got}", path.display())]
    Shape {
        path: PathBuf,
        expected: String,
        got: String,
    },
    /// Two files of one data set disagree, e.g. on the number of rows.
    #[error("{} has shape {shape:?} but {} {detail}", path.display(), other.display())]
    Inconsistent {
        path: PathBuf,
        shape: Vec<usize>,
        other: PathBuf,
        detail: String,
    },
    /// A NaN or infinite value where finite numbers are required.
    #[error("{}: non-finite value (NaN or infinity) at {at}", path.display())]
    NonFinite { path: PathBuf, at: String },
    /// A finite value outside its valid range (e.g. a negative weight).
    #[error("{}: {at}: {reason}", path.display())]
    BadValue {
        path: PathBuf,
        at: String,
        reason: String,
    },
    /// A file ends before the data its header announces.
    #[error("{} is truncated: expected at least {expected} bytes, found {got}", path.display())]
    Truncated {
        path: PathBuf,
        expected: u64,
        got: u64,
    },
    /// A FITS file that is malformed or that aperture does not support.
    #[error("{}: {reason}", path.display())]
    Fits { path: PathBuf, reason: String },
    /// A `.npy` file whose header or payload is malformed.
    #[error("{}: not a valid .npy file: {reason}", path.display())]
    Npy { path: PathBuf, reason: String },
    /// A JSON metadata file with a missing or invalid key.
    #[error("{}: key {key}: {reason}", path.display())]
    Meta {
        path: PathBuf,
        key: String,
        reason: String,
    },
    /// A caller-supplied option or value cannot be written.
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The output already exists and overwriting was not requested.
    #[error("{} already exists and is not empty (ask to overwrite to replace it)", path.display())]
    Exists { path: PathBuf },
    /// A visibility bundle whose contents fail the data-model checks.
    #[error("bundle {}: {source}", path.display())]
    Bundle {
        path: PathBuf,
        #[source]
        source: ImagingError,
    },
    /// The PNG encoder failed.
    #[error("{}: PNG encoding failed: {reason}", path.display())]
    Png { path: PathBuf, reason: String },
    /// A Zarr object (metadata or chunk, named by its full object-store key) that is
    /// missing, unreadable, corrupt or inconsistent.
    #[error("zarr object {key}: {message}")]
    Zarr { key: String, message: String },
    /// A frequency window of a Zarr visibility dataset that has not been (completely)
    /// written: `key` is its completion marker.
    #[error("window {window} has not been written: {key} is missing")]
    MissingWindow { window: usize, key: String },
    /// A visibility block that does not fit frequency window `window` of a dataset.
    #[error("window {window}: {field}: {reason}")]
    Window {
        window: usize,
        field: String,
        reason: String,
    },
}

impl FormatError {
    /// An I/O error on `path`; `NotFound` becomes [`FormatError::Missing`].
    pub fn io(op: &'static str, path: impl AsRef<Path>, source: io::Error) -> Self {
        let path = path.as_ref().to_path_buf();
        if source.kind() == io::ErrorKind::NotFound && op == "opening" {
            return Self::Missing { path };
        }
        Self::Io { op, path, source }
    }

    /// Shorthand for [`FormatError::Invalid`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`FormatError::Fits`].
    pub fn fits(path: impl AsRef<Path>, reason: impl Into<String>) -> Self {
        Self::Fits {
            path: path.as_ref().to_path_buf(),
            reason: reason.into(),
        }
    }
}
