//! Reconciler scenarios against the fake API server (controller-rs style): first sight,
//! stage progression through a whole job (with the tasks run in-process as a stand-in
//! for pods), retries, failures, convergence, deletion, leadership, bad input, spec
//! changes and scale.

use std::sync::Arc;

use aperture_pipeline::plan::PLAN_KEY;
use aperture_pipeline::spec::{ImagingJob, ImagingJobStatus, JobPhase, PipelineKind};
use aperture_pipeline::storage::Store;
use http::Method;
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::context::{Context, State};
use crate::fake_api::FakeApi;
use crate::fixtures::{ImagingJobBuilder, TEST_NAMESPACE, small_spec, test_defaults};
use crate::jobs::{LABEL_JOB, LABEL_STAGE};
use crate::leader::LeaderHandle;
use crate::reconcile::{FINALIZER, reconcile};
use crate::status::{FAILED, PLANNED, READY, SPEC_CHANGE_REFUSED, condition_true};

struct Harness {
    fake: FakeApi,
    ctx: Arc<Context>,
    name: String,
    _dir: Option<tempfile::TempDir>,
}

fn output_dir() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let url = format!("file://{}/", dir.path().display());
    (dir, url)
}

impl Harness {
    fn new(job: ImagingJob) -> Self {
        Self::with_leader(job, LeaderHandle::always())
    }

    fn with_leader(job: ImagingJob, leader: LeaderHandle) -> Self {
        let fake = FakeApi::new();
        let name = job.metadata.name.clone().unwrap();
        fake.put(serde_json::to_value(&job).unwrap());
        let state = State::new(test_defaults(), leader);
        let ctx = state.to_context(Cluster::new(fake.client(), Some("test".into())));
        Self {
            fake,
            ctx,
            name,
            _dir: None,
        }
    }

    fn job(&self) -> ImagingJob {
        serde_json::from_value(
            self.fake
                .get("ImagingJob", TEST_NAMESPACE, &self.name)
                .unwrap(),
        )
        .unwrap()
    }

    fn status(&self) -> ImagingJobStatus {
        self.job().status.unwrap_or_default()
    }

    async fn reconcile(&self) -> Result<Action, crate::error::Error> {
        reconcile(Arc::new(self.job()), self.ctx.clone()).await
    }

