//! aperture-worker: runs one task (stage, index) of a job plan stored in object storage.
//! Exit codes: 0 done (manifest written), 75 retryable failure, 65 permanent failure,
//! 2 bad arguments.

use std::process::ExitCode;

use clap::Parser;

/// Run one task of an aperture job plan.
#[derive(Debug, Parser)]
#[command(name = "aperture-worker", version)]
struct Args {
    /// URL of the job output (or of its plan.json): a path, file://, s3:// or memory://.
    #[arg(long)]
    plan: String,
    /// Stage name, as in the plan.
    #[arg(long)]
    stage: String,
    /// Task index; defaults to $JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs).
    #[arg(long)]
    index: Option<u32>,
}

fn main() -> ExitCode {
    aperture_pipeline::tasks::limit_malloc_arenas();
    let args = Args::parse();
    // Spans: recorded for diagnostics/, exported over OTLP when OTEL_* asks for it.
    let tel = aperture_telemetry::Telemetry::init(aperture_telemetry::TelemetryConfig::from_env(
        "aperture-worker",
        "warn",
    ));
    let index = match aperture_pipeline::tasks::task_index(args.index) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(aperture_pipeline::tasks::EXIT_RETRYABLE);
        }
    };
    let code = rt.block_on(aperture_pipeline::tasks::worker_main(
        &args.plan,
        &args.stage,
        index,
        Some(tel.recorder()),
    ));
    drop(rt);
    drop(tel);
    ExitCode::from(code)
}
