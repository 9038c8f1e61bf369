//! aperture-pipeline: storage formats (FITS, PNG quick-looks, numpy visibility bundles)
//! and, as the project grows, the job spec, planner and executors.

pub mod error;
pub mod formats;

pub use error::FormatError;
