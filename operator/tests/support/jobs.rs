//! Helpers of the control-plane job tests: submit an ImagingJob with kubectl, wait for
//! its phase, read its events, and fetch and compare products from the S3 bucket.

use std::path::Path;
use std::time::Duration;

use aperture_pipeline::formats::fits::read_fits_image;
use aperture_pipeline::plan::Plan;
use aperture_pipeline::storage::Store;
use aperture_pipeline::tasks::TaskEnv;
use ndarray::Array2;

use super::{Env, Operator, TestNs, context, imaging_job, phase, wait_for};

/// `kubectl apply -f -` of `manifest` in the namespace (as the admin, as a user would).
pub fn apply(env: &Env, ns: &TestNs, manifest: &str) {
    let out = ns.kubectl(env, &["apply", "-f", "-"], Some(manifest));
    assert!(out.ok, "kubectl apply: {}", out.stderr);
}

/// Waits until job `name` is in phase `want`; panics at once if it ends in another
/// terminal phase.
pub async fn wait_phase(
    env: &Env,
    ns: &TestNs,
    name: &str,
    want: &str,
    timeout: Duration,
    operator: Option<&Operator>,
) {
    let client = env.admin().await;
    let describe = || context(env, ns, name, operator);
    let got = wait_for(
        &format!("ImagingJob {}/{name} to be {want}", ns.name),
        timeout,
        async || {
            let p = phase(&imaging_job(&client, &ns.name, name).await?);
            (p == want || p == "Succeeded" || p == "Failed").then_some(p)
        },
        describe,
    )
    .await;
    assert_eq!(got, want, "{}", describe());
}

/// The reasons of the events about object `name` in the namespace (events.k8s.io).
pub fn event_reasons(env: &Env, ns: &TestNs, name: &str) -> Vec<String> {
    let out = ns.kubectl(
        env,
        &[
            "get",
            "events.events.k8s.io",
            "-o",
            "jsonpath={range .items[?(@.regarding.name==\"NAME\")]}{.reason}{\"\\n\"}{end}"
                .replace("NAME", name)
                .as_str(),
        ],
        None,
    );
    assert!(out.ok, "kubectl get events: {}", out.stderr);
    out.stdout.lines().map(str::to_string).collect()
}

/// The job's output store (read-write identity of the test S3 server).
pub fn output_store(env: &Env, url: &str) -> Store {
    Store::from_url_with(url, &env.s3.options()).expect("output store")
}

/// The plan, output and visibilities of a job run, read from S3.
pub async fn task_env(env: &Env, output: &str) -> TaskEnv {
    let out = output_store(env, output);
    let plan: Plan = out.get_json("plan.json").await.expect("plan.json");
    let vis = Store::from_url_with(&plan.visibilities, &env.s3.options()).expect("vis store");
    TaskEnv { plan, out, vis }
}

/// A FITS image of `store` (downloaded to `dir`): its pixels.
pub async fn fits(store: &Store, key: &str, dir: &Path) -> Array2<f64> {
    let bytes = store
        .get(key)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", store.key_url(key)));
    let path = dir.join(key.replace('/', "_"));
    std::fs::write(&path, &bytes).expect("write fits");
    read_fits_image(&path)
        .unwrap_or_else(|e| panic!("{key}: {e}"))
        .0
        .data_yx
}

/// ‖a − b‖ / ‖b‖.
pub fn rel_l2(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    assert_eq!(a.dim(), b.dim(), "image shapes differ");
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den).sqrt()
}
