//! The Helm chart `helm/aperture/`, checked offline: `helm lint --strict`; `helm template`
//! with the default values and every scenario in `helm/aperture/ci/`, each rendered
//! manifest validated by `kubernetes-validate --strict` at the oldest Kubernetes the chart
//! supports and the newest the tool knows; every values file in `ci/invalid/` refused with
//! the schema's message; the RBAC rules equal to the API calls the operator's code makes;
//! the Deployment's flags and environment accepted by the real `aperture-operator`
//! binary; the chart's CRD byte-identical to `crds/imagingjob.yaml`.
//!
//! helm comes from PATH or `APERTURE_HELM` (`scripts/install-helm.sh` installs a pinned
//! one), kubernetes-validate from PATH or `APERTURE_KUBERNETES_VALIDATE`. Without them the
//! tests that need them print a skip message and pass, unless `APERTURE_REQUIRE_TOOLS=1`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use aperture_operator::jobs::{APP_NAME, MANAGED_BY};
use aperture_pipeline::spec::parse_job;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, ResourceRequirements};
use serde_json::Value;

/// Release name and namespace of every rendering (the full name is then `aperture`).
const RELEASE: &str = "aperture";
const NAMESPACE: &str = "imaging";
/// The oldest Kubernetes the chart declares (`kubeVersion` in Chart.yaml).
const MIN_KUBERNETES: &str = "1.31.0";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chart() -> PathBuf {
    repo().join("helm/aperture")
}

fn require_tools() -> bool {
    std::env::var("APERTURE_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// `Some(program)` when it runs; otherwise a skip message (or a failure under
/// `APERTURE_REQUIRE_TOOLS=1`) and `None`.
fn tool(env: &str, default: &str, probe: &str, install: &str) -> Option<String> {
    let program = std::env::var(env).unwrap_or_else(|_| default.into());
    let runs = Command::new(&program)
        .arg(probe)
        .output()
        .is_ok_and(|o| o.status.success());
    if runs {
        return Some(program);
    }
    let msg = format!("{program} not found ({install})");
    assert!(!require_tools(), "APERTURE_REQUIRE_TOOLS=1 but {msg}");
    eprintln!("skipped: {msg}");
    None
}

fn helm() -> Option<String> {
    tool(
        "APERTURE_HELM",
        "helm",
        "version",
        "export PATH=\"$(scripts/install-helm.sh):$PATH\"",
    )
}

fn kubernetes_validate() -> Option<String> {
    tool(
        "APERTURE_KUBERNETES_VALIDATE",
        "kubernetes-validate",
        "--version",
        "pip install kubernetes-validate",
    )
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `helm template` of the chart with these values files and `--set`s, CRDs included.
fn render(helm: &str, values: &[PathBuf], sets: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new(helm);
    cmd.args(["template", RELEASE])
        .arg(chart())
        .args(["--namespace", NAMESPACE, "--include-crds"]);
    for v in values {
        cmd.arg("--values").arg(v);
    }
    for s in sets {
        cmd.args(["--set", s]);
    }
    let out = cmd.output().expect("helm runs");
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).expect("UTF-8 manifests"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Renders or fails the test with helm's message.
fn rendered(helm: &str, values: &[PathBuf], sets: &[&str]) -> Vec<Value> {
    let yaml = render(helm, values, sets)
        .unwrap_or_else(|e| panic!("helm template {values:?} {sets:?} failed:\n{e}"));
    documents(&yaml)
}

/// The documents of a multi-document YAML stream; a duplicate key is an error.
fn documents(yaml: &str) -> Vec<Value> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(yaml).unwrap_or_else(|e| panic!("rendered YAML: {e}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// The scenario values files `helm/aperture/ci/*-values.yaml`, sorted.
fn scenarios() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart().join("ci"))
        .expect("helm/aperture/ci/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with("-values.yaml"))
        .collect();
    files.sort();
    files
}

fn scenario(name: &str) -> PathBuf {
    chart().join("ci").join(format!("{name}-values.yaml"))
}

fn kind(d: &Value) -> &str {
    d["kind"].as_str().unwrap_or_default()
}

fn name(d: &Value) -> &str {
    d["metadata"]["name"].as_str().unwrap_or_default()
}

fn namespace(d: &Value) -> &str {
    d["metadata"]["namespace"].as_str().unwrap_or_default()
}

fn of_kind<'a>(docs: &'a [Value], k: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| kind(d) == k).collect()
}

fn one<'a>(docs: &'a [Value], k: &str, n: &str) -> &'a Value {
    let found: Vec<&Value> = docs
        .iter()
        .filter(|d| kind(d) == k && name(d) == n)
        .collect();
    assert_eq!(found.len(), 1, "exactly one {k} {n} in {:?}", summary(docs));
    found[0]
}

fn summary(docs: &[Value]) -> Vec<String> {
    docs.iter()
        .map(|d| format!("{}/{}@{}", kind(d), name(d), namespace(d)))
        .collect()
}

fn deployment(docs: &[Value]) -> (Deployment, Container) {
    let d: Deployment = serde_json::from_value(one(docs, "Deployment", RELEASE).clone())
        .expect("the Deployment is an apps/v1 Deployment");
    let pod = d.spec.template.spec.clone().expect("pod spec");
    assert_eq!(pod.containers.len(), 1, "one container");
    let c = pod.containers[0].clone();
    (d, c)
}

/// The literal environment variables of a container (`valueFrom` ones left out).
fn literal_env(c: &Container) -> BTreeMap<String, String> {
    c.env
        .iter()
        .flatten()
        .filter_map(|e| e.value.clone().map(|v| (e.name.clone(), v)))
        .collect()
}

fn arg<'a>(c: &'a Container, flag: &str) -> Option<&'a str> {
    let prefix = format!("{flag}=");
    c.args
        .iter()
        .flatten()
        .find_map(|a| a.strip_prefix(prefix.as_str()))
}

