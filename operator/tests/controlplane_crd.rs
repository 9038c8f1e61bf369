//! The CRD against a real kube-apiserver (started by the tests; see
//! docs/testing-kubernetes.md): `kubectl apply -f crds/` is accepted and the resource is
//! served with its short name; every example manifest is accepted; the broken manifests
//! of `crates/pipeline/tests/crd/` are rejected by the API server, the schema ones
//! naming their field, the CEL ones with the CRD's own message; an unknown field and a
//! wrong type are refused.
//!
//! Skips (passes with a message) without the control-plane binaries, unless
//! `APERTURE_REQUIRE_CONTROLPLANE=1`.

mod support;

use std::path::{Path, PathBuf};

use support::{Env, TestNs, env};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    v.sort();
    v
}

/// (expected substring, field) from a broken manifest's two header lines
/// (`# <what>; expect: "<substring>"`, `# field: <path>`).
fn header(text: &str) -> (String, String) {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    let second = lines.next().unwrap_or_default();
    let expect = first
        .split_once("; expect: \"")
        .and_then(|(_, e)| e.strip_suffix('"'))
        .unwrap_or_default()
        .to_string();
    let field = second
        .strip_prefix("# field: ")
        .unwrap_or_default()
        .to_string();
    (expect, field)
}

fn server_dry_run(env: &Env, ns: &TestNs, manifest: &str) -> support::Out {
    ns.kubectl(
        env,
        &["apply", "--dry-run=server", "--validate=strict", "-f", "-"],
        Some(manifest),
    )
}

#[test]
fn crd_applies_and_is_served_with_its_printer_columns() {
    let Some(env) = env() else { return };
    let out = env.kubectl(
        &["apply", "-f", &repo().join("crds").display().to_string()],
        None,
    );
    assert!(out.ok, "kubectl apply -f crds/: {}", out.stderr);
    assert!(
        out.stdout
            .contains("customresourcedefinition.apiextensions.k8s.io/imagingjobs.aperture.dev"),
        "{}",
        out.stdout
    );
    let out = env.kubectl(
        &[
            "get",
            "crd",
            "imagingjobs.aperture.dev",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Established\")].status} {.status.acceptedNames.shortNames}",
        ],
        None,
    );
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout.trim(), "True [\"ij\"]");
    let out = env.kubectl(
        &["api-resources", "--api-group=aperture.dev", "--no-headers"],
        None,
    );
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stdout.contains("imagingjobs")
            && out.stdout.contains(" ij ")
            && out.stdout.contains("ImagingJob"),
        "{}",
        out.stdout
    );
    // The printer columns, on an empty namespace too.
    let ns = TestNs::create(env, "crd-columns", None);
    let job = std::fs::read_to_string(repo().join("examples/invert-low.yaml")).expect("example");
    let out = ns.kubectl(env, &["apply", "-f", "-"], Some(&job));
    assert!(out.ok, "{}", out.stderr);
    let out = ns.kubectl(env, &["get", "ij"], None);
    assert!(out.ok, "{}", out.stderr);
    let head: Vec<&str> = out
        .stdout
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        head,
        ["NAME", "PIPELINE", "PHASE", "CYCLE", "PROGRESS", "AGE"],
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .lines()
            .nth(1)
            .unwrap_or_default()
            .starts_with("invert-low")
    );
}

#[test]
fn every_example_is_accepted() {
    let Some(env) = env() else { return };
    let ns = TestNs::create(env, "crd-examples", None);
    let examples = yaml_files(&repo().join("examples"));
    assert!(examples.len() >= 4, "examples: {examples:?}");
    for path in examples {
        let text = std::fs::read_to_string(&path).expect("example");
        let out = ns.kubectl(env, &["apply", "--validate=strict", "-f", "-"], Some(&text));
        assert!(
            out.ok,
            "{} was rejected by the API server:\n{}",
            path.display(),
            out.stderr
        );
        assert!(
            out.stdout.contains("imagingjob.aperture.dev/"),
            "{}",
            out.stdout
        );
    }
    let out = ns.kubectl(env, &["get", "imagingjobs", "-o", "name"], None);
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.lines().count() >= 4, "{}", out.stdout);
}

/// What the CRD's bound guard (`aperture_pipeline::spec::bound_guard`) on `field` says, if
/// it has one and `manifest` writes that field as an integer: kube-openapi compares an
/// integer value with `int64(minimum)` (`MinimumNativeType` in
/// k8s.io/kube-openapi/pkg/validation/validate/values.go), so `0` passes `minimum:
/// 0.0001` (kubectl sends YAML `0.0` as the integer `0` too) and only the guard, a CEL
/// rule, refuses it.
fn guard_message(manifest: &str, field: &str) -> Option<String> {
    let doc: serde_json::Value = serde_saphyr::from_str(manifest).ok()?;
    let mut value = &doc;
    let mut node = &aperture_pipeline::spec::open_api_v3_schema();
    let mut name = "";
    for part in field.split('.') {
        value = value.get(part)?;
        node = node.get("properties")?.get(part)?;
        name = part;
    }
    if !(value.is_i64() || value.is_u64()) {
        return None;
    }
    aperture_pipeline::spec::bound_guard(
        name,
        node.get("minimum").and_then(serde_json::Value::as_f64),
        node.get("maximum").and_then(serde_json::Value::as_f64),
    )
    .map(|g| g.message)
}

