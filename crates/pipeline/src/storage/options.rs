//! Connection options of a [`Store`](super::Store): S3 endpoint and credentials (by default
//! from the usual AWS environment variables), timeouts and retries.

use std::fmt;
use std::time::Duration;

/// How a [`Store`](super::Store) connects to a remote object store. `Default` is what
/// [`Store::from_url`](super::Store::from_url) uses: S3 settings from the environment,
/// a 5 s connect timeout, a 30 s request timeout, and up to 5 retries with exponential
/// backoff within 60 s (so an unreachable endpoint fails within seconds, a transient
/// server error is ridden out).
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// S3 settings that override the environment.
    pub s3: S3Options,
    /// TCP connect timeout; `None` keeps `AWS_CONNECT_TIMEOUT` or `object_store`'s 5 s.
    pub connect_timeout: Option<Duration>,
    /// Whole-request timeout; `None` keeps `AWS_TIMEOUT` or `object_store`'s 30 s.
    pub request_timeout: Option<Duration>,
    /// How many times a failed request (connection error, 5xx) is retried.
    pub max_retries: usize,
    /// No retry starts later than this after the first attempt.
    pub retry_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            s3: S3Options::default(),
            connect_timeout: None,
            request_timeout: None,
            max_retries: 5,
            retry_timeout: Duration::from_secs(60),
        }
    }
}

/// S3 connection settings. Each `Some` overrides the environment variable named in
/// its doc; `None` leaves the environment's value (or `object_store`'s default).
#[derive(Clone, Default)]
pub struct S3Options {
    /// Do not read any `AWS_*` environment variable (tests, explicit configuration).
    pub ignore_env: bool,
    /// `AWS_ENDPOINT_URL` / `AWS_ENDPOINT`, e.g. `http://127.0.0.1:8333` (SeaweedFS,
    /// MinIO, Ceph RGW). An `http://` endpoint allows plain HTTP.
    pub endpoint: Option<String>,
    /// `AWS_REGION` / `AWS_DEFAULT_REGION` (default `us-east-1`).
    pub region: Option<String>,
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<String>,
    /// `AWS_SESSION_TOKEN`.
    pub session_token: Option<String>,
    /// `AWS_ALLOW_HTTP`.
    pub allow_http: Option<bool>,
    /// Any other `object_store` S3 setting by its key name, e.g.
    /// `("aws_conditional_put", "disabled")` or `("aws_skip_signature", "true")`.
    pub config: Vec<(String, String)>,
}

impl fmt::Debug for S3Options {
    /// Never prints secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |o: &Option<String>| o.as_ref().map(|_| "<redacted>");
        f.debug_struct("S3Options")
            .field("ignore_env", &self.ignore_env)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &redact(&self.secret_access_key))
            .field("session_token", &redact(&self.session_token))
            .field("allow_http", &self.allow_http)
            .field(
                "config",
                &self.config.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}