// ---------------------------------------------------------------------------------------
// Without tools

#[test]
fn chart_versions_follow_the_workspace() {
    let text = std::fs::read_to_string(chart().join("Chart.yaml")).expect("Chart.yaml");
    let c: Value = serde_saphyr::from_str(&text).expect("Chart.yaml parses");
    let v = env!("CARGO_PKG_VERSION");
    assert_eq!(c["version"], v, "Chart.yaml version = workspace version");
    assert_eq!(
        c["appVersion"], v,
        "Chart.yaml appVersion = workspace version"
    );
    assert_eq!(
        c["kubeVersion"].as_str(),
        Some(format!(">={MIN_KUBERNETES}-0").as_str()),
        "the kubeVersion the manifests are validated at"
    );
}

#[test]
fn chart_crd_is_the_generated_crd() {
    let want = std::fs::read(repo().join("crds/imagingjob.yaml")).expect("crds/imagingjob.yaml");
    let link = chart().join("crds/imagingjob.yaml");
    let got = std::fs::read(&link).expect("helm/aperture/crds/imagingjob.yaml");
    assert!(
        got == want,
        "helm/aperture/crds/imagingjob.yaml differs from crds/imagingjob.yaml; it should be \
         the symlink ../../../crds/imagingjob.yaml"
    );
    // What users install is the packaged chart: helm must put the file's bytes in it
    // (it follows the symlink), not a link or nothing.
    let Some(helm) = helm() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(&helm)
        .arg("package")
        .arg(chart())
        .arg("--destination")
        .arg(dir.path())
        .output()
        .expect("helm package runs");
    assert!(out.status.success(), "helm package:\n{}", text(&out));
    let tgz = dir
        .path()
        .join(format!("aperture-{}.tgz", env!("CARGO_PKG_VERSION")));
    let out = Command::new("tar")
        .arg("-xzOf")
        .arg(&tgz)
        .arg("aperture/crds/imagingjob.yaml")
        .output()
        .expect("tar runs");
    assert!(out.status.success(), "tar {tgz:?}:\n{}", text(&out));
    assert!(
        out.stdout == want,
        "the packaged chart's crds/imagingjob.yaml ({} bytes) differs from crds/imagingjob.yaml ({} bytes)",
        out.stdout.len(),
        want.len()
    );
}

