//! Observability end to end (issue #8): `aperture run` with its worker processes exports
//! one trace job → stage → task → phases to an in-process OTLP collector (HTTP/protobuf
//! and gRPC), identical to the diagnostics/trace.json it stores; a dead collector costs
//! one warning per process and never the run; timings.csv agrees with the task spans and
//! `aperture report` re-renders it unchanged.

mod common;
mod otlp;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use aperture_pipeline::diagnostics::TIMINGS_COLUMNS;
use aperture_pipeline::plan::{Plan, TaskKind};
use aperture_pipeline::tasks::TaskManifest;
use common::{arg, assert_ok, stderr};
use otlp::{Collector, Span, Transport, spans_of_json};

const BIN: &str = env!("CARGO_BIN_EXE_aperture");

/// A small ICAL: 3 windows (one per shard), robust weighting (a weights stage), phase-only
/// T self-calibration from cycle 1, two major cycles; about a second of work.
fn ical_manifest(name: &str) -> String {
    format!(
        "apiVersion: aperture.dev/v1alpha1
kind: ImagingJob
metadata: {{name: {name}}}
spec:
  pipeline: ical
  input:
    simulate: {{telescope: LOW, rmax: 300, frequencyWindows: 3, ntimes: 3, sky: {{sources: 3}}, gainPhaseRmsDeg: 20}}
  image: {{npixel: 128, epsilon: 1.0e-5, weighting: {{type: robust, robust: 0}}}}
  deconvolution: {{algorithm: hogbom, niter: 100, gain: 0.1, threshold: 0.01}}
  calibration:
    context: T
    T: {{firstCycle: 1, phaseOnly: true}}
  majorCycles: 2
  parallelism: {{maxParallel: 2, reductionFanIn: 2, windowsPerShard: 1}}
"
    )
}

/// A small invert job with natural weighting.
fn invert_manifest(name: &str) -> String {
    format!(
        "apiVersion: aperture.dev/v1alpha1
kind: ImagingJob
metadata: {{name: {name}}}
spec:
  pipeline: invert
  input:
    simulate: {{telescope: LOW, rmax: 300, frequencyWindows: 3, ntimes: 3, sky: {{sources: 3}}}}
  image: {{npixel: 128, epsilon: 1.0e-5, weighting: {{type: natural}}}}
  parallelism: {{maxParallel: 2, reductionFanIn: 2, windowsPerShard: 1}}
"
    )
}

/// `aperture run` of `manifest` into `dir/out` with `env` and no other OTEL_* variable.
fn run_job(dir: &Path, manifest: &str, worker: &str, env: &[(&str, &str)]) -> (PathBuf, Output) {
    let job = dir.join("job.yaml");
    std::fs::write(&job, manifest).expect("write manifest");
    let out = dir.join("out");
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL_") || k == "TRACEPARENT" || k.starts_with("APERTURE_") {
            c.env_remove(k);
        }
    }
    c.env("APERTURE_WORKER", worker)
        .envs(env.iter().copied())
        .args(["--quiet", "run", arg(&job), "--output", arg(&out)]);
    let o = c.output().expect("running aperture run");
    (out, o)
}

fn default_worker() -> String {
    format!("{BIN} worker")
}

fn read_plan(out: &Path) -> Plan {
    let text = std::fs::read_to_string(out.join("plan.json")).expect("plan.json");
    serde_json::from_str(&text).expect("plan.json parses")
}

/// Every committed task's manifest (`tasks/<stage>/<index>.json`).
fn read_manifests(out: &Path) -> Vec<TaskManifest> {
    let mut v = Vec::new();
    for st in std::fs::read_dir(out.join("tasks")).expect("tasks/") {
        for f in std::fs::read_dir(st.expect("entry").path()).expect("stage dir") {
            let text = std::fs::read_to_string(f.expect("entry").path()).expect("manifest");
            v.push(serde_json::from_str(&text).expect("manifest parses"));
        }
    }
    v
}

fn stored_trace(out: &Path) -> Vec<Span> {
    let text = std::fs::read_to_string(out.join("diagnostics/trace.json")).expect("trace.json");
    spans_of_json(&serde_json::from_str(&text).expect("trace.json is JSON"))
}

