//! Grouping frequency windows into shards balanced by estimated cost (not by count:
//! w-stacking cost grows with frequency, and a map task images consecutive windows in
//! batches that pay the w-planes' FFTs once per gridder call).

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

/// What each window costs a map task, and how the task batches windows: a batch of up
/// to `per_batch` consecutive windows (counted from the shard's first) is one gridder
/// call, costing the sum of its windows' gridding plus the largest of their per-call
/// plane costs (the batch's w range is its highest frequency's).
#[derive(Debug, Clone, PartialEq)]
pub struct WindowCosts {
    /// Seconds of gridding (∝ samples) per window.
    pub gridding_w: Vec<f64>,
    /// Seconds per gridder call (w-plane FFTs and screens) of a call over window w.
    pub planes_w: Vec<f64>,
    /// Windows per gridder call, at least 1.
    pub per_batch: usize,
}

impl WindowCosts {
    /// Windows imaged one per call, each costing `cost_w` in all.
    pub fn unbatched(cost_w: &[f64]) -> Self {
        Self {
            gridding_w: cost_w.to_vec(),
            planes_w: vec![0.0; cost_w.len()],
            per_batch: 1,
        }
    }

    fn len(&self) -> usize {
        self.gridding_w.len()
    }

    /// Seconds of a shard of the windows `range`.
    pub fn shard_seconds(&self, range: std::ops::Range<usize>) -> f64 {
        let mut acc = ShardAcc::default();
        for w in range {
            acc.push(self, w);
        }
        acc.seconds
    }
}

/// A shard's cost as windows are appended to it.
#[derive(Debug, Clone, Copy, Default)]
struct ShardAcc {
    seconds: f64,
    in_batch: usize,
    batch_planes: f64,
}

impl ShardAcc {
    fn push(&mut self, c: &WindowCosts, w: usize) {
        if self.in_batch == c.per_batch.max(1) {
            self.in_batch = 0;
            self.batch_planes = 0.0;
        }
        self.in_batch += 1;
        self.seconds += c.gridding_w[w];
        if c.planes_w[w] > self.batch_planes {
            self.seconds += c.planes_w[w] - self.batch_planes;
            self.batch_planes = c.planes_w[w];
        }
    }
}

/// Packs windows left to right into shards of at most `limit` cost, cutting early when
/// every window left must open a shard of its own for `n` shards to exist. Returns more
/// than `n` shards when `limit` is too small.
fn pack(c: &WindowCosts, n: usize, limit: f64) -> Vec<Shard> {
    let nw = c.len();
    let mut shards = Vec::with_capacity(n);
    let mut start = 0usize;
    let mut acc = ShardAcc::default();
    for w in 0..nw {
        let opened_after = n.saturating_sub(shards.len() + 1);
        let mut grown = acc;
        grown.push(c, w);
        if w > start && (grown.seconds > limit || nw - w == opened_after) {
            shards.push(Shard {
                first_window: start as u32,
                windows: (w - start) as u32,
                est_seconds: acc.seconds,
            });
            start = w;
            acc = ShardAcc::default();
            acc.push(c, w);
        } else {
            acc = grown;
        }
    }
    shards.push(Shard {
        first_window: start as u32,
        windows: (nw - start) as u32,
        est_seconds: acc.seconds,
    });
    shards
}

