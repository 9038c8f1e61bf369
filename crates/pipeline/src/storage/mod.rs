//! Object storage for job inputs, intermediates and products: a [`Store`] is an
//! `object_store` backend (local filesystem, S3, in-memory) plus a key prefix, with
//! atomic puts, conditional creates for commit markers, multipart uploads, JSON
//! helpers, and errors that name the object by its full URL. See docs/storage.md.

mod error;
mod location;
mod options;

use std::future::Future;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

pub use error::StorageError;
pub use options::{S3Options, StoreOptions};

use location::Location;

/// Size of each part of a multipart upload ([`Store::put_large`]). S3 requires parts
/// of at least 5 MiB except the last; 8 MiB is the common client default.
pub const MULTIPART_PART_SIZE: usize = 8 * 1024 * 1024;

/// How many parts of one multipart upload are in flight at once.
const MULTIPART_CONCURRENCY: usize = 4;

/// An object store and a key prefix inside it, with the URL it came from.
///
/// Keys are `/`-separated relative paths (`cycles/000/partial/00003`); segments may
/// not be empty, `.` or `..`, nor contain control characters. Cloning is cheap and
/// clones share the connection pool.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    prefix: Path,
    url: String,
}

impl Store {
    /// Opens a storage URL with [`StoreOptions::default`] (S3 settings from the
    /// environment):
    /// - `file:///abs/dir`, or a plain absolute or relative path (relative to the
    ///   current directory): the local filesystem; directories are created on first
    ///   write;
    /// - `s3://bucket/prefix`: any S3 API; endpoint, region and credentials from
    ///   `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT`), `AWS_REGION` (or
    ///   `AWS_DEFAULT_REGION`), `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    ///   `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP` (implied by an `http://` endpoint);
    /// - `memory://name/prefix`: a process-global in-memory store; every `memory://name`
    ///   of one process shares the same objects (tests).
    ///
    /// Building a store does not contact the service; the first request does.
    pub fn from_url(url: &str) -> Result<Store, StorageError> {
        Self::from_url_with(url, &StoreOptions::default())
    }

    /// [`Store::from_url`] with explicit connection options (S3 endpoint and
    /// credentials, timeouts, retries) that override the environment.
    pub fn from_url_with(url: &str, options: &StoreOptions) -> Result<Store, StorageError> {
        let location = Location::parse(url)?;
        let canonical = location.canonical_url();
        let (inner, prefix) = location.build(url, options)?;
        Ok(Store {
            inner,
            prefix,
            url: canonical,
        })
    }

    /// Wraps an existing object store (e.g. one with custom middleware); `url` is only
    /// used in messages and by [`Store::url`].
    pub fn from_object_store(
        url: impl Into<String>,
        inner: Arc<dyn ObjectStore>,
        prefix: Path,
    ) -> Store {
        Store {
            inner,
            prefix,
            url: url.into().trim_end_matches('/').to_string(),
        }
    }

    /// The canonical URL of this store, without a trailing slash: relative paths are
    /// made absolute (`file:///abs/dir`), so the URL means the same in another process.
    /// [`Store::from_url`] of it opens the same objects.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The store under `sub` (a `/`-separated sub-prefix) of this one. Characters
    /// that are not allowed in keys are percent-encoded.
    pub fn child(&self, sub: &str) -> Store {
        let sub = Path::from(sub);
        if sub.is_root() {
            return self.clone();
        }
        Store {
            inner: self.inner.clone(),
            prefix: self.prefix.parts().chain(sub.parts()).collect(),
            url: format!("{}/{}", self.url, sub),
        }
    }

    /// The full URL of `key`, as used in error messages.
    pub fn key_url(&self, key: &str) -> String {
        let key = key.trim_matches('/');
        if key.is_empty() {
            self.url.clone()
        } else {
            format!("{}/{}", self.url, key)
        }
    }

