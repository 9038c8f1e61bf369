//! The CRD's CEL rules (`x-kubernetes-validations`) evaluated client-side with kube-cel
//! (kube's `cel` feature; the API server's own check is operator/tests/controlplane_crd.rs):
//! every rule compiles, the examples pass them all, and each manifest of
//! `tests/crd/invalid-cel/` breaks exactly the rule its header names, at its field.
//! kube-cel applies the schema defaults first, as the API server does before it
//! evaluates CEL.
//!
//! Two kinds of rule:
//! - **cross-field and exclusive-bound rules** (`#[x_kube(validation)]` on the spec
//!   types): each is broken by a manifest of `invalid-cel/`, which the schema accepts;
//! - **bound guards** (`spec::bound_guard`, added by `spec::crd()`): a rule on a numeric
//!   field that repeats the field's own fractional `minimum` (or negative fractional
//!   `maximum`), because kube-apiserver checks an integer value against the bound
//!   truncated to an integer and so accepts `cellsizeArcsec: 0` under `minimum: 0.0001`.
//!   A guard says nothing the schema does not, so its cases live in `invalid/` (the
//!   schema, check-jsonschema and `validate()` refuse them too); each guard must be
//!   broken by one of them at its own field, and controlplane_crd.rs checks that the API
//!   server refuses every `invalid/` manifest. These are the only rules an `invalid/`
//!   manifest may trip.

#[path = "crd/support.rs"]
mod support;

use std::collections::BTreeSet;
use std::path::Path;

use aperture_pipeline::spec::{bound_guard, open_api_v3_schema, parse_job};
use kube::core::cel::{CompiledSchema, ErrorKind, ValidationError, Validator, compile_schema};
use serde_json::Value;
use support::{broken, examples, name, to_json};

/// One CEL rule of the schema.
#[derive(Debug, Clone)]
struct Rule {
    /// The node it is on (`spec.image.cellsizeArcsec`; `[]` for array items, `{}` for
    /// map values).
    path: String,
    rule: String,
    message: String,
    /// A bound guard (see the module docs): the rule `bound_guard` makes from the node's
    /// own bounds.
    guard: bool,
}

/// Every rule below node `s` (field `name` at `path`).
fn rules(path: &str, name: &str, s: &Value, out: &mut Vec<Rule>) {
    let guard = bound_guard(
        name,
        s.get("minimum").and_then(Value::as_f64),
        s.get("maximum").and_then(Value::as_f64),
    );
    for r in s
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let rule = r["rule"].as_str().unwrap_or_default().to_string();
        let message = r["message"].as_str().unwrap_or_default().to_string();
        out.push(Rule {
            path: path.to_string(),
            guard: guard
                .as_ref()
                .is_some_and(|g| g.rule == rule && g.message == message),
            rule,
            message,
        });
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
        rules(&sub, k, v, out);
    }
    if let Some(items) = s.get("items") {
        rules(&format!("{path}[]"), &format!("each of {name}"), items, out);
    }
    if let Some(ap @ Value::Object(_)) = s.get("additionalProperties") {
        rules(
            &format!("{path}{{}}"),
            &format!("each value of {name}"),
            ap,
            out,
        );
    }
}

fn all_rules() -> Vec<Rule> {
    let mut out = Vec::new();
    rules("", "", &open_api_v3_schema(), &mut out);
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
/// header names (the same field `parse_job` names: see crd_schema.rs); every rule but the
/// bound guards is broken by one of them.
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
    let all = all_rules();
    // A bound guard belongs in invalid/ (the schema states the bound too).
    let guards: BTreeSet<&str> = all
        .iter()
        .filter(|r| r.guard)
        .map(|r| r.rule.as_str())
        .collect();
    let misplaced: Vec<_> = broken_rules
        .iter()
        .filter(|r| guards.contains(r.as_str()))
        .collect();
    assert!(
        misplaced.is_empty(),
        "invalid-cel/ manifests that only break a bound guard (move them to invalid/): \
         {misplaced:#?}"
    );
    // Every other rule is shown to be able to fail.
    let unbroken: Vec<_> = all
        .into_iter()
        .filter(|r| !r.guard && !broken_rules.contains(&r.rule))
        .collect();
    assert!(
        unbroken.is_empty(),
        "rules no manifest of invalid-cel/ breaks: {unbroken:#?}"
    );
}

/// Each bound guard is broken by a manifest of `invalid/` at its own field, with its own
/// message. The calibration terms T, G and B share one schema type, so their guards
/// (same rule, same message) are shown once; crd.rs's unit tests check that each term
/// carries them.
#[test]
fn each_bound_guard_is_broken_by_a_schema_case() {
    let guards: Vec<Rule> = all_rules().into_iter().filter(|r| r.guard).collect();
    assert!(
        guards.len() >= 6,
        "the fractional minimums of cellsizeArcsec, epsilon, taperArcsec, tolerance, \
         intervalSeconds and targetTaskSeconds have guards: {guards:#?}"
    );
    let mut shown = BTreeSet::new();
    for b in broken("invalid") {
        for e in evaluate(&b.text, &b.path) {
            if e.kind == ErrorKind::ValidationFailure && e.field_path == b.field {
                shown.insert((e.rule.clone(), e.message.clone()));
            }
        }
    }
    let unbroken: Vec<_> = guards
        .iter()
        .filter(|g| !shown.contains(&(g.rule.clone(), g.message.clone())))
        .collect();
    assert!(
        unbroken.is_empty(),
        "bound guards no manifest of invalid/ breaks at its field: {unbroken:#?}"
    );
}

/// The schema-only broken manifests are not CEL's business: where their values still
/// have the right types, no rule fires on them but a bound guard at their own field (which
/// repeats the schema's bound), so the two layers do not otherwise overlap.
#[test]
fn schema_cases_do_not_trip_cel_rules() {
    let guards: Vec<Rule> = all_rules().into_iter().filter(|r| r.guard).collect();
    for b in broken("invalid") {
        let errors = evaluate(&b.text, &b.path);
        let failures: Vec<_> = errors
            .iter()
            .filter(|e| e.kind == ErrorKind::ValidationFailure)
            .filter(|e| {
                !(e.field_path == b.field
                    && guards.iter().any(|g| g.path == b.field && g.rule == e.rule))
            })
            .collect();
        assert!(
            failures.is_empty(),
            "{} ({}): {failures:#?}",
            name(&b.path),
            b.what
        );
    }
}
