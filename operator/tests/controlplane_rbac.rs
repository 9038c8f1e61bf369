//! RBAC on a real control plane (`--authorization-mode=Node,RBAC`, see
//! docs/testing-kubernetes.md): the operator runs with exactly the rules the Helm chart
//! renders (the job tests show that this suffices), and here with each single rule of
//! the chart's Roles removed in turn. For every one the operator never exits, and the
//! missing permission shows where a user looks:
//! - in the ImagingJob's status when the operator can still write it;
//! - as a Warning Event on the job (`kubectl describe imagingjob`) when it cannot write
//!   the status (`StatusForbidden`) or cannot hold its Lease (`LeaseForbidden`, once);
//! - on `/readyz` (503 with the refused verb and resource) when it cannot list
//!   ImagingJobs or hold its Lease.
//!
//! Where the operator only waits for the permission (ImagingJobs, their status, the
//! Lease), the rule is then granted back and the same process must run the job to
//! `Succeeded`. One more operator, without the ImagingJob rule, is stopped by SIGTERM
//! while it waits; at the end every operator still runs and stops cleanly on SIGTERM.
//!
//! Skips (passes with a message) without the control-plane binaries, unless
//! `APERTURE_REQUIRE_CONTROLPLANE=1`.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;
use kube::{Api, Client};
use support::jobs::apply;
use support::process::http_get;
use support::{Env, Operator, SECRET, TestNs, env, imaging_job};

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
    /// The operator cannot list ImagingJobs: `/readyz` answers 503 naming the refused
    /// list, the log says it at every retry.
    NotReadyListForbidden,
    /// The operator cannot write the status: a Warning Event `StatusForbidden` on the job
    /// names the verb and resource; no status, no stage Job.
    StatusForbiddenEvent,
    /// The operator cannot hold its Lease: `/readyz` answers 503 naming the refused Lease
    /// request and one Warning Event `LeaseForbidden` is on the job; nothing else.
    LeaseForbiddenEvent,
}

impl Expect {
    /// Whether the operator only waits for the permission, so that granting it back
    /// must let the same process run the job.
    fn recovers(self) -> bool {
        matches!(
            self,
            Self::NotReadyListForbidden | Self::StatusForbiddenEvent | Self::LeaseForbiddenEvent
        )
    }
}

fn expectation(rule: &serde_json::Value) -> Expect {
    let res = rule["resources"].to_string();
    if res.contains("\"imagingjobs\"") {
        Expect::NotReadyListForbidden
    } else if res.contains("imagingjobs/status") {
        Expect::StatusForbiddenEvent
    } else if res.contains("leases") {
        Expect::LeaseForbiddenEvent
    } else if res.contains("pods") || res.contains("events") {
        Expect::Succeeds
    } else {
        Expect::Status
    }
}

/// What became of one case, as last seen.
#[derive(Debug, Clone, Default)]
struct Outcome {
    phase: String,
    /// status.message and the conditions' messages.
    status_text: String,
    exited: Option<String>,
    /// `/readyz`: status code and body.
    readyz: Option<(u16, String)>,
    /// Events about the job: (reason, note, series count).
    events: Vec<(String, String, Option<i32>)>,
    /// Stage Jobs in the namespace.
    stage_jobs: usize,
    /// Operator log lines that say "forbidden" (the first two).
    log_forbidden: Vec<String>,
    /// When the expected report was first seen, after the job was submitted.
    reported_after: Option<Duration>,
    /// When the job succeeded after the rule was granted back.
    recovered_after: Option<Duration>,
}

impl Outcome {
    fn alive(&self) -> bool {
        self.exited.is_none()
    }

    fn not_ready_with(&self, needles: &[&str]) -> bool {
        self.readyz
            .as_ref()
            .is_some_and(|(c, b)| *c == 503 && needles.iter().all(|n| b.contains(n)))
    }

    fn events_of(&self, reason: &str) -> Vec<&(String, String, Option<i32>)> {
        self.events.iter().filter(|e| e.0 == reason).collect()
    }