/// Splits windows into `n` contiguous shards (each at least one window) whose largest
/// cost is as small as contiguity allows: the linear partition problem, solved by
/// bisection on that largest cost with a greedy packing as the feasibility test
/// (Bokhari 1988, IEEE Trans. Comput. 37, 48). The greedy test is exact when a shard's
/// cost never falls as it gains windows at either end: always for unbatched windows,
/// and for batches of windows with equal plane costs; with plane costs that vary inside
/// a batch it is a close heuristic.
pub fn balance_shards(c: &WindowCosts, n: usize) -> Vec<Shard> {
    let nw = c.len();
    if nw == 0 {
        return Vec::new();
    }
    let n = n.clamp(1, nw);
    let total = c.shard_seconds(0..nw);
    let single = (0..nw)
        .map(|w| c.gridding_w[w] + c.planes_w[w])
        .fold(0.0, f64::max);
    let (mut lo, mut hi) = (single, total.max(single));
    // Bisect until the limit is known to a millionth of the total (or 64 halvings).
    for _ in 0..64 {
        if hi - lo <= 1e-6 * total {
            break;
        }
        let mid = 0.5 * (lo + hi);
        if pack(c, n, mid).len() <= n {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    pack(c, n, hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rising_costs_give_fewer_heavy_windows_per_shard() {
        let cost: Vec<f64> = (1..=16).map(f64::from).collect();
        let s = balance_shards(&WindowCosts::unbatched(&cost), 4);
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
        let s = balance_shards(&WindowCosts::unbatched(&cost), 2);
        assert_eq!((s[0].windows, s[1].windows), (4, 4), "{s:?}");
        // A heavy first window stands alone.
        let s = balance_shards(&WindowCosts::unbatched(&[10.0, 1.0, 1.0, 1.0]), 2);
        assert_eq!((s[0].windows, s[1].windows), (1, 3), "{s:?}");
        // Exhaustive check of small cases against every possible cut.
        for nw in 1..9usize {
            let cost: Vec<f64> = (0..nw).map(|i| 1.0 + ((i * 7) % 5) as f64).collect();
            for n in 1..=nw {
                let got = balance_shards(&WindowCosts::unbatched(&cost), n);
                let worst = got.iter().map(|s| s.est_seconds).fold(0.0, f64::max);
                assert!(
                    (worst - best_max(&cost, n)).abs() < 1e-6 * 40.0,
                    "{cost:?} {n}: {got:?}"
                );
            }
        }
    }

    /// Window costs with `per_batch` windows per gridder call.
    fn batched(gridding: &[f64], planes: &[f64], per_batch: usize) -> WindowCosts {
        WindowCosts {
            gridding_w: gridding.to_vec(),
            planes_w: planes.to_vec(),
            per_batch,
        }
    }

    /// The smallest possible largest shard cost of windows `from..` in `n` shards, by
    /// trying every cut (small cases).
    fn best_max_by(c: &WindowCosts, from: usize, n: usize) -> f64 {
        let nw = c.gridding_w.len();
        if n == 1 {
            return c.shard_seconds(from..nw);
        }
        (from + 1..=nw - (n - 1))
            .map(|k| c.shard_seconds(from..k).max(best_max_by(c, k, n - 1)))
            .fold(f64::INFINITY, f64::min)
    }

    #[test]
    fn a_batched_shard_pays_each_calls_planes_once() {
        // Batches of 3 from the shard's first window: [1,2,3] [4,5]; each call pays the
        // plane cost of its highest window.
        let c = batched(&[0.1; 6], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3);
        assert!((c.shard_seconds(0..5) - (0.5 + 3.0 + 5.0)).abs() < 1e-12);
        assert!((c.shard_seconds(1..6) - (0.5 + 4.0 + 6.0)).abs() < 1e-12);
        // Unbatched, every window pays its own.
        let c = batched(&[0.1; 3], &[1.0, 2.0, 3.0], 1);
        assert!((c.shard_seconds(0..3) - 6.3).abs() < 1e-12);
    }

    #[test]
    fn batched_shards_are_as_balanced_as_contiguity_allows() {
        // Equal plane costs: exact, checked against every cut.
        for nw in 1..10usize {
            let g: Vec<f64> = (0..nw).map(|i| 0.1 + ((i * 7) % 5) as f64 * 0.05).collect();
            for per_batch in 1..5 {
                let c = batched(&g, &vec![1.0; nw], per_batch);
                for n in 1..=nw {
                    let got = balance_shards(&c, n);
                    let worst = got.iter().map(|s| s.est_seconds).fold(0.0, f64::max);
                    let best = best_max_by(&c, 0, n);
                    assert!(
                        (worst - best).abs() < 1e-6 * 20.0,
                        "{per_batch} per batch, {n} shards: {got:?}, best {best}"
                    );
                }
            }
        }
        // The Dask comparison's ICAL (8 one-channel windows, FFT-bound, w-planes rising
        // with frequency, every shard one batch): the cheaper low-frequency side takes a
        // fifth window, which 4 + 4 by count or by summed per-window cost would not give.
        let planes: Vec<f64> = (0..8).map(|i| 0.20 + 0.01 * f64::from(i)).collect();
        let c = batched(&[0.015; 8], &planes, 8);
        let got = balance_shards(&c, 2);
        assert_eq!((got[0].windows, got[1].windows), (5, 3), "{got:?}");
        let worst = got.iter().map(|s| s.est_seconds).fold(0.0, f64::max);
        assert!((worst - best_max_by(&c, 0, 2)).abs() < 1e-9, "{got:?}");
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
        fn batched_shards_cover_every_window_once_at_their_own_cost(
            g in proptest::collection::vec(0.0f64..1.0, 1..200),
            per_batch in 1usize..9,
            n in 1usize..30,
        ) {
            let planes: Vec<f64> = (0..g.len()).map(|i| 1.0 + i as f64 * 0.01).collect();
            let c = batched(&g, &planes, per_batch);
            let s = balance_shards(&c, n);
            prop_assert_eq!(s.len(), n.min(g.len()));
            let mut next = 0usize;
            for sh in &s {
                prop_assert_eq!(sh.first_window as usize, next);
                prop_assert!(sh.windows >= 1);
                let r = next..next + sh.windows as usize;
                prop_assert!((sh.est_seconds - c.shard_seconds(r)).abs() < 1e-9);
                next += sh.windows as usize;
            }
            prop_assert_eq!(next, g.len());
        }

        #[test]
        fn shards_cover_every_window_once(cost in proptest::collection::vec(0.01f64..10.0, 1..300), n in 1usize..40) {
            let s = balance_shards(&WindowCosts::unbatched(&cost), n);
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
