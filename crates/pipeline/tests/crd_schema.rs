//! The ImagingJob CRD's schema: structural (Kubernetes docs, "Specifying a structural
//! schema"), defaults equal to the serde defaults, and the same verdicts as `parse_job` /
//! `validate()`; `check-jsonschema` (PyPI) validates the examples and the broken manifests
//! of `tests/crd/` against `openAPIV3Schema` offline.
//!
//! check-jsonschema is found on PATH or at `APERTURE_CHECK_JSONSCHEMA`; when it is missing
//! its tests print a skip message and pass, unless `APERTURE_REQUIRE_TOOLS=1`.

#[path = "crd/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use aperture_pipeline::spec::{crd, open_api_v3_schema, parse_job};
use serde_json::{Value, json};
use support::{Broken, broken, examples, name, to_json};

// ---------------------------------------------------------------------------------------
// Structural schema

/// Keywords a `apiextensions.k8s.io/v1` schema must not use (docs: "Validation": the
/// fields `definitions`, `dependencies`, `deprecated`, `discriminator`, `id`,
/// `patternProperties`, `readOnly`, `writeOnly`, `xml`, `$ref` are forbidden; also
/// `$schema` and `additionalItems`).
const FORBIDDEN: &[&str] = &[
    "$ref",
    "$schema",
    "definitions",
    "dependencies",
    "deprecated",
    "discriminator",
    "id",
    "patternProperties",
    "readOnly",
    "writeOnly",
    "xml",
    "additionalItems",
];

/// Keys that must not appear inside `allOf`/`anyOf`/`oneOf`/`not` (docs, structural
/// schema rule 3: no `description`, `type`, `default`, `additionalProperties`, `nullable`
/// within a logical junctor).
const NOT_IN_JUNCTORS: &[&str] = &[
    "type",
    "default",
    "description",
    "nullable",
    "additionalProperties",
];

#[derive(Default)]
struct Walk {
    errors: Vec<String>,
    nodes: usize,
}

impl Walk {
    fn fail(&mut self, path: &str, rule: &str) {
        self.errors.push(format!("{path}: {rule}"));
    }