/// The spans by id, refusing duplicates.
fn by_id(spans: &[Span]) -> HashMap<&str, &Span> {
    let mut m = HashMap::new();
    for s in spans {
        assert!(
            m.insert(s.span_id.as_str(), s).is_none(),
            "span id {} ({}) sent twice",
            s.span_id,
            s.name
        );
    }
    m
}

/// The nearest `task` span at or above `s`.
fn task_above<'a>(ids: &HashMap<&str, &'a Span>, s: &'a Span) -> Option<&'a Span> {
    let mut cur = Some(s);
    while let Some(c) = cur {
        if c.name == "task" {
            return Some(c);
        }
        cur = ids.get(c.parent.as_str()).copied();
    }
    None
}

fn name_of(s: &Span) -> String {
    format!(
        "{} {} ({}, stage {:?})",
        s.name,
        s.span_id,
        s.service,
        s.str("stage")
    )
}

/// The shape every run's trace has: one trace (the plan's), one root `job` span, no
/// orphans, one `stage` span under the job per stage that ran, one `task` span per
/// committed task under the stage span of its stage, and every other worker span under
/// its own process's task span. Returns the task spans by (stage, shard).
fn check_tree<'a>(
    spans: &'a [Span],
    plan: &Plan,
    manifests: &[TaskManifest],
) -> BTreeMap<(String, u32), &'a Span> {
    assert!(!spans.is_empty(), "no spans");
    let ids = by_id(spans);
    let trace = aperture_telemetry::trace_id_for(&plan.trace_key()).to_string();
    let traces: BTreeSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    assert_eq!(
        traces,
        BTreeSet::from([trace.as_str()]),
        "one trace, the job's"
    );
    let roots: Vec<&Span> = spans.iter().filter(|s| s.parent.is_empty()).collect();
    assert_eq!(
        roots.len(),
        1,
        "one root: {:?}",
        roots.iter().map(|s| name_of(s))
    );
    let job = roots[0];
    assert_eq!(
        (job.name.as_str(), job.service.as_str()),
        ("job", "aperture")
    );
    for s in spans {
        assert!(
            s.parent.is_empty() || ids.contains_key(s.parent.as_str()),
            "orphan: {} has parent {} which was not sent",
            name_of(s),
            s.parent
        );
        assert!(
            s.service == "aperture" || s.service == "aperture-worker",
            "unexpected service.name {:?} on {}",
            s.service,
            name_of(s)
        );
        assert_eq!(s.status_code, 0, "span in error: {}", name_of(s));
    }

    // Stages: one per stage that committed tasks, under the job.
    let ran: BTreeSet<&str> = manifests.iter().map(|m| m.stage.as_str()).collect();
    let mut stages: BTreeMap<&str, &Span> = BTreeMap::new();
    for s in spans.iter().filter(|s| s.name == "stage") {
        assert_eq!(s.parent, job.span_id, "{} is not under the job", name_of(s));
        let st = s.str("stage").expect("stage span has a stage attribute");
        assert!(stages.insert(st, s).is_none(), "two stage spans for {st}");
    }
    assert_eq!(
        stages.keys().copied().collect::<BTreeSet<_>>(),
        ran,
        "stage spans vs stages that ran"
    );

    // Tasks: one per committed task, under its stage's span, from a worker.
    let mut tasks = BTreeMap::new();
    for t in spans.iter().filter(|s| s.name == "task") {
        let st = t.str("stage").expect("task span has a stage attribute");
        let shard = t.int("shard").expect("task span has an integer shard");
        let parent = ids[t.parent.as_str()];
        assert_eq!(parent.name, "stage", "{} is not under a stage", name_of(t));
        assert_eq!(
            parent.str("stage"),
            Some(st),
            "{} is under the stage span of {:?}",
            name_of(t),
            parent.str("stage")
        );
        assert_eq!(
            t.service,
            "aperture-worker",
            "{} was not made by a worker",
            name_of(t)
        );
        let key = (st.to_string(), u32::try_from(shard).expect("shard ≥ 0"));
        assert!(
            tasks.insert(key, t).is_none(),
            "two task spans for {st}/{shard}"
        );
    }
    let committed: BTreeSet<(String, u32)> = manifests
        .iter()
        .map(|m| (m.stage.clone(), m.index))
        .collect();
    assert_eq!(
        tasks.keys().cloned().collect::<BTreeSet<_>>(),
        committed,
        "task spans vs committed tasks"
    );

    // Every other worker span hangs, through worker spans only, under a task span.
    for s in spans
        .iter()
        .filter(|s| s.service == "aperture-worker" && s.name != "task")
    {
        let mut cur = s;
        while cur.name != "task" {
            cur = ids[cur.parent.as_str()];
            assert_eq!(
                cur.service,
                "aperture-worker",
                "{} climbs to {} before reaching a task",
                name_of(s),
                name_of(cur)
            );
        }
    }
    // The driver makes the job, stage and run spans only.
    for s in spans.iter().filter(|s| s.service == "aperture") {
        assert!(
            ["job", "stage", "run"].contains(&s.name.as_str()),
            "unexpected driver span {}",
            name_of(s)
        );
    }
    tasks
}

