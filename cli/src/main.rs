//! The `aperture` command line: simulate visibilities, image them, predict visibilities
//! from model images and benchmark the imaging kernels, on numpy visibility bundles.
//!
//! Results go to stdout, progress and diagnostics to stderr; every error is one line,
//! `error: …`, naming the option or file, with exit code 2.

mod cmd;
mod common;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use common::Context;
use common::errors::{EXIT_ERROR, clap_exit, one_line};
use common::progress::Progress;
use common::runtime::{command_line, init_logging, install_panic_hook};

#[derive(Debug, Parser)]
#[command(
    name = "aperture",
    version,
    about = "Radio-interferometric imaging: simulate, invert and predict on numpy visibility bundles",
    long_about = "Radio-interferometric imaging: simulate, invert and predict on numpy visibility \
                  bundles.\n\nA bundle is a directory of .npy files (uvw, freq, vis, weight, flag, \
                  ant1, ant2, time) and meta.json with the phase centre. Results are printed on \
                  stdout, progress and logs on stderr. Errors are one line naming the option or \
                  file at fault, with exit code 2.",
    after_help = "Example:\n  aperture simulate --telescope low --rmax 600 --windows 2 \
                  --channels-per-window 4 --times 7 --out obs/\n  aperture invert obs/ --out \
                  dirty.fits --psf psf.fits"
)]
struct Cli {
    /// More log output on stderr: -v info, -vv debug, -vvv trace. Without -v, RUST_LOG
    /// (e.g. RUST_LOG=aperture_imaging=debug) sets the filter; the default is warnings.
    #[arg(short, long, action = clap::ArgAction::Count, global = true, help_heading = "Global options")]
    verbose: u8,
    /// No progress lines on stderr (results, warnings and errors are still printed).
    #[arg(short, long, global = true, help_heading = "Global options")]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Run(cmd::run::RunArgs),
    Report(cmd::report::ReportArgs),
    /// Print the ImagingJob CustomResourceDefinition (YAML) for `kubectl apply -f`.
    Crd,
    /// Run one task of a stored job plan (what `aperture run` starts per task).
    #[command(hide = true)]
    Worker(cmd::run::WorkerArgs),
    Simulate(cmd::simulate::SimulateArgs),
    Invert(cmd::invert::InvertArgs),
    Predict(cmd::predict::PredictArgs),
    Clean(cmd::clean::CleanArgs),
    Calibrate(cmd::calibrate::CalibrateArgs),
    ApplyGains(cmd::apply_gains::ApplyGainsArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
    /// Import visibilities into a Zarr visibility dataset.
    #[command(subcommand)]
    Import(cmd::import::ImportCommand),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_exit(&e),
    };
    // `run`, `worker` and `report` set up tracing themselves (OTLP export, span
    // recording; aperture-telemetry).
    if !matches!(
        cli.command,
        Command::Run(_) | Command::Worker(_) | Command::Report(_)
    ) {
        init_logging(cli.verbose);
    }
    install_panic_hook();
    let ctx = Context {
        progress: Progress::new(cli.quiet),
        command_line: command_line(),
    };
    let result = match &cli.command {
        Command::Run(args) => cmd::run::run(args, &ctx, cli.verbose),
        Command::Report(args) => cmd::report::run(args, cli.verbose),
        Command::Crd => cmd::crd::run(),
        Command::Worker(args) => return ExitCode::from(cmd::run::run_worker(args, cli.verbose)),
        Command::Simulate(args) => cmd::simulate::run(args, &ctx),
        Command::Invert(args) => cmd::invert::run(args, &ctx),
        Command::Predict(args) => cmd::predict::run(args, &ctx),
        Command::Clean(args) => cmd::clean::run(args, &ctx),
        Command::Calibrate(args) => cmd::calibrate::run(args, &ctx),
        Command::ApplyGains(args) => cmd::apply_gains::run(args, &ctx),
        Command::Bench(cmd::bench::BenchCommand::Kernels(args)) => {
            cmd::bench::run_kernels(args, &ctx)
        }
        Command::Bench(cmd::bench::BenchCommand::Deconv(args)) => {
            cmd::bench::run_deconv(args, &ctx)
        }
        Command::Import(cmd::import::ImportCommand::Npy(args)) => cmd::import::run_npy(args, &ctx),
        Command::Import(cmd::import::ImportCommand::Ms(args)) => cmd::import::run_ms(args, &ctx),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
