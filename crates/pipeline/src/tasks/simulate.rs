//! The simulate task: writes the visibilities of a shard's windows (point sources on
//! pixel centres, optional noise and antenna gains), deterministic from the spec's seed,
//! so a re-run writes the same bytes.

use std::time::Instant;

use tracing::Instrument;

use aperture_imaging::coords::RaDec;
use aperture_imaging::sim::freq::FrequencySetup;
use aperture_imaging::sim::rng::Rng;
use aperture_imaging::sim::simulate::simulate_block;
use aperture_imaging::sim::sky::{RandomSkySpec, SkyModel, random_sky_on_pixels};
use aperture_imaging::sim::uvw::{hour_angles, synthesize_uvw};
use ndarray::Array3;
use num_complex::Complex64;
use serde_json::json;

use super::common::kernel;
use super::{TaskEnv, TaskError, TaskManifest};
use crate::formats::zarr_vis::{RowGrid, VisDatasetMeta, WindowMeta, create_dataset};
use crate::plan::Stage;
use crate::spec::SimulateSpec;

/// The sky and the true antenna gains of a simulated job (also stored in the dataset's
/// metadata under `extra`).
pub fn truth(
    env: &TaskEnv,
    sim: &SimulateSpec,
    nant: usize,
) -> Result<(SkyModel, Vec<Complex64>), TaskError> {
    let geom = env.geometry()?;
    let half = 0.5 * geom.npix_x as f64 * geom.cell * sim.sky.extent;
    let spec = RandomSkySpec {
        n_sources: sim.sky.sources as usize,
        half_width_lm: half.max(geom.cell),
        flux_min_jy: sim.sky.flux_min_jy,
        flux_max_jy: sim.sky.flux_max_jy.max(sim.sky.flux_min_jy * (1.0 + 1e-9)),
        count_slope: 1.7,
        spectral_index_mean: 0.5 * (sim.sky.alpha_min + sim.sky.alpha_max),
        spectral_index_sigma: 0.25 * (sim.sky.alpha_max - sim.sky.alpha_min),
    };
    let sky = random_sky_on_pixels(&geom, env.plan.image.ref_freq_hz, &spec, sim.seed)
        .map_err(|e| kernel("spec.input.simulate.sky", e))?;
    let mut rng = Rng::stream(sim.seed, 0x6761_696e);
    let sigma_phi = sim.gain_phase_rms_deg.to_radians();
    let gains = (0..nant)
        .map(|_| {
            let amp = (sim.gain_amplitude_rms * rng.normal()).exp();
            let ph = sigma_phi * rng.normal();
            Complex64::from_polar(amp, ph)
        })
        .collect();
    Ok((sky, gains))
}

pub async fn run(
    env: &TaskEnv,
    _st: &Stage,
    index: u32,
    m: &mut TaskManifest,
) -> Result<(), TaskError> {
    let sim =
        env.plan.spec.input.simulate.clone().ok_or_else(|| {
            TaskError::Permanent("simulate stage without spec.input.simulate".into())
        })?;
    let t = Instant::now();
    let config = sim
        .array_config()
        .map_err(|e| kernel("spec.input.simulate.rmax", e))?;
    let centre = RaDec::from_degrees(sim.ra_deg, sim.dec_deg);
    let ha = hour_angles(sim.ntimes as usize, sim.span_hours)
        .map_err(|e| kernel("spec.input.simulate.ntimes", e))?;
    let rows =
        synthesize_uvw(&config, centre, &ha).map_err(|e| kernel("spec.input.simulate", e))?;
    let grid = RowGrid::from_rows(&rows.time_r, &rows.ant1_r, &rows.ant2_r)?;
    let freq_c = FrequencySetup::new(
        sim.frequency_windows as usize,
        sim.channels_per_window as usize,
        sim.freq_min_hz,
        sim.freq_max_hz,
    )
    .and_then(|f| f.freq_c())
    .map_err(|e| kernel("spec.input.simulate", e))?;
    let windows = WindowMeta::split(&freq_c, sim.channels_per_window as usize)?;
    let (sky, gains) = truth(env, &sim, config.len())?;
    let mut meta = VisDatasetMeta::new(&grid, windows, centre)?;
    meta.telescope = Some(format!("{:?}", sim.telescope).to_uppercase());
    meta.station_diameter_m = config.antennas.first().map(|a| a.diameter);
    meta.array = Some(config.clone());
    meta.extra.insert(
        "sky_model".into(),
        serde_json::to_value(&sky).unwrap_or_default(),
    );
    meta.extra.insert(
        "true_gains".into(),
        json!(gains.iter().map(|g| [g.re, g.im]).collect::<Vec<_>>()),
    );
    let (nt, nb) = (grid.ntime(), grid.nbaseline());
    let mut uvw_tb3 = Array3::<f64>::zeros((nt, nb, 3));
    for (r, p) in rows.uvw_r.iter().enumerate() {
        let (ti, bi) = (r / nb, r % nb);
        uvw_tb3[[ti, bi, 0]] = p.u;
        uvw_tb3[[ti, bi, 1]] = p.v;
        uvw_tb3[[ti, bi, 2]] = p.w;
    }
    m.compute_seconds += t.elapsed().as_secs_f64();
    let tw = Instant::now();
    let ds = create_dataset(
        env.vis.object_store(),
        env.vis.prefix(),
        &meta,
        Some(uvw_tb3.view()),
    )
    .await?;
    m.write_seconds += tw.elapsed().as_secs_f64();
    let shard = env.plan.shards[index as usize];
    for w in shard.window_range() {
        let span = tracing::info_span!("window", window = i64::from(w));
        async {
            let t = Instant::now();
            let wm = &ds.meta().windows[w as usize];
            let noise_seed = sim.seed.wrapping_add(1 + u64::from(w));
            let mut block = simulate_block(
                &config,
                centre,
                &ha,
                &wm.freq_hz,
                &sky,
                sim.noise_jy,
                noise_seed,
            )
            .map_err(|e| kernel(&format!("simulate window {w}"), e))?;
            if sim.gain_phase_rms_deg > 0.0 || sim.gain_amplitude_rms > 0.0 {
                for (r, mut row) in block.vis_rc.rows_mut().into_iter().enumerate() {
                    let g =
                        gains[block.ant1_r[r] as usize] * gains[block.ant2_r[r] as usize].conj();
                    row.mapv_inplace(|v| v * g);
                }
            }
            m.compute_seconds += t.elapsed().as_secs_f64();
            let t = Instant::now();
            ds.write_window(w as usize, &block).await?;
            m.write_seconds += t.elapsed().as_secs_f64();
            m.windows += 1;
            m.visibilities += block.n_vis() as u64;
            m.bytes_out += (block.n_vis() * 13) as u64;
            Ok::<(), TaskError>(())
        }
        .instrument(span)
        .await?;
    }
    Ok(())
}
