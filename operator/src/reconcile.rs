//! The reconciler: `finalizer(...)` around an idempotent apply (observe the stage Jobs
//! → run the pipeline's state machine → apply its actions → write the status) and a
//! cleanup that stops the job's Jobs and leaves its output data in place.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aperture_pipeline::diagnostics::{RunState, RunSummary, derived, write_run_diagnostics};
use aperture_pipeline::executor::survey::{
    SURVEY_KEY, SURVEY_REQUEST_KEY, SurveyRequest, SurveyResult,
};
use aperture_pipeline::executor::{observe as observe_store, prepare_from_survey, prepare_with};
use aperture_pipeline::plan::{PLAN_KEY, Plan, TaskKind, spec_digest};
use aperture_pipeline::spec::{
    ImagingJob, ImagingJobSpec, ImagingJobStatus, JobPhase, PipelineKind,
};
use aperture_pipeline::state::{Action as StateAction, advance, progress, skipped_stages};
use aperture_pipeline::storage::{Store, StoreOptions};
use aperture_pipeline::tasks::TaskManifest;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{self, Event as FinalizerEvent, finalizer};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::jobs::{SURVEY_STAGE, StageJobParams, SurveyJobParams, stage_job, survey_job};
use crate::observe::{JobState, StageJobView, job_view, observed};
use crate::status::{
    FAILED, PLANNED, PROGRESSING, READY, SPEC_CHANGE_REFUSED, condition_true, progress_text,
    running_stages, set_condition, stage_counts,
};

/// The finalizer that makes deletion stop the job's stage Jobs first.
pub const FINALIZER: &str = "aperture.dev/cleanup";
/// How soon a replica without the lease looks again.
pub const LEADER_RETRY: Duration = Duration::from_secs(5);
/// Safety-net requeue of a running job (Job events trigger reconciles anyway).
pub const RUNNING_REQUEUE: Duration = Duration::from_secs(300);
/// Requeue after a transient error.
pub const ERROR_REQUEUE: Duration = Duration::from_secs(15);
/// Event reason: the status subresource refused the operator's patch (RBAC).
pub const STATUS_FORBIDDEN: &str = "StatusForbidden";
/// Event reason: this replica may not read or write its leader-election Lease (RBAC).
pub const LEASE_FORBIDDEN: &str = "LeaseForbidden";

/// Reconciles one ImagingJob. A replica that does not hold the lease does nothing, but
/// for telling an unfinished job, once, when leader election is forbidden (RBAC).
pub async fn reconcile(job: Arc<ImagingJob>, ctx: Arc<Context>) -> Result<Action> {
    if !ctx.state.leader.is_leader() {
        lease_forbidden(&job, &ctx).await;
        return Ok(Action::requeue(LEADER_RETRY));
    }
    let _timer = ctx.state.metrics.reconcile_timer();
    let ns = job
        .metadata
        .namespace
        .clone()
        .ok_or(Error::MissingField("ImagingJob metadata.namespace"))?;
    let api = ctx.cluster.imaging_jobs(&ns);
    let result = finalizer(&api, FINALIZER, job, |event| async {
        match event {
            FinalizerEvent::Apply(job) => apply(&job, &ctx).await,
            FinalizerEvent::Cleanup(job) => cleanup(&job, &ctx).await,
        }
    })
    .await;
    match result {
        Ok(action) => {
            ctx.state.metrics.reconciled();
            Ok(action)
        }
        Err(finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e)) => Err(e),
        Err(e) => Err(Error::Finalizer(e.to_string())),
    }
}

/// A replica that may not read or write its Lease can never lead, and no replica acts
/// for the jobs it sees: a Warning Event `LeaseForbidden` on each unfinished job says so
/// where `kubectl describe imagingjob` shows it, once per job per operator process (its
/// log and `/readyz` say it every round).
async fn lease_forbidden(job: &ImagingJob, ctx: &Context) {
    let Some(problem) = ctx.state.leader.problem().filter(|p| p.forbidden) else {
        return;
    };
    let finished = job.status.as_ref().is_some_and(|s| s.phase.is_terminal());
    let Some(uid) = job.uid() else { return };
    if finished || !ctx.first_lease_warning(&uid) {
        return;
    }
    tracing::warn!(job = %job.name_any(), "leader election forbidden; telling the job");
    ctx.cluster
        .event(
            job,
            EventType::Warning,
            LEASE_FORBIDDEN,
            format!(
                "this operator replica cannot take part in leader election, so it does not act \
                 on the job: {problem}. Grant its ServiceAccount get, create and update on \
                 coordination.k8s.io leases (the Helm chart's leader-election Role)"
            ),
        )
        .await;
}