/// The task spans carry the attributes of docs/observability.md with the values of the
/// plan and of the task's own manifest.
fn check_task_attributes(tasks: &BTreeMap<(String, u32), &Span>, plan: &Plan, ms: &[TaskManifest]) {
    let int = |t: &Span, k: &str| {
        t.int(k).unwrap_or_else(|| {
            panic!(
                "task {}: no integer attribute {k}: {:?}",
                name_of(t),
                t.attrs
            )
        })
    };
    let as_i = |v: u64| i64::try_from(v).expect("fits i64");
    for m in ms {
        let t = tasks[&(m.stage.clone(), m.index)];
        let what = format!("task {}/{}", m.stage, m.index);
        let st = plan.stage(&m.stage).expect("manifest of a planned stage");
        assert_eq!(t.str("job"), Some(plan.job.as_str()), "{what}: job");
        assert_eq!(t.str("kind"), Some(st.kind.name()), "{what}: kind");
        assert_eq!(int(t, "cycle"), i64::from(st.cycle), "{what}: cycle");
        assert_eq!(int(t, "attempt"), 1, "{what}: attempt");
        assert_eq!(int(t, "exit_code"), 0, "{what}: exit_code");
        assert_eq!(int(t, "npix"), i64::from(plan.image.npix), "{what}: npix");
        assert_eq!(
            int(t, "wplanes"),
            i64::from(plan.image.grid_planes),
            "{what}: wplanes"
        );
        assert_eq!(int(t, "windows"), i64::from(m.windows), "{what}: windows");
        assert_eq!(
            int(t, "visibilities"),
            as_i(m.visibilities),
            "{what}: visibilities"
        );
        assert_eq!(int(t, "bytes_read"), as_i(m.bytes_in), "{what}: bytes_read");
        assert_eq!(
            int(t, "bytes_written"),
            as_i(m.bytes_out),
            "{what}: bytes_written"
        );
        assert_eq!(
            int(t, "peak_rss_bytes"),
            as_i(m.peak_rss_bytes),
            "{what}: peak_rss_bytes"
        );
        assert_eq!(t.str("host"), Some(m.host.as_str()), "{what}: host");
        // Sane values, independently of the manifest.
        let map = matches!(
            st.kind,
            TaskKind::Simulate | TaskKind::Weights | TaskKind::Invert | TaskKind::Residual
        );
        if map {
            assert!(int(t, "windows") >= 1, "{what}: windows ≥ 1");
            assert!(int(t, "visibilities") > 0, "{what}: visibilities > 0");
        }
        if st.kind != TaskKind::Simulate {
            assert!(
                int(t, "bytes_read") > 0,
                "{what}: reads its inputs but bytes_read = 0"
            );
        }
        assert!(int(t, "bytes_written") > 0, "{what}: bytes_written > 0");
        assert!(
            int(t, "peak_rss_bytes") > 1 << 20,
            "{what}: peak RSS > 1 MiB"
        );
        assert!(!m.host.is_empty(), "{what}: host");
        // The span covers the worker's whole attempt, the manifest's timing a part of it.
        let started_ns = (m.started_unix * 1e9) as u64;
        assert!(
            t.start_ns <= started_ns + 1_000_000,
            "{what}: task span starts after the task"
        );
        assert!(
            t.seconds() + 1e-3 >= m.seconds,
            "{what}: task span {} s shorter than the task's {} s",
            t.seconds(),
            m.seconds
        );
    }
}

