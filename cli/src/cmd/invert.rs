//! `aperture invert`: the dirty image (and optionally the PSF) of a numpy bundle, written
//! as FITS with a full WCS and a PNG quick-look beside each FITS file.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use aperture_imaging::gridder::{self, GridReport, GridderOptions};
use aperture_imaging::image::Image;
use aperture_imaging::weighting::{
    WeightingReport, WeightingScheme, WeightingSpec, imaging_weights,
};
use aperture_pipeline::formats::fits::{Bitpix, Card, FitsWriteOptions, write_fits_image};
use aperture_pipeline::formats::png::{quicklook_path, write_png_quicklook};
use clap::{Args, ValueEnum};

use crate::common::errors::{for_option, for_option_or};
use crate::common::fits::{fits_text, gridder_cards, history, utc_now};
use crate::common::fmt::{Summary, count, radec, rate, seconds};
use crate::common::gridding::{
    Direction, GRIDDER_OPTIONS, GridderArgs, describe_layout, describe_phases, describe_request,
};
use crate::common::imaging::{
    BYTES_PER_PIXEL, arcsec_to_rad, check_cell, check_memory, check_npix, choose_geometry,
    rad_to_arcsec, station_diameter,
};
use crate::common::output::{FileOutputs, OutputId, check_not_input};
use crate::common::{Context, bundle};

/// Visibility weighting schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Weighting {
    /// Data weights as they are: best sensitivity, broadest beam.
    Natural,
    /// Every occupied uv cell gets equal weight: sharpest beam, most noise.
    Uniform,
    /// Briggs robust weighting between the two (see --robust).
    Robust,
}

impl Weighting {
    fn name(self) -> &'static str {
        match self {
            Self::Natural => "natural",
            Self::Uniform => "uniform",
            Self::Robust => "robust",
        }
    }
}

/// Make the dirty image (and PSF) of a visibility bundle.
///
/// Grids the visibilities with the w-stacking gridder (accuracy --epsilon against an exact
/// direct Fourier transform) and writes the dirty image in Jy/beam: the weighted adjoint
/// of predict divided by the sum of weights, so a 1 Jy point source at the phase centre
/// peaks at 1 and the PSF peaks at 1 at pixel (npix/2, npix/2). The FITS files carry the
/// full SIN WCS (CRPIX = npix/2 + 1, CDELT1 = -cell), the mean channel frequency and the
/// bandwidth, the gridder parameters and the command line; a PNG quick-look is written
/// next to each (dirty.fits -> dirty.png).
///
/// Image size and cell default to RASCIL-style advice: the cell is a third of the
/// synthesised beam at the highest frequency, the field six primary-beam widths of the
/// station diameter in meta.json (35 m if absent) at the lowest frequency.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  aperture invert obs/ --npix 1024 --weighting robust --robust -0.5 \
                        --out dirty.fits --psf psf.fits"
)]
pub struct InvertArgs {
    /// The visibility bundle (directory) to image.
    #[arg(value_name = "BUNDLE")]
    pub bundle: PathBuf,
    /// Image pixels per side (even, at least 16) [default: advised].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub npix: Option<usize>,
    /// Pixel size in arcseconds [default: advised, a third of the synthesised beam].
    #[arg(long, value_name = "ARCSEC", allow_negative_numbers = true)]
    pub cell: Option<f64>,
    #[command(flatten)]
    pub gridder: GridderArgs,
    /// Visibility weighting.
    #[arg(long, value_enum, default_value_t = Weighting::Natural)]
    pub weighting: Weighting,
    /// Briggs robustness for --weighting robust, from -2 (close to uniform) to 2 (close to
    /// natural) [default: 0].
    #[arg(long, value_name = "R", allow_negative_numbers = true)]
    pub robust: Option<f64>,
    /// Gaussian taper: the FWHM in arcseconds of the image-plane Gaussian the PSF is
    /// convolved with (CASA uvtaper / WSClean -taper-gaussian).
    #[arg(long, value_name = "ARCSEC", allow_negative_numbers = true)]
    pub taper: Option<f64>,
    /// Output FITS file for the dirty image; a PNG quick-look is written beside it.
    #[arg(long, value_name = "FITS")]
    pub out: PathBuf,
    /// Also write the point-spread function to this FITS file (with its quick-look).
    #[arg(long, value_name = "FITS")]
    pub psf: Option<PathBuf>,
    /// Write 64-bit float pixels (BITPIX -64) instead of 32-bit.
    #[arg(long)]
    pub fits_f64: bool,
    /// Replace output files that already exist.
    #[arg(long)]
    pub overwrite: bool,
}

