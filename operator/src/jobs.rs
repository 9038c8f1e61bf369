//! The stage Job builder: one stage of a job's plan becomes one Indexed `batch/v1` Job
//! (pure functions, no API calls), plus the names, labels and selectors that find it.
//!
//! Kubernetes references (k8s ≥ 1.31 semantics):
//! - Jobs: <https://kubernetes.io/docs/concepts/workloads/controllers/job/>
//! - Pod Security Standards, "Restricted":
//!   <https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted>
//! - Names and labels: <https://kubernetes.io/docs/concepts/overview/working-with-objects/names/>,
//!   <https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set>

use std::collections::BTreeMap;

use aperture_pipeline::plan::{Plan, Stage};
use aperture_pipeline::spec::{
    ImagingJob, ImagingJobSpec, SCRATCH_MOUNT, SCRATCH_VOLUME, WorkersSpec,
};
use aperture_pipeline::tasks::EXIT_PERMANENT;
use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement,
    PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvFromSource, EnvVar, EnvVarSource,
    LocalObjectReference, ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec,
    ResourceRequirements, SeccompProfile, SecretEnvSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::config::WorkerDefaults;

/// Label with the owning ImagingJob's name (on the Job and its pods).
pub const LABEL_JOB: &str = "aperture.dev/job";
/// Label with the stage name.
pub const LABEL_STAGE: &str = "aperture.dev/stage";
/// Label with the stage's major cycle.
pub const LABEL_CYCLE: &str = "aperture.dev/cycle";
/// Annotation with the digest of the spec the plan was made from.
pub const ANNOTATION_SPEC_DIGEST: &str = "aperture.dev/spec-digest";
/// Name of the worker container (the podFailurePolicy's exit-code rule names it).
pub const CONTAINER: &str = "worker";

/// `app.kubernetes.io/name` of the worker pods (recommended labels:
/// <https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/>).
pub const APP_NAME: &str = "aperture-worker";
/// `app.kubernetes.io/managed-by` of every stage Job.
pub const MANAGED_BY: &str = "aperture-operator";

/// UID and GID the worker runs as (the "nonroot" user of distroless images).
pub const WORKER_UID: i64 = 65532;
/// `RUST_LOG` of the worker: info keeps `kubectl logs` useful while the worker's last
/// stderr line stays its `error: task …` line, which becomes the termination message.
pub const WORKER_LOG_FILTER: &str = "info";
/// Where the writable scratch `emptyDir` is mounted (the root filesystem is read-only).
pub const SCRATCH_PATH: &str = SCRATCH_MOUNT;

/// Longest Job name [`job_name`] returns. For Indexed Jobs the job controller gives each
/// pod the hostname `<job name>-<index>`, which must be a DNS-1123 label (≤ 63), and the
/// API server refuses a Job whose last index would break that ("will not able to create
/// pod with invalid DNS label"); 56 leaves room for `-` and six digits (indexes below
/// 1 000 000; the spec allows at most 100 000 windows, hence tasks).
pub const MAX_JOB_NAME: usize = 56;
/// Hex digits of the (uid, stage) hash in a Job name.
const HASH_HEX: usize = 8;
/// Most characters of the stage kept in a Job name (the longest planned stage name,
/// `weights-reduce-NN`, has 17).
const STAGE_PART: usize = 20;

/// Indexed Jobs allow at most this parallelism (`maxParallelismForIndexedJob`).
const MAX_INDEXED_PARALLELISM: u32 = 100_000;
/// Above this many completions, a Job with `backoffLimitPerIndex` may run at most
/// [`HIGH_COMPLETIONS_PARALLELISM`] pods at once (batch API validation).
const COMPLETIONS_SOFT_LIMIT: u32 = 100_000;
const HIGH_COMPLETIONS_PARALLELISM: u32 = 10_000;

/// Why a stage Job cannot be built; each message names the object or field at fault.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum JobBuildError {
    /// The ImagingJob lacks a field every Job needs (it was not read from the API).
    #[error("ImagingJob has no {field}")]
    MissingOwnerField { field: &'static str },
    /// A value that goes into a label is not a valid label value.
    #[error(
        "{field} {value:?} cannot be a label value (at most 63 letters, digits, '-', '_' or \
         '.', beginning and ending with a letter or digit)"
    )]
    InvalidLabelValue { field: &'static str, value: String },
    /// The stage is not one of the plan's.
    #[error("stage {stage:?} is not in the plan")]
    StageNotInPlan { stage: String },
    /// A stage of no tasks has nothing to run.
    #[error("stage {stage}: the plan gives it no tasks")]
    EmptyStage { stage: String },
    /// More tasks than an Indexed Job can name (pod hostnames `<job>-<index>`).
    #[error("stage {stage}: {tasks} tasks are more than one Indexed Job can hold")]
    TooManyTasks { stage: String, tasks: u32 },
    /// A required string is empty.
    #[error("{field} is empty")]
    Empty { field: &'static str },
    /// The credentials Secret's name is not a Kubernetes object name.
    #[error(
        "spec.storage.credentialsSecret {name:?} is not a Secret name (lowercase letters, \
         digits, '-' and '.', at most 253)"
    )]
    InvalidSecretName { name: String },
    /// The trace context is not a W3C `traceparent`.
    #[error("traceparent {value:?} is not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)")]
    InvalidTraceparent { value: String },
}

/// Everything one stage Job is made from.
#[derive(Debug, Clone, Copy)]
pub struct StageJobParams<'a> {
    /// The ImagingJob as read from the API (name, namespace and uid set).
    pub owner: &'a ImagingJob,
    /// The job's plan (as stored in `plan.json`).
    pub plan: &'a Plan,
    /// The stage to run, one of `plan.stages`.
    pub stage: &'a Stage,
    /// The operator's worker configuration.
    pub defaults: &'a WorkerDefaults,
    /// W3C trace context of the job's trace, passed to the worker as `TRACEPARENT`. It
    /// must stay the same across reconciles: a Job's pod template is immutable.
    pub traceparent: Option<&'a str>,
}

/// Name of the Job of `stage` of the ImagingJob `owner_name` (uid `owner_uid`):
/// `<name>-<stage>-<hash>`, a DNS-1123 label of at most [`MAX_JOB_NAME`] characters.
///
/// Deterministic (a re-reconcile finds the Job it made) and distinct per (uid, stage):
/// the hash covers both, so a re-created ImagingJob of the same name never adopts its
/// predecessor's Jobs, and stages whose readable parts are truncated to the same text
/// still differ. Name and stage are lowercased and anything but `[a-z0-9]` becomes `-`.
pub fn job_name(owner_name: &str, owner_uid: &str, stage: &str) -> String {
    let mut h = Sha256::new();
    h.update(owner_uid.as_bytes());
    h.update([0u8]);
    h.update(stage.as_bytes());
    let hash: String = h.finalize()[..HASH_HEX / 2]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let stage_part = truncate(&sanitize(stage), STAGE_PART);
    let stage_len = if stage_part.is_empty() {
        0
    } else {
        stage_part.len() + 1
    };
    let budget = MAX_JOB_NAME - HASH_HEX - 1 - stage_len;
    let name_part = truncate(&sanitize(owner_name), budget);
    [name_part.as_str(), stage_part.as_str(), hash.as_str()]
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("-")
}

/// Lowercase, `[a-z0-9]` kept, runs of anything else become one `-`, no `-` at the ends.
fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// At most `n` bytes of an ASCII string, without a trailing `-`.
fn truncate(s: &str, n: usize) -> String {
    s[..s.len().min(n)].trim_end_matches('-').to_string()
}

/// Label selector of the stage Jobs of ImagingJob `owner_name` (its pods match it too).
/// Several ImagingJobs of one name over time share it: filter by owner uid as well.
pub fn stage_selector(owner_name: &str) -> String {
    format!("{LABEL_JOB}={owner_name},app.kubernetes.io/managed-by={MANAGED_BY}")
}