/// The spans below each task span, by task span id.
fn below_tasks(spans: &[Span]) -> HashMap<&str, Vec<&Span>> {
    let ids = by_id(spans);
    let mut m: HashMap<&str, Vec<&Span>> = HashMap::new();
    for s in spans.iter().filter(|s| s.name != "task") {
        if let Some(t) = task_above(&ids, s) {
            m.entry(t.span_id.as_str()).or_default().push(s);
        }
    }
    m
}

/// The kernel phases of an ICAL trace: reads and writes in every task, weights and
/// gridder calls in the map tasks with their per-w-plane grid / w-screen / FFT / degrid
/// spans, a predict in every residual task, calibration solves from cycle 1, reductions
/// and minor cycles in their tasks.
fn check_ical_phases(spans: &[Span], tasks: &BTreeMap<(String, u32), &Span>, plan: &Plan) {
    let ids = by_id(spans);
    let below = below_tasks(spans);
    for name in [
        "read",
        "weights",
        "gridder",
        "grid",
        "fft",
        "wscreen",
        "degrid",
        "solve",
        "reduce",
        "deconvolve",
        "write",
    ] {
        let of_name: Vec<&Span> = spans.iter().filter(|s| s.name == name).collect();
        assert!(!of_name.is_empty(), "no {name} span in the trace");
        for s in of_name {
            assert!(
                task_above(&ids, s).is_some(),
                "{} has no task above it",
                name_of(s)
            );
        }
    }
    for ((stage, shard), t) in tasks {
        let what = format!("task {stage}/{shard}");
        let kind = t.str("kind").expect("kind");
        let windows = t.int("windows").expect("windows");
        let phases = below.get(t.span_id.as_str()).cloned().unwrap_or_default();
        let count = |n: &str| phases.iter().filter(|s| s.name == n).count() as i64;
        assert!(count("write") >= 1, "{what}: no write span");
        if kind != "simulate" {
            assert!(count("read") >= 1, "{what} ({kind}): no read span");
        }
        let gridders: Vec<&&Span> = phases.iter().filter(|s| s.name == "gridder").collect();
        let ops: BTreeSet<&str> = gridders.iter().filter_map(|g| g.str("op")).collect();
        match kind {
            "invert" => {
                assert_eq!(
                    count("weights"),
                    windows,
                    "{what}: one weights span per window"
                );
                assert_eq!(ops, BTreeSet::from(["invert"]), "{what}: gridder ops");
            }
            "residual" => {
                assert_eq!(
                    count("weights"),
                    windows,
                    "{what}: one weights span per window"
                );
                assert_eq!(
                    ops,
                    BTreeSet::from(["invert", "predict"]),
                    "{what}: gridder ops"
                );
                assert!(
                    count("solve") >= 1,
                    "{what}: calibrating cycle without a solve span"
                );
            }
            "reduce" => assert!(count("reduce") >= 1, "{what}: no reduce span"),
            "deconvolve" => assert_eq!(count("deconvolve"), 1, "{what}: deconvolve spans"),
            _ => assert!(gridders.is_empty(), "{what}: unexpected gridder call"),
        }
        for g in gridders {
            let attr = |k: &str| {
                g.num(k)
                    .unwrap_or_else(|| panic!("{what}: gridder without numeric {k}: {:?}", g.attrs))
            };
            assert_eq!(
                attr("nu"),
                f64::from(plan.image.grid_nu),
                "{what}: gridder nu"
            );
            assert_eq!(
                attr("nv"),
                f64::from(plan.image.grid_nu),
                "{what}: gridder nv"
            );
            assert_eq!(
                attr("support"),
                f64::from(plan.image.grid_support),
                "{what}: gridder support"
            );
            let nplanes = attr("nplanes");
            assert!(
                (1.0..=f64::from(plan.image.grid_planes)).contains(&nplanes),
                "{what}: gridder nplanes {nplanes}"
            );
            assert!(attr("nvis") > 0.0, "{what}: gridder nvis");
            assert!(attr("grid_seconds") >= 0.0 && attr("fft_seconds") > 0.0);
            let kids = |n: &str| {
                spans
                    .iter()
                    .filter(|s| s.parent == g.span_id && s.name == n)
                    .count() as f64
            };
            let (plane_op, other) = match g.str("op") {
                Some("invert") => ("grid", "degrid"),
                _ => ("degrid", "grid"),
            };
            for n in [plane_op, "fft", "wscreen"] {
                assert_eq!(kids(n), nplanes, "{what}: {n} spans per w-plane");
            }
            assert_eq!(
                kids(other),
                0.0,
                "{what}: {other} under a {:?} call",
                g.str("op")
            );
        }
    }
    for s in spans.iter().filter(|s| s.name == "solve") {
        let t = task_above(&ids, s).expect("task");
        assert!(
            t.int("cycle").is_some_and(|c| c >= 1),
            "solve before calibration's first cycle: {}",
            name_of(t)
        );
    }
}