    fn node(&mut self, path: &str, s: &Value, in_junctor: bool) {
        self.nodes += 1;
        let Some(obj) = s.as_object() else {
            self.fail(path, "a schema node must be an object");
            return;
        };
        let flag = |k: &str| obj.get(k).and_then(Value::as_bool) == Some(true);
        for key in FORBIDDEN {
            if obj.contains_key(*key) {
                self.fail(path, &format!("`{key}` is not allowed in a v1 CRD schema"));
            }
        }
        if flag("uniqueItems") {
            self.fail(
                path,
                "`uniqueItems: true` is not allowed in a v1 CRD schema",
            );
        }
        if obj.get("additionalProperties") == Some(&Value::Bool(false)) {
            self.fail(path, "`additionalProperties: false` is not allowed");
        }
        if obj.contains_key("additionalProperties") && obj.contains_key("properties") {
            self.fail(
                path,
                "`additionalProperties` and `properties` are mutually exclusive",
            );
        }
        let int_or_string = flag("x-kubernetes-int-or-string");
        if in_junctor {
            for key in NOT_IN_JUNCTORS {
                if obj.contains_key(*key) && !is_int_or_string_branch(path, obj) {
                    self.fail(
                        path,
                        &format!("`{key}` inside allOf/anyOf/oneOf/not (rule 3)"),
                    );
                }
            }
        } else if !(int_or_string || flag("x-kubernetes-preserve-unknown-fields")) {
            // Rule 1: every node outside a junctor has a non-empty type.
            match obj.get("type").and_then(Value::as_str) {
                Some("object" | "array" | "string" | "integer" | "number" | "boolean") => {}
                other => self.fail(path, &format!("no valid `type` (rule 1): {other:?}")),
            }
        }
        if int_or_string && obj.contains_key("type") {
            self.fail(path, "x-kubernetes-int-or-string with a `type`");
        }
        if int_or_string && let Some(any) = obj.get("anyOf") {
            // The one anyOf allowed next to int-or-string (rule 3's exception).
            if any != &json!([{"type": "integer"}, {"type": "string"}]) {
                self.fail(path, "int-or-string anyOf other than [integer, string]");
            }
        }
        if let (Some(values), Some(ty)) = (obj.get("enum"), obj.get("type").and_then(Value::as_str))
        {
            let ok = values.as_array().is_some_and(|vs| {
                vs.iter().all(|v| match ty {
                    "string" => v.is_string(),
                    "integer" => v.is_i64() || v.is_u64(),
                    "number" => v.is_number(),
                    _ => true,
                })
            });
            if !ok {
                self.fail(path, "`enum` values not of the node's type");
            }
        }
        if let Some(rules) = obj.get("x-kubernetes-validations") {
            for (i, r) in rules.as_array().into_iter().flatten().enumerate() {
                let msg = r.get("message").and_then(Value::as_str).unwrap_or_default();
                if r.get("rule")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    self.fail(path, &format!("x-kubernetes-validations[{i}] has no rule"));
                }
                if msg.trim().is_empty() || msg.contains('\n') {
                    self.fail(
                        path,
                        &format!("x-kubernetes-validations[{i}] needs a one-line message"),
                    );
                }
            }
        }
        // Children.
        if let Some(props) = obj.get("properties") {
            for (k, v) in props.as_object().into_iter().flatten() {
                self.node(&format!("{path}.{k}"), v, in_junctor);
            }
        }
        match obj.get("items") {
            Some(items @ Value::Object(_)) => self.node(&format!("{path}[]"), items, in_junctor),
            Some(_) => self.fail(path, "`items` must be one schema, not a list"),
            None => {}
        }
        if let Some(ap @ Value::Object(_)) = obj.get("additionalProperties") {
            self.node(&format!("{path}{{}}"), ap, in_junctor);
        }
        for junctor in ["allOf", "anyOf", "oneOf"] {
            for (i, b) in obj
                .get(junctor)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let sub = format!("{path}.{junctor}[{i}]");
                self.node(&sub, b, true);
                self.junctor_fields_outside(&sub, b, obj);
            }
        }
        if let Some(not) = obj.get("not") {
            let sub = format!("{path}.not");
            self.node(&sub, not, true);
            self.junctor_fields_outside(&sub, not, obj);
        }
    }

    /// Rule 2: a field (or items) named inside a junctor is also specified outside it.
    fn junctor_fields_outside(
        &mut self,
        path: &str,
        branch: &Value,
        outer: &serde_json::Map<String, Value>,
    ) {
        let outer_props = outer.get("properties").and_then(Value::as_object);
        for k in branch
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            if !outer_props.is_some_and(|p| p.contains_key(k)) {
                self.fail(path, &format!("field {k} only inside a junctor (rule 2)"));
            }
        }
        if branch.get("items").is_some() && !outer.contains_key("items") {
            self.fail(path, "items only inside a junctor (rule 2)");
        }
    }
}

fn is_int_or_string_branch(path: &str, obj: &serde_json::Map<String, Value>) -> bool {
    path.contains(".anyOf[")
        && obj.len() == 1
        && matches!(
            obj.get("type").and_then(Value::as_str),
            Some("integer" | "string")
        )
}

/// Collects every node that has a `default`, with its path.
fn defaults(path: &str, s: &Value, out: &mut Vec<(String, Value)>) {
    if s.get("default").is_some() {
        out.push((path.to_string(), s.clone()));
    }
    for (k, v) in s
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        defaults(&format!("{path}.{k}"), v, out);
    }
    if let Some(items) = s.get("items") {
        defaults(&format!("{path}[]"), items, out);
    }
    if let Some(ap @ Value::Object(_)) = s.get("additionalProperties") {
        defaults(&format!("{path}{{}}"), ap, out);
    }
}