/// The options checked before any data is read.
struct Checked {
    opts: GridderOptions,
    cell_rad: Option<f64>,
    spec: WeightingSpec,
}

fn check_args(args: &InvertArgs) -> Result<Checked> {
    let opts = args.gridder.options()?;
    check_npix(args.npix)?;
    let cell_rad = check_cell(args.cell)?;
    if let Some(r) = args.robust
        && !(-2.0..=2.0).contains(&r)
    {
        bail!("--robust {r}: must be between -2 and 2");
    }
    let scheme = match args.weighting {
        Weighting::Natural => WeightingScheme::Natural,
        Weighting::Uniform => WeightingScheme::Uniform,
        Weighting::Robust => WeightingScheme::Briggs {
            robust: args.robust.unwrap_or(0.0),
        },
    };
    if args.robust.is_some() && args.weighting != Weighting::Robust {
        bail!(
            "--robust: only applies with --weighting robust (not {})",
            args.weighting.name()
        );
    }
    let mut spec = WeightingSpec::new(scheme);
    if let Some(t) = args.taper {
        if !(t.is_finite() && t > 0.0) {
            bail!("--taper {t}: must be a positive FWHM in arcseconds");
        }
        spec = spec.with_taper(arcsec_to_rad(t));
    }
    spec.validate()
        .map_err(|e| for_option(e, &[("robust", "--robust"), ("taper", "--taper")]))?;
    Ok(Checked {
        opts,
        cell_rad,
        spec,
    })
}

