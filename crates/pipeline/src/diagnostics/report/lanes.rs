//! Rows of the task stream: worker slots found by greedy interval partitioning, or one
//! group of rows per host when the manifests name distinct hosts.

use std::collections::BTreeMap;

/// Two intervals closer than this (seconds) count as not overlapping: a worker slot
/// starts its next task as the previous one ends.
const TOUCH_SECONDS: f64 = 1e-6;

/// Assigns each interval `(start, end)` a lane so that intervals in one lane do not
/// overlap: in order of start time, each goes to the lowest-numbered lane free at its
/// start (interval partitioning, Kleinberg & Tardos, *Algorithm Design* §4.1), which
/// uses exactly as many lanes as the most intervals open at one instant. Returns the
/// lane of each interval (in input order) and the number of lanes.
pub fn assign_lanes(intervals: &[(f64, f64)]) -> (Vec<usize>, usize) {
    let mut order: Vec<usize> = (0..intervals.len()).collect();
    order.sort_by(|&a, &b| {
        intervals[a]
            .0
            .total_cmp(&intervals[b].0)
            .then(intervals[a].1.total_cmp(&intervals[b].1))
            .then(a.cmp(&b))
    });
    let mut lane_end: Vec<f64> = Vec::new();
    let mut lane_of = vec![0; intervals.len()];
    for i in order {
        let (start, end) = intervals[i];
        let lane = match lane_end.iter().position(|&e| e <= start + TOUCH_SECONDS) {
            Some(l) => l,
            None => {
                lane_end.push(f64::NEG_INFINITY);
                lane_end.len() - 1
            }
        };
        lane_end[lane] = end.max(start);
        lane_of[i] = lane;
    }
    (lane_of, lane_end.len())
}

/// The task stream's rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    /// Row labels, top to bottom.
    pub labels: Vec<String>,
    /// The row of each bar, in the order the bars were given.
    pub row_of: Vec<usize>,
    /// Whether rows are per host (else per worker slot).
    pub by_host: bool,
}

/// One bar to place: its host (empty if unknown) and its interval.
#[derive(Debug, Clone, Copy)]
pub struct Placed<'a> {
    pub host: &'a str,
    pub start: f64,
    pub end: f64,
}

/// Rows for the bars. With at least two distinct non-empty hosts, bars are grouped by
/// host (hosts ordered by their first start, bars of unknown host last), and a host
/// running tasks at once gets one row per concurrent slot (`host`, `host #2`, …).
/// Otherwise the rows are worker slots (`slot 1`, `slot 2`, …) from [`assign_lanes`].
pub fn assign_rows(bars: &[Placed<'_>]) -> Rows {
    let mut hosts: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, b) in bars.iter().enumerate() {
        hosts.entry(b.host).or_default().push(i);
    }
    let named = hosts.keys().filter(|h| !h.is_empty()).count();
    if named < 2 {
        let (lane_of, n) = assign_lanes(&bars.iter().map(|b| (b.start, b.end)).collect::<Vec<_>>());
        return Rows {
            labels: (1..=n).map(|l| format!("slot {l}")).collect(),
            row_of: lane_of,
            by_host: false,
        };
    }
    let first = |idx: &[usize]| {
        idx.iter()
            .map(|&i| bars[i].start)
            .fold(f64::INFINITY, f64::min)
    };
    let mut groups: Vec<(&str, Vec<usize>)> = hosts.into_iter().collect();
    groups.sort_by(|a, b| {
        (a.0.is_empty())
            .cmp(&b.0.is_empty())
            .then(first(&a.1).total_cmp(&first(&b.1)))
            .then(a.0.cmp(b.0))
    });
    let mut labels = Vec::new();
    let mut row_of = vec![0; bars.len()];
    for (host, idx) in groups {
        let (lane_of, n) = assign_lanes(
            &idx.iter()
                .map(|&i| (bars[i].start, bars[i].end))
                .collect::<Vec<_>>(),
        );
        let base = labels.len();
        let name = if host.is_empty() {
            "(host unknown)"
        } else {
            host
        };
        for l in 0..n {
            labels.push(if l == 0 {
                name.to_string()
            } else {
                format!("{name} #{}", l + 1)
            });
        }
        for (k, &i) in idx.iter().enumerate() {
            row_of[i] = base + lane_of[k];
        }
    }
    Rows {
        labels,
        row_of,
        by_host: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_intervals_get_the_fewest_lanes() {
        // Hand-worked: a [0,4) and b [1,3) overlap → lanes 0, 1; c [3,5) starts as b
        // ends → lane 1; d [4,6) starts as a ends → lane 0; e [2,7) overlaps a and b →
        // lane 2. At t = 2 three intervals are open, so 3 lanes.
        let iv = [(0.0, 4.0), (1.0, 3.0), (3.0, 5.0), (4.0, 6.0), (2.0, 7.0)];
        let (lanes, n) = assign_lanes(&iv);
        assert_eq!(lanes, vec![0, 1, 1, 0, 2]);
        assert_eq!(n, 3);
    }

    #[test]
    fn input_order_does_not_matter_and_no_lane_holds_an_overlap() {
        let iv = [
            (5.0, 9.0),
            (0.0, 2.0),
            (1.0, 6.0),
            (2.0, 3.0),
            (6.0, 7.0),
            (0.5, 1.0),
        ];
        let (lanes, n) = assign_lanes(&iv);
        // At most two are open at once (e.g. (0,2) and (0.5,1); (1,6) and (5,9)).
        assert_eq!(n, 2);
        for i in 0..iv.len() {
            for j in 0..i {
                if lanes[i] == lanes[j] {
                    assert!(
                        iv[i].1 <= iv[j].0 || iv[j].1 <= iv[i].0,
                        "{i} and {j} overlap"
                    );
                }
            }
        }
        assert_eq!(assign_lanes(&[]), (vec![], 0));
    }

    #[test]
    fn rows_follow_hosts_when_there_are_several() {
        let b = |host, start, end| Placed { host, start, end };
        let bars = [
            b("pod-b", 1.0, 2.0),
            b("pod-a", 0.0, 3.0),
            b("pod-a", 1.0, 2.0),
            b("", 0.5, 1.0),
            b("pod-b", 2.0, 4.0),
        ];
        let rows = assign_rows(&bars);
        assert!(rows.by_host);
        assert_eq!(
            rows.labels,
            vec!["pod-a", "pod-a #2", "pod-b", "(host unknown)"]
        );
        assert_eq!(rows.row_of, vec![2, 0, 1, 3, 2]);
    }

    #[test]
    fn one_host_means_worker_slots() {
        let b = |start, end| Placed {
            host: "laptop",
            start,
            end,
        };
        let rows = assign_rows(&[b(0.0, 2.0), b(1.0, 3.0), b(2.0, 4.0)]);
        assert!(!rows.by_host);
        assert_eq!(rows.labels, vec!["slot 1", "slot 2"]);
        assert_eq!(rows.row_of, vec![0, 1, 0]);
    }
}