/// Two views of a trace are the same spans (ids, names, parents, times, attributes,
/// services); `what` names the views.
fn assert_same_trace(what: [&str; 2], a: &[Span], b: &[Span]) {
    let a = by_id(a);
    let b = by_id(b);
    let only = |x: &HashMap<&str, &Span>, y: &HashMap<&str, &Span>| -> Vec<String> {
        x.iter()
            .filter(|(k, _)| !y.contains_key(*k))
            .map(|(_, s)| name_of(s))
            .collect()
    };
    assert!(
        a.len() == b.len() && only(&a, &b).is_empty(),
        "{} {} spans, {} {}; only {0}: {:?}; only {2}: {:?}",
        what[0],
        a.len(),
        what[1],
        b.len(),
        only(&a, &b),
        only(&b, &a)
    );
    for (id, s) in &a {
        assert_eq!(
            *s, b[id],
            "span {id} differs between {} and {}",
            what[0], what[1]
        );
    }
}

#[test]
fn ical_run_exports_one_trace_from_job_to_kernel() {
    let collector = Collector::start(Transport::HttpProtobuf);
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = collector.endpoint();
    let (out, o) = run_job(
        dir.path(),
        &ical_manifest("obs-ical"),
        &default_worker(),
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)],
    );
    assert_ok(&o);
    // The process has exited, so it has flushed: the collector holds everything.
    assert_eq!(collector.problems(), Vec::<String>::new());
    assert!(
        !stderr(&o).contains("trace export"),
        "export to a live collector warned: {}",
        stderr(&o)
    );
    let got = collector.spans();
    let plan = read_plan(&out);
    let manifests = read_manifests(&out);
    assert!(
        plan.stages.iter().any(|s| s.kind == TaskKind::Residual)
            && manifests.iter().any(|m| m.kind == TaskKind::Weights),
        "the job has weights and residual stages"
    );
    let tasks = check_tree(&got, &plan, &manifests);
    check_task_attributes(&tasks, &plan, &manifests);
    check_ical_phases(&got, &tasks, &plan);
    assert_same_trace(["exported", "trace.json"], &got, &stored_trace(&out));
}

#[test]
fn grpc_export_delivers_the_same_trace() {
    let collector = Collector::start(Transport::Grpc);
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = collector.endpoint();
    let (out, o) = run_job(
        dir.path(),
        &invert_manifest("obs-grpc"),
        &default_worker(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ],
    );
    assert_ok(&o);
    assert!(!stderr(&o).contains("trace export"), "{}", stderr(&o));
    let got = collector.spans();
    let plan = read_plan(&out);
    let manifests = read_manifests(&out);
    let tasks = check_tree(&got, &plan, &manifests);
    check_task_attributes(&tasks, &plan, &manifests);
    for n in ["read", "gridder", "grid", "fft", "write"] {
        assert!(got.iter().any(|s| s.name == n), "no {n} span over gRPC");
    }
    assert_same_trace(["exported", "trace.json"], &got, &stored_trace(&out));
}