#[test]
fn e2e_jobs_are_valid_and_match_the_e2e_install() {
    let e2e = repo().join("tests/e2e");
    let values: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(e2e.join("values.yaml")).expect("tests/e2e/values.yaml"),
    )
    .expect("values parse");
    let secret = values["objectStore"]["credentials"]["secretName"]
        .as_str()
        .expect("the e2e values name the Secret");
    let kind_config = std::fs::read_to_string(e2e.join("kind-config.yaml")).expect("kind config");
    for file in ["ical-small.yaml", "ical-chaos.yaml"] {
        let path = e2e.join(file);
        let text = std::fs::read_to_string(&path).expect("e2e job");
        let job =
            parse_job(&text, &path.display().to_string()).unwrap_or_else(|e| panic!("{file}: {e}"));
        let name = job.metadata.name.clone().expect("name");
        assert_eq!(
            job.spec.output.as_deref(),
            Some(format!("s3://aperture-e2e/{name}/").as_str()),
            "{file}: output in the e2e bucket under its name (run.sh checks it there)"
        );
        assert_eq!(
            job.spec.storage.credentials_secret.as_deref(),
            Some(secret),
            "{file}: the Secret the chart creates"
        );
        for (k, v) in &job.spec.workers.node_selector {
            assert!(
                kind_config.contains(&format!("{k}: {v}")),
                "{file}: nodeSelector {k}={v} matches no node of kind-config.yaml"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// helm lint and the schema

#[test]
fn helm_lint_strict_passes_for_every_scenario() {
    let Some(helm) = helm() else { return };
    let mut runs = vec![None];
    runs.extend(scenarios().into_iter().map(Some));
    for values in &runs {
        let mut cmd = Command::new(&helm);
        cmd.args(["lint", "--strict"]).arg(chart());
        if let Some(v) = values {
            cmd.arg("--values").arg(v);
        }
        let out = cmd.output().expect("helm lint runs");
        assert!(
            out.status.success() && text(&out).contains("0 chart(s) failed"),
            "helm lint --strict {values:?}:\n{}",
            text(&out)
        );
    }
    assert!(runs.len() >= 7, "default + 6 scenarios, got {}", runs.len());
}

#[test]
fn invalid_values_fail_with_the_schema_message() {
    let Some(helm) = helm() else { return };
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart().join("ci/invalid"))
        .expect("helm/aperture/ci/invalid/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "only {} invalid values files",
        files.len()
    );
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read");
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{file:?}: first line must be `# expect: <message>`"));
        match render(&helm, std::slice::from_ref(file), &[]) {
            Ok(_) => panic!("{file:?}: helm template accepted it"),
            Err(stderr) => assert!(
                stderr.contains("don't meet the specifications of the schema")
                    && stderr.contains(expect),
                "{file:?}: expected the schema's message containing {expect:?}, got:\n{stderr}"
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------
// kubernetes-validate

/// kubernetes-validate's newest Kubernetes (`Defaults to 1.37.0.` in its --help).
fn newest_version(tool: &str) -> Option<String> {
    let out = Command::new(tool).arg("--help").output().ok()?;
    let help = String::from_utf8_lossy(&out.stdout).replace('\n', " ");
    let at = help.find("Defaults to")?;
    Some(
        help[at + "Defaults to".len()..]
            .split_whitespace()
            .next()?
            .trim_end_matches('.')
            .to_string(),
    )
}

fn validate(tool: &str, version: &str, files: &[PathBuf]) -> (bool, String) {
    let out = Command::new(tool)
        .args(["--strict", "-k", version])
        .args(files)
        .output()
        .expect("kubernetes-validate runs");
    (out.status.success(), text(&out))
}

#[test]
fn every_rendered_manifest_passes_kubernetes_validate() {
    let Some(helm) = helm() else { return };
    let Some(kv) = kubernetes_validate() else {
        return;
    };
    let newest = newest_version(&kv).expect("kubernetes-validate --help names its default");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut files = Vec::new();
    let mut resources = 0;
    let mut service_monitors = 0;
    let mut runs: Vec<(String, Vec<PathBuf>, Vec<&str>)> = vec![("default".into(), vec![], vec![])];
    runs.extend(scenarios().into_iter().map(|p| {
        let n = p.file_stem().expect("stem").to_string_lossy().into_owned();
        (n, vec![p], vec![])
    }));
    // The install of the kind end-to-end test, as tests/e2e/run.sh makes it.
    runs.push((
        "e2e".into(),
        vec![repo().join("tests/e2e/values.yaml")],
        vec![
            "objectStore.credentials.accessKeyId=e2e-key",
            "objectStore.credentials.secretAccessKey=e2e-secret",
            "networkPolicy.enabled=true",
            "networkPolicy.apiServer.cidrs={172.18.0.2/32}",
        ],
    ));
    for (label, values, sets) in &runs {
        let docs = rendered(&helm, values, sets);
        assert!(
            docs.iter().any(|d| kind(d) == "CustomResourceDefinition"),
            "{label}: the CRD is rendered"
        );
        // kubernetes-validate has no schema for the Prometheus Operator's ServiceMonitor
        // (a CRD of its own): it is left out here and checked structurally in
        // `service_monitor_and_network_policies_select_the_right_pods`.
        let (monitors, rest): (Vec<Value>, Vec<Value>) =
            docs.into_iter().partition(|d| kind(d) == "ServiceMonitor");
        service_monitors += monitors.len();
        for (i, d) in rest.iter().enumerate() {
            let path = dir.path().join(format!("{label}-{i:02}-{}.yaml", kind(d)));
            std::fs::write(&path, serde_saphyr::to_string(d).expect("YAML")).expect("write");
            files.push(path);
            resources += 1;
        }
    }
    assert_eq!(
        service_monitors, 1,
        "only the servicemonitor scenario renders one"
    );
    for version in [MIN_KUBERNETES, newest.as_str()] {
        let (ok, out) = validate(&kv, version, &files);
        assert!(
            ok,
            "kubernetes-validate --strict -k {version} refused:\n{out}"
        );
        let passed = out.matches(" passed for resource ").count();
        assert_eq!(
            passed, resources,
            "every resource validated at {version}:\n{out}"
        );
    }

    // Control: the same check refuses a Deployment with a misspelt field.
    let docs = rendered(&helm, &[], &[]);
    let mut bad = one(&docs, "Deployment", RELEASE).clone();
    bad["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] =
        bad["spec"]["template"]["spec"]["containers"][0]["readinessProbe"].take();
    let path = dir.path().join("control-bad.yaml");
    std::fs::write(&path, serde_saphyr::to_string(&bad).expect("YAML")).expect("write");
    let (ok, out) = validate(&kv, &newest, &[path]);
    assert!(
        !ok && out.contains("readinesProbe"),
        "control not refused:\n{out}"
    );
    eprintln!(
        "kubernetes-validate --strict -k {MIN_KUBERNETES} and -k {newest}: {resources} \
         resources of {} renderings passed ({service_monitors} ServiceMonitor skipped)",
        runs.len()
    );
}

// ---------------------------------------------------------------------------------------
// RBAC = the operator's API calls

type Grant = (String, String, String);

/// Every (apiGroup, resource, verb) the operator's code needs where it watches
/// ImagingJobs, with the call site: (group, resource, verb, file in operator/src, a
/// snippet of the call that must still be in that file).
const WATCH_SCOPE: &[(&str, &str, &str, &str, &str)] = &[
    // controller.rs: check_crd lists once; the Controller's watcher lists and watches.
    (
        "aperture.dev",
        "imagingjobs",
        "list",
        "controller.rs",
        "api.list(&ListParams::default().limit(1))",
    ),
    (
        "aperture.dev",
        "imagingjobs",
        "watch",
        "controller.rs",
        "Controller::new(jobs",
    ),
    // reconcile.rs: kube-runtime's finalizer() adds and removes aperture.dev/cleanup with
    // a JSON patch (kube-runtime 5 finalizer.rs: api.patch(.., Patch::Json(..))).
    (
        "aperture.dev",
        "imagingjobs",
        "patch",
        "reconcile.rs",
        "finalizer(&api, FINALIZER",
    ),
    // cluster.rs apply_status: server-side apply on the status subresource.
    (
        "aperture.dev",
        "imagingjobs/status",
        "patch",
        "cluster.rs",
        "api.patch_status(name",
    ),
    // jobs.rs: stage Jobs' owner reference has blockOwnerDeletion: true, which the
    // OwnerReferencesPermissionEnforcement admission plugin allows only to a user that
    // can update the owner's finalizers (Kubernetes docs, "Admission controllers").
    (
        "aperture.dev",
        "imagingjobs/finalizers",
        "update",
        "jobs.rs",
        "block_owner_deletion: Some(true)",
    ),
    // cluster.rs stage_jobs, and the Controller's .owns(stage_jobs) watcher.
    ("batch", "jobs", "list", "cluster.rs", "api.list(&lp)"),
    ("batch", "jobs", "watch", "controller.rs", ".owns("),
    // cluster.rs apply_job: server-side apply; when the Job does not exist yet the API
    // server authorizes it as create (Kubernetes docs, "Server-Side Apply").
    ("batch", "jobs", "create", "cluster.rs", "Patch::Apply(job)"),
    ("batch", "jobs", "patch", "cluster.rs", "Patch::Apply(job)"),
    // cluster.rs delete_job (failure, cleanup on deletion).
    (
        "batch",
        "jobs",
        "delete",
        "cluster.rs",
        "api.delete(name, &dp)",
    ),
    // cluster.rs failed_pod_message: the failed pods of a stage Job.
    (
        "",
        "pods",
        "list",
        "cluster.rs",
        ".fields(\"status.phase=Failed\")",
    ),
    // cluster.rs secret_data: the credentials Secret (rbac.readSecrets).
    ("", "secrets", "get", "cluster.rs", "api.get_opt(name)"),
    // cluster.rs event: kube-runtime's Recorder::publish creates an events.k8s.io/v1
    // Event, and patches it when the same event repeats (kube-runtime 5 events.rs).
    (
        "events.k8s.io",
        "events",
        "create",
        "cluster.rs",
        "self.recorder.publish(",
    ),
    (
        "events.k8s.io",
        "events",
        "patch",
        "cluster.rs",
        "self.recorder.publish(",
    ),
];

/// leader.rs: every round GETs the Lease, creates it when missing, replaces (PUT =
/// update) it to renew, take over or release; in the operator's own namespace.
const LEASE: &[(&str, &str, &str, &str, &str)] = &[
    (
        "coordination.k8s.io",
        "leases",
        "get",
        "leader.rs",
        ".get_opt(&self.name)",
    ),
    (
        "coordination.k8s.io",
        "leases",
        "create",
        "leader.rs",
        "self.api.create(&PostParams::default(), &lease)",
    ),
    (
        "coordination.k8s.io",
        "leases",
        "update",
        "leader.rs",
        ".replace(&self.name, &PostParams::default()",
    ),
];

fn expected(list: &[(&str, &str, &str, &str, &str)], secrets: bool) -> BTreeSet<Grant> {
    list.iter()
        .filter(|(_, r, ..)| secrets || *r != "secrets")
        .map(|(g, r, v, ..)| (g.to_string(), r.to_string(), v.to_string()))
        .collect()
}

/// The grants of a Role's or ClusterRole's rules; wildcards are refused.
fn grants(role: &Value) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|s| s.as_str().expect("a string").to_string())
            .collect()
    };
    for rule in role["rules"].as_array().expect("rules") {
        for g in strings(&rule["apiGroups"]) {
            for r in strings(&rule["resources"]) {
                for v in strings(&rule["verbs"]) {
                    assert!(
                        g != "*" && r != "*" && v != "*",
                        "wildcard in {}: {rule}",
                        name(role)
                    );
                    out.insert((g.clone(), r.clone(), v));
                }
            }
        }
    }
    out
}

fn rule_for<'a>(role: &'a Value, resource: &str) -> Vec<&'a Value> {
    role["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter(|r| {
            r["resources"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == resource))
        })
        .collect()
}

