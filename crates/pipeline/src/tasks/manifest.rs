//! The result manifest of a task (`tasks/<stage>/<index>.json`): its presence commits the
//! task; it records timings, bytes moved, peak RSS and the task's findings.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::plan::{Stage, TaskKind};

/// What a finished task reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskManifest {
    pub stage: String,
    pub index: u32,
    pub kind: TaskKind,
    pub cycle: u32,
    /// Unix time the task started and its wall time, seconds.
    pub started_unix: f64,
    pub seconds: f64,
    /// Seconds reading inputs, computing (gridding, FFT, deconvolution) and writing.
    pub read_seconds: f64,
    pub compute_seconds: f64,
    pub write_seconds: f64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Frequency windows processed.
    pub windows: u32,
    /// Visibilities processed.
    pub visibilities: u64,
    /// Peak resident set size of the worker process, bytes (0 if unknown).
    pub peak_rss_bytes: u64,
    pub pid: u32,
    /// Host (pod name on Kubernetes) that ran the task; empty in older manifests.
    #[serde(default)]
    pub host: String,
    /// Attempt number (1 = first run of this index).
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// Task-kind findings (e.g. a deconvolution's peaks and whether the job converged).
    #[serde(default)]
    pub result: serde_json::Map<String, serde_json::Value>,
    #[serde(skip)]
    t0: Option<Instant>,
}

impl TaskManifest {
    pub fn start(stage: &Stage, index: u32) -> Self {
        Self {
            stage: stage.name.clone(),
            index,
            kind: stage.kind,
            cycle: stage.cycle,
            started_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            seconds: 0.0,
            read_seconds: 0.0,
            compute_seconds: 0.0,
            write_seconds: 0.0,
            bytes_in: 0,
            bytes_out: 0,
            windows: 0,
            visibilities: 0,
            peak_rss_bytes: 0,
            pid: std::process::id(),
            host: host_name(),
            attempt: 1,
            result: Default::default(),
            t0: Some(Instant::now()),
        }
    }

    pub fn finish(&mut self) {
        if let Some(t0) = self.t0 {
            self.seconds = t0.elapsed().as_secs_f64();
        }
        self.peak_rss_bytes = peak_rss_bytes();
    }

    pub fn set(&mut self, key: &str, v: impl Into<serde_json::Value>) {
        self.result.insert(key.to_string(), v.into());
    }
}

fn first_attempt() -> u32 {
    1
}

/// This machine's (or pod's) name: `HOSTNAME`, else the kernel's hostname.
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Peak resident set size of this process (VmHWM from /proc/self/status), bytes.
pub fn peak_rss_bytes() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
