//! `aperture report OUTPUT_URL`: re-render a job's diagnostics (timings tables, trace,
//! report.html) from what its output holds: also for a job that failed or is running.

use std::path::PathBuf;

use anyhow::{Context as _, Result, anyhow};
use aperture_pipeline::diagnostics::{RunState, rerender};
use aperture_pipeline::storage::Store;
use aperture_telemetry::{Telemetry, TelemetryConfig};
use clap::Args;

use super::run::log_level;

/// Re-render a job's diagnostics from its output.
///
/// Reads plan.json, the task manifests and the stored spans under OUTPUT_URL and
/// rewrites diagnostics/ (timings.csv, stages.csv, tasks.csv, trace.json, report.html).
/// Prints the report's URL.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The job's output: a directory, file://, s3://bucket/prefix.
    pub output: String,
    /// Also copy report.html to this local file.
    #[arg(long)]
    pub html: Option<PathBuf>,
}

pub fn run(args: &ReportArgs, verbose: u8) -> Result<()> {
    let _tel = Telemetry::init(TelemetryConfig::from_env("aperture", log_level(verbose)));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let out = Store::from_url(&args.output).map_err(|e| anyhow!("{e}"))?;
        let (plan, written, state) = rerender(&out).await.map_err(|e| anyhow!("{e}"))?;
        let state = match state {
            RunState::Succeeded => "succeeded".to_string(),
            RunState::Failed { reason } => format!("failed: {reason}"),
            RunState::Running => "running (or stopped before the end)".to_string(),
        };
        eprintln!(
            "{}: {state}; {} tasks committed, {} spans",
            plan.job,
            written.figures.tasks,
            written.spans.len()
        );
        if let Some(path) = &args.html {
            let html = out
                .get("diagnostics/report.html")
                .await
                .map_err(|e| anyhow!("{e}"))?;
            std::fs::write(path, &html).with_context(|| format!("writing {}", path.display()))?;
        }
        #[allow(clippy::print_stdout)]
        {
            println!("{}", out.key_url("diagnostics/report.html"));
        }
        Ok(())
    })
}