/// After a failed reconcile: count it and try again soon.
pub fn error_policy(job: Arc<ImagingJob>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.state.metrics.reconcile_failed(err.kind());
    tracing::warn!(job = %job.name_any(), kind = err.kind(), "reconcile failed: {err}");
    Action::requeue(ERROR_REQUEUE)
}

/// The W3C `traceparent` a stage's pods get: the job's trace (its id derived from the
/// plan's trace key, the ImagingJob's uid) and the stage's span, so every reconcile,
/// every operator replica and `aperture report` agree on it (docs/observability.md).
pub fn traceparent(plan: &Plan, stage: &str) -> String {
    aperture_telemetry::stage_traceparent(&plan.trace_key(), stage)
}

/// Writes a job's diagnostics/ (tables, trace.json, report.html) and exports the job
/// and stage spans derived from its manifests (the workers exported their own).
async fn write_job_diagnostics(
    plan: &Plan,
    store: &aperture_pipeline::storage::Store,
    manifests: &[TaskManifest],
    state: RunState,
    wall_seconds: f64,
    nworkers: usize,
) -> std::result::Result<(), aperture_pipeline::storage::StorageError> {
    let run = RunSummary {
        state,
        wall_seconds,
        nworkers,
        own_spans: Vec::new(),
        service: "aperture-operator".into(),
    };
    let written = write_run_diagnostics(plan, store, manifests, run).await?;
    if let Err(e) = aperture_telemetry::emit_global(&derived(&written.spans)) {
        tracing::warn!(job = %plan.job, "cannot export the job's spans: {e}");
    }
    Ok(())
}

/// Object-store options from a credentials Secret's AWS_* keys (each overrides the
/// operator's own environment).
pub fn store_options(data: &BTreeMap<String, String>) -> StoreOptions {
    let get = |keys: &[&str]| keys.iter().find_map(|k| data.get(*k)).cloned();
    let mut o = StoreOptions::default();
    o.s3.endpoint = get(&["AWS_ENDPOINT_URL", "AWS_ENDPOINT"]);
    o.s3.region = get(&["AWS_REGION", "AWS_DEFAULT_REGION"]);
    o.s3.access_key_id = get(&["AWS_ACCESS_KEY_ID"]);
    o.s3.secret_access_key = get(&["AWS_SECRET_ACCESS_KEY"]);
    o.s3.session_token = get(&["AWS_SESSION_TOKEN"]);
    o.s3.allow_http = get(&["AWS_ALLOW_HTTP"]).map(|v| v.trim().eq_ignore_ascii_case("true"));
    o
}

/// One job being reconciled: its identity and the status being built.
struct Run<'a> {
    job: &'a ImagingJob,
    ctx: &'a Context,
    ns: String,
    name: String,
    uid: String,
    generation: Option<i64>,
    now: Time,
    old: ImagingJobStatus,
    st: ImagingJobStatus,
}

