//! `aperture run`: a job end to end as worker processes; killing a worker or the whole
//! run and re-running gives identical products; bad manifests and outputs are refused
//! with the field or object named and a non-zero exit.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{arg, assert_ok, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_aperture");

fn manifest(name: &str, pipeline: &str, extra: &str) -> String {
    format!(
        "apiVersion: aperture.dev/v1alpha1
kind: ImagingJob
metadata: {{name: {name}}}
spec:
  pipeline: {pipeline}
  input:
    simulate: {{telescope: LOW, rmax: 300, frequencyWindows: 6, ntimes: 3, sky: {{sources: 3}}}}
  image: {{npixel: 128, epsilon: 1.0e-5}}
  parallelism: {{maxParallel: 2, reductionFanIn: 2, windowsPerShard: 1}}
{extra}"
    )
}

fn write_job(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(format!("{name}.yaml"));
    std::fs::write(&p, text).expect("write manifest");
    p
}

fn run_cmd(job: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.env("APERTURE_WORKER", format!("{BIN} worker"))
        .args(["--quiet", "run", arg(job), "--output", arg(out)])
        .args(extra);
    c
}

fn run(job: &Path, out: &Path, extra: &[&str]) -> Output {
    run_cmd(job, out, extra)
        .output()
        .expect("running aperture run")
}

/// Every product file's bytes, by name.
fn products(out: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(out.join("products"))
        .expect("products/")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).expect("read"),
            )
        })
        .collect();
    v.sort();
    v
}

fn manifests(out: &Path) -> usize {
    let Ok(stages) = std::fs::read_dir(out.join("tasks")) else {
        return 0;
    };
    stages
        .filter_map(Result::ok)
        .map(|s| std::fs::read_dir(s.path()).map_or(0, |d| d.count()))
        .sum()
}

/// Polls (bounded) until `cond` holds; a deadline, not a sleep, decides failure.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
        std::thread::park_timeout(Duration::from_millis(5));
    }
}

/// Worker processes started by the run `pid` (its children).
fn children(pid: u32) -> Vec<u32> {
    let mut v = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.filter_map(Result::ok) {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                v.extend(s.split_whitespace().filter_map(|x| x.parse::<u32>().ok()));
            }
        }
    }
    v
}

#[test]
fn invert_job_writes_products_and_diagnostics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let job = write_job(dir.path(), "inv", &manifest("inv", "invert", ""));
    let out = dir.path().join("out");
    let o = run(&job, &out, &[]);
    assert_ok(&o);
    for f in [
        "products/dirty.fits",
        "products/psf.fits",
        "products/dirty.png",
        "plan.json",
        "diagnostics/timings.csv",
        "diagnostics/tasks.csv",
        "diagnostics/stages.csv",
        "diagnostics/trace.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let timings = std::fs::read_to_string(out.join("diagnostics/timings.csv")).expect("timings");
    let mut lines = timings.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let row: Vec<&str> = lines.next().expect("row").split(',').collect();
    let col = |name: &str| row[header.iter().position(|h| *h == name).expect(name)];
    assert_eq!(col("nfreqwin"), "6");
    assert_eq!(col("npixel"), "128");
    assert!(col("time_overall").parse::<f64>().expect("number") > 0.0);
    // A second run of the same manifest resumes: nothing left to do, same products.
    let before = products(&out);
    assert_ok(&run(&job, &out, &[]));
    assert_eq!(before, products(&out));
}

