//! The job's trace as stored: the spans workers wrote under `diagnostics/spans/`, plus
//! the job and stage spans (and, for tasks whose worker spans were lost, task spans)
//! derived from the plan and the task manifests, with the fixed ids every process
//! agrees on (`aperture_telemetry::span_id_for`). One trace per ImagingJob:
//! job → stage → task → phases.

use std::collections::{BTreeMap, HashSet};

use aperture_telemetry::{
    AttrValue, JOB_SPAN, STATUS_ERROR, SpanRecord, from_otlp_json, now_unix_nano, span_id_for,
    trace_id_for,
};

use super::RunState;
use crate::plan::Plan;
use crate::storage::{StorageError, Store};
use crate::tasks::{SPANS_PREFIX, TaskManifest};

/// Reads every stored span document; an unreadable one is skipped with a warning.
pub async fn load_stored_spans(out: &Store) -> Result<Vec<SpanRecord>, StorageError> {
    let mut spans = Vec::new();
    for key in out.list(SPANS_PREFIX).await? {
        if !key.ends_with(".json") {
            continue;
        }
        let doc: serde_json::Value = match out.get_json(&key).await {
            Ok(d) => d,
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                tracing::warn!("skipping span document {}: {e}", out.key_url(&key));
                continue;
            }
        };
        match from_otlp_json(&doc) {
            Ok(s) => spans.extend(s),
            Err(e) => tracing::warn!("skipping span document {}: {e}", out.key_url(&key)),
        }
    }
    Ok(spans)
}

fn nanos(unix_seconds: f64) -> u64 {
    (unix_seconds.max(0.0) * 1e9) as u64
}

fn str_attr<'a>(s: &'a SpanRecord, key: &str) -> Option<&'a str> {
    s.attr(key).and_then(AttrValue::as_str)
}

fn int_attr(s: &SpanRecord, key: &str) -> Option<i64> {
    match s.attr(key) {
        Some(AttrValue::Int(i)) => Some(*i),
        _ => None,
    }
}

/// (stage, index, attempt) of a worker's `task` span.
pub fn task_of(s: &SpanRecord) -> Option<(String, u32, u32)> {
    if s.name != "task" {
        return None;
    }
    Some((
        str_attr(s, "stage")?.to_string(),
        u32::try_from(int_attr(s, "shard")?).ok()?,
        int_attr(s, "attempt")
            .and_then(|a| u32::try_from(a).ok())
            .unwrap_or(1),
    ))
}

