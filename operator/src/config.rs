//! Operator configuration: flags and environment variables (namespace or cluster scope,
//! worker image, default worker resources, leader election, server address).

use std::net::SocketAddr;

use clap::Parser;
use k8s_openapi::api::core::v1::ResourceRequirements;

/// What every stage Job gets unless the ImagingJob overrides it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerDefaults {
    /// Worker container image (`spec.workers.image` overrides it).
    pub image: String,
    /// `Always`, `IfNotPresent` or `Never`; `None` leaves Kubernetes' default.
    pub image_pull_policy: Option<String>,
    /// Image pull secrets for the worker pods.
    pub image_pull_secrets: Vec<String>,
    /// The worker program; the pod runs `command + ["--plan", <output>, "--stage", <stage>]`
    /// and takes its task index from `JOB_COMPLETION_INDEX`.
    pub command: Vec<String>,
    /// Resources when neither the spec nor the planner's estimate gives them.
    pub resources: Option<ResourceRequirements>,
    /// Seconds a finished stage Job is kept before Kubernetes deletes it.
    pub ttl_seconds_after_finished: i32,
    /// Headroom over the planner's memory estimate for the memory request/limit
    /// (1.5 = 50 % more than the estimate).
    pub memory_headroom: f64,
    /// Floor of the memory limit sized from the estimate, MiB (the runtime itself).
    pub min_memory_mib: u64,
    /// CPU request of a worker (Kubernetes quantity) when the spec gives none.
    pub cpu_request: String,
    /// Service account of the worker pods (no token is mounted).
    pub service_account: Option<String>,
    /// OTLP endpoint of worker pods whose job sets no `spec.telemetry.otlpEndpoint`
    /// (the operator's own `OTEL_EXPORTER_OTLP_ENDPOINT`, the chart's
    /// `telemetry.otlpEndpoint`).
    pub otlp_endpoint: Option<String>,
}

impl Default for WorkerDefaults {
    fn default() -> Self {
        Self {
            image: "aperture-worker:latest".into(),
            image_pull_policy: None,
            image_pull_secrets: Vec::new(),
            command: vec!["aperture-worker".into()],
            resources: None,
            ttl_seconds_after_finished: 3600,
            memory_headroom: 1.5,
            min_memory_mib: 256,
            cpu_request: "1".into(),
            service_account: None,
            otlp_endpoint: None,
        }
    }
}

/// Command line and environment of `aperture-operator`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "aperture-operator",
    version,
    about = "Reconciles ImagingJobs into Indexed batch/v1 Jobs"
)]
pub struct Args {
    /// Watch only this namespace (empty: every namespace, cluster scope).
    #[arg(long, env = "APERTURE_NAMESPACE", default_value = "")]
    pub namespace: String,
    /// Worker container image.
    #[arg(
        long,
        env = "APERTURE_WORKER_IMAGE",
        default_value = "aperture-worker:latest"
    )]
    pub worker_image: String,
    /// Worker image pull policy (Always, IfNotPresent, Never).
    #[arg(long, env = "APERTURE_WORKER_IMAGE_PULL_POLICY")]
    pub worker_image_pull_policy: Option<String>,
    /// Comma-separated image pull secrets for worker pods.
    #[arg(
        long,
        env = "APERTURE_WORKER_IMAGE_PULL_SECRETS",
        value_delimiter = ','
    )]
    pub worker_image_pull_secrets: Vec<String>,
    /// Default worker resources as JSON (a core/v1 ResourceRequirements), used when the
    /// job gives none and the planner's estimate does not apply.
    #[arg(long, env = "APERTURE_WORKER_RESOURCES")]
    pub worker_resources: Option<String>,
    /// Default CPU request of a worker pod.
    #[arg(long, env = "APERTURE_WORKER_CPU", default_value = "1")]
    pub worker_cpu: String,
    /// Service account of worker pods (its token is never mounted).
    #[arg(long, env = "APERTURE_WORKER_SERVICE_ACCOUNT")]
    pub worker_service_account: Option<String>,
    /// OTLP endpoint given to worker pods whose ImagingJob names none (default: the
    /// operator's own collector).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub worker_otlp_endpoint: Option<String>,
    /// Seconds finished stage Jobs are kept.
    #[arg(long, env = "APERTURE_JOB_TTL_SECONDS", default_value_t = 3600)]
    pub job_ttl_seconds: i32,
    /// Address of the /metrics, /healthz and /readyz server.
    #[arg(long, env = "APERTURE_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Take part in leader election on a coordination.k8s.io Lease (off: act alone).
    #[arg(long, env = "APERTURE_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Namespace of the Lease (default: the namespace in APERTURE_POD_NAMESPACE, else
    /// `default`).
    #[arg(long, env = "APERTURE_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(long, env = "APERTURE_LEASE_NAME", default_value = "aperture-operator")]
    pub lease_name: String,
    /// This replica's identity in the Lease (default: the pod name from HOSTNAME).
    #[arg(long, env = "APERTURE_POD_NAME")]
    pub identity: Option<String>,
}

impl Args {
    /// The worker defaults these arguments describe.
    pub fn worker_defaults(&self) -> Result<WorkerDefaults, String> {
        let resources = match &self.worker_resources {
            Some(json) => Some(serde_json::from_str(json).map_err(|e| {
                format!("--worker-resources (APERTURE_WORKER_RESOURCES): not a ResourceRequirements: {e}")
            })?),
            None => None,
        };
        Ok(WorkerDefaults {
            image: self.worker_image.clone(),
            image_pull_policy: self.worker_image_pull_policy.clone(),
            image_pull_secrets: self.worker_image_pull_secrets.clone(),
            resources,
            ttl_seconds_after_finished: self.job_ttl_seconds,
            cpu_request: self.worker_cpu.clone(),
            service_account: self.worker_service_account.clone(),
            otlp_endpoint: self
                .worker_otlp_endpoint
                .clone()
                .filter(|e| !e.trim().is_empty()),
            ..WorkerDefaults::default()
        })
    }

    /// `None` for cluster scope.
    pub fn watch_namespace(&self) -> Option<&str> {
        (!self.namespace.is_empty()).then_some(self.namespace.as_str())
    }
}
