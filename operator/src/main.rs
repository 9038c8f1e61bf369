//! The aperture-operator binary: parses its configuration, starts leader election and
//! the /metrics–/healthz–/readyz server, and runs the controller until SIGTERM.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use aperture_operator::config::Args;
use aperture_operator::context::State;
use aperture_operator::controller;
use aperture_operator::leader::{LeaderElector, LeaderHandle};
use aperture_operator::server::{ServerState, serve};
use clap::Parser;

/// How long a Lease is held per renewal (client-go's default).
const LEASE_DURATION: Duration = Duration::from_secs(15);

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let defaults = args.worker_defaults().map_err(anyhow::Error::msg)?;
    let client = kube::Client::try_default()
        .await
        .context("cannot reach the Kubernetes API (in-cluster config or KUBECONFIG)")?;
    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("aperture-operator-{}", std::process::id()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let (leader, elector) = if args.leader_election {
        let ns = args
            .lease_namespace
            .clone()
            .or_else(|| std::env::var("APERTURE_POD_NAMESPACE").ok())
            .unwrap_or_else(|| "default".into());
        let e = LeaderElector::new(
            client.clone(),
            &ns,
            &args.lease_name,
            &identity,
            LEASE_DURATION,
        );
        (
            e.handle(),
            Some(tokio::spawn(e.run(stopped(stop_rx.clone())))),
        )
    } else {
        (LeaderHandle::always(), None)
    };
    let state = State::new(defaults, leader);

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("--listen {}: cannot bind", args.listen))?;
    let server = tokio::spawn(serve(
        listener,
        ServerState {
            metrics: state.metrics.clone(),
            ready: state.ready.clone(),
        },
        stopped(stop_rx.clone()),
    ));

    let result = controller::run(
        client,
        state,
        args.watch_namespace().map(str::to_string),
        Some(identity),
    )
    .await;
    let _ = stop_tx.send(true);
    if let Some(e) = elector {
        let _ = e.await;
    }
    let _ = server.await;
    result.map_err(Into::into)
}
