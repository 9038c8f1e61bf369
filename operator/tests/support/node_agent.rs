//! THE NODE AGENT IS A TEST STAND-IN for a kubelet and a container runtime; it is not
//! one. It registers a Node (Ready, with the capacity it is given), renews the Node's
//! Lease in `kube-node-lease`, watches the pods bound to it and runs each pod's
//! container command as a local process, with the pod's environment: `value`s,
//! `fieldRef`s (so `JOB_COMPLETION_INDEX` from the annotation
//! `batch.kubernetes.io/job-completion-index`, which the Job controller injects),
//! `secretKeyRef`s and `envFrom` Secrets. It reports the pod Running, then Succeeded or
//! Failed with the exit code and, as `terminationMessagePolicy: FallbackToLogsOnError`
//! does, the last lines of output of a failed container as its termination message. A
//! pod being deleted has its process killed (SIGTERM, then SIGKILL), is marked Failed
//! and is deleted with grace period 0, as a kubelet does.
//!
//! It ignores images (the `aperture-worker` command is mapped to the workspace's built
//! `aperture-worker`; any other command fails the pod with exit code 127), resources,
//! security contexts, volumes and networking. Container behaviour (non-root, read-only
//! root filesystem, the image's entrypoint) is covered by the image smoke test instead.
//!
//! It authenticates as `system:node:<name>` in `system:nodes`, so the API server's Node
//! authorizer and NodeRestriction admission apply to it exactly as to a kubelet (it can
//! read only the Secrets its pods reference).
//!
//! In [`Mode::Instant`] it runs nothing: every pod bound to it is reported Succeeded at
//! once (exit code 0). That is for the load test of the operator alone.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Container, Node, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

/// What the agent does with a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Run the container command as a local process.
    Run,
    /// Report Succeeded at once, run nothing (load tests of the operator alone).
    Instant,
}

/// The Node the agent registers.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub name: String,
    pub mode: Mode,
    /// `status.capacity` (and allocatable): cpu, memory, pods.
    pub cpu: String,
    pub memory: String,
    pub pods: String,
    /// Labels besides `kubernetes.io/hostname`, `/os`, `/arch`.
    pub labels: BTreeMap<String, String>,
    /// Taints as (key, value, effect).
    pub taints: Vec<(String, String, String)>,
}

/// What the agent has done, shared with the tests.
#[derive(Debug, Default)]
pub struct AgentState {
    /// Running processes by pod `namespace/name`: (pod uid, pid).
    pub running: HashMap<String, (String, u32)>,
    /// Pod uids started.
    pub started: HashSet<String>,
    pub succeeded: u64,
    pub failed: u64,
    /// Pods killed because they were deleted.
    pub killed_on_delete: u64,
    /// Errors talking to the API server (the agent goes on).
    pub errors: Vec<String>,
}

/// The tests' view of a running agent.
#[derive(Debug, Clone)]
pub struct AgentHandle {
    pub node: String,
    pub state: Arc<Mutex<AgentState>>,
}

impl AgentHandle {
    /// `namespace/name` of the pods whose process is running now.
    pub fn running(&self) -> Vec<String> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<String> = s.running.keys().cloned().collect();
        v.sort();
        v
    }

    /// SIGKILLs the process of pod `namespace/name` (a crash, as far as the pod is
    /// concerned). `false` when it is not running.
    pub fn kill(&self, pod: &str) -> bool {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match s.running.get(pod) {
            Some((_, pid)) => {
                // SAFETY: kill(2) on a child the agent has not reaped yet: it removes the
                // entry before it reaps the process.
                unsafe { libc::kill(*pid as i32, libc::SIGKILL) == 0 }
            }
            None => false,
        }
    }

    pub fn counts(&self) -> (u64, u64) {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (s.succeeded, s.failed)
    }
}

/// A node agent; [`NodeAgent::run`] runs it until the process exits.
#[derive(Clone)]
pub struct NodeAgent {
    pub spec: NodeSpec,
    client: Client,
    /// The built `aperture-worker`.
    worker: PathBuf,
    /// Per-pod scratch directories and logs.
    dir: PathBuf,
    state: Arc<Mutex<AgentState>>,
}

impl std::fmt::Debug for NodeAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeAgent")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

/// Lines and bytes of output a FallbackToLogsOnError termination message keeps
/// (<https://kubernetes.io/docs/tasks/debug/debug-application/determine-reason-pod-failure/>).
const MESSAGE_LINES: usize = 80;
const MESSAGE_BYTES: usize = 2048;

