//! Diagnostics every run leaves under `diagnostics/`: `timings.csv` (one row with the
//! columns of RASCIL's pipelines-timings CSV that apply), `stages.csv`, `tasks.csv`
//! (per task: timings, bytes, peak RSS) and `trace.json` (Chrome trace-event format:
//! one row per worker process, one bar per task; open in chrome://tracing or Perfetto).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bytes::Bytes;
use serde_json::json;

use crate::plan::{Plan, TaskKind};
use crate::storage::{StorageError, Store};
use crate::tasks::TaskManifest;

/// Whole-run figures.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFigures {
    pub wall_seconds: f64,
    pub task_seconds: f64,
    pub nworkers: usize,
    /// wall − Σ task time / workers, as a fraction of wall.
    pub overhead_fraction: f64,
    pub peak_rss_bytes: u64,
    pub tasks: usize,
}

fn kind_seconds(ms: &[TaskManifest], kinds: &[TaskKind]) -> f64 {
    ms.iter()
        .filter(|m| kinds.contains(&m.kind))
        .map(|m| m.seconds)
        .sum()
}

/// Writes the diagnostics of a finished run and returns its figures.
pub async fn write_diagnostics(
    plan: &Plan,
    out: &Store,
    manifests: &[TaskManifest],
    wall_seconds: f64,
    nworkers: usize,
) -> Result<RunFigures, StorageError> {
    let mut ms: Vec<TaskManifest> = manifests.to_vec();
    ms.sort_by(|a, b| a.started_unix.total_cmp(&b.started_unix));
    let task_seconds: f64 = ms.iter().map(|m| m.seconds).sum();
    let overhead = if wall_seconds > 0.0 {
        ((wall_seconds - task_seconds / nworkers.max(1) as f64) / wall_seconds).max(0.0)
    } else {
        0.0
    };
    let peak = ms.iter().map(|m| m.peak_rss_bytes).max().unwrap_or(0);
    let spec = &plan.spec;
    let rmax = spec.input.simulate.as_ref().map_or(f64::NAN, |s| s.rmax);
    let mut t = String::new();
    let _ = writeln!(
        t,
        "context,nworkers,nfreqwin,ntimes,nbaselines,rmax,npixel,cellsize_rad,epsilon,major_cycles,graph_size,\
         time_simulate,time_weights,time_invert,time_residual,time_reduce,time_deconvolve,time_restore,\
         time_ical,time_overall,task_seconds,overhead_fraction,peak_rss_bytes"
    );
    let ical = kind_seconds(&ms, &[TaskKind::Residual, TaskKind::Deconvolve])
        + ms.iter()
            .filter(|m| m.kind == TaskKind::Reduce && m.cycle > 0)
            .map(|m| m.seconds)
            .sum::<f64>();
    let _ = writeln!(
        t,
        "{},{},{},{},{},{},{},{:e},{:e},{},{},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{:.4},{}",
        spec.pipeline.name(),
        nworkers,
        plan.facts.nwindows,
        plan.facts.ntimes,
        plan.facts.nbaselines,
        rmax,
        plan.image.npix,
        plan.image.cell_rad,
        spec.image.epsilon,
        plan.major_cycles(),
        plan.total_tasks(),
        kind_seconds(&ms, &[TaskKind::Simulate]),
        kind_seconds(&ms, &[TaskKind::Weights]),
        kind_seconds(&ms, &[TaskKind::Invert]),
        kind_seconds(&ms, &[TaskKind::Residual]),
        kind_seconds(&ms, &[TaskKind::Reduce]),
        kind_seconds(&ms, &[TaskKind::Deconvolve]),
        kind_seconds(&ms, &[TaskKind::Restore]),
        ical,
        wall_seconds,
        task_seconds,
        overhead,
        peak
    );
    out.put("diagnostics/timings.csv", Bytes::from(t)).await?;

    let mut s =
        String::from("stage,kind,cycle,tasks,done,seconds_total,seconds_max,peak_rss_bytes\n");
    let mut by_stage: BTreeMap<&str, Vec<&TaskManifest>> = BTreeMap::new();
    for m in &ms {
        by_stage.entry(m.stage.as_str()).or_default().push(m);
    }
    for st in &plan.stages {
        let v = by_stage.get(st.name.as_str()).cloned().unwrap_or_default();
        let _ = writeln!(
            s,
            "{},{:?},{},{},{},{:.3},{:.3},{}",
            st.name,
            st.kind,
            st.cycle,
            st.tasks,
            v.len(),
            v.iter().map(|m| m.seconds).sum::<f64>(),
            v.iter().map(|m| m.seconds).fold(0.0, f64::max),
            v.iter().map(|m| m.peak_rss_bytes).max().unwrap_or(0)
        );
    }
    out.put("diagnostics/stages.csv", Bytes::from(s)).await?;

    let mut c = String::from(
        "stage,index,kind,cycle,started_unix,seconds,read_seconds,compute_seconds,write_seconds,bytes_in,bytes_out,windows,visibilities,peak_rss_bytes,pid\n",
    );
    for m in &ms {
        let _ = writeln!(
            c,
            "{},{},{:?},{},{:.6},{:.4},{:.4},{:.4},{:.4},{},{},{},{},{},{}",
            m.stage,
            m.index,
            m.kind,
            m.cycle,
            m.started_unix,
            m.seconds,
            m.read_seconds,
            m.compute_seconds,
            m.write_seconds,
            m.bytes_in,
            m.bytes_out,
            m.windows,
            m.visibilities,
            m.peak_rss_bytes,
            m.pid
        );
    }
    out.put("diagnostics/tasks.csv", Bytes::from(c)).await?;

    // Trace: lanes are worker slots (tasks that do not overlap share a lane).
    let t0 = ms.first().map_or(0.0, |m| m.started_unix);
    let mut lanes: Vec<f64> = Vec::new();
    let mut events = Vec::new();
    for m in &ms {
        let start = m.started_unix - t0;
        let lane = match lanes.iter().position(|&end| end <= start + 1e-6) {
            Some(l) => l,
            None => {
                lanes.push(0.0);
                lanes.len() - 1
            }
        };
        lanes[lane] = start + m.seconds;
        events.push(json!({
            "name": format!("{}/{}", m.stage, m.index), "cat": format!("{:?}", m.kind), "ph": "X",
            "ts": start * 1e6, "dur": m.seconds * 1e6, "pid": 1, "tid": lane,
            "args": {"read_s": m.read_seconds, "compute_s": m.compute_seconds, "write_s": m.write_seconds,
                     "bytes_in": m.bytes_in, "bytes_out": m.bytes_out, "peak_rss": m.peak_rss_bytes, "worker_pid": m.pid}
        }));
    }
    let trace =
        json!({"traceEvents": events, "displayTimeUnit": "ms", "otherData": {"job": plan.job}});
    out.put_json("diagnostics/trace.json", &trace).await?;
    Ok(RunFigures {
        wall_seconds,
        task_seconds,
        nworkers,
        overhead_fraction: overhead,
        peak_rss_bytes: peak,
        tasks: ms.len(),
    })
}
