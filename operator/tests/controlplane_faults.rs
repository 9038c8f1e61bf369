//! Faults on a real control plane (see docs/testing-kubernetes.md): a worker process
//! killed mid-task (its pod fails with exit code 137, Kubernetes retries the index, the
//! job succeeds); the operator killed mid-job and started again (it resumes, and no task
//! whose manifest was committed runs again); a second replica that never acts while the
//! first holds the Lease (the API server's audit log shows every write it makes), then
//! takes over when the first dies; an ImagingJob deleted mid-run (its Jobs and pods go,
//! through the finalizer and owner references; its output data stays).
//!
//! Skips (passes with a message) without the control-plane binaries, unless
//! `APERTURE_REQUIRE_CONTROLPLANE=1`.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use support::jobs::{apply, event_reasons, output_store, wait_phase};
use support::{Env, Operator, SECRET, TestNs, context, env, imaging_job, phase, wait_for};

/// An ICAL job of several stages per cycle (each task a second or so).
fn ical_job(name: &str, output: &str, cycles: u32) -> String {
    format!(
        "apiVersion: aperture.dev/v1alpha1
kind: ImagingJob
metadata: {{name: {name}}}
spec:
  pipeline: ical
  input:
    simulate: {{telescope: LOW, rmax: 300, frequencyWindows: 4, ntimes: 6, sky: {{sources: 2}}, gainPhaseRmsDeg: 20}}
  output: {output}
  image: {{npixel: 128, epsilon: 1.0e-6, weighting: {{type: natural}}}}
  deconvolution: {{algorithm: hogbom, niter: 200, gain: 0.2, threshold: 0.01}}
  calibration: {{context: T, T: {{firstCycle: 1}}}}
  majorCycles: {cycles}
  parallelism: {{maxParallel: 4, windowsPerShard: 1, reductionFanIn: 2}}
  storage: {{credentialsSecret: {SECRET}}}
"
    )
}

/// (done, total) of `status.progress`, when the job is Running.
async fn running_progress(env: &Env, ns: &TestNs, name: &str) -> Option<(u32, u32)> {
    let client = env.admin().await;
    let job = imaging_job(&client, &ns.name, name).await?;
    let status = serde_json::to_value(job.status.as_ref()?).ok()?;
    let (d, t) = status["progress"].as_str()?.split_once('/')?;
    Some((d.parse().ok()?, t.parse().ok()?))
}

