//! Diagnostics every run leaves under `diagnostics/`: `timings.csv` (one row: the
//! columns of RASCIL's pipelines-timings CSV that apply, then one `time_stage:<name>`
//! column per stage), `stages.csv`, `tasks.csv` (per task: timings, bytes, peak RSS),
//! `trace.json` (the job's spans as OTLP JSON), `run.json` (state, for re-rendering) and
//! `report.html`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use aperture_telemetry::{SpanRecord, to_otlp_json};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::trace::{assemble, load_stored_spans, task_seconds};
use super::{RunState, RunView, report};
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

/// What a run's driver knows when it writes the diagnostics.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub state: RunState,
    pub wall_seconds: f64,
    pub nworkers: usize,
    /// The driver's own spans (planning, the run loop), already in the job's trace.
    pub own_spans: Vec<SpanRecord>,
    /// `service.name` for the spans the driver derives.
    pub service: String,
}

/// `diagnostics/run.json`: how the run stood when the diagnostics were last written.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    #[serde(flatten)]
    pub state: RunState,
    pub wall_seconds: f64,
    pub nworkers: usize,
}

pub const RUN_KEY: &str = "diagnostics/run.json";

/// What [`write_run_diagnostics`] produced.
#[derive(Debug, Clone)]
pub struct Written {
    pub figures: RunFigures,
    /// The whole trace as written to trace.json (for export by the driver).
    pub spans: Vec<SpanRecord>,
}

/// Writes every diagnostics file of a run from its manifests, the spans stored under
/// `diagnostics/spans/` and the driver's `run`.
pub async fn write_run_diagnostics(
    plan: &Plan,
    out: &Store,
    manifests: &[TaskManifest],
    run: RunSummary,
) -> Result<Written, StorageError> {
    let mut ms: Vec<TaskManifest> = manifests.to_vec();
    ms.sort_by(|a, b| a.started_unix.total_cmp(&b.started_unix));
    let mut stored = run.own_spans.clone();
    stored.extend(load_stored_spans(out).await?);
    let spans = assemble(plan, &ms, stored, &run.state, &run.service);
    let secs = task_seconds(&spans);
    let seconds_of = |m: &TaskManifest| {
        *secs
            .get(&(m.stage.clone(), m.index, m.attempt))
            .unwrap_or(&m.seconds)
    };
    let figures = figures(&ms, &run, &seconds_of);
    out.put(
        "diagnostics/timings.csv",
        Bytes::from(timings_csv(plan, &ms, &figures, &seconds_of)),
    )
    .await?;
    out.put(
        "diagnostics/stages.csv",
        Bytes::from(stages_csv(plan, &ms, &seconds_of)),
    )
    .await?;
    out.put(
        "diagnostics/tasks.csv",
        Bytes::from(tasks_csv(&ms, &seconds_of)),
    )
    .await?;
    out.put_json("diagnostics/trace.json", &to_otlp_json(&spans))
        .await?;
    out.put_json(
        RUN_KEY,
        &RunRecord {
            state: run.state.clone(),
            wall_seconds: run.wall_seconds,
            nworkers: run.nworkers,
        },
    )
    .await?;
    let view = RunView {
        plan: plan.clone(),
        manifests: ms,
        spans: spans.clone(),
        state: run.state,
        generated_unix: aperture_telemetry::now_unix_nano() as f64 * 1e-9,
    };
    out.put(
        "diagnostics/report.html",
        Bytes::from(report::render(&view)),
    )
    .await?;
    Ok(Written { figures, spans })
}

fn figures(
    ms: &[TaskManifest],
    run: &RunSummary,
    seconds_of: &dyn Fn(&TaskManifest) -> f64,
) -> RunFigures {
    // Sums fold from +0.0: `Sum` of no f64 is -0.0, which the CSVs would print as "-0.000".
    let task_seconds: f64 = ms.iter().map(seconds_of).fold(0.0, |a, b| a + b);
    let wall = run.wall_seconds;
    let overhead = if wall > 0.0 {
        ((wall - task_seconds / run.nworkers.max(1) as f64) / wall).max(0.0)
    } else {
        0.0
    };
    RunFigures {
        wall_seconds: wall,
        task_seconds,
        nworkers: run.nworkers,
        overhead_fraction: overhead,
        peak_rss_bytes: ms.iter().map(|m| m.peak_rss_bytes).max().unwrap_or(0),
        tasks: ms.len(),
    }
}

/// The columns of `timings.csv` before the per-stage ones (docs/observability.md).
pub const TIMINGS_COLUMNS: &str = "context,nworkers,nfreqwin,ntimes,nbaselines,rmax,npixel,cellsize_rad,epsilon,major_cycles,graph_size,\
     time_simulate,time_weights,time_invert,time_residual,time_reduce,time_deconvolve,time_restore,time_predict,\
     time_ical,time_overall,task_seconds,overhead_fraction,peak_rss_bytes";

