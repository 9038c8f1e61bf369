//! The restore task: fits the restoring beam to the PSF, restores the final model
//! (per Taylor term) onto the final residual, and writes the products (FITS with full
//! WCS and a PNG quick-look each) under `products/`; for the invert pipeline it writes
//! the dirty image and the PSF.

use std::time::Instant;

use aperture_imaging::deconv::spectral_index;
use aperture_imaging::image::Image;
use aperture_imaging::restore::{fit_psf_beam, restore};
use bytes::Bytes;

use super::common::kernel;
use super::deconvolve::{absorb, normalised, side};
use super::map::read_model;
use super::reduce::read_root;
use super::{Moments, TaskEnv, TaskError, TaskManifest};
use crate::formats::fits::{Card, FitsWriteOptions, RestoringBeam, encode_fits_image};
use crate::formats::png::encode_png_quicklook;
use crate::plan::{Plan, Stage};
use crate::spec::PipelineKind;
use tracing::Instrument;

/// One product to write: name (without extension), image, BUNIT and restoring beam.
struct Product {
    name: String,
    image: Image,
    bunit: &'static str,
    beam: Option<RestoringBeam>,
}

/// Encodes every product (FITS + PNG) in memory, each file a job for the task's threads
/// ([`TaskEnv::threads`]), then uploads them concurrently; returns the FITS URLs by name.
async fn put_products(
    env: &TaskEnv,
    products: Vec<Product>,
    m: &mut TaskManifest,
) -> Result<Vec<(String, String)>, TaskError> {
    use rayon::prelude::*;
    let t = Instant::now();
    let telescope = env
        .plan
        .spec
        .input
        .simulate
        .as_ref()
        .map(|s| format!("{:?}", s.telescope).to_uppercase());
    let history = format!(
        "aperture job {} ({})",
        env.plan.job,
        env.plan.spec.pipeline.name()
    );
    // Job j encodes product j / 2: its FITS file for even j, its PNG for odd j.
    let encode = |j: usize| -> Result<Vec<u8>, TaskError> {
        let p = &products[j / 2];
        if j % 2 == 1 {
            let png_key = format!("products/{}.png", p.name);
            return encode_png_quicklook(&p.image, &png_key).map_err(|e| kernel(&png_key, e));
        }
        let opts = FitsWriteOptions {
            bunit: p.bunit.into(),
            object: Some(env.plan.job.clone()),
            telescope: telescope.clone(),
            beam: p.beam,
            extra: vec![
                Card::new("EPSILON", env.plan.spec.image.epsilon, "gridding accuracy"),
                Card::history(&history),
            ],
            ..Default::default()
        };
        let fits_key = format!("products/{}.fits", p.name);
        encode_fits_image(&p.image, &opts).map_err(|e| kernel(&fits_key, e))
    };
    let jobs = 2 * products.len();
    let threads = env.threads();
    let encoded: Vec<Result<Vec<u8>, TaskError>> = tracing::info_span!("encode", threads)
        .in_scope(|| {
            if threads <= 1 || jobs <= 1 {
                return Ok::<_, TaskError>((0..jobs).map(encode).collect());
            }
            // This task's threads only (not the process-wide pool), entering the span
            // on them.
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads.min(jobs))
                .build()
                .map_err(|e| TaskError::Permanent(format!("cannot start encoder threads: {e}")))?;
            let span = tracing::Span::current();
            Ok(pool.install(|| {
                (0..jobs)
                    .into_par_iter()
                    .map(|j| span.in_scope(|| encode(j)))
                    .collect()
            }))
        })?;
    let mut puts = Vec::new();
    let mut urls = Vec::new();
    let mut encoded = encoded.into_iter();
    for p in &products {
        let (Some(fits), Some(png)) = (encoded.next(), encoded.next()) else {
            break;
        };
        let (name, fits, png) = (p.name.clone(), fits?, png?);
        m.bytes_out += (fits.len() + png.len()) as u64;
        let fits_key = format!("products/{name}.fits");
        urls.push((name.clone(), env.out.key_url(&fits_key)));
        puts.push((fits_key, Bytes::from(fits)));
        puts.push((format!("products/{name}.png"), Bytes::from(png)));
    }
    futures::future::try_join_all(puts.into_iter().map(|(key, bytes)| async move {
        env.out
            .put(&key, bytes)
            .instrument(tracing::info_span!("write", key = %key))
            .await
    }))
    .await?;
    m.write_seconds += t.elapsed().as_secs_f64();
    Ok(urls)
}

/// The last major cycle whose model and residual belong together: (model cycle,
/// residual cycle).
async fn final_cycles(env: &TaskEnv) -> Result<(u32, u32), TaskError> {
    let n = env.plan.major_cycles();
    for c in (1..=n).rev() {
        let key = Plan::manifest_key(&Plan::deconvolve_stage(c), 0);
        if !env.out.exists(&key).await? {
            continue;
        }
        let man: super::TaskManifest = env.out.get_json(&key).await?;
        let converged = man
            .result
            .get("converged")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        return Ok((c, if converged { c - 1 } else { c }));
    }
    Err(TaskError::Permanent(
        "restore: no deconvolve stage has finished".into(),
    ))
}