    /// Stage Jobs in the fake, by stage.
    fn stage_jobs(&self) -> Vec<(String, Value)> {
        let mut v: Vec<(String, Value)> = self
            .fake
            .list("Job")
            .into_iter()
            .map(|j| {
                (
                    j["metadata"]["labels"][LABEL_STAGE]
                        .as_str()
                        .unwrap()
                        .to_string(),
                    j,
                )
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn job_named(&self, stage: &str) -> Value {
        self.stage_jobs()
            .into_iter()
            .find(|(s, _)| s == stage)
            .unwrap_or_else(|| panic!("no Job for stage {stage}"))
            .1
    }

    /// Plays kubelet for every unfinished stage Job: runs each index's task in-process
    /// with the pod's command line and marks the Job Complete, as the Job controller
    /// would. Returns the stages run.
    async fn run_pods(&self) -> Vec<String> {
        let mut ran = Vec::new();
        for (stage, job) in self.stage_jobs() {
            if !job["status"]["conditions"].is_null() {
                continue;
            }
            let args: Vec<String> = job["spec"]["template"]["spec"]["containers"][0]["command"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect();
            let arg = |flag: &str| {
                let i = args.iter().position(|a| a == flag).unwrap();
                args[i + 1].clone()
            };
            assert_eq!(arg("--stage"), stage);
            let n = job["spec"]["completions"].as_u64().unwrap() as u32;
            for i in 0..n {
                let code =
                    aperture_pipeline::tasks::worker_main(&arg("--plan"), &stage, i, None).await;
                assert_eq!(code, 0, "task {stage}/{i} failed");
            }
            let name = job["metadata"]["name"].as_str().unwrap().to_string();
            self.fake.update("Job", TEST_NAMESPACE, &name, |j| {
                j["status"] = json!({
                    "completedIndexes": if n == 1 { "0".to_string() } else { format!("0-{}", n - 1) },
                    "succeeded": n, "active": 0, "failed": 0,
                    "conditions": [{"type": "Complete", "status": "True"}],
                });
            });
            ran.push(stage);
        }
        ran
    }

    fn requests_of(&self, method: Method, path_part: &str) -> usize {
        self.fake
            .requests()
            .iter()
            .filter(|r| r.method == method && r.path.contains(path_part))
            .count()
    }
}

fn builder(name: &str, out: &str) -> ImagingJobBuilder {
    ImagingJobBuilder::new(name)
        .finalizer(FINALIZER)
        .output(out)
}

#[tokio::test]
async fn a_job_without_the_finalizer_gets_it_first_and_nothing_else() {
    let (_d, out) = output_dir();
    let h = Harness::new(ImagingJobBuilder::new("fresh").output(&out).build());
    h.reconcile().await.unwrap();
    assert_eq!(
        h.job().metadata.finalizers.unwrap_or_default(),
        vec![FINALIZER.to_string()]
    );
    assert!(h.stage_jobs().is_empty());
    assert!(h.job().status.is_none());
}

#[tokio::test]
async fn first_sight_plans_writes_the_plan_and_starts_the_first_stage() {
    let (dir, out) = output_dir();
    let h = Harness::new(builder("first", &out).build());
    let action = h.reconcile().await.unwrap();
    assert_eq!(action, Action::requeue(crate::reconcile::RUNNING_REQUEUE));
    // The plan is in the job's output.
    let store = Store::from_url(&out).unwrap();
    assert!(store.exists(PLAN_KEY).await.unwrap());
    assert!(dir.path().join("plan.json").exists());
    // One Job: the simulate stage, indexed over its tasks.
    let jobs = h.stage_jobs();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let (stage, job) = &jobs[0];
    assert_eq!(stage, "simulate");
    assert_eq!(job["spec"]["completionMode"], "Indexed");
    assert_eq!(job["metadata"]["labels"][LABEL_JOB], "first");
    let st = h.status();
    assert_eq!(st.phase, JobPhase::Running);
    assert!(condition_true(&st.conditions, PLANNED));
    assert!(!condition_true(&st.conditions, READY));
    assert!(st.spec_digest.is_some());
    assert!(st.start_time.is_some());
    assert_eq!(st.outputs.get("plan").unwrap(), &format!("{out}plan.json"));
    assert_eq!(
        h.fake.event_reasons(),
        ["Planning", "Planned", "StageStarted"]
    );
    // The Job and the status were written by server-side apply, as aperture-operator.
    let applies: Vec<_> = h
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == Method::PATCH && !r.path.ends_with("/first"))
        .collect();
    assert!(!applies.is_empty());
    for r in &applies {
        assert!(r.query.contains("fieldManager=aperture-operator"), "{r:?}");
        assert!(r.query.contains("force=true"), "{r:?}");
    }
    let status_patch = applies
        .iter()
        .rfind(|r| r.path.ends_with("/status"))
        .unwrap();
    assert_eq!(status_patch.body["kind"], "ImagingJob");
    assert_eq!(status_patch.body["status"]["phase"], "Running");
    // A second reconcile with nothing changed creates nothing and writes no status.
    h.fake.clear_requests();
    h.reconcile().await.unwrap();
    assert_eq!(h.stage_jobs().len(), 1);
    assert_eq!(h.requests_of(Method::PATCH, "/status"), 0);
    assert_eq!(h.requests_of(Method::PATCH, "/jobs/"), 0);
}

#[tokio::test]
async fn a_whole_invert_job_runs_stage_by_stage_to_success() {
    let (_d, out) = output_dir();
    let h = Harness::new(builder("inv", &out).build());
    let mut rounds = 0;
    let mut order = Vec::new();
    loop {
        h.reconcile().await.unwrap();
        if h.status().phase.is_terminal() {
            break;
        }
        let ran = h.run_pods().await;
        assert!(
            !ran.is_empty(),
            "nothing to run and not finished: {:?}",
            h.status()
        );
        order.extend(ran);
        rounds += 1;
        assert!(rounds < 20);
    }
    let st = h.status();
    assert_eq!(st.phase, JobPhase::Succeeded, "{:?}", st.message);
    assert!(condition_true(&st.conditions, READY));
    assert!(st.completion_time.is_some());
    assert_eq!(order.first().map(String::as_str), Some("simulate"));
    assert_eq!(order.last().map(String::as_str), Some("restore"));
    // Every stage ran exactly once, as one Job.
    let plan: aperture_pipeline::plan::Plan = Store::from_url(&out)
        .unwrap()
        .get_json(PLAN_KEY)
        .await
        .unwrap();
    assert_eq!(h.stage_jobs().len(), plan.stages.len());
    assert!(st.stages.values().all(|c| c.complete()));
    // The products are listed and exist.
    let dirty = st.outputs.get("dirty").expect("a dirty image product");
    let path = dirty.strip_prefix("file://").unwrap();
    assert!(std::path::Path::new(path).exists(), "{path}");
    assert!(st.outputs.contains_key("diagnostics"));
    assert!(h.fake.event_reasons().contains(&"Succeeded".to_string()));
}

#[tokio::test]
async fn convergence_skips_the_remaining_cycles_and_restores() {
    let (_d, out) = output_dir();
    let job = builder("conv", &out)
        .pipeline(PipelineKind::Continuum)
        .major_cycles(3)
        .with_spec(|s| s.deconvolution.threshold = 1.0e6)
        .build();
    let h = Harness::new(job);
    for _ in 0..30 {
        h.reconcile().await.unwrap();
        if h.status().phase.is_terminal() {
            break;
        }
        h.run_pods().await;
    }
    let st = h.status();
    assert_eq!(st.phase, JobPhase::Succeeded, "{:?}", st.message);
    assert_eq!(st.converged_at, Some(1));
    let skipped: Vec<&String> = st
        .stages
        .iter()
        .filter(|(_, c)| c.skipped)
        .map(|(n, _)| n)
        .collect();
    assert!(!skipped.is_empty());
    // No Job was ever created for a skipped stage; restore ran.
    let started: Vec<String> = h.stage_jobs().into_iter().map(|(s, _)| s).collect();
    assert!(
        skipped.iter().all(|s| !started.contains(s)),
        "{skipped:?} vs {started:?}"
    );
    assert!(started.contains(&"restore".to_string()));
    assert!(st.outputs.contains_key("restored"), "{:?}", st.outputs);
}

/// Puts Job status `status` on the (only) Job and a failed pod with `message`.
fn fail_pods(h: &Harness, status: Value, message: Option<&str>) -> String {
    let (_, job) = h.stage_jobs().remove(0);
    let name = job["metadata"]["name"].as_str().unwrap().to_string();
    h.fake
        .update("Job", TEST_NAMESPACE, &name, |j| j["status"] = status);
    if let Some(msg) = message {
        h.fake.put(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("{name}-0-abcde"), "namespace": TEST_NAMESPACE,
                          "labels": {"batch.kubernetes.io/job-name": name}},
            "status": {"phase": "Failed", "containerStatuses": [{
                "name": "worker", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": msg[10..12].parse::<i32>().unwrap(),
                    "message": msg[14..].to_string(), "finishedAt": "2026-11-27T10:00:00Z"}}}]}
        }));
    }
    name
}

