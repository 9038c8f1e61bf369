//! `aperture run` with `spec.input.measurementSet`: the plan's import stage gives the same
//! dataset and dirty image as `aperture import ms` followed by a job on
//! `input.visibilities`; a bad MeasurementSet fails at planning naming the path, table or
//! column, with nothing presented as a product; a run killed during the import resumes
//! without redoing committed import tasks and ends with identical products.

#![cfg(feature = "ms")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use aperture_pipeline::formats::fits::read_fits_image;
use common::{arg, assert_ok, stderr};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_aperture");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/ms")
        .join(name)
}

/// An invert job on `input` (a YAML flow mapping), 8 windows of one channel, one window
/// per shard.
fn write_job(dir: &Path, name: &str, input: &str) -> PathBuf {
    let text = format!(
        "apiVersion: aperture.dev/v1alpha1
kind: ImagingJob
metadata: {{name: {name}}}
spec:
  pipeline: invert
  input: {input}
  image: {{npixel: 128, epsilon: 1.0e-5, weighting: {{type: natural}}}}
  parallelism: {{maxParallel: 2, reductionFanIn: 2, windowsPerShard: 1}}
"
    );
    let p = dir.join(format!("{name}.yaml"));
    std::fs::write(&p, text).expect("write manifest");
    p
}

fn run_cmd(job: &Path, out: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env("APERTURE_WORKER", format!("{BIN} worker")).args([
        "--quiet",
        "run",
        arg(job),
        "--output",
        arg(out),
    ]);
    c
}

fn run(job: &Path, out: &Path) -> Output {
    run_cmd(job, out).output().expect("running aperture run")
}

/// The group attribute `aperture` of the dataset at `dir`.
fn dataset_attrs(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("zarr.json")).expect("group metadata");
    let v: Value = serde_json::from_str(&text).expect("JSON");
    v["attributes"]["aperture"].clone()
}

fn rel_l2(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den).sqrt()
}

fn pixels(path: &Path) -> Vec<f64> {
    let (img, _) = read_fits_image(path).expect("FITS image");
    img.data_yx.iter().copied().collect()
}

#[test]
fn the_import_stage_equals_import_ms_then_visibilities() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ms = fixture("low-linear.ms");
    // The job's import stage.
    let job = write_job(
        dir.path(),
        "stage",
        &format!(
            "{{measurementSet: {{path: {}, channelsPerWindow: 1}}}}",
            arg(&ms)
        ),
    );
    let a = dir.path().join("a");
    assert_ok(&run(&job, &a));
    // `aperture import ms`, then a job on the dataset.
    let zarr = dir.path().join("cli.zarr");
    assert_ok(&common::aperture([
        "import",
        "ms",
        arg(&ms),
        arg(&zarr),
        "--channels-per-window",
        "1",
    ]));
    let job = write_job(
        dir.path(),
        "cli",
        &format!("{{visibilities: {}}}", arg(&zarr)),
    );
    let b = dir.path().join("b");
    assert_ok(&run(&job, &b));

    // The same dataset: metadata and manifest (but for its timing), the same chunks.
    let (mut got, mut want) = (dataset_attrs(&a.join("vis.zarr")), dataset_attrs(&zarr));
    for m in [&mut got, &mut want] {
        m["extra"]["imported_from"]["seconds"] = Value::Null;
    }
    assert_eq!(got["extra"]["imported_from"]["flagged_samples"], 301);
    assert_eq!(got, want);
    let files = common::listing(&zarr);
    assert_eq!(common::listing(&a.join("vis.zarr")), files);
    for f in files.iter().filter(|f| f.as_os_str() != "zarr.json") {
        let (x, y) = (a.join("vis.zarr").join(f), zarr.join(f));
        if y.is_file() {
            assert!(
                std::fs::read(&x).ok() == std::fs::read(&y).ok(),
                "{}",
                f.display()
            );
        }
    }
    // The same dirty image and PSF.
    for f in ["dirty.fits", "psf.fits"] {
        let (x, y) = (
            pixels(&a.join("products").join(f)),
            pixels(&b.join("products").join(f)),
        );
        assert_eq!(x.len(), 128 * 128);
        let e = rel_l2(&x, &y);
        assert!(e <= 1e-5, "{f}: relative L2 difference {e:e}");
    }
}

