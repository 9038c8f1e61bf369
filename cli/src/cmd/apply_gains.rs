//! `aperture apply-gains`: correct (or corrupt) a visibility bundle with a gain table,
//! written as a new bundle; and the random-gain options of `aperture simulate`.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use aperture_imaging::calib::{
    ApplyMode, FreqCells, GainTable, RandomGainSpec, SolutionLayout, SolutionType, WeightUpdate,
    apply_gains, random_gains, time_intervals,
};
use aperture_imaging::sim::FrequencySetup;
use aperture_imaging::vis::VisBlock;
use aperture_pipeline::formats::bundle::read_bundle_full;
use aperture_pipeline::formats::gains::{GainFormat, read_gain_table, write_gain_table};
use clap::{Args, ValueEnum};
use serde_json::{Map, Value, json};

use crate::common::errors::for_option;
use crate::common::fmt::{Summary, count, rows_by_channels};
use crate::common::output::{
    FileOutputs, OutputId, check_bundle_output, check_not_input, resolved,
};
use crate::common::{Context, bundle};

/// Which way to apply the gains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Divide by g_p conj(g_q): calibrate the data.
    Correct,
    /// Multiply by g_p conj(g_q): put the gains on (undoes correct).
    Corrupt,
}

impl ModeArg {
    fn mode(self) -> ApplyMode {
        match self {
            Self::Correct => ApplyMode::Correct,
            Self::Corrupt => ApplyMode::Corrupt,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Correct => "correct",
            Self::Corrupt => "corrupt",
        }
    }
}

/// Apply a gain table to a visibility bundle.
///
/// For a row with ant1 = p, ant2 = q, --mode correct divides the visibility by
/// g_p conj(g_q) and --mode corrupt multiplies by it (each undoes the other). Each row's
/// time selects its solution interval and each channel's frequency its cell; data outside
/// the table are an error. Samples whose gain is flagged are flagged (their values left
/// as they are). Weights are scaled by |g_p g_q|^2 when correcting and divided by it when
/// corrupting (CASA calwt), unless --keep-weights. The new bundle copies everything else
/// from the input and records the table in meta.json (gains_applied).
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  aperture apply-gains obs/ --gains gains.json --out corrected/")]
pub struct ApplyGainsArgs {
    /// The visibility bundle to correct.
    #[arg(value_name = "BUNDLE")]
    pub bundle: PathBuf,
    /// The gain table (.json or .csv, as `aperture calibrate` writes).
    #[arg(long, value_name = "FILE")]
    pub gains: PathBuf,
    /// Output bundle directory.
    #[arg(long, value_name = "OUT_BUNDLE")]
    pub out: PathBuf,
    /// Correct (calibrate) or corrupt.
    #[arg(long, value_enum, default_value_t = ModeArg::Correct)]
    pub mode: ModeArg,
    /// Leave the weights unchanged.
    #[arg(long)]
    pub keep_weights: bool,
    /// Replace the output bundle if it exists.
    #[arg(long)]
    pub overwrite: bool,
}

pub fn run(args: &ApplyGainsArgs, ctx: &Context) -> Result<()> {
    check_bundle_output("--out", &args.out, args.overwrite)?;
    check_not_input("--out", &args.out, "input bundle", &args.bundle)?;
    check_not_input("--out", &args.out, "gain table", &args.gains)?;
    if !args.gains.exists() {
        bail!("--gains {}: does not exist", args.gains.display());
    }
    let table = read_gain_table(&args.gains).map_err(|e| anyhow!("--gains: {e}"))?;

    let stage = ctx
        .progress
        .stage(format!("reading {}", args.bundle.display()));
    let mut b = read_bundle_full(&args.bundle)?;
    stage.done_with(&rows_by_channels(&b.block));

    let weights = if args.keep_weights {
        WeightUpdate::Keep
    } else {
        WeightUpdate::Scale
    };
    let stage = ctx.progress.stage(format!(
        "applying {} gains ({})",
        table.solution,
        args.mode.name()
    ));
    let rep = apply_gains(&mut b.block, &table, args.mode.mode(), weights).map_err(|e| {
        anyhow!(
            "--gains {}: cannot be applied to {}: {e}",
            args.gains.display(),
            args.bundle.display()
        )
    })?;
    stage.done();

    b.meta.extra.insert(
        "gains_applied".into(),
        json!({
            "table": resolved(&args.gains).display().to_string(),
            "solution": table.solution.name(),
            "mode": args.mode.name(),
            "weights_scaled": !args.keep_weights,
            "bundle": resolved(&args.bundle).display().to_string(),
            "command": ctx.command_line,
        }),
    );
    bundle::write(
        ctx,
        &args.out,
        &b.block,
        &b.meta,
        b.vis_dtype,
        args.overwrite,
    )?;

    let mut s = Summary::new();
    s.row("bundle", args.bundle.display());
    s.row(
        "gains",
        format!(
            "{}: {}{} x {} antennas x {} interval(s) x {} cell(s), {} flagged",
            args.gains.display(),
            table.solution,
            if table.phase_only {
                " (phase only)"
            } else {
                ""
            },
            table.n_ant,
            table.n_intervals(),
            table.n_cells(),
            count(table.n_flagged())
        ),
    );
    s.row(
        "applied",
        format!(
            "{} of {} samples ({}), weights {}",
            count(rep.applied),
            count(b.block.n_vis()),
            args.mode.name(),
            if args.keep_weights { "kept" } else { "scaled" }
        ),
    );
    s.row("newly flagged", count(rep.newly_flagged));
    s.row("wrote", args.out.display());
    s.print();
    Ok(())
}

