//! Whole jobs on a real control plane (see docs/testing-kubernetes.md): an invert and a
//! small ICAL job with `s3://` output go from `kubectl apply` to `Succeeded`, with the
//! operator running as a process under exactly the Helm chart's RBAC and the test node
//! agent (a stand-in for kubelet) running the worker pods as local `aperture-worker`
//! processes. The products in the bucket are checked against independent oracles: the
//! invert's dirty image and PSF against one gridder call over all the visibilities, the
//! ICAL's images against the same job run by the local executor. `kubectl get
//! imagingjobs` shows the printer columns and the Events are recorded.
//!
//! Skips (passes with a message) without the control-plane binaries, unless
//! `APERTURE_REQUIRE_CONTROLPLANE=1`.

mod support;

use std::time::Duration;

use aperture_imaging::gridder::{GridderOptions, dirty_image, psf_image};
use aperture_imaging::vis::VisBlock;
use aperture_imaging::weighting::imaging_weights;
use aperture_pipeline::executor::{prepare, run_inline};
use aperture_pipeline::spec::parse_job;
use aperture_pipeline::storage::Store;
use aperture_pipeline::tasks::TaskEnv;
use ndarray::{Axis, concatenate};
use support::jobs::{apply, event_reasons, fits, output_store, rel_l2, task_env, wait_phase};
use support::{Operator, SECRET, TestNs, env};

const EPS: f64 = 1e-6;

fn invert_job(output: &str) -> String {
    format!(
        "apiVersion: aperture.dev/v1alpha1
kind: ImagingJob
metadata: {{name: invert}}
spec:
  pipeline: invert
  input:
    simulate: {{telescope: LOW, rmax: 300, frequencyWindows: 4, ntimes: 3, sky: {{sources: 4}}, noiseJy: 0.1}}
  output: {output}
  image: {{npixel: 128, epsilon: {EPS}, weighting: {{type: natural}}}}
  parallelism: {{maxParallel: 4, reductionFanIn: 2, windowsPerShard: 1}}
  storage: {{credentialsSecret: {SECRET}}}
"
    )
}

fn ical_job(output: &str) -> String {
    format!(
        "apiVersion: aperture.dev/v1alpha1
kind: ImagingJob
metadata: {{name: ical}}
spec:
  pipeline: ical
  input:
    simulate:
      telescope: LOW
      rmax: 300
      frequencyWindows: 4
      ntimes: 3
      sky: {{sources: 2, fluxMinJy: 2, fluxMaxJy: 4, extent: 0.4}}
      gainPhaseRmsDeg: 20
  output: {output}
  image: {{npixel: 64, epsilon: {EPS}, weighting: {{type: natural}}}}
  deconvolution: {{algorithm: hogbom, niter: 200, gain: 0.2, threshold: 0.01}}
  calibration: {{context: T, T: {{firstCycle: 1}}}}
  majorCycles: 2
  parallelism: {{maxParallel: 4, windowsPerShard: 2, reductionFanIn: 2}}
  storage: {{credentialsSecret: {SECRET}}}
"
    )
}

