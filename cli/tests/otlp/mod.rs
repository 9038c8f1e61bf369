//! Test-side OTLP: an in-process collector (OTLP/HTTP with protobuf bodies on axum, or
//! OTLP/gRPC through opentelemetry-proto's generated `TraceService` server) that keeps
//! every span it is sent, and a reader of OTLP JSON trace documents, both into one plain
//! [`Span`] type. Protocol: <https://opentelemetry.io/docs/specs/otlp/>.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use prost::Message;
use serde_json::Value as Json;

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    /// Arrays, maps, bytes: aperture sends none.
    Other(String),
}

/// One span as a collector sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// Lowercase hex (32 / 16 digits); `parent` is empty for a root span.
    pub trace_id: String,
    pub span_id: String,
    pub parent: String,
    pub name: String,
    /// The resource's `service.name`.
    pub service: String,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attrs: BTreeMap<String, Attr>,
    /// OTLP status code (0 unset, 1 ok, 2 error).
    pub status_code: i32,
}

impl Span {
    pub fn seconds(&self) -> f64 {
        self.end_ns.saturating_sub(self.start_ns) as f64 * 1e-9
    }

    /// An integer attribute (`None` when absent or of another type).
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.attrs.get(key) {
            Some(Attr::Int(i)) => Some(*i),
            _ => None,
        }
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        match self.attrs.get(key) {
            Some(Attr::Str(s)) => Some(s),
            _ => None,
        }
    }

    pub fn num(&self, key: &str) -> Option<f64> {
        match self.attrs.get(key) {
            Some(Attr::Int(i)) => Some(*i as f64),
            Some(Attr::Double(d)) => Some(*d),
            _ => None,
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn attr_of(v: Option<&AnyValue>) -> Attr {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => Attr::Str(s.clone()),
        Some(any_value::Value::IntValue(i)) => Attr::Int(*i),
        Some(any_value::Value::DoubleValue(d)) => Attr::Double(*d),
        Some(any_value::Value::BoolValue(b)) => Attr::Bool(*b),
        other => Attr::Other(format!("{other:?}")),
    }
}

/// The spans of a decoded `ExportTraceServiceRequest`.
pub fn spans_of_request(req: &ExportTraceServiceRequest) -> Vec<Span> {
    let mut out = Vec::new();
    for rs in &req.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
            .map(|kv| match attr_of(kv.value.as_ref()) {
                Attr::Str(s) => s,
                other => format!("{other:?}"),
            })
            .unwrap_or_default();
        for ss in &rs.scope_spans {
            for s in &ss.spans {
                out.push(Span {
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent: hex(&s.parent_span_id),
                    name: s.name.clone(),
                    service: service.clone(),
                    start_ns: s.start_time_unix_nano,
                    end_ns: s.end_time_unix_nano,
                    attrs: s
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.clone(), attr_of(kv.value.as_ref())))
                        .collect(),
                    status_code: s.status.as_ref().map_or(0, |st| st.code),
                });
            }
        }
    }
    out
}

fn json_attr(v: &Json) -> Attr {
    if let Some(s) = v.get("stringValue").and_then(Json::as_str) {
        return Attr::Str(s.to_string());
    }
    if let Some(i) = v.get("intValue") {
        // OTLP JSON: 64-bit integers are decimal strings (numbers are accepted too).
        let parsed = i
            .as_i64()
            .or_else(|| i.as_str().and_then(|s| s.parse().ok()));
        return parsed.map_or_else(|| Attr::Other(i.to_string()), Attr::Int);
    }
    if let Some(d) = v.get("doubleValue").and_then(Json::as_f64) {
        return Attr::Double(d);
    }
    if let Some(b) = v.get("boolValue").and_then(Json::as_bool) {
        return Attr::Bool(b);
    }
    Attr::Other(v.to_string())
}

fn json_u64(s: &Json, key: &str) -> u64 {
    let v = s
        .get(key)
        .unwrap_or_else(|| panic!("span without {key}: {s}"));
    v.as_u64()
        .or_else(|| v.as_str().and_then(|x| x.parse().ok()))
        .unwrap_or_else(|| panic!("{key} is not an integer: {v}"))
}

fn json_str(s: &Json, key: &str) -> String {
    s.get(key).and_then(Json::as_str).unwrap_or("").to_string()
}