#[test]
fn rbac_grants_exactly_what_the_operator_calls() {
    // The call sites are still there (a removed call makes its grant stale).
    for (g, r, v, file, snippet) in WATCH_SCOPE.iter().chain(LEASE) {
        let src =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(file))
                .unwrap_or_else(|e| panic!("operator/src/{file}: {e}"));
        assert!(
            src.contains(snippet),
            "({g:?}, {r}, {v}): the call `{snippet}` is no longer in operator/src/{file}; \
             update the list and the chart's rules"
        );
    }
    let Some(helm) = helm() else { return };

    // Namespace scope, the watched namespace ≠ the release namespace.
    let docs = rendered(&helm, &[], &["watchNamespace=survey"]);
    assert!(
        of_kind(&docs, "ClusterRole").is_empty(),
        "no ClusterRole in namespace scope"
    );
    assert!(of_kind(&docs, "ClusterRoleBinding").is_empty());
    let role = one(&docs, "Role", RELEASE);
    assert_eq!(
        namespace(role),
        "survey",
        "the Role is in the watched namespace"
    );
    assert_eq!(
        grants(role),
        expected(WATCH_SCOPE, true),
        "namespace-scope Role"
    );
    let binding = one(&docs, "RoleBinding", RELEASE);
    assert_eq!(namespace(binding), "survey");
    assert_eq!(binding["roleRef"]["kind"], "Role");
    assert_eq!(binding["roleRef"]["name"], RELEASE);
    assert_eq!(
        binding["subjects"],
        serde_json::json!([{"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}])
    );
    check_lease_role(&docs);
    let (_, c) = deployment(&docs);
    assert_eq!(
        arg(&c, "--namespace"),
        Some("survey"),
        "the operator watches that namespace"
    );

    // Cluster scope.
    let docs = rendered(
        &helm,
        &[scenario("cluster-scope")],
        &["rbac.secretNames=null"],
    );
    assert!(
        of_kind(&docs, "Role")
            .iter()
            .all(|r| name(r) == "aperture-leader-election"),
        "cluster scope: the only Role is the Lease's"
    );
    let cr = one(&docs, "ClusterRole", RELEASE);
    assert_eq!(
        grants(cr),
        expected(WATCH_SCOPE, true),
        "cluster-scope ClusterRole"
    );
    let crb = one(&docs, "ClusterRoleBinding", RELEASE);
    assert_eq!(crb["roleRef"]["kind"], "ClusterRole");
    assert_eq!(crb["subjects"][0]["name"], RELEASE);
    assert_eq!(crb["subjects"][0]["namespace"], NAMESPACE);
    check_lease_role(&docs);
    let (_, c) = deployment(&docs);
    assert_eq!(
        arg(&c, "--namespace"),
        Some(""),
        "cluster scope: every namespace"
    );

    // Secrets: limited to names, or not granted at all.
    let docs = rendered(&helm, &[scenario("cluster-scope")], &[]);
    let secrets = rule_for(one(&docs, "ClusterRole", RELEASE), "secrets");
    assert_eq!(secrets.len(), 1);
    assert_eq!(
        secrets[0]["resourceNames"],
        serde_json::json!(["object-store"])
    );
    let docs = rendered(&helm, &[], &["rbac.readSecrets=false"]);
    assert_eq!(
        grants(one(&docs, "Role", RELEASE)),
        expected(WATCH_SCOPE, false),
        "readSecrets=false"
    );

    // The workers' ServiceAccount: no token, bound to nothing.
    for docs in [
        rendered(&helm, &[], &[]),
        rendered(&helm, &[scenario("cluster-scope")], &[]),
    ] {
        let workers: Vec<&Value> = of_kind(&docs, "ServiceAccount")
            .into_iter()
            .filter(|s| name(s) == "aperture-worker")
            .collect();
        assert!(!workers.is_empty(), "a worker ServiceAccount");
        for sa in &workers {
            assert_eq!(
                sa["automountServiceAccountToken"],
                false,
                "{}",
                namespace(sa)
            );
        }
        for b in of_kind(&docs, "RoleBinding")
            .into_iter()
            .chain(of_kind(&docs, "ClusterRoleBinding"))
        {
            for s in b["subjects"].as_array().expect("subjects") {
                assert_ne!(
                    s["name"],
                    "aperture-worker",
                    "{} binds the workers",
                    name(b)
                );
            }
        }
    }

    // No RBAC at all when asked.
    let docs = rendered(&helm, &[], &["rbac.create=false"]);
    for k in ["Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"] {
        assert!(
            of_kind(&docs, k).is_empty(),
            "rbac.create=false renders a {k}"
        );
    }
}

/// The Lease's Role: in the release namespace, exactly get/create/update on leases,
/// get and update limited to the Lease's name, bound to the operator's ServiceAccount.
fn check_lease_role(docs: &[Value]) {
    let role = one(docs, "Role", "aperture-leader-election");
    assert_eq!(
        namespace(role),
        NAMESPACE,
        "the Lease's Role is in the release namespace"
    );
    assert_eq!(grants(role), expected(LEASE, true), "leader-election Role");
    for rule in role["rules"].as_array().expect("rules") {
        let verbs = rule["verbs"].as_array().expect("verbs");
        if verbs.iter().any(|v| v == "get" || v == "update") {
            assert_eq!(
                rule["resourceNames"],
                serde_json::json!(["aperture-operator"])
            );
        }
    }
    let b = one(docs, "RoleBinding", "aperture-leader-election");
    assert_eq!(namespace(b), NAMESPACE);
    assert_eq!(b["roleRef"]["name"], "aperture-leader-election");
    assert_eq!(b["subjects"][0]["name"], RELEASE);
}

// ---------------------------------------------------------------------------------------
// The Deployment

/// Runs the real operator binary with the container's args and literal environment and
/// no Kubernetes configuration: it must get past parsing its flags and environment
/// (including APERTURE_WORKER_RESOURCES) and stop at "cannot reach the Kubernetes API".
fn operator_accepts(c: &Container, label: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_aperture-operator"))
        .args(c.args.iter().flatten())
        .env_clear()
        .envs(literal_env(c))
        .env("KUBECONFIG", "/nonexistent/aperture-helm-test")
        .output()
        .expect("aperture-operator runs");
    let t = text(&out);
    assert!(
        out.status.code() == Some(1) && t.contains("cannot reach the Kubernetes API"),
        "{label}: aperture-operator refused the chart's flags or environment \
         ({:?}):\n{t}",
        out.status
    );
}

#[test]
fn deployment_maps_values_onto_the_operator() {
    let Some(helm) = helm() else { return };

    // Defaults: leader election, probes, restricted security context.
    let docs = rendered(&helm, &[], &[]);
    let (d, c) = deployment(&docs);
    operator_accepts(&c, "default");
    let spec = d.spec.clone();
    assert_eq!(spec.replicas, Some(1));
    let pod = spec.template.spec.clone().expect("pod");
    assert_eq!(c.command, Some(vec!["aperture-operator".to_string()]));
    assert_eq!(arg(&c, "--namespace"), Some(NAMESPACE));
    assert_eq!(arg(&c, "--leader-election"), Some("true"));
    assert_eq!(arg(&c, "--lease-name"), Some("aperture-operator"));
    assert_eq!(arg(&c, "--worker-image"), Some("aperture-worker:0.1.0"));
    assert_eq!(arg(&c, "--worker-service-account"), Some("aperture-worker"));
    assert_eq!(
        c.image.as_deref(),
        Some(format!("aperture-operator:{}", env!("CARGO_PKG_VERSION")).as_str())
    );
    let field = |n: &str| {
        c.env
            .iter()
            .flatten()
            .find(|e| e.name == n)
            .and_then(|e| e.value_from.clone())
            .and_then(|f| f.field_ref)
            .map(|f| f.field_path)
    };
    assert_eq!(field("APERTURE_POD_NAME").as_deref(), Some("metadata.name"));
    assert_eq!(
        field("APERTURE_POD_NAMESPACE").as_deref(),
        Some("metadata.namespace")
    );
    let port = c
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("metrics"))
        .expect("metrics port");
    assert_eq!(
        arg(&c, "--listen"),
        Some(format!("0.0.0.0:{}", port.container_port).as_str())
    );
    let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        let h = p.clone().and_then(|p| p.http_get).expect("an HTTP probe");
        assert_eq!(
            serde_json::to_value(&h.port).expect("port"),
            serde_json::json!("metrics"),
            "probes on the metrics port"
        );
        h.path
    };
    assert_eq!(probe_path(&c.liveness_probe).as_deref(), Some("/healthz"));
    assert_eq!(probe_path(&c.readiness_probe).as_deref(), Some("/readyz"));
    // The restricted Pod Security Standard.
    let psc = pod.security_context.clone().expect("pod securityContext");
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(
        psc.seccomp_profile.map(|s| s.type_).as_deref(),
        Some("RuntimeDefault")
    );
    let sc = c
        .security_context
        .clone()
        .expect("container securityContext");
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(
        sc.capabilities.and_then(|c| c.drop),
        Some(vec!["ALL".to_string()])
    );
    assert!(
        c.resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .is_some_and(|l| l.contains_key("memory"))
    );
    assert!(c.env_from.is_none(), "no object-store Secret by default");
    assert!(of_kind(&docs, "Secret").is_empty(), "no Secret by default");

    // Cluster scope, two replicas.
    let docs = rendered(&helm, &[scenario("cluster-scope")], &[]);
    let (d, c) = deployment(&docs);
    operator_accepts(&c, "cluster-scope");
    assert_eq!(d.spec.replicas, Some(2));
    let sa_namespaces: BTreeSet<&str> = of_kind(&docs, "ServiceAccount")
        .into_iter()
        .filter(|s| name(s) == "aperture-worker")
        .map(namespace)
        .collect();
    assert_eq!(sa_namespaces, BTreeSet::from(["imaging", "survey"]));

    // Placement, images, default worker resources, OTLP.
    let docs = rendered(&helm, &[scenario("placement")], &[]);
    let (d, c) = deployment(&docs);
    operator_accepts(&c, "placement");
    let pod = d.spec.template.spec.expect("pod");
    assert!(pod.node_selector.is_some() && pod.tolerations.is_some() && pod.affinity.is_some());
    assert!(pod.topology_spread_constraints.is_some());
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("system-cluster-critical")
    );
    assert!(c.image.as_deref().is_some_and(|i| i.ends_with(
        "aperture-operator@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    )));
    assert_eq!(
        arg(&c, "--worker-image"),
        Some("registry.example.org:5000/radio/aperture-worker:0.1.0-rc1")
    );
    assert_eq!(
        arg(&c, "--worker-image-pull-policy"),
        None,
        "\"\" leaves Kubernetes' default"
    );
    assert_eq!(
        arg(&c, "--worker-image-pull-secrets"),
        Some("regcred,mirror")
    );
    assert_eq!(arg(&c, "--worker-cpu"), Some("2"));
    let env = literal_env(&c);
    let res: ResourceRequirements = serde_json::from_str(&env["APERTURE_WORKER_RESOURCES"])
        .expect("APERTURE_WORKER_RESOURCES is a ResourceRequirements");
    let limits = res.limits.expect("limits");
    assert_eq!(limits["memory"].0, "64Gi");
    assert_eq!(limits["ephemeral-storage"].0, "4Gi");
    let requests = res.requests.expect("requests");
    assert_eq!(requests["ephemeral-storage"].0, "1Gi");
    assert_eq!(requests["cpu"].0, "0.5");
    let raw: Value = serde_json::from_str(&env["APERTURE_WORKER_RESOURCES"]).expect("JSON");
    assert_eq!(
        raw["requests"]["cpu"], "0.5",
        "a YAML number becomes a quantity string, as the API writes quantities"
    );
    assert_eq!(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT").map(String::as_str),
        Some("http://otel-collector.observability:4318")
    );
    assert_eq!(
        env.get("AWS_CONNECT_TIMEOUT").map(String::as_str),
        Some("10s")
    );

    // Worker placement, hostNetwork and the phase-span budget: by default the operator
    // gets none of them; the scenario's values reach it as flags and JSON it parses.
    let (_, c) = deployment(&rendered(&helm, &[], &[]));
    let env = literal_env(&c);
    for flag in ["--worker-host-network", "--worker-trace-phase-spans"] {
        assert_eq!(arg(&c, flag), None, "{flag} by default");
    }
    for var in [
        "APERTURE_WORKER_NODE_SELECTOR",
        "APERTURE_WORKER_TOLERATIONS",
        "APERTURE_WORKER_AFFINITY",
    ] {
        assert!(!env.contains_key(var), "{var} by default");
    }
    let docs = rendered(&helm, &[scenario("worker-placement")], &[]);
    let (_, c) = deployment(&docs);
    operator_accepts(&c, "worker-placement");
    assert_eq!(arg(&c, "--worker-host-network"), Some("true"));
    assert_eq!(arg(&c, "--worker-trace-phase-spans"), Some("200"));
    let env = literal_env(&c);
    let json = |var: &str| -> Value {
        serde_json::from_str(env.get(var).unwrap_or_else(|| panic!("{var} is set")))
            .unwrap_or_else(|e| panic!("{var} is JSON: {e}"))
    };
    assert_eq!(
        json("APERTURE_WORKER_NODE_SELECTOR"),
        serde_json::json!({"aperture.dev/worker-pool": "bare-metal"})
    );
    let tolerations: Vec<k8s_openapi::api::core::v1::Toleration> =
        serde_json::from_value(json("APERTURE_WORKER_TOLERATIONS")).expect("Tolerations");
    assert_eq!(tolerations.len(), 1);
    assert_eq!(tolerations[0].value.as_deref(), Some("imaging"));
    let affinity: k8s_openapi::api::core::v1::Affinity =
        serde_json::from_value(json("APERTURE_WORKER_AFFINITY")).expect("an Affinity");
    assert!(affinity.node_affinity.is_some());
    // A large budget is rendered as an integer, not in float notation.
    let (_, c) = deployment(&rendered(&helm, &[], &["workers.tracePhaseSpans=1000000"]));
    assert_eq!(arg(&c, "--worker-trace-phase-spans"), Some("1000000"));
    operator_accepts(&c, "tracePhaseSpans=1000000");

    // Existing Secret: envFrom, the endpoint from values, no Secret rendered.
    let docs = rendered(&helm, &[scenario("existing-secret")], &[]);
    let (_, c) = deployment(&docs);
    operator_accepts(&c, "existing-secret");
    let from: Vec<String> = c
        .env_from
        .iter()
        .flatten()
        .filter_map(|e| e.secret_ref.clone().map(|s| s.name))
        .collect();
    assert_eq!(from, ["object-store"]);
    assert_eq!(
        literal_env(&c).get("AWS_ENDPOINT_URL").map(String::as_str),
        Some("https://rgw.example.org")
    );
    assert_eq!(
        literal_env(&c).get("AWS_REGION").map(String::as_str),
        Some("RegionOne")
    );
    assert!(
        of_kind(&docs, "Secret").is_empty(),
        "an existing Secret is not rendered"
    );

    // Created Secret: in the release and the watched namespace, carrying the endpoint.
    let docs = rendered(&helm, &[scenario("created-secret")], &[]);
    let (d, c) = deployment(&docs);
    operator_accepts(&c, "created-secret");
    let from: Vec<String> = c
        .env_from
        .iter()
        .flatten()
        .filter_map(|e| e.secret_ref.clone().map(|s| s.name))
        .collect();
    assert_eq!(from, ["aperture-object-store"]);
    let annotations = d
        .spec
        .template
        .metadata
        .and_then(|m| m.annotations)
        .unwrap_or_default();
    assert!(
        annotations.contains_key("checksum/object-store"),
        "pods roll when the Secret changes"
    );
    let secrets = of_kind(&docs, "Secret");
    let ns: BTreeSet<&str> = secrets.iter().map(|s| namespace(s)).collect();
    assert_eq!(ns, BTreeSet::from(["imaging", "imaging-jobs"]));
    for s in &secrets {
        assert_eq!(name(s), "aperture-object-store");
        let data = &s["stringData"];
        assert_eq!(
            data["AWS_ENDPOINT_URL"],
            "http://seaweedfs.storage.svc.cluster.local:8333"
        );
        assert_eq!(
            data["AWS_ALLOW_HTTP"], "true",
            "an http:// endpoint allows HTTP"
        );
        assert_eq!(data["AWS_ACCESS_KEY_ID"], "aperture");
        assert_eq!(data["AWS_SECRET_ACCESS_KEY"], "not-a-real-secret");
    }

    // Control: the binary does refuse what it does not know, so the check above checks.
    let (_, mut c) = deployment(&rendered(&helm, &[], &[]));
    c.args
        .get_or_insert_with(Vec::new)
        .push("--worker-cpus=2".into());
    let out = Command::new(env!("CARGO_BIN_EXE_aperture-operator"))
        .args(c.args.iter().flatten())
        .env_clear()
        .env("KUBECONFIG", "/nonexistent/aperture-helm-test")
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(2),
        "a misspelt flag is refused:\n{}",
        text(&out)
    );
}

// ---------------------------------------------------------------------------------------
// ServiceMonitor, NetworkPolicies, NOTES

fn labels(v: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(v.clone()).unwrap_or_default()
}

fn selects(selector: &BTreeMap<String, String>, pod_labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v))
}