/// The trace of the run: `stored` spans (workers' and the driver's own), completed
/// with task spans for manifests that have none, stage spans and the job span, all in
/// the plan's trace. Duplicates (same span id) are kept once.
pub fn assemble(
    plan: &Plan,
    manifests: &[TaskManifest],
    stored: Vec<SpanRecord>,
    state: &RunState,
    service: &str,
) -> Vec<SpanRecord> {
    let trace = trace_id_for(&plan.trace_key());
    let trace_hex = trace.to_string();
    let job_id = span_id_for(trace, JOB_SPAN).to_string();
    let mut seen = HashSet::new();
    let mut spans: Vec<SpanRecord> = stored
        .into_iter()
        .filter(|s| s.trace_id == trace_hex && seen.insert(s.span_id.clone()))
        .collect();
    let have_task: HashSet<(String, u32, u32)> = spans.iter().filter_map(task_of).collect();
    let record = |name: &str, id: String, parent: String, t0: u64, t1: u64| SpanRecord {
        trace_id: trace_hex.clone(),
        span_id: id,
        parent_span_id: parent,
        name: name.to_string(),
        start_unix_nano: t0,
        end_unix_nano: t1.max(t0),
        attributes: BTreeMap::new(),
        status_code: 0,
        status_message: String::new(),
        service: service.to_string(),
    };
    // Task spans the workers' own records lack (lost, or an older worker).
    for m in manifests {
        if have_task.contains(&(m.stage.clone(), m.index, m.attempt)) {
            continue;
        }
        let stage_id = span_id_for(trace, &m.stage).to_string();
        let id = span_id_for(trace, &format!("{}/{}/{}", m.stage, m.index, m.attempt)).to_string();
        let t0 = nanos(m.started_unix);
        let mut s = record("task", id, stage_id, t0, t0 + nanos(m.seconds));
        let a = &mut s.attributes;
        a.insert("job".into(), plan.job.as_str().into());
        a.insert("stage".into(), m.stage.as_str().into());
        a.insert("shard".into(), m.index.into());
        a.insert("attempt".into(), m.attempt.into());
        a.insert("kind".into(), m.kind.name().into());
        a.insert("cycle".into(), m.cycle.into());
        a.insert("windows".into(), m.windows.into());
        a.insert("visibilities".into(), m.visibilities.into());
        a.insert("bytes_read".into(), m.bytes_in.into());
        a.insert("bytes_written".into(), m.bytes_out.into());
        a.insert("peak_rss_bytes".into(), m.peak_rss_bytes.into());
        a.insert("host".into(), m.host.as_str().into());
        a.insert("exit_code".into(), 0i64.into());
        a.insert("synthesized".into(), true.into());
        spans.push(s);
    }
    // Stage spans: first task start to last task end.
    let mut job_t0 = u64::MAX;
    let mut job_t1 = 0;
    for s in &spans {
        job_t0 = job_t0.min(s.start_unix_nano);
        job_t1 = job_t1.max(s.end_unix_nano);
    }
    let mut stage_spans = Vec::new();
    for st in &plan.stages {
        let tasks: Vec<&SpanRecord> = spans
            .iter()
            .filter(|s| s.name == "task" && str_attr(s, "stage") == Some(st.name.as_str()))
            .collect();
        if tasks.is_empty() {
            continue;
        }
        let t0 = tasks.iter().map(|s| s.start_unix_nano).min().unwrap_or(0);
        let t1 = tasks.iter().map(|s| s.end_unix_nano).max().unwrap_or(t0);
        let done = manifests.iter().filter(|m| m.stage == st.name).count();
        let failed = tasks
            .iter()
            .filter(|s| s.status_code == STATUS_ERROR)
            .count();
        let mut s = record(
            "stage",
            span_id_for(trace, &st.name).to_string(),
            job_id.clone(),
            t0,
            t1,
        );
        let a = &mut s.attributes;
        a.insert("job".into(), plan.job.as_str().into());
        a.insert("stage".into(), st.name.as_str().into());
        a.insert("kind".into(), st.kind.name().into());
        a.insert("cycle".into(), st.cycle.into());
        a.insert("tasks".into(), st.tasks.into());
        a.insert("tasks_done".into(), (done as u64).into());
        a.insert("attempts_failed".into(), (failed as u64).into());
        a.insert(
            "task_seconds".into(),
            tasks.iter().map(|s| s.seconds()).sum::<f64>().into(),
        );
        if let RunState::Failed { reason } = state
            && done < st.tasks as usize
        {
            s.status_code = STATUS_ERROR;
            s.status_message = reason.clone();
        }
        stage_spans.push(s);
    }
    spans.extend(stage_spans);
    if job_t0 == u64::MAX {
        job_t0 = now_unix_nano();
        job_t1 = job_t0;
    }
    let mut job = record(JOB_SPAN, job_id, String::new(), job_t0, job_t1);
    let a = &mut job.attributes;
    a.insert("job".into(), plan.job.as_str().into());
    a.insert("pipeline".into(), plan.spec.pipeline.name().into());
    a.insert("windows".into(), u64::from(plan.facts.nwindows).into());
    a.insert("npix".into(), plan.image.npix.into());
    a.insert("wplanes".into(), plan.image.grid_planes.into());
    a.insert("stages".into(), (plan.stages.len() as u64).into());
    a.insert("tasks".into(), plan.total_tasks().into());
    a.insert(
        "state".into(),
        match state {
            RunState::Succeeded => "succeeded",
            RunState::Failed { .. } => "failed",
            RunState::Running => "running",
        }
        .into(),
    );
    if let RunState::Failed { reason } = state {
        job.status_code = STATUS_ERROR;
        job.status_message = reason.clone();
    }
    spans.push(job);
    spans.sort_by_key(|s| (s.start_unix_nano, s.span_id.clone()));
    spans
}

/// The seconds of each committed task as its span measured it (the worker's whole
/// attempt), falling back to the manifest's own figure.
pub fn task_seconds(spans: &[SpanRecord]) -> BTreeMap<(String, u32, u32), f64> {
    spans
        .iter()
        .filter(|s| s.status_code != STATUS_ERROR)
        .filter_map(|s| task_of(s).map(|k| (k, s.seconds())))
        .collect()
}

/// The spans of a trace that no process exported itself: the job and stage spans and
/// the stand-in task spans derived from manifests (what a driver exports at the end).
pub fn derived(spans: &[SpanRecord]) -> Vec<SpanRecord> {
    spans
        .iter()
        .filter(|s| {
            s.name == JOB_SPAN
                || s.name == "stage"
                || s.attr("synthesized") == Some(&AttrValue::Bool(true))
        })
        .cloned()
        .collect()
}
