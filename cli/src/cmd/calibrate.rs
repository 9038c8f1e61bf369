//! `aperture calibrate`: antenna gains (T, G or B) of a visibility bundle against the
//! model visibilities of a second bundle, solved with StEFCal and written as a gain
//! table (JSON or CSV).

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use aperture_imaging::calib::{
    DEFAULT_MAX_ITER, DEFAULT_TOL, FreqCells, GainTable, NormalEquations, SolutionLayout,
    SolutionType, SolveSpec, solve, time_intervals,
};
use aperture_imaging::vis::VisBlock;
use aperture_pipeline::formats::bundle::BundleMeta;
use aperture_pipeline::formats::gains::{GainFormat, write_gain_table};
use clap::Args;

use crate::common::errors::{for_option, for_option_or};
use crate::common::fmt::{Summary, count, seconds};
use crate::common::imaging::check_memory;
use crate::common::output::{FileOutputs, check_not_input};
use crate::common::{Context, bundle};

/// Parses `T`, `G` or `B` (any case) for `--solution`.
pub fn parse_solution(s: &str) -> Result<SolutionType, String> {
    s.parse::<SolutionType>().map_err(|e| match e {
        aperture_imaging::ImagingError::InvalidParameter { reason, .. } => reason,
        other => other.to_string(),
    })
}

/// Solve for antenna gains against model visibilities.
///
/// Model: a row with ant1 = p, ant2 = q holds V_pq = g_p conj(g_q) M_pq, where M is the
/// model bundle's visibility (e.g. from `aperture predict`, or a noise-free simulation of
/// the sky model). Solution types as in RASCIL: T is phase-only and shared by all
/// frequencies; G has amplitude and phase per frequency window (windows from
/// --channels-per-window, or the frequency_windows entry of meta.json that `aperture
/// simulate` writes, else the whole band); B has one solution per channel. Each solution
/// interval holds the integrations within --interval seconds of its first one.
///
/// The solver is StEFCal (Salvini & Wijnholds 2014) on weighted normal equations; flags
/// (of either bundle) and weights are respected, autocorrelations ignored. The reference
/// antenna's phase is 0 in every solution (the next antenna with data stands in where it
/// has none). Antennas without data, and every gain of a solution that does not converge
/// within --max-iter, are flagged in the table.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  aperture calibrate obs/ --model-vis model/ --solution G \
                        --interval 600 --refant 0 --out gains.json"
)]
pub struct CalibrateArgs {
    /// The observed visibility bundle.
    #[arg(value_name = "BUNDLE")]
    pub bundle: PathBuf,
    /// The model visibility bundle: the same rows (antennas, times) and channels.
    #[arg(long, value_name = "BUNDLE_MODEL")]
    pub model_vis: PathBuf,
    /// Solution type: T (phase-only, all frequencies), G (per window) or B (per channel).
    #[arg(long, value_name = "T|G|B", value_parser = parse_solution)]
    pub solution: SolutionType,
    /// Solution interval in seconds [default: the whole observation].
    #[arg(long, value_name = "SEC", allow_negative_numbers = true)]
    pub interval: Option<f64>,
    /// Reference antenna (its phase is set to 0).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub refant: usize,
    /// Convergence tolerance on the relative change of the gains between iterations.
    #[arg(long, value_name = "TOL", default_value_t = DEFAULT_TOL, allow_negative_numbers = true)]
    pub tol: f64,
    /// Maximum StEFCal iterations per solution.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_ITER)]
    pub max_iter: usize,
    /// Solve for phases only (amplitudes fixed at 1); T always is.
    #[arg(long)]
    pub phase_only: bool,
    /// Channels per frequency window for G solutions [default: from meta.json's
    /// frequency_windows, else all channels in one window].
    #[arg(long, value_name = "C")]
    pub channels_per_window: Option<usize>,
    /// Output gain table: .json or .csv.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub overwrite: bool,
}

/// Options named by the kernels' errors.
const OPTIONS: &[(&str, &str)] = &[
    ("interval", "--interval"),
    ("tol", "--tol"),
    ("max_iter", "--max-iter"),
    ("refant", "--refant"),
    ("channels_per_window", "--channels-per-window"),
];

/// Channels per window from meta.json's `frequency_windows.channels_per_window`.
fn meta_channels_per_window(meta: &BundleMeta) -> Option<usize> {
    meta.extra
        .get("frequency_windows")?
        .get("channels_per_window")?
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
}