    /// The underlying object store, for libraries such as `zarrs_object_store`.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.inner.clone()
    }

    /// The key prefix of this store inside [`Store::object_store`].
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// Writes `data` to `key`, replacing any object there. Atomic: a reader sees the
    /// old or the new object, never a partial one (the local filesystem writes a
    /// temporary file and renames it; S3 PUTs are atomic).
    pub async fn put(&self, key: &str, data: Bytes) -> Result<(), StorageError> {
        let path = self.path(key)?;
        self.inner
            .put(&path, PutPayload::from(data))
            .await
            .map(|_| ())
            .map_err(|e| self.err(key, e))
    }

    /// Writes `data` to `key` only if no object is there: `Ok(true)` if this call
    /// created it, `Ok(false)` if it already existed (left unchanged). For commit
    /// markers written by idempotent tasks: of several racing writers exactly one gets
    /// `true`.
    ///
    /// Uses the backend's conditional create (local hard link, S3 `If-None-Match: *`,
    /// in-memory lock). A backend without conditional puts (an S3 service that rejects
    /// `If-None-Match`, or `aws_conditional_put=disabled`) falls back to "check, then
    /// write": still `false` for an object that already exists, but two writers racing
    /// on a new key may both get `true`, the last write winning — harmless when the
    /// racers write the same bytes, as idempotent tasks do.
    pub async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<bool, StorageError> {
        use object_store::Error as E;
        let path = self.path(key)?;
        let opts = PutOptions::from(PutMode::Create);
        match self
            .inner
            .put_opts(&path, PutPayload::from(data.clone()), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(E::AlreadyExists { .. } | E::Precondition { .. } | E::NotModified { .. }) => {
                Ok(false)
            }
            Err(E::NotImplemented { .. } | E::NotSupported { .. }) => {
                tracing::debug!(
                    key = %self.key_url(key),
                    "backend lacks conditional put; falling back to check-then-write"
                );
                if self.head(key).await?.is_some() {
                    return Ok(false);
                }
                self.put(key, data).await?;
                Ok(true)
            }
            Err(e) => Err(self.err(key, e)),
        }
    }

    /// Writes a large object with a multipart upload ([`MULTIPART_PART_SIZE`] parts,
    /// a few in flight at once); the object appears atomically when the upload
    /// completes, and a failed upload is aborted so no parts are left behind. Objects
    /// of at most one part are written with a single [`Store::put`].
    pub async fn put_large(&self, key: &str, data: Bytes) -> Result<(), StorageError> {
        if data.len() <= MULTIPART_PART_SIZE {
            return self.put(key, data).await;
        }
        let path = self.path(key)?;
        let mut upload = self
            .inner
            .put_multipart(&path)
            .await
            .map_err(|e| self.err(key, e))?;
        let parts: Vec<_> = (0..data.len())
            .step_by(MULTIPART_PART_SIZE)
            .map(|start| {
                let end = (start + MULTIPART_PART_SIZE).min(data.len());
                upload.put_part(PutPayload::from(data.slice(start..end)))
            })
            .collect();
        let sent: Result<Vec<()>, _> = futures::stream::iter(parts)
            .buffer_unordered(MULTIPART_CONCURRENCY)
            .try_collect()
            .await;
        self.finish_upload(key, upload, sent.map(|_| ())).await
    }

    /// Writes an object made lazily by `parts` (each of at least 5 MiB but the last,
    /// as S3 requires), one part in flight at a time, so that a large object never
    /// exists in memory whole: a multipart upload, atomic and aborted on failure as in
    /// [`Store::put_large`]. A single part is written with a single [`Store::put`].
    pub async fn put_parts(
        &self,
        key: &str,
        mut parts: impl Iterator<Item = Bytes>,
    ) -> Result<(), StorageError> {
        let Some(first) = parts.next() else {
            return self.put(key, Bytes::new()).await;
        };
        let mut parts = parts.peekable();
        if parts.peek().is_none() {
            return self.put(key, first).await;
        }
        let path = self.path(key)?;
        let mut upload = self
            .inner
            .put_multipart(&path)
            .await
            .map_err(|e| self.err(key, e))?;
        let mut result = upload.put_part(PutPayload::from(first)).await;
        for part in parts {
            if result.is_err() {
                break;
            }
            result = upload.put_part(PutPayload::from(part)).await;
        }
        self.finish_upload(key, upload, result).await
    }

    /// Completes `upload` when its parts were `sent`, else aborts it (so no parts are
    /// left behind) and returns the error naming `key`.
    async fn finish_upload(
        &self,
        key: &str,
        mut upload: Box<dyn MultipartUpload>,
        sent: object_store::Result<()>,
    ) -> Result<(), StorageError> {
        let result = match sent {
            Ok(()) => upload.complete().await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            if let Err(abort) = upload.abort().await {
                tracing::warn!(key = %self.key_url(key), error = %abort, "aborting multipart upload failed");
            }
            return Err(self.err(key, e));
        }
        Ok(())
    }

    /// Reads the whole object at `key`; [`StorageError::NotFound`] if there is none.
    pub async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        let path = self.path(key)?;
        let got = self.inner.get(&path).await.map_err(|e| self.err(key, e))?;
        got.bytes().await.map_err(|e| self.err(key, e))
    }

    /// Reads bytes `range` of the object at `key`. A range reaching past the end of
    /// the object is an error naming the key and the object's size; an empty range
    /// returns no bytes (after checking the object exists).
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StorageError> {
        let path = self.path(key)?;
        if range.start >= range.end {
            if range.start > range.end {
                return Err(StorageError::Backend {
                    key: self.key_url(key),
                    message: format!("invalid byte range {}..{}", range.start, range.end),
                });
            }
            return match self.head(key).await? {
                Some(_) => Ok(Bytes::new()),
                None => Err(StorageError::NotFound {
                    key: self.key_url(key),
                }),
            };
        }
        let want = range.end - range.start;
        let got = self
            .inner
            .get_range(&path, range.clone())
            .await
            .map_err(|e| self.err(key, e))?;
        if got.len() as u64 != want {
            // Some backends clamp a range to the object's end instead of failing.
            return Err(StorageError::Backend {
                key: self.key_url(key),
                message: format!(
                    "byte range {}..{} reaches past the end of the object ({} bytes returned)",
                    range.start,
                    range.end,
                    got.len()
                ),
            });
        }
        Ok(got)
    }

    /// The size in bytes of the object at `key`, or `None` if there is none.
    pub async fn head(&self, key: &str) -> Result<Option<u64>, StorageError> {
        let path = self.path(key)?;
        match self.inner.head(&path).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(key, e)),
        }
    }

    /// Whether an object exists at `key`.
    pub async fn exists(&self, key: &str) -> Result<bool, StorageError> {
        Ok(self.head(key).await?.is_some())
    }

    /// The keys (relative to this store) of all objects under `prefix`, sorted.
    /// `prefix` matches whole path segments: `list("a")` finds `a/x` but not `ab`;
    /// `list("")` lists the whole store.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let path = self.dir_path(prefix)?;
        let mut stream = self.inner.list(Some(&path));
        let mut keys = Vec::new();
        while let Some(item) = stream.next().await {
            let meta = item.map_err(|e| self.err(prefix, e))?;
            if let Some(rest) = meta.location.prefix_match(&self.prefix) {
                let rel: Vec<_> = rest.map(|p| p.as_ref().to_string()).collect();
                keys.push(rel.join("/"));
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// Deletes the object at `key`; deleting a missing object succeeds.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = self.path(key)?;
        match self.inner.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(key, e)),
        }
    }

    /// Writes `v` as pretty-printed JSON (atomically, like [`Store::put`]).
    pub async fn put_json<T: serde::Serialize>(
        &self,
        key: &str,
        v: &T,
    ) -> Result<(), StorageError> {
        let mut json = serde_json::to_vec_pretty(v).map_err(|e| StorageError::Backend {
            key: self.key_url(key),
            message: format!("cannot encode the value as JSON: {e}"),
        })?;
        json.push(b'\n');
        self.put(key, Bytes::from(json)).await
    }

    /// Reads and parses the JSON object at `key`; unparsable contents or the wrong
    /// shape give [`StorageError::Corrupt`] naming the key, line and column.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<T, StorageError> {
        let data = self.get(key).await?;
        serde_json::from_slice(&data)
            .map_err(|e| StorageError::corrupt(self.key_url(key), format!("invalid JSON: {e}")))
    }

    /// Runs a storage future to completion from synchronous code, on a process-global
    /// multi-threaded runtime (so connection pools outlive each call). Refuses, with an
    /// error rather than a panic, to run inside an async runtime: use `.await` there.
    pub fn block_on<T>(
        fut: impl Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
        let misuse = |message: String| StorageError::Backend {
            key: "(runtime)".into(),
            message,
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(misuse(
                "Store::block_on called inside an async runtime; await the future instead".into(),
            ));
        }
        let rt = RUNTIME.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("aperture-storage")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        });
        match rt {
            Ok(rt) => rt.block_on(fut),
            Err(e) => Err(misuse(format!("cannot start the storage runtime: {e}"))),
        }
    }

    /// The full object path of `key`, which must be a valid, non-empty key.
    fn path(&self, key: &str) -> Result<Path, StorageError> {
        let p = self.dir_path(key)?;
        if p == self.prefix {
            return Err(self.invalid_key(key, "empty key".into()));
        }
        Ok(p)
    }

    /// The full path of `key` or of a listing prefix (which may be empty).
    fn dir_path(&self, key: &str) -> Result<Path, StorageError> {
        if key.split('/').any(|s| s == "." || s == "..") {
            return Err(self.invalid_key(key, "'.' and '..' segments are not allowed".into()));
        }
        let rel = Path::parse(key).map_err(|e| self.invalid_key(key, e.to_string()))?;
        Ok(self.prefix.parts().chain(rel.parts()).collect())
    }

    fn invalid_key(&self, key: &str, reason: String) -> StorageError {
        StorageError::InvalidKey {
            store: self.url.clone(),
            key: key.to_string(),
            reason,
        }
    }

    fn err(&self, key: &str, e: object_store::Error) -> StorageError {
        StorageError::from_object_store(self.key_url(key), e)
    }
}