#[tokio::test]
async fn failures_within_the_budget_are_retried_by_kubernetes_and_reported() {
    let (_d, out) = output_dir();
    let h = Harness::new(builder("retry", &out).build());
    h.reconcile().await.unwrap();
    fail_pods(
        &h,
        json!({"active": 1, "failed": 1}),
        Some("exit code 75: store unreachable"),
    );
    h.reconcile().await.unwrap();
    let st = h.status();
    assert_eq!(st.phase, JobPhase::Running);
    assert_eq!(st.stages["simulate"].failed, 1);
    assert!(h.fake.event_reasons().contains(&"TaskRetried".to_string()));
    assert_eq!(h.stage_jobs().len(), 1, "no second Job for a retry");
    // Seen again with no change: no second event.
    h.reconcile().await.unwrap();
    let retried = h
        .fake
        .event_reasons()
        .iter()
        .filter(|r| *r == "TaskRetried")
        .count();
    assert_eq!(retried, 1);
}

#[tokio::test]
async fn a_task_beyond_its_attempts_fails_the_job_with_the_reason() {
    let (_d, out) = output_dir();
    let h = Harness::new(builder("exhaust", &out).build());
    h.reconcile().await.unwrap();
    fail_pods(
        &h,
        json!({"active": 0, "failed": 3, "failedIndexes": "0",
               "conditions": [{"type": "Failed", "status": "True",
                               "reason": "MaxFailedIndexesExceeded", "message": "Job has exceeded maxFailedIndexes"}]}),
        Some("exit code 75: s3://b/k: storage service unreachable"),
    );
    h.reconcile().await.unwrap();
    let st = h.status();
    assert_eq!(st.phase, JobPhase::Failed);
    let failed = st.conditions.iter().find(|c| c.type_ == FAILED).unwrap();
    assert_eq!(failed.status, "True");
    assert_eq!(failed.reason, "TaskFailed");
    assert!(
        failed.message.contains("simulate/0 failed 3 times"),
        "{}",
        failed.message
    );
    assert!(
        failed.message.contains("storage service unreachable"),
        "{}",
        failed.message
    );
    let ev = h.fake.events();
    assert!(
        ev.iter()
            .any(|e| e["reason"] == "TaskFailed" && e["type"] == "Warning")
    );
    // A terminal job stays put.
    assert_eq!(h.reconcile().await.unwrap(), Action::await_change());
}

#[tokio::test]
async fn a_permanent_worker_failure_fails_at_once_and_stops_other_jobs() {
    let (_d, out) = output_dir();
    let h = Harness::new(builder("perm", &out).build());
    h.reconcile().await.unwrap();
    let name = fail_pods(
        &h,
        json!({"active": 0, "failed": 1, "failedIndexes": "0",
               "conditions": [{"type": "Failed", "status": "True", "reason": "PodFailurePolicy",
                               "message": "Container worker for pod exited with code 65"}]}),
        Some("exit code 65: error: task simulate/0: spec.input: bad"),
    );
    // Another stage Job of this job still running (as after a partial restart).
    let mut other = h.job_named("simulate");
    other["metadata"]["name"] = json!("perm-other");
    other["metadata"]["labels"][LABEL_STAGE] = json!("weights");
    other["status"] = json!({"active": 1});
    h.fake.put(other);
    h.reconcile().await.unwrap();
    let st = h.status();
    assert_eq!(st.phase, JobPhase::Failed);
    assert!(
        st.message
            .as_deref()
            .unwrap()
            .contains("failed permanently"),
        "{:?}",
        st.message
    );
    // The running Job was deleted; the failed one is left for inspection.
    assert!(h.fake.get("Job", TEST_NAMESPACE, "perm-other").is_none());
    assert!(h.fake.get("Job", TEST_NAMESPACE, &name).is_some());
}

#[tokio::test]
async fn deletion_stops_the_jobs_removes_the_finalizer_and_keeps_the_data() {
    let (dir, out) = output_dir();
    let h = Harness::new(builder("gone", &out).build());
    h.reconcile().await.unwrap();
    assert_eq!(h.stage_jobs().len(), 1);
    h.fake.update("ImagingJob", TEST_NAMESPACE, "gone", |j| {
        j["metadata"]["deletionTimestamp"] = json!("2026-11-27T10:00:00Z");
    });
    h.reconcile().await.unwrap();
    assert!(h.stage_jobs().is_empty());
    assert!(h.job().metadata.finalizers.unwrap_or_default().is_empty());
    assert!(
        dir.path().join("plan.json").exists(),
        "output data left in place"
    );
    assert!(h.fake.event_reasons().contains(&"Deleted".to_string()));
}

