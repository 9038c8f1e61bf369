//! Storage URLs: parsing `file://`, plain paths, `s3://` and `memory://` into a backend
//! and a prefix, and building the matching `object_store` (with the process-global
//! registry of named in-memory stores).

use std::collections::HashMap;
use std::path::{Component, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{BackoffConfig, ClientConfigKey, RetryConfig};
use url::Url;

use super::StorageError;
use super::options::StoreOptions;

/// Where a storage URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// A directory of the local filesystem (absolute, lexically normalised).
    File { dir: PathBuf },
    /// A bucket and a key prefix of an S3 service.
    S3 { bucket: String, prefix: Path },
    /// A named process-global in-memory store and a key prefix.
    Memory { name: String, prefix: Path },
}

/// The schemes [`Location::parse`] accepts, for error messages.
const SUPPORTED: &str = "file:// (or a plain path), s3://bucket/prefix, memory://name";

impl Location {
    /// Parses a storage URL; a string without `://` (and not starting `file:`) is a
    /// local path, relative to the current directory if not absolute.
    pub(crate) fn parse(url: &str) -> Result<Self, StorageError> {
        let bad = |reason: String| StorageError::invalid_url(url, reason);
        if url.trim().is_empty() {
            return Err(bad("empty URL".into()));
        }
        if !url.contains("://") && !url.starts_with("file:") {
            return Ok(Location::File {
                dir: absolute_dir(std::path::Path::new(url)).map_err(bad)?,
            });
        }
        let parsed = Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(bad("a query (?…) or fragment (#…) is not allowed".into()));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad(
                "credentials do not belong in the URL; use AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
                    .into(),
            ));
        }
        if parsed.port().is_some() {
            return Err(bad(
                "a port does not belong in the URL; set the endpoint with AWS_ENDPOINT_URL".into(),
            ));
        }
        let host = parsed.host_str().unwrap_or("");
        match parsed.scheme() {
            "file" => {
                if !host.is_empty() && host != "localhost" {
                    return Err(bad(format!(
                        "file URLs name a local directory, not host {host:?}: use file:///abs/dir"
                    )));
                }
                let dir = parsed
                    .to_file_path()
                    .map_err(|()| bad("not an absolute local path".into()))?;
                Ok(Location::File {
                    dir: absolute_dir(&dir).map_err(bad)?,
                })
            }
            "s3" | "s3a" => {
                if host.is_empty() {
                    return Err(bad("no bucket: use s3://bucket/prefix".into()));
                }
                Ok(Location::S3 {
                    bucket: host.to_string(),
                    prefix: url_prefix(url, &parsed).map_err(bad)?,
                })
            }
            "memory" => {
                if host.is_empty() {
                    return Err(bad("no store name: use memory://name/prefix".into()));
                }
                Ok(Location::Memory {
                    name: host.to_string(),
                    prefix: url_prefix(url, &parsed).map_err(bad)?,
                })
            }
            other => Err(bad(format!(
                "unsupported scheme {other:?}; supported: {SUPPORTED}"
            ))),
        }
    }

    /// The canonical URL (no trailing slash) that parses back to this location.
    pub(crate) fn canonical_url(&self) -> String {
        let with_prefix = |base: String, prefix: &Path| {
            if prefix.is_root() {
                base
            } else {
                format!("{base}/{prefix}")
            }
        };
        match self {
            Location::File { dir } => match Url::from_file_path(dir) {
                Ok(u) => u.to_string().trim_end_matches('/').to_string(),
                Err(()) => format!("file://{}", dir.display()),
            },
            Location::S3 { bucket, prefix } => with_prefix(format!("s3://{bucket}"), prefix),
            Location::Memory { name, prefix } => with_prefix(format!("memory://{name}"), prefix),
        }
    }

    /// Builds the object store and the key prefix inside it.
    pub(crate) fn build(
        &self,
        url: &str,
        options: &StoreOptions,
    ) -> Result<(Arc<dyn ObjectStore>, Path), StorageError> {
        match self {
            Location::File { dir } => {
                let prefix = Path::from_absolute_path(dir)
                    .map_err(|e| StorageError::invalid_url(url, e.to_string()))?;
                Ok((Arc::new(LocalFileSystem::new()), prefix))
            }
            Location::Memory { name, prefix } => Ok((memory_store(name), prefix.clone())),
            Location::S3 { bucket, prefix } => {
                Ok((s3_store(url, bucket, options)?, prefix.clone()))
            }
        }
    }
}

/// The key prefix of an `s3://` or `memory://` URL's path, percent-decoded.
/// `raw` is the URL as given: the parser would already have removed `.` and `..`.
fn url_prefix(raw: &str, url: &Url) -> Result<Path, String> {
    if raw.split('/').any(|s| s == "." || s == "..") {
        return Err("'.' and '..' are not allowed in the prefix".into());
    }
    Path::from_url_path(url.path().trim_matches('/')).map_err(|e| e.to_string())
}

/// Makes `p` absolute (against the current directory) and removes `.` and `..`
/// lexically, so that the URL printed in messages is the directory really used.
fn absolute_dir(p: &std::path::Path) -> Result<PathBuf, String> {
    let abs = std::path::absolute(p).map_err(|e| format!("cannot make the path absolute: {e}"))?;
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.to_str().is_none() {
        return Err("the path is not valid UTF-8".into());
    }
    Ok(out)
}

/// The process-global registry of named in-memory stores: two `memory://x` stores in
/// one process share their objects.
fn memory_store(name: &str) -> Arc<dyn ObjectStore> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Arc<InMemory>>>> = OnceLock::new();
    let registry = REGISTRY.get_or_init(|| Mutex::new(HashMap::new()));
    // A poisoned lock only means another thread panicked while inserting; the map
    // itself is still consistent.
    let mut map = registry.lock().unwrap_or_else(|p| p.into_inner());
    map.entry(name.to_string())
        .or_insert_with(|| Arc::new(InMemory::new()))
        .clone()
}

