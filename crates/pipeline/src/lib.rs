//! aperture-pipeline: storage formats (FITS, PNG quick-looks, numpy visibility bundles)
//! and, as the project grows, the job spec, planner and executors.

pub mod diagnostics;
pub mod error;
pub mod executor;
pub mod formats;
pub mod plan;
pub mod spec;
pub mod state;
pub mod storage;
pub mod tasks;

pub use error::FormatError;
