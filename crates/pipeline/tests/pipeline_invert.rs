//! End to end, in process: the invert pipeline (simulate → weights tree → invert map →
//! reduce tree → products) gives the dirty image and PSF that one gridder call over all
//! the data gives, to the gridder's accuracy.

use aperture_imaging::gridder::{GridderOptions, dirty_image, psf_image};
use aperture_imaging::vis::VisBlock;
use aperture_imaging::weighting::imaging_weights;
use aperture_pipeline::executor::{prepare, run_inline};
use aperture_pipeline::formats::fits::read_fits_image;
use aperture_pipeline::spec::parse_job;
use aperture_pipeline::storage::Store;
use aperture_pipeline::tasks::TaskEnv;
use ndarray::{Array2, Axis, concatenate};

const EPS: f64 = 1e-6;

fn job(weighting: &str) -> String {
    format!(
        "apiVersion: aperture.dev/v1alpha1
kind: ImagingJob
metadata: {{name: inv}}
spec:
  pipeline: invert
  input:
    simulate: {{telescope: LOW, rmax: 300, frequencyWindows: 5, ntimes: 3, sky: {{sources: 4}}, noiseJy: 0.1}}
  image: {{npixel: 128, epsilon: {EPS}, weighting: {{type: {weighting}}}}}
  parallelism: {{maxParallel: 5, reductionFanIn: 2, windowsPerShard: 1}}
"
    )
}

fn rel_l2(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den).sqrt()
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

async fn check(weighting: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let j = parse_job(&job(weighting), "inv.yaml").expect("job");
    let out_url = dir.path().display().to_string();
    let (plan, out) = prepare(&j, &out_url, false).await.expect("prepare");
    assert!(
        plan.shards.len() >= 3,
        "a real tree needs several shards: {:?}",
        plan.shards
    );
    let vis = Store::from_url(&plan.visibilities).expect("vis store");
    let env = TaskEnv { plan, out, vis };
    let ran = run_inline(&env).await.expect("runs");
    assert!(
        ran.iter().any(|m| m.stage == "reduce-000-2"),
        "two tree levels expected"
    );
    let (dirty, _) = read_fits_image(dir.path().join("products/dirty.fits")).expect("dirty.fits");
    let (psf, _) = read_fits_image(dir.path().join("products/psf.fits")).expect("psf.fits");
    // One gridder call over all the data, with weights from the whole block.
    let block = whole(&env).await;
    let geom = env.geometry().expect("geometry");
    let (w, _) = imaging_weights(&block, &geom, &env.weighting()).expect("weights");
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
    // Each is within EPS (relative L2) of the exact transform; FITS stores f32 (6e-8).
    let (ed, ep) = (
        rel_l2(&dirty.data_yx, &d1.data_yx),
        rel_l2(&psf.data_yx, &p1.data_yx),
    );
    assert!(ed < 2.0 * EPS + 1e-7, "dirty differs by {ed:e}");
    assert!(ep < 2.0 * EPS + 1e-7, "psf differs by {ep:e}");
    assert!((psf.data_yx[[64, 64]] - 1.0).abs() < 1e-6);
}

#[tokio::test(flavor = "current_thread")]
async fn invert_pipeline_equals_one_gridder_call_natural() {
    check("natural").await;
}

#[tokio::test(flavor = "current_thread")]
async fn invert_pipeline_equals_one_gridder_call_robust() {
    check("robust").await;
}