/// Requests and limits of a worker container.
///
/// `spec.workers.resources` when given; otherwise sized from the planner: memory
/// request = limit = max(`min_memory_mib`, `est_task_memory_bytes` × `memory_headroom`)
/// Mi (request = limit: a worker is never the first evicted under memory pressure and
/// never OOM-killed below its estimate; "Guaranteed" memory per
/// <https://kubernetes.io/docs/concepts/workloads/pods/pod-qos/>), CPU request =
/// `threadsPerTask` when > 0, else `defaults.cpu_request`, and no CPU limit (CFS
/// throttling would only slow the FFTs down). Then every resource name that neither
/// of those sets, in requests or limits, comes from `defaults.resources` — merged per
/// resource name so a request and its limit always come from one source and cannot
/// contradict each other
/// (<https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/>).
pub fn worker_resources(
    spec: &WorkersSpec,
    plan: &Plan,
    defaults: &WorkerDefaults,
) -> ResourceRequirements {
    let mut r = match &spec.resources {
        Some(given) => given.clone(),
        None => estimated_resources(plan, defaults),
    };
    if let Some(d) = &defaults.resources {
        merge_by_resource_name(&mut r, d);
    }
    r
}

fn estimated_resources(plan: &Plan, defaults: &WorkerDefaults) -> ResourceRequirements {
    let headroom = if defaults.memory_headroom.is_finite() {
        defaults.memory_headroom.max(1.0)
    } else {
        1.0
    };
    // f64 → u64 casts saturate; an estimate near u64::MAX stays huge, not wrapped.
    let est_mib = (plan.est_task_memory_bytes as f64 * headroom / 1_048_576.0).ceil() as u64;
    let mib = est_mib.max(defaults.min_memory_mib).max(1);
    let memory = Quantity(format!("{mib}Mi"));
    let threads = plan.spec.parallelism.threads_per_task;
    let cpu = if threads > 0 {
        Quantity(threads.to_string())
    } else {
        Quantity(defaults.cpu_request.clone())
    };
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), cpu),
            ("memory".to_string(), memory.clone()),
        ])),
        limits: Some(BTreeMap::from([("memory".to_string(), memory)])),
        claims: None,
    }
}

fn merge_by_resource_name(r: &mut ResourceRequirements, d: &ResourceRequirements) {
    let named = |m: &Option<BTreeMap<String, Quantity>>| -> Vec<String> {
        m.iter().flat_map(|m| m.keys().cloned()).collect()
    };
    let mut set = named(&r.requests);
    set.extend(named(&r.limits));
    for (src, dst) in [(&d.requests, &mut r.requests), (&d.limits, &mut r.limits)] {
        for (k, v) in src.iter().flatten() {
            if !set.contains(k) {
                dst.get_or_insert_with(BTreeMap::new)
                    .insert(k.clone(), v.clone());
            }
        }
    }
    if r.claims.as_ref().is_none_or(|c| c.is_empty()) && d.claims.is_some() {
        r.claims = d.claims.clone();
    }
}

/// The Indexed Job that runs every task of `p.stage`.
///
/// The spec-derived parts (workers, parallelism, storage, telemetry) come from
/// `p.plan.spec`, the spec the plan was made from (changes after the start are refused),
/// so every Job of a run agrees with its plan; `p.owner` gives only name, namespace and
/// uid. The same inputs always give the same Job (server-side apply is idempotent).
pub fn stage_job(p: &StageJobParams) -> Result<Job, JobBuildError> {
    let owner = p.owner;
    let (owner_name, namespace, uid) = owner_identity(owner)?;
    let stage = p.stage;
    if p.plan.stage(&stage.name).is_none() {
        return Err(JobBuildError::StageNotInPlan {
            stage: stage.name.clone(),
        });
    }
    check_label_value("ImagingJob metadata.name", owner_name)?;
    check_label_value("stage name", &stage.name)?;
    if stage.tasks == 0 {
        return Err(JobBuildError::EmptyStage {
            stage: stage.name.clone(),
        });
    }
    let name = job_name(owner_name, uid, &stage.name);
    let completions = i32::try_from(stage.tasks).ok().filter(|_| {
        // The last pod's hostname, `<name>-<tasks-1>`, must be a DNS-1123 label.
        name.len() + 1 + (stage.tasks - 1).to_string().len() <= 63
    });
    let Some(completions) = completions else {
        return Err(JobBuildError::TooManyTasks {
            stage: stage.name.clone(),
            tasks: stage.tasks,
        });
    };
    if p.plan.output.trim().is_empty() {
        return Err(JobBuildError::Empty {
            field: "plan output URL",
        });
    }
    if let Some(tp) = p.traceparent
        && !is_traceparent(tp)
    {
        return Err(JobBuildError::InvalidTraceparent {
            value: tp.to_string(),
        });
    }
    let spec = &p.plan.spec;
    let max_parallel = spec.parallelism.max_parallel.max(1);
    let mut parallelism = stage.tasks.min(max_parallel).min(MAX_INDEXED_PARALLELISM);
    if stage.tasks > COMPLETIONS_SOFT_LIMIT {
        parallelism = parallelism.min(HIGH_COMPLETIONS_PARALLELISM);
    }
    let pod = pod_spec(&PodParams {
        spec,
        args: vec![
            "--plan".to_string(),
            p.plan.output.clone(),
            "--stage".to_string(),
            stage.name.clone(),
        ],
        resources: worker_resources(&spec.workers, p.plan, p.defaults),
        defaults: p.defaults,
        traceparent: p.traceparent,
        owner_name,
    })?;
    Ok(indexed_job(IndexedJob {
        name,
        namespace,
        labels: stage_labels(owner_name, &stage.name, stage.cycle),
        spec_digest: p.plan.spec_digest.clone(),
        owner_ref: owner_reference(owner)?,
        completions,
        parallelism,
        max_attempts: spec.parallelism.max_attempts,
        ttl_seconds: p.defaults.ttl_seconds_after_finished,
        pod,
    }))
}

/// What differs between the operator's Indexed Jobs (the stages' and the survey's).
struct IndexedJob<'a> {
    name: String,
    namespace: &'a str,
    labels: BTreeMap<String, String>,
    spec_digest: String,
    owner_ref: OwnerReference,
    completions: i32,
    parallelism: u32,
    max_attempts: u32,
    ttl_seconds: i32,
    pod: PodSpec,
}

