//! A real Kubernetes control plane on 127.0.0.1, started by the tests: etcd (Debian's
//! `etcd-server`), kube-apiserver, kube-controller-manager and kube-scheduler (built by
//! `scripts/build-controlplane.sh` from the pinned `k8s.io/kubernetes` module), with
//! a CA, serving and client certificates and a service-account key made here, and
//! `--authorization-mode=Node,RBAC`. There is no kubelet: see `node_agent.rs`.
//!
//! Component flags follow the reference pages of
//! <https://kubernetes.io/docs/reference/command-line-tools-reference/>. Everything
//! listens on 127.0.0.1 only; the service CIDR is never routed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use super::pki::{Pair, Pki};
use super::process::{DirReaper, Proc, free_port, wait_until};

/// The Kubernetes release tests/controlplane/go.mod pins (the cache directory's name).
pub fn pinned_version() -> Option<String> {
    let go_mod = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/controlplane/go.mod");
    let text = std::fs::read_to_string(go_mod).ok()?;
    text.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some("k8s.io/kubernetes"))
            .then(|| w.next())
            .flatten()
            .filter(|v| v.starts_with('v'))
            .map(str::to_string)
    })
}

/// Where the programs are.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// Directory with kube-apiserver, kube-controller-manager, kube-scheduler, kubectl.
    pub dir: PathBuf,
    pub etcd: PathBuf,
}

