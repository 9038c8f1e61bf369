//! The local executor: drives the state machine with worker child processes (one per
//! task, at most `parallel` at once) against the job's object store. Ctrl-C stops the
//! workers and returns; re-running resumes from the committed manifests.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::task::JoinSet;

use crate::plan::{PLAN_KEY, Plan, TaskKind};
use crate::state::{Action, advance};
use crate::storage::{StorageError, Store};
use crate::tasks::{EXIT_PERMANENT, TaskManifest};

use super::observe;

/// How to run workers.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Tasks running at once.
    pub parallel: usize,
    /// The worker program and the arguments before `--plan` (e.g. `aperture-worker`, or
    /// `aperture worker`).
    pub worker: Vec<String>,
    /// Extra environment of every worker (e.g. the OTLP exporter settings).
    pub env: Vec<(String, String)>,
}

/// What happened, for progress displays.
#[derive(Debug, Clone)]
pub enum Event {
    /// Tasks already committed when the run started (a resume).
    Resumed {
        done: u64,
    },
    Started {
        stage: String,
        index: u32,
    },
    Finished {
        manifest: Box<TaskManifest>,
    },
    Failed {
        stage: String,
        index: u32,
        message: String,
        retry: bool,
    },
    Skipped {
        stage: String,
    },
}

/// How a run ended.
#[derive(Debug)]
pub enum RunOutcome {
    Succeeded {
        wall_seconds: f64,
        manifests: Vec<TaskManifest>,
        /// Per task run now: process lifetime minus the task's own time (spawn, runtime
        /// start, plan read, manifest write), seconds.
        task_overheads: Vec<f64>,
    },
    Failed {
        reason: String,
    },
    Interrupted,
}

struct Done {
    stage: String,
    index: u32,
    code: Option<i32>,
    last_error: String,
    /// Spawn to exit, seconds.
    process_seconds: f64,
}

fn spawn(
    set: &mut JoinSet<Done>,
    opts: &LocalOptions,
    plan: &Plan,
    plan_url: &str,
    stage: &str,
    index: u32,
    attempt: u32,
) -> std::io::Result<()> {
    let (prog, pre) = opts
        .worker
        .split_first()
        .ok_or_else(|| std::io::Error::other("no worker program"))?;
    let mut cmd = Command::new(PathBuf::from(prog));
    cmd.args(pre)
        .args([
            "--plan",
            plan_url,
            "--stage",
            stage,
            "--index",
            &index.to_string(),
        ])
        .envs(opts.env.iter().map(|(k, v)| (k, v)))
        // The task span's parent is its stage span (docs/observability.md).
        .env(
            "TRACEPARENT",
            aperture_telemetry::stage_traceparent(&plan.trace_key(), stage),
        )
        .env("APERTURE_ATTEMPT", attempt.to_string())
        .envs(malloc_tunables())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let t0 = Instant::now();
    let mut child = cmd.spawn()?;
    let stderr = child.stderr.take();
    let (stage, prog) = (stage.to_string(), prog.clone());
    set.spawn(async move {
        let mut last = String::new();
        if let Some(e) = stderr {
            let mut lines = BufReader::new(e).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                if !l.trim().is_empty() {
                    last = l;
                }
            }
        }
        let code = match child.wait().await {
            Ok(s) => s.code(),
            Err(e) => {
                last = format!("{prog}: {e}");
                None
            }
        };
        Done {
            stage,
            index,
            code,
            last_error: last,
            process_seconds: t0.elapsed().as_secs_f64(),
        }
    });
    Ok(())
}

/// glibc's malloc tunables for workers, unless the caller set their own: transparent
/// huge pages for the heap and large blocks (`glibc.malloc.hugetlb=1`, glibc ≥ 2.35,
/// tunables(7)). A worker is a fresh process that touches every page it uses once; with
/// 2 MiB pages a Dask-bench residual task took half the page faults (12.6 k → 6.6 k) and
/// 8 % less CPU (`perf stat -e task-clock,page-faults`, docs/performance.md).
fn malloc_tunables() -> Option<(&'static str, &'static str)> {
    std::env::var_os("GLIBC_TUNABLES")
        .is_none()
        .then_some(("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1"))
}