/// An Indexed Job of `j.completions` pods running `j.pod`, owned by the ImagingJob.
fn indexed_job(j: IndexedJob) -> Job {
    let backoff_per_index = i32::try_from(j.max_attempts.saturating_sub(1)).unwrap_or(i32::MAX);
    Job {
        metadata: ObjectMeta {
            name: Some(j.name),
            namespace: Some(j.namespace.to_string()),
            labels: Some(j.labels.clone()),
            annotations: Some(BTreeMap::from([(
                ANNOTATION_SPEC_DIGEST.to_string(),
                j.spec_digest,
            )])),
            owner_references: Some(vec![j.owner_ref]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            // One pod per task; the pod's index is the task index, given to the worker
            // in JOB_COMPLETION_INDEX by the job controller:
            // <https://kubernetes.io/docs/concepts/workloads/controllers/job/#completion-mode>.
            completion_mode: Some("Indexed".into()),
            completions: Some(j.completions),
            parallelism: Some(i32::try_from(j.parallelism).unwrap_or(i32::MAX)),
            // Each task gets maxAttempts attempts of its own, so one flaky task cannot
            // use up the retries of all the others; `backoffLimit` is then left to its
            // default (unlimited) and `maxFailedIndexes: 0` fails the Job as soon as one
            // task is out of attempts — the operator fails the ImagingJob with the reason:
            // <https://kubernetes.io/docs/concepts/workloads/controllers/job/#backoff-limit-per-index>.
            backoff_limit_per_index: Some(backoff_per_index),
            max_failed_indexes: Some(0),
            pod_failure_policy: Some(pod_failure_policy()),
            // A replacement pod starts only once the failed one has fully terminated
            // (the only value allowed with a podFailurePolicy):
            // <https://kubernetes.io/docs/concepts/workloads/controllers/job/#pod-replacement-policy>.
            pod_replacement_policy: Some("Failed".into()),
            // <https://kubernetes.io/docs/concepts/workloads/controllers/ttlafterfinished/>;
            // the result manifests in storage, not the Job, record what was done.
            ttl_seconds_after_finished: Some(j.ttl_seconds.max(0)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(j.labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(j.pod),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

/// The stage label (and the Job name's stage part) of a job's survey Job.
pub const SURVEY_STAGE: &str = "survey";
/// Memory request = limit of the survey pod, MiB, unless `spec.workers.resources` or
/// `spec.parallelism.workerMemoryMib` say otherwise: the survey holds a few per-row
/// columns of the main table (at most 8 bytes a row each) and the grid's UVW.
pub const SURVEY_MEMORY_MIB: u64 = 1024;

/// Everything the survey Job of a job with `spec.input.measurementSet` is made from
/// (there is no plan yet: the survey's result is what the plan is made from).
#[derive(Debug, Clone, Copy)]
pub struct SurveyJobParams<'a> {
    /// The ImagingJob as read from the API (name, namespace and uid set); its spec gives
    /// the pod's image, volumes, Secret, placement and telemetry.
    pub owner: &'a ImagingJob,
    /// The job's output URL, where `import/survey-request.json` is.
    pub output: &'a str,
    pub defaults: &'a WorkerDefaults,
    /// W3C trace context of the job's trace (see [`StageJobParams::traceparent`]).
    pub traceparent: Option<&'a str>,
}

/// Requests and limits of the survey pod: `spec.workers.resources` when given, else
/// memory request = limit = `spec.parallelism.workerMemoryMib` or [`SURVEY_MEMORY_MIB`]
/// (at least the operator's floor) and the default CPU request; the operator's default
/// resources fill the names neither sets, as for [`worker_resources`].
pub fn survey_resources(spec: &ImagingJobSpec, defaults: &WorkerDefaults) -> ResourceRequirements {
    let mut r = spec.workers.resources.clone().unwrap_or_else(|| {
        let mib = spec
            .parallelism
            .worker_memory_mib
            .unwrap_or(SURVEY_MEMORY_MIB)
            .max(defaults.min_memory_mib)
            .max(1);
        let memory = Quantity(format!("{mib}Mi"));
        ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity(defaults.cpu_request.clone())),
                ("memory".to_string(), memory.clone()),
            ])),
            limits: Some(BTreeMap::from([("memory".to_string(), memory)])),
            claims: None,
        }
    });
    if let Some(d) = &defaults.resources {
        merge_by_resource_name(&mut r, d);
    }
    r
}

/// The survey Job: one pod running `<worker command> survey --output <output>`, with
/// the same pod template as the stage Jobs (image, volumes and mounts, credentials
/// Secret, security context, placement) and the same retry rules (an Indexed Job of one
/// index: `maxAttempts` attempts, exit code 65 fails at once). Named like a stage
/// ([`job_name`] of [`SURVEY_STAGE`]) and labelled `aperture.dev/stage=survey`, so the
/// stage-Job list, deletion and cleanup find it.
pub fn survey_job(p: &SurveyJobParams) -> Result<Job, JobBuildError> {
    let owner = p.owner;
    let (owner_name, namespace, uid) = owner_identity(owner)?;
    check_label_value("ImagingJob metadata.name", owner_name)?;
    if p.output.trim().is_empty() {
        return Err(JobBuildError::Empty {
            field: "spec.output",
        });
    }
    if let Some(tp) = p.traceparent
        && !is_traceparent(tp)
    {
        return Err(JobBuildError::InvalidTraceparent {
            value: tp.to_string(),
        });
    }
    let spec = &owner.spec;
    let pod = pod_spec(&PodParams {
        spec,
        args: vec![
            "survey".to_string(),
            "--output".to_string(),
            p.output.to_string(),
        ],
        resources: survey_resources(spec, p.defaults),
        defaults: p.defaults,
        traceparent: p.traceparent,
        owner_name,
    })?;
    Ok(indexed_job(IndexedJob {
        name: job_name(owner_name, uid, SURVEY_STAGE),
        namespace,
        labels: stage_labels(owner_name, SURVEY_STAGE, 0),
        spec_digest: aperture_pipeline::plan::spec_digest(spec),
        owner_ref: owner_reference(owner)?,
        completions: 1,
        parallelism: 1,
        max_attempts: spec.parallelism.max_attempts,
        ttl_seconds: p.defaults.ttl_seconds_after_finished,
        pod,
    }))
}

/// Name, namespace and uid of the ImagingJob, each required.
fn owner_identity(owner: &ImagingJob) -> Result<(&str, &str, &str), JobBuildError> {
    fn field<'a>(v: &'a Option<String>, field: &'static str) -> Result<&'a str, JobBuildError> {
        v.as_deref()
            .filter(|n| !n.is_empty())
            .ok_or(JobBuildError::MissingOwnerField { field })
    }
    Ok((
        field(&owner.metadata.name, "metadata.name")?,
        field(&owner.metadata.namespace, "metadata.namespace")?,
        field(&owner.metadata.uid, "metadata.uid")?,
    ))
}

/// The controller owner reference to the ImagingJob, blocking its foreground deletion.
fn owner_reference(owner: &ImagingJob) -> Result<OwnerReference, JobBuildError> {
    owner
        .controller_owner_ref(&())
        .map(|r| OwnerReference {
            // The ImagingJob cannot be deleted (foreground) before its Jobs are:
            // <https://kubernetes.io/docs/concepts/architecture/garbage-collection/#foreground-deletion>.
            block_owner_deletion: Some(true),
            ..r
        })
        .ok_or(JobBuildError::MissingOwnerField {
            field: "metadata.uid",
        })
}

/// Labels of a stage Job and of its pods.
fn stage_labels(owner_name: &str, stage: &str, cycle: u32) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_JOB.to_string(), owner_name.to_string()),
        (LABEL_STAGE.to_string(), stage.to_string()),
        (LABEL_CYCLE.to_string(), cycle.to_string()),
        ("app.kubernetes.io/name".to_string(), APP_NAME.to_string()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            MANAGED_BY.to_string(),
        ),
        (
            "app.kubernetes.io/instance".to_string(),
            owner_name.to_string(),
        ),
    ])
}

/// The podFailurePolicy of every stage Job; the first matching rule applies
/// (<https://kubernetes.io/docs/concepts/workloads/controllers/job/#pod-failure-policy>):
/// 1. `Ignore` pods with the `DisruptionTarget` condition (node drain, preemption,
///    taint eviction: <https://kubernetes.io/docs/concepts/workloads/pods/disruptions/#pod-disruption-conditions>),
///    so they do not count against the task's attempts — tasks are idempotent;
/// 2. `FailIndex` when the worker exits with [`EXIT_PERMANENT`] (bad input, corrupt
///    data): retrying cannot help, so the task fails at once.
///
/// Any other failure (exit 75 = retryable, OOM kill, …) counts against
/// `backoffLimitPerIndex`.
pub fn pod_failure_policy() -> PodFailurePolicy {
    PodFailurePolicy {
        rules: vec![
            PodFailurePolicyRule {
                action: "Ignore".into(),
                on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                    type_: "DisruptionTarget".into(),
                    status: Some("True".into()),
                }]),
                on_exit_codes: None,
            },
            PodFailurePolicyRule {
                action: "FailIndex".into(),
                on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                    container_name: Some(CONTAINER.into()),
                    operator: "In".into(),
                    values: vec![i32::from(EXIT_PERMANENT)],
                }),
                on_pod_conditions: None,
            },
        ],
    }
}

/// What a worker pod is made from: a stage task's or the survey's.
struct PodParams<'a> {
    /// The spec the pod runs for (the plan's, or the ImagingJob's before planning).
    spec: &'a ImagingJobSpec,
    /// Arguments after the operator's worker command.
    args: Vec<String>,
    resources: ResourceRequirements,
    defaults: &'a WorkerDefaults,
    traceparent: Option<&'a str>,
    owner_name: &'a str,
}

