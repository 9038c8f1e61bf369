//! [`SpanRecord`]: one finished span as aperture keeps it under `diagnostics/`, and its
//! OTLP JSON encoding (the OTLP/HTTP JSON mapping of `ExportTraceServiceRequest`,
//! <https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding>: hex ids, 64-bit
//! integers as decimal strings, attributes as `{key, value: {stringValue|intValue|…}}`).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::Value;
use opentelemetry::trace::Status;
use opentelemetry_sdk::trace::SpanData;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::TelemetryError;

/// An attribute value (the scalar OTLP `AnyValue`s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AttrValue {
    Bool(bool),
    Int(i64),
    Double(f64),
    String(String),
}

impl AttrValue {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Int(i) => Some(*i as f64),
            Self::Double(d) => Some(*d),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    fn from_otel(v: &Value) -> Self {
        match v {
            Value::Bool(b) => Self::Bool(*b),
            Value::I64(i) => Self::Int(*i),
            Value::F64(f) => Self::Double(*f),
            Value::String(s) => Self::String(s.as_str().to_string()),
            other => Self::String(other.to_string()),
        }
    }

    fn to_otlp(&self) -> Json {
        match self {
            Self::Bool(b) => json!({ "boolValue": b }),
            Self::Int(i) => json!({ "intValue": i.to_string() }),
            Self::Double(d) => json!({ "doubleValue": d }),
            Self::String(s) => json!({ "stringValue": s }),
        }
    }

    fn from_otlp(v: &Json) -> Option<Self> {
        if let Some(s) = v.get("stringValue").and_then(Json::as_str) {
            return Some(Self::String(s.to_string()));
        }
        if let Some(b) = v.get("boolValue").and_then(Json::as_bool) {
            return Some(Self::Bool(b));
        }
        if let Some(i) = v.get("intValue") {
            return i
                .as_i64()
                .or_else(|| i.as_str().and_then(|s| s.parse().ok()))
                .map(Self::Int);
        }
        v.get("doubleValue")
            .and_then(Json::as_f64)
            .map(Self::Double)
    }
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        Self::String(s.to_string())
    }
}
impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        Self::String(s)
    }
}
impl From<i64> for AttrValue {
    fn from(i: i64) -> Self {
        Self::Int(i)
    }
}
impl From<u64> for AttrValue {
    fn from(i: u64) -> Self {
        Self::Int(i64::try_from(i).unwrap_or(i64::MAX))
    }
}
impl From<u32> for AttrValue {
    fn from(i: u32) -> Self {
        Self::Int(i64::from(i))
    }
}
impl From<f64> for AttrValue {
    fn from(d: f64) -> Self {
        Self::Double(d)
    }
}
impl From<bool> for AttrValue {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}

/// OTLP status code: 0 unset, 1 ok, 2 error.
pub const STATUS_ERROR: u8 = 2;

/// One finished span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanRecord {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub attributes: BTreeMap<String, AttrValue>,
    /// OTLP status code (0 unset, 1 ok, 2 error) and message.
    pub status_code: u8,
    pub status_message: String,
    /// The `service.name` of the process that made the span.
    pub service: String,
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl SpanRecord {
    /// Converts an SDK span; `service` is the process's `service.name`.
    pub fn from_span_data(s: &SpanData, service: &str) -> Self {
        let (status_code, status_message) = match &s.status {
            Status::Unset => (0, String::new()),
            Status::Ok => (1, String::new()),
            Status::Error { description } => (STATUS_ERROR, description.to_string()),
        };
        let parent = s.parent_span_id;
        Self {
            trace_id: s.span_context.trace_id().to_string(),
            span_id: s.span_context.span_id().to_string(),
            parent_span_id: if parent == opentelemetry::trace::SpanId::INVALID {
                String::new()
            } else {
                parent.to_string()
            },
            name: s.name.to_string(),
            start_unix_nano: unix_nanos(s.start_time),
            end_unix_nano: unix_nanos(s.end_time),
            attributes: s
                .attributes
                .iter()
                .filter(|kv| !is_bookkeeping(kv.key.as_str()))
                .map(|kv| (kv.key.as_str().to_string(), AttrValue::from_otel(&kv.value)))
                .collect(),
            status_code,
            status_message,
            service: service.to_string(),
        }
    }

    /// Duration in seconds.
    pub fn seconds(&self) -> f64 {
        self.end_unix_nano.saturating_sub(self.start_unix_nano) as f64 * 1e-9
    }

    /// Start as Unix seconds.
    pub fn start_unix(&self) -> f64 {
        self.start_unix_nano as f64 * 1e-9
    }

    pub fn attr(&self, key: &str) -> Option<&AttrValue> {
        self.attributes.get(key)
    }

    fn to_otlp(&self) -> Json {
        let mut span = json!({
            "traceId": self.trace_id,
            "spanId": self.span_id,
            "name": self.name,
            "kind": 1,
            "startTimeUnixNano": self.start_unix_nano.to_string(),
            "endTimeUnixNano": self.end_unix_nano.to_string(),
            "attributes": self.attributes.iter()
                .map(|(k, v)| json!({"key": k, "value": v.to_otlp()}))
                .collect::<Vec<_>>(),
            "status": {"code": self.status_code, "message": self.status_message},
        });
        if !self.parent_span_id.is_empty() {
            span["parentSpanId"] = json!(self.parent_span_id);
        }
        span
    }
}

