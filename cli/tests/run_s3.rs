//! `aperture run` with its output on a real S3 server (SeaweedFS on 127.0.0.1, started
//! by the test support of the storage conformance suite): plan, simulated visibilities,
//! partials, manifests and products all go through S3, and a rerun resumes.

mod common;

#[path = "../../crates/pipeline/tests/support/seaweedfs.rs"]
mod seaweedfs;

use std::process::Command;

use aperture_pipeline::storage::Store;
use common::{assert_ok, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_aperture");

#[test]
fn an_invert_job_runs_with_its_output_on_s3() {
    let Some(server) = seaweedfs::server() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let job = dir.path().join("s3job.yaml");
    std::fs::write(
        &job,
        "apiVersion: aperture.dev/v1alpha1
kind: ImagingJob
metadata: {name: s3job}
spec:
  pipeline: invert
  input:
    simulate: {telescope: LOW, rmax: 300, frequencyWindows: 4, ntimes: 3, sky: {sources: 3}}
  image: {npixel: 128, epsilon: 1.0e-5}
  parallelism: {maxParallel: 2, reductionFanIn: 2, windowsPerShard: 1}
",
    )
    .expect("manifest");
    let url = server.url("run-s3job");
    let run = || {
        let mut c = Command::new(BIN);
        c.env("APERTURE_WORKER", format!("{BIN} worker")).args([
            "--quiet",
            "run",
            job.to_str().expect("utf-8"),
            "--output",
            &url,
        ]);
        for (k, v) in server.env() {
            c.env(k, v);
        }
        c.output().expect("aperture run")
    };
    let o = run();
    assert_ok(&o);
    let store = server.store("run-s3job");
    let keys = Store::block_on(store.list("")).expect("list");
    for want in [
        "plan.json",
        "products/dirty.fits",
        "products/psf.fits",
        "diagnostics/timings.csv",
        "tasks/restore/00000.json",
    ] {
        assert!(
            keys.iter().any(|k| k == want),
            "{want} missing from {url}: {keys:?}"
        );
    }
    assert!(
        keys.iter().any(|k| k.starts_with("vis.zarr/VISIBILITY/")),
        "no visibilities in S3"
    );
    let dirty = Store::block_on(store.get("products/dirty.fits")).expect("get");
    // A rerun resumes: every task is done, the products are unchanged.
    let o = run();
    assert!(o.status.success(), "{}", stderr(&o));
    let again = Store::block_on(store.get("products/dirty.fits")).expect("get");
    assert_eq!(dirty, again);
}
