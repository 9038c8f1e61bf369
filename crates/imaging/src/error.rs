//! The imaging crate's error type: one enum of meanings, each naming what was wrong.

use thiserror::Error;

/// Errors returned by the imaging kernels and data-model constructors.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ImagingError {
    /// An argument or option is outside its valid range; `name` is the option.
    #[error("invalid {name}: {reason}")]
    InvalidParameter { name: String, reason: String },
    /// Two arrays that must agree in shape do not.
    #[error("shape mismatch for {name}: expected {expected}, got {got}")]
    ShapeMismatch {
        name: String,
        expected: String,
        got: String,
    },
    /// An input value is NaN or infinite.
    #[error("non-finite value in {name} at index {index}")]
    NonFinite { name: String, index: usize },
    /// A request that cannot be satisfied (e.g. no unflagged data, image too large).
    #[error("{0}")]
    Unsupported(String),
}

impl ImagingError {
    /// Shorthand for [`ImagingError::InvalidParameter`].
    pub fn invalid(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidParameter {
            name: name.into(),
            reason: reason.into(),
        }
    }
}
