//! Reading an `ImagingJob` manifest from YAML (or JSON) with errors that name the field
//! path, e.g. `spec.image.npixel: invalid type: floating point 1.5, expected …`.

use std::path::Path;

use thiserror::Error;

use super::ImagingJob;

/// A manifest that cannot be used.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SpecError {
    /// The file cannot be read.
    #[error("cannot read {file}: {message}")]
    Read { file: String, message: String },
    /// Not YAML at all.
    #[error("{file}: not valid YAML: {message}")]
    Syntax { file: String, message: String },
    /// Valid YAML that does not fit the schema; `path` is the field path.
    #[error("{path}: {message}")]
    Schema { path: String, message: String },
    /// A field has a value outside its range or contradicts another.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

impl SpecError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The field path (or file) the error is about.
    pub fn field(&self) -> &str {
        match self {
            Self::Read { file, .. } | Self::Syntax { file, .. } => file,
            Self::Schema { path, .. } => path,
            Self::Invalid { field, .. } => field,
        }
    }
}

/// Parses and validates a manifest held in memory; `origin` names it in errors.
pub fn parse_job(text: &str, origin: &str) -> Result<ImagingJob, SpecError> {
    let value: serde_json::Value = serde_saphyr::from_str(text).map_err(|e| SpecError::Syntax {
        file: origin.to_string(),
        message: e.to_string().lines().next().unwrap_or_default().to_string(),
    })?;
    check_header(&value)?;
    let job: ImagingJob = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        SpecError::Schema {
            path: if path == "." {
                "(document)".into()
            } else {
                path
            },
            message: e.into_inner().to_string(),
        }
    })?;
    job.spec.validate()?;
    Ok(job)
}

/// Reads, parses and validates a manifest file. A relative
/// `spec.input.measurementSet.path` is made absolute, relative to the manifest's
/// directory (where a user looks for it), so workers find it from any directory.
pub fn load_job(path: &Path) -> Result<ImagingJob, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|e| SpecError::Read {
        file: path.display().to_string(),
        message: e.to_string(),
    })?;
    let mut job = parse_job(&text, &path.display().to_string())?;
    if let Some(ms) = job.spec.input.measurement_set.as_mut() {
        ms.resolve_relative_to(path.parent().unwrap_or(Path::new(".")));
    }
    Ok(job)
}

fn check_header(value: &serde_json::Value) -> Result<(), SpecError> {
    let obj = value.as_object().ok_or_else(|| {
        SpecError::invalid(
            "(document)",
            "expected a mapping with apiVersion, kind, metadata and spec",
        )
    })?;
    let api = obj.get("apiVersion").and_then(|v| v.as_str());
    if api != Some("aperture.dev/v1alpha1") {
        return Err(SpecError::invalid(
            "apiVersion",
            format!(
                "expected aperture.dev/v1alpha1, got {}",
                show(obj.get("apiVersion"))
            ),
        ));
    }
    if obj.get("kind").and_then(|v| v.as_str()) != Some("ImagingJob") {
        return Err(SpecError::invalid(
            "kind",
            format!("expected ImagingJob, got {}", show(obj.get("kind"))),
        ));
    }
    let name = obj
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(|n| n.as_str());
    match name {
        None => Err(SpecError::invalid("metadata.name", "missing")),
        Some(n) if !is_dns_label(n) => Err(SpecError::invalid(
            "metadata.name",
            format!("{n:?} is not a DNS label (lowercase letters, digits and '-', at most 63)"),
        )),
        Some(_) => Ok(()),
    }
}

fn show(v: Option<&serde_json::Value>) -> String {
    v.map_or_else(|| "nothing".to_string(), |v| v.to_string())
}

/// RFC 1123 label: Kubernetes object names used for Jobs must be labels.
pub(crate) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "apiVersion: aperture.dev/v1alpha1\nkind: ImagingJob\nmetadata: {name: t}\nspec:\n  input: {simulate: {}}\n";

    #[test]
    fn minimal_manifest_gets_defaults() {
        let job = parse_job(MINIMAL, "m.yaml").expect("parses");
        assert_eq!(job.spec.major_cycles, 3);
        assert_eq!(job.spec.image.epsilon, 1e-5);
        assert_eq!(job.spec.calibration.context, "TG");
    }

    #[test]
    fn unknown_field_is_named_with_its_path() {
        let text = MINIMAL.replace("input:", "image: {npixl: 512}\n  input:");
        let err = parse_job(&text, "m.yaml").unwrap_err();
        assert_eq!(err.field(), "spec.image.npixl", "{err}");
        assert!(err.to_string().contains("npixl"), "{err}");
    }

    #[test]
    fn wrong_type_is_named_with_its_path() {
        let text = MINIMAL.replace("input:", "image: {epsilon: small}\n  input:");
        let err = parse_job(&text, "m.yaml").unwrap_err();
        assert_eq!(err.field(), "spec.image.epsilon", "{err}");
        let text = MINIMAL.replace("input:", "image: {npixel: 1.5}\n  input:");
        let err = parse_job(&text, "m.yaml").unwrap_err();
        assert_eq!(err.field(), "spec.image.npixel", "{err}");
    }

    #[test]
    fn header_errors_name_the_field() {
        let err = parse_job(&MINIMAL.replace("v1alpha1", "v9"), "m").unwrap_err();
        assert_eq!(err.field(), "apiVersion");
        let err = parse_job(&MINIMAL.replace("{name: t}", "{name: T_1}"), "m").unwrap_err();
        assert_eq!(err.field(), "metadata.name");
        let err = parse_job("spec: [", "m").unwrap_err();
        assert!(matches!(err, SpecError::Syntax { .. }), "{err}");
    }

    #[test]
    fn npixel_accepts_auto_and_integers() {
        let job = parse_job(
            &MINIMAL.replace("input:", "image: {npixel: 512}\n  input:"),
            "m",
        )
        .expect("int");
        assert_eq!(job.spec.image.npixel, super::super::AutoOr::Value(512));
        let job = parse_job(
            &MINIMAL.replace("input:", "image: {npixel: auto}\n  input:"),
            "m",
        )
        .expect("auto");
        assert_eq!(job.spec.image.npixel, super::super::AutoOr::Auto);
        // Only `auto` as a string, as the CRD's CEL rule on the field.
        for text in ["npixel: AUTO", "npixel: '512'"] {
            let err = parse_job(
                &MINIMAL.replace("input:", &format!("image: {{{text}}}\n  input:")),
                "m",
            )
            .unwrap_err();
            assert_eq!(err.field(), "spec.image.npixel", "{text}: {err}");
        }
    }
}