pub fn run(args: &InvertArgs, ctx: &Context) -> Result<()> {
    let checked = check_args(args)?;
    let opts = checked.opts;

    // Outputs first: a path problem is reported before minutes of gridding.
    let mut outs = FileOutputs::new(args.overwrite);
    let dirty_out = ImageOutput::add(&mut outs, "--out", &args.out, &args.bundle)?;
    let psf_out = match &args.psf {
        Some(p) => Some(ImageOutput::add(&mut outs, "--psf", p, &args.bundle)?),
        None => None,
    };

    let (block, meta) = bundle::read(ctx, &args.bundle)?;

    let (diameter, default_diameter) = station_diameter(&meta);
    let choice = choose_geometry(&block, diameter, args.npix, checked.cell_rad, &args.bundle)?;
    let geom = choice.geom;
    tracing::info!(
        npix = geom.npix_x,
        cell_arcsec = rad_to_arcsec(geom.cell),
        npix_advised = args.npix.is_none(),
        cell_advised = args.cell.is_none(),
        freq_hz = geom.freq_hz,
        bandwidth_hz = geom.bandwidth_hz,
        "image geometry"
    );
    if let Some(a) = &choice.advice {
        tracing::debug!(?a, "wide-field advice");
    }
    if choice.advice.is_some() && default_diameter {
        ctx.progress.note(&format!(
            "note: {} gives no station_diameter_m; advising the field for {diameter} m stations",
            args.bundle.display()
        ));
    }
    if choice.field_limited {
        ctx.progress.note(
            "note: the advised field reaches far from the phase centre; limited to |l|, |m| <= 0.6",
        );
    }
    let what = match args.npix {
        Some(n) => format!("--npix {n}"),
        None => format!(
            "advised image of {} x {} pixels (give a smaller --npix)",
            geom.npix_x, geom.npix_y
        ),
    };
    // The PSF is gridded after the dirty image, reusing the memory; its image adds a bit.
    let psf_share = if args.psf.is_some() { 1.3 } else { 1.0 };
    check_memory(
        (geom.npix_x * geom.npix_y) as f64 * BYTES_PER_PIXEL * psf_share,
        &what,
    )?;

    let stage = ctx
        .progress
        .stage(format!("weighting ({})", args.weighting.name()));
    let (wgt, wrep) = imaging_weights(&block, &geom, &checked.spec)
        .map_err(|e| anyhow!("{}: weighting: {e}", args.bundle.display()))?;
    stage.done();
    if wrep.sum_weights <= 0.0 {
        bail!(
            "{}: no unflagged visibilities with positive weight to image",
            args.bundle.display()
        );
    }

    let gridder_error = |e| for_option_or(e, GRIDDER_OPTIONS, args.bundle.display());
    let stage = ctx.progress.stage(format!(
        "gridding {} visibilities onto {} x {} pixels",
        count(block.n_vis()),
        geom.npix_x,
        geom.npix_y
    ));
    let (dirty, rep) = gridder::dirty_image(
        &block.uvw_r,
        &block.freq_c,
        block.vis_rc.view(),
        wgt.view(),
        &geom,
        &opts,
    )
    .map_err(gridder_error)?;
    let t_dirty = stage.done();
    tracing::debug!(?rep, "dirty image gridder report");

    let psf = match &psf_out {
        Some(_) => {
            let stage = ctx.progress.stage("gridding the PSF");
            let (psf, prep) =
                gridder::psf_image(&block.uvw_r, &block.freq_c, wgt.view(), &geom, &opts)
                    .map_err(gridder_error)?;
            let t = stage.done();
            Some((psf, prep, t))
        }
        None => None,
    };

    // FITS headers.
    let mut cards = vec![Card::new(
        "WEIGHTNG",
        args.weighting.name(),
        "visibility weighting scheme",
    )];
    if let WeightingScheme::Briggs { robust } = checked.spec.scheme {
        cards.push(Card::new("ROBUST", robust, "Briggs robustness"));
    }
    if let Some(t) = args.taper {
        cards.push(Card::new("TAPER", t, "Gaussian taper FWHM (arcsec)"));
    }
    cards.push(Card::new(
        "SUMWT",
        wrep.sum_weights,
        "sum of imaging weights",
    ));
    let fits_opts = |rep: &GridReport, object: &str| {
        let mut extra = cards.clone();
        extra.extend(gridder_cards(&opts, rep));
        extra.extend(history(&ctx.command_line));
        FitsWriteOptions {
            bitpix: if args.fits_f64 {
                Bitpix::F64
            } else {
                Bitpix::F32
            },
            bunit: "JY/BEAM".into(),
            object: Some(object.into()),
            telescope: meta.telescope.as_deref().map(fits_text),
            date: utc_now(),
            beam: None,
            extra,
        }
    };

    let stage = ctx.progress.stage("writing FITS and PNG files");
    dirty_out.write(&outs, &dirty, &fits_opts(&rep, "dirty image"))?;
    if let (Some(out), Some((psf, prep, _))) = (&psf_out, &psf) {
        out.write(&outs, psf, &fits_opts(prep, "point-spread function"))?;
    }
    let written = outs.commit()?;
    stage.done();

    summary(
        args,
        &checked,
        &wrep,
        (&dirty, &rep, t_dirty),
        psf.as_ref(),
        block.n_chan(),
        &written,
    )
    .print();
    Ok(())
}

/// An image product: a FITS file and its PNG quick-look beside it.
struct ImageOutput<'a> {
    option: &'static str,
    path: &'a Path,
    fits: OutputId,
    png: OutputId,
}

impl<'a> ImageOutput<'a> {
    /// Registers FITS file `path` of `option` and its quick-look, neither touching the
    /// input `bundle`.
    fn add(
        outs: &mut FileOutputs,
        option: &'static str,
        path: &'a Path,
        bundle: &Path,
    ) -> Result<Self> {
        check_not_input(option, path, "input bundle", bundle)?;
        Ok(Self {
            option,
            path,
            fits: outs.add(option, path)?,
            png: outs.add(&format!("quick-look of {option}"), &quicklook_path(path))?,
        })
    }

    /// Writes `img` to the staged FITS file and quick-look.
    fn write(&self, outs: &FileOutputs, img: &Image, opts: &FitsWriteOptions) -> Result<()> {
        let staged = outs.staged(self.fits);
        write_fits_image(staged, img, opts)
            .map_err(|e| write_error(e, self.option, self.path, staged))?;
        let staged = outs.staged(self.png);
        write_png_quicklook(staged, img)
            .map_err(|e| write_error(e, self.option, &quicklook_path(self.path), staged))?;
        Ok(())
    }
}

