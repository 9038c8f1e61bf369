//! The map tasks over a shard's windows, one window in memory at a time:
//! - invert (cycle 0): dirty and PSF Taylor moments;
//! - residual (cycle c): apply the global T gains, predict the model, solve and apply
//!   per-window G/B gains, accumulate T normal equations when T is active, subtract and
//!   invert the residual — the fused pass of DESIGN.md.

use std::time::Instant;

use tracing::Instrument;

use aperture_imaging::calib::{
    ApplyMode, NormalEquations, SolutionType, SolveSpec, WeightUpdate, apply_gains, solve,
};
use aperture_imaging::gridder::{invert, predict};
use aperture_imaging::image::ImageGeometry;
use aperture_imaging::vis::VisBlock;
use aperture_imaging::weighting::{imaging_weights, imaging_weights_with_density};
use ndarray::Array2;
use num_complex::Complex64;

use super::common::kernel;
use super::weights::global_density;
use super::{Moments, Partial, StoredGains, TaskEnv, TaskError, TaskManifest};
use crate::plan::{Plan, Stage, TaskKind};
use crate::spec::{SolutionTerm, TermSpec};

/// The solve spec of a calibration term of the job.
pub fn solve_spec(env: &TaskEnv, term: SolutionTerm, n_ant: usize) -> SolveSpec {
    let c = &env.plan.spec.calibration;
    let t: &TermSpec = c.term(term);
    let mut s = SolveSpec::new(match term {
        SolutionTerm::T => SolutionType::T,
        SolutionTerm::G => SolutionType::G,
        SolutionTerm::B => SolutionType::B,
    });
    s.interval_s = t.interval_seconds;
    s.refant = c.reference_antenna as usize;
    s.tol = t.tolerance;
    s.max_iter = t.max_iterations as usize;
    s.phase_only = t.phase_only || term == SolutionTerm::T;
    s.n_ant = Some(n_ant);
    s
}

/// Terms solved in the residual pass of `cycle` (ical only).
pub fn active_terms(env: &TaskEnv, cycle: u32) -> Vec<SolutionTerm> {
    if env.plan.spec.pipeline != crate::spec::PipelineKind::Ical || cycle == 0 {
        return Vec::new();
    }
    env.plan.spec.calibration.active_in(cycle)
}

/// The latest global T table solved at or before `cycle`, if any.
pub async fn latest_global_gains(
    env: &TaskEnv,
    cycle: u32,
    m: &mut TaskManifest,
) -> Result<Option<(u32, aperture_imaging::calib::GainTable)>, TaskError> {
    for c in (1..=cycle).rev() {
        let key = Plan::global_gains_key(c);
        if env.out.exists(&key).await? {
            let t = Instant::now();
            let g: StoredGains = env.out.get_json(&key).await?;
            m.read_seconds += t.elapsed().as_secs_f64();
            return Ok(Some((c, g.to_table(&env.out.key_url(&key))?)));
        }
    }
    Ok(None)
}

/// Model Taylor terms of `cycle` (the output of its deconvolve stage).
pub async fn read_model(
    env: &TaskEnv,
    cycle: u32,
    m: &mut TaskManifest,
) -> Result<Vec<Array2<f64>>, TaskError> {
    let key = Plan::model_key(cycle);
    let p = env.read_partial(&key, m).await?;
    (0..env.nmoment())
        .map(|t| {
            p.array(&Moments::model_name(t), &env.out.key_url(&key))
                .cloned()
        })
        .collect()
}

fn model_at(model: &[Array2<f64>], x: f64) -> Array2<f64> {
    let mut img = model[0].clone();
    let mut xt = 1.0;
    for term in &model[1..] {
        xt *= x;
        img.scaled_add(xt, term);
    }
    img
}

fn mean_freq(block: &VisBlock) -> f64 {
    block.freq_c.iter().sum::<f64>() / block.freq_c.len().max(1) as f64
}