/// Exit codes of the terminated worker containers of the namespace's pods.
async fn exit_codes(env: &Env, ns: &TestNs) -> Vec<i32> {
    let pods: Api<Pod> = Api::namespaced(env.admin().await, &ns.name);
    let list = pods.list(&ListParams::default()).await.expect("list pods");
    list.items
        .iter()
        .filter_map(|p| p.status.as_ref()?.container_statuses.as_ref())
        .flatten()
        .filter_map(|c| Some(c.state.as_ref()?.terminated.as_ref()?.exit_code))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_task_is_retried_and_the_job_succeeds() {
    let Some(env) = env() else { return };
    let ns = TestNs::create(env, "fault-kill", None);
    let operator = Operator::start(env, &ns, "op-kill");
    let output = ns.output(env, "kill");
    apply(env, &ns, &ical_job("kill", &output, 2));
    // SIGKILL the first worker process that runs, and another until one was really
    // killed (a process may finish between being seen and being signalled).
    let prefix = format!("{}/", ns.name);
    let mut killed = Vec::new();
    wait_for(
        "a worker killed by SIGKILL (a pod Failed with exit code 137)",
        Duration::from_secs(300),
        async || {
            if exit_codes(env, &ns).await.contains(&137) {
                return Some(());
            }
            for pod in env.runner.running() {
                if pod.starts_with(&prefix) && !killed.contains(&pod) && env.runner.kill(&pod) {
                    killed.push(pod);
                    break;
                }
            }
            None
        },
        || context(env, &ns, "kill", Some(&operator)),
    )
    .await;
    wait_phase(
        env,
        &ns,
        "kill",
        "Succeeded",
        Duration::from_secs(600),
        Some(&operator),
    )
    .await;
    // The ImagingJob's status counts the failed pod. (The TaskRetried event is not
    // asserted: the operator emits it only when it sees the Job still running after the
    // failure, and here the retry may complete before its next reconcile.)
    let client = env.admin().await;
    let job = imaging_job(&client, &ns.name, "kill").await.expect("job");
    let status = serde_json::to_value(job.status.as_ref().expect("status")).expect("json");
    let failed: u64 = status["stages"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, s)| s["failed"].as_u64().unwrap_or(0))
        .sum();
    assert!(failed >= 1, "no failed task in the status: {status:#}");
    let reasons = event_reasons(env, &ns, "kill");
    eprintln!("events of the killed-worker job: {reasons:?}");
    // Kubernetes retried the index: some stage Job counts a failed pod and completed.
    let out = ns.kubectl(
        env,
        &["get", "jobs", "-l", "aperture.dev/job=kill", "-o",
          "jsonpath={range .items[*]}{.status.failed} {.status.succeeded}/{.spec.completions}{\"\\n\"}{end}"],
        None,
    );
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stdout.lines().any(|l| {
            let (failed, done) = l.split_once(' ').unwrap_or_default();
            let (s, c) = done.split_once('/').unwrap_or_default();
            failed.parse::<u32>().unwrap_or(0) >= 1 && s == c
        }),
        "no Job with a failed pod that completed:\n{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_restarted_mid_job_resumes_without_redoing_committed_tasks() {
    let Some(env) = env() else { return };
    let ns = TestNs::create(env, "fault-restart", None);
    let mut first = Operator::start(env, &ns, "op-restart-1");
    let output = ns.output(env, "restart");
    apply(env, &ns, &ical_job("restart", &output, 3));
    // Kill the operator once some, not all, tasks are done.
    let (done, total) = wait_for(
        "the job to be part-way",
        Duration::from_secs(300),
        async || {
            running_progress(env, &ns, "restart")
                .await
                .filter(|(d, t)| *d >= 3 && d < t)
        },
        || context(env, &ns, "restart", Some(&first)),
    )
    .await;
    first.proc.signal(libc::SIGKILL);
    first.proc.stop(Duration::from_secs(5));
    let client = env.admin().await;
    let at_kill = phase(
        &imaging_job(&client, &ns.name, "restart")
            .await
            .expect("job"),
    );
    assert_eq!(at_kill, "Running", "progress {done}/{total}");
    // The manifests committed while no operator runs (running pods may still finish).
    let store = output_store(env, &output);
    let before: BTreeMap<String, bytes::Bytes> = {
        let mut m = BTreeMap::new();
        for k in store.list("tasks/").await.expect("list manifests") {
            let v = store.get(&k).await.expect("manifest");
            m.insert(k, v);
        }
        m
    };
    assert!(!before.is_empty());
    let second = Operator::start(env, &ns, "op-restart-2");
    wait_phase(
        env,
        &ns,
        "restart",
        "Succeeded",
        Duration::from_secs(900),
        Some(&second),
    )
    .await;
    // No committed task ran again: every manifest is byte-for-byte the one written
    // before the restart (a re-run task writes new timings).
    for (k, v) in &before {
        let now = store.get(k).await.expect("manifest after");
        assert_eq!(&now, v, "{k} was rewritten after the operator restarted");
    }
    let after = store.list("tasks/").await.expect("list");
    assert!(
        after.len() > before.len(),
        "{} → {}",
        before.len(),
        after.len()
    );
    // One Job per stage, never a second one for a stage already started.
    let out = ns.kubectl(
        env,
        &[
            "get",
            "jobs",
            "-l",
            "aperture.dev/job=restart",
            "-o",
            "jsonpath={range .items[*]}{.metadata.labels.aperture\\.dev/stage}{\"\\n\"}{end}",
        ],
        None,
    );
    assert!(out.ok, "{}", out.stderr);
    let mut stages: Vec<&str> = out.stdout.lines().collect();
    let n = stages.len();
    stages.sort();
    stages.dedup();
    assert_eq!(stages.len(), n, "a stage has two Jobs:\n{}", out.stdout);
}

