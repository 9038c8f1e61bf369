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

/// Splits windows with per-window costs `cost_w` into `n` contiguous shards whose costs
/// are as equal as contiguity allows: boundaries where the running cost crosses
/// i·total/n (every shard gets at least one window).
pub fn balance_shards(cost_w: &[f64], n: usize) -> Vec<Shard> {
    let nw = cost_w.len();
    let n = n.clamp(1, nw.max(1));
    if nw == 0 {
        return Vec::new();
    }
    let total: f64 = cost_w.iter().sum();
    let mut shards = Vec::with_capacity(n);
    let mut start = 0usize;
    let mut acc = 0.0;
    let mut cum = 0.0;
    for (w, c) in cost_w.iter().enumerate() {
        cum += c;
        acc += c;
        let made = shards.len();
        let remaining_shards = n - made - 1;
        let remaining_windows = nw - w - 1;
        let target = total * (made + 1) as f64 / n as f64;
        let must_cut = remaining_windows == remaining_shards;
        if remaining_shards > 0 && (cum >= target - 1e-12 * total || must_cut) {
            shards.push(Shard {
                first_window: start as u32,
                windows: (w + 1 - start) as u32,
                est_seconds: acc,
            });
            start = w + 1;
            acc = 0.0;
        }
    }
    shards.push(Shard {
        first_window: start as u32,
        windows: (nw - start) as u32,
        est_seconds: acc,
    });
    shards
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