/// Errors unless the model bundle has the data's rows, antennas, times and channels.
fn check_model_matches(
    data: &VisBlock,
    model: &VisBlock,
    data_path: &Path,
    model_path: &Path,
) -> Result<()> {
    let (d, m) = (data_path.display(), model_path.display());
    if (model.n_rows(), model.n_chan()) != (data.n_rows(), data.n_chan()) {
        bail!(
            "--model-vis {m}: has {} rows x {} channels but {d} has {} rows x {} channels; \
             the model must have the same rows and channels",
            model.n_rows(),
            model.n_chan(),
            data.n_rows(),
            data.n_chan()
        );
    }
    if let Some(c) = (0..data.n_chan()).find(|&c| model.freq_c[c] != data.freq_c[c]) {
        bail!(
            "--model-vis {m}: channel {c} is at {} Hz but at {} Hz in {d}",
            model.freq_c[c],
            data.freq_c[c]
        );
    }
    if let Some(r) = (0..data.n_rows()).find(|&r| {
        (model.ant1_r[r], model.ant2_r[r], model.time_r[r])
            != (data.ant1_r[r], data.ant2_r[r], data.time_r[r])
    }) {
        bail!(
            "--model-vis {m}: row {r} is antennas ({}, {}) at {} s but ({}, {}) at {} s in {d}",
            model.ant1_r[r],
            model.ant2_r[r],
            model.time_r[r],
            data.ant1_r[r],
            data.ant2_r[r],
            data.time_r[r]
        );
    }
    Ok(())
}

/// The solution grid for the chosen type.
fn layout_for(
    args: &CalibrateArgs,
    block: &VisBlock,
    meta: &BundleMeta,
    spec: &SolveSpec,
) -> Result<(SolutionLayout, String)> {
    let intervals = time_intervals(&block.time_r, spec.interval())
        .map_err(|e| for_option_or(e, OPTIONS, args.bundle.display()))?;
    let (cells, what) = match spec.solution {
        SolutionType::T => (FreqCells::All, "all frequencies".to_owned()),
        SolutionType::B => (
            FreqCells::channels(&block.freq_c)
                .map_err(|e| for_option_or(e, OPTIONS, args.bundle.display()))?,
            format!("{} channels", block.n_chan()),
        ),
        SolutionType::G => {
            let (cpw, from) = match (args.channels_per_window, meta_channels_per_window(meta)) {
                (Some(c), _) => (c, "--channels-per-window"),
                (None, Some(c)) => (c, "meta.json frequency_windows"),
                (None, None) => (block.n_chan(), "the whole band"),
            };
            let cells = FreqCells::windows(&block.freq_c, cpw).map_err(|e| match args.channels_per_window {
                Some(_) => for_option(e, OPTIONS),
                None => anyhow!(
                    "{}: meta.json frequency_windows.channels_per_window = {cpw} does not divide the {} \
                     channels (give --channels-per-window)",
                    args.bundle.display(),
                    block.n_chan()
                ),
            })?;
            let n = cells.len();
            (
                cells,
                format!("{n} window(s) of {cpw} channel(s), from {from}"),
            )
        }
    };
    Ok((SolutionLayout { intervals, cells }, what))
}