/// An S3 client for `bucket`: the environment (unless ignored), then `options`.
fn s3_store(
    url: &str,
    bucket: &str,
    options: &StoreOptions,
) -> Result<Arc<dyn ObjectStore>, StorageError> {
    let s3 = &options.s3;
    let mut b = if s3.ignore_env {
        AmazonS3Builder::new()
    } else {
        AmazonS3Builder::from_env()
    };
    // Settings derived from `with_url` override all others, so set the bucket directly.
    b = b.with_bucket_name(bucket);
    // One DELETE per object: a bulk DeleteObjects reports a refused delete inside a
    // 200 response, which loses the "permission denied" meaning, and some S3 services
    // lack it. `AWS_DISABLE_BULK_DELETE` or `config` may still choose otherwise.
    if s3.ignore_env || std::env::var_os("AWS_DISABLE_BULK_DELETE").is_none() {
        b = b.with_disable_bulk_delete(true);
    }
    let set = |b: AmazonS3Builder, key: AmazonS3ConfigKey, v: &Option<String>| match v {
        Some(v) => b.with_config(key, v.clone()),
        None => b,
    };
    b = set(b, AmazonS3ConfigKey::Endpoint, &s3.endpoint);
    b = set(b, AmazonS3ConfigKey::Region, &s3.region);
    b = set(b, AmazonS3ConfigKey::AccessKeyId, &s3.access_key_id);
    b = set(b, AmazonS3ConfigKey::SecretAccessKey, &s3.secret_access_key);
    b = set(b, AmazonS3ConfigKey::Token, &s3.session_token);
    for (k, v) in &s3.config {
        let key: AmazonS3ConfigKey = k
            .parse()
            .map_err(|_| StorageError::invalid_url(url, format!("unknown S3 setting {k:?}")))?;
        b = b.with_config(key, v.clone());
    }
    let endpoint = b.get_config_value(&AmazonS3ConfigKey::Endpoint);
    if let Some(ep) = &endpoint {
        let parsed = Url::parse(ep).map_err(|e| {
            StorageError::invalid_url(url, format!("invalid S3 endpoint {ep:?}: {e}"))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(StorageError::invalid_url(
                url,
                format!("invalid S3 endpoint {ep:?}: expected http:// or https://"),
            ));
        }
        if parsed.scheme() == "http" {
            b = b.with_allow_http(true);
        }
    }
    if let Some(allow) = s3.allow_http {
        b = b.with_allow_http(allow);
    }
    let client = |b: AmazonS3Builder, key: ClientConfigKey, d: Option<std::time::Duration>| match d
    {
        Some(d) => b.with_config(
            AmazonS3ConfigKey::Client(key),
            format!("{}ms", d.as_millis()),
        ),
        None => b,
    };
    b = client(b, ClientConfigKey::ConnectTimeout, options.connect_timeout);
    b = client(b, ClientConfigKey::Timeout, options.request_timeout);
    b = b.with_retry(RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: options.max_retries,
        retry_timeout: options.retry_timeout,
    });
    let store = b.build().map_err(|e| {
        let where_ = endpoint.as_deref().unwrap_or("AWS");
        StorageError::invalid_url(url, format!("cannot configure S3 client for {where_}: {e}"))
    })?;
    Ok(Arc::new(store))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(u: &str) -> Location {
        Location::parse(u).unwrap()
    }

    #[test]
    fn s3_and_memory_urls_split_into_bucket_and_prefix() {
        assert_eq!(
            parse("s3://bkt/a/b/"),
            Location::S3 {
                bucket: "bkt".into(),
                prefix: Path::from("a/b")
            }
        );
        assert_eq!(parse("s3://bkt").canonical_url(), "s3://bkt");
        assert_eq!(parse("s3://bkt/x/y/").canonical_url(), "s3://bkt/x/y");
        assert_eq!(parse("memory://m/p").canonical_url(), "memory://m/p");
        assert_eq!(parse("s3://b/a%20b").canonical_url(), "s3://b/a b");
    }

    #[test]
    fn paths_are_made_absolute_and_normalised() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            parse("out/./x/../y"),
            Location::File {
                dir: cwd.join("out/y")
            }
        );
        assert_eq!(
            parse("file:///tmp/a/../b/"),
            Location::File {
                dir: "/tmp/b".into()
            }
        );
        assert_eq!(parse("/tmp/q").canonical_url(), "file:///tmp/q");
        assert_eq!(parse("/tmp/a b").canonical_url(), "file:///tmp/a%20b");
        assert_eq!(parse("file:///tmp/a%20b"), parse("/tmp/a b"));
    }

    #[test]
    fn bad_urls_are_refused_with_the_reason() {
        for (u, why) in [
            ("", "empty"),
            ("ftp://x/y", "unsupported scheme"),
            ("gs://bucket", "unsupported scheme"),
            ("s3://", "no bucket"),
            ("s3:///prefix", "no bucket"),
            ("memory://", "no store name"),
            ("file://host/x", "local directory"),
            ("s3://b/p?x=1", "query"),
            ("s3://key:secret@b/p", "credentials"),
            ("s3://b:9000/p", "port"),
            ("s3://b/a/../c", "not allowed"),
        ] {
            let e = Location::parse(u).unwrap_err();
            assert!(
                matches!(&e, StorageError::InvalidUrl { url, .. } if url == u),
                "{u}: {e}"
            );
            assert!(e.to_string().contains(why), "{u}: {e}");
        }
    }
}
