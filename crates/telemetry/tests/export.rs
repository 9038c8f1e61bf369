//! OTLP export against an in-process OTLP/HTTP receiver (axum decoding
//! opentelemetry-proto): tracing spans and pre-made spans with fixed ids arrive with
//! their parents, resource and attributes; a dead collector costs a counted failure,
//! never an error to the caller; the recorder keeps every span either way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aperture_telemetry::{
    AttrValue, JOB_SPAN, SpanRecord, Telemetry, TelemetryConfig, set_remote_parent, span_id_for,
    stage_traceparent, trace_id_for,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tracing_subscriber::layer::SubscriberExt;

type Received = Arc<Mutex<Vec<ExportTraceServiceRequest>>>;

async fn traces(State(rx): State<Received>, body: Bytes) -> Vec<u8> {
    let req =
        ExportTraceServiceRequest::decode(body).expect("a protobuf ExportTraceServiceRequest");
    rx.lock().unwrap().push(req);
    ExportTraceServiceResponse::default().encode_to_vec()
}

/// Starts the receiver on 127.0.0.1 in a runtime of its own; returns its base URL.
fn receiver() -> (String, Received, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let rx: Received = Arc::default();
    let app = Router::new()
        .route("/v1/traces", post(traces))
        .with_state(rx.clone());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(async move { axum::serve(listener, app).await });
    (url, rx, rt)
}

fn config(endpoint: Option<String>) -> TelemetryConfig {
    let mut vars = HashMap::new();
    if let Some(e) = endpoint {
        vars.insert("OTEL_EXPORTER_OTLP_ENDPOINT".to_string(), e);
    }
    vars.insert("OTEL_SERVICE_NAME".into(), "export-test".into());
    vars.insert(
        "OTEL_RESOURCE_ATTRIBUTES".into(),
        "deployment.environment=ci".into(),
    );
    vars.insert("OTEL_EXPORTER_OTLP_TIMEOUT".into(), "3000".into());
    TelemetryConfig::from_vars("x", "warn", |k| vars.get(k).cloned())
}

/// Runs a task-shaped span tree under `tel`'s layer: task (parent: the stage span of
/// job "job-key") → window → grid.
fn make_spans(tel: &Telemetry) {
    let subscriber = tracing_subscriber::registry().with(tel.layer());
    tracing::subscriber::with_default(subscriber, || {
        let task = tracing::info_span!(target: "aperture_pipeline::tasks", "task", stage = "invert", shard = 3i64);
        assert!(set_remote_parent(
            &task,
            &stage_traceparent("job-key", "invert")
        ));
        task.in_scope(|| {
            let w = tracing::info_span!(target: "aperture_pipeline::tasks::map", "window", window = 7i64);
            w.in_scope(|| {
                let _g = tracing::debug_span!(target: "aperture_imaging::gridder", "grid", plane = 0i64)
                    .entered();
                // TRACE spans and foreign targets never become OpenTelemetry spans.
                let _t = tracing::trace_span!(target: "aperture_imaging::gridder", "fft_v").entered();
                let _f = tracing::info_span!(target: "hyper", "foreign").entered();
            });
        });
    });
}

fn job_span() -> SpanRecord {
    let t = trace_id_for("job-key");
    SpanRecord {
        trace_id: t.to_string(),
        span_id: span_id_for(t, JOB_SPAN).to_string(),
        parent_span_id: String::new(),
        name: "job".into(),
        start_unix_nano: 1_700_000_000_000_000_000,
        end_unix_nano: 1_700_000_010_000_000_000,
        attributes: [("job".to_string(), AttrValue::from("demo"))]
            .into_iter()
            .collect(),
        status_code: 0,
        status_message: String::new(),
        service: "export-test".into(),
    }
}

#[test]
fn spans_reach_an_otlp_http_collector_with_parents_ids_and_resource() {
    let (url, rx, _rt) = receiver();
    let tel = Telemetry::new(config(Some(url)));
    assert!(tel.exporting());
    make_spans(&tel);
    tel.emit(&[job_span()]).unwrap();
    tel.shutdown();
    assert_eq!(tel.health().failures(), 0);

    let reqs = rx.lock().unwrap();
    let mut spans = Vec::new();
    for r in reqs.iter() {
        for rs in &r.resource_spans {
            let res: HashMap<String, String> = rs
                .resource
                .as_ref()
                .unwrap()
                .attributes
                .iter()
                .map(|kv| (kv.key.clone(), format!("{:?}", kv.value)))
                .collect();
            assert!(res["service.name"].contains("export-test"), "{res:?}");
            assert!(res["deployment.environment"].contains("ci"), "{res:?}");
            for ss in &rs.scope_spans {
                spans.extend(ss.spans.iter().cloned());
            }
        }
    }
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["grid", "job", "task", "window"], "{names:?}");
    let by_name = |n: &str| spans.iter().find(|s| s.name == n).unwrap();
    let t = trace_id_for("job-key");
    for s in &spans {
        assert_eq!(
            s.trace_id,
            t.to_bytes().to_vec(),
            "{} is in the job's trace",
            s.name
        );
    }
    assert_eq!(
        by_name("job").span_id,
        span_id_for(t, JOB_SPAN).to_bytes().to_vec()
    );
    assert!(by_name("job").parent_span_id.is_empty());
    assert_eq!(
        by_name("task").parent_span_id,
        span_id_for(t, "invert").to_bytes().to_vec(),
        "the task's parent is its stage span"
    );
    assert_eq!(by_name("window").parent_span_id, by_name("task").span_id);
    assert_eq!(by_name("grid").parent_span_id, by_name("window").span_id);
    // Integer attributes stay integers.
    let shard = by_name("task")
        .attributes
        .iter()
        .find(|kv| kv.key == "shard")
        .and_then(|kv| kv.value.clone())
        .and_then(|v| v.value);
    assert_eq!(
        shard,
        Some(opentelemetry_proto::tonic::common::v1::any_value::Value::IntValue(3))
    );
    // The recorder has the same spans (what diagnostics/ keeps).
    let recorded = tel.recorder().snapshot();
    assert_eq!(recorded.len(), spans.len());
}

#[test]
fn a_dead_collector_costs_a_counted_failure_and_nothing_else() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The listener is dropped: the port refuses connections.
    let tel = Telemetry::new(config(Some(format!("http://127.0.0.1:{port}"))));
    make_spans(&tel);
    tel.emit(&[job_span()]).unwrap();
    tel.shutdown();
    assert!(tel.health().failures() >= 1);
    assert_eq!(tel.health().exported(), 0);
    assert_eq!(
        tel.recorder().snapshot().len(),
        4,
        "spans are still recorded"
    );
}

#[test]
fn without_an_endpoint_nothing_is_exported_but_everything_is_recorded() {
    let tel = Telemetry::new(config(None));
    assert!(!tel.exporting());
    make_spans(&tel);
    let (spans, dropped) = tel.recorder().take();
    assert_eq!((spans.len(), dropped), (3, 0));
    assert!(spans.iter().all(|s| s.service == "export-test"));
}