/// Seed mix for simulated gains, independent of the sky and noise draws.
const GAIN_SEED_MIX: u64 = 0xD1B5_4A32_D192_ED03;

/// The random-gain options of `aperture simulate`.
#[derive(Debug, Args)]
pub struct GainSimArgs {
    /// Corrupt the visibilities with random antenna gains (G: per frequency window and
    /// interval, applied before the noise) with this phase rms, degrees.
    #[arg(
        long,
        value_name = "DEG",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub gain_phase_rms: f64,
    /// Fractional amplitude rms of the random gains (|g| = exp(rms x N(0,1))).
    #[arg(
        long,
        value_name = "FRAC",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub gain_amp_rms: f64,
    /// Solution interval of the random gains, seconds [default: the whole observation].
    #[arg(long, value_name = "SEC", allow_negative_numbers = true)]
    pub gain_interval: Option<f64>,
    /// Write the gains applied as a gain table (.json or .csv).
    #[arg(long, value_name = "FILE")]
    pub true_gains: Option<PathBuf>,
}

impl GainSimArgs {
    fn wanted(&self) -> bool {
        self.gain_phase_rms != 0.0 || self.gain_amp_rms != 0.0 || self.true_gains.is_some()
    }
}

/// The gains of a simulation: checked before any work, applied to the noise-free
/// visibilities, recorded in meta.json and written with the bundle.
#[derive(Debug)]
pub struct SimulatedGains<'a> {
    args: &'a GainSimArgs,
    output: Option<(FileOutputs, OutputId, GainFormat)>,
    table: Option<GainTable>,
}

impl<'a> SimulatedGains<'a> {
    /// Checks the options and the --true-gains path (not inside the output bundle `out`).
    pub fn check(args: &'a GainSimArgs, out: &Path, overwrite: bool) -> Result<Self> {
        let spec = RandomGainSpec {
            phase_rms_deg: args.gain_phase_rms,
            amp_rms: args.gain_amp_rms,
        };
        spec.validate().map_err(|e| {
            for_option(
                e,
                &[
                    ("phase_rms_deg", "--gain-phase-rms"),
                    ("amp_rms", "--gain-amp-rms"),
                ],
            )
        })?;
        if let Some(d) = args.gain_interval
            && (d.is_nan() || d <= 0.0)
        {
            bail!("--gain-interval {d}: must be a positive number of seconds");
        }
        let output = match &args.true_gains {
            None => None,
            Some(p) => {
                let format = GainFormat::from_path(p).map_err(|_| {
                    anyhow!(
                        "--true-gains {}: the gain table must end in .json or .csv",
                        p.display()
                    )
                })?;
                check_not_input("--true-gains", p, "output bundle", out)?;
                let mut outs = FileOutputs::new(overwrite);
                let id = outs.add("--true-gains", p)?;
                Some((outs, id, format))
            }
        };
        Ok(Self {
            args,
            output,
            table: None,
        })
    }

    /// Draws G gains (one cell per frequency window of `setup`) and corrupts `block`.
    pub fn corrupt(
        &mut self,
        block: &mut VisBlock,
        setup: &FrequencySetup,
        seed: u64,
    ) -> Result<()> {
        if !self.args.wanted() {
            return Ok(());
        }
        let n_ant = block
            .ant1_r
            .iter()
            .chain(&block.ant2_r)
            .copied()
            .max()
            .unwrap_or(0) as usize
            + 1;
        let layout = SolutionLayout {
            intervals: time_intervals(&block.time_r, self.args.gain_interval)
                .map_err(|e| for_option(e, &[("interval", "--gain-interval")]))?,
            cells: FreqCells::windows(&block.freq_c, setup.channels_per_window)?,
        };
        let spec = RandomGainSpec {
            phase_rms_deg: self.args.gain_phase_rms,
            amp_rms: self.args.gain_amp_rms,
        };
        let table = random_gains(SolutionType::G, n_ant, layout, &spec, seed ^ GAIN_SEED_MIX)?;
        apply_gains(block, &table, ApplyMode::Corrupt, WeightUpdate::Keep)?;
        self.table = Some(table);
        Ok(())
    }

    /// Records the gains in meta.json's `extra` keys.
    pub fn record(&self, extra: &mut Map<String, Value>) {
        if let Some(t) = &self.table {
            extra.insert(
                "gains".into(),
                json!({
                    "solution": t.solution.name(),
                    "phase_rms_deg": self.args.gain_phase_rms,
                    "amp_rms": self.args.gain_amp_rms,
                    "interval_s": self.args.gain_interval,
                    "intervals": t.n_intervals(),
                    "windows": t.n_cells(),
                    "applied_before_noise": true,
                    "true_gains": self.args.true_gains.as_ref().map(|p| resolved(p).display().to_string()),
                }),
            );
        }
    }

    /// Writes and commits --true-gains (after the bundle is written).
    pub fn commit(self) -> Result<()> {
        if let (Some((outs, id, format)), Some(t)) = (self.output, &self.table) {
            write_gain_table(outs.staged(id), t, format)?;
            outs.commit()?;
        }
        Ok(())
    }

    /// A summary line, when gains were applied.
    pub fn describe(&self) -> Option<String> {
        let t = self.table.as_ref()?;
        Some(format!(
            "G, phase rms {} deg, amplitude rms {}, {} interval(s) x {} window(s){}",
            self.args.gain_phase_rms,
            self.args.gain_amp_rms,
            t.n_intervals(),
            t.n_cells(),
            match &self.args.true_gains {
                Some(p) => format!("; true gains in {}", p.display()),
                None => String::new(),
            }
        ))
    }
}