#[test]
fn service_monitor_and_network_policies_select_the_right_pods() {
    let Some(helm) = helm() else { return };
    let docs = rendered(&helm, &[], &[]);
    assert!(
        of_kind(&docs, "ServiceMonitor").is_empty(),
        "off by default"
    );
    assert!(of_kind(&docs, "NetworkPolicy").is_empty(), "off by default");

    let docs = rendered(&helm, &[scenario("servicemonitor")], &[]);
    let sm = one(&docs, "ServiceMonitor", RELEASE);
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    let svc = one(&docs, "Service", "aperture-metrics");
    assert!(selects(
        &labels(&sm["spec"]["selector"]["matchLabels"]),
        &labels(&svc["metadata"]["labels"])
    ));
    assert_eq!(
        sm["spec"]["endpoints"][0]["port"],
        svc["spec"]["ports"][0]["name"]
    );
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    assert_eq!(sm["metadata"]["labels"]["release"], "kube-prometheus-stack");
    let pod_labels =
        labels(&one(&docs, "Deployment", RELEASE)["spec"]["template"]["metadata"]["labels"]);
    assert!(
        selects(&labels(&svc["spec"]["selector"]), &pod_labels),
        "the Service selects the operator pods"
    );

    let docs = rendered(&helm, &[scenario("networkpolicy")], &[]);
    let pod_labels =
        labels(&one(&docs, "Deployment", RELEASE)["spec"]["template"]["metadata"]["labels"]);
    let op = one(&docs, "NetworkPolicy", "aperture-operator");
    assert!(selects(
        &labels(&op["spec"]["podSelector"]["matchLabels"]),
        &pod_labels
    ));
    assert_eq!(
        op["spec"]["ingress"][0]["ports"][0]["port"], 8080,
        "ingress to metrics"
    );
    let egress = op["spec"]["egress"].to_string();
    for needle in [
        r#""cidr":"172.18.0.2/32""#,
        r#""port":6443"#,
        r#""port":53"#,
        r#""port":8333"#,
        r#""port":4318"#,
        r#""k8s-app":"kube-dns""#,
    ] {
        assert!(
            egress.contains(needle),
            "operator egress lacks {needle}: {egress}"
        );
    }
    // The workers' policy selects exactly the labels the operator gives worker pods.
    let wp = one(&docs, "NetworkPolicy", "aperture-workers");
    let worker_pod = BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), APP_NAME.to_string()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            MANAGED_BY.to_string(),
        ),
        ("aperture.dev/job".to_string(), "any".to_string()),
    ]);
    assert!(selects(
        &labels(&wp["spec"]["podSelector"]["matchLabels"]),
        &worker_pod
    ));
    assert_eq!(
        wp["spec"]["ingress"],
        serde_json::json!([]),
        "nothing reaches workers"
    );
    let egress = wp["spec"]["egress"].to_string();
    assert!(
        egress.contains(r#""port":8333"#) && !egress.contains("6443"),
        "{egress}"
    );
    // Cluster scope: no worker policy (their namespaces are not known).
    let docs = rendered(
        &helm,
        &[scenario("networkpolicy"), scenario("cluster-scope")],
        &[],
    );
    assert_eq!(of_kind(&docs, "NetworkPolicy").len(), 1);
}