#[tokio::test]
async fn a_replica_without_the_lease_does_nothing() {
    let (_d, out) = output_dir();
    let h = Harness::with_leader(builder("follower", &out).build(), LeaderHandle::new());
    let action = h.reconcile().await.unwrap();
    assert_eq!(action, Action::requeue(crate::reconcile::LEADER_RETRY));
    assert!(h.fake.requests().is_empty(), "{:?}", h.fake.requests());
    assert!(
        !std::path::Path::new(&out["file://".len()..])
            .join("plan.json")
            .exists()
    );
}

async fn assert_fails_naming(job: ImagingJob, needle: &str) {
    let h = Harness::new(job);
    h.reconcile().await.unwrap();
    let st = h.status();
    assert_eq!(st.phase, JobPhase::Failed, "{st:?}");
    let failed = st
        .conditions
        .iter()
        .find(|c| c.type_ == FAILED)
        .expect("a Failed condition");
    assert!(
        failed.message.contains(needle),
        "{needle:?} not in {:?}",
        failed.message
    );
    assert!(
        h.stage_jobs().is_empty(),
        "no Jobs for a job that cannot start"
    );
    assert!(h.fake.events().iter().any(|e| e["type"] == "Warning"));
}

#[tokio::test]
async fn an_input_that_does_not_exist_fails_naming_it() {
    let (d, out) = output_dir();
    let missing = format!("file://{}/no-such.zarr", d.path().display());
    let job = builder("noinput", &out).visibilities(&missing).build();
    assert_fails_naming(job, "spec.input.visibilities").await;
}

#[tokio::test]
async fn a_missing_credentials_secret_fails_naming_it() {
    let (_d, out) = output_dir();
    let job = builder("nosecret", &out)
        .credentials_secret("object-store")
        .build();
    assert_fails_naming(
        job,
        "spec.storage.credentialsSecret: Secret imaging/object-store not found",
    )
    .await;
}

#[tokio::test]
async fn an_image_too_large_for_the_memory_limit_fails_naming_the_limit() {
    let (_d, out) = output_dir();
    let limits = [("memory".to_string(), Quantity("96Mi".into()))].into();
    // 2048² needs about 300 MiB per map task (grid, images, one window), far above the
    // limit whatever grid the gridder's cost model picks.
    let job = builder("toobig", &out)
        .npixel(2048)
        .with_spec(|s| s.image.cellsize_arcsec = Some(30.0))
        .resources(ResourceRequirements {
            limits: Some(limits),
            ..ResourceRequirements::default()
        })
        .build();
    assert_fails_naming(
        job,
        "spec.workers.resources.limits.memory: one task needs about",
    )
    .await;
}

#[tokio::test]
async fn a_job_without_an_output_fails_naming_the_field() {
    let job = ImagingJobBuilder::new("noout")
        .finalizer(FINALIZER)
        .no_output()
        .build();
    assert_fails_naming(job, "spec.output").await;
}

#[tokio::test]
async fn a_spec_change_after_planning_is_refused_with_a_condition() {
    let (_d, out) = output_dir();
    let h = Harness::new(builder("change", &out).build());
    h.reconcile().await.unwrap();
    let before = h.job_named("simulate");
    h.fake.update("ImagingJob", TEST_NAMESPACE, "change", |j| {
        j["spec"]["majorCycles"] = json!(7);
        j["metadata"]["generation"] = json!(2);
    });
    h.reconcile().await.unwrap();
    let st = h.status();
    assert!(condition_true(&st.conditions, SPEC_CHANGE_REFUSED));
    assert_eq!(st.phase, JobPhase::Running);
    assert_eq!(
        h.job_named("simulate")["spec"],
        before["spec"],
        "the running Job is untouched"
    );
    assert!(
        h.fake
            .event_reasons()
            .contains(&"SpecChangeRefused".to_string())
    );
}

