//! The survey of a MeasurementSet input on Kubernetes (docs/operator.md, "A
//! MeasurementSet input"): the operator cannot open the MS (only the worker pods mount
//! it), so before planning it writes a [`SurveyRequest`] to `<output>/import/` and runs
//! one worker pod, `aperture-worker survey --output <output>`, which opens the MS as the
//! local planner does, creates the dataset's layout and `import/dataset.json` (the same
//! code as [`super::prepare_with`]) and writes the [`SurveyResult`] (the planner's
//! [`InputFacts`], or the error) last. The operator then plans from the result
//! ([`super::prepare_from_survey`]).

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::prepare::{PrepareError, create_ms_layout};
use crate::plan::ms::MsSource;
use crate::plan::{InputFacts, VIS_KEY};
use crate::spec::{ImagingJob, MeasurementSetSpec};
use crate::storage::{StorageError, Store, StoreOptions};
use crate::tasks::{EXIT_PERMANENT, EXIT_RETRYABLE};

/// What the operator asks the survey worker to open (written before the survey Job).
pub const SURVEY_REQUEST_KEY: &str = "import/survey-request.json";
/// The survey's result, written last by the worker: present = the survey is done.
pub const SURVEY_KEY: &str = "import/survey.json";

/// `import/survey-request.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SurveyRequest {
    /// The ImagingJob's name and uid (for the record).
    pub job: String,
    pub uid: String,
    /// The MeasurementSet and selection to survey (the job's `spec.input.measurementSet`).
    pub measurement_set: MeasurementSetSpec,
}

impl SurveyRequest {
    /// The request for `job`; `None` when its input is not a MeasurementSet.
    pub fn for_job(job: &ImagingJob) -> Option<Self> {
        Some(Self {
            job: job.metadata.name.clone().unwrap_or_default(),
            uid: job.metadata.uid.clone().unwrap_or_default(),
            measurement_set: job.spec.input.measurement_set.clone()?,
        })
    }
}

/// How a survey ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum SurveyOutcome {
    /// The MS opened and the selection resolved: the planner's facts. The dataset's
    /// layout and `import/dataset.json` exist.
    Surveyed { facts: InputFacts },
    /// The MS cannot be imported as selected: the error, naming the field, path, table
    /// and column (as `aperture run` reports it).
    Failed { error: String },
}

/// `import/survey.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SurveyResult {
    /// The request this answers.
    pub request: SurveyRequest,
    #[serde(flatten)]
    pub outcome: SurveyOutcome,
    /// The worker's version.
    pub aperture_version: String,
}

impl SurveyResult {
    /// The facts to plan `job` from: the survey's, when it surveyed exactly the job's
    /// `spec.input.measurementSet`; else the reason (names the MS path).
    pub fn facts_for(&self, job: &ImagingJob) -> Result<&InputFacts, String> {
        let path = &self.request.measurement_set.path;
        if job.spec.input.measurement_set.as_ref() != Some(&self.request.measurement_set) {
            return Err(format!(
                "the output already holds the survey of another MeasurementSet input ({path}, \
                 for job {}); choose another spec.output, or remove its import/",
                self.request.job
            ));
        }
        match &self.outcome {
            SurveyOutcome::Surveyed { facts } => Ok(facts),
            SurveyOutcome::Failed { error } => {
                let field = format!("{}: ", crate::plan::ms::FIELD);
                let error = error.strip_prefix(&field).unwrap_or(error);
                Err(format!(
                    "the survey of the MeasurementSet {path} failed: {error}"
                ))
            }
        }
    }
}

/// Why a survey could not write its result (the MS's own errors are a
/// [`SurveyOutcome::Failed`] result instead).
#[derive(Debug, Error)]
pub enum SurveyError {
    /// The output cannot be read or written.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// There is no readable request at the output.
    #[error("{SURVEY_REQUEST_KEY} at {output}: {reason}")]
    Request { output: String, reason: String },
}

impl SurveyError {
    /// The worker's exit code: retryable for a transient storage failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Storage(e) if e.is_transient() => EXIT_RETRYABLE,
            _ => EXIT_PERMANENT,
        }
    }
}

/// Surveys the MS `request` names for the job at `output`: opens it, creates the
/// dataset's layout under `<output>/vis.zarr` and `import/dataset.json`, then writes
/// [`SURVEY_KEY`]. An MS that cannot be imported gives a `Failed` result (written too).
pub async fn survey(
    request: &SurveyRequest,
    output: &str,
    options: &StoreOptions,
) -> Result<SurveyResult, SurveyError> {
    let out = Store::from_url_with(output, options)?;
    let outcome = match survey_ms(&request.measurement_set, &out, options).await {
        Ok(facts) => SurveyOutcome::Surveyed { facts },
        Err(PrepareError::Storage(e)) => return Err(e.into()),
        Err(e) => SurveyOutcome::Failed {
            error: e.to_string(),
        },
    };
    let result = SurveyResult {
        request: request.clone(),
        outcome,
        aperture_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    out.put_json(SURVEY_KEY, &result).await?;
    Ok(result)
}

async fn survey_ms(
    spec: &MeasurementSetSpec,
    out: &Store,
    options: &StoreOptions,
) -> Result<InputFacts, PrepareError> {
    let src = MsSource::open_blocking(spec).await?;
    let facts = src.facts();
    create_ms_layout(out, out.child(VIS_KEY).url(), src, options).await?;
    Ok(facts)
}

/// What `aperture-worker survey --output <output>` does: reads the request, surveys
/// (unless a result for the same request is there already: a re-run pod ends at once),
/// and returns the exit code: 0 surveyed, [`EXIT_PERMANENT`] when the MS cannot be
/// imported (the result says why) or there is no request, [`EXIT_RETRYABLE`] when the
/// store failed. Errors go to stderr as one `error: survey: …` line (the pod's
/// termination message). S3 settings come from the environment.
pub async fn survey_main(output: &str) -> u8 {
    let options = StoreOptions::default();
    let result = async {
        let out = Store::from_url_with(output, &options)?;
        let request: SurveyRequest =
            out.get_json(SURVEY_REQUEST_KEY)
                .await
                .map_err(|e| match e {
                    StorageError::NotFound { .. } => SurveyError::Request {
                        output: output.to_string(),
                        reason: "not found (the operator writes it before the survey Job)".into(),
                    },
                    StorageError::Corrupt { reason, .. } => SurveyError::Request {
                        output: output.to_string(),
                        reason,
                    },
                    other => other.into(),
                })?;
        if out.exists(SURVEY_KEY).await? {
            let done: SurveyResult = out.get_json(SURVEY_KEY).await?;
            if done.request == request {
                tracing::info!("survey already done ({SURVEY_KEY} present)");
                return Ok(done);
            }
        }
        survey(&request, output, &options).await
    }
    .await;
    match result {
        Ok(SurveyResult {
            outcome: SurveyOutcome::Surveyed { facts },
            request,
            ..
        }) => {
            eprintln!(
                "surveyed {}: {} windows of {} channels, {} times × {} baselines",
                request.measurement_set.path,
                facts.nwindows,
                facts.channels_per_window,
                facts.ntimes,
                facts.nbaselines
            );
            0
        }
        Ok(SurveyResult {
            outcome: SurveyOutcome::Failed { error },
            ..
        }) => {
            eprintln!("error: survey: {error}");
            EXIT_PERMANENT
        }
        Err(e) => {
            eprintln!("error: survey: {e}");
            e.exit_code()
        }
    }
}