fn pod_spec(p: &PodParams) -> Result<PodSpec, JobBuildError> {
    let spec = p.spec;
    let owner_name = p.owner_name;
    let workers = &spec.workers;
    let d = p.defaults;
    let image = workers.image.as_deref().unwrap_or(&d.image);
    if image.trim().is_empty() {
        return Err(JobBuildError::Empty {
            field: if workers.image.is_some() {
                "spec.workers.image"
            } else {
                "the operator's worker image (--worker-image)"
            },
        });
    }
    if d.command.is_empty() || d.command[0].trim().is_empty() {
        return Err(JobBuildError::Empty {
            field: "the operator's worker command",
        });
    }
    let mut command = d.command.clone();
    command.extend(p.args.iter().cloned());
    let mut env = Vec::new();
    if let Some(tp) = p.traceparent {
        env.push(env_var("TRACEPARENT", tp));
    }
    env.push(env_var("APERTURE_JOB", owner_name));
    env.push(env_var("RUST_LOG", WORKER_LOG_FILTER));
    // The attempt number of the task span: the job controller counts an index's failed
    // pods in this annotation (backoffLimitPerIndex,
    // <https://kubernetes.io/docs/concepts/workloads/controllers/job/#backoff-limit-per-index>).
    env.push(EnvVar {
        name: "APERTURE_INDEX_FAILURES".into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "metadata.annotations['batch.kubernetes.io/job-index-failure-count']"
                    .into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    // The OpenTelemetry SDKs' standard variables
    // (<https://opentelemetry.io/docs/specs/otel/protocol/exporter/>): the job's own
    // collector, else the operator's.
    if let Some(ep) = spec.telemetry.otlp_endpoint.as_deref() {
        env.push(env_var("OTEL_EXPORTER_OTLP_ENDPOINT", ep));
        env.push(env_var(
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            spec.telemetry.protocol.as_str(),
        ));
    } else if let Some(ep) = d.otlp_endpoint.as_deref() {
        env.push(env_var("OTEL_EXPORTER_OTLP_ENDPOINT", ep));
    }
    env.push(env_var("OTEL_SERVICE_NAME", APP_NAME));
    // The worker's cap on its per-w-plane phase spans (crates/telemetry, config.rs;
    // docs/observability.md), when the operator is configured with one.
    if let Some(n) = d.trace_phase_spans {
        env.push(env_var("APERTURE_TRACE_PHASE_SPANS", &n.to_string()));
    }
    let env_from = match spec.storage.credentials_secret.as_deref() {
        Some(secret) => {
            if !is_dns_subdomain(secret) {
                return Err(JobBuildError::InvalidSecretName {
                    name: secret.to_string(),
                });
            }
            // Every key of the Secret (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
            // AWS_ENDPOINT, AWS_REGION, …) becomes a variable of the same name; not
            // optional, so a missing Secret stops the pod instead of running without
            // credentials:
            // <https://kubernetes.io/docs/tasks/inject-data-application/distribute-credentials-secure/#configure-all-key-value-pairs-in-a-secret-as-container-environment-variables>.
            Some(vec![EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: secret.to_string(),
                    optional: Some(false),
                }),
                ..EnvFromSource::default()
            }])
        }
        None => None,
    };
    let container = Container {
        name: CONTAINER.into(),
        image: Some(image.to_string()),
        image_pull_policy: d.image_pull_policy.clone(),
        command: Some(command),
        env: Some(env),
        env_from,
        resources: Some(p.resources.clone()),
        // The worker prints `error: task <stage>/<index>: <reason>` last on stderr; with
        // no termination-message file written, the log tail becomes the pod's
        // termination message, which the operator reports as the failure reason:
        // <https://kubernetes.io/docs/tasks/debug/debug-application/determine-reason-pod-failure/#customizing-the-termination-message>.
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            ..SecurityContext::default()
        }),
        // The scratch volume, then the job's own (`spec.workers.volumeMounts`, e.g. the
        // filesystem of a MeasurementSet; checked by `validate_cluster`):
        // <https://kubernetes.io/docs/concepts/storage/volumes/>.
        volume_mounts: Some(
            std::iter::once(VolumeMount {
                name: SCRATCH_VOLUME.into(),
                mount_path: SCRATCH_PATH.into(),
                ..VolumeMount::default()
            })
            .chain(workers.volume_mounts.iter().cloned())
            .collect(),
        ),
        ..Container::default()
    };
    // The job asks for the host network, or the operator gives it to every worker.
    let host_network = workers.host_network || d.host_network;
    // Placement: a field the job sets replaces the operator's default for that field.
    let node_selector = if workers.node_selector.is_empty() {
        &d.node_selector
    } else {
        &workers.node_selector
    };
    let tolerations = if workers.tolerations.is_empty() {
        &d.tolerations
    } else {
        &workers.tolerations
    };
    Ok(PodSpec {
        containers: vec![container],
        // Required by a podFailurePolicy; a failed task is retried in a new pod, counted
        // by backoffLimitPerIndex, not restarted in place.
        restart_policy: Some("Never".into()),
        // Pod Security Standards "Restricted": non-root, RuntimeDefault seccomp; with the
        // container's no privilege escalation, read-only root and no capabilities.
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(WORKER_UID),
            run_as_group: Some(WORKER_UID),
            fs_group: Some(WORKER_UID),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            ..PodSecurityContext::default()
        }),
        // Workers never call the Kubernetes API:
        // <https://kubernetes.io/docs/tasks/configure-pod-container/configure-service-account/#opt-out-of-api-credential-automounting>.
        automount_service_account_token: Some(false),
        service_account_name: d.service_account.clone(),
        // No `<SERVICE>_HOST/_PORT` variables for every Service of the namespace
        // (thousands of variables in a busy namespace, and none used).
        enable_service_links: Some(false),
        image_pull_secrets: (!d.image_pull_secrets.is_empty()).then(|| {
            d.image_pull_secrets
                .iter()
                .map(|s| LocalObjectReference { name: s.clone() })
                .collect()
        }),
        // The memo's bare-metal option. A host-network pod must ask for
        // ClusterFirstWithHostNet to still resolve cluster Services (e.g. an in-cluster
        // object store): <https://kubernetes.io/docs/concepts/services-networking/dns-pod-service/#pod-s-dns-policy>.
        host_network: host_network.then_some(true),
        dns_policy: host_network.then(|| "ClusterFirstWithHostNet".into()),
        node_selector: (!node_selector.is_empty()).then(|| node_selector.clone()),
        tolerations: (!tolerations.is_empty()).then(|| tolerations.clone()),
        affinity: workers.affinity.clone().or_else(|| d.affinity.clone()),
        volumes: Some(
            std::iter::once(Volume {
                name: SCRATCH_VOLUME.into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Volume::default()
            })
            .chain(workers.volumes.iter().cloned())
            .collect(),
        ),
        ..PodSpec::default()
    })
}

fn env_var(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn check_label_value(field: &'static str, v: &str) -> Result<(), JobBuildError> {
    let ok = !v.is_empty()
        && v.len() <= 63
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && v.as_bytes()[0].is_ascii_alphanumeric()
        && v.as_bytes()[v.len() - 1].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(JobBuildError::InvalidLabelValue {
            field,
            value: v.to_string(),
        })
    }
}

