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
                let code = aperture_pipeline::tasks::worker_main(&arg("--plan"), &stage, i).await;
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
    let job = builder("toobig", &out)
        .npixel(1024)
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
    // Pretend every stage ran to a point mid-way, with all counts recorded.
    let st = h.status();
    let size = crate::status::encoded_size(&st);
    assert!(size < 64 * 1024, "status of {size} bytes");
    assert_eq!(st.stages.len(), plan.stages.len());
    eprintln!(
        "5500 windows x 10 cycles: {} tasks, {} stages, status {size} bytes",
        plan.total_tasks(),
        plan.stages.len()
    );
    let object = serde_json::to_vec(&h.job()).unwrap().len();
    assert!(object < 256 * 1024, "ImagingJob object of {object} bytes");
    // A reconcile with nothing new makes a constant number of API requests.
    h.fake.clear_requests();
    h.reconcile().await.unwrap();
    let n = h.fake.requests().len();
    assert!(n <= 3, "{n} requests: {:?}", h.fake.requests());
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
