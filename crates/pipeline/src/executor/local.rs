//! The local executor: drives the state machine with worker child processes (one per
//! task, at most `parallel` at once) against the job's object store. Workers are started
//! ahead of their tasks (they load the plan, then wait for an assignment on standard
//! input), so a dependent task starts without paying a process start. Ctrl-C stops the
//! workers and returns; re-running resumes from the committed manifests.

use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::plan::{PLAN_KEY, Plan, TaskKind};
use crate::state::{Action, Observed, advance};
use crate::storage::{StorageError, Store};
use crate::tasks::{Assignment, COMMITTED_LINE, EXIT_PERMANENT, TaskManifest};

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
    /// Idle workers kept started ahead of their tasks (0: each worker starts when its
    /// task is due; `aperture run` keeps `parallel`).
    pub prestart: usize,
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
        /// Per task run now: assignment to the committed manifest seen by the executor,
        /// minus the task's own time (assignment hand-over, manifest write, notice),
        /// seconds. A worker's start and plan read come before its assignment.
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
    /// Assignment to exit, seconds.
    process_seconds: f64,
}

/// A task's committed manifest, announced by its worker before it exits.
struct Committed {
    stage: String,
    index: u32,
    /// Assignment to the announcement, seconds.
    seconds: f64,
}

/// A worker process started ahead of its task: it loads the plan and waits for its
/// [`Assignment`] on standard input (`--task-from-stdin`).
struct Warm {
    child: Child,
    /// Taken when the assignment is written.
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    stderr: ChildStderr,
}

/// Starts a worker that waits for its task.
fn start_worker(opts: &LocalOptions, plan_url: &str) -> std::io::Result<Warm> {
    let (prog, pre) = opts
        .worker
        .split_first()
        .ok_or_else(|| std::io::Error::other("no worker program"))?;
    let mut child = Command::new(PathBuf::from(prog))
        .args(pre)
        .args(["--plan", plan_url, "--task-from-stdin"])
        .envs(opts.env.iter().map(|(k, v)| (k, v)))
        .envs(malloc_tunables())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let piped = || std::io::Error::other("worker started without its pipes");
    Ok(Warm {
        stdin: Some(child.stdin.take().ok_or_else(piped)?),
        stdout: child.stdout.take().ok_or_else(piped)?,
        stderr: child.stderr.take().ok_or_else(piped)?,
        child,
    })
}

/// Writes the assignment line to a started worker and closes its input (it reads one
/// line only). Fails when the worker died waiting.
async fn hand_over(w: &mut Warm, a: &Assignment) -> std::io::Result<()> {
    let mut line = serde_json::to_string(a).map_err(std::io::Error::other)?;
    line.push('\n');
    let mut stdin = w
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("worker already assigned"))?;
    stdin.write_all(line.as_bytes()).await
}

/// Watches worker `w`, assigned task `a`, until it exits: its announcement goes to
/// `committed`, its exit to `set`.
fn watch(
    mut w: Warm,
    a: Assignment,
    set: &mut JoinSet<Done>,
    committed: &mpsc::UnboundedSender<Committed>,
    prog: &str,
) {
    let t0 = Instant::now();
    let tx = committed.clone();
    let prog = prog.to_string();
    set.spawn(async move {
        let (mut out, mut err) = (
            BufReader::new(w.stdout).lines(),
            BufReader::new(w.stderr).lines(),
        );
        let (mut out_open, mut err_open, mut announced) = (true, true, false);
        let mut last = String::new();
        // Both pipes to their ends (`next_line` is cancel-safe), then the exit status.
        while out_open || err_open {
            tokio::select! {
                l = out.next_line(), if out_open => match l {
                    Ok(Some(l)) if !announced && l.trim() == COMMITTED_LINE => {
                        announced = true;
                        let _ = tx.send(Committed {
                            stage: a.stage.clone(),
                            index: a.index,
                            seconds: t0.elapsed().as_secs_f64(),
                        });
                    }
                    Ok(Some(_)) => {}
                    _ => out_open = false,
                },
                l = err.next_line(), if err_open => match l {
                    Ok(Some(l)) if !l.trim().is_empty() => last = l,
                    Ok(Some(_)) => {}
                    _ => err_open = false,
                },
            }
        }
        let code = match w.child.wait().await {
            Ok(s) => s.code(),
            Err(e) => {
                last = format!("{prog}: {e}");
                None
            }
        };
        Done {
            stage: a.stage,
            index: a.index,
            code,
            last_error: last,
            process_seconds: t0.elapsed().as_secs_f64(),
        }
    });
}

