//! Test-object builders (tests only): [`ImagingJobBuilder`] for ImagingJobs as the API
//! server would return them, and [`plan_for`] for their plans, made with no I/O.

use std::collections::BTreeMap;

use aperture_pipeline::plan::{InputFacts, Plan, PlanError, PlanOptions, make_plan};
use aperture_pipeline::spec::{
    AutoOr, ImagingJob, ImagingJobSpec, ImagingJobStatus, InputSpec, JobPhase, PipelineKind,
    SimulateSpec, WeightingKind,
};
use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sha2::{Digest, Sha256};

use crate::config::WorkerDefaults;

/// Namespace of built ImagingJobs unless [`ImagingJobBuilder::namespace`] says otherwise.
pub const TEST_NAMESPACE: &str = "imaging";
/// Worker image of [`test_defaults`].
pub const TEST_IMAGE: &str = "registry.example/aperture-worker:test";

/// A UUID-shaped uid derived from `name` (distinct names, distinct uids).
pub fn uid_for(name: &str) -> String {
    let d = Sha256::digest(name.as_bytes());
    let h: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The spec of a small simulated job: SKA-Low within 200 m, 4 windows, 3 times, a 128²
/// image, natural weighting, output `s3://aperture-test/<name>/`. Plans in milliseconds.
pub fn small_spec(name: &str, pipeline: PipelineKind) -> ImagingJobSpec {
    let mut spec: ImagingJobSpec = serde_json::from_value(serde_json::json!({
        "input": {"simulate": {}},
    }))
    .expect("a minimal spec deserialises");
    spec.pipeline = pipeline;
    spec.input = InputSpec {
        visibilities: None,
        measurement_set: None,
        simulate: Some(SimulateSpec {
            rmax: 200.0,
            frequency_windows: 4,
            ntimes: 3,
            ..SimulateSpec::default()
        }),
    };
    spec.output = Some(format!("s3://aperture-test/{name}/"));
    spec.image.npixel = AutoOr::Value(128);
    spec.image.weighting.kind = WeightingKind::Natural;
    spec.major_cycles = 2;
    spec
}

/// Builds an [`ImagingJob`] as read from the API server: name, namespace, uid and
/// generation set; everything else as the methods say.
#[derive(Debug, Clone)]
pub struct ImagingJobBuilder {
    name: String,
    namespace: Option<String>,
    uid: Option<String>,
    generation: Option<i64>,
    resource_version: Option<String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    finalizers: Vec<String>,
    deletion_timestamp: Option<Time>,
    spec: ImagingJobSpec,
    status: Option<ImagingJobStatus>,
}

impl ImagingJobBuilder {
    /// A small `invert` job named `name` in [`TEST_NAMESPACE`] (see [`small_spec`]).
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            namespace: Some(TEST_NAMESPACE.to_string()),
            uid: Some(uid_for(name)),
            generation: Some(1),
            resource_version: Some("1".into()),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            finalizers: Vec::new(),
            deletion_timestamp: None,
            spec: small_spec(name, PipelineKind::Invert),
            status: None,
        }
    }

    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }
    pub fn namespace(mut self, ns: &str) -> Self {
        self.namespace = Some(ns.to_string());
        self
    }
    /// As if the object had no namespace (not from the API server).
    pub fn no_namespace(mut self) -> Self {
        self.namespace = None;
        self
    }
    pub fn uid(mut self, uid: &str) -> Self {
        self.uid = Some(uid.to_string());
        self
    }
    /// As if the object had no uid (not from the API server).
    pub fn no_uid(mut self) -> Self {
        self.uid = None;
        self
    }
    pub fn generation(mut self, g: i64) -> Self {
        self.generation = Some(g);
        self
    }
    pub fn resource_version(mut self, v: &str) -> Self {
        self.resource_version = Some(v.to_string());
        self
    }
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.labels.insert(k.to_string(), v.to_string());
        self
    }
    pub fn annotation(mut self, k: &str, v: &str) -> Self {
        self.annotations.insert(k.to_string(), v.to_string());
        self
    }
    pub fn finalizer(mut self, f: &str) -> Self {
        self.finalizers.push(f.to_string());
        self
    }
    /// Marks the object as being deleted (deletionTimestamp set).
    pub fn deleting(mut self) -> Self {
        self.deletion_timestamp = Some(Time(
            k8s_openapi::jiff::Timestamp::from_second(1_767_225_600).expect("a valid time"),
        ));
        self
    }

    /// Replaces the whole spec.
    pub fn spec(mut self, spec: ImagingJobSpec) -> Self {
        self.spec = spec;
        self
    }
    /// Any other change to the spec.
    pub fn with_spec(mut self, f: impl FnOnce(&mut ImagingJobSpec)) -> Self {
        f(&mut self.spec);
        self
    }
    pub fn pipeline(mut self, p: PipelineKind) -> Self {
        self.spec.pipeline = p;
        self
    }
    /// Frequency windows of the simulated input.
    pub fn windows(mut self, n: u32) -> Self {
        self.simulate_mut().frequency_windows = n;
        self
    }
    /// Changes the simulated input.
    pub fn simulate(mut self, f: impl FnOnce(&mut SimulateSpec)) -> Self {
        f(self.simulate_mut());
        self
    }
    /// Reads existing visibilities instead of simulating them.
    pub fn visibilities(mut self, url: &str) -> Self {
        self.spec.input = InputSpec {
            visibilities: Some(url.to_string()),
            simulate: None,
            measurement_set: None,
        };
        self
    }
    /// Imports the MeasurementSet at `path` (default selection) instead of simulating.
    pub fn measurement_set(mut self, path: &str) -> Self {
        self.spec.input = InputSpec {
            visibilities: None,
            simulate: None,
            measurement_set: Some(
                serde_json::from_value(serde_json::json!({ "path": path }))
                    .expect("a MeasurementSet spec"),
            ),
        };
        self
    }
    /// Worker volume `name`: the PersistentVolumeClaim `claim`, mounted read-only at
    /// `mount_path` in every worker pod.
    pub fn pvc_mount(mut self, name: &str, claim: &str, mount_path: &str) -> Self {
        self.spec.workers.volumes.push(
            serde_json::from_value(serde_json::json!({
                "name": name, "persistentVolumeClaim": {"claimName": claim, "readOnly": true},
            }))
            .expect("a Volume"),
        );
        self.spec.workers.volume_mounts.push(
            serde_json::from_value(serde_json::json!({
                "name": name, "mountPath": mount_path, "readOnly": true,
            }))
            .expect("a VolumeMount"),
        );
        self
    }
    pub fn npixel(mut self, n: u32) -> Self {
        self.spec.image.npixel = AutoOr::Value(n);
        self
    }
    pub fn major_cycles(mut self, n: u32) -> Self {
        self.spec.major_cycles = n;
        self
    }
    pub fn output(mut self, url: &str) -> Self {
        self.spec.output = Some(url.to_string());
        self
    }
    pub fn no_output(mut self) -> Self {
        self.spec.output = None;
        self
    }
    pub fn image(mut self, image: &str) -> Self {
        self.spec.workers.image = Some(image.to_string());
        self
    }
    pub fn host_network(mut self, on: bool) -> Self {
        self.spec.workers.host_network = on;
        self
    }
    pub fn node_selector(mut self, k: &str, v: &str) -> Self {
        self.spec
            .workers
            .node_selector
            .insert(k.to_string(), v.to_string());
        self
    }
    pub fn toleration(mut self, t: Toleration) -> Self {
        self.spec.workers.tolerations.push(t);
        self
    }
    pub fn affinity(mut self, a: Affinity) -> Self {
        self.spec.workers.affinity = Some(a);
        self
    }
    pub fn resources(mut self, r: ResourceRequirements) -> Self {
        self.spec.workers.resources = Some(r);
        self
    }
    pub fn credentials_secret(mut self, name: &str) -> Self {
        self.spec.storage.credentials_secret = Some(name.to_string());
        self
    }
    pub fn otlp_endpoint(mut self, url: &str) -> Self {
        self.spec.telemetry.otlp_endpoint = Some(url.to_string());
        self
    }
    pub fn max_parallel(mut self, n: u32) -> Self {
        self.spec.parallelism.max_parallel = n;
        self
    }
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.spec.parallelism.max_attempts = n;
        self
    }
    pub fn threads_per_task(mut self, n: u32) -> Self {
        self.spec.parallelism.threads_per_task = n;
        self
    }
    pub fn worker_memory_mib(mut self, mib: u64) -> Self {
        self.spec.parallelism.worker_memory_mib = Some(mib);
        self
    }
    pub fn windows_per_shard(mut self, n: u32) -> Self {
        self.spec.parallelism.windows_per_shard = Some(n);
        self
    }

    pub fn status(mut self, s: ImagingJobStatus) -> Self {
        self.status = Some(s);
        self
    }
    /// A status of just this phase.
    pub fn phase(mut self, phase: JobPhase) -> Self {
        self.status
            .get_or_insert_with(ImagingJobStatus::default)
            .phase = phase;
        self
    }

    pub fn build(self) -> ImagingJob {
        let mut job = ImagingJob::new(&self.name, self.spec);
        let m = &mut job.metadata;
        m.namespace = self.namespace;
        m.uid = self.uid;
        m.generation = self.generation;
        m.resource_version = self.resource_version;
        m.labels = (!self.labels.is_empty()).then_some(self.labels);
        m.annotations = (!self.annotations.is_empty()).then_some(self.annotations);
        m.finalizers = (!self.finalizers.is_empty()).then_some(self.finalizers);
        m.deletion_timestamp = self.deletion_timestamp;
        job.status = self.status;
        job
    }

    fn simulate_mut(&mut self) -> &mut SimulateSpec {
        self.spec.input.visibilities = None;
        self.spec
            .input
            .simulate
            .get_or_insert_with(SimulateSpec::default)
    }
}