    /// Whether the outcome is the report `e` asks for.
    fn meets(&self, e: Expect) -> bool {
        if !self.alive() {
            return false;
        }
        match e {
            Expect::Succeeds => self.phase == "Succeeded",
            Expect::Status => self.status_text.contains("forbidden"),
            Expect::NotReadyListForbidden => {
                self.not_ready_with(&[
                    "forbidden to list imagingjobs.aperture.dev",
                    "cannot list resource \"imagingjobs\"",
                ]) && self
                    .log_forbidden
                    .iter()
                    .any(|l| l.contains("forbidden to list imagingjobs.aperture.dev"))
                    && self.phase.is_empty()
            }
            Expect::StatusForbiddenEvent => {
                self.events_of("StatusForbidden")
                    .iter()
                    .any(|(_, note, _)| {
                        note.contains("cannot patch imagingjobs/status")
                            && note.contains("cannot patch resource \"imagingjobs/status\"")
                    })
                    && self.phase.is_empty()
                    && self.stage_jobs == 0
            }
            Expect::LeaseForbiddenEvent => {
                let lease = self.events_of("LeaseForbidden");
                self.not_ready_with(&["leader election fails", "leases", "forbidden"])
                    && lease.len() == 1
                    && lease[0].1.contains("forbidden")
                    && lease[0].2.is_none_or(|n| n <= 1)
                    && self.events.len() == 1
                    && self.phase.is_empty()
                    && self.stage_jobs == 0
            }
        }
    }

    /// After the rule is granted back: the job succeeded and the operator is ready.
    fn recovered(&self) -> bool {
        self.alive()
            && self.phase == "Succeeded"
            && self.readyz.as_ref().is_some_and(|(c, _)| *c == 200)
    }
}

/// The rule, as `resources verbs` (e.g. `jobs [list, watch, ...]`).
fn describe(rule: &serde_json::Value) -> String {
    format!("{} {}", rule["resources"], rule["verbs"])
}

struct Case {
    rule: String,
    role: String,
    expect: Expect,
    ns: TestNs,
    op: Operator,
    outcome: Outcome,
    granted: bool,
}

impl Case {
    fn done(&self) -> bool {
        if self.expect.recovers() {
            self.outcome.recovered_after.is_some()
        } else {
            self.outcome.reported_after.is_some()
        }
    }

    async fn observe(&mut self, client: &Client) {
        let o = &mut self.outcome;
        if let Some(job) = imaging_job(client, &self.ns.name, "rbac").await {
            let st = job
                .status
                .as_ref()
                .and_then(|s| serde_json::to_value(s).ok())
                .unwrap_or_default();
            o.phase = st["phase"].as_str().unwrap_or_default().to_string();
            let mut text = st["message"].as_str().unwrap_or_default().to_string();
            for cond in st["conditions"].as_array().into_iter().flatten() {
                text.push_str(" | ");
                text.push_str(cond["message"].as_str().unwrap_or_default());
            }
            o.status_text = text;
        }
        if let Some(s) = self.op.proc.exited() {
            o.exited = Some(s.to_string());
        }
        o.readyz = http_get(self.op.port, "/readyz").ok();
        let events: Api<Event> = Api::namespaced(client.clone(), &self.ns.name);
        if let Ok(list) = events.list(&ListParams::default()).await {
            o.events = list
                .items
                .into_iter()
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("rbac"))
                .map(|e| {
                    (
                        e.reason.unwrap_or_default(),
                        e.note.unwrap_or_default(),
                        e.series.map(|s| s.count),
                    )
                })
                .collect();
        }
        let jobs: Api<Job> = Api::namespaced(client.clone(), &self.ns.name);
        if let Ok(list) = jobs.list(&ListParams::default()).await {
            o.stage_jobs = list.items.len();
        }
        let log = std::fs::read_to_string(&self.op.proc.log).unwrap_or_default();
        o.log_forbidden = log
            .lines()
            .filter(|l| l.contains("forbidden"))
            .take(2)
            .map(|l| l.chars().take(400).collect())
            .collect();
    }
}