async fn apply(job: &ImagingJob, ctx: &Context) -> Result<Action> {
    let mut run = Run {
        job,
        ctx,
        ns: job.namespace().unwrap_or_default(),
        name: job.name_any(),
        uid: job
            .uid()
            .ok_or(Error::MissingField("ImagingJob metadata.uid"))?,
        generation: job.metadata.generation,
        now: Time(Timestamp::now()),
        old: job.status.clone().unwrap_or_default(),
        st: job.status.clone().unwrap_or_default(),
    };
    run.check_spec_change().await;
    let result = if run.old.phase.is_terminal() {
        run.finished().await
    } else {
        match run.plan().await {
            Ok(Some(plan)) => run.drive(&plan).await,
            // Surveying the MeasurementSet: the survey Job's end triggers the next one.
            Ok(None) => Ok(Action::requeue(RUNNING_REQUEUE)),
            Err(e) => Err(e),
        }
    };
    let result = match result {
        Err(e) if !e.is_transient() => {
            let reason = match &e {
                Error::InvalidSpec(_) => "InvalidSpec",
                Error::Plan(_) => "PlanningFailed",
                _ => "ReconcileFailed",
            };
            run.fail(reason, &e.to_string()).await
        }
        Err(e @ Error::StatusForbidden(_)) => Err(e),
        Err(e) => {
            // Transient: say so in the status (best effort) and retry with backoff.
            run.st.message = Some(format!("retrying after a transient error: {e}"));
            if let Err(w @ Error::StatusForbidden(_)) = run.write_status().await {
                run.status_forbidden(&w).await;
            }
            Err(e)
        }
        ok => ok,
    };
    if let Err(e @ Error::StatusForbidden(_)) = &result {
        run.status_forbidden(e).await;
    }
    result
}

