//! aperture-worker: runs one task (stage, index) of a job plan stored in object storage
//! (named by its arguments, or with `--task-from-stdin` assigned as one JSON line on
//! standard input once the plan is loaded), or (`survey`) surveys a job's MeasurementSet input for the operator before it plans.
//! Exit codes: 0 done (manifest written), 75 retryable failure, 65 permanent failure,
//! 2 bad arguments.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Run one task of an aperture job plan.
#[derive(Debug, Parser)]
#[command(
    name = "aperture-worker",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Args {
    #[command(subcommand)]
    mode: Option<Mode>,
    /// URL of the job output (or of its plan.json): a path, file://, s3:// or memory://.
    #[arg(long, required = true)]
    plan: Option<String>,
    /// Stage name, as in the plan.
    #[arg(long, required_unless_present = "task_from_stdin")]
    stage: Option<String>,
    /// Task index; defaults to $JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs).
    #[arg(long)]
    index: Option<u32>,
    /// Load the plan, then wait for the task as one JSON line on standard input (how
    /// `aperture run` starts workers ahead of their tasks).
    #[arg(long, conflicts_with_all = ["stage", "index"])]
    task_from_stdin: bool,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Survey the MeasurementSet of `<output>/import/survey-request.json` (written by the
    /// operator): create the dataset's layout and import/dataset.json, and write the
    /// planner's facts (or the error) to import/survey.json.
    Survey {
        /// URL of the job output: a path, file://, s3:// or memory://.
        #[arg(long)]
        output: String,
    },
}

fn main() -> ExitCode {
    aperture_pipeline::tasks::limit_malloc_arenas();
    let args = Args::parse();
    // Spans: recorded for diagnostics/, exported over OTLP when OTEL_* asks for it.
    let tel = aperture_telemetry::Telemetry::init(aperture_telemetry::TelemetryConfig::from_env(
        "aperture-worker",
        "warn",
    ));
    if let Some(Mode::Survey { output }) = &args.mode {
        let code = match runtime() {
            Ok(rt) => rt.block_on(aperture_pipeline::executor::survey::survey_main(output)),
            Err(code) => code,
        };
        drop(tel);
        return ExitCode::from(code);
    }
    let Some(plan) = &args.plan else {
        eprintln!("error: give --plan, or the survey subcommand");
        return ExitCode::from(2);
    };
    let task = match aperture_pipeline::tasks::worker_task(
        args.stage.as_deref(),
        args.index,
        args.task_from_stdin,
    ) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return ExitCode::from(code),
    };
    let code = rt.block_on(aperture_pipeline::tasks::run_worker_task(
        plan,
        task,
        Some(tel.recorder()),
    ));
    drop(rt);
    drop(tel);
    ExitCode::from(code)
}

/// The worker's async runtime, or the exit code when it cannot start.
fn runtime() -> Result<tokio::runtime::Runtime, u8> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            aperture_pipeline::tasks::EXIT_RETRYABLE
        })
}
