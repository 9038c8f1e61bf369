//! `aperture run JOB.yaml`: plan an ImagingJob and run it locally with worker processes
//! against its object store; re-running resumes; products and diagnostics are printed.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use aperture_pipeline::diagnostics::{RunState, RunSummary, Written, write_run_diagnostics};
use aperture_pipeline::executor::{Event, LocalOptions, RunOutcome, prepare, run_local};
use aperture_pipeline::plan::Plan;
use aperture_pipeline::spec::load_job;
use aperture_pipeline::storage::Store;
use aperture_telemetry::{Telemetry, TelemetryConfig};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing::Instrument;

use crate::common::Context;
use crate::common::fmt::{Summary, bytes, seconds};

/// Run an ImagingJob manifest on this machine.
///
/// Plans the job (frequency-window shards, reduction trees, major cycles), writes
/// plan.json to the output, and runs every task as a worker process (`aperture worker`,
/// or $APERTURE_WORKER, e.g. aperture-worker) with at most --parallel at once. Products
/// (FITS + PNG) land in <output>/products/, diagnostics (timings.csv, stages.csv,
/// tasks.csv, trace.json, report.html) in <output>/diagnostics/. Spans are exported over
/// OTLP when OTEL_EXPORTER_OTLP_ENDPOINT or spec.telemetry.otlpEndpoint is set. Interrupted or failed runs resume where they stopped when the
/// same command is run again; a different manifest on the same output is refused unless
/// --force.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The ImagingJob manifest (YAML).
    pub job: PathBuf,
    /// Worker processes at once (default: spec.parallelism.maxParallel).
    #[arg(long)]
    pub parallel: Option<usize>,
    /// Output URL: a directory, file://, s3://bucket/prefix or memory:// (default:
    /// spec.output, else ./out/<job name>/).
    #[arg(long)]
    pub output: Option<String>,
    /// Replace a different job already at the output.
    #[arg(long)]
    pub force: bool,
    /// Write plan.json and print the plan, without running it.
    #[arg(long)]
    pub plan_only: bool,
    /// Idle worker processes kept started ahead of their tasks, waiting on standard
    /// input for an assignment (default: --parallel; 0 starts each worker when its task
    /// is due).
    #[arg(long)]
    pub prestart: Option<usize>,
}

/// The worker command: `$APERTURE_WORKER` if set (e.g. `aperture-worker`), else this very
/// program as `aperture worker`, so the workers can never be a stale build of different
/// code than the planner's.
fn worker_command() -> Result<Vec<String>> {
    if let Ok(w) = std::env::var("APERTURE_WORKER") {
        return Ok(w.split_whitespace().map(str::to_string).collect());
    }
    let me = std::env::current_exe().context("cannot locate the aperture program")?;
    Ok(vec![me.display().to_string(), "worker".into()])
}

fn default_output(name: &str) -> String {
    Path::new("out").join(name).display().to_string()
}

/// The log filter for `-v` counts (when RUST_LOG is unset).
pub fn log_level(verbose: u8) -> &'static str {
    match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    }
}