/// Applies the chart's Role `role` for `ns` in full: the removed rule is back.
fn grant_back(env: &Env, ns: &TestNs, role: &str) {
    let full = env
        .chart_objects(&ns.name, &[])
        .into_iter()
        .find(|o| o["kind"] == "Role" && o["metadata"]["name"] == role)
        .unwrap_or_else(|| panic!("the chart renders no Role {role}"));
    let out = env.kubectl(&["apply", "-f", "-"], Some(&full.to_string()));
    assert!(out.ok, "apply Role {role}: {}", out.stderr);
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

    let mut cases = Vec::new();
    let mut list_rule = None;
    for (r, (role, rules)) in roles.iter().enumerate() {
        for (i, rule) in rules.iter().enumerate() {
            let ns = TestNs::create(env, &format!("rbac-{r}-{i}"), Some((role, i)));
            let op = Operator::launch(env, &ns, &format!("op-rbac-{r}-{i}"));
            apply(env, &ns, &job(&ns.output(env, "rbac")));
            let expect = expectation(rule);
            if expect == Expect::NotReadyListForbidden {
                list_rule = Some((role.clone(), i));
            }
            cases.push(Case {
                rule: format!("{role}: {}", describe(rule)),
                role: role.clone(),
                expect,
                ns,
                op,
                outcome: Outcome::default(),
                granted: false,
            });
        }
    }
    // One more operator that cannot list ImagingJobs, to be stopped while it waits.
    let (list_role, list_index) = list_rule.expect("the chart grants list on imagingjobs");
    let term_ns = TestNs::create(env, "rbac-sigterm", Some((&list_role, list_index)));
    let mut waiting = Operator::launch(env, &term_ns, "op-rbac-sigterm");

    let client = env.admin().await;
    let submitted = Instant::now();
    let deadline = submitted + Duration::from_secs(240);
    let mut waiting_stopped = None;
    loop {
        for c in cases.iter_mut().filter(|c| !c.done()) {
            c.observe(&client).await;
            if c.outcome.reported_after.is_none() && c.outcome.meets(c.expect) {
                c.outcome.reported_after = Some(submitted.elapsed());
            }
            if c.expect.recovers() && c.outcome.reported_after.is_some() {
                if !c.granted {
                    grant_back(env, &c.ns, &c.role);
                    c.granted = true;
                } else if c.outcome.recovered() {
                    c.outcome.recovered_after = Some(submitted.elapsed());
                }
            }
        }
        if waiting_stopped.is_none()
            && http_get(waiting.port, "/readyz").is_ok_and(|(c, b)| {
                c == 503 && b.contains("forbidden to list imagingjobs.aperture.dev")
            })
        {
            // Waiting for the permission: SIGTERM still stops it, cleanly.
            waiting_stopped = Some(waiting.proc.stop(Duration::from_secs(20)));
        }
        let all = cases.iter().all(Case::done) && waiting_stopped.is_some();
        if all || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut table = String::new();
    for c in &cases {
        table.push_str(&format!(
            "{} (expect {:?}{})\n    {:?}\n",
            c.rule,
            c.expect,
            if c.expect.recovers() {
                ", then granted back: Succeeded"
            } else {
                ""
            },
            c.outcome
        ));
    }
    eprintln!("--- outcome per removed rule ---\n{table}");
    let failed: Vec<String> = cases
        .iter()
        .filter(|c| !c.done())
        .map(|c| format!("{}\n{}", c.rule, c.op.log_tail(30)))
        .collect();
    assert!(
        failed.is_empty(),
        "not as expected:\n{}\n\n{table}",
        failed.join("\n\n")
    );
    let stopped = waiting_stopped.unwrap_or_else(|| {
        panic!(
            "the operator without list on imagingjobs never said so on /readyz:\n{}",
            waiting.log_tail(30)
        )
    });
    assert!(
        stopped.is_some_and(|s| s.success()),
        "SIGTERM while waiting for the permission: {stopped:?}\n{}",
        waiting.log_tail(30)
    );
    // Every operator still runs, and stops cleanly on SIGTERM.
    for c in &mut cases {
        assert!(
            c.op.proc.exited().is_none(),
            "{}: the operator exited",
            c.rule
        );
        let status = c.op.proc.stop(Duration::from_secs(20));
        assert!(
            status.is_some_and(|s| s.success()),
            "{}: SIGTERM gave {status:?}\n{}",
            c.rule,
            c.op.log_tail(30)
        );
    }
}