pub async fn run(
    env: &TaskEnv,
    st: &Stage,
    index: u32,
    m: &mut TaskManifest,
) -> Result<(), TaskError> {
    let geom: ImageGeometry = env.geometry()?;
    let opts = env.gridder();
    let wspec = env.weighting();
    let mom = Moments {
        nmoment: env.nmoment(),
        ref_freq_hz: env.plan.image.ref_freq_hz,
    };
    let residual = st.kind == TaskKind::Residual;
    let density = global_density(env, m).await?;
    let model = if residual {
        Some(read_model(env, st.cycle, m).await?)
    } else {
        None
    };
    let global = if residual {
        latest_global_gains(env, st.cycle, m).await?
    } else {
        None
    };
    let terms = active_terms(env, st.cycle);
    let n_ant = env.plan.facts.nantennas as usize;
    let (ny, nx) = (geom.npix_y, geom.npix_x);
    let mut part = Partial::default();
    for t in 0..mom.nmoment {
        part.arrays
            .insert(Moments::dirty_name(t), Array2::zeros((ny, nx)));
    }
    if !residual {
        for k in 0..mom.n_psf() {
            part.arrays
                .insert(Moments::psf_name(k), Array2::zeros((ny, nx)));
        }
    }
    let mut sumwt = 0.0;
    let mut chi2_before = 0.0;
    let mut chi2_after = 0.0;
    let mut neq_t: Option<NormalEquations> = None;
    let mut shard_tables = Vec::new();
    let ds = env.dataset().await?;
    for w in env.plan.shards[index as usize].window_range() {
        let span = tracing::info_span!("window", window = i64::from(w));
        async {
            let t = Instant::now();
            let mut block = ds
                .read_window(w as usize)
                .instrument(tracing::info_span!("read", window = i64::from(w)))
                .await?;
            m.read_seconds += t.elapsed().as_secs_f64();
            m.bytes_in += (block.n_vis() * 13) as u64;
            let t = Instant::now();
            let what = format!("window {w}");
            let (wgt_rc, _) = tracing::info_span!("weights")
                .in_scope(|| match &density {
                    Some(d) => imaging_weights_with_density(&block, d, &wspec),
                    None => imaging_weights(&block, &geom, &wspec),
                })
                .map_err(|e| kernel(&what, e))?;
            let x = mom.x(mean_freq(&block));
            // The residual, when there is a model (else the data are imaged as they are).
            let mut residual_rc = None;
            if let Some(model) = &model {
                let img = model_at(model, x);
                let (mvis_rc, _) = predict(&block.uvw_r, &block.freq_c, img.view(), &geom, &opts)
                    .map_err(|e| kernel(&format!("{what}: predict"), e))?;
                let solve_span = tracing::info_span!("solve", terms = ?terms);
                let _solve = solve_span.enter();
                if terms.contains(&SolutionTerm::T) {
                    let spec = solve_spec(env, SolutionTerm::T, n_ant);
                    let data_w = block.effective_weight_rc();
                    let ne =
                        NormalEquations::accumulate(&block, mvis_rc.view(), data_w.view(), &spec)
                            .map_err(|e| kernel(&format!("{what}: T normal equations"), e))?;
                    match &mut neq_t {
                        Some(acc) => acc.add(&ne).map_err(|e| kernel(&what, e))?,
                        None => neq_t = Some(ne),
                    }
                }
                if let Some((_, table)) = &global {
                    apply_gains(&mut block, table, ApplyMode::Correct, WeightUpdate::Keep)
                        .map_err(|e| kernel(&format!("{what}: apply T gains"), e))?;
                }
                for term in terms.iter().filter(|t| **t != SolutionTerm::T) {
                    let spec = solve_spec(env, *term, n_ant);
                    let data_w = block.effective_weight_rc();
                    let ne =
                        NormalEquations::accumulate(&block, mvis_rc.view(), data_w.view(), &spec)
                            .map_err(|e| kernel(&format!("{what}: {term:?} normal equations"), e))?;
                    let table = solve(&ne, &spec)
                        .map_err(|e| kernel(&format!("{what}: {term:?} solve"), e))?;
                    apply_gains(&mut block, &table, ApplyMode::Correct, WeightUpdate::Keep)
                        .map_err(|e| kernel(&format!("{what}: apply {term:?} gains"), e))?;
                    shard_tables.push(serde_json::json!({
                        "window": w,
                        "term": format!("{term:?}"),
                        "flagged": table.n_flagged(),
                        "gains": (0..table.n_ant).map(|a| {
                            let g = table.gains[[0, a, 0]];
                            [g.re, g.im]
                        }).collect::<Vec<_>>(),
                    }));
                }
                drop(_solve);
                residual_rc = Some(&block.vis_rc - &mvis_rc);
            }
            // Data weights after calibration: flags it set zero the imaging weight too.
            let eff = block.effective_weight_rc();
            if let Some(r_rc) = &residual_rc {
                for ((r, v), e) in r_rc.iter().zip(block.vis_rc.iter()).zip(&eff) {
                    if *e > 0.0 {
                        chi2_after += e * r.norm_sqr();
                        chi2_before += e * v.norm_sqr();
                    }
                }
            }
            let wgt_rc = &wgt_rc * &eff.mapv(|e| if e > 0.0 { 1.0 } else { 0.0 });
            let vis_rc = residual_rc.as_ref().unwrap_or(&block.vis_rc);
            let (dirty_yx, _) = invert(
                &block.uvw_r,
                &block.freq_c,
                vis_rc.view(),
                wgt_rc.view(),
                &geom,
                &opts,
            )
            .map_err(|e| kernel(&format!("{what}: invert"), e))?;
            let mut xt = 1.0;
            for t in 0..mom.nmoment {
                if let Some(a) = part.arrays.get_mut(&Moments::dirty_name(t)) {
                    a.scaled_add(xt, &dirty_yx);
                }
                xt *= x;
            }
            if !residual {
                let ones = Array2::from_elem(wgt_rc.dim(), Complex64::new(1.0, 0.0));
                let (psf_yx, _) = invert(
                    &block.uvw_r,
                    &block.freq_c,
                    ones.view(),
                    wgt_rc.view(),
                    &geom,
                    &opts,
                )
                .map_err(|e| kernel(&format!("{what}: PSF"), e))?;
                let mut xk = 1.0;
                for k in 0..mom.n_psf() {
                    if let Some(a) = part.arrays.get_mut(&Moments::psf_name(k)) {
                        a.scaled_add(xk, &psf_yx);
                    }
                    xk *= x;
                }
            }
            sumwt += wgt_rc.sum();
            m.compute_seconds += t.elapsed().as_secs_f64();
            m.windows += 1;
            m.visibilities += block.n_vis() as u64;
            Ok::<(), TaskError>(())
        }
        .instrument(span)
        .await?;
    }
    part.scalars.insert("sumwt".into(), sumwt);
    if residual {
        part.scalars.insert("chi2_data".into(), chi2_before);
        part.scalars.insert("chi2_residual".into(), chi2_after);
    }
    part.neq = neq_t;
    if !shard_tables.is_empty() {
        let key = Plan::shard_gains_key(st.cycle, index);
        env.out.put_json(&key, &shard_tables).await?;
    }
    let tree = st
        .tree
        .clone()
        .unwrap_or_else(|| Plan::cycle_tree(st.cycle));
    env.write_partial(&Plan::partial_key(&tree, index), &part, m)
        .await
}