#[tokio::test]
async fn a_huge_job_keeps_a_small_status_and_constant_reconcile_cost() {
    let (_d, out) = output_dir();
    let mut spec = small_spec("huge", PipelineKind::Ical);
    spec.output = Some(out.clone());
    spec.major_cycles = 10;
    if let Some(sim) = spec.input.simulate.as_mut() {
        sim.frequency_windows = 5500;
    }
    spec.parallelism.windows_per_shard = Some(1);
    let h = Harness::new(builder("huge", &out).spec(spec).build());
    h.reconcile().await.unwrap();
    let plan: aperture_pipeline::plan::Plan = Store::from_url(&out)
        .unwrap()
        .get_json(PLAN_KEY)
        .await
        .unwrap();
    assert!(plan.total_tasks() > 5500 * 10, "{}", plan.total_tasks());
    // O(stages) Jobs: one for the first stage.
    assert_eq!(h.stage_jobs().len(), 1);
    let st = h.status();
    let size = crate::status::encoded_size(&st);
    assert!(size < 64 * 1024, "status of {size} bytes");
    assert_eq!(st.stages.len(), plan.stages.len());
    // The largest this status can get: one entry per stage with every count at its
    // widest, every condition the operator sets (at most five types) with a message at
    // the 1024-byte cap, and the status message at its cap. Nothing else in it grows.
    let mut worst = st.clone();
    for c in worst.stages.values_mut() {
        (c.succeeded, c.failed, c.running, c.skipped) = (u32::MAX, u32::MAX, u32::MAX, true);
    }
    let long = "x".repeat(4096);
    for t in [PLANNED, "Progressing", READY, FAILED, SPEC_CHANGE_REFUSED] {
        crate::status::set_condition(
            &mut worst.conditions,
            t,
            true,
            "SomeReason",
            &long,
            Some(i64::MAX),
            &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ),
        );
    }
    worst.message = Some(crate::cluster::truncate(long.clone(), 1024));
    let worst_size = crate::status::encoded_size(&worst);
    assert!(
        worst_size < 64 * 1024,
        "worst-case status of {worst_size} bytes"
    );
    let mut worst_job = h.job();
    worst_job.status = Some(worst);
    let object = serde_json::to_vec(&worst_job).unwrap().len();
    assert!(
        object < 256 * 1024,
        "ImagingJob object of {object} bytes at its largest status (etcd's limit: 1.5 MiB)"
    );
    // A reconcile with nothing new makes a constant number of API requests: as many as
    // for a small job (4 windows, 2 cycles), at most 3.
    h.fake.clear_requests();
    h.reconcile().await.unwrap();
    let n = h.fake.requests().len();
    assert!(n <= 3, "{n} requests: {:?}", h.fake.requests());
    let (_d2, out2) = output_dir();
    let mut spec = small_spec("small", PipelineKind::Ical);
    spec.output = Some(out2.clone());
    spec.major_cycles = 2;
    let small = Harness::new(builder("small", &out2).spec(spec).build());
    small.reconcile().await.unwrap();
    small.fake.clear_requests();
    small.reconcile().await.unwrap();
    let small_plan: aperture_pipeline::plan::Plan = Store::from_url(&out2)
        .unwrap()
        .get_json(PLAN_KEY)
        .await
        .unwrap();
    assert!(small_plan.total_tasks() * 100 < plan.total_tasks());
    assert_eq!(
        n,
        small.fake.requests().len(),
        "API requests of a steady reconcile: {} tasks vs {} tasks",
        plan.total_tasks(),
        small_plan.total_tasks()
    );
    eprintln!(
        "5500 windows x 10 cycles: {} tasks, {} stages, status {size} bytes (at most \
         {worst_size}), object at most {object} bytes, {n} API requests per steady reconcile \
         (the same for {} tasks)",
        plan.total_tasks(),
        plan.stages.len(),
        small_plan.total_tasks()
    );
}

#[tokio::test]
async fn startup_fails_clearly_when_the_crd_is_not_installed() {
    let fake = FakeApi::new();
    fake.state.lock().unwrap().missing.push("ImagingJob");
    let err = crate::controller::check_crd(&fake.client(), Some("imaging"))
        .await
        .unwrap_err();
    assert!(matches!(err, crate::controller::StartError::CrdMissing));
    assert!(
        err.to_string()
            .contains("kubectl apply -f crds/imagingjob.yaml"),
        "{err}"
    );
    let ok = FakeApi::new();
    crate::controller::check_crd(&ok.client(), None)
        .await
        .unwrap();
}

// --- RBAC: a refused permission shows on the job, in /readyz and the log, never as a crash

/// The Events of reason `reason` recorded so far.
fn events_of(fake: &FakeApi, reason: &str) -> Vec<Value> {
    fake.events()
        .into_iter()
        .filter(|e| e["reason"] == reason)
        .collect()
}

#[tokio::test]
async fn a_forbidden_status_patch_is_an_event_on_the_job_and_starts_nothing() {
    let (_d, out) = output_dir();
    let h = Harness::new(builder("nostatus", &out).build());
    h.fake.forbid("patch", "imagingjobs/status");
    for _ in 0..2 {
        let err = h.reconcile().await.unwrap_err();
        assert!(
            matches!(err, crate::error::Error::StatusForbidden(_)),
            "{err}"
        );
        assert!(err.is_transient());
        // The controller's error backoff, not a spin.
        let action = crate::reconcile::error_policy(Arc::new(h.job()), &err, h.ctx.clone());
        assert_eq!(action, Action::requeue(crate::reconcile::ERROR_REQUEUE));
    }
    assert!(h.stage_jobs().is_empty(), "a Job it could not track");
    assert!(h.job().status.is_none());
    let events = events_of(&h.fake, crate::reconcile::STATUS_FORBIDDEN);
    assert!(!events.is_empty(), "{:?}", h.fake.events());
    let note = events[0]["note"].as_str().unwrap_or_default();
    for needle in [
        "cannot patch imagingjobs/status",
        "403 Forbidden",
        "cannot patch resource \"imagingjobs/status\" in API group \"aperture.dev\"",
    ] {
        assert!(note.contains(needle), "{needle:?} not in {note:?}");
    }
    assert_eq!(events[0]["type"], "Warning");
    assert_eq!(events[0]["regarding"]["name"], "nostatus");
    assert_eq!(
        h.ctx
            .state
            .metrics
            .encode()
            .lines()
            .filter(|l| l.contains("status_forbidden"))
            .count(),
        1,
        "counted as kind status_forbidden"
    );
    // Granted: it proceeds as on first sight.
    h.fake.allow_all();
    h.reconcile().await.unwrap();
    assert_eq!(h.status().phase, JobPhase::Running);
    assert_eq!(h.stage_jobs().len(), 1);
}

