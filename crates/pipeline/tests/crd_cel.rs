//! The CRD's CEL rules (`x-kubernetes-validations`) evaluated client-side with kube-cel
//! (kube's `cel` feature; the API server's own check is a later issue): every rule
//! compiles, the examples pass them all, and each manifest of `tests/crd/invalid-cel/`
//! breaks exactly the rule its header names, at its field. kube-cel applies the schema
//! defaults first, as the API server does before it evaluates CEL.

#[path = "crd/support.rs"]
mod support;

use std::collections::BTreeSet;
use std::path::Path;

use aperture_pipeline::spec::{open_api_v3_schema, parse_job};
use kube::core::cel::{CompiledSchema, ErrorKind, ValidationError, Validator, compile_schema};
use serde_json::Value;
use support::{broken, examples, name, to_json};

/// Every rule of the schema: (node path, rule expression).
fn rules(path: &str, s: &Value, out: &mut Vec<(String, String)>) {
    for r in s
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.push((
            path.to_string(),
            r["rule"].as_str().unwrap_or_default().to_string(),
        ));
    }
    for (k, v) in s
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let sub = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        rules(&sub, v, out);
    }
    if let Some(items) = s.get("items") {
        rules(&format!("{path}[]"), items, out);
    }
    if let Some(ap @ Value::Object(_)) = s.get("additionalProperties") {
        rules(&format!("{path}{{}}"), ap, out);
    }
}

fn all_rules() -> Vec<(String, String)> {
    let mut out = Vec::new();
    rules("", &open_api_v3_schema(), &mut out);
    out
}

fn evaluate(text: &str, origin: &Path) -> Vec<ValidationError> {
    let object = to_json(text, origin);
    match Validator::new().validate(&open_api_v3_schema(), &object, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.into_vec(),
    }
}

/// Walks the compiled tree: (rules compiled, compilation errors).
fn compiled_rules(c: &CompiledSchema, ok: &mut usize, errors: &mut Vec<String>) {
    for v in &c.validations {
        match v {
            Ok(_) => *ok += 1,
            Err(e) => errors.push(format!("{e:?}")),
        }
    }
    let children = c
        .properties
        .values()
        .chain(c.items.as_deref())
        .chain(c.additional_properties.as_deref());
    for child in children {
        compiled_rules(child, ok, errors);
    }
}

#[test]
fn every_rule_compiles() {
    let found = all_rules();
    assert!(found.len() >= 12, "only {} rules: {found:#?}", found.len());
    let (mut ok, mut errors) = (0, Vec::new());
    compiled_rules(&compile_schema(&open_api_v3_schema()), &mut ok, &mut errors);
    assert!(
        errors.is_empty(),
        "CEL rules that do not compile: {errors:#?}"
    );
    assert_eq!(ok, found.len(), "compiled {ok} of {} rules", found.len());
}

#[test]
fn the_examples_pass_every_rule() {
    let files = examples();
    assert!(files.len() >= 4);
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable example");
        let errors = evaluate(&text, &path);
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    }
    // Numbers written as integers where the schema says `number` (YAML `1` for 1.0): the
    // API server hands CEL doubles, whatever the manifest wrote.
    let ints = "apiVersion: aperture.dev/v1alpha1\nkind: ImagingJob\nmetadata: {name: ints}\nspec:\n  input: {simulate: {freqMinHz: 100000000, freqMaxHz: 200000000, sky: {fluxMinJy: 1, fluxMaxJy: 5, alphaMin: -1, alphaMax: 1}}}\n  image: {precision: single, epsilon: 0.01, npixel: 64}\n  deconvolution: {gain: 1, fractionalThreshold: 0}\n";
    parse_job(ints, "ints").expect("a valid job");
    let errors = evaluate(ints, Path::new("ints"));
    assert!(errors.is_empty(), "integer-written numbers: {errors:#?}");
    // And so does a job with every field written out from the serde defaults.
    let job = parse_job(
        "apiVersion: aperture.dev/v1alpha1\nkind: ImagingJob\nmetadata: {name: full}\nspec:\n  input: {simulate: {}}\n",
        "inline",
    )
    .expect("minimal job");
    let text = serde_json::to_string(&job).expect("json");
    let errors = evaluate(&text, Path::new("full"));
    assert!(errors.is_empty(), "fully defaulted job: {errors:#?}");
}

/// Each broken manifest fails one rule, with the message of that rule, at the field its
/// header names (the same field `parse_job` names: see crd_schema.rs).
#[test]
fn each_cel_case_breaks_exactly_its_rule() {
    let mut broken_rules = BTreeSet::new();
    for b in broken("invalid-cel") {
        let errors = evaluate(&b.text, &b.path);
        assert_eq!(
            errors.len(),
            1,
            "{} ({}): {errors:#?}",
            name(&b.path),
            b.what
        );
        let e = &errors[0];
        assert_eq!(
            e.kind,
            ErrorKind::ValidationFailure,
            "{}: {e:?}",
            name(&b.path)
        );
        assert_eq!(e.field_path, b.field, "{}: {e}", name(&b.path));
        assert!(
            e.message.contains(&b.expect),
            "{}: expected {:?} in {:?}",
            name(&b.path),
            b.expect,
            e.message
        );
        broken_rules.insert(e.rule.clone());
    }
    // Every rule is shown to be able to fail.
    let unbroken: Vec<_> = all_rules()
        .into_iter()
        .filter(|(_, r)| !broken_rules.contains(r))
        .collect();
    assert!(
        unbroken.is_empty(),
        "rules no manifest of invalid-cel/ breaks: {unbroken:#?}"
    );
}

/// The schema-only broken manifests are not CEL's business: where their values still
/// have the right types, no rule fires on them, so the two layers do not overlap.
#[test]
fn schema_cases_do_not_trip_cel_rules() {
    for b in broken("invalid") {
        let errors = evaluate(&b.text, &b.path);
        let failures: Vec<_> = errors
            .iter()
            .filter(|e| e.kind == ErrorKind::ValidationFailure)
            .collect();
        assert!(
            failures.is_empty(),
            "{} ({}): {failures:#?}",
            name(&b.path),
            b.what
        );
    }
}