pub async fn run(
    env: &TaskEnv,
    _st: &Stage,
    _index: u32,
    m: &mut TaskManifest,
) -> Result<(), TaskError> {
    let nmom = env.nmoment();
    // The dirty image and PSF, and (unless this is the invert pipeline) the final model
    // and residual, read together.
    let invert = env.plan.spec.pipeline == PipelineKind::Invert;
    let (mut m1, mut m2, mut m3) = (side(m), side(m), side(m));
    let t_read = Instant::now();
    let ((p0, url0), finals) =
        futures::future::try_join(read_root(env, &Plan::cycle_tree(0), &mut m1), async {
            if invert {
                return Ok(None);
            }
            let (model_cycle, residual_cycle) = final_cycles(env).await?;
            let (model, residual) = futures::future::try_join(
                read_model(env, model_cycle, &mut m2),
                read_root(env, &Plan::cycle_tree(residual_cycle), &mut m3),
            )
            .await?;
            Ok::<_, TaskError>(Some((model_cycle, residual_cycle, model, residual)))
        })
        .await?;
    absorb(m, [m1, m2, m3], t_read.elapsed().as_secs_f64());
    let dirty = normalised(env, &p0, &url0, &[Moments::dirty_name(0)])?.remove(0);
    let psf = normalised(env, &p0, &url0, &[Moments::psf_name(0)])?.remove(0);
    let mut outputs = serde_json::Map::new();
    let product =
        |name: &str, image: Image, bunit: &'static str, beam: Option<RestoringBeam>| Product {
            name: name.to_string(),
            image,
            bunit,
            beam,
        };
    let mut products = vec![
        product("dirty", dirty, "JY/BEAM", None),
        product("psf", psf.clone(), "JY/BEAM", None),
    ];
    let Some((model_cycle, residual_cycle, model, (rp, rwhat))) = finals else {
        for (k, v) in put_products(env, products, m).await? {
            outputs.insert(k, v.into());
        }
        m.set("outputs", outputs);
        return Ok(());
    };
    let t = Instant::now();
    let beam =
        fit_psf_beam(&psf).map_err(|e| kernel("restoring beam fit to products/psf.fits", e))?;
    let fbeam = RestoringBeam {
        bmaj_deg: beam.bmaj_rad.to_degrees(),
        bmin_deg: beam.bmin_rad.to_degrees(),
        bpa_deg: beam.bpa_rad.to_degrees(),
    };
    let names: Vec<String> = (0..nmom).map(Moments::dirty_name).collect();
    let residual = normalised(env, &rp, &rwhat, &names)?;
    let geom = env.geometry()?;
    let mut model_images = Vec::new();
    for (t, data) in model.into_iter().enumerate() {
        let mi = Image {
            geom,
            data_yx: data,
        };
        let restored = restore(&mi, &residual[t], &beam).map_err(|e| kernel("restore", e))?;
        let sfx = if t == 0 {
            String::new()
        } else {
            format!("-tt{t}")
        };
        products.push(product(
            &format!("model{sfx}"),
            mi.clone(),
            "JY/PIXEL",
            None,
        ));
        products.push(product(
            &format!("residual{sfx}"),
            residual[t].clone(),
            "JY/BEAM",
            None,
        ));
        products.push(product(
            &format!("restored{sfx}"),
            restored,
            "JY/BEAM",
            Some(fbeam),
        ));
        model_images.push(mi);
    }
    if nmom >= 2 {
        let peak = model_images[0]
            .data_yx
            .iter()
            .fold(0.0f64, |a, v| a.max(v.abs()));
        let alpha =
            spectral_index(&model_images, 1e-3 * peak).map_err(|e| kernel("spectral index", e))?;
        products.push(product("alpha", alpha, "", None));
    }
    m.compute_seconds += t.elapsed().as_secs_f64();
    for (k, v) in put_products(env, products, m).await? {
        outputs.insert(k, v.into());
    }
    if let Some((_, table)) =
        super::map::latest_global_gains(env, env.plan.major_cycles(), m).await?
    {
        env.out
            .put_json(
                "products/gains-T.json",
                &super::StoredGains::from_table(&table),
            )
            .await?;
        outputs.insert(
            "gains-T".into(),
            env.out.key_url("products/gains-T.json").into(),
        );
    }
    m.set("model_cycle", model_cycle);
    m.set("residual_cycle", residual_cycle);
    m.set(
        "beam_arcsec",
        serde_json::json!([
            beam.bmaj_rad.to_degrees() * 3600.0,
            beam.bmin_rad.to_degrees() * 3600.0,
            beam.bpa_rad.to_degrees()
        ]),
    );
    m.set("outputs", outputs);
    Ok(())
}
