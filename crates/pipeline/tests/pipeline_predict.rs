//! End to end, in process: the predict pipeline writes the visibilities of a model image
//! equal to the exact direct Fourier transform of that image to the gridder's accuracy.

use aperture_imaging::coords::RaDec;
use aperture_imaging::image::{Image, ImageGeometry};
use aperture_imaging::sim::dft::predict_image;
use aperture_pipeline::executor::{prepare, run_inline};
use aperture_pipeline::formats::fits::{FitsWriteOptions, write_fits_image};
use aperture_pipeline::formats::zarr_vis::open_dataset;
use aperture_pipeline::spec::parse_job;
use aperture_pipeline::storage::Store;
use aperture_pipeline::tasks::{PREDICTED_KEY, TaskEnv};

const EPS: f64 = 1e-6;

fn job(model: &str) -> String {
    format!(
        "apiVersion: aperture.dev/v1alpha1
kind: ImagingJob
metadata: {{name: pred}}
spec:
  pipeline: predict
  input:
    simulate: {{telescope: LOW, rmax: 300, frequencyWindows: 3, channelsPerWindow: 2, ntimes: 2, raDeg: 15, decDeg: -45}}
  predict: {{modelImage: {model}}}
  image: {{epsilon: {EPS}}}
  parallelism: {{windowsPerShard: 2}}
"
    )
}

fn model(dir: &std::path::Path, dec: f64) -> std::path::PathBuf {
    let geom = ImageGeometry::square(96, 1.0e-3, RaDec::from_degrees(15.0, dec), 125e6, 50e6)
        .expect("geom");
    let mut img = Image::zeros(geom);
    for (x, y, f) in [(48, 48, 1.0), (20, 70, 0.5), (80, 11, 2.0), (3, 93, 0.25)] {
        img.data_yx[[y, x]] = f;
    }
    let path = dir.join(format!("model{dec}.fits"));
    write_fits_image(
        &path,
        &img,
        &FitsWriteOptions {
            bunit: "JY/PIXEL".into(),
            ..Default::default()
        },
    )
    .expect("fits");
    path
}

#[tokio::test(flavor = "current_thread")]
async fn predicted_visibilities_equal_the_direct_transform() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mpath = model(dir.path(), -45.0);
    let j = parse_job(&job(&mpath.display().to_string()), "p.yaml").expect("job");
    let out_dir = dir.path().join("out");
    let (plan, out) = prepare(&j, &out_dir.display().to_string(), false)
        .await
        .expect("prepare");
    let vis = Store::from_url(&plan.visibilities).expect("vis");
    let env = TaskEnv {
        plan,
        out: out.clone(),
        vis,
    };
    run_inline(&env).await.expect("runs");
    let (img, _) = aperture_pipeline::formats::fits::read_fits_image(&mpath).expect("model");
    let pred = out.child(PREDICTED_KEY);
    let ds = open_dataset(pred.object_store(), pred.prefix())
        .await
        .expect("predicted.zarr");
    assert_eq!(ds.nwindows(), 3);
    for w in 0..3 {
        let block = ds.read_window(w).await.expect("window");
        let exact = predict_image(&block.uvw_r, &block.freq_c, &img).expect("dft");
        let num: f64 = block
            .vis_rc
            .iter()
            .zip(&exact)
            .map(|(a, b)| (a - b).norm_sqr())
            .sum();
        let den: f64 = exact.iter().map(|b| b.norm_sqr()).sum();
        let err = (num / den).sqrt();
        // Gridder contract ε, plus complex64 storage (≈ 6e-8 relative).
        assert!(err < EPS + 1e-7, "window {w}: relative L2 error {err:e}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_model_at_another_phase_centre_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mpath = model(dir.path(), -40.0);
    let j = parse_job(&job(&mpath.display().to_string()), "p.yaml").expect("job");
    let (plan, out) = prepare(&j, &dir.path().join("out").display().to_string(), false)
        .await
        .expect("prepare");
    let vis = Store::from_url(&plan.visibilities).expect("vis");
    let err = run_inline(&TaskEnv { plan, out, vis })
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("spec.predict.modelImage") && err.contains("phase centre"),
        "{err}"
    );
}