/// Each manifest the CRD's OpenAPI schema must refuse is refused, with an error naming
/// its field (the API server words the bound itself: "should be greater than or equal
/// to 2", not the JSON-Schema tools' "1 is less than the minimum of 2"); an integer below
/// a fractional minimum, with the message of the CRD's bound guard.
#[test]
fn schema_violations_are_rejected_naming_the_field() {
    let Some(env) = env() else { return };
    let ns = TestNs::create(env, "crd-schema", None);
    let mut problems = Vec::new();
    let files = yaml_files(&repo().join("crates/pipeline/tests/crd/invalid"));
    assert!(files.len() >= 20);
    let mut guarded = 0;
    for path in &files {
        let text = std::fs::read_to_string(path).expect("manifest");
        let (_, field) = header(&text);
        let out = server_dry_run(env, &ns, &text);
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if out.ok {
            problems.push(format!("{name}: accepted ({})", out.stdout.trim()));
        } else if !out.stderr.contains(&field) {
            problems.push(format!(
                "{name}: error does not name {field}: {}",
                out.stderr.trim()
            ));
        } else if let Some(m) = guard_message(&text, &field)
            && !out.stderr.contains(&m)
        {
            problems.push(format!(
                "{name}: expected the bound guard's {m:?}: {}",
                out.stderr.trim()
            ));
        }
        guarded += usize::from(guard_message(&text, &field).is_some());
    }
    // cellsize-zero, epsilon-zero, interval-zero, target-task-seconds-zero, taper-zero,
    // tolerance-zero: the cases only a bound guard catches on a cluster.
    assert!(guarded >= 6, "only {guarded} manifests test a bound guard");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The manifests only a CEL rule refuses are refused with that rule's message, at its
/// field: the rules compile in the API server and say what the CRD says.
#[test]
fn cel_violations_are_rejected_with_the_crds_messages() {
    let Some(env) = env() else { return };
    let ns = TestNs::create(env, "crd-cel", None);
    let mut problems = Vec::new();
    let files = yaml_files(&repo().join("crates/pipeline/tests/crd/invalid-cel"));
    assert!(files.len() >= 10);
    for path in &files {
        let text = std::fs::read_to_string(path).expect("manifest");
        let (expect, field) = header(&text);
        let out = server_dry_run(env, &ns, &text);
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if out.ok {
            problems.push(format!("{name}: accepted ({})", out.stdout.trim()));
        } else if !out.stderr.contains(&expect) || !out.stderr.contains(&field) {
            problems.push(format!(
                "{name}: expected {expect:?} at {field}, got: {}",
                out.stderr.trim()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The four kinds of mistake issue #7 names, each with the API server's exact words.
#[test]
fn two_inputs_fan_in_1_unknown_field_and_wrong_type_are_rejected() {
    let Some(env) = env() else { return };
    let ns = TestNs::create(env, "crd-broken", None);
    let base = "apiVersion: aperture.dev/v1alpha1
kind: ImagingJob
metadata: {name: broken}
spec:
  pipeline: invert
";
    let cases = [
        (
            "two inputs",
            format!(
                "{base}  input: {{visibilities: s3://b/v.zarr, simulate: {{telescope: LOW, rmax: 300, frequencyWindows: 2}}}}\n"
            ),
            vec!["spec.input", "not more"],
        ),
        (
            "fan-in 1",
            format!(
                "{base}  input: {{simulate: {{telescope: LOW, rmax: 300, frequencyWindows: 2}}}}\n  parallelism: {{reductionFanIn: 1}}\n"
            ),
            vec![
                "spec.parallelism.reductionFanIn",
                "should be greater than or equal to 2",
            ],
        ),
        (
            "unknown field",
            format!(
                "{base}  input: {{simulate: {{telescope: LOW, rmax: 300, frequencyWindows: 2}}}}\n  majorCylces: 3\n"
            ),
            vec!["unknown field", "spec.majorCylces"],
        ),
        (
            "wrong type",
            format!(
                "{base}  input: {{simulate: {{telescope: LOW, rmax: 300, frequencyWindows: 2}}}}\n  majorCycles: three\n"
            ),
            vec!["spec.majorCycles", "must be of type integer"],
        ),
    ];
    let mut problems = Vec::new();
    for (what, manifest, needles) in &cases {
        let out = server_dry_run(env, &ns, manifest);
        if out.ok {
            problems.push(format!("{what}: accepted"));
            continue;
        }
        for n in needles {
            if !out.stderr.contains(n) {
                problems.push(format!("{what}: {n:?} not in: {}", out.stderr.trim()));
            }
        }
    }
    // And the same job without the mistake is accepted, so each case tests its mistake.
    let good = format!(
        "{base}  input: {{simulate: {{telescope: LOW, rmax: 300, frequencyWindows: 2}}}}\n"
    );
    let out = server_dry_run(env, &ns, &good);
    assert!(
        out.ok,
        "the valid base manifest was rejected: {}",
        out.stderr
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