#[test]
fn the_schema_is_structural() {
    let schema = open_api_v3_schema();
    let mut walk = Walk::default();
    walk.node("openAPIV3Schema", &schema, false);
    assert!(walk.nodes > 100, "walked only {} nodes", walk.nodes);
    assert!(
        walk.errors.is_empty(),
        "not structural:\n{}",
        walk.errors.join("\n")
    );

    // Rule 4: under `metadata` only restrictions of name/generateName, and no defaults.
    let metadata = &schema["properties"]["metadata"];
    for (k, v) in metadata.as_object().into_iter().flatten() {
        assert!(
            matches!(k.as_str(), "type" | "properties"),
            "metadata.{k}: {v}"
        );
    }
    for k in metadata["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        assert!(
            k == "name" || k == "generateName",
            "metadata.{k} may not be restricted"
        );
    }
    let mut found = Vec::new();
    defaults("metadata", metadata, &mut found);
    assert!(found.is_empty(), "defaults in metadata: {found:?}");
}

/// The walk is able to fail: a schema with each kind of violation is caught.
#[test]
fn the_structural_walk_catches_violations() {
    let bad = json!({
        "type": "object",
        "properties": {
            "untyped": {"description": "no type"},
            "ref": {"$ref": "#/definitions/X", "type": "object"},
            "both": {"type": "object", "properties": {"a": {"type": "string"}},
                     "additionalProperties": {"type": "string"}},
            "junctor": {"type": "object", "anyOf": [
                {"type": "string", "properties": {"hidden": {"type": "string"}}}
            ]},
            "unique": {"type": "array", "items": {"type": "string"}, "uniqueItems": true},
            "rule": {"type": "string", "x-kubernetes-validations": [{"rule": "self != ''"}]}
        }
    });
    let mut walk = Walk::default();
    walk.node("bad", &bad, false);
    let text = walk.errors.join("\n");
    for expected in [
        "bad.untyped: no valid `type`",
        "bad.ref: `$ref`",
        "bad.both: `additionalProperties` and `properties`",
        "bad.junctor.anyOf[0]: `type` inside",
        "bad.junctor.anyOf[0]: field hidden only inside a junctor",
        "bad.unique: `uniqueItems: true`",
        "bad.rule: x-kubernetes-validations[0] needs a one-line message",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}

#[test]
fn names_columns_and_subresources_are_as_documented() {
    let crd = crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("imagingjobs.aperture.dev")
    );
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(
        crd.spec.names.short_names.as_deref(),
        Some(&["ij".to_string()][..])
    );
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    assert!(
        v.subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some(),
        "status subresource"
    );
    let cols: Vec<(&str, &str)> = v
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.as_str(), c.json_path.as_str()))
        .collect();
    assert_eq!(
        cols,
        [
            ("Pipeline", ".spec.pipeline"),
            ("Phase", ".status.phase"),
            ("Cycle", ".status.cycle"),
            ("Progress", ".status.progress"),
            ("Age", ".metadata.creationTimestamp"),
        ]
    );
    // Every column but Age points at a field the schema has.
    let schema = open_api_v3_schema();
    for (_, path) in &cols[..4] {
        let mut node = &schema;
        for part in path.trim_start_matches('.').split('.') {
            node = &node["properties"][part];
        }
        assert!(
            node.get("type").is_some(),
            "column {path} names no schema field"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Defaults

/// The API server's defaulting (k8s.io/apiextensions-apiserver structuraldefaulting
/// `Default`): a missing property (or a null one that is not nullable) takes its
/// default, then every property present is defaulted in turn.
fn apply_defaults(schema: &Value, x: &mut Value) {
    match x {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, p) in props {
                    let Some(d) = p.get("default") else { continue };
                    let nullable = p.get("nullable") == Some(&Value::Bool(true));
                    let missing = match map.get(k) {
                        None => true,
                        Some(Value::Null) => !nullable,
                        Some(_) => false,
                    };
                    if missing {
                        map.insert(k.clone(), d.clone());
                    }
                }
                for (k, v) in map.iter_mut() {
                    if let Some(p) = props.get(k) {
                        apply_defaults(p, v);
                    }
                }
            } else if let Some(ap @ Value::Object(_)) = schema.get("additionalProperties") {
                for v in map.values_mut() {
                    apply_defaults(ap, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(it) = schema.get("items") {
                for v in items {
                    apply_defaults(it, v);
                }
            }
        }
        _ => {}
    }
}

/// What the API server stores for a manifest (schema defaults applied) is what `aperture
/// run` makes of it (serde defaults), field for field.
#[test]
fn schema_defaults_are_the_serde_defaults() {
    let schema = open_api_v3_schema();
    let header = "apiVersion: aperture.dev/v1alpha1\nkind: ImagingJob\nmetadata: {name: d}\n";
    for spec in [
        "spec:\n  input: {simulate: {}}\n",
        "spec:\n  pipeline: predict\n  input: {visibilities: s3://b/v.zarr}\n  predict: {modelImage: m.fits}\n  image: {weighting: {type: natural}}\n  deconvolution: {window: {type: noEdge}}\n  calibration: {T: {firstCycle: 2}, G: {firstCycle: 4, phaseOnly: true}}\n  parallelism: {maxParallel: 8}\n",
        "spec:\n  input: {simulate: {sky: {sources: 3}}}\n  workers: {image: w:1}\n",
    ] {
        let text = format!("{header}{spec}");
        let mut stored = to_json(&text, Path::new("inline"));
        apply_defaults(&schema, &mut stored);
        let job = parse_job(&text, "inline").expect("valid manifest");
        let rust = serde_json::to_value(&job.spec).expect("spec serialises");
        assert_eq!(
            stored["spec"], rust,
            "schema defaults differ from serde defaults for\n{spec}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Consistency with parse_job / validate()

#[test]
fn the_examples_are_valid_jobs() {
    let files = examples();
    assert!(files.len() >= 4, "examples: {files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable example");
        if let Err(e) = parse_job(&text, &name(&path)) {
            panic!("{}: {e}", path.display());
        }
    }
}

/// Every manifest the CRD rejects (schema or CEL) `aperture run` rejects too, naming the
/// same field.
#[test]
fn parse_job_rejects_every_broken_manifest_at_the_same_field() {
    let all: Vec<Broken> = broken("invalid")
        .into_iter()
        .chain(broken("invalid-cel"))
        .collect();
    assert!(all.len() >= 40, "only {} broken manifests", all.len());
    for b in all {
        match parse_job(&b.text, &name(&b.path)) {
            Ok(_) => panic!("{} ({}) was accepted by parse_job", name(&b.path), b.what),
            Err(e) => assert_eq!(e.field(), b.field, "{}: {e}", name(&b.path)),
        }
    }
}

// ---------------------------------------------------------------------------------------
// check-jsonschema

/// The check-jsonschema command, or `None` (after saying so) when it is not installed.
fn check_jsonschema() -> Option<PathBuf> {
    let exe = std::env::var_os("APERTURE_CHECK_JSONSCHEMA")
        .map_or_else(|| PathBuf::from("check-jsonschema"), PathBuf::from);
    let works = Command::new(&exe)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if works {
        return Some(exe);
    }
    let msg = format!(
        "check-jsonschema not found ({}): `pip install check-jsonschema`",
        exe.display()
    );
    if std::env::var("APERTURE_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("{msg} (APERTURE_REQUIRE_TOOLS=1)");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

/// One run of check-jsonschema over `files`: the errors it reports, as
/// `(file name, field path without "$.", message)`.
fn run_check(exe: &Path, schema: &Value, files: &[PathBuf]) -> Vec<(String, String, String)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let schema_file = dir.path().join("imagingjob.schema.json");
    std::fs::write(
        &schema_file,
        serde_json::to_vec_pretty(schema).expect("json"),
    )
    .expect("write schema");
    let out = Command::new(exe)
        .arg("--schemafile")
        .arg(&schema_file)
        .args(["--output-format", "json"])
        .args(files)
        .output()
        .expect("check-jsonschema runs");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "check-jsonschema printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let parse_errors = &report["parse_errors"];
    assert!(
        parse_errors.as_array().is_none_or(Vec::is_empty),
        "check-jsonschema could not read: {parse_errors}"
    );
    let errors: Vec<(String, String, String)> = report["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let file = e["filename"].as_str().unwrap_or_default();
            let path = e["path"].as_str().unwrap_or_default();
            (
                name(Path::new(file)),
                path.trim_start_matches("$.").to_string(),
                e["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    // Exit status and report agree: 0 with no errors, 1 with some.
    assert_eq!(
        out.status.code(),
        Some(i32::from(!errors.is_empty())),
        "{report}"
    );
    errors
}

#[test]
fn check_jsonschema_accepts_the_examples_and_a_fully_defaulted_job() {
    let Some(exe) = check_jsonschema() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    // Every field written out, as `aperture run` fills it from the serde defaults.
    let job = parse_job(
        "apiVersion: aperture.dev/v1alpha1\nkind: ImagingJob\nmetadata: {name: full}\nspec:\n  input: {simulate: {}}\n",
        "inline",
    )
    .expect("minimal job");
    let full = dir.path().join("full.json");
    std::fs::write(&full, serde_json::to_vec(&job).expect("json")).expect("write");
    let mut files = examples();
    files.push(full);
    let errors = run_check(&exe, &open_api_v3_schema(), &files);
    assert!(errors.is_empty(), "valid manifests rejected: {errors:#?}");
}

#[test]
fn check_jsonschema_rejects_each_invalid_manifest_at_its_field() {
    let Some(exe) = check_jsonschema() else {
        return;
    };
    let cases = broken("invalid");
    let files: Vec<PathBuf> = cases.iter().map(|b| b.path.clone()).collect();
    let errors = run_check(&exe, &open_api_v3_schema(), &files);
    for b in &cases {
        let mine: Vec<_> = errors
            .iter()
            .filter(|(f, _, _)| *f == name(&b.path))
            .collect();
        assert_eq!(mine.len(), 1, "{} ({}): {mine:#?}", name(&b.path), b.what);
        let (_, path, message) = mine[0];
        assert_eq!(path, &b.field, "{}: {message}", name(&b.path));
        assert!(
            message.contains(&b.expect),
            "{}: expected {:?} in {message:?}",
            name(&b.path),
            b.expect
        );
    }
}

/// The manifests of `invalid-cel/` break only CEL rules: the schema alone accepts them.
#[test]
fn check_jsonschema_accepts_the_manifests_only_cel_rejects() {
    let Some(exe) = check_jsonschema() else {
        return;
    };
    let files: Vec<PathBuf> = broken("invalid-cel").into_iter().map(|b| b.path).collect();
    let errors = run_check(&exe, &open_api_v3_schema(), &files);
    assert!(
        errors.is_empty(),
        "schema rejects CEL-only cases: {errors:#?}"
    );
}

/// Each `default` validates against the schema of its own node (docs, "Defaulting":
/// defaults must validate against the schema); checked in one run as the properties of
/// one object.
#[test]
fn every_default_validates_against_its_own_node() {
    let Some(exe) = check_jsonschema() else {
        return;
    };
    let mut found = Vec::new();
    defaults("", &open_api_v3_schema(), &mut found);
    assert!(found.len() > 30, "only {} defaults", found.len());
    let mut props = serde_json::Map::new();
    let mut instance = serde_json::Map::new();
    for (path, node) in &found {
        props.insert(path.clone(), node.clone());
        instance.insert(path.clone(), node["default"].clone());
    }
    let keys: Vec<&String> = props.keys().collect();
    let schema = json!({"type": "object", "properties": props, "required": keys});
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("defaults.json");
    std::fs::write(&file, serde_json::to_vec(&instance).expect("json")).expect("write");
    let errors = run_check(&exe, &schema, &[file]);
    assert!(
        errors.is_empty(),
        "defaults that fail their own schema: {errors:#?}"
    );
}
