//! The `ImagingJob` CustomResourceDefinition as installed on a cluster (`crds/imagingjob.yaml`,
//! `aperture crd`): one function both the command and the tests use.
//!
//! The schema comes from the spec types: ranges, enums and patterns from `#[schemars(...)]`,
//! defaults from the serde defaults, cross-field rules as CEL `x-kubernetes-validations`
//! from `#[x_kube(validation = ...)]` (kube-derive's `KubeSchema`). The one thing the derive
//! cannot say is the rule on `metadata.name`, added here. See the Kubernetes docs "Extend
//! the Kubernetes API with CustomResourceDefinitions" (structural schemas, defaulting,
//! validation rules) and docs/crd.md.
//!
//! Also added here: a CEL guard repeating every fractional bound the API server does not
//! enforce on integer values ([`bound_guard`]). kube-apiserver decodes a JSON number
//! written without a fraction (`0`, and `0.0`, which kubectl sends as `0`) as an int64,
//! and its validator then compares it with the bound converted to int64, truncated
//! toward zero (`MinimumNativeType`/`MaximumNativeType` in
//! `k8s.io/kube-openapi/pkg/validation/validate/values.go`): `cellsizeArcsec: 0` passes
//! `minimum: 0.0001` as `0 >= 0`. The boolean `exclusiveMinimum` of OpenAPI 3.0 would
//! close the gap but is invalid JSON Schema 2020-12, which the offline check
//! (`check-jsonschema`) reads, so the guard is a CEL rule on the field itself.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
    ValidationRule,
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
            guard_bounds("", root);
        }
    }
    crd
}

/// A CEL rule (`x-kubernetes-validations`) that enforces a bound of a numeric field for
/// integer values, where the API server's schema check does not (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundGuard {
    /// The CEL expression, e.g. `self >= 0.0001`.
    pub rule: String,
    /// The message the API server returns at the field, e.g.
    /// `cellsizeArcsec must be at least 0.0001`.
    pub message: String,
}

/// The guard field `name` with schema bounds `minimum`/`maximum` needs, or `None`.
///
/// The API server checks an integer value `v` against `int64(bound)`, truncated toward
/// zero. That is exact for integer bounds, for fractional maxima above zero and
/// fractional minima below zero; it lets one integer through for a fractional minimum
/// above zero (`v = floor(m)`, e.g. 0 for 0.0001) and a fractional maximum below zero
/// (`v = ceil(M)`). Those two get a guard.
pub fn bound_guard(name: &str, minimum: Option<f64>, maximum: Option<f64>) -> Option<BoundGuard> {
    let fractional = |b: f64| b.is_finite() && b.fract() != 0.0;
    // `{:?}` of a fractional f64 always has a `.` or an exponent: a CEL double literal.
    if let Some(m) = minimum.filter(|m| fractional(*m) && *m > 0.0) {
        return Some(BoundGuard {
            rule: format!("self >= {m:?}"),
            message: format!("{name} must be at least {m:?}"),
        });
    }
    maximum
        .filter(|m| fractional(*m) && *m < 0.0)
        .map(|m| BoundGuard {
            rule: format!("self <= {m:?}"),
            message: format!("{name} must be at most {m:?}"),
        })
}

/// Adds [`bound_guard`]'s rule to `node` (field `name`) and every numeric node below it
/// that needs one: properties, array items, map values.
fn guard_bounds(name: &str, node: &mut JSONSchemaProps) {
    let numeric = matches!(node.type_.as_deref(), Some("number" | "integer"));
    if numeric && let Some(g) = bound_guard(name, node.minimum, node.maximum) {
        node.x_kubernetes_validations
            .get_or_insert_with(Vec::new)
            .push(ValidationRule {
                rule: g.rule,
                message: Some(g.message),
                ..ValidationRule::default()
            });
    }
    for (key, child) in node.properties.iter_mut().flatten() {
        guard_bounds(key, child);
    }
    let each = format!("each of {name}");
    match &mut node.items {
        Some(JSONSchemaPropsOrArray::Schema(s)) => guard_bounds(&each, s),
        Some(JSONSchemaPropsOrArray::Schemas(v)) => {
            for s in v {
                guard_bounds(&each, s);
            }
        }
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(s)) = &mut node.additional_properties {
        guard_bounds(&format!("each value of {name}"), s);
    }
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

    #[test]
    fn only_bounds_that_truncation_loosens_get_a_guard() {
        // int64(0.0001) = 0 lets 0 through; int64(-0.5) = 0 lets 0 through.
        let g = bound_guard("cellsizeArcsec", Some(1e-4), Some(3600.0)).expect("a guard");
        assert_eq!(g.rule, "self >= 0.0001");
        assert_eq!(g.message, "cellsizeArcsec must be at least 0.0001");
        assert_eq!(
            bound_guard("x", Some(1e-15), None).map(|g| g.rule),
            Some("self >= 1e-15".into())
        );
        assert_eq!(
            bound_guard("x", Some(-3.0), Some(-0.5)).map(|g| g.rule),
            Some("self <= -0.5".into())
        );
        // Exact for integer values: integer bounds, a negative fractional minimum
        // (int64(-1.5) = -1), a positive fractional maximum (int64(0.9) = 0).
        assert_eq!(bound_guard("x", Some(0.0), Some(1.0)), None);
        assert_eq!(bound_guard("x", Some(-1.5), Some(0.9)), None);
        assert_eq!(bound_guard("x", None, None), None);
    }

    #[test]
    fn the_crd_guards_each_fractional_minimum_at_its_field() {
        let schema = open_api_v3_schema();
        let spec = &schema["properties"]["spec"]["properties"];
        let rules = |node: &serde_json::Value| -> Vec<(String, String)> {
            node["x-kubernetes-validations"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    (
                        r["rule"].as_str().unwrap_or_default().to_string(),
                        r["message"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        };
        assert_eq!(
            rules(&spec["image"]["properties"]["cellsizeArcsec"]),
            [(
                "self >= 0.0001".to_string(),
                "cellsizeArcsec must be at least 0.0001".to_string()
            )]
        );
        for term in ["T", "G", "B"] {
            let t = &spec["calibration"]["properties"][term]["properties"]["tolerance"];
            assert_eq!(
                rules(t),
                [(
                    "self >= 1e-15".to_string(),
                    "tolerance must be at least 1e-15".to_string()
                )],
                "{term}"
            );
        }
        // An integer minimum needs none; a CEL rule of its own is kept as it was.
        assert!(rules(&spec["majorCycles"]).is_empty());
        assert_eq!(
            rules(&spec["deconvolution"]["properties"]["gain"]),
            [("self > 0.0".to_string(), "gain must be above 0".to_string())]
        );
    }
}
