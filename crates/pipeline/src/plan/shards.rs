//! Grouping frequency windows into shards balanced by estimated cost (not by count:
//! w-stacking cost grows with frequency).

use serde::{Deserialize, Serialize};

/// A contiguous run of windows handled by one map task.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Shard {
    pub first_window: u32,
    pub windows: u32,
    /// Estimated seconds of the shard's heaviest task.
    pub est_seconds: f64,
}

impl Shard {
    pub fn window_range(&self) -> std::ops::Range<u32> {
        self.first_window..self.first_window + self.windows
    }
}

/// Packs windows left to right into shards of at most `limit` cost, cutting early when
/// every window left must open a shard of its own for `n` shards to exist. Returns more
/// than `n` shards when `limit` is too small.
fn pack(cost_w: &[f64], n: usize, limit: f64) -> Vec<Shard> {
    let nw = cost_w.len();
    let mut shards = Vec::with_capacity(n);
    let (mut start, mut acc) = (0usize, 0.0);
    for (w, &c) in cost_w.iter().enumerate() {
        let opened_after = n.saturating_sub(shards.len() + 1);
        if w > start && (acc + c > limit || nw - w == opened_after) {
            shards.push(Shard {
                first_window: start as u32,
                windows: (w - start) as u32,
                est_seconds: acc,
            });
            (start, acc) = (w, 0.0);
        }
        acc += c;
    }
    shards.push(Shard {
        first_window: start as u32,
        windows: (nw - start) as u32,
        est_seconds: acc,
    });
    shards
}

/// Splits windows with per-window costs `cost_w` into `n` contiguous shards (each at
/// least one window) whose largest cost is as small as contiguity allows: the linear
/// partition problem, solved by bisection on that largest cost with a greedy packing as
/// the feasibility test (Bokhari 1988, IEEE Trans. Comput. 37, 48).
pub fn balance_shards(cost_w: &[f64], n: usize) -> Vec<Shard> {
    let nw = cost_w.len();
    if nw == 0 {
        return Vec::new();
    }
    let n = n.clamp(1, nw);
    let total: f64 = cost_w.iter().sum();
    let (mut lo, mut hi) = (cost_w.iter().copied().fold(0.0, f64::max), total);
    // Bisect until the limit is known to a millionth of the total (or 64 halvings).
    for _ in 0..64 {
        if hi - lo <= 1e-6 * total {
            break;
        }
        let mid = 0.5 * (lo + hi);
        if pack(cost_w, n, mid).len() <= n {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    pack(cost_w, n, hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rising_costs_give_fewer_heavy_windows_per_shard() {
        let cost: Vec<f64> = (1..=16).map(f64::from).collect();
        let s = balance_shards(&cost, 4);
        assert_eq!(s.len(), 4);
        assert!(s[0].windows > s[3].windows, "{s:?}");
        let max = s.iter().map(|x| x.est_seconds).fold(0.0, f64::max);
        assert!(max < 1.5 * 136.0 / 4.0, "{s:?}");
    }

    #[test]
    fn the_largest_shard_is_as_small_as_contiguity_allows() {
        // Eight windows whose w-stacking cost rises with frequency, into two shards: the
        // cut goes where the heavier side is lightest (5 + 3 would leave 1.26 to 0.74).
        let cost = [0.20, 0.21, 0.23, 0.24, 0.26, 0.27, 0.29, 0.30];
        let s = balance_shards(&cost, 2);
        assert_eq!((s[0].windows, s[1].windows), (4, 4), "{s:?}");
        // A heavy first window stands alone.
        let s = balance_shards(&[10.0, 1.0, 1.0, 1.0], 2);
        assert_eq!((s[0].windows, s[1].windows), (1, 3), "{s:?}");
        // Exhaustive check of small cases against every possible cut.
        for nw in 1..9usize {
            let cost: Vec<f64> = (0..nw).map(|i| 1.0 + ((i * 7) % 5) as f64).collect();
            for n in 1..=nw {
                let got = balance_shards(&cost, n);
                let worst = got.iter().map(|s| s.est_seconds).fold(0.0, f64::max);
                assert!(
                    (worst - best_max(&cost, n)).abs() < 1e-6 * 40.0,
                    "{cost:?} {n}: {got:?}"
                );
            }
        }
    }

    /// The smallest possible largest shard cost, by trying every cut (small cases).
    fn best_max(cost: &[f64], n: usize) -> f64 {
        if n == 1 {
            return cost.iter().sum();
        }
        (1..=cost.len() - (n - 1))
            .map(|k| {
                cost[..k]
                    .iter()
                    .sum::<f64>()
                    .max(best_max(&cost[k..], n - 1))
            })
            .fold(f64::INFINITY, f64::min)
    }

    proptest! {
        #[test]
        fn shards_cover_every_window_once(cost in proptest::collection::vec(0.01f64..10.0, 1..300), n in 1usize..40) {
            let s = balance_shards(&cost, n);
            prop_assert_eq!(s.len(), n.min(cost.len()));
            let mut next = 0u32;
            for sh in &s {
                prop_assert_eq!(sh.first_window, next);
                prop_assert!(sh.windows >= 1);
                next += sh.windows;
            }
            prop_assert_eq!(next as usize, cost.len());
            // No shard exceeds the ideal share by more than the largest single window.
            let total: f64 = cost.iter().sum();
            let big = cost.iter().cloned().fold(0.0, f64::max);
            for sh in &s {
                prop_assert!(sh.est_seconds <= total / s.len() as f64 + big + 1e-9);
            }
        }
    }
}
