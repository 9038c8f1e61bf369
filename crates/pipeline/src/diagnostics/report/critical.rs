//! The critical path: the heaviest chain of stages through the plan's stage DAG, where a
//! stage weighs its wall span (first start to last end of its tasks).
//!
//! Why the wall span and not the longest task: a stage only ends when its last task
//! does, and with fewer worker slots than tasks its tasks run in waves, so the wall span
//! is what the stage really adds to the job's wall time (longest task plus queueing and
//! stragglers). Weighting by the longest task would show the path a machine with
//! unlimited workers would take, hiding exactly the waits the report is for. The path's
//! share of the job's wall time then tells how much of the run is stage work on the
//! critical chain; the rest is scheduling gaps between stages (orchestration overhead).
//! This is the classic longest path in a DAG by dynamic programming over a topological
//! order (CLRS, "Single-source shortest paths in directed acyclic graphs", with weights
//! negated; the PERT/CPM critical path).

use std::collections::HashMap;

/// A stage as the critical path sees it.
#[derive(Debug, Clone, Copy)]
pub struct Node<'a> {
    pub name: &'a str,
    pub deps: &'a [String],
    /// Seconds (non-negative).
    pub weight: f64,
}

/// The heaviest chain.
#[derive(Debug, Clone, PartialEq)]
pub struct CriticalPath {
    /// Indices into the nodes, first stage first.
    pub nodes: Vec<usize>,
    /// Sum of their weights.
    pub seconds: f64,
}

/// The heaviest dependency chain; `None` when the stage graph has a cycle (a corrupt
/// plan) or no nodes. Dependencies on unknown stage names are ignored. Ties go to the
/// stage listed first.
pub fn critical_path(nodes: &[Node<'_>]) -> Option<CriticalPath> {
    if nodes.is_empty() {
        return None;
    }
    let index: HashMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.name, i)).collect();
    let preds: Vec<Vec<usize>> = nodes
        .iter()
        .map(|n| {
            n.deps
                .iter()
                .filter_map(|d| index.get(d.as_str()).copied())
                .collect()
        })
        .collect();
    // Kahn's algorithm for a topological order.
    let mut indegree: Vec<usize> = preds.iter().map(Vec::len).collect();
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, p) in preds.iter().enumerate() {
        for &d in p {
            succs[d].push(i);
        }
    }
    let mut ready: Vec<usize> = (0..nodes.len())
        .rev()
        .filter(|&i| indegree[i] == 0)
        .collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(i) = ready.pop() {
        order.push(i);
        for &s in succs[i].iter().rev() {
            indegree[s] -= 1;
            if indegree[s] == 0 {
                ready.push(s);
            }
        }
    }
    if order.len() != nodes.len() {
        return None;
    }
    let weight = |i: usize| {
        let w = nodes[i].weight;
        if w.is_finite() && w > 0.0 { w } else { 0.0 }
    };
    let mut best = vec![0.0; nodes.len()];
    let mut from: Vec<Option<usize>> = vec![None; nodes.len()];
    for &i in &order {
        let mut b: Option<usize> = None;
        for &d in &preds[i] {
            if b.is_none_or(|x| best[d] > best[x] || (best[d] == best[x] && d < x)) {
                b = Some(d);
            }
        }
        best[i] = weight(i) + b.map_or(0.0, |x| best[x]);
        from[i] = b;
    }
    let mut end = 0;
    for i in 1..nodes.len() {
        if best[i] > best[end] {
            end = i;
        }
    }
    let mut path = vec![end];
    while let Some(p) = from[*path.last()?] {
        path.push(p);
    }
    path.reverse();
    Some(CriticalPath {
        nodes: path,
        seconds: best[end],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deps(d: &[&str]) -> Vec<String> {
        d.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn three_stage_dag_takes_the_heavier_branch() {
        // a (3 s) feeds b (10 s) and c (4 s); d (2 s) needs both. Paths: a-b-d = 15,
        // a-c-d = 9, so the critical path is a → b → d, 15 s.
        let (none, a, bc) = (deps(&[]), deps(&["a"]), deps(&["b", "c"]));
        let nodes = [
            Node {
                name: "a",
                deps: &none,
                weight: 3.0,
            },
            Node {
                name: "c",
                deps: &a,
                weight: 4.0,
            },
            Node {
                name: "b",
                deps: &a,
                weight: 10.0,
            },
            Node {
                name: "d",
                deps: &bc,
                weight: 2.0,
            },
        ];
        let p = critical_path(&nodes).unwrap();
        assert_eq!(p.nodes, vec![0, 2, 3]);
        assert_eq!(p.seconds, 15.0);
    }

    #[test]
    fn a_disconnected_heavy_stage_can_be_the_whole_path() {
        let none = deps(&[]);
        let x = deps(&["x"]);
        let nodes = [
            Node {
                name: "x",
                deps: &none,
                weight: 1.0,
            },
            Node {
                name: "y",
                deps: &x,
                weight: 1.0,
            },
            Node {
                name: "z",
                deps: &none,
                weight: 5.0,
            },
        ];
        let p = critical_path(&nodes).unwrap();
        assert_eq!((p.nodes, p.seconds), (vec![2], 5.0));
    }

    #[test]
    fn cycles_and_unknown_dependencies() {
        let (a, b) = (deps(&["b"]), deps(&["a"]));
        let looped = [
            Node {
                name: "a",
                deps: &a,
                weight: 1.0,
            },
            Node {
                name: "b",
                deps: &b,
                weight: 1.0,
            },
        ];
        assert_eq!(critical_path(&looped), None);
        assert_eq!(critical_path(&[]), None);
        let ghost = deps(&["ghost"]);
        let nodes = [Node {
            name: "a",
            deps: &ghost,
            weight: f64::NAN,
        }];
        assert_eq!(critical_path(&nodes).unwrap().seconds, 0.0);
    }
}
