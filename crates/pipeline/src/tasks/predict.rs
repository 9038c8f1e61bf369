//! The predict task: visibilities of the job's model image for a shard's windows, on the
//! input's (time, baseline, frequency) layout, written to `<output>/predicted.zarr`.

use std::time::Instant;

use aperture_imaging::gridder::predict;
use aperture_imaging::image::Image;

use super::common::kernel;
use super::{TaskEnv, TaskError, TaskManifest};
use crate::formats::fits::read_fits_image;
use crate::formats::zarr_vis::create_dataset;
use crate::plan::Stage;
use crate::storage::Store;

/// Key of the predicted visibilities under the job output.
pub const PREDICTED_KEY: &str = "predicted.zarr";

/// Reads the model FITS image at `url` (any store URL).
pub async fn read_model_image(url: &str, m: &mut TaskManifest) -> Result<Image, TaskError> {
    let t = Instant::now();
    let (dir, name) = match url.trim_end_matches('/').rsplit_once('/') {
        Some((d, n)) if !n.is_empty() => (d.to_string(), n.to_string()),
        _ => (".".to_string(), url.to_string()),
    };
    let store = Store::from_url(&dir)?;
    let bytes = store.get(&name).await?;
    m.bytes_in += bytes.len() as u64;
    let tmp = tempfile::tempdir()
        .map_err(|e| TaskError::Retryable(format!("temporary directory: {e}")))?;
    let path = tmp.path().join("model.fits");
    std::fs::write(&path, &bytes)
        .map_err(|e| TaskError::Retryable(format!("{}: {e}", path.display())))?;
    let (img, _) = read_fits_image(&path)
        .map_err(|e| TaskError::Permanent(format!("spec.predict.modelImage {url}: {e}")))?;
    m.read_seconds += t.elapsed().as_secs_f64();
    Ok(img)
}

pub async fn run(
    env: &TaskEnv,
    _st: &Stage,
    index: u32,
    m: &mut TaskManifest,
) -> Result<(), TaskError> {
    let url = env
        .plan
        .spec
        .predict
        .as_ref()
        .map(|p| p.model_image.clone())
        .ok_or_else(|| TaskError::Permanent("spec.predict.modelImage: missing".into()))?;
    let model = read_model_image(&url, m).await?;
    let input = env.dataset().await?;
    let pc = input.meta().phase_centre;
    let mc = model.geom.phase_centre;
    if (pc.ra - mc.ra).abs() > 1e-9 || (pc.dec - mc.dec).abs() > 1e-9 {
        return Err(TaskError::Permanent(format!(
            "spec.predict.modelImage {url}: phase centre ({:.6}°, {:.6}°) differs from the \
             visibilities' ({:.6}°, {:.6}°)",
            mc.ra.to_degrees(),
            mc.dec.to_degrees(),
            pc.ra.to_degrees(),
            pc.dec.to_degrees()
        )));
    }
    let out = env.out.child(PREDICTED_KEY);
    let t = Instant::now();
    let ds = create_dataset(out.object_store(), out.prefix(), input.meta(), None).await?;
    m.write_seconds += t.elapsed().as_secs_f64();
    let opts = env.gridder();
    for w in env.plan.shards[index as usize].window_range() {
        let t = Instant::now();
        let mut block = input.read_window(w as usize).await?;
        m.read_seconds += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let (vis_rc, _) = predict(
            &block.uvw_r,
            &block.freq_c,
            model.data_yx.view(),
            &model.geom,
            &opts,
        )
        .map_err(|e| kernel(&format!("window {w}: predict"), e))?;
        block.vis_rc = vis_rc;
        m.compute_seconds += t.elapsed().as_secs_f64();
        let t = Instant::now();
        ds.write_window(w as usize, &block).await?;
        m.write_seconds += t.elapsed().as_secs_f64();
        m.windows += 1;
        m.visibilities += block.n_vis() as u64;
    }
    Ok(())
}