#[test]
fn killed_workers_and_runs_resume_to_identical_products() {
    let dir = tempfile::tempdir().expect("tempdir");
    let job = write_job(dir.path(), "kill", &manifest("kill", "invert", ""));
    let reference = dir.path().join("ref");
    assert_ok(&run(&job, &reference, &["--parallel", "1"]));
    let total = manifests(&reference);

    // Kill one worker process mid-run: the task is retried, the run still succeeds.
    let out = dir.path().join("a");
    let mut child = run_cmd(&job, &out, &["--parallel", "1"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let mut killed = false;
    wait_until("a worker to start", || {
        if let Some(w) = children(pid).first() {
            killed = Command::new("kill")
                .args(["-9", &w.to_string()])
                .status()
                .is_ok_and(|s| s.success());
        }
        killed || child.try_wait().ok().flatten().is_some()
    });
    let o = child.wait_with_output().expect("wait");
    assert!(
        o.status.success(),
        "run after a killed worker: {}",
        stderr(&o)
    );
    assert!(killed, "no worker was seen to kill");
    assert_eq!(products(&reference), products(&out));

    // Kill the whole run after some tasks committed, then re-run: it resumes.
    for k in [1usize, total / 2, total - 2] {
        let out = dir.path().join(format!("b{k}"));
        let mut child = run_cmd(&job, &out, &["--parallel", "2"])
            .spawn()
            .expect("spawn");
        wait_until("tasks to commit", || {
            manifests(&out) >= k || child.try_wait().ok().flatten().is_some()
        });
        let _ = child.kill();
        let _ = child.wait();
        let o = run(&job, &out, &[]);
        assert_ok(&o);
        assert_eq!(
            products(&reference),
            products(&out),
            "after killing at {k} tasks"
        );
    }
}

fn fails_with(o: &Output, needles: &[&str]) {
    assert!(!o.status.success(), "expected failure, got success");
    let e = stderr(o);
    assert_eq!(
        e.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "one error line: {e}"
    );
    for n in needles {
        assert!(e.contains(n), "{n:?} not in: {e}");
    }
}

#[test]
fn bad_manifests_name_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let cases = [
        (
            "unknown",
            manifest("x", "invert", "  majorCycle: 3\n"),
            "spec.majorCycle",
        ),
        (
            "type",
            manifest("x", "invert", "").replace("npixel: 128", "npixel: big"),
            "spec.image.npixel",
        ),
        (
            "range",
            manifest("x", "invert", "").replace("epsilon: 1.0e-5", "epsilon: 2.0"),
            "spec.image.epsilon",
        ),
        ("pipeline", manifest("x", "imaging", ""), "spec.pipeline"),
        (
            "nested",
            manifest("x", "invert", "").replace("rmax: 300", "rmax: 300, stations: 4"),
            "spec.input.simulate.stations",
        ),
    ];
    for (name, text, field) in cases {
        let job = write_job(dir.path(), name, &text);
        let o = run(&job, &out, &[]);
        fails_with(&o, &[field]);
        assert!(
            !out.join("plan.json").exists(),
            "{name}: nothing may be written"
        );
    }
    let o = run(&dir.path().join("missing.yaml"), &out, &[]);
    fails_with(&o, &["missing.yaml"]);
}

#[test]
fn unusable_inputs_and_outputs_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    // An input dataset that does not exist.
    let text = manifest("x", "invert", "").replace(
        "simulate: {telescope: LOW, rmax: 300, frequencyWindows: 6, ntimes: 3, sky: {sources: 3}}",
        &format!(
            "visibilities: {}",
            dir.path().join("nothing.zarr").display()
        ),
    );
    let job = write_job(dir.path(), "noinput", &text);
    fails_with(
        &run(&job, &out, &[]),
        &["spec.input.visibilities", "nothing.zarr"],
    );
    // An unreachable S3 endpoint.
    let text = manifest("x", "invert", "").replace(
        "simulate: {telescope: LOW, rmax: 300, frequencyWindows: 6, ntimes: 3, sky: {sources: 3}}",
        "visibilities: s3://bucket/obs.zarr",
    );
    let job = write_job(dir.path(), "unreachable", &text);
    let o = run_cmd(&job, &out, &[])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "y")
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("run");
    fails_with(&o, &["obs.zarr"]);
    // An output below a regular file cannot be written.
    let file = dir.path().join("plainfile");
    std::fs::write(&file, b"x").expect("write");
    let job = write_job(dir.path(), "inv", &manifest("inv", "invert", ""));
    fails_with(&run(&job, &file.join("out"), &[]), &["plainfile"]);
    // A different manifest on an existing output is refused without --force.
    assert_ok(&run(&job, &out, &[]));
    let other = write_job(
        dir.path(),
        "inv2",
        &manifest("inv", "invert", "").replace("npixel: 128", "npixel: 96"),
    );
    fails_with(&run(&other, &out, &[]), &["--force"]);
    assert_ok(&run(&other, &out, &["--force"]));
}

#[test]
fn a_corrupt_chunk_fails_the_task_naming_it_and_leaves_no_products_but_diagnostics() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A first job writes the visibilities (vis.zarr) of a simulation.
    let job = write_job(dir.path(), "sim", &manifest("sim", "invert", ""));
    let first = dir.path().join("first");
    assert_ok(&run(&job, &first, &[]));
    let chunk = first.join("vis.zarr/VISIBILITY/c/0/0/2/0");
    assert!(chunk.is_file(), "expected chunk {}", chunk.display());
    std::fs::write(&chunk, b"this is not a zarr chunk").expect("corrupt");
    // A second job images that dataset: window 2's task fails permanently.
    let text = manifest("reuse", "invert", "").replace(
        "simulate: {telescope: LOW, rmax: 300, frequencyWindows: 6, ntimes: 3, sky: {sources: 3}}",
        &format!("visibilities: {}", first.join("vis.zarr").display()),
    );
    let job = write_job(dir.path(), "reuse", &text);
    let out = dir.path().join("second");
    let o = run(&job, &out, &[]);
    fails_with(&o, &["/2", "VISIBILITY/c/0/0/2/0"]);
    assert!(
        !out.join("products").exists(),
        "no product may be presented after a failure"
    );
    // The diagnostics of the tasks that did run are still left.
    assert!(out.join("diagnostics/timings.csv").is_file());
    assert!(out.join("diagnostics/trace.json").is_file());
}