#[tokio::test]
async fn a_running_job_whose_status_becomes_forbidden_gets_no_new_stage() {
    let (_d, out) = output_dir();
    let h = Harness::new(builder("revoked", &out).build());
    h.reconcile().await.unwrap();
    assert_eq!(h.run_pods().await, ["simulate"]);
    h.fake.forbid("patch", "imagingjobs/status");
    let err = h.reconcile().await.unwrap_err();
    assert!(
        matches!(err, crate::error::Error::StatusForbidden(_)),
        "{err}"
    );
    // The finished stage is not recorded, so the next one is not started.
    assert_eq!(h.stage_jobs().len(), 1, "{:?}", h.stage_jobs());
    assert!(!events_of(&h.fake, crate::reconcile::STATUS_FORBIDDEN).is_empty());
    h.fake.allow_all();
    h.reconcile().await.unwrap();
    assert_eq!(
        h.stage_jobs().len(),
        2,
        "the next stage starts once granted"
    );
}

fn forbidden_lease() -> LeaderHandle {
    let leader = LeaderHandle::new();
    leader.set_problem(Some(crate::leader::LeaseProblem {
        message: "Lease aperture/aperture-operator: get failed: 403 Forbidden: \
                  leases.coordination.k8s.io \"aperture-operator\" is forbidden"
            .into(),
        forbidden: true,
    }));
    leader
}

#[tokio::test]
async fn a_forbidden_lease_is_an_event_once_per_unfinished_job() {
    let (_d, out) = output_dir();
    let h = Harness::with_leader(builder("nolease", &out).build(), forbidden_lease());
    for _ in 0..3 {
        let action = h.reconcile().await.unwrap();
        assert_eq!(action, Action::requeue(crate::reconcile::LEADER_RETRY));
    }
    let events = events_of(&h.fake, crate::reconcile::LEASE_FORBIDDEN);
    assert_eq!(events.len(), 1, "{:?}", h.fake.events());
    assert_eq!(events[0]["type"], "Warning");
    let note = events[0]["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("get failed: 403 Forbidden") && note.contains("leases"),
        "{note}"
    );
    // Nothing else: no finalizer, no status, no Job.
    let others: Vec<_> = h
        .fake
        .requests()
        .into_iter()
        .filter(|r| !r.path.contains("/events"))
        .collect();
    assert!(others.is_empty(), "{others:?}");
    assert!(h.stage_jobs().is_empty());
}

#[tokio::test]
async fn a_finished_job_or_another_lease_problem_gets_no_lease_event() {
    let (_d, out) = output_dir();
    let done = Harness::with_leader(builder("done", &out).build(), forbidden_lease());
    done.fake.update("ImagingJob", TEST_NAMESPACE, "done", |j| {
        j["status"] = json!({"phase": "Succeeded"});
    });
    done.reconcile().await.unwrap();
    assert!(done.fake.events().is_empty(), "{:?}", done.fake.events());
    // A round that timed out is not a permission problem: log and /readyz only.
    let leader = LeaderHandle::new();
    leader.set_problem(Some(crate::leader::LeaseProblem {
        message: "no answer from the API server within 5s".into(),
        forbidden: false,
    }));
    let slow = Harness::with_leader(builder("slow", &out).build(), leader);
    slow.reconcile().await.unwrap();
    assert!(
        slow.fake.requests().is_empty(),
        "{:?}",
        slow.fake.requests()
    );
}