#[test]
fn a_dead_collector_costs_one_warning_not_the_run() {
    // A port that refuses connections: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("an ephemeral port")
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().expect("tempdir");
    // The local executor reads each worker's stderr only for its last line (the error of a
    // failed task); to see what every worker said, a wrapper keeps each one's stderr.
    let logs = dir.path().join("worker-stderr");
    std::fs::create_dir(&logs).expect("mkdir");
    let wrapper = dir.path().join("worker.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec '{BIN}' worker \"$@\" 2>'{}/'$$.log\n",
            logs.display()
        ),
    )
    .expect("write wrapper");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let worker = arg(&wrapper).to_string();
    assert!(!worker.contains(char::is_whitespace), "{worker}");
    let (out, o) = run_job(
        dir.path(),
        &invert_manifest("obs-dead"),
        &worker,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2000"),
        ],
    );
    assert_ok(&o);
    for f in [
        "products/dirty.fits",
        "products/psf.fits",
        "diagnostics/report.html",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // The spans are kept under diagnostics/ as the warning says.
    let plan = read_plan(&out);
    let manifests = read_manifests(&out);
    check_tree(&stored_trace(&out), &plan, &manifests);

    // The driver says it once, naming the endpoint.
    let err = stderr(&o);
    let warnings: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("trace export to"))
        .collect();
    assert_eq!(warnings.len(), 1, "driver stderr:\n{err}");
    assert!(
        warnings[0].starts_with("warning: ")
            && warnings[0].contains(&format!("{endpoint}/v1/traces")),
        "{}",
        warnings[0]
    );
    // Every worker process (one per committed task in a run without retries) says it once
    // on its own stderr, which does not reach the user's terminal.
    let worker_logs: Vec<String> = std::fs::read_dir(&logs)
        .expect("logs")
        .map(|e| std::fs::read_to_string(e.expect("entry").path()).expect("log"))
        .collect();
    assert_eq!(
        worker_logs.len(),
        manifests.len(),
        "one worker process per task"
    );
    for log in &worker_logs {
        assert_eq!(
            log.matches("trace export to").count(),
            1,
            "worker stderr:\n{log}"
        );
    }
}

/// The columns of timings.csv by name.
fn timings(out: &Path) -> (String, Vec<(String, String)>) {
    let text = std::fs::read_to_string(out.join("diagnostics/timings.csv")).expect("timings.csv");
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .expect("header")
        .split(',')
        .map(String::from)
        .collect();
    let row: Vec<String> = lines
        .next()
        .expect("row")
        .split(',')
        .map(String::from)
        .collect();
    assert_eq!(lines.next(), None, "one row");
    assert_eq!(header.len(), row.len(), "header and row widths");
    (text.clone(), header.into_iter().zip(row).collect())
}