fn timings_csv(
    plan: &Plan,
    ms: &[TaskManifest],
    fig: &RunFigures,
    seconds_of: &dyn Fn(&TaskManifest) -> f64,
) -> String {
    let kind = |k: TaskKind| -> f64 {
        ms.iter()
            .filter(|m| m.kind == k)
            .map(seconds_of)
            .fold(0.0, |a, b| a + b)
    };
    let ical = kind(TaskKind::Residual)
        + kind(TaskKind::Deconvolve)
        + ms.iter()
            .filter(|m| m.kind == TaskKind::Reduce && m.cycle > 0)
            .map(seconds_of)
            .sum::<f64>();
    let spec = &plan.spec;
    let rmax = spec.input.simulate.as_ref().map_or(f64::NAN, |s| s.rmax);
    let mut head = TIMINGS_COLUMNS.to_string();
    for st in &plan.stages {
        let _ = write!(head, ",time_stage:{}", st.name);
    }
    let mut row = format!(
        "{},{},{},{},{},{},{},{:e},{:e},{},{},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{:.4},{}",
        spec.pipeline.name(),
        fig.nworkers,
        plan.facts.nwindows,
        plan.facts.ntimes,
        plan.facts.nbaselines,
        rmax,
        plan.image.npix,
        plan.image.cell_rad,
        spec.image.epsilon,
        plan.major_cycles(),
        plan.total_tasks(),
        kind(TaskKind::Simulate),
        kind(TaskKind::Weights),
        kind(TaskKind::Invert),
        kind(TaskKind::Residual),
        kind(TaskKind::Reduce),
        kind(TaskKind::Deconvolve),
        kind(TaskKind::Restore),
        kind(TaskKind::Predict),
        ical,
        fig.wall_seconds,
        fig.task_seconds,
        fig.overhead_fraction,
        fig.peak_rss_bytes
    );
    for st in &plan.stages {
        let t: f64 = ms
            .iter()
            .filter(|m| m.stage == st.name)
            .map(seconds_of)
            .fold(0.0, |a, b| a + b);
        let _ = write!(row, ",{t:.3}");
    }
    format!("{head}\n{row}\n")
}

fn stages_csv(
    plan: &Plan,
    ms: &[TaskManifest],
    seconds_of: &dyn Fn(&TaskManifest) -> f64,
) -> String {
    let mut s = String::from(
        "stage,kind,cycle,tasks,done,seconds_total,seconds_max,bytes_in,bytes_out,peak_rss_bytes\n",
    );
    let mut by_stage: BTreeMap<&str, Vec<&TaskManifest>> = BTreeMap::new();
    for m in ms {
        by_stage.entry(m.stage.as_str()).or_default().push(m);
    }
    for st in &plan.stages {
        let v = by_stage.get(st.name.as_str()).cloned().unwrap_or_default();
        let _ = writeln!(
            s,
            "{},{},{},{},{},{:.3},{:.3},{},{},{}",
            st.name,
            st.kind.name(),
            st.cycle,
            st.tasks,
            v.len(),
            v.iter().map(|m| seconds_of(m)).fold(0.0, |a, b| a + b),
            v.iter().map(|m| seconds_of(m)).fold(0.0, f64::max),
            v.iter().map(|m| m.bytes_in).sum::<u64>(),
            v.iter().map(|m| m.bytes_out).sum::<u64>(),
            v.iter().map(|m| m.peak_rss_bytes).max().unwrap_or(0)
        );
    }
    s
}

fn tasks_csv(ms: &[TaskManifest], seconds_of: &dyn Fn(&TaskManifest) -> f64) -> String {
    let mut c = String::from(
        "stage,index,attempt,kind,cycle,started_unix,seconds,read_seconds,compute_seconds,write_seconds,bytes_in,bytes_out,windows,visibilities,peak_rss_bytes,host,pid\n",
    );
    for m in ms {
        let _ = writeln!(
            c,
            "{},{},{},{},{},{:.6},{:.4},{:.4},{:.4},{:.4},{},{},{},{},{},{},{}",
            m.stage,
            m.index,
            m.attempt,
            m.kind.name(),
            m.cycle,
            m.started_unix,
            seconds_of(m),
            m.read_seconds,
            m.compute_seconds,
            m.write_seconds,
            m.bytes_in,
            m.bytes_out,
            m.windows,
            m.visibilities,
            m.peak_rss_bytes,
            m.host.replace(',', " "),
            m.pid
        );
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_json_keeps_the_state_and_its_reason() {
        for state in [
            RunState::Succeeded,
            RunState::Running,
            RunState::Failed {
                reason: "task invert/3: corrupt chunk".into(),
            },
        ] {
            let r = RunRecord {
                state: state.clone(),
                wall_seconds: 1.5,
                nworkers: 2,
            };
            let v = serde_json::to_value(&r).unwrap();
            let back: RunRecord = serde_json::from_value(v.clone()).unwrap();
            assert_eq!(back.state, state, "{v}");
        }
        let v = serde_json::to_value(RunRecord {
            state: RunState::Failed { reason: "x".into() },
            wall_seconds: 0.0,
            nworkers: 1,
        })
        .unwrap();
        assert_eq!(
            (v["state"].as_str(), v["reason"].as_str()),
            (Some("failed"), Some("x"))
        );
    }
}
