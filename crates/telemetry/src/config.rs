//! [`TelemetryConfig`]: where spans go, from the standard OpenTelemetry environment
//! variables (<https://opentelemetry.io/docs/specs/otel/protocol/exporter/>,
//! <https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/>)
//! and an ImagingJob's `spec.telemetry`, which wins over the environment.

use std::time::Duration;

/// OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/HTTP with protobuf bodies (the spec's default; port 4318, path /v1/traces).
    HttpProtobuf,
    /// OTLP/gRPC (port 4317).
    Grpc,
}

impl Protocol {
    /// Parses `OTEL_EXPORTER_OTLP_PROTOCOL` values.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "http/protobuf" | "http" => Some(Self::HttpProtobuf),
            "grpc" => Some(Self::Grpc),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::HttpProtobuf => "http/protobuf",
            Self::Grpc => "grpc",
        }
    }
}

/// What [`crate::Telemetry::init`] sets up.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// `service.name` of this process's spans.
    pub service_name: String,
    /// Full URL spans are sent to (for OTLP/HTTP including `/v1/traces`); `None` = no
    /// export (spans are still recorded for `diagnostics/trace.json`).
    pub endpoint: Option<String>,
    pub protocol: Protocol,
    /// Extra resource attributes (`OTEL_RESOURCE_ATTRIBUTES`).
    pub resource: Vec<(String, String)>,
    /// Per-export timeout (`OTEL_EXPORTER_OTLP_TIMEOUT`, milliseconds; default 5 s).
    pub timeout: Duration,
    /// Log filter when `RUST_LOG` is unset (e.g. "warn" for workers, "info" for the CLI).
    pub default_log: String,
    /// DEBUG (per-w-plane phase) spans this process records at most
    /// (`APERTURE_TRACE_PHASE_SPANS`, default [`crate::DEFAULT_PHASE_SPANS`]).
    pub phase_span_budget: u64,
    /// Why a configured value was not usable (reported once by `init`).
    pub problems: Vec<String>,
}

impl TelemetryConfig {
    /// Reads the process environment.
    pub fn from_env(default_service: &str, default_log: &str) -> Self {
        Self::from_vars(default_service, default_log, |k| std::env::var(k).ok())
    }