#[test]
fn ctrl_c_stops_the_run_and_a_rerun_finishes_it() {
    use std::io::Read as _;
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let job = write_job(dir.path(), "int", &manifest("int", "invert", ""));
    let out = dir.path().join("out");
    // A worker that says it has its task (through a FIFO the test reads, so no timing is
    // guessed) and then never finishes: Ctrl-C is certain to land mid-task. It reads its
    // assignment first: the workers started ahead and still waiting say nothing.
    let fifo = dir.path().join("started");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success()
    );
    let worker = dir.path().join("stuck-worker");
    std::fs::write(
        &worker,
        "#!/bin/sh\nread -r task\necho $$ > \"$STARTED_FIFO\"\nexec tail -f /dev/null\n",
    )
    .expect("write worker");
    std::fs::set_permissions(&worker, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let child = run_cmd(&job, &out, &["--parallel", "1"])
        .env("APERTURE_WORKER", &worker)
        .env("STARTED_FIFO", &fifo)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let mut said = String::new();
    std::fs::File::open(&fifo)
        .expect("open fifo")
        .read_to_string(&mut said)
        .expect("read fifo");
    let worker_pid: u32 = said.trim().parse().expect("the worker's pid");
    assert!(
        Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .expect("kill")
            .success()
    );
    let o = child.wait_with_output().expect("wait");
    // Stopped mid-task: one clear line, a failing exit, no products.
    assert!(!o.status.success(), "the interrupted run exited 0");
    let e = stderr(&o);
    assert!(e.contains("interrupted") && e.contains("resume"), "{e}");
    assert!(!out.join("products").exists());
    // The worker never ends by itself: only the run's SIGKILL on the way out stops it.
    wait_until("the stuck worker to be killed", || {
        std::fs::read_to_string(format!("/proc/{worker_pid}/stat")).map_or(true, |st| {
            st.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
    });
    // The same command with a real worker resumes and finishes.
    assert_ok(&run(&job, &out, &[]));
    assert!(out.join("products/dirty.fits").is_file());
}

/// Every file under `out` outside `tasks/` and `diagnostics/`, with its bytes.
fn objects(out: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, v: &mut Vec<(PathBuf, Vec<u8>)>) {
        for e in std::fs::read_dir(dir)
            .expect("read_dir")
            .filter_map(Result::ok)
        {
            let p = e.path();
            let rel = p.strip_prefix(root).expect("under root").to_path_buf();
            if rel.starts_with("tasks") || rel.starts_with("diagnostics") {
                continue;
            }
            if p.is_dir() {
                walk(root, &p, v);
            } else {
                v.push((rel, std::fs::read(&p).expect("read")));
            }
        }
    }
    let mut v = Vec::new();
    walk(out, out, &mut v);
    v.sort();
    v
}

/// `aperture worker --task-from-stdin` with `input` on its standard input.
fn stdin_worker(out: &Path, input: &str) -> Output {
    use std::io::Write as _;
    let mut c = Command::new(BIN)
        .args(["worker", "--plan", arg(out), "--task-from-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn worker");
    c.stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write assignment");
    c.wait_with_output().expect("wait worker")
}

#[test]
fn workers_started_ahead_take_their_task_from_stdin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let job = write_job(dir.path(), "pre", &manifest("pre", "invert", ""));
    // Workers started only when due, and started ahead (the default): same products.
    let cold = dir.path().join("cold");
    assert_ok(&run(&job, &cold, &["--prestart", "0"]));
    let out = dir.path().join("out");
    assert_ok(&run(&job, &out, &[]));
    assert_eq!(products(&cold), products(&out));

    // One task handed over as a line: it is redone to the same bytes and announced.
    let before = objects(&out);
    let key = out.join("tasks/invert/00002.json");
    std::fs::remove_file(&key).expect("remove manifest");
    let o = stdin_worker(&out, "{\"stage\":\"invert\",\"index\":2,\"attempt\":1}\n");
    assert_ok(&o);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "committed\n");
    assert!(key.is_file(), "the manifest was not rewritten");
    assert_eq!(before, objects(&out));

    // No line: not needed, nothing done.
    let o = stdin_worker(&out, "");
    assert_ok(&o);
    assert!(o.stdout.is_empty());
    // Not an assignment: a usage error naming standard input.
    let o = stdin_worker(&out, "invert 2\n");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not a task assignment"),
        "{}",
        stderr(&o)
    );
    // A stage the plan lacks: a permanent failure naming it, and no announcement.
    let o = stdin_worker(&out, "{\"stage\":\"nope\",\"index\":0,\"attempt\":1}\n");
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(stderr(&o).contains("\"nope\""), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
}