#[test]
fn notes_show_a_valid_first_job() {
    let Some(helm) = helm() else { return };
    for (values, secret) in [
        (scenario("existing-secret"), "object-store"),
        (scenario("created-secret"), "aperture-object-store"),
    ] {
        let out = Command::new(&helm)
            .args(["install", RELEASE])
            .arg(chart())
            .args(["--dry-run=client", "--namespace", NAMESPACE, "--values"])
            .arg(&values)
            .output()
            .expect("helm install --dry-run=client runs");
        assert!(out.status.success(), "{}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let notes = &stdout[stdout.find("NOTES:").expect("NOTES")..];
        let start = notes.find("apply -f -\n").expect("a kubectl apply") + "apply -f -\n".len();
        let end = start
            + notes[start..]
                .find("\n  YAML")
                .expect("end of the manifest");
        let manifest: String = notes[start..end]
            .lines()
            .map(|l| l.strip_prefix("  ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let job = parse_job(&manifest, "NOTES.txt")
            .unwrap_or_else(|e| panic!("{values:?}: {e}\n{manifest}"));
        assert_eq!(job.spec.storage.credentials_secret.as_deref(), Some(secret));
        assert!(
            job.spec
                .output
                .as_deref()
                .is_some_and(|o| o.starts_with("s3://"))
        );
        assert!(notes.contains("get ij -w"), "how to watch it");
    }
}