pub fn run(args: &RunArgs, ctx: &Context, verbose: u8) -> Result<()> {
    let job = load_job(&args.job).map_err(|e| anyhow!("{}: {e}", args.job.display()))?;
    let tel_spec = &job.spec.telemetry;
    let tel = Telemetry::init(
        TelemetryConfig::from_env("aperture", log_level(verbose)).with_job_endpoint(
            tel_spec.otlp_endpoint.as_deref(),
            // The protocol belongs to the job's endpoint; without one the environment rules.
            tel_spec
                .otlp_endpoint
                .as_ref()
                .map(|_| tel_spec.protocol.as_str()),
        ),
    );
    let tel = &tel;
    let name = job.metadata.name.clone().unwrap_or_default();
    let output = args
        .output
        .clone()
        .or_else(|| job.spec.output.clone())
        .unwrap_or_else(|| default_output(&name));
    let parallel = args
        .parallel
        .unwrap_or(job.spec.parallelism.max_parallel as usize);
    if parallel == 0 {
        bail!("--parallel 0: at least one worker is needed");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let stage = ctx.progress.stage(format!("planning {name}"));
        let (plan, out) = prepare(&job, &output, args.force).await.map_err(|e| anyhow!("{e}"))?;
        stage.done();
        let mut s = Summary::new();
        s.row("job", format!("{} ({})", plan.job, plan.spec.pipeline.name()))
            .row("output", out.url())
            .row(
                "input",
                format!(
                    "{} windows × {} channels, {} times × {} baselines",
                    plan.facts.nwindows, plan.facts.channels_per_window, plan.facts.ntimes, plan.facts.nbaselines
                ),
            )
            .row(
                "image",
                format!(
                    "{}², cell {:.3} arcsec, grid {}² W={} {} planes",
                    plan.image.npix,
                    plan.image.cell_rad.to_degrees() * 3600.0,
                    plan.image.grid_nu,
                    plan.image.grid_support,
                    plan.image.grid_planes
                ),
            )
            .row(
                "plan",
                format!(
                    "{} stages, {} tasks, {} shards, ~{} per map task",
                    plan.stages.len(),
                    plan.total_tasks(),
                    plan.shards.len(),
                    bytes(plan.est_task_memory_bytes)
                ),
            );
        if args.plan_only {
            s.print();
            return Ok(());
        }
        let opts = LocalOptions {
            parallel,
            worker: worker_command()?,
            env: tel.config().child_env("aperture-worker"),
            prestart: args.prestart.unwrap_or(parallel),
        };
        // The driver's own span, under the job span every process derives.
        let trace = aperture_telemetry::trace_id_for(&plan.trace_key());
        let run_span = tracing::info_span!("run", job = plan.job.as_str(), parallel);
        aperture_telemetry::set_remote_parent(
            &run_span,
            &aperture_telemetry::traceparent(
                trace,
                aperture_telemetry::span_id_for(trace, aperture_telemetry::JOB_SPAN),
            ),
        );
        let bar = ctx.progress.enabled().then(|| {
            let target = if std::io::stderr().is_terminal() {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            };
            let bar = ProgressBar::with_draw_target(Some(plan.total_tasks()), target);
            if let Ok(st) = ProgressStyle::with_template("{bar:30} {pos}/{len} tasks {elapsed} {msg}") {
                bar.set_style(st);
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let t0 = std::time::Instant::now();
        let outcome = run_local(&plan, &out, &opts, |ev| {
            if let Some(bar) = &bar {
                match ev {
                    Event::Resumed { done } => {
                        bar.set_position(*done);
                        bar.println(format!("resuming: {done} tasks already done"));
                    }
                    Event::Started { stage, .. } => bar.set_message(stage.clone()),
                    Event::Finished { .. } => bar.inc(1),
                    Event::Failed { stage, index, message, retry } => bar.println(format!(
                        "task {stage}/{index} failed{}: {message}",
                        if *retry { " (will retry)" } else { "" }
                    )),
                    Event::Skipped { stage } => {
                        if let Some(st) = plan.stage(stage) {
                            bar.set_length(bar.length().unwrap_or(0).saturating_sub(u64::from(st.tasks)));
                        }
                    }
                }
            }
        })
        .instrument(run_span.clone())
        .await
        .map_err(|e| anyhow!("{e}"))?;
        drop(run_span);
        if let Some(bar) = &bar {
            bar.finish_and_clear();
        }
        match outcome {
            RunOutcome::Succeeded {
                wall_seconds,
                manifests,
                task_overheads,
            } => {
                let fig = diagnostics(tel, &plan, &out, &manifests, RunState::Succeeded, wall_seconds, parallel)
                    .await
                    .map_err(|e| anyhow!("writing diagnostics: {e}"))?
                    .figures;
                let (_, all) = aperture_pipeline::executor::observe(&plan, &out)
                    .await
                    .map_err(|e| anyhow!("{e}"))?;
                let restore = all.iter().find(|m| m.stage == "restore");
                s.row("wall time", seconds(wall_seconds))
                    .row(
                        "task time",
                        format!(
                            "{} over {} tasks ({} workers, overhead {:.1} %)",
                            seconds(fig.task_seconds),
                            fig.tasks,
                            parallel,
                            100.0 * fig.overhead_fraction
                        ),
                    )
                    .row("peak worker RSS", bytes(fig.peak_rss_bytes));
                if !task_overheads.is_empty() {
                    let mut o = task_overheads.clone();
                    o.sort_by(f64::total_cmp);
                    let mean = o.iter().sum::<f64>() / o.len() as f64;
                    s.row(
                        "per-task overhead",
                        format!(
                            "mean {:.1} ms, median {:.1} ms, max {:.1} ms (spawn, plan read, manifest write)",
                            1e3 * mean,
                            1e3 * o[o.len() / 2],
                            1e3 * o[o.len() - 1]
                        ),
                    );
                }
                if let Some(b) = restore.and_then(|r| r.result.get("beam_arcsec")) {
                    s.row("restoring beam", format!("{b} (arcsec, arcsec, deg)"));
                }
                s.row("products", out.key_url("products/"))
                    .row("diagnostics", out.key_url("diagnostics/report.html"));
                s.print();
                Ok(())
            }
            RunOutcome::Failed { reason } => {
                let state = RunState::Failed { reason: reason.clone() };
                partial_diagnostics(tel, &plan, &out, state, parallel, t0).await;
                bail!("job {} failed: {reason}", plan.job)
            }
            RunOutcome::Interrupted => {
                partial_diagnostics(tel, &plan, &out, RunState::Running, parallel, t0).await;
                bail!("interrupted; finished tasks are kept: run the same command again to resume")
            }
        }
    })
}

/// Writes the run's diagnostics (with this process's own spans) and exports the job,
/// stage and stand-in task spans derived from storage, which no worker exported.
async fn diagnostics(
    tel: &Telemetry,
    plan: &Plan,
    out: &Store,
    manifests: &[aperture_pipeline::tasks::TaskManifest],
    state: RunState,
    wall_seconds: f64,
    nworkers: usize,
) -> Result<Written, aperture_pipeline::storage::StorageError> {
    let (own_spans, _) = tel.recorder().take();
    // Stored beside the workers' spans, so `aperture report` and a resumed run still find
    // this run's spans when they rewrite trace.json.
    if let Some(r) = own_spans.iter().find(|s| s.name == "run") {
        let key = format!(
            "{}run-{}.json",
            aperture_pipeline::tasks::SPANS_PREFIX,
            r.span_id
        );
        let doc = aperture_telemetry::to_otlp_json(&own_spans);
        if let Err(e) = out.put_json(&key, &doc).await {
            tracing::warn!("cannot store the run's spans at {}: {e}", out.key_url(&key));
        }
    }
    let run = RunSummary {
        state,
        wall_seconds,
        nworkers,
        own_spans,
        service: tel.config().service_name.clone(),
    };
    let written = write_run_diagnostics(plan, out, manifests, run).await?;
    if tel.exporting() {
        let derived = aperture_pipeline::diagnostics::derived(&written.spans);
        if let Err(e) = tel.emit(&derived) {
            tracing::warn!("cannot export the job's spans: {e}");
        }
    }
    Ok(written)
}

/// Diagnostics of a run that did not finish: the timing table, trace and report of the
/// tasks that did (best effort; the run's own error is what gets reported).
async fn partial_diagnostics(
    tel: &Telemetry,
    plan: &Plan,
    out: &Store,
    state: RunState,
    workers: usize,
    t0: std::time::Instant,
) {
    if let Ok((_, manifests)) = aperture_pipeline::executor::observe(plan, out).await {
        let wall = t0.elapsed().as_secs_f64();
        if let Err(e) = diagnostics(tel, plan, out, &manifests, state, wall, workers).await {
            eprintln!("warning: cannot write the diagnostics: {e}");
        }
    }
}

/// `aperture worker`: the same as the aperture-worker program.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[arg(long)]
    pub plan: String,
    #[arg(long, required_unless_present = "task_from_stdin")]
    pub stage: Option<String>,
    #[arg(long)]
    pub index: Option<u32>,
    /// Load the plan, then wait for the task as one JSON line on standard input (how
    /// `aperture run` starts workers ahead of their tasks).
    #[arg(long, conflicts_with_all = ["stage", "index"])]
    pub task_from_stdin: bool,
}

/// Runs one task and returns the worker exit code.
pub fn run_worker(args: &WorkerArgs, verbose: u8) -> u8 {
    aperture_pipeline::tasks::limit_malloc_arenas();
    let level = if verbose == 0 {
        "warn"
    } else {
        log_level(verbose)
    };
    let tel = Telemetry::init(TelemetryConfig::from_env("aperture-worker", level));
    let task = match aperture_pipeline::tasks::worker_task(
        args.stage.as_deref(),
        args.index,
        args.task_from_stdin,
    ) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return aperture_pipeline::tasks::EXIT_RETRYABLE;
        }
    };
    rt.block_on(aperture_pipeline::tasks::run_worker_task(
        &args.plan,
        task,
        Some(tel.recorder()),
    ))
}
