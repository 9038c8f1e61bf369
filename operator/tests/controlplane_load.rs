//! LOAD TEST OF THE OPERATOR ALONE, on a real control plane (see
//! docs/testing-kubernetes.md): concurrent ImagingJobs whose pods go to the test node
//! agent's `instant` node, which reports every pod Succeeded at once without running
//! anything. So the workers' work is not measured, only what the operator (and the
//! Kubernetes controllers under it) do: every stage Job of every job is created,
//! observed and completed. Reported: wall time, reconcile latency (the operator's own
//! histogram), API requests per job (the API server's audit log, by the operator's
//! token) and the operator's memory.
//!
//! Size: `APERTURE_LOAD_JOBS` × `APERTURE_LOAD_WINDOWS` (default 2 × 20, a smoke run;
//! the figure is 20 × 500), one window per shard so that every window is a
//! task, as in a job whose windows are large. Since no task runs, no manifest is written, and the
//! job's last steps (reading the products from the final manifest) cannot succeed: a
//! job counts as done when all its planned tasks are done.
//!
//! Skips (passes with a message) without the control-plane binaries, unless
//! `APERTURE_REQUIRE_CONTROLPLANE=1`.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use support::jobs::apply;
use support::{INSTANT_TAINT, NODE_LABEL, Operator, SECRET, TestNs, env, imaging_job, wait_for};

fn var(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn job(name: &str, output: &str, windows: u32) -> String {
    format!(
        "apiVersion: aperture.dev/v1alpha1
kind: ImagingJob
metadata: {{name: {name}}}
spec:
  pipeline: invert
  input:
    simulate: {{telescope: LOW, rmax: 600, frequencyWindows: {windows}, ntimes: 7}}
  output: {output}
  image: {{npixel: 512, weighting: {{type: natural}}}}
  parallelism: {{windowsPerShard: 1}}
  workers:
    nodeSelector: {{{NODE_LABEL}: instant}}
    tolerations: [{{key: {INSTANT_TAINT}, operator: Exists, effect: NoSchedule}}]
  storage: {{credentialsSecret: {SECRET}}}
"
    )
}

/// (count, sum, [(upper bound, cumulative count)]) of a Prometheus histogram.
fn histogram(metrics: &str, name: &str) -> (f64, f64, Vec<(f64, f64)>) {
    let mut count = 0.0;
    let mut sum = 0.0;
    let mut buckets = Vec::new();
    for l in metrics.lines() {
        let mut parts = l.rsplitn(2, ' ');
        let value: f64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let key = parts.next().unwrap_or_default();
        if key == format!("{name}_count") {
            count = value;
        } else if key == format!("{name}_sum") {
            sum = value;
        } else if let Some(rest) = key.strip_prefix(&format!("{name}_bucket{{le=\"")) {
            let le = rest.trim_end_matches("\"}");
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::INFINITY)
            };
            buckets.push((le, value));
        }
    }
    (count, sum, buckets)
}