#[test]
fn timings_csv_agrees_with_the_task_spans_and_report_rerenders_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    // No collector: trace.json is written all the same.
    let (out, o) = run_job(
        dir.path(),
        &ical_manifest("obs-timings"),
        &default_worker(),
        &[],
    );
    assert_ok(&o);
    let plan = read_plan(&out);
    let manifests = read_manifests(&out);
    let spans = stored_trace(&out);
    check_tree(&spans, &plan, &manifests);

    let (text, cols) = timings(&out);
    let header: Vec<&str> = cols.iter().map(|(k, _)| k.as_str()).collect();
    let fixed: Vec<&str> = TIMINGS_COLUMNS.split(',').collect();
    assert_eq!(
        &header[..fixed.len()],
        &fixed[..],
        "the documented columns first"
    );
    let per_stage: Vec<String> = plan
        .stages
        .iter()
        .map(|s| format!("time_stage:{}", s.name))
        .collect();
    assert_eq!(
        &header[fixed.len()..],
        &per_stage[..],
        "then one column per plan stage"
    );
    let val: BTreeMap<&str, &str> = cols.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let num = |k: &str| -> f64 {
        let v = val[k];
        assert!(!v.starts_with('-'), "{k} = {v}: negative");
        v.parse()
            .unwrap_or_else(|_| panic!("{k} = {v:?} is not a number"))
    };

    // The oracle: the task spans' durations, by stage.
    let mut by_stage: BTreeMap<&str, f64> = BTreeMap::new();
    for t in spans.iter().filter(|s| s.name == "task") {
        *by_stage.entry(t.str("stage").expect("stage")).or_default() += t.seconds();
    }
    // `{:.3}` rounds once per column: at most half a millisecond (plus float noise).
    let close = |k: &str, want: f64| {
        let got = num(k);
        assert!(
            (got - want).abs() <= 5e-4 + 1e-9,
            "{k} = {got}, task spans say {want:.6}"
        );
    };
    for st in &plan.stages {
        close(
            &format!("time_stage:{}", st.name),
            by_stage.get(st.name.as_str()).copied().unwrap_or(0.0),
        );
    }
    let kind_sum = |pred: &dyn Fn(&aperture_pipeline::plan::Stage) -> bool| -> f64 {
        plan.stages
            .iter()
            .filter(|s| pred(s))
            .map(|s| by_stage.get(s.name.as_str()).copied().unwrap_or(0.0))
            .sum()
    };
    for (col, kind) in [
        ("time_simulate", TaskKind::Simulate),
        ("time_weights", TaskKind::Weights),
        ("time_invert", TaskKind::Invert),
        ("time_residual", TaskKind::Residual),
        ("time_reduce", TaskKind::Reduce),
        ("time_deconvolve", TaskKind::Deconvolve),
        ("time_restore", TaskKind::Restore),
        ("time_predict", TaskKind::Predict),
    ] {
        close(col, kind_sum(&|s| s.kind == kind));
    }
    // ICAL iterations: every major cycle after the first invert (residual, its reduction
    // tree, deconvolution).
    close(
        "time_ical",
        kind_sum(&|s| {
            matches!(s.kind, TaskKind::Residual | TaskKind::Deconvolve)
                || (s.kind == TaskKind::Reduce && s.cycle > 0)
        }),
    );
    close("task_seconds", by_stage.values().sum());
    // The run's figures.
    let job = spans.iter().find(|s| s.name == "job").expect("job span");
    assert!(
        num("time_overall") + 1e-3 >= job.seconds(),
        "wall time {} shorter than the job span {}",
        num("time_overall"),
        job.seconds()
    );
    assert_eq!(val["context"], "ical");
    assert_eq!(val["nworkers"], "2");
    assert_eq!(num("nfreqwin"), 3.0);
    assert_eq!(num("ntimes"), 3.0);
    assert_eq!(num("rmax"), 300.0);
    assert_eq!(num("npixel"), f64::from(plan.image.npix));
    assert_eq!(num("major_cycles"), 2.0);
    assert_eq!(num("graph_size"), plan.total_tasks() as f64);
    assert_eq!(
        num("peak_rss_bytes"),
        manifests
            .iter()
            .map(|m| m.peak_rss_bytes)
            .max()
            .unwrap_or(0) as f64
    );

    // `aperture report` re-renders the diagnostics from storage alone.
    let before_trace = stored_trace(&out);
    for f in ["report.html", "timings.csv"] {
        std::fs::remove_file(out.join("diagnostics").join(f)).expect("remove");
    }
    let r = Command::new(BIN)
        .args(["--quiet", "report", arg(&out)])
        .output()
        .expect("aperture report");
    assert_ok(&r);
    assert!(
        out.join("diagnostics/report.html").is_file(),
        "report.html is back"
    );
    let (again, _) = timings(&out);
    assert_eq!(again, text, "re-rendered timings.csv differs");
    assert_same_trace(
        ["re-rendered trace.json", "the run's trace.json"],
        &stored_trace(&out),
        &before_trace,
    );
}