#[tokio::test]
async fn listing_imagingjobs_forbidden_names_the_verb_and_resource() {
    let fake = FakeApi::new();
    fake.forbid("list", "imagingjobs");
    let err = crate::controller::check_crd(&fake.client(), Some("imaging"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, crate::controller::StartError::Forbidden { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    for needle in [
        "forbidden to list imagingjobs.aperture.dev in namespace imaging",
        "list and watch",
        "cannot list resource \"imagingjobs\" in API group \"aperture.dev\"",
    ] {
        assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
    }
}

#[tokio::test]
async fn the_controller_waits_for_the_permission_then_starts() {
    let fake = FakeApi::new();
    fake.forbid("list", "imagingjobs");
    let state = State::new(test_defaults(), LeaderHandle::always());
    // The waits, instantly; the permission is granted after the third refusal.
    let granter = fake.clone();
    let delays = (1..).map(move |n| {
        if n == 3 {
            granter.allow_all();
        }
        std::time::Duration::ZERO
    });
    let readiness = state.readiness.clone();
    let started = crate::controller::wait_for_crd(
        &fake.client(),
        Some("imaging"),
        &state,
        delays,
        std::future::pending(),
    )
    .await;
    assert!(started);
    let lists = fake
        .requests()
        .iter()
        .filter(|r| r.method == Method::GET && r.path.ends_with("/imagingjobs"))
        .count();
    assert_eq!(lists, 4, "three refusals, then the list that works");
    // What /readyz said while it waited (the caller marks it running next).
    let why = readiness.check().unwrap_err();
    assert!(
        why.contains("forbidden to list imagingjobs.aperture.dev") && why.contains("attempt 3"),
        "{why}"
    );
    readiness.controller_running();
    assert_eq!(readiness.check(), Ok(()));
}

#[tokio::test]
async fn waiting_for_the_permission_stops_on_shutdown() {
    let fake = FakeApi::new();
    fake.forbid("list", "imagingjobs");
    let state = State::new(test_defaults(), LeaderHandle::always());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut stop = Some(stop);
    // Shutdown comes during the first (hour-long) wait.
    let delays = std::iter::from_fn(move || {
        if let Some(s) = stop.take() {
            let _ = s.send(());
        }
        Some(std::time::Duration::from_secs(3600))
    });
    let client = fake.client();
    let wait = crate::controller::wait_for_crd(&client, None, &state, delays, async {
        let _ = stopped.await;
    });
    // The bound only turns a hang into a failure.
    let started = tokio::time::timeout(std::time::Duration::from_secs(30), wait)
        .await
        .expect("returns on shutdown, not after the wait");
    assert!(!started);
}

#[test]
fn retries_back_off_from_one_second_to_a_minute() {
    let secs: Vec<u64> = crate::controller::retry_delays()
        .take(9)
        .map(|d| d.as_secs())
        .collect();
    assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
}

// --- A MeasurementSet input: a worker surveys the MS (only workers mount it), then plan

const MS_PATH: &str = "/data/obs/low.ms";

fn ms_builder(name: &str, out: &str) -> ImagingJobBuilder {
    builder(name, out)
        .measurement_set(MS_PATH)
        .pvc_mount("obs", "obs-claim", "/data")
}

/// The container's command line of a Job (JSON).
fn command_of(job: &Value) -> Vec<String> {
    job["spec"]["template"]["spec"]["containers"][0]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// Whether a Job's pod has the `obs` PVC volume and mounts it read-only at /data, after
/// the scratch volume.
fn has_obs_volume(job: &Value) -> bool {
    let pod = &job["spec"]["template"]["spec"];
    let vols = pod["volumes"].as_array().unwrap();
    let mounts = pod["containers"][0]["volumeMounts"].as_array().unwrap();
    vols.len() == 2
        && vols[0]["name"] == "tmp"
        && vols[1]
            == json!({"name": "obs", "persistentVolumeClaim": {"claimName": "obs-claim", "readOnly": true}})
        && mounts.len() == 2
        && mounts[0]["mountPath"] == "/tmp"
        && mounts[1] == json!({"name": "obs", "mountPath": "/data", "readOnly": true})
}

/// Writes the survey's result as the survey worker would and marks its Job done.
async fn survey_done(
    h: &Harness,
    out: &str,
    outcome: aperture_pipeline::executor::survey::SurveyOutcome,
) {
    use aperture_pipeline::executor::survey::{SURVEY_KEY, SurveyRequest, SurveyResult};
    let job = h.job();
    let result = SurveyResult {
        request: SurveyRequest::for_job(&job).unwrap(),
        outcome,
        aperture_version: "test".into(),
    };
    Store::from_url(out)
        .unwrap()
        .put_json(SURVEY_KEY, &result)
        .await
        .unwrap();
    let name = h.job_named(crate::jobs::SURVEY_STAGE)["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    h.fake.update("Job", TEST_NAMESPACE, &name, |j| {
        j["status"] = json!({"completedIndexes": "0", "succeeded": 1, "active": 0,
                             "conditions": [{"type": "Complete", "status": "True"}]});
    });
}

#[tokio::test]
async fn a_measurement_set_job_is_first_surveyed_by_one_job_with_the_volumes() {
    use aperture_pipeline::executor::survey::{SURVEY_KEY, SURVEY_REQUEST_KEY, SurveyRequest};
    let (dir, out) = output_dir();
    let h = Harness::new(ms_builder("msjob", &out).build());
    h.reconcile().await.unwrap();
    // One Job, the survey: one pod running the worker's survey mode on the output.
    let jobs = h.stage_jobs();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let (stage, job) = &jobs[0];
    assert_eq!(stage, crate::jobs::SURVEY_STAGE);
    assert_eq!(job["spec"]["completions"], 1);
    assert_eq!(job["spec"]["parallelism"], 1);
    assert_eq!(
        command_of(job),
        [
            "aperture-worker",
            "survey",
            "--output",
            out.trim_end_matches('/')
        ]
    );
    assert!(has_obs_volume(job), "{}", job["spec"]["template"]["spec"]);
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"],
        true
    );
    assert_eq!(job["metadata"]["ownerReferences"][0]["name"], "msjob");
    // The request it reads is in the output; no plan, no result yet.
    let store = Store::from_url(&out).unwrap();
    let req: SurveyRequest = store.get_json(SURVEY_REQUEST_KEY).await.unwrap();
    assert_eq!(req.measurement_set.path, MS_PATH);
    assert_eq!(req.job, "msjob");
    assert!(!dir.path().join("plan.json").exists());
    assert!(!store.exists(SURVEY_KEY).await.unwrap());
    // The status and events say what is going on.
    let st = h.status();
    assert_eq!(st.phase, JobPhase::Planning);
    let planned = st.conditions.iter().find(|c| c.type_ == PLANNED).unwrap();
    assert_eq!(planned.status, "False");
    assert_eq!(planned.reason, "Surveying");
    assert!(
        planned
            .message
            .contains(&format!("surveying the MeasurementSet {MS_PATH}")),
        "{}",
        planned.message
    );
    assert_eq!(st.message.as_deref(), Some(planned.message.as_str()));
    assert_eq!(h.fake.event_reasons(), ["Planning", "Surveying"]);
    // Reconciled again while the pod runs: no second Job, no write at all.
    h.fake.clear_requests();
    h.reconcile().await.unwrap();
    h.reconcile().await.unwrap();
    assert_eq!(h.stage_jobs().len(), 1);
    assert_eq!(h.requests_of(Method::PATCH, "/jobs/"), 0);
    assert_eq!(h.requests_of(Method::PATCH, "/status"), 0);
    assert_eq!(h.fake.event_reasons(), ["Planning", "Surveying"]);
}

#[tokio::test]
async fn a_survey_result_plans_the_job_and_starts_the_import_stage_with_the_volumes() {
    use aperture_pipeline::executor::survey::SurveyOutcome;
    use aperture_pipeline::plan::{IMPORT_STAGE, PlanOptions, make_plan};
    let (_d, out) = output_dir();
    let h = Harness::new(ms_builder("msplan", &out).build());
    h.reconcile().await.unwrap();
    let facts = crate::fixtures::small_facts();
    survey_done(
        &h,
        &out,
        SurveyOutcome::Surveyed {
            facts: facts.clone(),
        },
    )
    .await;
    h.reconcile().await.unwrap();
    let st = h.status();
    assert_eq!(st.phase, JobPhase::Running, "{:?}", st.message);
    assert!(condition_true(&st.conditions, PLANNED));
    // The plan is the planner's for the surveyed facts (the MS itself was never opened:
    // it does not exist here).
    let plan: aperture_pipeline::plan::Plan = Store::from_url(&out)
        .unwrap()
        .get_json(PLAN_KEY)
        .await
        .unwrap();
    assert_eq!(plan.facts, facts);
    let oracle = make_plan(
        &h.job().spec,
        &facts,
        &PlanOptions {
            job: "msplan".into(),
            output: out.clone(),
            visibilities: format!("{out}vis.zarr"),
        },
    )
    .unwrap();
    assert_eq!(plan.stages, oracle.stages);
    assert_eq!(plan.visibilities, oracle.visibilities);
    assert_eq!(plan.stages[0].name, IMPORT_STAGE);
    // The import stage's Job runs with the volumes; the survey Job stays as it was.
    let import = h.job_named(IMPORT_STAGE);
    assert!(
        has_obs_volume(&import),
        "{}",
        import["spec"]["template"]["spec"]
    );
    let cmd = command_of(&import);
    assert_eq!(cmd[cmd.len() - 2..], ["--stage", IMPORT_STAGE]);
    assert_eq!(h.stage_jobs().len(), 2);
    assert_eq!(
        h.fake.event_reasons(),
        ["Planning", "Surveying", "Planned", "StageStarted"]
    );
}

#[tokio::test]
async fn a_failed_survey_fails_the_job_naming_the_path_and_the_workers_error() {
    use aperture_pipeline::executor::survey::SurveyOutcome;
    let (_d, out) = output_dir();
    let h = Harness::new(ms_builder("msbad", &out).build());
    h.reconcile().await.unwrap();
    let error = format!(
        "spec.input.measurementSet: {MS_PATH}: is not a MeasurementSet (no table.dat: the \
         directory is not a casacore table)"
    );
    survey_done(&h, &out, SurveyOutcome::Failed { error }).await;
    h.reconcile().await.unwrap();
    let st = h.status();
    assert_eq!(st.phase, JobPhase::Failed);
    let failed = st.conditions.iter().find(|c| c.type_ == FAILED).unwrap();
    assert_eq!(failed.reason, "PlanningFailed");
    for needle in [
        "spec.input.measurementSet: the survey of the MeasurementSet /data/obs/low.ms failed",
        "is not a MeasurementSet (no table.dat",
    ] {
        assert!(
            failed.message.contains(needle),
            "{needle:?} not in {}",
            failed.message
        );
    }
    assert!(
        h.fake
            .events()
            .iter()
            .any(|e| e["reason"] == "PlanningFailed" && e["type"] == "Warning")
    );
    assert_eq!(h.stage_jobs().len(), 1, "no stage Job after the survey");
    assert!(
        !std::path::Path::new(&out["file://".len()..])
            .join("plan.json")
            .exists()
    );
}

#[tokio::test]
async fn a_survey_pod_that_fails_without_a_result_fails_the_job_with_its_message() {
    let (_d, out) = output_dir();
    let h = Harness::new(ms_builder("mscrash", &out).build());
    h.reconcile().await.unwrap();
    // Running and retried: still surveying.
    fail_pods(&h, json!({"active": 1, "failed": 1}), None);
    h.reconcile().await.unwrap();
    assert_eq!(h.status().phase, JobPhase::Planning);
    // Out of attempts with a pod's termination message.
    fail_pods(
        &h,
        json!({"active": 0, "failed": 3, "failedIndexes": "0",
               "conditions": [{"type": "Failed", "status": "True",
                               "reason": "MaxFailedIndexesExceeded", "message": "Job has exceeded maxFailedIndexes"}]}),
        Some("exit code 75: error: survey: s3://b/k: storage service unreachable"),
    );
    h.reconcile().await.unwrap();
    let st = h.status();
    assert_eq!(st.phase, JobPhase::Failed);
    let failed = st.conditions.iter().find(|c| c.type_ == FAILED).unwrap();
    for needle in [
        "the survey of the MeasurementSet /data/obs/low.ms failed",
        "storage service unreachable",
    ] {
        assert!(
            failed.message.contains(needle),
            "{needle:?} not in {}",
            failed.message
        );
    }
}

#[tokio::test]
async fn a_measurement_set_outside_the_worker_mounts_is_refused_naming_the_fields() {
    let (_d, out) = output_dir();
    let job = builder("msout", &out)
        .measurement_set("/elsewhere/low.ms")
        .pvc_mount("obs", "obs-claim", "/data")
        .build();
    assert_fails_naming(
        job,
        "spec.input.measurementSet.path: /elsewhere/low.ms is not under any mountPath of \
         spec.workers.volumeMounts (/data)",
    )
    .await;
    let job = builder("msrel", &out).measurement_set("obs/low.ms").build();
    assert_fails_naming(job, "spec.input.measurementSet.path").await;
}
