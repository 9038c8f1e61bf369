//! Metrics: the OpenMetrics text after a few calls holds the expected samples.

use std::collections::HashMap;

use aperture_operator::metrics::{Metrics, RECONCILE_BUCKETS};

/// Parse the sample lines of an OpenMetrics text page into `series → value`, where
/// `series` is the name with its labels exactly as written. Checks the page ends with
/// `# EOF` and that no series repeats.
fn samples(text: &str) -> HashMap<String, f64> {
    assert!(text.ends_with("# EOF\n"), "no EOF marker:\n{text}");
    let mut out = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        assert!(
            out.insert(series.to_owned(), value).is_none(),
            "repeated series {series}"
        );
    }
    out
}

fn get(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples.get(series).unwrap_or_else(|| {
        panic!(
            "no series {series} in {:?}",
            samples.keys().collect::<Vec<_>>()
        )
    })
}

#[test]
fn fresh_registry_shows_zeroes_for_known_series() {
    let m = Metrics::new();
    let s = samples(&m.encode());
    assert_eq!(get(&s, "aperture_operator_reconciles_total"), 0.0);
    for phase in ["Pending", "Planning", "Running", "Succeeded", "Failed"] {
        assert_eq!(
            get(&s, &format!("aperture_operator_jobs{{phase=\"{phase}\"}}")),
            0.0
        );
    }
    for outcome in ["succeeded", "failed", "retried"] {
        assert_eq!(
            get(
                &s,
                &format!("aperture_operator_tasks_total{{outcome=\"{outcome}\"}}")
            ),
            0.0
        );
    }
    assert_eq!(
        get(&s, "aperture_operator_reconcile_duration_seconds_count"),
        0.0
    );
    let text = m.encode();
    assert!(
        text.contains("# TYPE aperture_operator_reconcile_duration_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains("# UNIT aperture_operator_reconcile_duration_seconds seconds"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE aperture_operator_jobs gauge"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE aperture_operator_reconciles counter"),
        "{text}"
    );
}

#[test]
fn counters_gauges_and_histogram_after_calls() {
    let m = Metrics::new();
    for _ in 0..3 {
        m.reconciled();
    }
    m.reconcile_failed("storage");
    m.reconcile_failed("storage");
    m.reconcile_failed("kube");
    m.tasks("succeeded", 40);
    m.tasks("succeeded", 2);
    m.tasks("failed", 3);
    m.tasks("retried", 1);
    // Three jobs; one moves Pending → Running → Succeeded, one is deleted.
    m.set_job_phase("ns/a", "Pending");
    m.set_job_phase("ns/b", "Running");
    m.set_job_phase("ns/c", "Running");
    m.set_job_phase("ns/a", "Running");
    m.set_job_phase("ns/a", "Running"); // no change
    m.set_job_phase("ns/a", "Succeeded");
    m.forget_job("ns/c");
    m.forget_job("ns/unknown");
    // Two timed reconciles: one finished explicitly, one dropped (early return).
    m.reconcile_timer().finish();
    {
        let _timer = m.reconcile_timer();
    }

    let s = samples(&m.encode());
    assert_eq!(get(&s, "aperture_operator_reconciles_total"), 3.0);
    assert_eq!(
        get(
            &s,
            "aperture_operator_reconcile_errors_total{kind=\"storage\"}"
        ),
        2.0
    );
    assert_eq!(
        get(
            &s,
            "aperture_operator_reconcile_errors_total{kind=\"kube\"}"
        ),
        1.0
    );
    assert_eq!(
        get(&s, "aperture_operator_tasks_total{outcome=\"succeeded\"}"),
        42.0
    );
    assert_eq!(
        get(&s, "aperture_operator_tasks_total{outcome=\"failed\"}"),
        3.0
    );
    assert_eq!(
        get(&s, "aperture_operator_tasks_total{outcome=\"retried\"}"),
        1.0
    );
    assert_eq!(get(&s, "aperture_operator_jobs{phase=\"Pending\"}"), 0.0);
    assert_eq!(
        get(&s, "aperture_operator_jobs{phase=\"Running\"}"),
        1.0,
        "b only"
    );
    assert_eq!(
        get(&s, "aperture_operator_jobs{phase=\"Succeeded\"}"),
        1.0,
        "a moved here"
    );
    assert_eq!(get(&s, "aperture_operator_jobs{phase=\"Failed\"}"), 0.0);

    let count = get(&s, "aperture_operator_reconcile_duration_seconds_count");
    assert_eq!(count, 2.0);
    let sum = get(&s, "aperture_operator_reconcile_duration_seconds_sum");
    assert!((0.0..60.0).contains(&sum), "sum {sum}");
    // Buckets are cumulative, end at +Inf with the count, and every bound is there.
    assert_eq!(
        get(
            &s,
            "aperture_operator_reconcile_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        count
    );
    let mut last = 0.0;
    for bound in RECONCILE_BUCKETS {
        let series = s
            .iter()
            .find(|(k, _)| {
                k.starts_with("aperture_operator_reconcile_duration_seconds_bucket{le=\"")
                    && k[k.find("le=\"").map_or(0, |i| i + 4)..]
                        .trim_end_matches("\"}")
                        .parse::<f64>()
                        .is_ok_and(|le| le == bound)
            })
            .unwrap_or_else(|| panic!("no bucket le={bound}"));
        assert!(
            *series.1 >= last && *series.1 <= count,
            "bucket {} = {}",
            series.0,
            series.1
        );
        last = *series.1;
    }
}

#[test]
fn a_job_moving_through_every_phase_is_counted_once() {
    let m = Metrics::new();
    let phases = ["Pending", "Planning", "Running", "Failed"];
    for (step, phase) in phases.iter().enumerate() {
        m.set_job_phase("ns/j", phase);
        let s = samples(&m.encode());
        for (i, other) in phases.iter().enumerate() {
            let want = if i == step { 1.0 } else { 0.0 };
            assert_eq!(
                get(&s, &format!("aperture_operator_jobs{{phase=\"{other}\"}}")),
                want,
                "step {step}"
            );
        }
    }
    m.forget_job("ns/j");
    let s = samples(&m.encode());
    let total: f64 = s
        .iter()
        .filter(|(k, _)| k.starts_with("aperture_operator_jobs{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(total, 0.0);
}

#[test]
fn per_job_figures_come_from_the_manifests_and_go_with_the_job() {
    use aperture_pipeline::tasks::TaskManifest;
    let m = |kind: &str, seconds: f64, bytes_in: u64, bytes_out: u64| -> TaskManifest {
        serde_json::from_value(serde_json::json!({
            "stage": kind, "index": 0, "kind": kind, "cycle": 0, "started_unix": 1.0,
            "seconds": seconds, "read_seconds": 0.0, "compute_seconds": 0.0,
            "write_seconds": 0.0, "bytes_in": bytes_in, "bytes_out": bytes_out,
            "windows": 1, "visibilities": 10, "peak_rss_bytes": 0, "pid": 1
        }))
        .expect("a manifest")
    };
    let metrics = Metrics::new();
    metrics.record_job(
        "ns/a",
        &[
            m("invert", 2.5, 100, 10),
            m("invert", 1.0, 50, 5),
            m("restore", 0.5, 7, 3),
        ],
    );
    let s = samples(&metrics.encode());
    assert_eq!(
        get(
            &s,
            r#"aperture_operator_job_task_seconds{job="ns/a",kind="invert"}"#
        ),
        3.5
    );
    assert_eq!(
        get(
            &s,
            r#"aperture_operator_job_task_seconds{job="ns/a",kind="restore"}"#
        ),
        0.5
    );
    assert_eq!(
        get(
            &s,
            r#"aperture_operator_job_bytes{job="ns/a",direction="in"}"#
        ),
        157.0
    );
    assert_eq!(
        get(
            &s,
            r#"aperture_operator_job_bytes{job="ns/a",direction="out"}"#
        ),
        18.0
    );
    assert_eq!(get(&s, r#"aperture_operator_job_tasks{job="ns/a"}"#), 3.0);
    metrics.forget_job("ns/a");
    let text = metrics.encode();
    assert!(!text.contains("ns/a"), "{text}");
}
