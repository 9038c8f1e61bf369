//! The storage error type: one enum of meanings, each naming the object by its full URL
//! (`s3://bucket/prefix/key`, `file:///dir/key`, `memory://name/key`), and the mapping
//! from `object_store` errors onto it.

use std::error::Error as StdError;

use object_store::client::{HttpError, HttpErrorKind};
use thiserror::Error;

/// Errors of the object-storage layer. Every variant names the object (or URL) at
/// fault in full, so a message read in a job's status or a CLI error line says which
/// object of which store failed.
#[derive(Debug, Error)]
pub enum StorageError {
    /// The object does not exist.
    #[error("{key}: no such object")]
    NotFound { key: String },
    /// The object exists and the write asked for it not to (conditional create).
    #[error("{key}: object already exists")]
    AlreadyExists { key: String },
    /// A conditional request's precondition failed (e.g. the object changed).
    #[error("{key}: precondition failed (the object changed or exists)")]
    Precondition { key: String },
    /// The credentials or the file permissions do not allow the operation.
    #[error("{key}: permission denied: {message}")]
    PermissionDenied { key: String, message: String },
    /// A storage URL that cannot be used.
    #[error("invalid storage URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// An object key that cannot be used (empty, `..`, `a//b`, control characters).
    #[error("invalid object key {key:?} under {store}: {reason}")]
    InvalidKey {
        store: String,
        key: String,
        reason: String,
    },
    /// The storage service cannot be reached: connection refused, DNS failure, or no
    /// answer within the connect/request timeouts (after the configured retries).
    #[error("{url}: storage service unreachable: {message}")]
    Unreachable { url: String, message: String },
    /// An object was read but its contents are not what a reader expects (bad JSON,
    /// truncated chunk, …). Raised by readers above the storage layer, too.
    #[error("{key}: corrupt object: {reason}")]
    Corrupt { key: String, reason: String },
    /// Any other failure of the backend (server error, I/O error, invalid range, …).
    #[error("{key}: storage error: {message}")]
    Backend { key: String, message: String },
}

impl StorageError {
    /// The object key or URL the error names.
    pub fn key(&self) -> &str {
        match self {
            Self::NotFound { key }
            | Self::AlreadyExists { key }
            | Self::Precondition { key }
            | Self::PermissionDenied { key, .. }
            | Self::Corrupt { key, .. }
            | Self::Backend { key, .. } => key,
            Self::InvalidKey { key, .. } => key,
            Self::InvalidUrl { url, .. } | Self::Unreachable { url, .. } => url,
        }
    }

    /// Shorthand for [`StorageError::Corrupt`], for readers of stored objects.
    pub fn corrupt(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Corrupt {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`StorageError::InvalidUrl`].
    pub fn invalid_url(url: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidUrl {
            url: url.into(),
            reason: reason.into(),
        }
    }

    /// Whether retrying the same operation later may succeed (the service was
    /// unreachable or failed on its side), as opposed to a permanent failure.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable { .. } | Self::Backend { .. })
    }

    /// Maps an `object_store` error on the object `key_url` onto a meaning.
    pub(crate) fn from_object_store(key_url: String, err: object_store::Error) -> Self {
        use object_store::Error as E;
        match err {
            E::NotFound { .. } => Self::NotFound { key: key_url },
            E::AlreadyExists { .. } => Self::AlreadyExists { key: key_url },
            E::Precondition { .. } | E::NotModified { .. } => Self::Precondition { key: key_url },
            E::PermissionDenied { source, .. } | E::Unauthenticated { source, .. } => {
                Self::PermissionDenied {
                    key: key_url,
                    message: chain(source.as_ref()),
                }
            }
            other => {
                let message = chain(&other);
                match classify(&other) {
                    Some(Class::Unreachable) => Self::Unreachable {
                        url: key_url,
                        message,
                    },
                    Some(Class::PermissionDenied) => Self::PermissionDenied {
                        key: key_url,
                        message,
                    },
                    None => Self::Backend {
                        key: key_url,
                        message,
                    },
                }
            }
        }
    }
}

/// What a generic error turns out to be once its source chain is inspected.
enum Class {
    Unreachable,
    PermissionDenied,
}

/// Walks the source chain: an HTTP connect/timeout error means the service is
/// unreachable; an OS permission error means permission denied.
fn classify(err: &(dyn StdError + 'static)) -> Option<Class> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        let unreachable = e
            .downcast_ref::<HttpError>()
            .is_some_and(|h| matches!(h.kind(), HttpErrorKind::Connect | HttpErrorKind::Timeout));
        if unreachable {
            return Some(Class::Unreachable);
        }
        let denied = e.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            )
        });
        if denied {
            return Some(Class::PermissionDenied);
        }
        cur = e.source();
    }
    None
}

/// The error and its sources, joined with ": ", without repeating a message that
/// already contains its source's text; made one line by [`tidy`].
fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    tidy(&out)
}

/// Longest message kept from a backend error.
const MAX_MESSAGE: usize = 600;

/// One line of bounded length: an S3 XML error body is reduced to its `Code` and
/// `Message`, whitespace runs (newlines included) to one space.
fn tidy(msg: &str) -> String {
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = msg.find(&open)? + open.len();
        let len = msg[start..].find(&format!("</{name}>"))?;
        Some(msg[start..start + len].trim().to_string())
    };
    let mut out = match msg.find("<?xml").or_else(|| msg.find("<Error>")) {
        Some(at) => {
            let detail: Vec<String> = [tag("Code"), tag("Message")]
                .into_iter()
                .flatten()
                .collect();
            format!("{}{}", &msg[..at], detail.join(": "))
        }
        None => msg.to_string(),
    };
    out = out.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::tidy;

    #[test]
    fn s3_xml_bodies_become_one_line() {
        let msg = "PUT http://h/b/k - 403 Forbidden: <?xml version=\"1.0\"?>\n<Error>\n  \
                   <Code>AccessDenied</Code>\n  <Message>Access Denied.</Message>\n</Error>";
        assert_eq!(
            tidy(msg),
            "PUT http://h/b/k - 403 Forbidden: AccessDenied: Access Denied."
        );
        assert_eq!(tidy("a\n  b"), "a b");
        assert!(tidy(&"é".repeat(1000)).chars().count() <= 301);
    }
}
