//! The deconvolve task of major cycle c: solves the global T gains from the summed normal
//! equations (when the previous residual pass accumulated them), then runs the minor
//! cycle on the reduced residual of cycle c − 1 and writes the model of cycle c. If the
//! residual is already below the threshold the job has converged: the model is carried
//! over unchanged and the manifest says so.

use std::time::Instant;

use aperture_imaging::calib::solve;
use aperture_imaging::deconv::{
    Algorithm, CleanParams, CleanWindow, deconvolve, deconvolve_mfs_moments,
};
use aperture_imaging::image::Image;
use ndarray::Array2;

use super::common::kernel;
use super::map::{read_model, solve_spec};
use super::reduce::read_root;
use super::{Moments, Partial, StoredGains, TaskEnv, TaskError, TaskManifest};
use crate::plan::{Plan, Stage};
use crate::spec::{CleanAlgorithm, SolutionTerm, WindowKind};

/// The minor-cycle controls of the job.
pub fn clean_params(env: &TaskEnv) -> CleanParams {
    let d = &env.plan.spec.deconvolution;
    CleanParams {
        algorithm: match d.algorithm {
            CleanAlgorithm::Hogbom => Algorithm::Hogbom,
            CleanAlgorithm::Msclean => Algorithm::Msclean,
            CleanAlgorithm::Msmfs => Algorithm::Msmfs,
        },
        niter: d.niter as usize,
        gain: d.gain,
        threshold: d.threshold,
        fractional_threshold: d.fractional_threshold,
        auto_threshold: d.auto_threshold,
        psf_support: d.psf_support.map(|p| p as usize),
        window: match d.window.kind {
            WindowKind::All => CleanWindow::All,
            WindowKind::Quarter => CleanWindow::Quarter,
            WindowKind::NoEdge => CleanWindow::NoEdge(d.window.pixels as usize),
        },
        scales: d.scales.clone(),
        scale_bias: d.scale_bias,
        nmoment: env.nmoment(),
        threads: env.threads(),
    }
}

/// A manifest for one of several reads run together (counters zeroed); [`absorb`] adds
/// what it counted to the task's.
pub(crate) fn side(m: &TaskManifest) -> TaskManifest {
    let mut s = m.clone();
    (s.read_seconds, s.compute_seconds, s.bytes_in) = (0.0, 0.0, 0);
    s.result.clear();
    s
}

/// Adds the bytes and compute time of reads run together to `m`, and their wall time
/// `wall` less that compute time as read time (their own read times overlap).
pub(crate) fn absorb(
    m: &mut TaskManifest,
    sides: impl IntoIterator<Item = TaskManifest>,
    wall: f64,
) {
    let mut compute = 0.0;
    for s in sides {
        m.bytes_in += s.bytes_in;
        compute += s.compute_seconds;
    }
    m.compute_seconds += compute;
    m.read_seconds += (wall - compute).max(0.0);
}

/// Normalised images `prefix0..n` of a partial (divided by its `sumwt`).
pub fn normalised(
    env: &TaskEnv,
    p: &Partial,
    key: &str,
    names: &[String],
) -> Result<Vec<Image>, TaskError> {
    let geom = env.geometry()?;
    let s = p.scalar("sumwt", key)?;
    if s <= 0.0 {
        return Err(TaskError::Permanent(format!(
            "{key}: the sum of weights is {s}: no unflagged data with positive weight"
        )));
    }
    names
        .iter()
        .map(|n| {
            Ok(Image {
                geom,
                data_yx: p.array(n, key)? / s,
            })
        })
        .collect()
}

pub async fn run(
    env: &TaskEnv,
    st: &Stage,
    _index: u32,
    m: &mut TaskManifest,
) -> Result<(), TaskError> {
    let c = st.cycle;
    let nmom = env.nmoment();
    // The residual of cycle c − 1, the PSF of cycle 0 and the model of cycle c − 1,
    // read together.
    let (mut m1, mut m2, mut m3) = (side(m), side(m), side(m));
    let t_read = Instant::now();
    let ((prev, prev_what), cycle0, previous_model) = futures::future::try_join3(
        read_root(env, &Plan::cycle_tree(c - 1), &mut m1),
        async {
            if c == 1 {
                return Ok(None);
            }
            read_root(env, &Plan::cycle_tree(0), &mut m2)
                .await
                .map(Some)
        },
        async {
            if c == 1 {
                return Ok(None);
            }
            read_model(env, c - 1, &mut m3).await.map(Some)
        },
    )
    .await?;
    absorb(m, [m1, m2, m3], t_read.elapsed().as_secs_f64());
    let (psf_part, psf_what) = match &cycle0 {
        None => (&prev, &prev_what),
        Some((p, what)) => (p, what),
    };
    let dnames: Vec<String> = (0..nmom).map(Moments::dirty_name).collect();
    let pnames: Vec<String> = (0..2 * nmom - 1).map(Moments::psf_name).collect();
    let dirty = normalised(env, &prev, &prev_what, &dnames)?;
    let psf = normalised(env, psf_part, psf_what, &pnames)?;
    let t = Instant::now();
    // Global T solve from the normal equations summed by the tree.
    if let Some(neq) = &prev.neq {
        let spec = solve_spec(env, SolutionTerm::T, env.plan.facts.nantennas as usize);
        let table = solve(neq, &spec).map_err(|e| kernel("T solve", e))?;
        m.set("t_flagged", table.n_flagged());
        let key = Plan::global_gains_key(c);
        env.out
            .put_json(&key, &StoredGains::from_table(&table))
            .await?;
    }
    let params = clean_params(env);
    let (model_t, initial, final_peak, iterations, stop) = if params.algorithm == Algorithm::Msmfs {
        let r = deconvolve_mfs_moments(&dirty, &psf, env.plan.image.ref_freq_hz, &params)
            .map_err(|e| kernel("deconvolution (msmfs)", e))?;
        (
            r.model_taylor
                .into_iter()
                .map(|i| i.data_yx)
                .collect::<Vec<_>>(),
            r.initial_peak,
            r.final_peak,
            r.iterations,
            r.stop_reason,
        )
    } else {
        let r = deconvolve(&dirty[0], &psf[0], &params).map_err(|e| kernel("deconvolution", e))?;
        (
            vec![r.model.data_yx],
            r.initial_peak,
            r.final_peak,
            r.iterations,
            r.stop_reason,
        )
    };
    let converged = initial <= env.plan.spec.deconvolution.threshold;
    let mut model = Partial::default();
    for (t, new) in model_t.into_iter().enumerate() {
        let mut acc: Array2<f64> = previous_model
            .as_ref()
            .map(|p| p[t].clone())
            .unwrap_or_else(|| Array2::zeros(new.dim()));
        if !converged {
            acc += &new;
        }
        model.arrays.insert(Moments::model_name(t), acc);
    }
    m.compute_seconds += t.elapsed().as_secs_f64();
    m.set("converged", converged);
    // Weighted χ² of the data and of the residual in the pass that made this residual
    // (after calibration): how well the model and gains fit.
    for k in ["chi2_data", "chi2_residual"] {
        if let Some(v) = prev.scalars.get(k) {
            m.set(k, *v);
        }
    }
    m.set("initial_peak", initial);
    m.set("final_peak", final_peak);
    m.set("iterations", iterations as u64);
    m.set(
        "stop_reason",
        serde_json::to_value(stop).unwrap_or_default(),
    );
    m.set(
        "model_flux",
        model.arrays.get("m0").map_or(0.0, |a| a.sum()),
    );
    env.write_partial(&Plan::model_key(c), &model, m).await
}