/// All windows of the dataset as one block (channels side by side).
async fn whole(env: &TaskEnv) -> VisBlock {
    let ds = env.dataset().await.expect("dataset");
    let mut blocks = Vec::new();
    for w in 0..ds.nwindows() {
        blocks.push(ds.read_window(w).await.expect("window"));
    }
    let mut all = blocks[0].clone();
    all.freq_c = blocks.iter().flat_map(|b| b.freq_c.clone()).collect();
    all.vis_rc = concatenate(
        Axis(1),
        &blocks.iter().map(|b| b.vis_rc.view()).collect::<Vec<_>>(),
    )
    .expect("rows");
    all.weight_rc = concatenate(
        Axis(1),
        &blocks
            .iter()
            .map(|b| b.weight_rc.view())
            .collect::<Vec<_>>(),
    )
    .expect("rows");
    all.flag_rc = concatenate(
        Axis(1),
        &blocks.iter().map(|b| b.flag_rc.view()).collect::<Vec<_>>(),
    )
    .expect("rows");
    all.validate().expect("valid block");
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invert_job_goes_from_kubectl_apply_to_succeeded_with_correct_products() {
    let Some(env) = env() else { return };
    let ns = TestNs::create(env, "invert", None);
    let operator = Operator::start(env, &ns, "op-invert");
    let output = ns.output(env, "invert");
    apply(env, &ns, &invert_job(&output));
    wait_phase(
        env,
        &ns,
        "invert",
        "Succeeded",
        Duration::from_secs(600),
        Some(&operator),
    )
    .await;

    // The printer columns: NAME PIPELINE PHASE CYCLE PROGRESS AGE.
    let out = ns.kubectl(env, &["get", "imagingjobs"], None);
    assert!(out.ok, "{}", out.stderr);
    let lines: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["NAME", "PIPELINE", "PHASE", "CYCLE", "PROGRESS", "AGE"],
        "{}",
        out.stdout
    );
    let row = &lines[1];
    assert_eq!(
        &row[..3],
        ["invert", "invert", "Succeeded"],
        "{}",
        out.stdout
    );
    let (done, total) = row[4].split_once('/').expect("progress n/m");
    assert_eq!(done, total, "{}", out.stdout);

    // Events, published by the operator through events.k8s.io.
    let reasons = event_reasons(env, &ns, "invert");
    for r in ["Planning", "Planned", "StageStarted", "Succeeded"] {
        assert!(
            reasons.iter().any(|x| x == r),
            "no {r} event in {reasons:?}"
        );
    }

    // The stage Jobs are owned by the ImagingJob.
    let out = ns.kubectl(
        env,
        &[
            "get",
            "jobs",
            "-l",
            "aperture.dev/job=invert",
            "-o",
            "jsonpath={range .items[*]}{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name} {.status.succeeded}{\"\\n\"}{end}",
        ],
        None,
    );
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.lines().count() >= 4, "{}", out.stdout);
    for l in out.stdout.lines() {
        assert!(l.starts_with("ImagingJob/invert "), "{l}");
    }

    // The products, against one gridder call over all the data in the bucket.
    let tenv = task_env(env, &output).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dirty = fits(&tenv.out, "products/dirty.fits", tmp.path()).await;
    let psf = fits(&tenv.out, "products/psf.fits", tmp.path()).await;
    let block = whole(&tenv).await;
    let geom = tenv.geometry().expect("geometry");
    let (w, _) = imaging_weights(&block, &geom, &tenv.weighting()).expect("weights");
    let opts = GridderOptions {
        epsilon: EPS,
        ..Default::default()
    };
    let (d1, _) = dirty_image(
        &block.uvw_r,
        &block.freq_c,
        block.vis_rc.view(),
        w.view(),
        &geom,
        &opts,
    )
    .expect("dirty");
    let (p1, _) = psf_image(&block.uvw_r, &block.freq_c, w.view(), &geom, &opts).expect("psf");
    let (ed, ep) = (rel_l2(&dirty, &d1.data_yx), rel_l2(&psf, &p1.data_yx));
    assert!(ed < 2.0 * EPS + 1e-7, "dirty differs by {ed:e}");
    assert!(ep < 2.0 * EPS + 1e-7, "psf differs by {ep:e}");
    assert!(
        (psf[[64, 64]] - 1.0).abs() < 1e-6,
        "psf peak {}",
        psf[[64, 64]]
    );
    // The diagnostics the operator writes at the end.
    for key in ["diagnostics/timings.csv", "diagnostics/report.html"] {
        assert!(tenv.out.exists(key).await.expect("head"), "{key} missing");
    }
    // One trace: the pods' task spans (TRACEPARENT = their stage span) hang under the
    // stage spans the operator derived, which hang under the job span.
    let doc: serde_json::Value = tenv
        .out
        .get_json("diagnostics/trace.json")
        .await
        .expect("trace.json");
    let spans = aperture_telemetry::from_otlp_json(&doc).expect("OTLP JSON");
    let by_id: std::collections::HashMap<&str, &aperture_telemetry::SpanRecord> =
        spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    assert_eq!(
        spans.iter().filter(|s| s.parent_span_id.is_empty()).count(),
        1,
        "one root"
    );
    let tasks: Vec<_> = spans.iter().filter(|s| s.name == "task").collect();
    assert!(!tasks.is_empty());
    for t in &tasks {
        assert_eq!(
            t.service, "aperture-worker",
            "task spans come from the pods"
        );
        assert!(
            t.attr("synthesized").is_none(),
            "the pod's own span was stored"
        );
        let stage = by_id[t.parent_span_id.as_str()];
        assert_eq!(stage.name, "stage");
        assert_eq!(stage.attr("stage"), t.attr("stage"));
        assert_eq!(by_id[stage.parent_span_id.as_str()].name, "job");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ical_job_succeeds_and_equals_the_local_executor() {
    let Some(env) = env() else { return };
    let ns = TestNs::create(env, "ical", None);
    let operator = Operator::start(env, &ns, "op-ical");
    let output = ns.output(env, "ical");
    let manifest = ical_job(&output);
    apply(env, &ns, &manifest);
    wait_phase(
        env,
        &ns,
        "ical",
        "Succeeded",
        Duration::from_secs(900),
        Some(&operator),
    )
    .await;

    // The same job, run in this process by the local executor into a directory.
    let local = tempfile::tempdir().expect("tempdir");
    let job = parse_job(&manifest, "ical.yaml").expect("job");
    let (plan, out) = prepare(&job, &local.path().display().to_string(), false)
        .await
        .expect("prepare");
    let vis = Store::from_url(&plan.visibilities).expect("vis");
    run_inline(&TaskEnv { plan, out, vis })
        .await
        .expect("local run");

    let cluster = output_store(env, &output);
    let products = cluster.list("products/").await.expect("list products");
    let images: Vec<&String> = products.iter().filter(|k| k.ends_with(".fits")).collect();
    assert!(
        images.iter().any(|k| k.contains("restored")) && images.len() >= 3,
        "products: {products:?}"
    );
    let local_store = Store::from_url(&local.path().display().to_string()).expect("local");
    let tmp = tempfile::tempdir().expect("tempdir");
    for key in images {
        let a = fits(&cluster, key, tmp.path()).await;
        let b = fits(&local_store, key, tmp.path()).await;
        let d = rel_l2(&a, &b);
        assert!(d < 1e-6, "{key}: cluster and local runs differ by {d:e}");
    }
    let reasons = event_reasons(env, &ns, "ical");
    assert!(reasons.iter().any(|r| r == "Succeeded"), "{reasons:?}");
}
