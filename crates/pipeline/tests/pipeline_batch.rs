//! End to end, in process: map tasks that image several windows in one gridder call
//! (a batch over the windows' channels, tasks/map.rs) give what one gridder call over
//! all the data gives (invert), and what one call per window gives (ICAL with phase-only
//! T self-calibration: same gains, same images), to the gridder's accuracy.

use aperture_imaging::gridder::{GridderOptions, dirty_image, psf_image};
use aperture_imaging::vis::VisBlock;
use aperture_imaging::weighting::imaging_weights;
use aperture_pipeline::executor::{prepare, run_inline};
use aperture_pipeline::formats::fits::read_fits_image;
use aperture_pipeline::spec::parse_job;
use aperture_pipeline::storage::Store;
use aperture_pipeline::tasks::{StoredGains, TaskEnv, TaskManifest};
use ndarray::{Array2, Axis, concatenate};

const EPS: f64 = 1e-6;

const SIM: &str = "{telescope: LOW, rmax: 200, frequencyWindows: 5, ntimes: 2, sky: {sources: 4}, noiseJy: 0.05, gainPhaseRmsDeg: 20}";

fn invert_job(weighting: &str, per_shard: u32) -> String {
    format!(
        "apiVersion: aperture.dev/v1alpha1
kind: ImagingJob
metadata: {{name: inv}}
spec:
  pipeline: invert
  input:
    simulate: {SIM}
  image: {{npixel: 128, epsilon: {EPS}, weighting: {{type: {weighting}}}}}
  parallelism: {{reductionFanIn: 2, windowsPerShard: {per_shard}}}
"
    )
}

fn ical_job(per_shard: u32) -> String {
    format!(
        "apiVersion: aperture.dev/v1alpha1
kind: ImagingJob
metadata: {{name: cal}}
spec:
  pipeline: ical
  input:
    simulate: {SIM}
  image: {{npixel: 128, epsilon: {EPS}, weighting: {{type: natural}}}}
  deconvolution: {{algorithm: hogbom, niter: 300, gain: 0.1, threshold: 0.001, fractionalThreshold: 0.05}}
  calibration: {{context: T, T: {{firstCycle: 1, phaseOnly: true}}}}
  majorCycles: 3
  parallelism: {{reductionFanIn: 2, windowsPerShard: {per_shard}}}
"
    )
}

fn rel_l2(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den).sqrt()
}

struct Run {
    dir: tempfile::TempDir,
    env: TaskEnv,
    ran: Vec<TaskManifest>,
}

async fn run(yaml: &str) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = parse_job(yaml, "job.yaml").expect("job");
    let (plan, out) = prepare(&j, &dir.path().display().to_string(), false)
        .await
        .expect("prepare");
    let vis = Store::from_url(&plan.visibilities).expect("vis store");
    let env = TaskEnv { plan, out, vis };
    let ran = run_inline(&env).await.expect("runs");
    Run { dir, env, ran }
}

/// Gridder calls per image over all map tasks of `stage`, and the windows they imaged.
fn batches(ran: &[TaskManifest], stage: &str) -> (u64, u64) {
    ran.iter()
        .filter(|m| m.stage == stage)
        .map(|m| {
            let b = m.result.get("gridder_batches").and_then(|v| v.as_u64());
            (
                b.expect("map manifest records gridder_batches"),
                u64::from(m.windows),
            )
        })
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
}

/// All windows of the dataset as one block (channels side by side).
async fn whole(env: &TaskEnv) -> VisBlock {
    let ds = env.dataset().await.expect("dataset");
    let mut blocks = Vec::new();
    for w in 0..ds.nwindows() {
        blocks.push(ds.read_window(w).await.expect("window"));
    }
    let cat = |f: &dyn Fn(&VisBlock) -> ndarray::ArrayView2<'_, f64>| {
        concatenate(Axis(1), &blocks.iter().map(f).collect::<Vec<_>>()).expect("rows")
    };
    let mut all = blocks[0].clone();
    all.freq_c = blocks.iter().flat_map(|b| b.freq_c.clone()).collect();
    all.weight_rc = cat(&|b| b.weight_rc.view());
    all.vis_rc = concatenate(
        Axis(1),
        &blocks.iter().map(|b| b.vis_rc.view()).collect::<Vec<_>>(),
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

async fn check_invert(weighting: &str) {
    // Shards of 3 and 2 windows: one batch each.
    let r = run(&invert_job(weighting, 3)).await;
    let (calls, windows) = batches(&r.ran, "invert");
    assert_eq!(windows, 5);
    assert_eq!(calls, 2, "each shard is one batch");
    let (dirty, _) = read_fits_image(r.dir.path().join("products/dirty.fits")).expect("dirty");
    let (psf, _) = read_fits_image(r.dir.path().join("products/psf.fits")).expect("psf");
    let block = whole(&r.env).await;
    let geom = r.env.geometry().expect("geometry");
    let (w, _) = imaging_weights(&block, &geom, &r.env.weighting()).expect("weights");
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
    let (ed, ep) = (
        rel_l2(&dirty.data_yx, &d1.data_yx),
        rel_l2(&psf.data_yx, &p1.data_yx),
    );
    // Each is within EPS of the exact transform; FITS stores f32 (6e-8).
    assert!(ed < 2.0 * EPS + 1e-7, "dirty differs by {ed:e}");
    assert!(ep < 2.0 * EPS + 1e-7, "psf differs by {ep:e}");
}

#[tokio::test(flavor = "current_thread")]
async fn batched_invert_equals_one_gridder_call_natural() {
    check_invert("natural").await;
}

#[tokio::test(flavor = "current_thread")]
async fn batched_invert_equals_one_gridder_call_robust() {
    check_invert("robust").await;
}

#[tokio::test(flavor = "current_thread")]
async fn batched_ical_equals_one_call_per_window() {
    let per_window = run(&ical_job(1)).await;
    let batched = run(&ical_job(5)).await;
    for stage in ["invert", "residual-001", "residual-003"] {
        let (calls, windows) = batches(&per_window.ran, stage);
        assert_eq!((calls, windows), (5, 5), "{stage}: one call per window");
        let (calls, windows) = batches(&batched.ran, stage);
        assert_eq!((calls, windows), (1, 5), "{stage}: one batch");
    }
    for name in ["residual", "restored", "model"] {
        let read = |r: &Run| {
            read_fits_image(r.dir.path().join(format!("products/{name}.fits")))
                .expect("product")
                .0
                .data_yx
        };
        let e = rel_l2(&read(&batched), &read(&per_window));
        assert!(e < 1e-4, "{name} differs by {e:e}");
    }
    let gains = |r: &Run| -> StoredGains {
        let s = std::fs::read(r.dir.path().join("products/gains-T.json")).expect("gains-T");
        serde_json::from_slice(&s).expect("gains json")
    };
    let url = "products/gains-T.json";
    let (a, b) = (
        gains(&batched).to_table(url).expect("table"),
        gains(&per_window).to_table(url).expect("table"),
    );
    let worst = a
        .gains
        .iter()
        .zip(b.gains.iter())
        .map(|(x, y)| (x - y).norm())
        .fold(0.0f64, f64::max);
    assert!(worst < 1e-4, "T gains differ by up to {worst:e}");
    // The self-calibration did something: gains are far from unity.
    let off = a
        .gains
        .iter()
        .map(|g| (g - 1.0).norm())
        .fold(0.0f64, f64::max);
    assert!(off > 0.1, "T gains stayed at unity ({off:e})");
}
