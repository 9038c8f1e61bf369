//! Prometheus metrics of the operator (prometheus-client), encoded as OpenMetrics
//! text for the `/metrics` endpoint.
//!
//! Families, all prefixed `aperture_operator_`:
//! - `reconciles_total`: reconciliations run;
//! - `reconcile_errors_total{kind}`: failed reconciliations by error kind;
//! - `reconcile_duration_seconds`: reconcile latency histogram;
//! - `jobs{phase}`: ImagingJobs currently in each phase;
//! - `tasks_total{outcome}`: worker tasks by outcome (`succeeded`, `failed`, `retried`);
//! - `job_task_seconds{job, kind}`: task-seconds of a finished job by stage kind, from
//!   its result manifests;
//! - `job_bytes{job, direction}`: bytes its tasks read (`in`) and wrote (`out`);
//! - `job_tasks{job}`: tasks it committed.
//!
//! The per-job series are set when a job finishes and removed when it is deleted.
//!
//! Names follow the Prometheus naming conventions
//! (<https://prometheus.io/docs/practices/naming/>) and the OpenMetrics text format
//! (<https://github.com/prometheus/OpenMetrics/blob/main/specification/OpenMetrics.md>).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use aperture_pipeline::spec::JobPhase;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Prefix of every metric name.
pub const PREFIX: &str = "aperture_operator";