/// The spans of an OTLP JSON `ExportTraceServiceRequest` (the JSON mapping of the same
/// protobuf message: hex ids, 64-bit integers as strings). Panics on a malformed document.
pub fn spans_of_json(doc: &Json) -> Vec<Span> {
    let mut out = Vec::new();
    let rs = doc
        .get("resourceSpans")
        .and_then(Json::as_array)
        .expect("an OTLP JSON document has resourceSpans");
    for r in rs {
        let service = r
            .pointer("/resource/attributes")
            .and_then(Json::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|kv| kv.get("key").and_then(Json::as_str) == Some("service.name"))
            })
            .and_then(|kv| kv.pointer("/value/stringValue"))
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_string();
        let scopes = r.get("scopeSpans").and_then(Json::as_array);
        for ss in scopes.into_iter().flatten() {
            let spans = ss.get("spans").and_then(Json::as_array);
            for s in spans.into_iter().flatten() {
                let attrs = s.get("attributes").and_then(Json::as_array);
                out.push(Span {
                    trace_id: json_str(s, "traceId"),
                    span_id: json_str(s, "spanId"),
                    parent: json_str(s, "parentSpanId"),
                    name: json_str(s, "name"),
                    service: service.clone(),
                    start_ns: json_u64(s, "startTimeUnixNano"),
                    end_ns: json_u64(s, "endTimeUnixNano"),
                    attrs: attrs
                        .into_iter()
                        .flatten()
                        .map(|kv| {
                            (
                                json_str(kv, "key"),
                                json_attr(kv.get("value").unwrap_or(&Json::Null)),
                            )
                        })
                        .collect(),
                    status_code: s
                        .pointer("/status/code")
                        .and_then(Json::as_i64)
                        .map_or(0, |c| c as i32),
                });
            }
        }
    }
    out
}

/// What the collector was sent.
#[derive(Debug, Default)]
struct Received {
    spans: Vec<Span>,
    requests: usize,
    /// Requests the collector could not take (wrong encoding, undecodable body).
    problems: Vec<String>,
}

type Shared = Arc<Mutex<Received>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Received> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Transport the collector speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// OTLP/HTTP, `POST /v1/traces` with an `application/x-protobuf` body.
    HttpProtobuf,
    /// OTLP/gRPC, `opentelemetry.proto.collector.trace.v1.TraceService/Export`.
    Grpc,
}

/// An OTLP collector on 127.0.0.1 (an ephemeral port) served by its own runtime. A span
/// is stored before the export call is answered, so once an exporting process has exited
/// (having flushed), everything it sent is here.
#[derive(Debug)]
pub struct Collector {
    port: u16,
    received: Shared,
    rt: Option<tokio::runtime::Runtime>,
}

impl Collector {
    pub fn start(transport: Transport) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the test collector");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local address").port();
        let received = Shared::default();
        let app = match transport {
            Transport::HttpProtobuf => Router::new()
                .route("/v1/traces", post(http_export))
                .with_state(received.clone()),
            Transport::Grpc => {
                Router::new().fallback_service(TraceServiceServer::new(Grpc(received.clone())))
            }
        };
        rt.spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("test collector stopped: {e}");
            }
        });
        Self {
            port,
            received,
            rt: Some(rt),
        }
    }

    /// The base URL for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn spans(&self) -> Vec<Span> {
        lock(&self.received).spans.clone()
    }

    pub fn requests(&self) -> usize {
        lock(&self.received).requests
    }

    pub fn problems(&self) -> Vec<String> {
        lock(&self.received).problems.clone()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn refuse(received: &Shared, status: StatusCode, problem: String) -> Response {
    let mut r = lock(received);
    r.requests += 1;
    r.problems.push(problem.clone());
    (status, problem).into_response()
}

/// `POST /v1/traces` (OTLP/HTTP, binary protobuf). The exporter is built without its
/// `gzip-http` feature, so a compressed body is a finding, not something to inflate.
async fn http_export(State(received): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let text = |h| {
        headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let encoding = text(header::CONTENT_ENCODING);
    if !encoding.is_empty() && encoding != "identity" {
        return refuse(
            &received,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Encoding {encoding:?}: this test collector takes plain protobuf"),
        );
    }
    let ctype = text(header::CONTENT_TYPE);
    if ctype != "application/x-protobuf" {
        return refuse(
            &received,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type {ctype:?} is not application/x-protobuf"),
        );
    }
    match ExportTraceServiceRequest::decode(body) {
        Ok(req) => {
            let mut r = lock(&received);
            r.requests += 1;
            r.spans.extend(spans_of_request(&req));
            drop(r);
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                ExportTraceServiceResponse::default().encode_to_vec(),
            )
                .into_response()
        }
        Err(e) => refuse(
            &received,
            StatusCode::BAD_REQUEST,
            format!("undecodable ExportTraceServiceRequest: {e}"),
        ),
    }
}

/// The gRPC `TraceService`.
#[derive(Debug)]
struct Grpc(Shared);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut r = lock(&self.0);
        r.requests += 1;
        r.spans.extend(spans_of_request(request.get_ref()));
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}