impl Run<'_> {
    fn key(&self) -> String {
        format!("{}/{}", self.ns, self.name)
    }

    /// A spec that differs from the one the job was planned from is refused, with a
    /// condition and an event, never half-applied.
    async fn check_spec_change(&mut self) {
        let Some(planned) = self.old.spec_digest.clone() else {
            return;
        };
        let changed = planned != spec_digest(&self.job.spec);
        let was = condition_true(&self.old.conditions, SPEC_CHANGE_REFUSED);
        if changed {
            let msg = format!(
                "the spec changed (generation {}) after the job was planned; the change is not \
                 applied and the job continues with the spec it was planned from. Delete and \
                 re-create the ImagingJob to run the new spec.",
                self.generation.unwrap_or_default()
            );
            set_condition(
                &mut self.st.conditions,
                SPEC_CHANGE_REFUSED,
                true,
                "SpecChanged",
                &msg,
                self.generation,
                &self.now,
            );
            if !was {
                self.event(EventType::Warning, "SpecChangeRefused", msg)
                    .await;
            }
        } else if was {
            set_condition(
                &mut self.st.conditions,
                SPEC_CHANGE_REFUSED,
                false,
                "SpecUnchanged",
                "the spec is the one the job was planned from",
                self.generation,
                &self.now,
            );
        }
    }

    async fn event(&self, type_: EventType, reason: &str, note: String) {
        self.ctx.cluster.event(self.job, type_, reason, note).await;
    }

    /// The status cannot be written (RBAC): a Warning Event on the job says so, since
    /// its status cannot. Recorded on every failed reconcile (every `ERROR_REQUEUE`);
    /// the event recorder folds the repeats into one Event's series count.
    async fn status_forbidden(&self, e: &Error) {
        self.event(
            EventType::Warning,
            STATUS_FORBIDDEN,
            format!(
                "{e}. The operator starts nothing for this job until it can record its \
                 progress; grant its ServiceAccount patch on imagingjobs/status (the Helm \
                 chart's Role)"
            ),
        )
        .await;
    }

    /// Object-store options for `spec`: its credentials Secret, if it names one.
    async fn store_options(&self, spec: &ImagingJobSpec) -> Result<StoreOptions> {
        let Some(secret) = &spec.storage.credentials_secret else {
            return Ok(StoreOptions::default());
        };
        match self.ctx.cluster.secret_data(&self.ns, secret).await? {
            Some(data) => Ok(store_options(&data)),
            None => Err(Error::InvalidSpec(format!(
                "spec.storage.credentialsSecret: Secret {}/{secret} not found",
                self.ns
            ))),
        }
    }

    /// The job's plan: made and stored on first sight, then read back (once per
    /// operator process) from the output the status records. `None` while a worker
    /// surveys the job's MeasurementSet (see [`Self::survey`]).
    async fn plan(&mut self) -> Result<Option<Arc<Plan>>> {
        if let Some(digest) = self.old.spec_digest.clone() {
            if let Some(p) = self.ctx.cached_plan(&self.uid, &digest) {
                return Ok(Some(p));
            }
            let output = self.old.outputs.get("output").cloned().ok_or_else(|| {
                Error::Plan("status.outputs.output is missing: the job's output is unknown".into())
            })?;
            let options = self.store_options(&self.job.spec).await?;
            let store = Store::from_url_with(&output, &options)?;
            let plan: Plan = store.get_json(PLAN_KEY).await?;
            let plan = Arc::new(plan);
            self.ctx.cache_plan(&self.uid, &digest, plan.clone());
            return Ok(Some(plan));
        }
        if self.old.phase == JobPhase::Pending {
            self.st.phase = JobPhase::Planning;
            self.st.start_time = Some(self.now.clone());
            set_condition(
                &mut self.st.conditions,
                PLANNED,
                false,
                "Planning",
                "gathering input facts and writing plan.json",
                self.generation,
                &self.now,
            );
            self.write_status().await?;
            self.event(
                EventType::Normal,
                "Planning",
                format!("planning the {} pipeline", self.job.spec.pipeline.name()),
            )
            .await;
        }
        let spec = &self.job.spec;
        spec.validate()
            .and_then(|()| spec.validate_cluster())
            .map_err(|e| Error::InvalidSpec(e.to_string()))?;
        let output = spec.output.clone().ok_or_else(|| {
            Error::InvalidSpec(
                "spec.output: a cluster job needs an output URL its worker pods can reach \
                 (e.g. s3://bucket/results/<job>/)"
                    .into(),
            )
        })?;
        let options = self.store_options(spec).await?;
        let (plan, store) = if spec.input.measurement_set.is_some() {
            let store = Store::from_url_with(&output, &options)?;
            if store.exists(PLAN_KEY).await? {
                // Planned before (the status was lost): prepare_with resumes that plan,
                // or refuses another job's, without opening the MeasurementSet.
                prepare_with(self.job, &output, false, &options).await?
            } else {
                let Some(survey) = self.survey(&store).await? else {
                    return Ok(None);
                };
                prepare_from_survey(self.job, &output, &survey, &options).await?
            }
        } else {
            prepare_with(self.job, &output, false, &options).await?
        };
        let digest = plan.spec_digest.clone();
        self.st.spec_digest = Some(digest.clone());
        self.st.phase = JobPhase::Running;
        self.st.major_cycles = Some(plan.major_cycles());
        self.st
            .outputs
            .insert("output".into(), store.url().to_string());
        self.st
            .outputs
            .insert("plan".into(), store.key_url(PLAN_KEY));
        let msg = format!(
            "{} stages, {} tasks over {} shards of {} windows; image {}²; est. {} MiB per map task",
            plan.stages.len(),
            plan.total_tasks(),
            plan.shards.len(),
            plan.facts.nwindows,
            plan.image.npix,
            plan.est_task_memory_bytes / (1 << 20)
        );
        set_condition(
            &mut self.st.conditions,
            PLANNED,
            true,
            "Planned",
            &msg,
            self.generation,
            &self.now,
        );
        self.event(EventType::Normal, "Planned", msg).await;
        let plan = Arc::new(plan);
        self.ctx.cache_plan(&self.uid, &digest, plan.clone());
        Ok(Some(plan))
    }

    /// The survey of the job's MeasurementSet, which only a worker pod can open (it
    /// mounts `spec.workers.volumes`): its result at `<output>/import/survey.json` when
    /// there is one; else the survey Job is started (once: the request is written to the
    /// output, then the Job is applied) or awaited, and `None` is returned. A survey Job
    /// that failed without a result (crash, OOM, store unreachable for every attempt)
    /// fails the job with its pod's termination message.
    async fn survey(&mut self, store: &Store) -> Result<Option<SurveyResult>> {
        if store.exists(SURVEY_KEY).await? {
            return Ok(Some(store.get_json(SURVEY_KEY).await?));
        }
        let request = SurveyRequest::for_job(self.job).ok_or(Error::MissingField(
            "spec.input.measurementSet (survey of a job without one)",
        ))?;
        let path = request.measurement_set.path.clone();
        let jobs = self
            .ctx
            .cluster
            .stage_jobs(&self.ns, &self.name, &self.uid)
            .await?;
        let view = jobs
            .iter()
            .filter_map(job_view)
            .find(|v| v.stage == SURVEY_STAGE);
        if let Some(v) = view {
            let failed = !v.failed_indexes.is_empty() || matches!(v.state, JobState::Failed { .. });
            let why = if failed {
                let pod = self
                    .ctx
                    .cluster
                    .failed_pod_message(&self.ns, &v.name)
                    .await?;
                Some(pod.unwrap_or_else(|| match &v.state {
                    JobState::Failed { reason, message } => format!("{reason}: {message}"),
                    _ => "the survey Job failed".into(),
                }))
            } else if v.state == JobState::Complete {
                Some(format!(
                    "the survey Job completed without writing {SURVEY_KEY}"
                ))
            } else {
                None
            };
            return match why {
                Some(why) => Err(Error::Plan(format!(
                    "spec.input.measurementSet: the survey of the MeasurementSet {path} failed                      (Job {}): {why}",
                    v.name
                ))),
                None => Ok(None), // still running; its end triggers a reconcile
            };
        }
        let tp = aperture_telemetry::stage_traceparent(&self.uid, SURVEY_STAGE);
        let job = survey_job(&SurveyJobParams {
            owner: self.job,
            output: store.url(),
            defaults: &self.ctx.state.defaults,
            traceparent: Some(&tp),
        })
        .map_err(|e| Error::JobBuild {
            stage: SURVEY_STAGE.into(),
            reason: e.to_string(),
        })?;
        let job_name = job.metadata.name.clone().unwrap_or_default();
        let msg = format!("surveying the MeasurementSet {path} (Job {job_name})");
        set_condition(
            &mut self.st.conditions,
            PLANNED,
            false,
            "Surveying",
            &msg,
            self.generation,
            &self.now,
        );
        self.st.message = Some(msg.clone());
        // As for stage Jobs: the status first, then the Job it leads to.
        self.write_status().await?;
        store.put_json(SURVEY_REQUEST_KEY, &request).await?;
        self.ctx.cluster.apply_job(&self.ns, &job).await?;
        self.event(EventType::Normal, "Surveying", msg).await;
        Ok(None)
    }

    /// Observe, advance, act, write the status.
    async fn drive(&mut self, plan: &Plan) -> Result<Action> {
        let jobs = self
            .ctx
            .cluster
            .stage_jobs(&self.ns, &self.name, &self.uid)
            .await?;
        let views: BTreeMap<String, StageJobView> = jobs
            .iter()
            .filter_map(job_view)
            .map(|v| (v.stage.clone(), v))
            .collect();
        let converged = self.convergence(plan, &views).await?;
        let mut reasons = BTreeMap::new();
        for v in views.values() {
            if v.failed_indexes.is_empty() && !matches!(v.state, JobState::Failed { .. }) {
                continue;
            }
            if let Some(msg) = self
                .ctx
                .cluster
                .failed_pod_message(&self.ns, &v.name)
                .await?
            {
                reasons.insert(v.stage.clone(), msg);
            }
        }
        let obs = observed(plan, &self.old, &views, &converged, &reasons);
        let actions = advance(plan, &obs);
        let skipped = skipped_stages(plan, &obs);
        let prog = progress(plan, &obs);
        self.st.stages = stage_counts(plan, &obs, &views, &skipped, &self.old.stages);
        self.st.progress = Some(progress_text(&prog));
        self.st.cycle = prog.cycle;
        self.st.converged_at = prog.converged_at;
        self.st.major_cycles = Some(plan.major_cycles());
        self.count_tasks(&views, plan).await;

        let mut start = Vec::new();
        for action in actions {
            match action {
                StateAction::Run { stage, .. } => {
                    if views.contains_key(&stage) {
                        continue; // its Job exists; Kubernetes runs and retries its pods
                    }
                    start.push(stage);
                }
                StateAction::Skip { .. } => {}
                StateAction::Succeed => return self.succeed(plan).await,
                StateAction::Fail { reason } => {
                    self.failed_diagnostics(plan, &reason).await;
                    return self.fail("TaskFailed", &reason).await;
                }
            }
        }
        let running = running_stages(&self.st.stages);
        let msg = format!(
            "cycle {}/{}; tasks {}{}",
            self.st.cycle,
            plan.major_cycles(),
            progress_text(&prog),
            if running.is_empty() {
                String::new()
            } else {
                format!("; running: {}", running.join(", "))
            }
        );
        set_condition(
            &mut self.st.conditions,
            PROGRESSING,
            true,
            "Running",
            &msg,
            self.generation,
            &self.now,
        );
        set_condition(
            &mut self.st.conditions,
            READY,
            false,
            "Running",
            "the products are not written yet",
            self.generation,
            &self.now,
        );
        self.st.phase = JobPhase::Running;
        self.st.message = Some(msg);
        // The status first: it is the durable record of finished stages (their Jobs go
        // with the TTL), so a stage Job is started only once the status that leads to it
        // is written. An operator that may not write it starts nothing it cannot track.
        self.write_status().await?;
        for stage in start {
            self.start_stage(plan, &stage).await?;
        }
        Ok(Action::requeue(RUNNING_REQUEUE))
    }

    /// Per deconvolve stage: whether its manifest says the job converged. Recorded
    /// stages come from the status; a stage whose Job just completed is read once.
    async fn convergence(
        &self,
        plan: &Plan,
        views: &BTreeMap<String, StageJobView>,
    ) -> Result<BTreeMap<String, bool>> {
        let mut out = BTreeMap::new();
        let mut store: Option<Store> = None;
        for s in plan
            .stages
            .iter()
            .filter(|s| s.kind == TaskKind::Deconvolve)
        {
            let recorded = self.old.stages.get(&s.name).is_some_and(|c| c.complete());
            if recorded {
                out.insert(s.name.clone(), self.old.converged_at == Some(s.cycle));
            } else if views.get(&s.name).is_some_and(|v| v.completed.contains(&0)) {
                if store.is_none() {
                    store = Some(self.output_store(plan).await?);
                }
                let Some(store) = &store else { continue };
                let m: TaskManifest = store.get_json(&Plan::manifest_key(&s.name, 0)).await?;
                let c = m
                    .result
                    .get("converged")
                    .and_then(|v| v.as_bool())
                    .unwrap_or(false);
                out.insert(s.name.clone(), c);
            }
        }
        Ok(out)
    }

    /// Task outcome metrics and retry events from the change in stage counts.
    async fn count_tasks(&self, views: &BTreeMap<String, StageJobView>, plan: &Plan) {
        let metrics = &self.ctx.state.metrics;
        for (name, c) in &self.st.stages {
            let p = self.old.stages.get(name).copied().unwrap_or_default();
            if c.succeeded > p.succeeded {
                metrics.tasks("succeeded", u64::from(c.succeeded - p.succeeded));
            }
            if c.failed > p.failed {
                let n = c.failed - p.failed;
                metrics.tasks("failed", u64::from(n));
                // Failed pods of a stage with no failed index were retried (the retry
                // may already have succeeded by the time this reconcile sees it).
                let retrying = views.get(name).is_some_and(|v| {
                    v.failed_indexes.is_empty() && !matches!(v.state, JobState::Failed { .. })
                });
                if retrying {
                    metrics.tasks("retried", u64::from(n));
                    self.event(
                        EventType::Warning,
                        "TaskRetried",
                        format!(
                            "stage {name}: {n} pod failure(s); Kubernetes retries each task up \
                             to {} more time(s) (maxAttempts {})",
                            plan.max_attempts.saturating_sub(1),
                            plan.max_attempts
                        ),
                    )
                    .await;
                }
            }
        }
    }

    async fn start_stage(&mut self, plan: &Plan, stage: &str) -> Result<()> {
        let st = plan.stage(stage).ok_or_else(|| Error::JobBuild {
            stage: stage.into(),
            reason: "not in the plan".into(),
        })?;
        let tp = traceparent(plan, stage);
        let job = stage_job(&StageJobParams {
            owner: self.job,
            plan,
            stage: st,
            defaults: &self.ctx.state.defaults,
            traceparent: Some(&tp),
        })
        .map_err(|e| Error::JobBuild {
            stage: stage.into(),
            reason: e.to_string(),
        })?;
        self.ctx.cluster.apply_job(&self.ns, &job).await?;
        self.event(
            EventType::Normal,
            "StageStarted",
            format!(
                "stage {stage} (cycle {}): {} task(s), Job {}",
                st.cycle,
                st.tasks,
                job.metadata.name.as_deref().unwrap_or("?")
            ),
        )
        .await;
        Ok(())
    }

    /// The job's output store, with the credentials Secret's settings. Only built when
    /// a manifest must be read (a deconvolve stage just finished, or the job), so a
    /// steady-state reconcile does not read the Secret.
    async fn output_store(&self, plan: &Plan) -> Result<Store> {
        let options = self.store_options(&plan.spec).await?;
        Ok(Store::from_url_with(&plan.output, &options)?)
    }

    async fn succeed(&mut self, plan: &Plan) -> Result<Action> {
        let store = &self.output_store(plan).await?;
        if plan.stage("restore").is_some() {
            let m: TaskManifest = store.get_json(&Plan::manifest_key("restore", 0)).await?;
            if let Some(outs) = m.result.get("outputs").and_then(|v| v.as_object()) {
                for (k, v) in outs {
                    if let Some(url) = v.as_str() {
                        self.st.outputs.insert(k.clone(), url.to_string());
                    }
                }
            }
        }
        if plan.spec.pipeline == PipelineKind::Predict {
            self.st
                .outputs
                .insert("visibilities".into(), store.key_url("predicted.zarr"));
        }
        self.finished_diagnostics(plan, store, RunState::Succeeded)
            .await;
        self.st.phase = JobPhase::Succeeded;
        self.st.completion_time = Some(self.now.clone());
        let msg = format!(
            "all {} tasks done{}",
            plan.total_tasks(),
            self.st
                .converged_at
                .map(|c| format!("; converged at major cycle {c}"))
                .unwrap_or_default()
        );
        self.st.message = Some(msg.clone());
        set_condition(
            &mut self.st.conditions,
            READY,
            true,
            "Succeeded",
            &msg,
            self.generation,
            &self.now,
        );
        set_condition(
            &mut self.st.conditions,
            PROGRESSING,
            false,
            "Succeeded",
            "the job is complete",
            self.generation,
            &self.now,
        );
        self.write_status().await?;
        self.event(EventType::Normal, "Succeeded", msg).await;
        Ok(Action::await_change())
    }

    /// Marks the job Failed (reason and message in the `Failed` condition, an Event)
    /// and stops every stage Job still running.
    /// Best effort: the diagnostics of the tasks a failed job did finish (its reason
    /// goes to the status whatever happens here).
    async fn failed_diagnostics(&mut self, plan: &Plan, reason: &str) {
        if let Ok(store) = self.output_store(plan).await {
            let state = RunState::Failed {
                reason: reason.to_string(),
            };
            self.finished_diagnostics(plan, &store, state).await;
        }
    }

    /// A finished job's per-job metrics and diagnostics/ (one read of every manifest,
    /// O(tasks), once per job); failures are logged, never fail the reconcile.
    async fn finished_diagnostics(
        &mut self,
        plan: &Plan,
        store: &aperture_pipeline::storage::Store,
        state: RunState,
    ) {
        let wall = self.st.start_time.as_ref().map_or(0.0, |t| {
            (self.now.0.as_second() - t.0.as_second()).max(0) as f64
        });
        let workers = plan.spec.parallelism.max_parallel.max(1) as usize;
        let result = match observe_store(plan, store).await {
            Ok((_, manifests)) => {
                self.ctx.state.metrics.record_job(&self.key(), &manifests);
                write_job_diagnostics(plan, store, &manifests, state, wall, workers).await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                self.st
                    .outputs
                    .insert("diagnostics".into(), store.key_url("diagnostics/"));
            }
            Err(e) => tracing::warn!(job = %self.key(), "diagnostics not written: {e}"),
        }
    }

    async fn fail(&mut self, reason: &str, message: &str) -> Result<Action> {
        self.stop_running_jobs().await?;
        self.st.phase = JobPhase::Failed;
        self.st.completion_time.get_or_insert(self.now.clone());
        self.st.message = Some(crate::cluster::truncate(message.to_string(), 1024));
        set_condition(
            &mut self.st.conditions,
            FAILED,
            true,
            reason,
            message,
            self.generation,
            &self.now,
        );
        set_condition(
            &mut self.st.conditions,
            READY,
            false,
            reason,
            message,
            self.generation,
            &self.now,
        );
        set_condition(
            &mut self.st.conditions,
            PROGRESSING,
            false,
            reason,
            "the job has failed",
            self.generation,
            &self.now,
        );
        self.write_status().await?;
        self.event(EventType::Warning, reason, message.to_string())
            .await;
        Ok(Action::await_change())
    }

    /// A finished job: make sure nothing of a failed one still runs; keep the status.
    async fn finished(&mut self) -> Result<Action> {
        if self.old.phase == JobPhase::Failed {
            self.stop_running_jobs().await?;
        }
        self.write_status().await?;
        Ok(Action::await_change())
    }

    async fn stop_running_jobs(&self) -> Result<()> {
        let jobs = self
            .ctx
            .cluster
            .stage_jobs(&self.ns, &self.name, &self.uid)
            .await?;
        for j in jobs {
            let running = job_view(&j).is_none_or(|v| v.state == JobState::Running);
            if running && let Some(n) = &j.metadata.name {
                self.ctx.cluster.delete_job(&self.ns, n).await?;
            }
        }
        Ok(())
    }

    /// Writes the status when it changed; records the job's phase in the metrics.
    async fn write_status(&mut self) -> Result<()> {
        self.st.observed_generation = self.generation;
        self.ctx
            .state
            .metrics
            .set_job_phase(&self.key(), self.st.phase.name());
        if self.st != self.old {
            self.ctx
                .cluster
                .apply_status(&self.ns, &self.name, &self.st)
                .await?;
            self.old = self.st.clone();
        }
        Ok(())
    }
}