impl Binaries {
    /// `APERTURE_CONTROLPLANE_BIN` (a directory), else the build script's cache
    /// `/var/cache/aperture/controlplane/<version>/`; etcd from `APERTURE_ETCD`, else
    /// the PATH. `Err` names what is missing.
    pub fn find() -> Result<Self, String> {
        let dir = match std::env::var_os("APERTURE_CONTROLPLANE_BIN") {
            Some(d) => PathBuf::from(d),
            None => {
                let root = std::env::var_os("APERTURE_CONTROLPLANE_CACHE")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("/var/cache/aperture/controlplane"));
                let v = pinned_version().ok_or("tests/controlplane/go.mod pins no version")?;
                root.join(v)
            }
        };
        for b in [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kubectl",
        ] {
            if !dir.join(b).is_file() {
                return Err(format!(
                    "{} not found (build it with scripts/build-controlplane.sh)",
                    dir.join(b).display()
                ));
            }
        }
        let etcd = match std::env::var_os("APERTURE_ETCD") {
            Some(p) => PathBuf::from(p),
            None => which("etcd").ok_or("etcd not found on PATH (apt-get install etcd-server)")?,
        };
        Ok(Self { dir, etcd })
    }
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A running control plane. Dropping it stops the components (scheduler, controller
/// manager, API server, etcd) and removes its directory.
#[derive(Debug)]
pub struct ControlPlane {
    pub bin: Binaries,
    /// Certificates, kubeconfigs, logs and etcd's data.
    pub dir: PathBuf,
    /// `https://127.0.0.1:PORT`.
    pub server: String,
    pub pki: Pki,
    /// system:masters.
    pub admin_kubeconfig: PathBuf,
    /// The API server's audit log (requests of service accounts outside kube-system).
    pub audit_log: PathBuf,
    procs: Mutex<Vec<Proc>>,
    /// Removes `dir` when the test process exits, should this never be dropped.
    reaper: Mutex<DirReaper>,
    _tmp: tempfile::TempDir,
}

/// How long each component may take to become ready.
const READY: Duration = Duration::from_secs(120);

/// Audit policy: one line per request of a service account outside kube-system (the
/// operators under test), nothing else.
/// <https://kubernetes.io/docs/tasks/debug/debug-cluster/audit/>
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  userGroups: [\"system:serviceaccounts:kube-system\"]
- level: Metadata
  userGroups: [\"system:serviceaccounts\"]
- level: None
";

impl ControlPlane {
    /// Starts everything and waits until the API server is ready, the controller
    /// manager and scheduler answer /healthz and the `default` ServiceAccount exists
    /// (the controllers run). Blocking; call it outside any async runtime.
    pub fn start(bin: Binaries) -> Result<Self, String> {
        // etcd's data on tmpfs when there is one: fsync on a shared disk is the slowest
        // part of a small cluster.
        let base = Path::new("/dev/shm");
        let tmp = if base.is_dir() {
            tempfile::Builder::new()
                .prefix("aperture-controlplane-")
                .tempdir_in(base)
        } else {
            tempfile::Builder::new()
                .prefix("aperture-controlplane-")
                .tempdir()
        }
        .map_err(|e| format!("temp dir: {e}"))?;
        let dir = tmp.path().to_path_buf();
        let pki = Pki::new(&dir.join("pki"))?;
        let serving = pki.server(
            "kube-apiserver",
            &[
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
        )?;
        let (sa_key, sa_pub) = pki.service_account_key()?;
        let admin = pki.client("admin", "aperture-test-admin", &["system:masters"])?;
        let kcm_client = pki.client(
            "kube-controller-manager",
            "system:kube-controller-manager",
            &[],
        )?;
        let sched_client = pki.client("kube-scheduler", "system:kube-scheduler", &[])?;
        let kcm_serving = pki.server("kcm-serving", &[])?;
        let sched_serving = pki.server("scheduler-serving", &[])?;

        let mut cp = Self {
            bin,
            server: String::new(),
            admin_kubeconfig: PathBuf::new(),
            audit_log: dir.join("audit.log"),
            dir,
            pki,
            procs: Mutex::new(Vec::new()),
            reaper: Mutex::new(DirReaper::new(tmp.path())?),
            _tmp: tmp,
        };

        // etcd (retried with new ports if one was taken in between).
        let mut etcd_url = String::new();
        let mut last = String::new();
        for attempt in 0..3 {
            match cp.start_etcd(attempt) {
                Ok(url) => {
                    etcd_url = url;
                    break;
                }
                Err(e) => last = e,
            }
        }
        if etcd_url.is_empty() {
            return Err(format!("etcd did not start: {last}"));
        }

        // kube-apiserver.
        let policy = cp.dir.join("audit-policy.yaml");
        std::fs::write(&policy, AUDIT_POLICY).map_err(|e| e.to_string())?;
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            cp.server = format!("https://127.0.0.1:{port}");
            cp.admin_kubeconfig = cp.write_kubeconfig("admin", &cp.server, &admin, None)?;
            let mut cmd = Command::new(cp.bin.dir.join("kube-apiserver"));
            cmd.args([
                format!("--etcd-servers={etcd_url}"),
                "--bind-address=127.0.0.1".into(),
                "--advertise-address=127.0.0.1".into(),
                format!("--secure-port={port}"),
                format!("--cert-dir={}", cp.dir.join("apiserver-certs").display()),
                format!("--tls-cert-file={}", serving.cert.display()),
                format!("--tls-private-key-file={}", serving.key.display()),
                format!("--client-ca-file={}", cp.pki.ca.cert.display()),
                "--authorization-mode=Node,RBAC".into(),
                "--enable-admission-plugins=NodeRestriction,OwnerReferencesPermissionEnforcement"
                    .into(),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
                format!("--service-account-key-file={}", sa_pub.display()),
                format!("--service-account-signing-key-file={}", sa_key.display()),
                // Never routed: nothing in the tests talks to a Service.
                "--service-cluster-ip-range=10.254.0.0/24".into(),
                // The `kubernetes` Service's endpoints would be 127.0.0.1, which
                // Endpoints reject; nothing needs them.
                "--endpoint-reconciler-type=none".into(),
                format!("--audit-policy-file={}", policy.display()),
                format!("--audit-log-path={}", cp.audit_log.display()),
                "--audit-log-maxsize=0".into(),
                "--profiling=false".into(),
                "--v=1".into(),
            ]);
            let log = cp.dir.join("kube-apiserver.log");
            let mut proc = Proc::spawn("kube-apiserver", cmd, &log)?;
            let kubectl = cp.bin.dir.join("kubectl");
            let kc = cp.admin_kubeconfig.clone();
            let r = wait_until("kube-apiserver", &mut proc, READY, || {
                raw_get(&kubectl, &kc, None, "/readyz")
            });
            match r {
                Ok(()) => {
                    cp.keep(proc);
                    last.clear();
                    break;
                }
                Err(e) => {
                    last = e;
                    drop(proc);
                }
            }
        }
        if !last.is_empty() {
            return Err(last);
        }

        // kube-controller-manager: every controller, each under its own service account
        // (as kubeadm runs it), with the Job controller's and garbage collector's
        // request rate raised for the load test.
        let kcm_kc =
            cp.write_kubeconfig("kube-controller-manager", &cp.server, &kcm_client, None)?;
        let kcm_port = free_port();
        let mut cmd = Command::new(cp.bin.dir.join("kube-controller-manager"));
        cmd.args([
            format!("--kubeconfig={}", kcm_kc.display()),
            format!("--authentication-kubeconfig={}", kcm_kc.display()),
            format!("--authorization-kubeconfig={}", kcm_kc.display()),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={kcm_port}"),
            format!("--cert-dir={}", cp.dir.join("kcm-certs").display()),
            format!("--tls-cert-file={}", kcm_serving.cert.display()),
            format!("--tls-private-key-file={}", kcm_serving.key.display()),
            "--controllers=*".into(),
            "--use-service-account-credentials=true".into(),
            format!("--service-account-private-key-file={}", sa_key.display()),
            format!("--root-ca-file={}", cp.pki.ca.cert.display()),
            format!("--cluster-signing-cert-file={}", cp.pki.ca.cert.display()),
            format!("--cluster-signing-key-file={}", cp.pki.ca.key.display()),
            "--leader-elect=false".into(),
            "--kube-api-qps=200".into(),
            "--kube-api-burst=400".into(),
            "--concurrent-job-syncs=10".into(),
            "--profiling=false".into(),
            "--v=1".into(),
        ]);
        let mut kcm = Proc::spawn(
            "kube-controller-manager",
            cmd,
            &cp.dir.join("kube-controller-manager.log"),
        )?;
        let kubectl = cp.bin.dir.join("kubectl");
        let admin_kc = cp.admin_kubeconfig.clone();
        let kcm_url = format!("https://127.0.0.1:{kcm_port}");
        wait_until("kube-controller-manager", &mut kcm, READY, || {
            raw_get(&kubectl, &admin_kc, Some(&kcm_url), "/healthz")
        })?;

        // kube-scheduler, from a configuration file (its client rate flags are
        // deprecated).
        let sched_kc = cp.write_kubeconfig("kube-scheduler", &cp.server, &sched_client, None)?;
        let sched_cfg = cp.dir.join("kube-scheduler.yaml");
        std::fs::write(
            &sched_cfg,
            format!(
                "apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection: {{kubeconfig: {kc}, qps: 200, burst: 400}}
leaderElection: {{leaderElect: false}}
",
                kc = sched_kc.display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let sched_port = free_port();
        let mut cmd = Command::new(cp.bin.dir.join("kube-scheduler"));
        cmd.args([
            format!("--config={}", sched_cfg.display()),
            format!("--authentication-kubeconfig={}", sched_kc.display()),
            format!("--authorization-kubeconfig={}", sched_kc.display()),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={sched_port}"),
            format!("--cert-dir={}", cp.dir.join("scheduler-certs").display()),
            format!("--tls-cert-file={}", sched_serving.cert.display()),
            format!("--tls-private-key-file={}", sched_serving.key.display()),
            "--v=1".into(),
        ]);
        let mut sched = Proc::spawn("kube-scheduler", cmd, &cp.dir.join("kube-scheduler.log"))?;
        let sched_url = format!("https://127.0.0.1:{sched_port}");
        wait_until("kube-scheduler", &mut sched, READY, || {
            raw_get(&kubectl, &admin_kc, Some(&sched_url), "/healthz")
        })?;

        // The controllers are working once the service-account controller has made the
        // `default` ServiceAccount.
        wait_until("controllers", &mut kcm, READY, || {
            let out = Command::new(&kubectl)
                .arg(format!("--kubeconfig={}", admin_kc.display()))
                .args([
                    "get",
                    "serviceaccount",
                    "default",
                    "-n",
                    "default",
                    "-o",
                    "name",
                ])
                .output()
                .map_err(|e| e.to_string())?;
            Ok(out.status.success())
        })?;
        cp.keep(kcm);
        cp.keep(sched);
        Ok(cp)
    }

    fn start_etcd(&self, attempt: usize) -> Result<String, String> {
        let (client, peer) = (free_port(), free_port());
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let data = self.dir.join(format!("etcd-{attempt}"));
        let mut cmd = Command::new(&self.bin.etcd);
        cmd.args([
            "--name=aperture-test".to_string(),
            format!("--data-dir={}", data.display()),
            format!("--listen-client-urls={url}"),
            format!("--advertise-client-urls={url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=aperture-test={peer_url}"),
            "--initial-cluster-state=new".into(),
            "--logger=zap".into(),
            "--log-outputs=stderr".into(),
        ])
        // The Debian package's defaults file is not read here, but ETCD_* variables of
        // the caller would be: start clean.
        .env_clear()
        .env("PATH", "/usr/bin:/bin");
        let mut proc = Proc::spawn("etcd", cmd, &self.dir.join(format!("etcd-{attempt}.log")))?;
        let r = wait_until("etcd", &mut proc, READY, || {
            let (code, body) = super::process::http_get(client, "/health")?;
            Ok(code == 200 && body.contains("true"))
        });
        match r {
            Ok(()) => {
                self.keep(proc);
                Ok(url)
            }
            Err(e) => Err(e),
        }
    }

    /// Keeps a started component (stopped on drop, its pid awaited by the reaper).
    fn keep(&self, proc: Proc) {
        if let (Some(pid), Ok(mut r)) = (proc.pid(), self.reaper.lock()) {
            r.register(pid);
        }
        self.procs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(proc);
    }

    /// Writes `<name>.kubeconfig` for `server` with a client certificate, or a bearer
    /// token when `token` is given (then `pair` is ignored).
    pub fn write_kubeconfig(
        &self,
        name: &str,
        server: &str,
        pair: &Pair,
        token: Option<&str>,
    ) -> Result<PathBuf, String> {
        let user = match token {
            Some(t) => format!("    token: {t}\n"),
            None => format!(
                "    client-certificate: {}\n    client-key: {}\n",
                pair.cert.display(),
                pair.key.display()
            ),
        };
        let text = format!(
            "apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: {name}
  user:
{user}contexts:
- name: {name}
  context: {{cluster: test, user: {name}}}
current-context: {name}
",
            ca = self.pki.ca.cert.display()
        );
        let path = self.dir.join(format!("{name}.kubeconfig"));
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }

    /// A kubeconfig whose user is `user` in `groups`, by client certificate.
    pub fn kubeconfig_for_user(
        &self,
        name: &str,
        user: &str,
        groups: &[&str],
    ) -> Result<PathBuf, String> {
        let pair = self.pki.client(name, user, groups)?;
        self.write_kubeconfig(name, &self.server, &pair, None)
    }

    /// A kubeconfig that authenticates with a bearer `token` (a service account's).
    pub fn kubeconfig_for_token(&self, name: &str, token: &str) -> Result<PathBuf, String> {
        self.write_kubeconfig(name, &self.server, &self.pki.ca, Some(token))
    }

    /// `kubectl --kubeconfig <admin>`.
    pub fn kubectl(&self) -> Command {
        self.kubectl_as(&self.admin_kubeconfig)
    }

    /// `kubectl --kubeconfig <kubeconfig>`.
    pub fn kubectl_as(&self, kubeconfig: &Path) -> Command {
        let mut c = Command::new(self.bin.dir.join("kubectl"));
        c.arg(format!("--kubeconfig={}", kubeconfig.display()))
            .env("KUBECTL_KUBERC", "false")
            .env_remove("KUBECONFIG");
        c
    }

    /// The log files of the components, for failure messages.
    pub fn logs(&self) -> Vec<PathBuf> {
        self.procs
            .lock()
            .map(|p| p.iter().map(|p| p.log.clone()).collect())
            .unwrap_or_default()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Ok(mut procs) = self.procs.lock() {
            while let Some(mut p) = procs.pop() {
                p.stop(Duration::from_secs(5));
            }
        }
    }
}

/// `kubectl get --raw <path>` (against `server` when given): whether it answered `ok`.
fn raw_get(
    kubectl: &Path,
    kubeconfig: &Path,
    server: Option<&str>,
    path: &str,
) -> Result<bool, String> {
    let mut cmd = Command::new(kubectl);
    cmd.arg(format!("--kubeconfig={}", kubeconfig.display()))
        .env("KUBECTL_KUBERC", "false")
        .args(["get", "--raw", path, "--request-timeout=5s"]);
    if let Some(s) = server {
        cmd.arg(format!("--server={s}"));
    }
    let out = cmd.output().map_err(|e| format!("kubectl: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim() == "ok")
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}