pub fn run(args: &CalibrateArgs, ctx: &Context) -> Result<()> {
    let spec = SolveSpec {
        interval_s: args.interval,
        refant: args.refant,
        tol: args.tol,
        max_iter: args.max_iter,
        phase_only: args.phase_only || args.solution == SolutionType::T,
        ..SolveSpec::new(args.solution)
    };
    spec.validate().map_err(|e| for_option(e, OPTIONS))?;
    if args.channels_per_window.is_some() && args.solution != SolutionType::G {
        bail!(
            "--channels-per-window: only applies to --solution G (not {})",
            args.solution
        );
    }
    let format = GainFormat::from_path(&args.out).map_err(|_| {
        anyhow!(
            "--out {}: the gain table must end in .json or .csv",
            args.out.display()
        )
    })?;
    let mut outs = FileOutputs::new(args.overwrite);
    check_not_input("--out", &args.out, "input bundle", &args.bundle)?;
    check_not_input("--out", &args.out, "model bundle", &args.model_vis)?;
    let out_id = outs.add("--out", &args.out)?;
    if !args.model_vis.exists() {
        bail!("--model-vis {}: does not exist", args.model_vis.display());
    }

    let (mut block, meta) = bundle::read(ctx, &args.bundle)?;
    let (model, _) = bundle::read(ctx, &args.model_vis)?;
    check_model_matches(&block, &model, &args.bundle, &args.model_vis)?;
    // A sample flagged in either bundle is not used.
    block.flag_rc.zip_mut_with(&model.flag_rc, |f, &m| *f |= m);

    let n_ant = block
        .ant1_r
        .iter()
        .chain(&block.ant2_r)
        .copied()
        .max()
        .unwrap_or(0) as usize
        + 1;
    if args.refant >= n_ant {
        bail!(
            "--refant {}: {} has {n_ant} antennas (0..{})",
            args.refant,
            args.bundle.display(),
            n_ant - 1
        );
    }
    let (layout, cells_what) = layout_for(args, &block, &meta, &spec)?;
    let nsol = layout.n_intervals() * layout.n_cells();
    check_memory(
        nsol as f64 * (n_ant * (n_ant - 1) / 2) as f64 * 24.0,
        &format!(
            "{} intervals x {} frequency cells x {n_ant} antennas",
            layout.n_intervals(),
            layout.n_cells()
        ),
    )?;
    let n_intervals = layout.n_intervals();

    let stage = ctx.progress.stage(format!(
        "accumulating normal equations over {} visibilities",
        count(block.n_vis())
    ));
    let mut ne = NormalEquations::new(args.solution, n_ant, layout)
        .map_err(|e| for_option_or(e, OPTIONS, args.bundle.display()))?;
    ne.add_block(&block, model.vis_rc.view(), block.weight_rc.view())
        .map_err(|e| for_option_or(e, OPTIONS, args.bundle.display()))?;
    stage.done();

    let stage = ctx.progress.stage(format!(
        "solving {nsol} {} solution(s) for {n_ant} antennas",
        args.solution
    ));
    let table = solve(&ne, &spec).map_err(|e| for_option_or(e, OPTIONS, args.bundle.display()))?;
    let t_solve = stage.done();

    write_gain_table(outs.staged(out_id), &table, format)?;
    outs.commit()?;

    summary(args, &table, n_intervals, &cells_what, t_solve).print();
    Ok(())
}

fn summary(
    args: &CalibrateArgs,
    t: &GainTable,
    n_intervals: usize,
    cells_what: &str,
    t_solve: f64,
) -> Summary {
    let mut s = Summary::new();
    s.row("bundle", args.bundle.display());
    s.row("model", args.model_vis.display());
    s.row(
        "solution",
        format!(
            "{}{}: {} antennas x {n_intervals} interval(s){} x {cells_what}",
            args.solution,
            if t.phase_only { " (phase only)" } else { "" },
            t.n_ant,
            match args.interval {
                Some(d) => format!(" of {d} s"),
                None => String::new(),
            },
        ),
    );
    if let Some(stats) = &t.stats {
        let n = stats.len();
        let converged = stats.iter().filter(|s| s.converged).count();
        let mut iters: Vec<usize> = stats.iter().map(|s| s.iterations).collect();
        iters.sort_unstable();
        s.row(
            "converged",
            format!(
                "{converged} of {n} solutions (tol {:e}, at most {} iterations){}",
                args.tol,
                args.max_iter,
                if converged < n {
                    "; the others are flagged"
                } else {
                    ""
                }
            ),
        );
        s.row(
            "iterations",
            format!(
                "min {}, median {}, max {}",
                iters[0],
                iters[n / 2],
                iters[n - 1]
            ),
        );
        let before: f64 = stats.iter().map(|s| s.chi2_before).sum();
        let after: f64 = stats.iter().map(|s| s.chi2_after).sum();
        let samples: u64 = stats.iter().map(|s| s.n_samples).sum();
        s.row(
            "chi2",
            format!(
                "{before:.6e} before, {after:.6e} after ({} weighted samples)",
                count(samples as usize)
            ),
        );
        let moved = stats
            .iter()
            .filter(|st| st.refant != Some(args.refant))
            .count();
        s.row(
            "reference antenna",
            if moved == 0 {
                format!("{}", args.refant)
            } else {
                format!(
                    "{} ({moved} solution(s) used another: it had no data there)",
                    args.refant
                )
            },
        );
    }
    s.row(
        "flagged gains",
        format!("{} of {}", count(t.n_flagged()), count(t.gains.len())),
    );
    s.row("timing", format!("solve {}", seconds(t_solve)));
    s.row("wrote", args.out.display());
    s
}
