//! The page: a self-contained HTML document (inline CSS and script, data as JSON in a
//! `<script type="application/json">`, no network fetch) with the header and findings,
//! the task stream and memory chart (drawn by the script into SVG) and the tables
//! (rendered here as plain text).

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::escape::{html, json_in_script};
use super::model::Report;
use super::stats::{IMBALANCE_LIMIT, TOO_SMALL_SECONDS};
use super::units::{bytes, percent, ratio, seconds, utc};
use crate::diagnostics::RunState;

const CSS: &str = include_str!("report.css");
const JS: &str = include_str!("report.js");

/// Stage kinds in the order a job runs them (the legend's order).
const KIND_ORDER: [&str; 11] = [
    "simulate",
    "import",
    "import-commit",
    "weights",
    "invert",
    "residual",
    "predict",
    "reduce",
    "deconvolve",
    "restore",
    "unknown",
];

/// Stage kinds whose tasks the planner's per-task memory estimate is for.
const MAP_KINDS: [&str; 5] = ["simulate", "weights", "invert", "residual", "predict"];

/// Tasks listed in the peak-memory table.
const MEMORY_TABLE_ROWS: usize = 10;

/// The data the script draws from.
fn data(r: &Report<'_>) -> Value {
    let kinds: Vec<&str> = KIND_ORDER
        .iter()
        .copied()
        .filter(|k| r.bars.iter().any(|b| b.kind == *k))
        .collect();
    let bars: Vec<Value> = r
        .bars
        .iter()
        .zip(&r.rows.row_of)
        .map(|(b, &row)| {
            json!({
                "stage": b.stage, "index": b.index, "kind": b.kind, "cycle": b.cycle,
                "attempt": b.attempt, "start": b.start_unix - r.t0, "seconds": b.seconds,
                "failed": b.failed, "error": b.error, "exitCode": b.exit_code,
                "host": b.host, "pid": b.pid, "split": b.split,
                "bytesIn": b.bytes_in, "bytesOut": b.bytes_out, "windows": b.windows,
                "visibilities": b.visibilities, "peakRss": b.peak_rss_bytes,
                "phases": b.phases, "row": row,
            })
        })
        .collect();
    json!({
        "job": r.view.plan.job,
        "wall": r.wall_seconds,
        "rows": r.rows.labels,
        "byHost": r.rows.by_host,
        "kinds": kinds,
        "bars": bars,
        "estTaskMemory": r.view.plan.est_task_memory_bytes,
    })
}

/// `<tr>` of cells already escaped.
fn row(out: &mut String, cells: &[String]) {
    out.push_str("<tr>");
    for c in cells {
        let _ = write!(out, "<td>{c}</td>");
    }
    out.push_str("</tr>\n");
}

fn head(out: &mut String, cells: &[&str]) {
    out.push_str("<thead><tr>");
    for c in cells {
        let _ = write!(out, "<th>{c}</th>");
    }
    out.push_str("</tr></thead>\n");
}

fn opt_s(v: Option<f64>) -> String {
    v.map_or("–".into(), seconds)
}