/// Upper bounds (seconds) of the reconcile latency buckets: a reconcile is a few API
/// calls and storage reads, so milliseconds to tens of seconds.
pub const RECONCILE_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobKindLabel {
    job: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobDirectionLabel {
    job: String,
    direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabel {
    job: String,
}

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// The operator's metric registry and families.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    reconcile_errors: Family<KindLabel, Counter>,
    reconcile_duration: Histogram,
    jobs: Family<PhaseLabel, Gauge>,
    tasks: Family<OutcomeLabel, Counter>,
    job_task_seconds: Family<JobKindLabel, FloatGauge>,
    job_bytes: Family<JobDirectionLabel, Gauge>,
    job_tasks: Family<JobLabel, Gauge>,
    /// Current phase of each job we count, by job key (`namespace/name`).
    job_phases: Mutex<HashMap<String, String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Register every family under the prefix [`PREFIX`]. Every job phase and task
    /// outcome starts at 0 so that dashboards see the series before the first event.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let reconciles = Counter::default();
        let reconcile_errors = Family::<KindLabel, Counter>::default();
        let reconcile_duration = Histogram::new(RECONCILE_BUCKETS);
        let jobs = Family::<PhaseLabel, Gauge>::default();
        let tasks = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciliations of ImagingJobs run",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciliations that failed, by error kind",
            reconcile_errors.clone(),
        );
        registry.register_with_unit(
            "reconcile_duration",
            "Time taken by one reconciliation",
            Unit::Seconds,
            reconcile_duration.clone(),
        );
        registry.register("jobs", "ImagingJobs currently in each phase", jobs.clone());
        registry.register("tasks", "Worker tasks by outcome", tasks.clone());
        let job_task_seconds = Family::<JobKindLabel, FloatGauge>::default();
        let job_bytes = Family::<JobDirectionLabel, Gauge>::default();
        let job_tasks = Family::<JobLabel, Gauge>::default();
        registry.register_with_unit(
            "job_task",
            "Task time of a finished job by stage kind, from its result manifests",
            Unit::Seconds,
            job_task_seconds.clone(),
        );
        registry.register_with_unit(
            "job",
            "Bytes a finished job's tasks read (in) and wrote (out)",
            Unit::Bytes,
            job_bytes.clone(),
        );
        registry.register(
            "job_tasks",
            "Tasks a finished job committed",
            job_tasks.clone(),
        );
        for phase in [
            JobPhase::Pending,
            JobPhase::Planning,
            JobPhase::Running,
            JobPhase::Succeeded,
            JobPhase::Failed,
        ] {
            let _ = jobs.get_or_create(&PhaseLabel {
                phase: phase.name().to_owned(),
            });
        }
        for outcome in ["succeeded", "failed", "retried"] {
            let _ = tasks.get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            });
        }
        Self {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            jobs,
            tasks,
            job_task_seconds,
            job_bytes,
            job_tasks,
            job_phases: Mutex::new(HashMap::new()),
        }
    }

    /// Start timing a reconciliation; the latency is recorded when the timer is
    /// finished or dropped (so early returns and `?` are measured too).
    pub fn reconcile_timer(&self) -> ReconcileTimer {
        ReconcileTimer {
            histogram: self.reconcile_duration.clone(),
            start: Instant::now(),
        }
    }

    /// Count one reconciliation (`aperture_operator_reconciles_total`).
    pub fn reconciled(&self) {
        self.reconciles.inc();
    }

    /// Count one failed reconciliation of error `kind`
    /// (`aperture_operator_reconcile_errors_total{kind}`).
    pub fn reconcile_failed(&self, kind: &str) {
        self.reconcile_errors
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Record that job `job_key` is now in `phase`: the job leaves the gauge of its
    /// previous phase (if any) and joins that of `phase`
    /// (`aperture_operator_jobs{phase}`). Setting the same phase again changes nothing.
    pub fn set_job_phase(&self, job_key: &str, phase: &str) {
        let mut phases = self.job_phases.lock().unwrap_or_else(|e| e.into_inner());
        let previous = phases.insert(job_key.to_owned(), phase.to_owned());
        if previous.as_deref() == Some(phase) {
            return;
        }
        if let Some(previous) = previous {
            self.jobs
                .get_or_create(&PhaseLabel { phase: previous })
                .dec();
        }
        self.jobs
            .get_or_create(&PhaseLabel {
                phase: phase.to_owned(),
            })
            .inc();
    }

    /// The per-job figures of a finished job from its result manifests.
    pub fn record_job(&self, job_key: &str, manifests: &[aperture_pipeline::tasks::TaskManifest]) {
        let mut by_kind: HashMap<&str, f64> = HashMap::new();
        let (mut bytes_in, mut bytes_out) = (0u64, 0u64);
        for m in manifests {
            *by_kind.entry(m.kind.name()).or_default() += m.seconds;
            bytes_in += m.bytes_in;
            bytes_out += m.bytes_out;
        }
        for (kind, secs) in by_kind {
            self.job_task_seconds
                .get_or_create(&JobKindLabel {
                    job: job_key.to_owned(),
                    kind: kind.to_owned(),
                })
                .set(secs);
        }
        for (direction, b) in [("in", bytes_in), ("out", bytes_out)] {
            self.job_bytes
                .get_or_create(&JobDirectionLabel {
                    job: job_key.to_owned(),
                    direction: direction.to_owned(),
                })
                .set(i64::try_from(b).unwrap_or(i64::MAX));
        }
        self.job_tasks
            .get_or_create(&JobLabel {
                job: job_key.to_owned(),
            })
            .set(manifests.len() as i64);
    }

    /// Stop counting job `job_key` (it was deleted). Unknown keys are ignored.
    pub fn forget_job(&self, job_key: &str) {
        for kind in aperture_pipeline::plan::TaskKind::ALL {
            self.job_task_seconds.remove(&JobKindLabel {
                job: job_key.to_owned(),
                kind: kind.name().to_owned(),
            });
        }
        for direction in ["in", "out"] {
            self.job_bytes.remove(&JobDirectionLabel {
                job: job_key.to_owned(),
                direction: direction.to_owned(),
            });
        }
        self.job_tasks.remove(&JobLabel {
            job: job_key.to_owned(),
        });
        let mut phases = self.job_phases.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(previous) = phases.remove(job_key) {
            self.jobs
                .get_or_create(&PhaseLabel { phase: previous })
                .dec();
        }
    }

    /// Count `n` worker tasks with `outcome` (`succeeded`, `failed` or `retried`;
    /// `aperture_operator_tasks_total{outcome}`).
    pub fn tasks(&self, outcome: &str, n: u64) {
        self.tasks
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            })
            .inc_by(n);
    }

    /// The registry in the OpenMetrics text format (ends with `# EOF`).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail; an error here would be a bug in an
        // encoder, and a partial page is still the best answer for a scrape.
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(%error, "encoding the metrics failed");
        }
        text
    }
}

/// Times one reconciliation; records the elapsed seconds in
/// `aperture_operator_reconcile_duration_seconds` when finished or dropped.
#[derive(Debug)]
pub struct ReconcileTimer {
    histogram: Histogram,
    start: Instant,
}

impl ReconcileTimer {
    /// Stop timing and record the latency.
    pub fn finish(self) {
        drop(self);
    }
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}
