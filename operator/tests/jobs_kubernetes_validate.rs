//! The stage Jobs of every example manifest (and the survey Job of the MeasurementSet
//! one, with its volumes), serialised to YAML, pass the PyPI
//! `kubernetes-validate --strict` schema check of the newest Kubernetes it knows (≥ 1.31).
//! Without the tool the test prints a skip message and passes, unless
//! `APERTURE_REQUIRE_TOOLS=1`; `APERTURE_KUBERNETES_VALIDATE` names another program.

use std::path::{Path, PathBuf};
use std::process::Command;

use aperture_operator::config::WorkerDefaults;
use aperture_operator::jobs::{StageJobParams, SurveyJobParams, stage_job, survey_job};
use aperture_pipeline::plan::{InputFacts, Plan, PlanOptions, make_plan};
use aperture_pipeline::spec::{ImagingJob, ImagingJobSpec, SimulateSpec, parse_job};
use k8s_openapi::api::batch::v1::Job;

/// Oldest Kubernetes whose Job semantics (backoffLimitPerIndex, FailIndex) the builder
/// relies on.
const MIN_MINOR: u32 = 31;

fn tool() -> String {
    std::env::var("APERTURE_KUBERNETES_VALIDATE").unwrap_or_else(|_| "kubernetes-validate".into())
}