/// The smallest bucket bound under which fraction `q` of the observations fall.
fn quantile(buckets: &[(f64, f64)], count: f64, q: f64) -> f64 {
    buckets
        .iter()
        .find(|(_, c)| *c >= q * count)
        .map(|(le, _)| *le)
        .unwrap_or(f64::INFINITY)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_of_the_operator_alone() {
    let Some(env) = env() else { return };
    let jobs = var("APERTURE_LOAD_JOBS", 2);
    let windows = var("APERTURE_LOAD_WINDOWS", 20);
    let ns = TestNs::create(env, "load", None);
    let operator = Operator::start(env, &ns, "op-load");
    let token = std::fs::read_to_string(&ns.operator_kubeconfig)
        .expect("kubeconfig")
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: ").map(str::to_string))
        .expect("token");
    let audit_before = std::fs::metadata(&env.cp.audit_log)
        .map(|m| m.len())
        .unwrap_or(0);
    let (ok_before, _) = env.instant.counts();
    let start = Instant::now();
    let names: Vec<String> = (0..jobs).map(|i| format!("load-{i}")).collect();
    let manifests: String = names
        .iter()
        .map(|n| job(n, &ns.output(env, n), windows))
        .collect::<Vec<_>>()
        .join("---\n");
    apply(env, &ns, &manifests);

    let client = env.admin().await;
    let mut tasks_per_job = 0u32;
    let phases = wait_for(
        &format!("{jobs} jobs × {windows} windows to finish all their tasks"),
        Duration::from_secs(3600),
        async || {
            let mut phases = BTreeMap::new();
            for n in &names {
                let j = imaging_job(&client, &ns.name, n).await?;
                let st = serde_json::to_value(j.status.as_ref()?).ok()?;
                let phase = st["phase"].as_str().unwrap_or_default().to_string();
                let (d, t) = st["progress"].as_str()?.split_once('/')?;
                let (d, t): (u32, u32) = (d.parse().ok()?, t.parse().ok()?);
                if phase == "Failed" && d < t {
                    panic!("{n} failed before its tasks were done: {st:#}");
                }
                if d < t || t == 0 {
                    return None;
                }
                tasks_per_job = t;
                *phases.entry(phase).or_insert(0u32) += 1;
            }
            Some(phases)
        },
        || support::context(env, &ns, "load-0", Some(&operator)),
    )
    .await;
    let wall = start.elapsed();

    let metrics = operator.metrics();
    let (count, sum, buckets) = histogram(&metrics, "aperture_operator_reconcile_duration_seconds");
    let audit = std::fs::read(&env.cp.audit_log).unwrap_or_default();
    let audit = String::from_utf8_lossy(&audit[audit_before as usize..]).into_owned();
    let claims = token.split('.').nth(1).expect("JWT");
    let jti = {
        use base64::Engine as _;
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .expect("claims");
        serde_json::from_slice::<serde_json::Value>(&b).expect("claims")["jti"]
            .as_str()
            .expect("jti")
            .to_string()
    };
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    let mut requests = 0u64;
    for l in audit.lines().filter(|l| l.contains(&format!("JTI={jti}"))) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(l) else {
            continue;
        };
        let o = &v["objectRef"];
        let res = match o["subresource"].as_str() {
            Some(s) => format!("{}/{s}", o["resource"].as_str().unwrap_or_default()),
            None => o["resource"].as_str().unwrap_or_default().to_string(),
        };
        *by_kind
            .entry(format!("{} {res}", v["verb"].as_str().unwrap_or_default()))
            .or_insert(0) += 1;
        requests += 1;
    }
    let (ok_after, _) = env.instant.counts();
    let pods = ok_after - ok_before;
    let rss = operator.peak_rss_kib().unwrap_or(0);
    let report = format!(
        "LOAD TEST OF THE OPERATOR ALONE (pods completed at once by the test node agent, nothing run)\n\
         jobs: {jobs} × {windows} windows, {tasks_per_job} tasks each; end phases {phases:?}\n\
         wall time to all tasks done: {:.1} s; pods completed: {pods} ({:.1} pods/s)\n\
         reconciles: {count}, mean latency {:.1} ms, p50 ≤ {} s, p99 ≤ {} s\n\
         API requests by the operator: {requests} ({:.1} per job); by kind: {by_kind:?}\n\
         operator peak RSS: {:.1} MiB",
        wall.as_secs_f64(),
        pods as f64 / wall.as_secs_f64(),
        1e3 * sum / count.max(1.0),
        quantile(&buckets, count, 0.5),
        quantile(&buckets, count, 0.99),
        requests as f64 / f64::from(jobs),
        rss as f64 / 1024.0,
    );
    eprintln!("\n{report}\n");
    assert!(count > 0.0, "no reconcile measured:\n{metrics}");
    assert!(requests > 0, "no request of the operator in the audit log");
    assert!(operator.proc.pid().is_some());
}