/// Deletion: stop the job's stage Jobs (their pods go with them); the output data stays.
async fn cleanup(job: &ImagingJob, ctx: &Context) -> Result<Action> {
    let ns = job.namespace().unwrap_or_default();
    let name = job.name_any();
    let uid = job.uid().unwrap_or_default();
    let jobs = ctx.cluster.stage_jobs(&ns, &name, &uid).await?;
    for j in &jobs {
        if let Some(n) = &j.metadata.name {
            ctx.cluster.delete_job(&ns, n).await?;
        }
    }
    let output = job
        .status
        .as_ref()
        .and_then(|s| s.outputs.get("output").cloned())
        .or_else(|| job.spec.output.clone())
        .unwrap_or_else(|| "(none)".into());
    ctx.cluster
        .event(
            job,
            EventType::Normal,
            "Deleted",
            format!(
                "stopped {} stage Job(s); the output data at {output} is left in place",
                jobs.len()
            ),
        )
        .await;
    ctx.state.metrics.forget_job(&format!("{ns}/{name}"));
    ctx.forget(&uid);
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_get_their_stage_span_in_the_jobs_trace() {
        let job = crate::fixtures::ImagingJobBuilder::new("tp").build();
        let mut plan = crate::fixtures::plan_for(&job);
        plan.trace_key = "1b2c-uid".into();
        let a = traceparent(&plan, "invert");
        assert_eq!(a, traceparent(&plan, "invert"));
        let sc = aperture_telemetry::parse_traceparent(&a).expect("W3C traceparent");
        let trace = aperture_telemetry::trace_id_for("1b2c-uid");
        assert_eq!(sc.trace_id(), trace);
        assert_eq!(
            sc.span_id(),
            aperture_telemetry::span_id_for(trace, "invert")
        );
        assert_ne!(a, traceparent(&plan, "restore"));
    }

    #[test]
    fn secret_keys_become_store_options() {
        let data: BTreeMap<String, String> = [
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:8333"),
            ("AWS_ACCESS_KEY_ID", "id"),
            ("AWS_SECRET_ACCESS_KEY", "key"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_ALLOW_HTTP", "TRUE"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let o = store_options(&data);
        assert_eq!(o.s3.endpoint.as_deref(), Some("http://127.0.0.1:8333"));
        assert_eq!(o.s3.access_key_id.as_deref(), Some("id"));
        assert_eq!(o.s3.secret_access_key.as_deref(), Some("key"));
        assert_eq!(o.s3.region.as_deref(), Some("eu-west-1"));
        assert_eq!(o.s3.allow_http, Some(true));
        assert_eq!(o.s3.session_token, None);
    }
}