fn fails_at_planning(o: &Output, out: &Path, needles: &[&str]) {
    assert!(!o.status.success(), "expected failure");
    let e = stderr(o);
    assert_eq!(
        e.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "one error line: {e}"
    );
    for n in needles {
        assert!(e.contains(n), "{n:?} not in: {e}");
    }
    assert!(!out.join("plan.json").exists(), "a plan was written: {e}");
    assert!(
        !out.join("products").exists(),
        "products were presented: {e}"
    );
}

#[test]
fn a_bad_measurement_set_fails_at_planning_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let ms_job = |name: &str, body: &str| {
        write_job(dir.path(), name, &format!("{{measurementSet: {body}}}"))
    };
    // No such path: a relative path is relative to the manifest's directory.
    let o = run(&ms_job("nope", "{path: nope.ms}"), &out);
    let missing = dir.path().join("nope.ms");
    fails_at_planning(
        &o,
        &out,
        &[
            "spec.input.measurementSet",
            &format!(
                "{}: is not a MeasurementSet (no such directory)",
                missing.display()
            ),
        ],
    );
    // A directory that is not a casacore table.
    std::fs::create_dir(dir.path().join("empty.ms")).expect("mkdir");
    let o = run(&ms_job("empty", "{path: empty.ms}"), &out);
    fails_at_planning(
        &o,
        &out,
        &["empty.ms: is not a MeasurementSet", "table.dat"],
    );
    // A data column the MS does not have.
    let circular = fixture("low-circular.ms");
    let o = run(
        &ms_job(
            "model",
            &format!("{{path: {}, column: model}}", arg(&circular)),
        ),
        &out,
    );
    fails_at_planning(&o, &out, &["table MAIN has no column MODEL_DATA"]);
    // A selection outside the spectral window.
    let linear = fixture("low-linear.ms");
    let o = run(
        &ms_job(
            "chans",
            &format!("{{path: {}, channels: '3:5'}}", arg(&linear)),
        ),
        &out,
    );
    fails_at_planning(&o, &out, &["outside SPECTRAL_WINDOW 0"]);
    // Both a MeasurementSet and visibilities: the spec is refused, naming the fields.
    let both = write_job(
        dir.path(),
        "both",
        &format!(
            "{{measurementSet: {{path: {}}}, visibilities: x.zarr}}",
            arg(&linear)
        ),
    );
    let o = run(&both, &out);
    fails_at_planning(&o, &out, &["spec.input", "visibilities and measurementSet"]);
}

fn import_manifests(out: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(d) = std::fs::read_dir(out.join("tasks/import")) else {
        return Vec::new();
    };
    let mut v: Vec<_> = d
        .filter_map(Result::ok)
        .map(|e| (e.path(), std::fs::read(e.path()).unwrap_or_default()))
        .collect();
    v.sort();
    v
}

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

#[test]
fn a_run_killed_during_the_import_resumes_to_identical_products() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = format!(
        "{{measurementSet: {{path: {}, channelsPerWindow: 1}}}}",
        arg(&fixture("low-linear.ms"))
    );
    let job = write_job(dir.path(), "resume", &input);
    let reference = dir.path().join("ref");
    assert_ok(&run(&job, &reference));
    assert_eq!(import_manifests(&reference).len(), 8);

    let out = dir.path().join("killed");
    let mut child = run_cmd(&job, &out).spawn().expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(120);
    while import_manifests(&out).len() < 3 && child.try_wait().ok().flatten().is_none() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for import tasks"
        );
        std::thread::park_timeout(Duration::from_millis(2));
    }
    let _ = child.kill();
    let _ = child.wait();
    let done = import_manifests(&out);
    assert!(!done.is_empty(), "no import task committed before the kill");
    if !out.join("tasks/import-commit").exists() {
        // Until the commit, there is no dataset for a reader to see.
        assert!(!out.join("vis.zarr/zarr.json").exists());
    }
    assert_ok(&run(&job, &out));
    // The committed import tasks were not run again: their manifests are untouched.
    let after = import_manifests(&out);
    for (p, bytes) in &done {
        let again = after.iter().find(|(q, _)| q == p).map(|(_, b)| b);
        assert_eq!(again, Some(bytes), "{} was rewritten", p.display());
    }
    assert_eq!(after.len(), 8);
    assert_eq!(products(&reference), products(&out));
}