/// Resolves when SIGINT arrives (never, if it could not be watched).
async fn interrupted(sigint: &mut Option<Signal>) {
    match sigint {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// Runs `plan` (stored at `out`) to the end.
pub async fn run_local(
    plan: &Plan,
    out: &Store,
    opts: &LocalOptions,
    mut on_event: impl FnMut(&Event),
) -> Result<RunOutcome, StorageError> {
    let t0 = Instant::now();
    let plan_url = out.key_url(PLAN_KEY);
    let (mut obs, mut manifests) = observe(plan, out).await?;
    let done: u64 = obs.stages.values().map(|o| o.succeeded.len() as u64).sum();
    if done > 0 {
        on_event(&Event::Resumed { done });
    }
    let mut set: JoinSet<Done> = JoinSet::new();
    let mut skipped = std::collections::BTreeSet::new();
    let mut task_overheads = Vec::new();
    let parallel = opts.parallel.max(1);
    // Registered before the first worker starts, so a Ctrl-C at any moment of the run is
    // seen: a `ctrl_c()` future made per loop turn registers only when first polled, so
    // a signal between turns would be missed or, before any registration, kill the run
    // with its workers left behind.
    let mut sigint = signal(SignalKind::interrupt()).ok();
    loop {
        let actions = advance(plan, &obs);
        match actions.first() {
            Some(Action::Succeed) if set.is_empty() => {
                return Ok(RunOutcome::Succeeded {
                    wall_seconds: t0.elapsed().as_secs_f64(),
                    manifests,
                    task_overheads,
                });
            }
            Some(Action::Fail { reason }) => {
                set.shutdown().await;
                return Ok(RunOutcome::Failed {
                    reason: reason.clone(),
                });
            }
            _ => {}
        }
        for a in &actions {
            match a {
                Action::Run { stage, indices } => {
                    for &i in indices {
                        if set.len() >= parallel {
                            break;
                        }
                        let attempt = obs
                            .stages
                            .get(stage)
                            .and_then(|o| o.failures.get(&i))
                            .map_or(1, |f| f + 1);
                        if let Err(e) = spawn(&mut set, opts, plan, &plan_url, stage, i, attempt) {
                            set.shutdown().await;
                            return Ok(RunOutcome::Failed {
                                reason: format!("cannot start worker {:?}: {e}", opts.worker),
                            });
                        }
                        obs.stage_mut(stage).running.insert(i);
                        on_event(&Event::Started {
                            stage: stage.clone(),
                            index: i,
                        });
                    }
                }
                Action::Skip { stage, .. } if skipped.insert(stage.clone()) => {
                    on_event(&Event::Skipped {
                        stage: stage.clone(),
                    });
                }
                _ => {}
            }
        }
        if set.is_empty() {
            return Ok(RunOutcome::Failed {
                reason: "internal: no task can run and none is running".into(),
            });
        }
        let done = tokio::select! {
            d = set.join_next() => d,
            _ = interrupted(&mut sigint) => {
                set.shutdown().await;
                return Ok(RunOutcome::Interrupted);
            }
        };
        let Some(Ok(d)) = done else { continue };
        let key = Plan::manifest_key(&d.stage, d.index);
        let o = obs.stage_mut(&d.stage);
        o.running.remove(&d.index);
        let committed = d.code == Some(0) && out.exists(&key).await?;
        if committed {
            let m: TaskManifest = out.get_json(&key).await?;
            let o = obs.stage_mut(&d.stage);
            o.succeeded.insert(d.index);
            if m.kind == TaskKind::Deconvolve {
                o.converged = m.result.get("converged").and_then(|v| v.as_bool());
            }
            task_overheads.push((d.process_seconds - m.seconds).max(0.0));
            on_event(&Event::Finished {
                manifest: Box::new(m.clone()),
            });
            manifests.push(m);
        } else {
            let o = obs.stage_mut(&d.stage);
            let message = if d.code == Some(0) {
                format!("worker exited 0 without writing {}", out.key_url(&key))
            } else if d.last_error.is_empty() {
                format!("worker exited with {:?}", d.code)
            } else {
                d.last_error.trim_start_matches("error: ").to_string()
            };
            let permanent = d.code == Some(i32::from(EXIT_PERMANENT));
            if permanent {
                o.permanent = Some((d.index, message.clone()));
            } else {
                *o.failures.entry(d.index).or_default() += 1;
                o.last_error.insert(d.index, message.clone());
            }
            on_event(&Event::Failed {
                stage: d.stage.clone(),
                index: d.index,
                message,
                retry: !permanent,
            });
        }
    }
}