fn header(out: &mut String, r: &Report<'_>) {
    let v = r.view;
    let plan = &v.plan;
    let (done, failed) = r.counts();
    let state = match &v.state {
        RunState::Succeeded => "<span class=\"ok\">succeeded</span>".to_string(),
        RunState::Failed { reason } => {
            format!("<span class=\"bad\">failed</span>: {}", html(reason))
        }
        RunState::Running => {
            "<span class=\"warn\">running (or stopped without an outcome)</span>".to_string()
        }
    };
    let task_seconds: f64 = r.bars.iter().map(|b| b.seconds).sum();
    let busy = if r.wall_seconds > 0.0 && r.max_concurrent > 0 {
        format!(
            " — {} of wall time × {} slots",
            percent(task_seconds / (r.wall_seconds * r.max_concurrent as f64)),
            r.max_concurrent
        )
    } else {
        String::new()
    };
    let rows_are = if r.rows.by_host {
        "hosts"
    } else {
        "worker slots"
    };
    let _ = write!(
        out,
        "<header><h1>aperture run report: <span id=\"job-name\">{job}</span></h1>\n<dl class=\"facts\">\
         <dt>Pipeline</dt><dd>{pipeline}</dd>\
         <dt>State</dt><dd id=\"state\">{state}</dd>\
         <dt>Wall time</dt><dd>{wall}{so_far} (from {start})</dd>\
         <dt>Tasks</dt><dd>{done} of {planned} committed; {failed} failed attempt{fs}</dd>\
         <dt>Task-seconds</dt><dd>{ts}{busy}</dd>\
         <dt>Workers</dt><dd>{nrows} task-stream rows ({rows_are}); at most {conc} tasks at once; \
         {pids} worker processes on {hosts} host{hs}; maxParallel {maxp}</dd>\
         <dt>Generated</dt><dd>{generated}</dd></dl>\n",
        job = html(&plan.job),
        pipeline = plan.spec.pipeline.name(),
        wall = seconds(r.wall_seconds),
        so_far = if v.state == RunState::Running {
            " so far"
        } else {
            ""
        },
        start = utc(r.t0),
        planned = plan.total_tasks(),
        fs = if failed == 1 { "" } else { "s" },
        ts = seconds(task_seconds),
        nrows = r.rows.labels.len(),
        conc = r.max_concurrent,
        pids = r.pids,
        hosts = r.hosts,
        hs = if r.hosts == 1 { "" } else { "s" },
        maxp = plan.spec.parallelism.max_parallel,
        generated = utc(v.generated_unix),
    );
    let mut findings: Vec<String> = Vec::new();
    let small: Vec<&str> = r
        .stages
        .iter()
        .filter(|s| s.too_small())
        .map(|s| s.name.as_str())
        .collect();
    if !small.is_empty() {
        findings.push(format!(
            "Too-small tasks (median under {TOO_SMALL_SECONDS} s, below the 1–100 s band; \
             per-task overhead dominates): {}.",
            html(&small.join(", "))
        ));
    }
    let imb: Vec<String> = r
        .stages
        .iter()
        .filter(|s| s.imbalanced())
        .map(|s| format!("{} ({})", s.name, ratio(s.imbalance())))
        .collect();
    if !imb.is_empty() {
        findings.push(format!(
            "Load imbalance (slowest task over {IMBALANCE_LIMIT}× the median; stragglers): {}.",
            html(&imb.join(", "))
        ));
    }
    if failed > 0 {
        findings.push(format!(
            "{failed} failed attempt{} (hatched bars in the task stream).",
            if failed == 1 { "" } else { "s" }
        ));
    }
    let est = plan.est_task_memory_bytes;
    let over = r
        .by_memory
        .iter()
        .filter(|&&i| {
            est > 0 && MAP_KINDS.contains(&r.bars[i].kind) && r.bars[i].peak_rss_bytes > est
        })
        .count();
    if over > 0 {
        findings.push(format!(
            "{over} map task{} peaked above the planner's memory estimate of {} per map task \
             (memory pressure, or a process baseline the estimate leaves out).",
            if over == 1 { "" } else { "s" },
            bytes(est)
        ));
    }
    if r.view.spans.is_empty() {
        findings.push("No spans recorded: figures come from the task manifests alone.".into());
    }
    if !findings.is_empty() {
        out.push_str("<ul class=\"findings\">");
        for f in findings {
            let _ = write!(out, "<li>{f}</li>");
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</header>\n");
}

fn stream_section(out: &mut String) {
    out.push_str(
        "<section id=\"stream\"><h2>Task stream</h2>\
         <p class=\"hint\">One row per worker slot (or host), one bar per task attempt, coloured \
         by stage kind; hatched bars are failed attempts. Hover a bar for its figures, click to \
         keep them below.</p>\
         <div id=\"legend\"></div><div id=\"stream-chart\"></div><div id=\"details\"></div></section>\n",
    );
}

fn stages_section(out: &mut String, r: &Report<'_>) {
    out.push_str("<section id=\"stages\"><h2>Stages</h2><table class=\"num\">\n");
    head(
        out,
        &[
            "Stage",
            "Kind",
            "Cycle",
            "Tasks done / planned",
            "Failed attempts",
            "Task-seconds",
            "Min",
            "Median",
            "Max",
            "Imbalance (max / median)",
            "Estimated task",
            "Median / estimate",
            "Bytes in",
            "Bytes out",
            "Peak RSS",
            "Flags",
        ],
    );
    out.push_str("<tbody>\n");
    for s in &r.stages {
        let mut flags = Vec::new();
        if s.too_small() {
            flags.push("<span class=\"flag\">too small</span>");
        }
        if s.imbalanced() {
            flags.push("<span class=\"flag\">imbalanced</span>");
        }
        row(
            out,
            &[
                html(&s.name),
                s.kind.to_string(),
                s.cycle.to_string(),
                format!("{} / {}", s.done, s.planned),
                s.failed_attempts.to_string(),
                seconds(s.task_seconds),
                opt_s(s.min),
                opt_s(s.median),
                opt_s(s.max),
                ratio(s.imbalance()),
                seconds(s.est_task_seconds),
                ratio(s.est_ratio()),
                bytes(s.bytes_in),
                bytes(s.bytes_out),
                bytes(s.peak_rss_bytes),
                flags.join(" "),
            ],
        );
    }
    let _ = writeln!(
        out,
        "</tbody></table><p class=\"hint\">Flags: <em>too small</em> when the median task is under \
         {TOO_SMALL_SECONDS} s (DESIGN.md's 1–100 s band); <em>imbalanced</em> when the slowest task \
         takes over {IMBALANCE_LIMIT}× the median.</p></section>"
    );
}

fn cycles_section(out: &mut String, r: &Report<'_>) {
    let last = r.cycles.iter().map(|c| c.cycle).max().unwrap_or(0);
    let has_restore = r
        .stages
        .iter()
        .any(|s| s.kind == "restore" && s.cycle == last);
    out.push_str("<section id=\"cycles\"><h2>Major cycles</h2><table class=\"num\">\n");
    head(
        out,
        &[
            "Cycle",
            "Stages run",
            "Tasks",
            "Wall span",
            "Task-seconds",
            "Mean tasks running",
        ],
    );
    out.push_str("<tbody>\n");
    for c in &r.cycles {
        let label = if c.cycle == 0 {
            "0 (initial)".to_string()
        } else if c.cycle == last && has_restore && last > 0 && r.cycles.len() > 1 {
            format!("{} (restore)", c.cycle)
        } else {
            c.cycle.to_string()
        };
        row(
            out,
            &[
                label,
                c.stages_run.to_string(),
                c.tasks.to_string(),
                seconds(c.wall),
                seconds(c.task_seconds),
                if c.wall > 0.0 {
                    format!("{:.2}", c.task_seconds / c.wall)
                } else {
                    "–".into()
                },
            ],
        );
    }
    out.push_str("</tbody></table></section>\n");
}

fn critical_section(out: &mut String, r: &Report<'_>) {
    out.push_str("<section id=\"critical\"><h2>Critical path</h2>\n");
    match &r.critical {
        None => out.push_str("<p>The plan's stage graph has a cycle; no critical path.</p>"),
        Some(c) => {
            let _ = write!(
                out,
                "<p>The heaviest chain of dependent stages, each weighing its wall span (first \
                 start to last end): <strong>{}</strong>, {} of the wall time {}; the remaining \
                 {} are gaps between stages (scheduling and orchestration).</p>\n<p class=\"path\">",
                seconds(c.seconds),
                r.critical_share().map_or("–".into(), percent),
                seconds(r.wall_seconds),
                seconds((r.wall_seconds - c.seconds).max(0.0)),
            );
            let mut first = true;
            for &i in &c.nodes {
                let s = &r.stages[i];
                if s.first_start.is_none() {
                    continue;
                }
                let _ = write!(
                    out,
                    "{}<span class=\"step\">{} <span class=\"hint\">({})</span> {}</span>",
                    if first { "" } else { " → " },
                    html(&s.name),
                    s.kind,
                    seconds(s.wall())
                );
                first = false;
            }
            out.push_str("</p>\n");
        }
    }
    out.push_str("</section>\n");
}

fn data_section(out: &mut String, r: &Report<'_>) {
    out.push_str("<section id=\"data\"><h2>Data moved</h2><table class=\"num\">\n");
    head(
        out,
        &["Stage", "Read", "Written", "Share of all bytes moved"],
    );
    out.push_str("<tbody>\n");
    let total_in: u64 = r.stages.iter().map(|s| s.bytes_in).sum();
    let total_out: u64 = r.stages.iter().map(|s| s.bytes_out).sum();
    let total = (total_in + total_out) as f64;
    for s in r.stages.iter().filter(|s| s.done > 0) {
        row(
            out,
            &[
                html(&s.name),
                bytes(s.bytes_in),
                bytes(s.bytes_out),
                if total > 0.0 {
                    percent((s.bytes_in + s.bytes_out) as f64 / total)
                } else {
                    "–".into()
                },
            ],
        );
    }
    let _ = write!(
        out,
        "<tr class=\"total\"><td>total</td><td>{}</td><td>{}</td><td></td></tr>\n</tbody></table></section>\n",
        bytes(total_in),
        bytes(total_out)
    );
}

fn memory_section(out: &mut String, r: &Report<'_>) {
    let est = r.view.plan.est_task_memory_bytes;
    let _ = writeln!(
        out,
        "<section id=\"memory\"><h2>Peak memory per task</h2><p>Peak resident set size of each \
         committed task's worker process, largest first, against the planner's estimate of \
         {} for one map task (dashed line).</p><div id=\"memory-chart\"></div>",
        bytes(est)
    );
    if r.by_memory.is_empty() {
        out.push_str("<p>No task recorded its peak memory.</p></section>\n");
        return;
    }
    out.push_str("<table class=\"num\">\n");
    head(
        out,
        &["Stage", "Index", "Host", "Peak RSS", "Peak / estimate"],
    );
    out.push_str("<tbody>\n");
    for &i in r.by_memory.iter().take(MEMORY_TABLE_ROWS) {
        let b = &r.bars[i];
        row(
            out,
            &[
                html(&b.stage),
                b.index.to_string(),
                html(&b.host),
                bytes(b.peak_rss_bytes),
                ratio((est > 0).then(|| b.peak_rss_bytes as f64 / est as f64)),
            ],
        );
    }
    out.push_str("</tbody></table></section>\n");
}

fn phases_section(out: &mut String, r: &Report<'_>) {
    out.push_str("<section id=\"phases\"><h2>Phase totals</h2>\n");
    if r.phases.is_empty() {
        out.push_str(
            "<p>No phase spans were recorded for this run (telemetry off, an older run, or the \
             workers' spans were lost); the figures above come from the task manifests.</p></section>\n",
        );
        return;
    }
    let total: f64 = r.phases.iter().map(|p| p.seconds).sum();
    out.push_str("<table class=\"num\">\n");
    head(out, &["Phase", "Seconds", "Spans", "Share", ""]);
    out.push_str("<tbody>\n");
    for p in &r.phases {
        let share = if total > 0.0 { p.seconds / total } else { 0.0 };
        row(
            out,
            &[
                html(&p.name),
                seconds(p.seconds),
                p.spans.to_string(),
                percent(share),
                format!(
                    "<div class=\"hbar\" style=\"width:{:.1}%\"></div>",
                    100.0 * share
                ),
            ],
        );
    }
    out.push_str("</tbody></table><p class=\"hint\">Seconds per phase span name over all tasks; a \
         phase nested in a phase of another name (an FFT inside gridding) counts in both.</p></section>\n");
}

fn params_section(out: &mut String, r: &Report<'_>) {
    let p = &r.view.plan;
    let im = &p.image;
    let f = &p.facts;
    out.push_str("<section id=\"params\"><h2>Parameters</h2><table class=\"kv\"><tbody>\n");
    let kv: Vec<(&str, String)> = vec![
        ("Output", html(&p.output)),
        ("Visibilities", html(&p.visibilities)),
        (
            "Image",
            format!(
                "{0} × {0} pixels of {1:.4} arcsec",
                im.npix,
                im.cell_rad.to_degrees() * 3600.0
            ),
        ),
        (
            "Phase centre",
            format!(
                "RA {:.6}°, Dec {:.6}°",
                im.phase_centre.ra.to_degrees(),
                im.phase_centre.dec.to_degrees()
            ),
        ),
        (
            "Reference frequency, bandwidth",
            format!(
                "{:.6} MHz, {:.6} MHz",
                im.ref_freq_hz * 1e-6,
                im.bandwidth_hz * 1e-6
            ),
        ),
        (
            "Gridder (highest window)",
            format!(
                "grid {} pixels, kernel support {}, {} w-planes",
                im.grid_nu, im.grid_support, im.grid_planes
            ),
        ),
        (
            "Input",
            format!(
                "{} windows × {} channels, {} times, {} baselines, {} antennas, {:.3}–{:.3} MHz, \
                 max |uv| {:.1} m, max |w| {:.1} m",
                f.nwindows,
                f.channels_per_window,
                f.ntimes,
                f.nbaselines,
                f.nantennas,
                f.freq_min_hz * 1e-6,
                f.freq_max_hz * 1e-6,
                f.max_uv_m,
                f.max_w_m
            ),
        ),
        (
            "Shards",
            format!("{} (map tasks per stage)", p.shards.len()),
        ),
        (
            "Stages, tasks",
            format!("{}, {}", p.stages.len(), p.total_tasks()),
        ),
        (
            "Estimated memory per map task",
            bytes(p.est_task_memory_bytes),
        ),
        ("Attempts per task", p.max_attempts.to_string()),
        ("Spec digest", html(&p.spec_digest)),
    ];
    for (k, v) in kv {
        let _ = writeln!(out, "<tr><th>{k}</th><td>{v}</td></tr>");
    }
    let spec = serde_json::to_string_pretty(&p.spec)
        .unwrap_or_else(|e| format!("(spec not serialisable: {e})"));
    let _ = writeln!(
        out,
        "</tbody></table><h3>ImagingJob spec</h3><pre id=\"spec\">{}</pre></section>",
        html(&spec)
    );
}

/// The whole page.
pub fn page(r: &Report<'_>) -> String {
    let mut out = String::with_capacity(64 * 1024 + 400 * r.bars.len());
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} — aperture report</title><style>{CSS}</style></head><body>\n",
        html(&r.view.plan.job)
    );
    header(&mut out, r);
    out.push_str(
        "<noscript><p class=\"note\">The task stream and the memory chart are drawn by this page's \
         script; enable JavaScript to see them. The tables need no script.</p></noscript>\n",
    );
    stream_section(&mut out);
    stages_section(&mut out, r);
    cycles_section(&mut out, r);
    critical_section(&mut out, r);
    data_section(&mut out, r);
    memory_section(&mut out, r);
    phases_section(&mut out, r);
    params_section(&mut out, r);
    let _ = write!(
        out,
        "<footer>aperture {} · report.html is self-contained: it fetches nothing.</footer>\n\
         <div id=\"tip\" class=\"tip\" hidden></div>\n\
         <script type=\"application/json\" id=\"report-data\">{}</script>\n<script>{JS}</script>\n</body></html>\n",
        env!("CARGO_PKG_VERSION"),
        json_in_script(&data(r).to_string())
    );
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{manifest, small_plan};
    use super::*;
    use crate::diagnostics::RunView;

    fn view(job: &str) -> RunView {
        let mut plan = small_plan();
        plan.job = job.into();
        let t = 1_700_000_000.0;
        let manifests = vec![
            manifest(&plan, "simulate", 0, t, 2.0),
            manifest(&plan, "invert", 0, t + 2.0, 0.5),
            manifest(&plan, "invert", 1, t + 2.0, 3.0),
            manifest(&plan, "reduce-000-1", 0, t + 5.0, 0.25),
        ];
        RunView {
            plan,
            manifests,
            spans: vec![],
            state: RunState::Failed {
                reason: "stage invert: task 2 failed 3 times <exit 137>".into(),
            },
            generated_unix: t + 60.0,
        }
    }

    /// Every `src=`, `href=`, `url(`, `@import` and `<link` in `page`, and every
    /// `http(s)://` that is not the SVG namespace.
    fn external_refs(page: &str) -> Vec<String> {
        let lower = page.to_ascii_lowercase();
        let mut found = Vec::new();
        for pat in ["src=", "href=", "@import", "<link", "url("] {
            for (i, _) in lower.match_indices(pat) {
                let tail: String = lower[i..].chars().take(40).collect();
                if pat == "url(" && tail.starts_with("url(#") {
                    continue;
                }
                found.push(tail);
            }
        }
        for pat in ["http://", "https://"] {
            for (i, _) in lower.match_indices(pat) {
                if !lower[i..].starts_with("http://www.w3.org/2000/svg\"") {
                    found.push(lower[i..].chars().take(40).collect());
                }
            }
        }
        found
    }

    #[test]
    fn the_page_references_nothing_outside_itself() {
        let page = page(&Report::new(&view("ical-low")));
        assert_eq!(external_refs(&page), Vec::<String>::new());
        // The detector finds what it should.
        assert_eq!(external_refs("<img src=\"http://x/a.png\">").len(), 2);
        assert_eq!(external_refs("a { background: url(x.png) }").len(), 1);
        assert!(!JS.contains("fetch(") && !JS.contains("XMLHttpRequest"));
        assert!(!JS.to_ascii_lowercase().contains("</script") && !CSS.contains("</style"));
    }

    #[test]
    fn a_hostile_job_name_is_escaped_everywhere() {
        let name = "</script><script>alert(1)</script>";
        let page = page(&Report::new(&view(name)));
        assert!(!page.contains("alert(1)</script>"));
        assert!(!page.contains("<script>alert"));
        // Exactly the page's two script elements open and close.
        assert_eq!(page.matches("<script").count(), 2);
        assert_eq!(page.matches("</script>").count(), 2);
        assert!(page.contains("&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
        // The embedded data still parses back to the exact name.
        let start = page.find("id=\"report-data\">").unwrap() + "id=\"report-data\">".len();
        let end = start + page[start..].find("</script>").unwrap();
        let data: Value = serde_json::from_str(&page[start..end]).unwrap();
        assert_eq!(data["job"], name);
        assert_eq!(data["bars"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn tables_show_the_figures_in_order_as_plain_text() {
        let page = page(&Report::new(&view("j")));
        let order = [
            "<header>",
            "id=\"stream\"",
            "id=\"stages\"",
            "id=\"cycles\"",
            "id=\"critical\"",
            "id=\"data\"",
            "id=\"memory\"",
            "id=\"phases\"",
            "id=\"params\"",
        ];
        let pos: Vec<usize> = order.iter().map(|p| page.find(p).expect(p)).collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{pos:?}");
        // The failure reason (escaped), invert's figures: tasks 0.5 and 3 s → median
        // 1.750 s, imbalance 3/1.75 = 1.71×, not flagged; the 0.25 s reduce is too small.
        assert!(page.contains("task 2 failed 3 times &lt;exit 137&gt;"));
        assert!(page.contains("<td>invert</td><td>invert</td><td>0</td><td>2 / 4</td>"));
        assert!(page.contains("<td>1.750 s</td><td>3.000 s</td><td>1.71×</td>"));
        assert!(page.contains("<td>reduce-000-1</td>"));
        assert!(page.contains("Too-small tasks (median under 1 s, below the 1–100 s band; per-task overhead dominates): reduce-000-1."));
        assert!(!page.contains("Load imbalance"));
        assert!(page.contains("No spans recorded"));
        assert!(page.contains("<noscript>"));
        // Data moved: 4 tasks × 1 MiB read, × 0.5 MiB written.
        assert!(
            page.contains("<tr class=\"total\"><td>total</td><td>4.00 MiB</td><td>2.00 MiB</td>")
        );
    }
}