/// RFC 1123 subdomain: the names of Secrets and most other objects.
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// W3C Trace Context `traceparent`, version 00
/// (<https://www.w3.org/TR/trace-context/#traceparent-header>): lowercase hex fields,
/// trace id and parent id not all zero.
fn is_traceparent(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let hex = |p: &str, n: usize| {
        p.len() == n
            && p.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let nonzero = |p: &str| p.bytes().any(|b| b != b'0');
    parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && nonzero(parts[1])
        && hex(parts[2], 16)
        && nonzero(parts[2])
        && hex(parts[3], 2)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use aperture_pipeline::spec::PipelineKind;
    use k8s_openapi::api::core::v1::{
        Affinity, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Toleration,
    };

    use super::*;
    use crate::fixtures::{ImagingJobBuilder, TEST_IMAGE, plan_for, test_defaults};

    /// `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`, at most 63: RFC 1123 label, written out here
    /// independently of the builder's own checks.
    fn is_dns_label(s: &str) -> bool {
        let b = s.as_bytes();
        let inner = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
        let end = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        !b.is_empty() && b.len() <= 63 && b.iter().all(inner) && end(&b[0]) && end(&b[b.len() - 1])
    }

    /// Builds the Job of `stage` (by name) of `job`'s plan with the test defaults.
    fn build(job: &ImagingJob, stage: &str, tp: Option<&str>) -> Result<Job, JobBuildError> {
        let plan = plan_for(job);
        let st = plan.stage(stage).expect("stage in plan").clone();
        stage_job(&StageJobParams {
            owner: job,
            plan: &plan,
            stage: &st,
            defaults: &test_defaults(),
            traceparent: tp,
        })
    }

    fn ok(job: &ImagingJob, stage: &str) -> Job {
        build(job, stage, None).expect("job builds")
    }

    /// The Job of `stage` of `job`'s plan with the operator defaults `d`.
    fn with_defaults(job: &ImagingJob, stage: &str, d: &WorkerDefaults) -> Job {
        let plan = plan_for(job);
        let st = plan.stage(stage).expect("stage in plan").clone();
        stage_job(&StageJobParams {
            owner: job,
            plan: &plan,
            stage: &st,
            defaults: d,
            traceparent: None,
        })
        .expect("job builds")
    }

    fn pod(j: &Job) -> &PodSpec {
        j.spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .expect("pod spec")
    }

    fn container(j: &Job) -> &Container {
        &pod(j).containers[0]
    }

    fn jspec(j: &Job) -> &JobSpec {
        j.spec.as_ref().expect("job spec")
    }

    fn env(j: &Job) -> BTreeMap<String, String> {
        container(j)
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect()
    }

    fn q(s: &str) -> Quantity {
        Quantity(s.to_string())
    }

    #[test]
    fn jobs_names_are_short_dns_labels_distinct_per_uid_and_stage() {
        let long63 = "a".repeat(63);
        let subdomain = format!("{}.{}", "b".repeat(120), "c".repeat(120));
        for owner in [
            "ical-low",
            long63.as_str(),
            subdomain.as_str(),
            "UPPER_case.x",
            "--",
        ] {
            for stage in [
                "simulate",
                "weights-reduce-12",
                "deconvolve-100",
                &"s".repeat(80),
                "Ünïcode/stage",
                "",
            ] {
                let n = job_name(owner, "uid-1", stage);
                assert!(n.len() <= MAX_JOB_NAME, "{n} is {} long", n.len());
                assert!(is_dns_label(&n), "{n:?} is not a DNS label");
                // The last pod hostname of a 100 000-task stage is still a label.
                assert!(is_dns_label(&format!("{n}-99999")), "{n}");
                assert_eq!(n, job_name(owner, "uid-1", stage), "deterministic");
                assert_ne!(n, job_name(owner, "uid-2", stage), "uid is in the name");
            }
        }
        assert!(job_name("ical-low", "u", "invert").starts_with("ical-low-invert-"));
        // Stages whose readable parts truncate to the same text still differ.
        let (a, b) = ("x".repeat(40) + "a", "x".repeat(40) + "b");
        assert_ne!(job_name(&long63, "u", &a), job_name(&long63, "u", &b));
        // Every stage of a real plan gets its own name.
        let job = ImagingJobBuilder::new("ical-low")
            .pipeline(PipelineKind::Ical)
            .major_cycles(5)
            .build();
        let plan = plan_for(&job);
        let names: HashSet<String> = plan
            .stages
            .iter()
            .map(|s| job_name("ical-low", "u", &s.name))
            .collect();
        assert_eq!(names.len(), plan.stages.len());
    }

    #[test]
    fn jobs_every_stage_becomes_an_indexed_job_owned_by_the_imaging_job() {
        let job = ImagingJobBuilder::new("ical-low")
            .pipeline(PipelineKind::Ical)
            .build();
        let plan = plan_for(&job);
        let uid = job.metadata.uid.clone().expect("uid");
        assert!(plan.stages.len() >= 6, "{:?}", plan.stages);
        for st in &plan.stages {
            let j = ok(&job, &st.name);
            let name = j.metadata.name.clone().expect("name");
            assert_eq!(name, job_name("ical-low", &uid, &st.name));
            assert_eq!(j.metadata.namespace.as_deref(), Some("imaging"));
            let labels = j.metadata.labels.clone().expect("labels");
            let want: BTreeMap<String, String> = [
                ("aperture.dev/job", "ical-low".to_string()),
                ("aperture.dev/stage", st.name.clone()),
                ("aperture.dev/cycle", st.cycle.to_string()),
                ("app.kubernetes.io/name", "aperture-worker".into()),
                ("app.kubernetes.io/managed-by", "aperture-operator".into()),
                ("app.kubernetes.io/instance", "ical-low".into()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            assert_eq!(labels, want);
            let tmpl_labels = jspec(&j)
                .template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone());
            assert_eq!(tmpl_labels, Some(want));
            assert_eq!(
                j.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(ANNOTATION_SPEC_DIGEST)),
                Some(&plan.spec_digest)
            );
            let refs = j.metadata.owner_references.clone().expect("owner refs");
            assert_eq!(refs.len(), 1);
            let r = &refs[0];
            assert_eq!(
                (
                    r.api_version.as_str(),
                    r.kind.as_str(),
                    r.name.as_str(),
                    r.uid.as_str()
                ),
                (
                    "aperture.dev/v1alpha1",
                    "ImagingJob",
                    "ical-low",
                    uid.as_str()
                )
            );
            assert_eq!(
                (r.controller, r.block_owner_deletion),
                (Some(true), Some(true))
            );
            let s = jspec(&j);
            assert_eq!(s.completion_mode.as_deref(), Some("Indexed"));
            assert_eq!(s.completions, Some(st.tasks as i32));
            assert_eq!(s.ttl_seconds_after_finished, Some(3600));
            assert_eq!(s.pod_replacement_policy.as_deref(), Some("Failed"));
            assert_eq!(pod(&j).restart_policy.as_deref(), Some("Never"));
            let c = container(&j);
            assert_eq!(c.name, "worker");
            assert_eq!(c.image.as_deref(), Some(TEST_IMAGE));
            assert_eq!(
                c.command.clone().expect("command"),
                vec![
                    "aperture-worker".to_string(),
                    "--plan".into(),
                    "s3://aperture-test/ical-low/".into(),
                    "--stage".into(),
                    st.name.clone(),
                ]
            );
            assert_eq!(
                c.termination_message_policy.as_deref(),
                Some("FallbackToLogsOnError")
            );
            // For server-side apply the serialised object names its type.
            let v = serde_json::to_value(&j).expect("serialises");
            assert_eq!(v["apiVersion"], "batch/v1");
            assert_eq!(v["kind"], "Job");
        }
    }

    #[test]
    fn jobs_parallelism_is_min_of_tasks_and_max_parallel() {
        let base = ImagingJobBuilder::new("par")
            .windows(8)
            .windows_per_shard(1);
        for (max_parallel, map_want) in [(3, 3), (8, 8), (100, 8), (1, 1)] {
            let job = base.clone().max_parallel(max_parallel).build();
            let plan = plan_for(&job);
            let invert = plan.stage("invert").expect("invert");
            assert_eq!(invert.tasks, 8);
            let j = ok(&job, "invert");
            assert_eq!(
                jspec(&j).parallelism,
                Some(map_want),
                "maxParallel {max_parallel}"
            );
            // A single-task stage never asks for more pods than it has tasks.
            let j = ok(&job, "restore");
            assert_eq!(jspec(&j).parallelism, Some(1));
        }
    }

    #[test]
    fn jobs_retry_budget_is_per_index_and_one_lost_index_fails_the_job() {
        for (attempts, per_index) in [(1, 0), (3, 2), (20, 19)] {
            let job = ImagingJobBuilder::new("retry")
                .max_attempts(attempts)
                .build();
            let s = ok(&job, "invert").spec.expect("spec");
            assert_eq!(s.backoff_limit_per_index, Some(per_index), "{attempts}");
            assert_eq!(s.max_failed_indexes, Some(0));
            // Left unset: with backoffLimitPerIndex the API defaults it to unlimited.
            assert_eq!(s.backoff_limit, None);
        }
    }

    #[test]
    fn jobs_pod_failure_policy_ignores_disruptions_and_fails_the_index_on_exit_65() {
        let j = ok(&ImagingJobBuilder::new("pfp").build(), "invert");
        let got = serde_json::to_value(jspec(&j).pod_failure_policy.as_ref().expect("policy"))
            .expect("serialises");
        // The shape of the Kubernetes docs' examples, written out by hand.
        let want = serde_json::json!({"rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            {"action": "FailIndex", "onExitCodes": {"containerName": "worker", "operator": "In", "values": [65]}},
        ]});
        assert_eq!(got, want);
        // The rule must name a container of the pod (API validation).
        assert!(pod(&j).containers.iter().any(|c| c.name == CONTAINER));
    }

    #[test]
    fn jobs_host_network_brings_cluster_first_with_host_net_dns() {
        let on = ok(
            &ImagingJobBuilder::new("hn").host_network(true).build(),
            "invert",
        );
        assert_eq!(pod(&on).host_network, Some(true));
        assert_eq!(
            pod(&on).dns_policy.as_deref(),
            Some("ClusterFirstWithHostNet")
        );
        let off = ok(
            &ImagingJobBuilder::new("hn").host_network(false).build(),
            "invert",
        );
        assert_eq!(pod(&off).host_network, None);
        assert_eq!(pod(&off).dns_policy, None);
    }

    #[test]
    fn jobs_node_selector_tolerations_and_affinity_are_copied() {
        let tol = Toleration {
            key: Some("dedicated".into()),
            operator: Some("Equal".into()),
            value: Some("imaging".into()),
            effect: Some("NoSchedule".into()),
            toleration_seconds: None,
        };
        let aff = Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: "kubernetes.io/arch".into(),
                            operator: "In".into(),
                            values: Some(vec!["amd64".into()]),
                        }]),
                        match_fields: None,
                    }],
                }),
                preferred_during_scheduling_ignored_during_execution: None,
            }),
            ..Affinity::default()
        };
        let job = ImagingJobBuilder::new("place")
            .node_selector("node.kubernetes.io/instance-type", "bare-metal")
            .toleration(tol.clone())
            .affinity(aff.clone())
            .build();
        let j = ok(&job, "invert");
        let p = pod(&j);
        assert_eq!(
            p.node_selector,
            Some(BTreeMap::from([(
                "node.kubernetes.io/instance-type".to_string(),
                "bare-metal".to_string()
            )]))
        );
        assert_eq!(p.tolerations, Some(vec![tol]));
        assert_eq!(p.affinity, Some(aff));
        let plain = ok(&ImagingJobBuilder::new("place").build(), "invert");
        let p = pod(&plain);
        assert_eq!(
            (&p.node_selector, &p.tolerations, &p.affinity),
            (&None, &None, &None)
        );
    }

    #[test]
    fn jobs_operator_placement_defaults_apply_unless_the_job_sets_the_field() {
        let tol = |key: &str| Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Toleration::default()
        };
        let zone = |z: &str| Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: "topology.kubernetes.io/zone".into(),
                            operator: "In".into(),
                            values: Some(vec![z.into()]),
                        }]),
                        match_fields: None,
                    }],
                }),
                preferred_during_scheduling_ignored_during_execution: None,
            }),
            ..Affinity::default()
        };
        let d = WorkerDefaults {
            host_network: true,
            node_selector: BTreeMap::from([("pool".to_string(), "bare-metal".to_string())]),
            tolerations: vec![tol("dedicated")],
            affinity: Some(zone("az-1")),
            ..test_defaults()
        };
        // A job that sets none of them gets the operator's.
        let plain = ImagingJobBuilder::new("dflt").build();
        let j = with_defaults(&plain, "invert", &d);
        let p = pod(&j);
        assert_eq!(p.host_network, Some(true));
        assert_eq!(p.dns_policy.as_deref(), Some("ClusterFirstWithHostNet"));
        assert_eq!(p.node_selector, Some(d.node_selector.clone()));
        assert_eq!(p.tolerations, Some(vec![tol("dedicated")]));
        assert_eq!(p.affinity, Some(zone("az-1")));
        // A job that sets a field replaces that field's default, and only that one.
        let own = ImagingJobBuilder::new("own")
            .node_selector("pool", "vm")
            .toleration(tol("gpu"))
            .build();
        let j = with_defaults(&own, "invert", &d);
        let p = pod(&j);
        assert_eq!(
            p.node_selector,
            Some(BTreeMap::from([("pool".to_string(), "vm".to_string())]))
        );
        assert_eq!(p.tolerations, Some(vec![tol("gpu")]));
        assert_eq!(p.affinity, Some(zone("az-1")), "affinity still the default");
        let own = ImagingJobBuilder::new("own").affinity(zone("az-2")).build();
        assert_eq!(
            pod(&with_defaults(&own, "invert", &d)).affinity,
            Some(zone("az-2"))
        );
        // hostNetwork: either side turns it on.
        let off = WorkerDefaults {
            host_network: false,
            ..d.clone()
        };
        let hn = ImagingJobBuilder::new("hn").host_network(true).build();
        assert_eq!(
            pod(&with_defaults(&hn, "invert", &off)).host_network,
            Some(true)
        );
        let p = with_defaults(&plain, "invert", &off);
        assert_eq!(
            (pod(&p).host_network, pod(&p).dns_policy.clone()),
            (None, None)
        );
    }

    #[test]
    fn jobs_trace_phase_span_budget_reaches_the_pods_when_configured() {
        let job = ImagingJobBuilder::new("spans").build();
        for stage in ["simulate", "invert"] {
            assert_eq!(
                env(&ok(&job, stage)).get("APERTURE_TRACE_PHASE_SPANS"),
                None,
                "unset: the worker keeps its own default"
            );
            for n in [0u64, 200, 5000] {
                let d = WorkerDefaults {
                    trace_phase_spans: Some(n),
                    ..test_defaults()
                };
                let e = env(&with_defaults(&job, stage, &d));
                let got = e.get("APERTURE_TRACE_PHASE_SPANS").map(String::as_str);
                assert_eq!(got, Some(n.to_string().as_str()), "{stage}");
                // The worker's telemetry reads it back as the same budget.
                let cfg = aperture_telemetry::TelemetryConfig::from_vars(
                    "aperture-worker",
                    "info",
                    |k| e.get(k).cloned(),
                );
                assert_eq!(cfg.phase_span_budget, n);
                assert!(cfg.problems.is_empty(), "{:?}", cfg.problems);
            }
        }
    }

    #[test]
    fn jobs_resources_from_the_estimate_with_headroom_and_floor() {
        // Big enough that the estimate, not the 256 MiB floor, decides.
        let job = ImagingJobBuilder::new("est")
            .npixel(2048)
            .with_spec(|s| s.image.cellsize_arcsec = Some(2.0))
            .build();
        let plan = plan_for(&job);
        let est = plan.est_task_memory_bytes;
        let mib = 1u64 << 20;
        // ceil(est × 1.5 / MiB) in integers.
        let want = (est * 3).div_ceil(2 * mib);
        assert!(want > 256, "estimate {est} too small for this test");
        let r = worker_resources(&job.spec.workers, &plan, &test_defaults());
        let mem = q(&format!("{want}Mi"));
        assert_eq!(
            r.requests,
            Some(BTreeMap::from([
                ("cpu".to_string(), q("1")),
                ("memory".to_string(), mem.clone())
            ]))
        );
        assert_eq!(
            r.limits,
            Some(BTreeMap::from([("memory".to_string(), mem)])),
            "no CPU limit"
        );
        // The pod gets exactly these.
        assert_eq!(container(&ok(&job, "invert")).resources, Some(r));

        // A tiny job gets the floor.
        let small = ImagingJobBuilder::new("est").npixel(32).build();
        let plan = plan_for(&small);
        assert!(plan.est_task_memory_bytes * 3 / 2 < 256 * mib);
        let r = worker_resources(&small.spec.workers, &plan, &test_defaults());
        assert_eq!(r.limits.expect("limits")["memory"], q("256Mi"));

        // CPU: threadsPerTask when > 0, else the operator's default.
        let d = WorkerDefaults {
            cpu_request: "500m".into(),
            ..test_defaults()
        };
        for (threads, cpu) in [(0, "500m"), (1, "1"), (4, "4")] {
            let j = ImagingJobBuilder::new("cpu")
                .threads_per_task(threads)
                .build();
            let r = worker_resources(&j.spec.workers, &plan_for(&j), &d);
            assert_eq!(
                r.requests.expect("requests")["cpu"],
                q(cpu),
                "threads {threads}"
            );
        }
    }

    #[test]
    fn jobs_resources_given_in_the_spec_override_the_estimate() {
        let given = ResourceRequirements {
            requests: Some(BTreeMap::from([("cpu".to_string(), q("2"))])),
            limits: Some(BTreeMap::from([("memory".to_string(), q("8Gi"))])),
            claims: None,
        };
        let job = ImagingJobBuilder::new("over")
            .resources(given.clone())
            .build();
        let j = ok(&job, "invert");
        assert_eq!(container(&j).resources, Some(given));
    }

    #[test]
    fn jobs_operator_default_resources_fill_only_resource_names_nobody_set() {
        let defaults = WorkerDefaults {
            resources: Some(ResourceRequirements {
                requests: Some(BTreeMap::from([
                    ("ephemeral-storage".to_string(), q("1Gi")),
                    ("memory".to_string(), q("64Mi")),
                ])),
                limits: Some(BTreeMap::from([
                    ("cpu".to_string(), q("8")),
                    ("ephemeral-storage".to_string(), q("2Gi")),
                ])),
                claims: None,
            }),
            ..test_defaults()
        };
        // Over the planner's estimate: memory and cpu are set by it, so only
        // ephemeral-storage comes from the defaults (no CPU limit sneaks in).
        let job = ImagingJobBuilder::new("merge").build();
        let plan = plan_for(&job);
        let r = worker_resources(&job.spec.workers, &plan, &defaults);
        let req = r.requests.expect("requests");
        let lim = r.limits.expect("limits");
        assert_eq!(req["ephemeral-storage"], q("1Gi"));
        assert_eq!(lim["ephemeral-storage"], q("2Gi"));
        assert_eq!(req["memory"], q("256Mi"));
        assert_eq!(lim.get("cpu"), None);
        // Over the spec's: memory is set there (limit only), cpu is not.
        let given = ResourceRequirements {
            limits: Some(BTreeMap::from([("memory".to_string(), q("8Gi"))])),
            ..ResourceRequirements::default()
        };
        let job = ImagingJobBuilder::new("merge").resources(given).build();
        let r = worker_resources(&job.spec.workers, &plan, &defaults);
        let (req, lim) = (r.requests.expect("requests"), r.limits.expect("limits"));
        assert_eq!(
            req.get("memory"),
            None,
            "a 64Mi default request must not join an 8Gi limit"
        );
        assert_eq!(lim["memory"], q("8Gi"));
        assert_eq!(lim["cpu"], q("8"));
        assert_eq!(req["ephemeral-storage"], q("1Gi"));
    }

    #[test]
    fn jobs_credentials_secret_becomes_env_from() {
        let with = ok(
            &ImagingJobBuilder::new("s3")
                .credentials_secret("object-store")
                .build(),
            "invert",
        );
        assert_eq!(
            container(&with).env_from,
            Some(vec![EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: "object-store".into(),
                    optional: Some(false),
                }),
                ..EnvFromSource::default()
            }])
        );
        let without = ok(&ImagingJobBuilder::new("s3").build(), "invert");
        assert_eq!(container(&without).env_from, None);
        let bad = build(
            &ImagingJobBuilder::new("s3")
                .credentials_secret("Object_Store")
                .build(),
            "invert",
            None,
        );
        assert!(
            matches!(&bad, Err(JobBuildError::InvalidSecretName { name }) if name == "Object_Store"),
            "{bad:?}"
        );
        let msg = bad.expect_err("refused").to_string();
        assert!(msg.contains("spec.storage.credentialsSecret"), "{msg}");
    }

    #[test]
    fn jobs_environment_carries_traceparent_job_log_filter_and_otlp() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let job = ImagingJobBuilder::new("env").build();
        let e = env(&build(&job, "invert", Some(tp)).expect("builds"));
        assert_eq!(e.get("TRACEPARENT").map(String::as_str), Some(tp));
        assert_eq!(e.get("APERTURE_JOB").map(String::as_str), Some("env"));
        assert_eq!(e.get("RUST_LOG").map(String::as_str), Some("info"));
        assert_eq!(e.get("OTEL_EXPORTER_OTLP_ENDPOINT"), None);
        // The job controller supplies the index; the builder must not shadow it.
        assert_eq!(e.get("JOB_COMPLETION_INDEX"), None);
        assert_eq!(
            e.get("OTEL_SERVICE_NAME").map(String::as_str),
            Some(APP_NAME)
        );
        // The attempt comes from the index's failure count, through the downward API.
        let failures = container(&build(&job, "invert", Some(tp)).expect("builds"))
            .env
            .iter()
            .flatten()
            .find(|v| v.name == "APERTURE_INDEX_FAILURES")
            .and_then(|v| v.value_from.clone())
            .and_then(|f| f.field_ref)
            .map(|f| f.field_path);
        assert_eq!(
            failures.as_deref(),
            Some("metadata.annotations['batch.kubernetes.io/job-index-failure-count']")
        );
        let e = env(&ok(&job, "invert"));
        assert_eq!(e.get("TRACEPARENT"), None);
        let otlp = ImagingJobBuilder::new("env")
            .otlp_endpoint("http://otel-collector:4318")
            .build();
        let e = env(&ok(&otlp, "invert"));
        assert_eq!(
            e.get("OTEL_EXPORTER_OTLP_ENDPOINT").map(String::as_str),
            Some("http://otel-collector:4318")
        );
        // Without one in the spec, pods use the operator's collector.
        let plan = plan_for(&job);
        let mut defaults = test_defaults();
        defaults.otlp_endpoint = Some("http://operator-collector:4318".into());
        let st = plan.stage("invert").expect("invert stage");
        let j = stage_job(&StageJobParams {
            owner: &job,
            plan: &plan,
            stage: st,
            defaults: &defaults,
            traceparent: None,
        })
        .expect("builds");
        assert_eq!(
            env(&j)
                .get("OTEL_EXPORTER_OTLP_ENDPOINT")
                .map(String::as_str),
            Some("http://operator-collector:4318")
        );
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            let r = build(&job, "invert", Some(bad));
            assert!(
                matches!(r, Err(JobBuildError::InvalidTraceparent { .. })),
                "{bad:?}: {r:?}"
            );
        }
    }

    #[test]
    fn jobs_pods_are_restricted_non_root_without_token() {
        let d = WorkerDefaults {
            service_account: Some("aperture-worker".into()),
            image_pull_policy: Some("IfNotPresent".into()),
            image_pull_secrets: vec!["regcred".into()],
            ..test_defaults()
        };
        let job = ImagingJobBuilder::new("sec").build();
        let plan = plan_for(&job);
        let st = plan.stage("invert").expect("invert").clone();
        let j = stage_job(&StageJobParams {
            owner: &job,
            plan: &plan,
            stage: &st,
            defaults: &d,
            traceparent: None,
        })
        .expect("builds");
        let p = pod(&j);
        let psc = p.security_context.clone().expect("pod security context");
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(
            (psc.run_as_user, psc.run_as_group, psc.fs_group),
            (Some(65532), Some(65532), Some(65532))
        );
        assert_eq!(
            psc.seccomp_profile.map(|s| s.type_).as_deref(),
            Some("RuntimeDefault")
        );
        let c = container(&j);
        let sc = c
            .security_context
            .clone()
            .expect("container security context");
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(
            sc.capabilities.and_then(|c| c.drop),
            Some(vec!["ALL".to_string()])
        );
        assert_eq!(p.automount_service_account_token, Some(false));
        assert_eq!(p.enable_service_links, Some(false));
        assert_eq!(p.service_account_name.as_deref(), Some("aperture-worker"));
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(
            p.image_pull_secrets,
            Some(vec![LocalObjectReference {
                name: "regcred".into()
            }])
        );
        // The writable /tmp is an emptyDir mounted in the container.
        let vol = &p.volumes.as_ref().expect("volumes")[0];
        assert!(vol.empty_dir.is_some());
        let m = &c.volume_mounts.as_ref().expect("mounts")[0];
        assert_eq!(
            (m.name.as_str(), m.mount_path.as_str()),
            (vol.name.as_str(), "/tmp")
        );
        assert_eq!(m.read_only, None);
        // Without a configured service account the namespace default is used.
        let j = ok(&job, "invert");
        assert_eq!(pod(&j).service_account_name, None);
        assert_eq!(pod(&j).image_pull_secrets, None);
    }

    #[test]
    fn jobs_image_from_the_spec_overrides_the_operator_default() {
        let job = ImagingJobBuilder::new("img")
            .image("example.org/w:1.2")
            .build();
        assert_eq!(
            container(&ok(&job, "invert")).image.as_deref(),
            Some("example.org/w:1.2")
        );
        let job = ImagingJobBuilder::new("img").image(" ").build();
        let e = build(&job, "invert", None).expect_err("empty image");
        assert!(e.to_string().contains("spec.workers.image"), "{e}");
    }

    #[test]
    fn jobs_bad_inputs_are_errors_that_name_the_problem() {
        let job = ImagingJobBuilder::new("bad").no_uid().build();
        assert_eq!(
            build(&job, "invert", None),
            Err(JobBuildError::MissingOwnerField {
                field: "metadata.uid"
            })
        );
        let job = ImagingJobBuilder::new("bad").no_namespace().build();
        assert_eq!(
            build(&job, "invert", None),
            Err(JobBuildError::MissingOwnerField {
                field: "metadata.namespace"
            })
        );
        // Names longer than a label value (allowed for custom resources) are refused.
        let long = "n".repeat(64);
        let job = ImagingJobBuilder::new(&long).output("s3://b/x/").build();
        let e = build(&job, "invert", None).expect_err("long name");
        assert!(e.to_string().contains("ImagingJob metadata.name"), "{e}");

        let job = ImagingJobBuilder::new("bad").build();
        let plan = plan_for(&job);
        let d = test_defaults();
        let mut stage = plan.stage("invert").expect("invert").clone();
        let params = |plan: &Plan, stage: &Stage| {
            stage_job(&StageJobParams {
                owner: &job,
                plan,
                stage,
                defaults: &d,
                traceparent: None,
            })
        };
        stage.name = "nope".into();
        assert_eq!(
            params(&plan, &stage),
            Err(JobBuildError::StageNotInPlan {
                stage: "nope".into()
            })
        );
        let mut plan2 = plan.clone();
        plan2.stages[1].tasks = 0;
        let s = plan2.stages[1].clone();
        assert!(matches!(
            params(&plan2, &s),
            Err(JobBuildError::EmptyStage { .. })
        ));
        plan2.stages[1].tasks = 3_000_000_000;
        let s = plan2.stages[1].clone();
        assert!(matches!(
            params(&plan2, &s),
            Err(JobBuildError::TooManyTasks { .. })
        ));
        let mut plan3 = plan.clone();
        plan3.output = String::new();
        let s = plan3.stages[1].clone();
        assert_eq!(
            params(&plan3, &s),
            Err(JobBuildError::Empty {
                field: "plan output URL"
            })
        );
    }

    #[test]
    fn jobs_stage_selector_selects_exactly_one_imaging_jobs_jobs() {
        let a = ok(&ImagingJobBuilder::new("alpha").build(), "invert");
        let b = ok(&ImagingJobBuilder::new("beta").build(), "invert");
        let matches = |sel: &str, j: &Job| {
            let labels = j.metadata.labels.clone().unwrap_or_default();
            sel.split(',').all(|term| {
                let (k, v) = term.split_once('=').expect("k=v");
                labels.get(k).map(String::as_str) == Some(v)
            })
        };
        assert!(matches(&stage_selector("alpha"), &a));
        assert!(!matches(&stage_selector("alpha"), &b));
        assert!(matches(&stage_selector("beta"), &b));
    }

    #[test]
    fn jobs_worker_volumes_and_mounts_follow_the_scratch_volume() {
        let job = ImagingJobBuilder::new("vols")
            .pvc_mount("obs", "obs-claim", "/data")
            .build();
        let j = ok(&job, "invert");
        let p = pod(&j);
        let vols = p.volumes.clone().expect("volumes");
        let names: Vec<&str> = vols.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["tmp", "obs"]);
        assert_eq!(vols[1], job.spec.workers.volumes[0]);
        let mounts = container(&j).volume_mounts.clone().expect("mounts");
        let at: Vec<(&str, &str)> = mounts
            .iter()
            .map(|m| (m.name.as_str(), m.mount_path.as_str()))
            .collect();
        assert_eq!(at, [("tmp", "/tmp"), ("obs", "/data")]);
        assert_eq!(mounts[1].read_only, Some(true));
        // The root filesystem stays read-only.
        let sc = container(&j).security_context.clone().expect("context");
        assert_eq!(sc.read_only_root_filesystem, Some(true));
    }

    fn survey(job: &ImagingJob, d: &WorkerDefaults) -> Result<Job, JobBuildError> {
        survey_job(&SurveyJobParams {
            owner: job,
            output: "s3://b/out",
            defaults: d,
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        })
    }

    #[test]
    fn jobs_survey_job_is_one_pod_with_the_stage_pod_template() {
        let job = ImagingJobBuilder::new("sv")
            .measurement_set("/data/obs.ms")
            .pvc_mount("obs", "obs-claim", "/data")
            .credentials_secret("object-store")
            .node_selector("pool", "io")
            .max_attempts(4)
            .build();
        let d = test_defaults();
        let j = survey(&job, &d).expect("builds");
        let name = j.metadata.name.clone().expect("name");
        assert_eq!(
            name,
            job_name(
                "sv",
                job.metadata.uid.as_deref().unwrap_or(""),
                SURVEY_STAGE
            )
        );
        assert!(
            name.starts_with("sv-survey-") && is_dns_label(&name),
            "{name}"
        );
        let labels = j.metadata.labels.clone().expect("labels");
        assert_eq!(labels[LABEL_STAGE], SURVEY_STAGE);
        assert_eq!(labels[LABEL_JOB], "sv");
        let js = jspec(&j);
        assert_eq!(
            (js.completions, js.parallelism, js.backoff_limit_per_index),
            (Some(1), Some(1), Some(3))
        );
        assert_eq!(js.completion_mode.as_deref(), Some("Indexed"));
        assert_eq!(js.pod_failure_policy, Some(pod_failure_policy()));
        let c = container(&j);
        assert_eq!(
            c.command.clone().expect("command"),
            ["aperture-worker", "survey", "--output", "s3://b/out"]
        );
        // The same pod template as a stage's, but for the command and resources.
        let mut stage_job_of_same = ok(
            &ImagingJobBuilder::new("sv")
                .pvc_mount("obs", "obs-claim", "/data")
                .credentials_secret("object-store")
                .node_selector("pool", "io")
                .build(),
            "invert",
        );
        let mut a = pod(&j).clone();
        let b = stage_job_of_same
            .spec
            .as_mut()
            .and_then(|s| s.template.spec.as_mut())
            .expect("pod");
        for p in [&mut a, b] {
            let c = &mut p.containers[0];
            c.command = None;
            c.resources = None;
            c.env = c
                .env
                .take()
                .map(|e| e.into_iter().filter(|v| v.name != "TRACEPARENT").collect());
        }
        assert_eq!(&a, b);
        assert_eq!(
            env(&j)["TRACEPARENT"],
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        // Memory: the survey default, the job's worker budget, or its resources.
        let mem = |j: &Job| {
            container(j)
                .resources
                .clone()
                .and_then(|r| r.limits)
                .expect("limits")["memory"]
                .clone()
        };
        assert_eq!(mem(&j), q(&format!("{SURVEY_MEMORY_MIB}Mi")));
        let budget = ImagingJobBuilder::new("sv").worker_memory_mib(3000).build();
        assert_eq!(mem(&survey(&budget, &d).expect("builds")), q("3000Mi"));
        // Owned by the ImagingJob; bad owners are errors naming the field.
        let owner = &j.metadata.owner_references.clone().expect("owner")[0];
        assert_eq!((owner.name.as_str(), owner.controller), ("sv", Some(true)));
        assert_eq!(
            survey(&ImagingJobBuilder::new("sv").no_uid().build(), &d),
            Err(JobBuildError::MissingOwnerField {
                field: "metadata.uid"
            })
        );
    }
}