/// The `jti` of a service-account token (a JWT).
fn jti(token: &str) -> String {
    let payload = token.split('.').nth(1).expect("JWT payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .expect("base64url payload");
    let v: serde_json::Value = serde_json::from_slice(&bytes).expect("JWT claims");
    v["jti"].as_str().expect("jti").to_string()
}

/// The requests the API server's audit log records for the token with id `jti`:
/// (verb, resource, name).
fn audited(env: &Env, jti: &str) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(&env.cp.audit_log).unwrap_or_default();
    let needle = format!("JTI={jti}");
    text.lines()
        .filter(|l| l.contains(&needle))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            let o = &v["objectRef"];
            let res = match o["subresource"].as_str() {
                Some(s) => format!("{}/{s}", o["resource"].as_str().unwrap_or_default()),
                None => o["resource"].as_str().unwrap_or_default().to_string(),
            };
            (
                v["verb"].as_str().unwrap_or_default().to_string(),
                res,
                o["name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn token_of(kubeconfig: &std::path::Path) -> String {
    let text = std::fs::read_to_string(kubeconfig).expect("kubeconfig");
    text.lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .expect("token in kubeconfig")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replica_never_acts_while_the_first_holds_the_lease() {
    let Some(env) = env() else { return };
    let ns_a = TestNs::create(env, "fault-lease", None);
    // The second replica: same ServiceAccount and RBAC, its own token.
    let out = env.kubectl(
        &[
            "create",
            "token",
            "aperture",
            "-n",
            &ns_a.name,
            "--duration=24h",
        ],
        None,
    );
    assert!(out.ok, "{}", out.stderr);
    let token_b = out.stdout.trim().to_string();
    let kc_b = env
        .cp
        .kubeconfig_for_token("operator-fault-lease-b", &token_b)
        .expect("kubeconfig");
    let ns_b = TestNs {
        name: ns_a.name.clone(),
        operator_kubeconfig: kc_b,
        operator_args: ns_a.operator_args.clone(),
        rules: ns_a.rules.clone(),
    };
    let mut a = Operator::start(env, &ns_a, "replica-a");
    let holder = || {
        ns_a.kubectl(
            env,
            &[
                "get",
                "lease",
                "aperture-operator",
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ],
            None,
        )
        .stdout
    };
    wait_for(
        "replica-a to hold the Lease",
        Duration::from_secs(60),
        async || (holder() == "replica-a").then_some(()),
        || a.log_tail(20),
    )
    .await;
    let b = Operator::start(env, &ns_b, "replica-b");
    let output = ns_a.output(env, "lease");
    apply(env, &ns_a, &ical_job("lease", &output, 1));
    wait_phase(
        env,
        &ns_a,
        "lease",
        "Succeeded",
        Duration::from_secs(600),
        Some(&a),
    )
    .await;
    assert_eq!(holder(), "replica-a");

    // Everything B asked of the API server: only its Lease, read (it never writes a
    // Lease another replica holds, and touches no job, Job, Secret, pod or event).
    let jti_b = jti(&token_b);
    let b_requests = audited(env, &jti_b);
    assert!(
        !b_requests.is_empty(),
        "the audit log has no request of replica-b's token (JTI={jti_b}); is the credential id logged?"
    );
    let acted: Vec<_> = b_requests
        .iter()
        .filter(|(verb, res, _)| {
            !(res == "leases" && verb == "get")
                && !(res == "imagingjobs" && (verb == "list" || verb == "watch"))
                && !(res == "jobs" && (verb == "list" || verb == "watch"))
        })
        .collect();
    assert!(
        acted.is_empty(),
        "replica-b acted while replica-a held the Lease: {acted:?}"
    );
    // And A did the work.
    let a_writes = audited(env, &jti(&token_of(&ns_a.operator_kubeconfig)))
        .into_iter()
        .filter(|(verb, res, _)| res == "jobs" && verb == "patch")
        .count();
    assert!(a_writes > 0, "replica-a created no Job");

    // When A dies, B takes the Lease over (after leaseDurationSeconds) and then acts.
    a.proc.signal(libc::SIGKILL);
    a.proc.stop(Duration::from_secs(5));
    wait_for(
        "replica-b to take the Lease over",
        Duration::from_secs(90),
        async || (holder() == "replica-b").then_some(()),
        || b.log_tail(30),
    )
    .await;
    apply(
        env,
        &ns_a,
        &ical_job("lease-2", &ns_a.output(env, "lease-2"), 1),
    );
    wait_phase(
        env,
        &ns_a,
        "lease-2",
        "Succeeded",
        Duration::from_secs(600),
        Some(&b),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_job_mid_run_removes_its_jobs_and_pods_and_keeps_its_data() {
    let Some(env) = env() else { return };
    let ns = TestNs::create(env, "fault-delete", None);
    let operator = Operator::start(env, &ns, "op-delete");
    let output = ns.output(env, "delete");
    apply(env, &ns, &ical_job("delete", &output, 3));
    wait_for(
        "the job to be part-way",
        Duration::from_secs(300),
        async || {
            running_progress(env, &ns, "delete")
                .await
                .filter(|(d, t)| *d >= 2 && d < t)
        },
        || context(env, &ns, "delete", Some(&operator)),
    )
    .await;
    let out = ns.kubectl(
        env,
        &["get", "jobs", "-l", "aperture.dev/job=delete", "-o", "name"],
        None,
    );
    assert!(
        !out.stdout.trim().is_empty(),
        "no stage Jobs before the delete"
    );
    let out = ns.kubectl(
        env,
        &[
            "delete",
            "imagingjob",
            "delete",
            "--wait=true",
            "--timeout=120s",
        ],
        None,
    );
    assert!(out.ok, "kubectl delete: {}", out.stderr);
    // The finalizer ran and the garbage collector followed the owner references.
    wait_for(
        "the stage Jobs and their pods to be gone",
        Duration::from_secs(180),
        async || {
            let jobs = ns.kubectl(
                env,
                &["get", "jobs", "-l", "aperture.dev/job=delete", "-o", "name"],
                None,
            );
            let pods = ns.kubectl(
                env,
                &["get", "pods", "-l", "aperture.dev/job=delete", "-o", "name"],
                None,
            );
            (jobs.ok && pods.ok && jobs.stdout.trim().is_empty() && pods.stdout.trim().is_empty())
                .then_some(())
        },
        || context(env, &ns, "delete", Some(&operator)),
    )
    .await;
    assert!(
        operator.proc.pid().is_some(),
        "the operator is still running"
    );
    // The output data stays.
    let store = output_store(env, &output);
    assert!(
        store.exists("plan.json").await.expect("head"),
        "plan.json was deleted"
    );
    let manifests = store.list("tasks/").await.expect("list");
    assert!(
        manifests.len() >= 2,
        "task manifests were deleted: {manifests:?}"
    );
    let reasons = event_reasons(env, &ns, "delete");
    assert!(
        reasons.iter().any(|r| r == "Deleted"),
        "no Deleted event: {reasons:?}"
    );
}
