//! RBAC on a real control plane (`--authorization-mode=Node,RBAC`, see
//! docs/testing-kubernetes.md): the operator runs with exactly the rules the Helm chart
//! renders (the job tests show that this suffices), and here with each single rule of
//! the chart's Roles removed in turn. For every one the operator must not crash, and
//! the missing permission must show where a user looks: in the ImagingJob's status
//! when the operator can still write it, else in the operator's log (and its not
//! becoming leader or ready) — never a silent hang.
//!
//! Skips (passes with a message) without the control-plane binaries, unless
//! `APERTURE_REQUIRE_CONTROLPLANE=1`.

mod support;

use std::time::{Duration, Instant};

use support::jobs::apply;
use support::{Operator, SECRET, TestNs, env, imaging_job};

fn job(output: &str) -> String {
    format!(
        "apiVersion: aperture.dev/v1alpha1
kind: ImagingJob
metadata: {{name: rbac}}
spec:
  pipeline: invert
  input:
    simulate: {{telescope: LOW, rmax: 300, frequencyWindows: 2, ntimes: 2}}
  output: {output}
  image: {{npixel: 64, epsilon: 1.0e-5, weighting: {{type: natural}}}}
  storage: {{credentialsSecret: {SECRET}}}
"
    )
}

/// Where the missing permission must show.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Not needed when nothing fails: the job succeeds.
    Succeeds,
    /// In the ImagingJob's status (message or a condition).
    Status,
    /// The operator cannot see ImagingJobs at all: it stops at start with an error that
    /// names the permission (a Deployment shows it in CrashLoopBackOff's last log).
    StartupError,
    /// The operator cannot write the status or hold the Lease: it keeps running, does
    /// nothing to the job and says what is forbidden in its log every round.
    Log,
}

fn expectation(rule: &serde_json::Value) -> Expect {
    let res = rule["resources"].to_string();
    if res.contains("\"imagingjobs\"") {
        Expect::StartupError
    } else if res.contains("imagingjobs/status") || res.contains("leases") {
        Expect::Log
    } else if res.contains("pods") || res.contains("events") {
        Expect::Succeeds
    } else {
        Expect::Status
    }
}

/// What became of one case.
#[derive(Debug, Clone, Default)]
struct Outcome {
    phase: String,
    /// status.message and the conditions' messages.
    status_text: String,
    exited: Option<String>,
    /// Operator log lines that say "forbidden".
    log_forbidden: Vec<String>,
    /// When the expected report was first seen, after the job was submitted.
    seen_after: Option<Duration>,
}

impl Outcome {
    /// Whether the outcome is what `e` asks for.
    fn meets(&self, e: Expect) -> bool {
        let log = !self.log_forbidden.is_empty();
        match e {
            Expect::Succeeds => self.exited.is_none() && self.phase == "Succeeded",
            Expect::Status => self.exited.is_none() && self.status_text.contains("forbidden"),
            Expect::StartupError => {
                self.exited
                    .as_deref()
                    .is_some_and(|c| !c.contains("status: 0"))
                    && self
                        .log_forbidden
                        .iter()
                        .any(|l| l.contains("cannot list ImagingJobs"))
            }
            Expect::Log => self.exited.is_none() && log && self.phase.is_empty(),
        }
    }
}

/// The rule, as `resources verbs` (e.g. `jobs [list, watch, ...]`).
fn describe(rule: &serde_json::Value) -> String {
    format!("{} {}", rule["resources"], rule["verbs"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_missing_rule_is_reported_and_never_crashes_the_operator() {
    let Some(env) = env() else { return };
    // The chart's Roles and their rules, as rendered.
    let roles: Vec<(String, Vec<serde_json::Value>)> = env
        .chart_objects("rbac-probe", &[])
        .into_iter()
        .filter(|o| o["kind"] == "Role")
        .map(|o| {
            (
                o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                o["rules"].as_array().cloned().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        roles.iter().map(|(_, r)| r.len()).sum::<usize>() >= 7,
        "{roles:?}"
    );

    struct Case {
        rule: String,
        expect: Expect,
        ns: TestNs,
        op: Operator,
        outcome: Outcome,
    }
    let mut cases = Vec::new();
    for (r, (role, rules)) in roles.iter().enumerate() {
        for (i, rule) in rules.iter().enumerate() {
            let ns = TestNs::create(env, &format!("rbac-{r}-{i}"), Some((role, i)));
            let op = Operator::launch(env, &ns, &format!("op-rbac-{r}-{i}"));
            apply(env, &ns, &job(&ns.output(env, "rbac")));
            cases.push(Case {
                rule: format!("{role}: {}", describe(rule)),
                expect: expectation(rule),
                ns,
                op,
                outcome: Outcome::default(),
            });
        }
    }
    let client = env.admin().await;
    let submitted = Instant::now();
    let deadline = submitted + Duration::from_secs(120);
    loop {
        for c in cases.iter_mut().filter(|c| !c.outcome.meets(c.expect)) {
            if let Some(job) = imaging_job(&client, &c.ns.name, "rbac").await {
                let st = job
                    .status
                    .as_ref()
                    .and_then(|s| serde_json::to_value(s).ok())
                    .unwrap_or_default();
                c.outcome.phase = st["phase"].as_str().unwrap_or_default().to_string();
                let mut text = st["message"].as_str().unwrap_or_default().to_string();
                for cond in st["conditions"].as_array().into_iter().flatten() {
                    text.push_str(" | ");
                    text.push_str(cond["message"].as_str().unwrap_or_default());
                }
                c.outcome.status_text = text;
            }
            if let Some(s) = c.op.proc.exited() {
                c.outcome.exited = Some(s.to_string());
            }
            let log = std::fs::read_to_string(&c.op.proc.log).unwrap_or_default();
            c.outcome.log_forbidden = log
                .lines()
                .filter(|l| l.contains("forbidden"))
                .take(2)
                .map(|l| l.chars().take(300).collect())
                .collect();
            if c.outcome.meets(c.expect) {
                c.outcome.seen_after = Some(submitted.elapsed());
            }
        }
        if cases.iter().all(|c| c.outcome.meets(c.expect)) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut table = String::new();
    for c in &cases {
        table.push_str(&format!(
            "{} (expect {:?})\n    {:?}\n",
            c.rule, c.expect, c.outcome
        ));
    }
    eprintln!("--- outcome per removed rule ---\n{table}");
    let failed: Vec<&str> = cases
        .iter()
        .filter(|c| !c.outcome.meets(c.expect))
        .map(|c| c.rule.as_str())
        .collect();
    assert!(failed.is_empty(), "not as expected: {failed:?}\n\n{table}");
    // The operators that had to keep running still run.
    for c in &mut cases {
        if c.expect != Expect::StartupError {
            assert!(
                c.op.proc.exited().is_none(),
                "{}: the operator exited",
                c.rule
            );
        }
    }
}
