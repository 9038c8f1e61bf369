//! The `ImagingJob` CustomResourceDefinition as installed on a cluster (`crds/imagingjob.yaml`,
//! `aperture crd`): one function both the command and the tests use.
//!
//! The schema comes from the spec types: ranges, enums and patterns from `#[schemars(...)]`,
//! defaults from the serde defaults, cross-field rules as CEL `x-kubernetes-validations`
//! from `#[x_kube(validation = ...)]` (kube-derive's `KubeSchema`). The one thing the derive
//! cannot say is the rule on `metadata.name`, added here. See the Kubernetes docs "Extend
//! the Kubernetes API with CustomResourceDefinitions" (structural schemas, defaulting,
//! validation rules) and docs/crd.md.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use kube::CustomResourceExt;

use super::ImagingJob;

/// `metadata.name` must be an RFC 1123 label (what `load.rs` checks): the operator names
/// the job's Jobs and pods after it. The API server alone allows any DNS subdomain.
pub const NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// Longest `metadata.name` (an RFC 1123 label).
pub const NAME_MAX_LENGTH: i64 = 63;

/// The CRD of `ImagingJob` (group `aperture.dev`, version `v1alpha1`).
pub fn crd() -> CustomResourceDefinition {
    let mut crd = ImagingJob::crd();
    for version in &mut crd.spec.versions {
        if let Some(root) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            restrict_name(root);
        }
    }
    crd
}

/// Adds `metadata: {type: object, properties: {name: …}}` at the root: a structural schema
/// may restrict `metadata.name` and `metadata.generateName` and nothing else of `metadata`
/// (Kubernetes docs, "Specifying a structural schema").
fn restrict_name(root: &mut JSONSchemaProps) {
    let name = JSONSchemaProps {
        type_: Some("string".into()),
        max_length: Some(NAME_MAX_LENGTH),
        pattern: Some(NAME_PATTERN.into()),
        ..JSONSchemaProps::default()
    };
    let metadata = JSONSchemaProps {
        type_: Some("object".into()),
        properties: Some(BTreeMap::from([("name".to_string(), name)])),
        ..JSONSchemaProps::default()
    };
    root.properties
        .get_or_insert_with(BTreeMap::new)
        .insert("metadata".into(), metadata);
}

/// `spec.versions[0].schema.openAPIV3Schema` of [`crd`] as JSON: what the API server
/// validates a manifest against (and what `check-jsonschema --schemafile` can use
/// offline). `Null` only if the CRD had no schema, which the derive never produces.
pub fn open_api_v3_schema() -> serde_json::Value {
    let crd = crd();
    crd.spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_name_is_restricted_at_the_root_only() {
        let schema = open_api_v3_schema();
        let metadata = &schema["properties"]["metadata"];
        assert_eq!(metadata["type"], "object");
        let keys: Vec<_> = metadata["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .collect();
        assert_eq!(keys, ["name"], "only name/generateName may be restricted");
        assert_eq!(metadata["properties"]["name"]["pattern"], NAME_PATTERN);
        assert_eq!(metadata["properties"]["name"]["maxLength"], NAME_MAX_LENGTH);
    }
}
