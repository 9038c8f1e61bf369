//! `aperture predict`: visibilities of a model image (FITS, Jy/pixel) at the uvw and
//! frequencies of a bundle, written as a new bundle.

use std::path::PathBuf;

use anyhow::{Result, bail};
use aperture_imaging::coords::RaDec;
use aperture_imaging::gridder;
use aperture_pipeline::formats::fits::read_fits_image;
use clap::Args;
use serde_json::json;

use crate::common::errors::for_option_or;
use crate::common::fmt::{Summary, count, radec, rate, rows_by_channels, seconds};
use crate::common::gridding::{
    Direction, GridderArgs, describe_layout, describe_phases, describe_request, precision_name,
};
use crate::common::imaging::{BYTES_PER_PIXEL, check_memory, rad_to_arcsec};
use crate::common::output::{check_bundle_output, check_not_input, resolved};
use crate::common::{Context, bundle};

/// Largest angle (radians) between the model's reference direction (CRVAL) and the
/// bundle's phase centre.
pub const PHASE_CENTRE_TOL_RAD: f64 = 1e-9;

/// Predict visibilities from a model image.
///
/// Reads a model image (FITS, Jy/pixel, SIN projection centred on the bundle's phase
/// centre, as `aperture invert` writes) and computes its visibilities at the bundle's uvw
/// and frequencies with the w-stacking degridder,
/// V = sum of I(l,m)/n exp(-2 pi i (ul + vm + w(n-1))), to accuracy --epsilon. The model is frequency-independent. The new bundle
/// copies uvw, frequencies, weights, flags, antennas, times and meta.json from the input
/// (the input's sky_model entry, which no longer describes the visibilities, is replaced
/// by a predicted_from entry); vis.npy is complex128, or complex64 with --precision f32.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  aperture predict obs/ --model model.fits --out model-vis/")]
pub struct PredictArgs {
    /// The visibility bundle giving uvw, frequencies and the phase centre.
    #[arg(value_name = "BUNDLE")]
    pub bundle: PathBuf,
    /// Model image, FITS in Jy/pixel; its CRVAL1/2 must be the bundle's phase centre.
    #[arg(long, value_name = "FITS")]
    pub model: PathBuf,
    #[command(flatten)]
    pub gridder: GridderArgs,
    /// Output bundle directory.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace the output bundle if it exists.
    #[arg(long)]
    pub overwrite: bool,
}

/// Great-circle angle between two directions (haversine formula, accurate at small
/// angles).
fn separation(a: RaDec, b: RaDec) -> f64 {
    let s_dec = ((b.dec - a.dec) / 2.0).sin();
    let s_ra = ((b.ra - a.ra) / 2.0).sin();
    let h = s_dec * s_dec + a.dec.cos() * b.dec.cos() * s_ra * s_ra;
    2.0 * h.sqrt().min(1.0).asin()
}

pub fn run(args: &PredictArgs, ctx: &Context) -> Result<()> {
    let opts = args.gridder.options()?;
    check_bundle_output("--out", &args.out, args.overwrite)?;
    check_not_input("--out", &args.out, "input bundle", &args.bundle)?;
    check_not_input("--out", &args.out, "model", &args.model)?;
    if !args.model.exists() {
        bail!("--model {}: does not exist", args.model.display());
    }

    let stage = ctx
        .progress
        .stage(format!("reading {}", args.model.display()));
    let (model, header) = read_fits_image(&args.model)?;
    stage.done_with(&format!(
        "{} x {} pixels",
        model.geom.npix_x, model.geom.npix_y
    ));
    check_memory(
        (model.geom.npix_x * model.geom.npix_y) as f64 * BYTES_PER_PIXEL,
        &format!("--model {}", args.model.display()),
    )?;

    let (mut block, mut meta) = bundle::read(ctx, &args.bundle)?;

    let sep = separation(model.geom.phase_centre, block.phase_centre);
    if sep.is_nan() || sep > PHASE_CENTRE_TOL_RAD {
        bail!(
            "--model {}: its centre (CRVAL1/2: {}) is {sep:.3e} rad from the phase centre of {} \
             ({}); the model must be centred on the bundle's phase centre (tolerance {:e} rad)",
            args.model.display(),
            radec(model.geom.phase_centre.ra, model.geom.phase_centre.dec),
            args.bundle.display(),
            radec(block.phase_centre.ra, block.phase_centre.dec),
            PHASE_CENTRE_TOL_RAD
        );
    }

    if let Some(unit) = header.bunit()
        && !unit.trim().eq_ignore_ascii_case("JY/PIXEL")
    {
        tracing::warn!(
            "{}: BUNIT is {unit:?}; predict treats the pixels as Jy/pixel",
            args.model.display()
        );
    }
    let stage = ctx.progress.stage(format!(
        "predicting {} visibilities from {} x {} pixels",
        count(block.n_vis()),
        model.geom.npix_x,
        model.geom.npix_y
    ));
    let (vis, rep) = gridder::predict(
        &block.uvw_r,
        &block.freq_c,
        model.data_yx.view(),
        &model.geom,
        &opts,
    )
    .map_err(|e| {
        // npix and cell are the model's, not options.
        for_option_or(
            e,
            &[("epsilon", "--epsilon")],
            format_args!("--model {}", args.model.display()),
        )
    })?;
    let t_predict = stage.done();
    tracing::debug!(?rep, "predict gridder report");
    block.vis_rc = vis;

    meta.extra.remove("sky_model");
    meta.extra.insert(
        "predicted_from".into(),
        json!({
            "model": resolved(&args.model).display().to_string(),
            "bundle": resolved(&args.bundle).display().to_string(),
            "epsilon": opts.epsilon,
            "precision": precision_name(opts.precision),
            "wstacking": opts.wstacking,
            "command": ctx.command_line,
        }),
    );
    bundle::write(
        ctx,
        &args.out,
        &block,
        &meta,
        args.gridder.precision.vis_dtype(),
        args.overwrite,
    )?;

    let g = &model.geom;
    let flux: f64 = model.data_yx.sum();
    let max_amp = block.vis_rc.iter().map(|v| v.norm()).fold(0.0, f64::max);
    let mut s = Summary::new();
    s.row("bundle", args.bundle.display());
    s.row(
        "model",
        format!(
            "{}: {} x {} pixels of {:.4} arcsec, total {flux:.6} Jy",
            args.model.display(),
            g.npix_x,
            g.npix_y,
            rad_to_arcsec(g.cell)
        ),
    );
    s.row(
        "visibilities",
        format!(
            "{} ({}), max |V| {max_amp:.6} Jy",
            count(block.n_vis()),
            rows_by_channels(&block)
        ),
    );
    s.row(
        "gridder",
        format!("{}; {}", describe_request(&opts), describe_layout(&rep)),
    );
    s.row(
        "timing",
        format!(
            "predict {}: {}; {}",
            seconds(t_predict),
            describe_phases(&rep, Direction::Predict),
            rate(rep.nvis as f64, rep.times.total)
        ),
    );
    s.row("wrote", args.out.display());
    s.print();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separation_is_small_angle_accurate() {
        let a = RaDec::from_degrees(15.0, -45.0);
        let b = RaDec::new(a.ra + 1e-10 / a.dec.cos(), a.dec);
        assert!((separation(a, b) - 1e-10).abs() < 1e-14);
        let c = RaDec::new(a.ra, a.dec + 2e-9);
        assert!((separation(a, c) - 2e-9).abs() < 1e-15);
        assert_eq!(separation(a, a), 0.0);
    }
}
