//! The aperture-operator binary: parses its configuration, starts leader election and
//! the /metrics–/healthz–/readyz server, and runs the controller until SIGTERM.
//!
//! It exits non-zero only for what a restart cannot fix on its own (bad arguments, no
//! Kubernetes configuration, a port it cannot bind). A missing CRD or RBAC permission
//! keeps it running, not ready, with the reason on `/readyz` and in its log.

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
    // Log to stderr; spans recorded and, with OTEL_EXPORTER_OTLP_ENDPOINT (the chart's
    // telemetry.otlpEndpoint), exported; the job and stage spans of finished jobs too.
    let _telemetry = aperture_telemetry::Telemetry::init(
        aperture_telemetry::TelemetryConfig::from_env("aperture-operator", "info"),
    );
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
    let stop_tx = std::sync::Arc::new(stop_tx);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    // SIGTERM (what the kubelet sends) or Ctrl-C stops everything, at any stage.
    let signalled = stop_tx.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown signal received");
        let _ = signalled.send(true);
    });

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
            readiness: state.readiness.clone(),
        },
        stopped(stop_rx.clone()),
    ));

    controller::run(
        client,
        state,
        args.watch_namespace().map(str::to_string),
        Some(identity),
        stopped(stop_rx.clone()),
    )
    .await;
    let _ = stop_tx.send(true);
    if let Some(e) = elector {
        let _ = e.await;
    }
    server
        .await
        .context("the HTTP server task failed")?
        .context("the HTTP server failed")?;
    Ok(())
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C). If a handler cannot be installed, that
/// signal is not waited for (the other still is).
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = terminate => {}
        () = interrupt => {}
    }
}
