//! Tracing overhead on the invert benchmark (issue #8: under 1 % with export on): the
//! gridder's `invert` on the reduced SDP scenario of crates/imaging/benches/gridder.rs
//! (single thread, f64, epsilon 1e-5), side by side (a) with the telemetry layers off, (b) with
//! aperture's telemetry layer recording every span, and (c) recording and exporting over
//! OTLP/HTTP to an in-process collector on 127.0.0.1. Run with
//! `cargo bench -p aperture-telemetry --bench overhead` (`ROUNDS=n` to change the count).

use std::hint::black_box;
use std::time::Instant;

use aperture_imaging::gridder::{GridderOptions, Precision, invert};
use aperture_imaging::sim::scenario::Scenario;
use aperture_telemetry::{Telemetry, TelemetryConfig};
use axum::Router;
use axum::routing::post;
use std::sync::atomic::{AtomicUsize, Ordering};

use tracing_subscriber::Layer;
use tracing_subscriber::filter::dynamic_filter_fn;
use tracing_subscriber::layer::SubscriberExt;

/// An OTLP/HTTP sink that accepts and discards spans.
fn collector() -> (String, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind 127.0.0.1");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let app = Router::new().route("/v1/traces", post(|| async { Vec::<u8>::new() }));
    rt.spawn(async move { axum::serve(listener, app).await });
    (url, rt)
}

fn main() {
    let scenario = Scenario {
        npix: 256,
        ntimes: 3,
        rmax: 300.0,
        ..Default::default()
    };
    let (block, geom) = scenario.build().expect("scenario");
    let opts = GridderOptions {
        epsilon: 1e-5,
        precision: Precision::F64,
        wstacking: true,
        threads: 1,
    };
    let run = || {
        invert(
            black_box(&block.uvw_r),
            &block.freq_c,
            block.vis_rc.view(),
            block.weight_rc.view(),
            &geom,
            &opts,
        )
        .expect("invert")
    };
    let (url, _rt) = collector();
    let none = TelemetryConfig::from_vars("bench", "warn", |_| None);
    let export = TelemetryConfig::from_vars("bench", "warn", |k| {
        (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| url.clone())
    });
    // Every iteration records its per-w-plane phase spans (no budget cut-off).
    let tels: Vec<Telemetry> = [none, export]
        .into_iter()
        .map(|mut cfg| {
            cfg.phase_span_budget = u64::MAX;
            Telemetry::new(cfg)
        })
        .collect();
    // One global subscriber (the gridder's pool threads must see it, as in a worker)
    // whose two telemetry layers are switched on one at a time.
    static MODE: AtomicUsize = AtomicUsize::new(0);
    let subscriber = tracing_subscriber::registry()
        .with(
            tels[0]
                .layer()
                .with_filter(dynamic_filter_fn(|_, _| MODE.load(Ordering::Relaxed) == 1)),
        )
        .with(
            tels[1]
                .layer()
                .with_filter(dynamic_filter_fn(|_, _| MODE.load(Ordering::Relaxed) == 2)),
        );
    tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");
    let timed = |mode: usize| -> f64 {
        MODE.store(mode, Ordering::Relaxed);
        let t0 = Instant::now();
        let task = tracing::info_span!(target: "aperture_pipeline::tasks", "task");
        task.in_scope(run);
        drop(task);
        let dt = t0.elapsed().as_secs_f64();
        // Keep memory flat over many rounds; a worker runs one task.
        for tel in &tels {
            tel.recorder().take();
        }
        dt
    };
    // Interleaved rounds (A, B, C, A, B, C, …): this machine's speed drifts between
    // runs, so the three variants are compared round by round, by median ratio.
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let mut t = [Vec::new(), Vec::new(), Vec::new()];
    timed(0);
    for _ in 0..rounds {
        for (mode, times) in t.iter_mut().enumerate() {
            times.push(timed(mode));
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ratio = |k: usize| {
        let mut r: Vec<f64> = t[k].iter().zip(&t[0]).map(|(a, b)| a / b).collect();
        median(&mut r)
    };
    let (r1, r2) = (ratio(1), ratio(2));
    let m: Vec<f64> = t.iter_mut().map(median).collect();
    for tel in &tels {
        tel.shutdown();
    }
    eprintln!(
        "invert, {} visibilities, 256² image, single thread, {rounds} interleaved rounds (median):",
        block.n_vis()
    );
    eprintln!("  telemetry off          {:.2} ms", 1e3 * m[0]);
    eprintln!(
        "  recorded               {:.2} ms  (median per-round ratio {:.4}, overhead {:+.2} %)",
        1e3 * m[1],
        r1,
        100.0 * (r1 - 1.0)
    );
    eprintln!(
        "  recorded + exported    {:.2} ms  (median per-round ratio {:.4}, overhead {:+.2} %; exported {} spans, {} export failures)",
        1e3 * m[2],
        r2,
        100.0 * (r2 - 1.0),
        tels[1].health().exported(),
        tels[1].health().failures()
    );
}