/// tracing-opentelemetry's source-location and thread attributes: noise in a report.
fn is_bookkeeping(key: &str) -> bool {
    key.starts_with("code.") || key.starts_with("thread.") || key == "busy_ns" || key == "idle_ns"
}

/// Encodes spans as one OTLP JSON `ExportTraceServiceRequest`, a `resourceSpans` entry
/// per service.
pub fn to_otlp_json(spans: &[SpanRecord]) -> Json {
    let mut by_service: BTreeMap<&str, Vec<Json>> = BTreeMap::new();
    for s in spans {
        by_service.entry(&s.service).or_default().push(s.to_otlp());
    }
    let resource_spans: Vec<Json> = by_service
        .into_iter()
        .map(|(service, spans)| {
            json!({
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                "scopeSpans": [{"scope": {"name": "aperture", "version": env!("CARGO_PKG_VERSION")}, "spans": spans}],
            })
        })
        .collect();
    json!({ "resourceSpans": resource_spans })
}

fn bad(what: impl Into<String>) -> TelemetryError {
    TelemetryError::Decode(what.into())
}

fn u64_field(v: &Json, key: &str) -> Result<u64, TelemetryError> {
    let f = v
        .get(key)
        .ok_or_else(|| bad(format!("span without {key}")))?;
    f.as_u64()
        .or_else(|| f.as_str().and_then(|s| s.parse().ok()))
        .ok_or_else(|| bad(format!("{key} {f} is not an integer")))
}

fn str_field(v: &Json, key: &str) -> String {
    v.get(key).and_then(Json::as_str).unwrap_or("").to_string()
}

/// Decodes an OTLP JSON `ExportTraceServiceRequest` (as [`to_otlp_json`] writes it, or
/// any OTLP JSON exporter).
pub fn from_otlp_json(doc: &Json) -> Result<Vec<SpanRecord>, TelemetryError> {
    let mut out = Vec::new();
    let rs = doc
        .get("resourceSpans")
        .and_then(Json::as_array)
        .ok_or_else(|| bad("no resourceSpans array"))?;
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
        for ss in r
            .get("scopeSpans")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            for s in ss
                .get("spans")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                let trace_id = str_field(s, "traceId");
                let span_id = str_field(s, "spanId");
                if trace_id.len() != 32 || span_id.len() != 16 {
                    return Err(bad(format!(
                        "span {:?}: traceId/spanId are not 32/16 hex digits",
                        str_field(s, "name")
                    )));
                }
                let attributes = s
                    .get("attributes")
                    .and_then(Json::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|kv| {
                        let k = kv.get("key")?.as_str()?.to_string();
                        Some((k, AttrValue::from_otlp(kv.get("value")?)?))
                    })
                    .collect();
                out.push(SpanRecord {
                    trace_id,
                    span_id,
                    parent_span_id: str_field(s, "parentSpanId"),
                    name: str_field(s, "name"),
                    start_unix_nano: u64_field(s, "startTimeUnixNano")?,
                    end_unix_nano: u64_field(s, "endTimeUnixNano")?,
                    attributes,
                    status_code: s
                        .pointer("/status/code")
                        .and_then(Json::as_u64)
                        .map_or(0, |c| c.min(2) as u8),
                    status_message: s
                        .pointer("/status/message")
                        .and_then(Json::as_str)
                        .unwrap_or("")
                        .to_string(),
                    service: service.clone(),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, parent: &str) -> SpanRecord {
        SpanRecord {
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: "b7ad6b7169203331".into(),
            parent_span_id: parent.into(),
            name: name.into(),
            start_unix_nano: 1_700_000_000_123_456_789,
            end_unix_nano: 1_700_000_001_123_456_789,
            attributes: [
                ("stage".to_string(), AttrValue::from("invert")),
                ("bytes_read".to_string(), AttrValue::from(u64::MAX)),
                ("seconds".to_string(), AttrValue::from(0.25)),
                ("ok".to_string(), AttrValue::from(true)),
            ]
            .into_iter()
            .collect(),
            status_code: STATUS_ERROR,
            status_message: "boom".into(),
            service: "aperture-worker".into(),
        }
    }

    #[test]
    fn otlp_json_round_trips_exactly() {
        let spans = vec![rec("task", "00f067aa0ba902b7"), rec("job", "")];
        let doc = to_otlp_json(&spans);
        // 64-bit integers are strings in OTLP JSON (nanosecond times overflow doubles).
        assert_eq!(
            doc.pointer("/resourceSpans/0/scopeSpans/0/spans/0/startTimeUnixNano"),
            Some(&json!("1700000000123456789"))
        );
        assert!(
            doc.pointer("/resourceSpans/0/scopeSpans/0/spans/1/parentSpanId")
                .is_none()
        );
        let back = from_otlp_json(&doc).unwrap();
        assert_eq!(back, spans);
        assert!((back[0].seconds() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn malformed_documents_are_errors_not_panics() {
        assert!(from_otlp_json(&json!({})).is_err());
        let doc = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "ab", "spanId": "cd"}]}]}]});
        assert!(from_otlp_json(&doc).is_err());
    }
}
