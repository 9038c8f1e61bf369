//! Frequency windows of the output: runs of equally many consecutive channels, never
//! crossing a spectral window, in selection order; and groups of windows read in one
//! pass over the main table within a memory budget.

use std::ops::Range;

use crate::error::MsError;

/// One output frequency window.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowPlan {
    /// Index of the spectral window in the selection.
    pub spw: usize,
    /// SPECTRAL_WINDOW id.
    pub spw_id: usize,
    /// Channels of the spectral window (its own numbering).
    pub chans: Range<usize>,
    /// Their frequencies, Hz.
    pub freq_hz: Vec<f64>,
}

/// Splits each selected spectral window (id, selected channels, their frequencies) into
/// windows of `channels_per_window` channels; by default one window per spectral window,
/// which needs them all to have the same number of selected channels.
pub fn plan_windows(
    spws: &[(usize, Range<usize>, Vec<f64>)],
    channels_per_window: Option<usize>,
) -> Result<Vec<WindowPlan>, MsError> {
    let counts: Vec<usize> = spws.iter().map(|s| s.1.len()).collect();
    let cpw = match channels_per_window {
        Some(0) => {
            return Err(MsError::selection(
                "--channels-per-window",
                "must be at least 1",
            ));
        }
        Some(c) => c,
        None => {
            let first = counts.first().copied().unwrap_or(0);
            if counts.iter().any(|&n| n != first) {
                return Err(MsError::selection(
                    "--channels-per-window",
                    format!(
                        "the selected spectral windows have {} channels; windows must be \
                         equal, so choose a width dividing each (e.g. {})",
                        list(&counts),
                        counts.iter().fold(0, |a, &b| gcd(a, b))
                    ),
                ));
            }
            first
        }
    };
    if let Some((s, n)) = spws
        .iter()
        .zip(&counts)
        .find(|(_, n)| !n.is_multiple_of(cpw))
    {
        return Err(MsError::selection(
            "--channels-per-window",
            format!(
                "{cpw} does not divide the {n} selected channels of spectral window {} into \
                 equal windows (windows never cross spectral windows)",
                s.0
            ),
        ));
    }
    let mut out = Vec::new();
    for (i, (id, chans, freq)) in spws.iter().enumerate() {
        for k in 0..chans.len() / cpw {
            out.push(WindowPlan {
                spw: i,
                spw_id: *id,
                chans: chans.start + k * cpw..chans.start + (k + 1) * cpw,
                freq_hz: freq[k * cpw..(k + 1) * cpw].to_vec(),
            });
        }
    }
    Ok(out)
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn list(v: &[usize]) -> String {
    v.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Groups consecutive windows of one spectral window so that each group's blocks take at
/// most `budget_bytes` (every group holds at least one window). `bytes_per_channel` is
/// the memory of one channel of one block.
pub fn group_windows(
    windows: &[WindowPlan],
    bytes_per_channel: usize,
    budget_bytes: usize,
) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut used = 0usize;
    for (w, win) in windows.iter().enumerate() {
        let need = win.chans.len().saturating_mul(bytes_per_channel);
        let fits = groups.last().is_some_and(|g| {
            windows[g[0]].spw == win.spw && used.saturating_add(need) <= budget_bytes
        });
        if fits {
            if let Some(g) = groups.last_mut() {
                g.push(w);
            }
            used += need;
        } else {
            groups.push(vec![w]);
            used = need;
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spw(id: usize, chans: Range<usize>) -> (usize, Range<usize>, Vec<f64>) {
        let f = chans.clone().map(|c| 1e8 + c as f64).collect();
        (id, chans, f)
    }

    #[test]
    fn one_window_per_spw_by_default() {
        let w = plan_windows(&[spw(0, 2..6), spw(3, 0..4)], None).unwrap();
        assert_eq!(w.len(), 2);
        assert_eq!((w[1].spw, w[1].spw_id, w[1].chans.clone()), (1, 3, 0..4));
        assert_eq!(w[0].freq_hz, [1e8 + 2.0, 1e8 + 3.0, 1e8 + 4.0, 1e8 + 5.0]);
        let e = plan_windows(&[spw(0, 0..4), spw(1, 0..6)], None).unwrap_err();
        assert!(e.to_string().contains("e.g. 2"), "{e}");
    }

    #[test]
    fn windows_split_within_spws() {
        let w = plan_windows(&[spw(0, 0..4), spw(1, 0..6)], Some(2)).unwrap();
        assert_eq!(w.len(), 5);
        assert_eq!((w[2].spw_id, w[2].chans.clone()), (1, 0..2));
        assert_eq!(w[2].freq_hz, [1e8, 1e8 + 1.0]);
        let e = plan_windows(&[spw(0, 0..4), spw(1, 0..6)], Some(4)).unwrap_err();
        assert!(e.to_string().contains("spectral window 1"), "{e}");
    }

    #[test]
    fn groups_stay_within_a_spw_and_the_budget() {
        let w = plan_windows(&[spw(0, 0..6), spw(1, 0..2)], Some(1)).unwrap();
        assert_eq!(
            group_windows(&w, 10, 25),
            [vec![0, 1], vec![2, 3], vec![4, 5], vec![6, 7]]
        );
        assert_eq!(
            group_windows(&w, 10, 5),
            (0..8).map(|w| vec![w]).collect::<Vec<_>>()
        );
        assert_eq!(
            group_windows(&w, 10, 1000),
            [vec![0, 1, 2, 3, 4, 5], vec![6, 7]]
        );
    }
}