    /// Reads the variables through `get` (testable without touching the environment).
    pub fn from_vars(
        default_service: &str,
        default_log: &str,
        get: impl Fn(&str) -> Option<String>,
    ) -> Self {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let mut problems = Vec::new();
        let protocol_var = get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| get("OTEL_EXPORTER_OTLP_PROTOCOL"));
        let protocol = match protocol_var.as_deref() {
            None => Protocol::HttpProtobuf,
            Some(p) => Protocol::parse(p).unwrap_or_else(|| {
                problems.push(format!(
                    "OTEL_EXPORTER_OTLP_PROTOCOL={p:?} is not supported (use grpc or http/protobuf); using http/protobuf"
                ));
                Protocol::HttpProtobuf
            }),
        };
        let disabled = get("OTEL_SDK_DISABLED").is_some_and(|v| v.trim() == "true")
            || get("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim() == "none");
        let endpoint = if disabled {
            None
        } else if let Some(e) = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(e.trim().to_string())
        } else {
            get("OTEL_EXPORTER_OTLP_ENDPOINT").map(|e| signal_url(&e, protocol))
        };
        let timeout = match get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
            .or_else(|| get("OTEL_EXPORTER_OTLP_TIMEOUT"))
        {
            None => Duration::from_secs(5),
            Some(ms) => match ms.trim().parse::<u64>() {
                Ok(ms) => Duration::from_millis(ms),
                Err(_) => {
                    problems.push(format!(
                        "OTEL_EXPORTER_OTLP_TIMEOUT={ms:?} is not milliseconds; using 5000"
                    ));
                    Duration::from_secs(5)
                }
            },
        };
        let mut resource = Vec::new();
        if let Some(attrs) = get("OTEL_RESOURCE_ATTRIBUTES") {
            for kv in attrs.split(',').filter(|s| !s.trim().is_empty()) {
                match kv.split_once('=') {
                    Some((k, v)) if !k.trim().is_empty() => {
                        resource.push((percent_decode(k.trim()), percent_decode(v.trim())));
                    }
                    _ => problems.push(format!(
                        "OTEL_RESOURCE_ATTRIBUTES entry {kv:?} is not key=value; ignored"
                    )),
                }
            }
        }
        let service_name = get("OTEL_SERVICE_NAME")
            .or_else(|| {
                resource
                    .iter()
                    .find(|(k, _)| k == "service.name")
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_else(|| default_service.to_string());
        resource.retain(|(k, _)| k != "service.name");
        let phase_span_budget = match get("APERTURE_TRACE_PHASE_SPANS") {
            None => crate::DEFAULT_PHASE_SPANS,
            Some(v) => v.trim().parse().unwrap_or_else(|_| {
                problems.push(format!(
                    "APERTURE_TRACE_PHASE_SPANS={v:?} is not a count; using {}",
                    crate::DEFAULT_PHASE_SPANS
                ));
                crate::DEFAULT_PHASE_SPANS
            }),
        };
        Self {
            phase_span_budget,
            service_name,
            endpoint,
            protocol,
            resource,
            timeout,
            default_log: default_log.to_string(),
            problems,
        }
    }

    /// Applies an ImagingJob's `spec.telemetry` (it wins over the environment).
    pub fn with_job_endpoint(mut self, endpoint: Option<&str>, protocol: Option<&str>) -> Self {
        if let Some(p) = protocol {
            match Protocol::parse(p) {
                Some(p) => self.protocol = p,
                None => self.problems.push(format!(
                    "spec.telemetry.protocol {p:?} is not grpc or http/protobuf"
                )),
            }
        }
        if let Some(e) = endpoint.filter(|e| !e.trim().is_empty()) {
            self.endpoint = Some(signal_url(e, self.protocol));
        }
        self
    }

    /// The variables that give a child process (a local worker) this configuration.
    pub fn child_env(&self, service_name: &str) -> Vec<(String, String)> {
        let mut env = vec![("OTEL_SERVICE_NAME".to_string(), service_name.to_string())];
        if let Some(e) = &self.endpoint {
            env.push(("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT".into(), e.clone()));
            env.push((
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL".into(),
                self.protocol.as_str().into(),
            ));
            env.push((
                "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT".into(),
                self.timeout.as_millis().to_string(),
            ));
        }
        if self.phase_span_budget != crate::DEFAULT_PHASE_SPANS {
            env.push((
                "APERTURE_TRACE_PHASE_SPANS".into(),
                self.phase_span_budget.to_string(),
            ));
        }
        if !self.resource.is_empty() {
            let attrs: Vec<String> = self
                .resource
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            env.push(("OTEL_RESOURCE_ATTRIBUTES".into(), attrs.join(",")));
        }
        env
    }
}

/// The traces URL for a base endpoint: OTLP/HTTP appends `/v1/traces` to the base
/// (spec: "Endpoint URLs for OTLP/HTTP"); gRPC uses it as is.
pub fn signal_url(base: &str, protocol: Protocol) -> String {
    let base = base.trim();
    match protocol {
        Protocol::Grpc => base.to_string(),
        Protocol::HttpProtobuf if base.ends_with("/v1/traces") => base.to_string(),
        Protocol::HttpProtobuf => format!("{}/v1/traces", base.trim_end_matches('/')),
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        if b[i] == b'%'
            && let Some(Ok(v)) = hex.map(|h| u8::from_str_radix(h, 16))
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> TelemetryConfig {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TelemetryConfig::from_vars("aperture", "info", |k| m.get(k).cloned())
    }

    #[test]
    fn unset_means_no_export() {
        let c = cfg(&[]);
        assert_eq!(c.endpoint, None);
        assert_eq!(c.service_name, "aperture");
        assert!(c.problems.is_empty());
    }

    #[test]
    fn base_endpoint_gets_the_signal_path_for_http_only() {
        let c = cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/")]);
        assert_eq!(
            c.endpoint.as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        let c = cfg(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ]);
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:4317"));
        let c = cfg(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://b:9999/custom"),
        ]);
        assert_eq!(c.endpoint.as_deref(), Some("http://b:9999/custom"));
        let c = cfg(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
            ("OTEL_SDK_DISABLED", "true"),
        ]);
        assert_eq!(c.endpoint, None);
    }

    #[test]
    fn service_resource_and_bad_values() {
        let c = cfg(&[
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=svc,deployment.environment=lab%20a,broken",
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
        ]);
        assert_eq!(c.service_name, "svc");
        assert_eq!(
            c.resource,
            vec![("deployment.environment".into(), "lab a".into())]
        );
        assert_eq!(c.protocol, Protocol::HttpProtobuf);
        assert_eq!(c.problems.len(), 3, "{:?}", c.problems);
        let c = cfg(&[
            ("OTEL_SERVICE_NAME", "mine"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=svc"),
        ]);
        assert_eq!(c.service_name, "mine");
    }

    #[test]
    fn the_job_spec_wins_and_children_inherit() {
        let c = cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318")])
            .with_job_endpoint(Some("http://job:4317"), Some("grpc"));
        assert_eq!(c.endpoint.as_deref(), Some("http://job:4317"));
        assert_eq!(c.protocol, Protocol::Grpc);
        let env = c.child_env("aperture-worker");
        assert!(env.contains(&(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT".into(),
            "http://job:4317".into()
        )));
        assert!(env.contains(&("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL".into(), "grpc".into())));
        let back = TelemetryConfig::from_vars("x", "warn", |k| {
            env.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone())
        });
        assert_eq!(back.endpoint, c.endpoint);
        assert_eq!(back.service_name, "aperture-worker");
    }
}
