//! The operator's one error enum: what went wrong in a reconcile, by meaning.

use aperture_pipeline::executor::PrepareError;
use aperture_pipeline::storage::StorageError;
use thiserror::Error;

/// Why a reconcile did not finish. Every variant but [`Error::Kube`],
/// [`Error::StatusForbidden`] and [`Error::Storage`] is about the ImagingJob itself and
/// ends in a `Failed` status; those are transient and retried with backoff.
#[derive(Debug, Error)]
pub enum Error {
    /// The Kubernetes API refused or failed a request.
    #[error("Kubernetes API: {}", kube_message(.0))]
    Kube(#[from] kube::Error),
    /// The API server refused the status patch (`403`: the ServiceAccount may not
    /// `patch` `imagingjobs/status`). The job's progress cannot be recorded, so nothing
    /// is started for it; the reconciler says so in a Warning Event on the job.
    #[error(
        "cannot patch imagingjobs/status, so the job's status cannot be written: {}",
        kube_message(.0)
    )]
    StatusForbidden(kube::Error),
    /// The object store failed (unreachable, refused a write…).
    #[error("object store: {0}")]
    Storage(#[from] StorageError),
    /// The ImagingJob's spec cannot run; the message names the field.
    #[error("{0}")]
    InvalidSpec(String),
    /// Planning failed (input unreadable or inconsistent, image too large for the
    /// memory given, output holding another job).
    #[error("{0}")]
    Plan(String),
    /// A stage Job could not be built from the plan.
    #[error("stage Job for {stage}: {reason}")]
    JobBuild { stage: String, reason: String },
    /// The finalizer machinery failed (adding or removing the finalizer).
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// An object the controller needs lacks a field the API server always sets.
    #[error("{0}")]
    MissingField(&'static str),
}

impl Error {
    /// A short label for metrics (`aperture_operator_reconcile_errors_total{kind}`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Kube(_) => "kube",
            Self::StatusForbidden(_) => "status_forbidden",
            Self::Storage(_) => "storage",
            Self::InvalidSpec(_) => "invalid_spec",
            Self::Plan(_) => "plan",
            Self::JobBuild { .. } => "job_build",
            Self::Finalizer(_) => "finalizer",
            Self::MissingField(_) => "missing_field",
        }
    }

    /// Whether retrying the same reconcile can succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Kube(_) | Self::StatusForbidden(_) | Self::Finalizer(_) => true,
            Self::Storage(e) => e.is_transient(),
            _ => false,
        }
    }
}

impl From<PrepareError> for Error {
    fn from(e: PrepareError) -> Self {
        match e {
            PrepareError::Storage(s) => Self::Storage(s),
            other => Self::Plan(other.to_string()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A kube error as a status message: the API server's own words for a refused request
/// (`403 Forbidden: jobs.batch is forbidden: …`), not a debug dump of its response.
pub(crate) fn kube_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} {}: {}", s.code, s.reason, s.message),
        other => other.to_string(),
    }
}