/// The plan of `job` (simulated input; output `spec.output`), or why it cannot be made.
pub fn try_plan_for(job: &ImagingJob) -> Result<Plan, PlanError> {
    let sim = job
        .spec
        .input
        .simulate
        .as_ref()
        .ok_or_else(|| PlanError::input("spec.input", "plan_for needs a simulated input"))?;
    let facts = InputFacts::from_simulation(sim)?;
    let output = job
        .spec
        .output
        .clone()
        .ok_or_else(|| PlanError::input("spec.output", "missing"))?;
    let visibilities = format!("{}/vis.zarr", output.trim_end_matches('/'));
    make_plan(
        &job.spec,
        &facts,
        &PlanOptions {
            job: job.metadata.name.clone().unwrap_or_default(),
            output,
            visibilities,
        },
    )
}

/// The plan of `job`; panics (a test bug) when it cannot be made.
pub fn plan_for(job: &ImagingJob) -> Plan {
    try_plan_for(job).expect("the test job plans")
}

/// Facts of a small observation (the input of [`small_spec`]), standing in for what a
/// survey of a MeasurementSet found.
pub fn small_facts() -> InputFacts {
    InputFacts::from_simulation(&SimulateSpec {
        rmax: 200.0,
        frequency_windows: 4,
        ntimes: 3,
        ..SimulateSpec::default()
    })
    .expect("facts of the small simulation")
}

/// Worker defaults of the tests: [`TEST_IMAGE`], otherwise [`WorkerDefaults::default`].
pub fn test_defaults() -> WorkerDefaults {
    WorkerDefaults {
        image: TEST_IMAGE.to_string(),
        ..WorkerDefaults::default()
    }
}