impl NodeAgent {
    pub fn new(spec: NodeSpec, client: Client, worker: PathBuf, dir: PathBuf) -> Self {
        Self {
            spec,
            client,
            worker,
            dir,
            state: Arc::default(),
        }
    }

    pub fn handle(&self) -> AgentHandle {
        AgentHandle {
            node: self.spec.name.clone(),
            state: self.state.clone(),
        }
    }

    /// Registers the Node and its Lease (returns when the Node exists).
    pub async fn register(&self) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let nodes: Api<Node> = Api::all(self.client.clone());
        let s = &self.spec;
        let mut labels = s.labels.clone();
        labels.insert("kubernetes.io/hostname".into(), s.name.clone());
        labels.insert("kubernetes.io/os".into(), "linux".into());
        labels.insert("kubernetes.io/arch".into(), "amd64".into());
        let taints: Vec<Value> = s
            .taints
            .iter()
            .map(|(k, v, e)| json!({"key": k, "value": v, "effect": e}))
            .collect();
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": s.name, "labels": labels},
            "spec": {"taints": taints},
        }))
        .map_err(|e| e.to_string())?;
        match nodes.create(&PostParams::default(), &node).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(format!("create Node {}: {e}", s.name)),
        }
        self.patch_node_status().await?;
        self.renew_lease().await?;
        Ok(())
    }

    async fn patch_node_status(&self) -> Result<(), String> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let s = &self.spec;
        let now = time_now();
        let cond = |t: &str, status: &str, reason: &str, message: &str| {
            json!({"type": t, "status": status, "reason": reason, "message": message,
                   "lastHeartbeatTime": now, "lastTransitionTime": now})
        };
        let capacity = json!({"cpu": s.cpu, "memory": s.memory, "pods": s.pods,
                              "ephemeral-storage": "100Gi"});
        let status = json!({"status": {
            "capacity": capacity, "allocatable": capacity,
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "test node agent"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "test node agent"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "test node agent"),
                cond("Ready", "True", "KubeletReady", "aperture test node agent (not a kubelet)"),
            ],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                          {"type": "Hostname", "address": s.name}],
            "nodeInfo": {"machineID": "aperture-test", "systemUUID": "aperture-test",
                         "bootID": "aperture-test", "kernelVersion": "", "osImage": "aperture test node agent",
                         "containerRuntimeVersion": "aperture-test://0", "kubeletVersion": "v0.0.0-aperture-test-agent",
                         "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"},
        }});
        nodes
            .patch_status(&s.name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .map_err(|e| format!("patch Node {} status: {e}", s.name))?;
        Ok(())
    }

    /// Creates or renews the Node's Lease (the heartbeat the node lifecycle controller
    /// reads: <https://kubernetes.io/docs/concepts/architecture/leases/>).
    async fn renew_lease(&self) -> Result<(), String> {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), "kube-node-lease");
        let name = &self.spec.name;
        let now = serde_json::to_value(MicroTime(Timestamp::now())).map_err(|e| e.to_string())?;
        match leases.get_opt(name).await.map_err(|e| e.to_string())? {
            Some(_) => {
                let patch = json!({"spec": {"renewTime": now, "holderIdentity": name}});
                leases
                    .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(|e| format!("renew Lease {name}: {e}"))?;
            }
            None => {
                let nodes: Api<Node> = Api::all(self.client.clone());
                let uid = nodes
                    .get(name)
                    .await
                    .map_err(|e| e.to_string())?
                    .uid()
                    .unwrap_or_default();
                let lease: Lease = serde_json::from_value(json!({
                    "metadata": {"name": name, "namespace": "kube-node-lease",
                        "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}]},
                    "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now},
                }))
                .map_err(|e| e.to_string())?;
                leases
                    .create(&PostParams::default(), &lease)
                    .await
                    .map_err(|e| format!("create Lease {name}: {e}"))?;
            }
        }
        Ok(())
    }

    /// Heartbeats and the pod watch, forever (errors are recorded and retried).
    pub async fn run(self) {
        let beat = self.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                n += 1;
                if let Err(e) = beat.renew_lease().await {
                    beat.error(e);
                }
                if n.is_multiple_of(6)
                    && let Err(e) = beat.patch_node_status().await
                {
                    beat.error(e);
                }
            }
        });
        let pods: Api<Pod> = Api::all(self.client.clone());
        let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", self.spec.name));
        let mut stream = watcher(pods, cfg).boxed();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => self.on_pod(pod),
                Ok(watcher::Event::Delete(pod)) => self.on_gone(&pod),
                Ok(_) => {}
                Err(e) => {
                    self.error(format!("pod watch: {e}"));
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    fn error(&self, e: String) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.errors.len() < 1000 {
            s.errors.push(e);
        }
    }

    fn on_pod(&self, pod: Pod) {
        let uid = pod.uid().unwrap_or_default();
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        let terminal = phase == "Succeeded" || phase == "Failed";
        let deleting = pod.metadata.deletion_timestamp.is_some();
        let key = format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any());
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if deleting {
            if let Some((running_uid, pid)) = s.running.get(&key)
                && *running_uid == uid
            {
                // The run task sees the exit, reports Failed and deletes the pod.
                // SAFETY: a child the agent has not reaped (see `kill`).
                unsafe {
                    libc::kill(*pid as i32, libc::SIGTERM);
                }
                s.killed_on_delete += 1;
                return;
            }
            if terminal || !s.started.contains(&uid) {
                // Nothing runs: finish the deletion as the kubelet does.
                drop(s);
                let agent = self.clone();
                tokio::spawn(async move { agent.finish_delete(&pod).await });
            }
            return;
        }
        if terminal || s.started.contains(&uid) {
            return;
        }
        s.started.insert(uid);
        drop(s);
        let agent = self.clone();
        tokio::spawn(async move {
            match agent.spec.mode {
                Mode::Run => agent.run_pod(pod, key).await,
                Mode::Instant => agent.complete_at_once(pod).await,
            }
        });
    }

    fn on_gone(&self, pod: &Pod) {
        let key = format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any());
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((uid, pid)) = s.running.get(&key)
            && Some(uid.as_str()) == pod.metadata.uid.as_deref()
        {
            // SAFETY: a child the agent has not reaped (see `kill`).
            unsafe {
                libc::kill(*pid as i32, libc::SIGKILL);
            }
        }
    }

    /// Deletes a pod with grace period 0 (its uid as precondition).
    async fn finish_delete(&self, pod: &Pod) {
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&pod.name_any(), &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => self.error(format!("delete pod {}: {e}", pod.name_any())),
        }
    }

    async fn complete_at_once(&self, pod: Pod) {
        let now = time_now();
        let Some(c) = main_container(&pod) else {
            return;
        };
        let status = json!({"status": {
            "phase": "Succeeded",
            "startTime": now,
            "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
            "conditions": conditions(&now, false),
            "containerStatuses": [{
                "name": c.name, "image": c.image.clone().unwrap_or_default(),
                "imageID": "aperture-test://instant", "containerID": format!("aperture-test://{}", pod.uid().unwrap_or_default()),
                "ready": false, "started": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}},
            }],
        }});
        match self.patch_pod_status(&pod, &status).await {
            Ok(()) => {
                self.state
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .succeeded += 1
            }
            Err(e) => self.error(e),
        }
    }

    async fn patch_pod_status(&self, pod: &Pod, status: &Value) -> Result<(), String> {
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let mut last = String::new();
        for _ in 0..5 {
            match api
                .patch_status(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Strategic(status),
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(format!("patch status of pod {}: {last}", pod.name_any()))
    }

    /// Runs the pod's one container as a process and reports its life.
    async fn run_pod(&self, pod: Pod, key: String) {
        let uid = pod.uid().unwrap_or_default();
        let Some(c) = main_container(&pod).cloned() else {
            self.error(format!("pod {key} has no container"));
            return;
        };
        let image = c.image.clone().unwrap_or_default();
        let started = time_now();
        let container_status = |state: Value, ready: bool| {
            json!([{
                "name": c.name, "image": image, "imageID": format!("aperture-test://{image}"),
                "containerID": format!("aperture-test://{uid}"),
                "ready": ready, "started": ready, "restartCount": 0, "state": state,
            }])
        };
        // Environment (a Secret not readable yet is retried, as a kubelet retries
        // CreateContainerConfigError).
        let env = loop {
            match self.resolve_env(&pod, &c).await {
                Ok(env) => break env,
                Err(e) => {
                    let status = json!({"status": {"phase": "Pending", "containerStatuses": container_status(
                        json!({"waiting": {"reason": "CreateContainerConfigError", "message": e}}), false)}});
                    let _ = self.patch_pod_status(&pod, &status).await;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if self.is_deleted(&pod).await {
                        self.finish_delete(&pod).await;
                        return;
                    }
                }
            }
        };
        let mut argv: Vec<String> = c.command.clone().unwrap_or_default();
        argv.extend(c.args.clone().unwrap_or_default());
        let scratch = self.dir.join(&uid);
        let log_path = self.dir.join(format!("{}.log", key.replace('/', "_")));
        let program = match argv.first().map(String::as_str) {
            Some(p) if p == "aperture-worker" || p.ends_with("/aperture-worker") => {
                Some(self.worker.clone())
            }
            _ => None,
        };
        let spawned = match program {
            None => Err(format!(
                "test node agent: no local program for command {argv:?} (only aperture-worker is mapped)"
            )),
            Some(program) => {
                let _ = std::fs::create_dir_all(&scratch);
                let log = std::fs::File::create(&log_path).map_err(|e| e.to_string());
                log.and_then(|log| {
                    let log2 = log.try_clone().map_err(|e| e.to_string())?;
                    let mut cmd = tokio::process::Command::new(program);
                    cmd.args(&argv[1..])
                        .env_clear()
                        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
                        .env("HOME", &scratch)
                        .env("TMPDIR", &scratch)
                        .env("HOSTNAME", pod.name_any())
                        .envs(env)
                        .current_dir(&scratch)
                        .stdin(Stdio::null())
                        .stdout(log)
                        .stderr(log2)
                        .kill_on_drop(true);
                    cmd.spawn().map_err(|e| e.to_string())
                })
            }
        };
        let mut child = match spawned {
            Ok(child) => child,
            Err(message) => {
                let now = time_now();
                let status = json!({"status": {"phase": "Failed", "startTime": started,
                    "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
                    "conditions": conditions(&now, false),
                    "containerStatuses": container_status(json!({"terminated": {
                        "exitCode": 127, "reason": "StartError", "message": message,
                        "startedAt": started, "finishedAt": now}}), false)}});
                if let Err(e) = self.patch_pod_status(&pod, &status).await {
                    self.error(e);
                }
                self.state.lock().unwrap_or_else(|p| p.into_inner()).failed += 1;
                return;
            }
        };
        let pid = child.id().unwrap_or_default();
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .running
            .insert(key.clone(), (uid.clone(), pid));
        let status = json!({"status": {"phase": "Running", "startTime": started,
            "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}],
            "conditions": conditions(&started, true),
            "containerStatuses": container_status(json!({"running": {"startedAt": started}}), true)}});
        if let Err(e) = self.patch_pod_status(&pod, &status).await {
            self.error(e);
        }
        // Wait for the exit without reaping, so that `kill` never signals a reused pid:
        // the entry is removed first, then the process is reaped.
        let exit = loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => {
                    self.state
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .running
                        .remove(&key);
                    break child.wait().await;
                }
                Ok(None) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let code = match exit {
            Ok(s) => {
                use std::os::unix::process::ExitStatusExt;
                s.code()
                    .unwrap_or_else(|| 128 + s.signal().unwrap_or(libc::SIGKILL))
            }
            Err(_) => 128 + libc::SIGKILL,
        };
        let finished = time_now();
        let fallback = c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError");
        let mut terminated = json!({"exitCode": code,
            "reason": if code == 0 { "Completed" } else { "Error" },
            "startedAt": started, "finishedAt": finished});
        if code != 0 && fallback {
            terminated["message"] = json!(message_from_log(&log_path));
        }
        let phase = if code == 0 { "Succeeded" } else { "Failed" };
        let status = json!({"status": {"phase": phase,
            "conditions": conditions(&finished, false),
            "containerStatuses": container_status(json!({"terminated": terminated}), false)}});
        if let Err(e) = self.patch_pod_status(&pod, &status).await {
            self.error(e);
        }
        {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if code == 0 {
                s.succeeded += 1;
            } else {
                s.failed += 1;
            }
        }
        let _ = std::fs::remove_dir_all(&scratch);
        if self.is_deleted(&pod).await {
            self.finish_delete(&pod).await;
        }
    }

    /// Whether the pod is being deleted (or gone).
    async fn is_deleted(&self, pod: &Pod) -> bool {
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        match api.get_opt(&pod.name_any()).await {
            Ok(Some(p)) => {
                p.metadata.deletion_timestamp.is_some() || p.metadata.uid != pod.metadata.uid
            }
            Ok(None) => true,
            Err(_) => false,
        }
    }

    /// The container's environment: `envFrom` Secrets first, then `env` (later wins),
    /// as the kubelet builds it.
    async fn resolve_env(&self, pod: &Pod, c: &Container) -> Result<Vec<(String, String)>, String> {
        let ns = pod.namespace().unwrap_or_default();
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        let mut out: Vec<(String, String)> = Vec::new();
        for from in c.env_from.iter().flatten() {
            if let Some(r) = &from.secret_ref {
                let optional = r.optional.unwrap_or(false);
                match secrets.get_opt(&r.name).await {
                    Ok(Some(s)) => {
                        for (k, v) in s.data.unwrap_or_default() {
                            let key = format!("{}{k}", from.prefix.clone().unwrap_or_default());
                            out.push((key, String::from_utf8_lossy(&v.0).into_owned()));
                        }
                    }
                    Ok(None) if optional => {}
                    Ok(None) => return Err(format!("secret \"{}\" not found", r.name)),
                    Err(e) => return Err(format!("secret \"{}\": {e}", r.name)),
                }
            }
            if from.config_map_ref.is_some() {
                return Err("test node agent: envFrom configMapRef is not supported".into());
            }
        }
        for e in c.env.iter().flatten() {
            let value = match (&e.value, &e.value_from) {
                (Some(v), _) => expand(v, &out),
                (None, Some(from)) => {
                    if let Some(f) = &from.field_ref {
                        field_value(pod, &f.field_path)?
                    } else if let Some(k) = &from.secret_key_ref {
                        let s = secrets
                            .get_opt(&k.name)
                            .await
                            .map_err(|err| format!("secret \"{}\": {err}", k.name))?;
                        let v = s
                            .and_then(|s| s.data)
                            .and_then(|d| d.get(&k.key).cloned())
                            .map(|b| String::from_utf8_lossy(&b.0).into_owned());
                        match v {
                            Some(v) => v,
                            None if k.optional.unwrap_or(false) => continue,
                            None => {
                                return Err(format!("secret \"{}\" has no key {}", k.name, k.key));
                            }
                        }
                    } else {
                        return Err(format!(
                            "test node agent: env {} valueFrom is not supported",
                            e.name
                        ));
                    }
                }
                (None, None) => String::new(),
            };
            out.retain(|(k, _)| *k != e.name);
            out.push((e.name.clone(), value));
        }
        Ok(out)
    }
}

/// The pod's first container (stage Job pods have one).
fn main_container(pod: &Pod) -> Option<&Container> {
    pod.spec.as_ref().and_then(|s| s.containers.first())
}

/// `$(VAR)` references to earlier variables, expanded as the kubelet does.
fn expand(v: &str, env: &[(String, String)]) -> String {
    let mut out = v.to_string();
    for (k, val) in env {
        out = out.replace(&format!("$({k})"), val);
    }
    out
}

/// A downward-API `fieldRef` (<https://kubernetes.io/docs/concepts/workloads/pods/downward-api/>).
fn field_value(pod: &Pod, path: &str) -> Result<String, String> {
    let quoted = |p: &str, prefix: &str| -> Option<String> {
        p.strip_prefix(prefix)?
            .strip_prefix("['")?
            .strip_suffix("']")
            .map(str::to_string)
    };
    let m = &pod.metadata;
    Ok(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "spec.nodeName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.hostIP" => "127.0.0.1".into(),
        p => {
            if let Some(k) = quoted(p, "metadata.annotations") {
                m.annotations
                    .as_ref()
                    .and_then(|a| a.get(&k).cloned())
                    .unwrap_or_default()
            } else if let Some(k) = quoted(p, "metadata.labels") {
                m.labels
                    .as_ref()
                    .and_then(|a| a.get(&k).cloned())
                    .unwrap_or_default()
            } else {
                return Err(format!("test node agent: fieldRef {p} is not supported"));
            }
        }
    })
}

/// The last lines of a container's output, within the termination message's limits.
fn message_from_log(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(MESSAGE_LINES)..].join("\n");
    let start = tail.len().saturating_sub(MESSAGE_BYTES);
    let start = (start..tail.len())
        .find(|i| tail.is_char_boundary(*i))
        .unwrap_or(tail.len());
    tail[start..].to_string()
}

fn time_now() -> Value {
    serde_json::to_value(Time(Timestamp::now())).unwrap_or(Value::Null)
}

/// Pod conditions for a running (`ready`) or finished pod; PodScheduled is kept by the
/// strategic merge (conditions merge by type).
fn conditions(now: &Value, ready: bool) -> Value {
    let s = if ready { "True" } else { "False" };
    let reason = if ready { "" } else { "PodCompleted" };
    json!([
        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
        {"type": "Ready", "status": s, "reason": reason, "lastTransitionTime": now},
        {"type": "ContainersReady", "status": s, "reason": reason, "lastTransitionTime": now},
    ])
}
