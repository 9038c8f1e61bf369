//! Operator configuration: flags and environment variables (namespace or cluster scope,
//! worker image, default worker resources and placement, leader election, server
//! address).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use clap::Parser;
use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};

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
    /// Phase-span budget of each worker process (`APERTURE_TRACE_PHASE_SPANS` of the
    /// pods, read by `aperture_telemetry::TelemetryConfig`); `None` leaves the worker's
    /// own default ([`aperture_telemetry::DEFAULT_PHASE_SPANS`]).
    pub trace_phase_spans: Option<u64>,
    /// Worker pods use the host network (and `ClusterFirstWithHostNet` DNS) even when
    /// the job does not ask for it (`spec.workers.hostNetwork: true` always does).
    pub host_network: bool,
    /// Node selector of worker pods whose job gives none (`spec.workers.nodeSelector`
    /// replaces it as a whole).
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of worker pods whose job gives none (`spec.workers.tolerations`
    /// replaces them as a whole).
    pub tolerations: Vec<Toleration>,
    /// Affinity of worker pods whose job gives none (`spec.workers.affinity` replaces it).
    pub affinity: Option<Affinity>,
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
            trace_phase_spans: None,
            host_network: false,
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            affinity: None,
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
    /// Phase-span budget of each worker pod (its `APERTURE_TRACE_PHASE_SPANS`; unset: the
    /// worker's default, 5000). Lower it for jobs of very many windows per task.
    #[arg(long, env = "APERTURE_WORKER_TRACE_PHASE_SPANS")]
    pub worker_trace_phase_spans: Option<u64>,
    /// Run every worker pod on the host network (`ClusterFirstWithHostNet` DNS), as
    /// `spec.workers.hostNetwork: true` does for one job.
    #[arg(long, env = "APERTURE_WORKER_HOST_NETWORK", default_value_t = false, action = clap::ArgAction::Set)]
    pub worker_host_network: bool,
    /// Node selector of worker pods as a JSON object, for jobs without
    /// `spec.workers.nodeSelector`.
    #[arg(long, env = "APERTURE_WORKER_NODE_SELECTOR")]
    pub worker_node_selector: Option<String>,
    /// Tolerations of worker pods as a JSON list of core/v1 Tolerations, for jobs
    /// without `spec.workers.tolerations`.
    #[arg(long, env = "APERTURE_WORKER_TOLERATIONS")]
    pub worker_tolerations: Option<String>,
    /// Affinity of worker pods as a JSON core/v1 Affinity, for jobs without
    /// `spec.workers.affinity`.
    #[arg(long, env = "APERTURE_WORKER_AFFINITY")]
    pub worker_affinity: Option<String>,
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
        let resources = json_flag(
            &self.worker_resources,
            "--worker-resources (APERTURE_WORKER_RESOURCES)",
            "a ResourceRequirements",
        )?;
        let node_selector = json_flag(
            &self.worker_node_selector,
            "--worker-node-selector (APERTURE_WORKER_NODE_SELECTOR)",
            "an object of string labels",
        )?;
        let tolerations = json_flag(
            &self.worker_tolerations,
            "--worker-tolerations (APERTURE_WORKER_TOLERATIONS)",
            "a list of Tolerations",
        )?;
        let affinity = json_flag(
            &self.worker_affinity,
            "--worker-affinity (APERTURE_WORKER_AFFINITY)",
            "an Affinity",
        )?;
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
            trace_phase_spans: self.worker_trace_phase_spans,
            host_network: self.worker_host_network,
            node_selector: node_selector.unwrap_or_default(),
            tolerations: tolerations.unwrap_or_default(),
            affinity,
            ..WorkerDefaults::default()
        })
    }

    /// `None` for cluster scope.
    pub fn watch_namespace(&self) -> Option<&str> {
        (!self.namespace.is_empty()).then_some(self.namespace.as_str())
    }
}

/// A flag holding JSON: `None` when unset or blank (`{}`, `[]` and `null` mean "none"
/// too, as the chart renders empty values), else the value, or an error naming the flag.
fn json_flag<T: serde::de::DeserializeOwned>(
    value: &Option<String>,
    flag: &str,
    what: &str,
) -> Result<Option<T>, String> {
    let Some(json) = value.as_deref().map(str::trim) else {
        return Ok(None);
    };
    if matches!(json, "" | "{}" | "[]" | "null") {
        return Ok(None);
    }
    serde_json::from_str(json)
        .map(Some)
        .map_err(|e| format!("{flag}: not {what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<WorkerDefaults, String> {
        let mut argv = vec!["aperture-operator"];
        argv.extend_from_slice(args);
        Args::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .worker_defaults()
    }

    #[test]
    fn config_worker_placement_and_span_budget_flags_become_defaults() {
        let d = parse(&[]).expect("no flags");
        assert_eq!(
            (
                d.trace_phase_spans,
                d.host_network,
                d.node_selector.is_empty(),
                d.tolerations.is_empty(),
                d.affinity.is_none()
            ),
            (None, false, true, true, true)
        );
        let d = parse(&[
            "--worker-trace-phase-spans=200",
            "--worker-host-network=true",
            r#"--worker-node-selector={"aperture.dev/worker-pool": "bare-metal"}"#,
            r#"--worker-tolerations=[{"key": "dedicated", "operator": "Equal", "value": "imaging", "effect": "NoSchedule"}]"#,
            r#"--worker-affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}}"#,
        ])
        .expect("valid flags");
        assert_eq!(d.trace_phase_spans, Some(200));
        assert!(d.host_network);
        assert_eq!(
            d.node_selector,
            BTreeMap::from([("aperture.dev/worker-pool".into(), "bare-metal".into())])
        );
        assert_eq!(d.tolerations.len(), 1);
        assert_eq!(d.tolerations[0].key.as_deref(), Some("dedicated"));
        assert_eq!(d.tolerations[0].effect.as_deref(), Some("NoSchedule"));
        let terms = d
            .affinity
            .and_then(|a| a.node_affinity)
            .and_then(|n| n.required_during_scheduling_ignored_during_execution)
            .map(|r| r.node_selector_terms.len());
        assert_eq!(terms, Some(1));
        // Empty JSON values (what the chart renders for {} and []) mean "none".
        let d = parse(&[
            "--worker-node-selector={}",
            "--worker-tolerations=[]",
            "--worker-affinity=null",
        ])
        .expect("empty values");
        assert!(d.node_selector.is_empty() && d.tolerations.is_empty() && d.affinity.is_none());
    }

    #[test]
    fn config_bad_worker_flags_are_refused_naming_the_flag() {
        for (flag, needle) in [
            (
                r#"--worker-node-selector={"pool": 3}"#,
                "--worker-node-selector",
            ),
            (
                r#"--worker-tolerations={"key": "x"}"#,
                "--worker-tolerations",
            ),
            (r#"--worker-affinity=[1]"#, "--worker-affinity"),
            (r#"--worker-resources={"limits": 4}"#, "--worker-resources"),
        ] {
            let e = parse(&[flag]).expect_err(flag);
            assert!(e.contains(needle), "{flag}: {e}");
        }
        for flag in [
            "--worker-trace-phase-spans=-1",
            "--worker-trace-phase-spans=many",
        ] {
            let e = parse(&[flag]).expect_err(flag);
            assert!(e.contains("--worker-trace-phase-spans"), "{flag}: {e}");
        }
        let e = parse(&["--worker-host-network=yes"]).expect_err("not a bool");
        assert!(e.contains("--worker-host-network"), "{e}");
    }
}