fn require_tools() -> bool {
    std::env::var("APERTURE_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// The tool's default (= newest) Kubernetes version from its `--help`, e.g. `1.37.0`;
/// `None` when the tool cannot be run.
fn newest_version() -> Option<String> {
    let out = Command::new(tool()).arg("--help").output().ok()?;
    let help = String::from_utf8_lossy(&out.stdout).replace('\n', " ");
    let at = help.find("Defaults to")?;
    let v = help[at + "Defaults to".len()..]
        .split_whitespace()
        .next()?
        .trim_end_matches('.')
        .to_string();
    Some(v)
}

fn minor(version: &str) -> Option<u32> {
    let mut it = version.split('.');
    (it.next()? == "1").then_some(())?;
    it.next()?.parse().ok()
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// An example as the API server would hold it: namespace, uid and an s3 output.
fn as_cluster_object(mut job: ImagingJob, uid: &str) -> ImagingJob {
    let name = job.metadata.name.clone().expect("examples have names");
    job.metadata.namespace = Some("imaging".into());
    job.metadata.uid = Some(uid.into());
    job.metadata.generation = Some(1);
    job.spec.output = Some(format!("s3://aperture-examples/{name}/"));
    job
}

fn plan(job: &ImagingJob) -> Plan {
    let sim = job.spec.input.simulate.as_ref().expect("a simulated input");
    let facts = InputFacts::from_simulation(sim).expect("input facts");
    let output = job.spec.output.clone().expect("output");
    make_plan(
        &job.spec,
        &facts,
        &PlanOptions {
            job: job.metadata.name.clone().unwrap_or_default(),
            visibilities: format!("{}vis.zarr", output),
            output,
        },
    )
    .expect("the example plans")
}

fn stage_jobs(job: &ImagingJob, defaults: &WorkerDefaults, tp: Option<&str>) -> Vec<Job> {
    jobs_of(job, &plan(job), defaults, tp)
}

/// The Job of every stage of `plan`.
fn jobs_of(job: &ImagingJob, plan: &Plan, defaults: &WorkerDefaults, tp: Option<&str>) -> Vec<Job> {
    plan.stages
        .iter()
        .map(|st| {
            stage_job(&StageJobParams {
                owner: job,
                plan,
                stage: st,
                defaults,
                traceparent: tp,
            })
            .unwrap_or_else(|e| panic!("stage {}: {e}", st.name))
        })
        .collect()
}

/// The stage Jobs of `job` planned from `facts`.
fn planned_jobs(job: &ImagingJob, facts: &InputFacts, defaults: &WorkerDefaults) -> Vec<Job> {
    let output = job.spec.output.clone().expect("output");
    let plan = make_plan(
        &job.spec,
        facts,
        &PlanOptions {
            job: job.metadata.name.clone().unwrap_or_default(),
            visibilities: format!("{output}vis.zarr"),
            output,
        },
    )
    .expect("the job plans");
    jobs_of(job, &plan, defaults, None)
}

/// Every worker option switched on, as YAML a user would write.
fn everything_on(spec: &mut ImagingJobSpec) {
    let workers = r#"{
      "image": "registry.example/aperture-worker:1.0",
      "hostNetwork": true,
      "nodeSelector": {"node.kubernetes.io/instance-type": "bare-metal"},
      "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "imaging", "effect": "NoSchedule"}],
      "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 50, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
          "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "aperture-worker"}}}}]}},
      "resources": {"requests": {"cpu": "2", "memory": "6Gi"}, "limits": {"memory": "6Gi"}}
    }"#;
    spec.workers = serde_json::from_str(workers).expect("workers spec");
    spec.storage.credentials_secret = Some("object-store".into());
    spec.telemetry.otlp_endpoint = Some("http://otel-collector.observability:4318".into());
}

fn run(version: &str, files: &[PathBuf]) -> (bool, String) {
    let out = Command::new(tool())
        .args(["--strict", "-k", version])
        .args(files)
        .output()
        .expect("kubernetes-validate runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn example_stage_jobs_pass_kubernetes_validate_strict() {
    let Some(version) = newest_version() else {
        let msg = format!("{} not found (pip install kubernetes-validate)", tool());
        assert!(!require_tools(), "APERTURE_REQUIRE_TOOLS=1 but {msg}");
        eprintln!("skipped: {msg}");
        return;
    };
    let m = minor(&version).unwrap_or(0);
    if m < MIN_MINOR {
        let msg = format!(
            "{} knows Kubernetes {version} at newest; need 1.{MIN_MINOR}",
            tool()
        );
        assert!(!require_tools(), "APERTURE_REQUIRE_TOOLS=1 but {msg}");
        eprintln!("skipped: {msg}");
        return;
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let mut files = Vec::new();
    let mut write = |tag: &str, jobs: &[Job]| {
        for j in jobs {
            let name = j.metadata.name.clone().expect("name");
            let path = dir.path().join(format!("{tag}-{name}.yaml"));
            let yaml = serde_saphyr::to_string(j).expect("YAML");
            std::fs::write(&path, yaml).expect("write");
            files.push(path);
        }
    };
    let defaults = WorkerDefaults::default();
    let mut examples = 0;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .expect("examples/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    entries.sort();
    for path in &entries {
        let text = std::fs::read_to_string(path).expect("read example");
        let job = parse_job(&text, &path.display().to_string()).expect("example parses");
        if job.spec.input.simulate.is_none() {
            eprintln!(
                "{}: not simulated, cannot be planned without its data",
                path.display()
            );
            continue;
        }
        let job = as_cluster_object(job, "0b7e4c1a-5d2f-4e8b-9a61-3c5d7e9f1a2b");
        write("plain", &stage_jobs(&job, &defaults, None));
        examples += 1;
    }
    assert!(examples >= 4, "only {examples} examples planned");

    // The MeasurementSet example: its survey Job, and its stage Jobs planned from facts
    // standing in for the survey's (a small simulation's), both with its volumes.
    let text =
        std::fs::read_to_string(examples_dir().join("invert-ms-k8s.yaml")).expect("invert-ms-k8s");
    let ms = as_cluster_object(
        parse_job(&text, "invert-ms-k8s.yaml").expect("parses"),
        "3c2b1a0f-9e8d-4c7b-a6f5-e4d3c2b1a0f9",
    );
    ms.spec
        .validate_cluster()
        .expect("the MS example fits a cluster");
    assert!(!ms.spec.workers.volume_mounts.is_empty());
    let survey = survey_job(&SurveyJobParams {
        owner: &ms,
        output: ms.spec.output.as_deref().unwrap_or_default(),
        defaults: &defaults,
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    })
    .expect("the survey Job builds");
    let facts = InputFacts::from_simulation(&SimulateSpec {
        frequency_windows: 2,
        channels_per_window: 2,
        ..SimulateSpec::default()
    })
    .expect("facts");
    write("ms", &[survey]);
    write("ms", &planned_jobs(&ms, &facts, &defaults));

    // ical-low with every worker option, the operator's optional settings and a trace.
    let text = std::fs::read_to_string(examples_dir().join("ical-low.yaml")).expect("ical-low");
    let mut job = as_cluster_object(
        parse_job(&text, "ical-low.yaml").expect("parses"),
        "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a",
    );
    everything_on(&mut job.spec);
    let full_defaults = WorkerDefaults {
        image_pull_policy: Some("IfNotPresent".into()),
        image_pull_secrets: vec!["regcred".into()],
        service_account: Some("aperture-worker".into()),
        trace_phase_spans: Some(200),
        resources: serde_json::from_str(
            r#"{"requests": {"ephemeral-storage": "1Gi"}, "limits": {"ephemeral-storage": "4Gi"}}"#,
        )
        .ok(),
        ..WorkerDefaults::default()
    };
    let full = stage_jobs(
        &job,
        &full_defaults,
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    );
    assert!(pod_has_host_network(&full[0]), "the option reached the pod");
    write("full", &full);

    let (ok, text) = run(&version, &files);
    assert!(
        ok,
        "kubernetes-validate {version} refused a stage Job:\n{text}"
    );
    let passed = text.matches(" passed for resource job/").count();
    assert_eq!(passed, files.len(), "every file validated:\n{text}");

    // Control: the same check refuses a Job with a misspelt field, so it does check.
    let mut bad = serde_json::to_value(&full[0]).expect("JSON");
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always".into();
    let bad_path = dir.path().join("control-bad.yaml");
    std::fs::write(&bad_path, serde_saphyr::to_string(&bad).expect("YAML")).expect("write");
    let (ok, text) = run(&version, &[bad_path]);
    assert!(
        !ok && text.contains("imagePullPolicyy"),
        "control not refused:\n{text}"
    );
    eprintln!(
        "kubernetes-validate --strict -k {version}: {} stage Jobs of {examples} examples passed",
        files.len()
    );
}

fn pod_has_host_network(j: &Job) -> bool {
    j.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.host_network)
        == Some(true)
}
