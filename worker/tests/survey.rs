//! `aperture-worker survey` (the operator's survey of a MeasurementSet input) against the
//! local planner as oracle, on the checked-in fixture MS: the same facts, the same
//! `import/dataset.json`, byte-identical dataset layout objects and (planned from the
//! survey) the same plan; a bad MS gives a `Failed` result naming the path and column,
//! exit 65; a missing request, exit 65 naming it; a re-run changes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use aperture_pipeline::executor::survey::{
    SURVEY_KEY, SURVEY_REQUEST_KEY, SurveyOutcome, SurveyRequest, SurveyResult,
};
use aperture_pipeline::executor::{prepare_from_survey, prepare_with};
use aperture_pipeline::plan::{IMPORT_META_KEY, Plan};
use aperture_pipeline::spec::{ImagingJob, load_job};
use aperture_pipeline::storage::{Store, StoreOptions};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// examples/invert-ms.yaml (its relative MS path made absolute) with a uid, as the
/// operator sees it.
fn ms_job() -> ImagingJob {
    let mut job = load_job(&repo().join("examples/invert-ms.yaml")).expect("the example loads");
    job.metadata.uid = Some("5a1d9c3e-0b7f-4e21-8d6a-2f4c6b8e0a13".into());
    job
}

fn url(dir: &Path) -> String {
    format!("file://{}/", dir.display())
}

fn survey(output: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aperture-worker"))
        .args(["survey", "--output", output])
        .output()
        .expect("aperture-worker runs")
}

async fn request(out: &str, req: &SurveyRequest) {
    let store = Store::from_url(out).expect("store");
    store
        .put_json(SURVEY_REQUEST_KEY, req)
        .await
        .expect("request written");
}

async fn result(out: &str) -> SurveyResult {
    Store::from_url(out)
        .expect("store")
        .get_json(SURVEY_KEY)
        .await
        .expect("survey.json")
}

/// Every file under `dir/sub`, by relative path, with its bytes.
fn files(dir: &Path, sub: &str) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, at: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(at).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p
                    .strip_prefix(root)
                    .expect("under root")
                    .display()
                    .to_string();
                out.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&dir.join(sub), &dir.join(sub), &mut out);
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn survey_writes_what_the_local_planner_writes_and_plans_the_same() {
    let job = ms_job();
    let options = StoreOptions::default();
    // The oracle: the local planner opens the MS itself.
    let local = tempfile::tempdir().expect("tmp");
    let (local_plan, _) = prepare_with(&job, &url(local.path()), false, &options)
        .await
        .expect("local plan");
    // The operator's path: a request, the worker's survey, a plan from its result.
    let cluster = tempfile::tempdir().expect("tmp");
    let out = url(cluster.path());
    let req = SurveyRequest::for_job(&job).expect("an MS input");
    request(&out, &req).await;
    let o = survey(&out);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("surveyed "), "{}", stderr(&o));
    let res = result(&out).await;
    assert_eq!(res.request, req);
    let SurveyOutcome::Surveyed { facts } = &res.outcome else {
        panic!("not surveyed: {res:?}");
    };
    assert_eq!(facts, &local_plan.facts);
    // import/dataset.json: the same record (metadata and manifest).
    let read = |dir: &Path| -> Value {
        let text = std::fs::read_to_string(dir.join(IMPORT_META_KEY)).expect("dataset.json");
        serde_json::from_str(&text).expect("JSON")
    };
    assert_eq!(read(cluster.path()), read(local.path()));
    // The dataset's layout: the same objects, byte for byte (arrays, coordinates, UVW).
    let (a, b) = (
        files(local.path(), "vis.zarr"),
        files(cluster.path(), "vis.zarr"),
    );
    assert!(!a.is_empty());
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, v) in &a {
        assert!(&b[k] == v, "vis.zarr/{k} differs");
    }
    // Planned from the survey: the local plan, but for the output URLs.
    let (plan, _) = prepare_from_survey(&job, &out, &res, &options)
        .await
        .expect("plan from the survey");
    let norm = |p: &Plan| {
        let mut p = p.clone();
        p.output = String::new();
        p.visibilities = String::new();
        p
    };
    assert_eq!(norm(&plan), norm(&local_plan));
    assert_eq!(plan.visibilities, format!("{out}vis.zarr"));
    // Again: a resume returns the stored plan.
    let (again, _) = prepare_from_survey(&job, &out, &res, &options)
        .await
        .expect("resume");
    assert_eq!(again, plan);
    // A re-run survey pod finds its result and changes nothing.
    let before = files(cluster.path(), "");
    let o = survey(&out);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        files(cluster.path(), "") == before,
        "a re-run rewrote objects"
    );
}

#[tokio::test]
async fn a_bad_measurement_set_is_a_failed_survey_naming_path_and_table() {
    let mut job = ms_job();
    let cases = [
        (
            repo().join("tests/data/ms/unsupported.ms"),
            "POLARIZATION/CORR_TYPE",
        ),
        (repo().join("tests/data/ms/README.md"), "README.md"),
        (repo().join("tests/data/ms/no-such.ms"), "no-such.ms"),
    ];
    for (path, needle) in cases {
        let dir = tempfile::tempdir().expect("tmp");
        let out = url(dir.path());
        if let Some(ms) = job.spec.input.measurement_set.as_mut() {
            ms.path = path.display().to_string();
        }
        request(&out, &SurveyRequest::for_job(&job).expect("MS")).await;
        let o = survey(&out);
        assert_eq!(o.status.code(), Some(65), "{path:?}: {}", stderr(&o));
        let res = result(&out).await;
        let SurveyOutcome::Failed { error } = &res.outcome else {
            panic!("{path:?} surveyed: {res:?}");
        };
        for n in [needle, "spec.input.measurementSet"] {
            assert!(error.contains(n), "{n:?} not in {error:?}");
        }
        assert!(
            stderr(&o).contains(&format!("error: survey: {error}")),
            "{}",
            stderr(&o)
        );
        // Nothing to plan from: the reason names the path.
        let why = res.facts_for(&job).expect_err("no facts");
        assert!(
            why.contains(&format!(
                "the survey of the MeasurementSet {}",
                path.display()
            )),
            "{why}"
        );
        assert!(!dir.path().join("vis.zarr").exists(), "{path:?}: a layout");
    }
}

#[test]
fn without_a_request_the_survey_fails_naming_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let o = survey(&url(dir.path()));
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(stderr(&o).contains(SURVEY_REQUEST_KEY), "{}", stderr(&o));
    assert!(!dir.path().join(SURVEY_KEY).exists());
}