/// Threads for the next task of a stage with `left` tasks not yet started (this one
/// included), when `free` of the worker slots are idle and each slot is `per_task`
/// threads: a stage with fewer tasks to start than idle slots gives its tasks the idle
/// slots' threads (an ICAL's deconvolution and restore run alone). `None` keeps the
/// spec's `threadsPerTask` (also when that is 0, all cores).
fn threads_for(left: usize, free: usize, per_task: u32) -> Option<u32> {
    let slots = free / left.max(1);
    (per_task >= 1 && slots > 1).then(|| per_task.saturating_mul(slots as u32))
}

/// Tasks of the plan neither done nor running (an upper bound on the workers still
/// needed: stages skipped by convergence are counted too).
fn tasks_left(plan: &Plan, obs: &Observed) -> usize {
    plan.stages
        .iter()
        .map(|st| {
            let done = obs
                .stage(&st.name)
                .map_or(0, |o| o.succeeded.len() + o.running.len());
            (st.tasks as usize).saturating_sub(done)
        })
        .sum()
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
    let prog = opts.worker.first().cloned().unwrap_or_default();
    let mut set: JoinSet<Done> = JoinSet::new();
    let (tx, mut rx) = mpsc::unbounded_channel::<Committed>();
    let mut warm: VecDeque<Warm> = VecDeque::new();
    // Tasks counted done from their worker's announcement, whose process has not exited.
    let mut announced: BTreeSet<(String, u32)> = BTreeSet::new();
    let mut active = 0usize;
    let mut skipped = BTreeSet::new();
    let mut task_overheads = Vec::new();
    let parallel = opts.parallel.max(1);
    let per_task = plan.spec.parallelism.threads_per_task;
    // Registered before the first worker starts, so a Ctrl-C at any moment of the run is
    // seen: a `ctrl_c()` future made per loop turn registers only when first polled, so
    // a signal between turns would be missed or, before any registration, kill the run
    // with its workers left behind.
    let mut sigint = signal(SignalKind::interrupt()).ok();
    loop {
        let actions = advance(plan, &obs);
        match actions.first() {
            Some(Action::Succeed) if set.is_empty() => {
                stop_all(&mut warm).await;
                return Ok(RunOutcome::Succeeded {
                    wall_seconds: t0.elapsed().as_secs_f64(),
                    manifests,
                    task_overheads,
                });
            }
            Some(Action::Fail { reason }) => {
                set.shutdown().await;
                stop_all(&mut warm).await;
                return Ok(RunOutcome::Failed {
                    reason: reason.clone(),
                });
            }
            _ => {}
        }
        for a in &actions {
            match a {
                Action::Run { stage, indices } => {
                    let st_tasks = plan.stage(stage).map_or(1, |s| s.tasks as usize);
                    for &i in indices {
                        if active >= parallel {
                            break;
                        }
                        let o = obs.stage_mut(stage);
                        let attempt = o.failures.get(&i).map_or(1, |f| f + 1);
                        let left = st_tasks.saturating_sub(o.succeeded.len() + o.running.len());
                        let threads = threads_for(left, parallel - active, per_task);
                        let task = Assignment {
                            stage: stage.clone(),
                            index: i,
                            attempt,
                            // The task span's parent is its stage span (docs/observability.md).
                            traceparent: Some(aperture_telemetry::stage_traceparent(
                                &plan.trace_key(),
                                stage,
                            )),
                            threads,
                        };
                        if let Err(e) =
                            start_task(&mut warm, task, &mut set, &tx, opts, &plan_url, &prog).await
                        {
                            set.shutdown().await;
                            stop_all(&mut warm).await;
                            return Ok(RunOutcome::Failed {
                                reason: format!("cannot start worker {:?}: {e}", opts.worker),
                            });
                        }
                        obs.stage_mut(stage).running.insert(i);
                        active += 1;
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
            stop_all(&mut warm).await;
            return Ok(RunOutcome::Failed {
                reason: "internal: no task can run and none is running".into(),
            });
        }
        // Workers for the tasks to come start now, while these run.
        let want = opts.prestart.min(tasks_left(plan, &obs));
        while warm.len() < want {
            match start_worker(opts, &plan_url) {
                Ok(w) => warm.push_back(w),
                // Not fatal here: the task that needs a worker starts one (and fails
                // the run with this error if it cannot).
                Err(_) => break,
            }
        }
        enum Next {
            Exited(Done),
            Announced(Committed),
        }
        let next = tokio::select! {
            d = set.join_next() => match d {
                Some(Ok(d)) => Next::Exited(d),
                _ => continue,
            },
            Some(c) = rx.recv() => Next::Announced(c),
            _ = interrupted(&mut sigint) => {
                set.shutdown().await;
                stop_all(&mut warm).await;
                return Ok(RunOutcome::Interrupted);
            }
        };
        match next {
            Next::Announced(c) => {
                let running = obs
                    .stage(&c.stage)
                    .is_some_and(|o| o.running.contains(&c.index));
                let key = Plan::manifest_key(&c.stage, c.index);
                // Not running: its exit was handled first.
                if running && let Some(m) = read_manifest(out, &key).await? {
                    announced.insert((c.stage.clone(), c.index));
                    task_overheads.push((c.seconds - m.seconds).max(0.0));
                    active -= 1;
                    succeed(
                        &mut obs,
                        &c.stage,
                        c.index,
                        m,
                        &mut manifests,
                        &mut on_event,
                    );
                }
            }
            Next::Exited(d) => {
                if announced.remove(&(d.stage.clone(), d.index)) {
                    continue;
                }
                active -= 1;
                let key = Plan::manifest_key(&d.stage, d.index);
                let m = match d.code {
                    Some(0) => read_manifest(out, &key).await?,
                    _ => None,
                };
                if let Some(m) = m {
                    task_overheads.push((d.process_seconds - m.seconds).max(0.0));
                    succeed(
                        &mut obs,
                        &d.stage,
                        d.index,
                        m,
                        &mut manifests,
                        &mut on_event,
                    );
                } else {
                    fail(&mut obs, &d, out.key_url(&key), &mut on_event);
                }
            }
        }
    }
}

/// Runs `task` on a started worker, or on a new one when none is left (or the started
/// ones died waiting). A new worker that dies before it takes its task is a failed
/// attempt, seen when its exit is.
async fn start_task(
    warm: &mut VecDeque<Warm>,
    task: Assignment,
    set: &mut JoinSet<Done>,
    tx: &mpsc::UnboundedSender<Committed>,
    opts: &LocalOptions,
    plan_url: &str,
    prog: &str,
) -> std::io::Result<()> {
    while let Some(mut w) = warm.pop_front() {
        if hand_over(&mut w, &task).await.is_ok() {
            watch(w, task, set, tx, prog);
            return Ok(());
        }
        let _ = w.child.start_kill();
        let _ = w.child.wait().await;
    }
    let mut w = start_worker(opts, plan_url)?;
    let _ = hand_over(&mut w, &task).await;
    watch(w, task, set, tx, prog);
    Ok(())
}

/// The task's committed manifest, if there is one.
async fn read_manifest(out: &Store, key: &str) -> Result<Option<TaskManifest>, StorageError> {
    match out.get_json(key).await {
        Ok(m) => Ok(Some(m)),
        Err(StorageError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn succeed(
    obs: &mut Observed,
    stage: &str,
    index: u32,
    m: TaskManifest,
    manifests: &mut Vec<TaskManifest>,
    on_event: &mut impl FnMut(&Event),
) {
    let o = obs.stage_mut(stage);
    o.running.remove(&index);
    o.succeeded.insert(index);
    if m.kind == TaskKind::Deconvolve {
        o.converged = m.result.get("converged").and_then(|v| v.as_bool());
    }
    on_event(&Event::Finished {
        manifest: Box::new(m.clone()),
    });
    manifests.push(m);
}

fn fail(obs: &mut Observed, d: &Done, manifest_url: String, on_event: &mut impl FnMut(&Event)) {
    let o = obs.stage_mut(&d.stage);
    o.running.remove(&d.index);
    let message = if d.code == Some(0) {
        format!("worker exited 0 without writing {manifest_url}")
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

/// Stops the workers still waiting for a task (they hold nothing) and reaps them.
async fn stop_all(warm: &mut VecDeque<Warm>) {
    for mut w in warm.drain(..) {
        let _ = w.child.start_kill();
        let _ = w.child.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::threads_for;

    #[test]
    fn idle_slots_go_to_a_stage_with_fewer_tasks_than_slots() {
        // A lone deconvolution with 2 slots idle: both slots' threads.
        assert_eq!(threads_for(1, 2, 1), Some(2));
        assert_eq!(threads_for(1, 4, 2), Some(8));
        // Two map tasks on two slots: one thread each, as the spec says.
        assert_eq!(threads_for(2, 2, 1), None);
        assert_eq!(threads_for(1, 1, 1), None);
        // More tasks than slots, or no slot free.
        assert_eq!(threads_for(5, 2, 1), None);
        assert_eq!(threads_for(1, 0, 1), None);
        // Three idle slots, two tasks: one extra slot cannot be split.
        assert_eq!(threads_for(2, 3, 1), None);
        // threadsPerTask 0 already means all cores.
        assert_eq!(threads_for(1, 2, 0), None);
    }
}