/// A writer error reported against the final path rather than the temporary one.
fn write_error(
    e: aperture_pipeline::FormatError,
    option: &str,
    path: &Path,
    staged: &Path,
) -> anyhow::Error {
    let msg = e
        .to_string()
        .replace(&staged.display().to_string(), &path.display().to_string());
    anyhow!("{option} {}: {msg}", path.display())
}

/// Peak, position and RMS of an image, for the summary.
fn describe(img: &Image, unit: &str) -> (String, f64) {
    let (peak, x, y) = img.peak();
    let pos = img
        .geom
        .pixel_to_radec(x as f64, y as f64)
        .map(|d| radec(d.ra, d.dec))
        .unwrap_or_else(|| "beyond the horizon".into());
    let n = img.data_yx.len().max(1) as f64;
    let rms = (img.data_yx.iter().map(|v| v * v).sum::<f64>() / n).sqrt();
    (
        format!("{peak:.6} {unit} at pixel (x={x}, y={y}), 0-based\n{pos}"),
        rms,
    )
}

fn summary(
    args: &InvertArgs,
    checked: &Checked,
    wrep: &WeightingReport,
    (dirty, rep, t_dirty): (&Image, &GridReport, f64),
    psf: Option<&(Image, GridReport, f64)>,
    n_chan: usize,
    written: &[PathBuf],
) -> Summary {
    let g = &dirty.geom;
    let mut s = Summary::new();
    let tag = |advised: bool| if advised { " (advised)" } else { "" };
    s.row("bundle", args.bundle.display());
    s.row(
        "image",
        format!(
            "{} x {} pixels{}, cell {:.4} arcsec{}, field {:.3} deg",
            g.npix_x,
            g.npix_y,
            tag(args.npix.is_none()),
            rad_to_arcsec(g.cell),
            tag(args.cell.is_none()),
            (g.cell * g.npix_x as f64).to_degrees()
        ),
    );
    s.row("phase centre", radec(g.phase_centre.ra, g.phase_centre.dec));
    s.row(
        "frequency",
        format!(
            "{:.6} MHz (mean of {n_chan} channels), bandwidth {:.6} MHz",
            g.freq_hz / 1e6,
            g.bandwidth_hz / 1e6
        ),
    );
    let mut wdesc = args.weighting.name().to_owned();
    if let WeightingScheme::Briggs { robust } = checked.spec.scheme {
        wdesc.push_str(&format!(" {robust}"));
    }
    if let Some(t) = args.taper {
        wdesc.push_str(&format!(", taper {t} arcsec"));
    }
    s.row(
        "weighting",
        format!(
            "{wdesc}; sum of weights {:.6e}, effective samples {:.0}{}",
            wrep.sum_weights,
            wrep.effective_n,
            if wrep.n_zeroed_outside_grid > 0 {
                format!(
                    ", {} samples beyond the uv grid dropped",
                    count(wrep.n_zeroed_outside_grid)
                )
            } else {
                String::new()
            }
        ),
    );
    let (peak, rms) = describe(dirty, "Jy/beam");
    s.row("peak", peak);
    s.row("rms", format!("{rms:.6e} Jy/beam"));
    s.row(
        "gridder",
        format!(
            "{}; {}",
            describe_request(&checked.opts),
            describe_layout(rep)
        ),
    );
    s.row(
        "timing",
        format!(
            "dirty {}: {}; {} gridded, {}",
            seconds(t_dirty),
            describe_phases(rep, Direction::Invert),
            count(rep.nvis),
            rate(rep.nvis as f64, rep.times.total)
        ),
    );
    if let Some((p, _, t)) = psf {
        let (x, y) = (p.geom.npix_x / 2, p.geom.npix_y / 2);
        s.row(
            "psf",
            format!(
                "{:.6} at the centre pixel (x={x}, y={y}); computed in {}",
                p.data_yx[[y, x]],
                seconds(*t)
            ),
        );
    }
    s.row(
        "wrote",
        written
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    );
    s
}
