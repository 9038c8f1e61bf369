//! Where solutions live: time intervals (seconds) and frequency cells (Hz ranges, or all
//! frequencies for T), how rows and channels map onto them, and how they are derived
//! from a block's times and channels.

use serde::{Deserialize, Serialize};

use super::spec::SolutionType;
use crate::ImagingError;
use crate::vis::VisBlock;

/// A time within this fraction of |t| (at least 1e-12 s) beyond the first or last edge
/// still belongs to the table (file round trips and arithmetic on the edges).
pub const TIME_REL_TOL: f64 = 1e-12;
/// A frequency within this fraction of itself of a cell's range belongs to it.
pub const FREQ_REL_TOL: f64 = 1e-9;
/// Relative slack when grouping times into intervals, so an interval of exactly k
/// integration times holds k of them despite rounding.
const GROUPING_SLACK: f64 = 1e-9;

/// The frequency axis of a solution set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FreqCells {
    /// One cell for every frequency (T solutions).
    All,
    /// Disjoint [f_lo, f_hi] ranges in Hz, ascending; a channel belongs to the range
    /// holding its centre frequency (G: one range per window, B: one per channel).
    Ranges(Vec<[f64; 2]>),
}

impl FreqCells {
    pub fn len(&self) -> usize {
        match self {
            Self::All => 1,
            Self::Ranges(r) => r.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One cell spanning the channel frequencies `freq_c` (one window).
    pub fn window(freq_c: &[f64]) -> Result<Self, ImagingError> {
        check_freqs(freq_c)?;
        let lo = freq_c.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = freq_c.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Ok(Self::Ranges(vec![[lo, hi]]))
    }

    /// One cell per group of `channels_per_window` consecutive channels of `freq_c`.
    pub fn windows(freq_c: &[f64], channels_per_window: usize) -> Result<Self, ImagingError> {
        check_freqs(freq_c)?;
        if channels_per_window == 0 || !freq_c.len().is_multiple_of(channels_per_window) {
            return Err(ImagingError::invalid(
                "channels_per_window",
                format!(
                    "{channels_per_window} does not divide the {} channels into windows",
                    freq_c.len()
                ),
            ));
        }
        let ranges = freq_c
            .chunks(channels_per_window)
            .map(|w| {
                let lo = w.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                [lo, hi]
            })
            .collect();
        let cells = Self::Ranges(sorted(ranges));
        cells.validate()?;
        Ok(cells)
    }

    /// One cell per channel.
    pub fn channels(freq_c: &[f64]) -> Result<Self, ImagingError> {
        check_freqs(freq_c)?;
        let cells = Self::Ranges(sorted(freq_c.iter().map(|&f| [f, f]).collect()));
        cells.validate()?;
        Ok(cells)
    }

    /// The cell holding frequency `f`, if any.
    pub fn cell_of(&self, f: f64) -> Option<usize> {
        match self {
            Self::All => Some(0),
            Self::Ranges(r) => {
                let slack = FREQ_REL_TOL * f.abs();
                // The first range whose upper edge reaches f; it holds f if its lower edge
                // is not above it.
                let i = r.partition_point(|c| c[1] + slack < f);
                (i < r.len() && r[i][0] - slack <= f).then_some(i)
            }
        }
    }

    /// Checks that ranges are finite, positive, ordered and disjoint (beyond the lookup
    /// tolerance); the error names `frequency_cells`.
    pub fn validate(&self) -> Result<(), ImagingError> {
        let Self::Ranges(r) = self else {
            return Ok(());
        };
        if r.is_empty() {
            return Err(ImagingError::invalid("frequency_cells", "no cells"));
        }
        for (i, c) in r.iter().enumerate() {
            if !(c[0].is_finite() && c[1].is_finite() && c[0] > 0.0 && c[0] <= c[1]) {
                return Err(ImagingError::invalid(
                    "frequency_cells",
                    format!(
                        "cell {i} is [{}, {}] Hz; need 0 < f_lo <= f_hi, finite",
                        c[0], c[1]
                    ),
                ));
            }
            if i > 0 {
                let prev = r[i - 1][1];
                if c[0] - FREQ_REL_TOL * c[0] <= prev + FREQ_REL_TOL * prev {
                    return Err(ImagingError::invalid(
                        "frequency_cells",
                        format!(
                            "cell {i} [{}, {}] Hz overlaps or precedes cell {} (ending at {prev} Hz); \
                             cells must be ascending and disjoint",
                            c[0],
                            c[1],
                            i - 1
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn sorted(mut r: Vec<[f64; 2]>) -> Vec<[f64; 2]> {
    r.sort_by(|a, b| a[0].total_cmp(&b[0]));
    r
}

fn check_freqs(freq_c: &[f64]) -> Result<(), ImagingError> {
    if freq_c.is_empty() {
        return Err(ImagingError::invalid("freq", "no channels"));
    }
    if let Some(i) = freq_c.iter().position(|f| !(f.is_finite() && *f > 0.0)) {
        return Err(ImagingError::invalid(
            "freq",
            format!(
                "channel {i} has frequency {} Hz; must be positive",
                freq_c[i]
            ),
        ));
    }
    Ok(())
}

/// The solution grid: time intervals × frequency cells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SolutionLayout {
    /// [t_start, t_end] in seconds, ascending and disjoint; interval k holds
    /// t_start ≤ t < t_end, the last one also t = t_end.
    pub intervals: Vec<[f64; 2]>,
    pub cells: FreqCells,
}

impl SolutionLayout {
    /// The layout of `block` for a solution type: intervals from its row times
    /// ([`time_intervals`]) and cells for T (all), G (one window: the block) or B (each
    /// channel).
    pub fn for_block(
        block: &VisBlock,
        solution: SolutionType,
        interval_s: Option<f64>,
    ) -> Result<Self, ImagingError> {
        let intervals = time_intervals(&block.time_r, interval_s)?;
        let cells = match solution {
            SolutionType::T => FreqCells::All,
            SolutionType::G => FreqCells::window(&block.freq_c)?,
            SolutionType::B => FreqCells::channels(&block.freq_c)?,
        };
        Ok(Self { intervals, cells })
    }

    pub fn n_intervals(&self) -> usize {
        self.intervals.len()
    }

    pub fn n_cells(&self) -> usize {
        self.cells.len()
    }

    /// Interval centres, seconds.
    pub fn interval_centres(&self) -> Vec<f64> {
        self.intervals
            .iter()
            .map(|iv| 0.5 * (iv[0] + iv[1]))
            .collect()
    }

    /// The interval holding time `t`, if any.
    pub fn interval_of(&self, t: f64) -> Option<usize> {
        let iv = &self.intervals;
        if iv.is_empty() || !t.is_finite() {
            return None;
        }
        let slack = TIME_REL_TOL * t.abs().max(1.0);
        let i = iv.partition_point(|x| x[0] <= t);
        if i == 0 {
            return (iv[0][0] - t <= slack).then_some(0);
        }
        let k = i - 1;
        let last = k + 1 == iv.len();
        if t < iv[k][1] || (last && t - iv[k][1] <= slack) {
            Some(k)
        } else {
            None
        }
    }

    /// The interval of each row time; the error names the first time outside the table.
    pub fn row_intervals(&self, time_r: &[f64]) -> Result<Vec<usize>, ImagingError> {
        let mut out = Vec::with_capacity(time_r.len());
        // Rows come in runs of equal times: look each distinct run up once.
        let mut last: Option<(f64, usize)> = None;
        for (r, &t) in time_r.iter().enumerate() {
            if let Some((lt, k)) = last
                && lt == t
            {
                out.push(k);
                continue;
            }
            let k = self.interval_of(t).ok_or_else(|| {
                ImagingError::invalid(
                    "time",
                    format!(
                        "row {r} has time {t} s, outside the solution intervals ({})",
                        self.describe_intervals()
                    ),
                )
            })?;
            last = Some((t, k));
            out.push(k);
        }
        Ok(out)
    }

    /// The cell of each channel; the error names the first frequency outside the cells.
    pub fn channel_cells(&self, freq_c: &[f64]) -> Result<Vec<usize>, ImagingError> {
        freq_c
            .iter()
            .enumerate()
            .map(|(c, &f)| {
                self.cells.cell_of(f).ok_or_else(|| {
                    ImagingError::invalid(
                        "freq",
                        format!(
                            "channel {c} at {f} Hz is in none of the frequency cells ({})",
                            self.describe_cells()
                        ),
                    )
                })
            })
            .collect()
    }

    /// `[t0, t1] s` or `N intervals over [t0, t1] s`.
    pub fn describe_intervals(&self) -> String {
        match self.intervals.as_slice() {
            [] => "none".into(),
            [one] => format!("[{}, {}] s", one[0], one[1]),
            [first, .., last] => format!(
                "{} intervals over [{}, {}] s",
                self.intervals.len(),
                first[0],
                last[1]
            ),
        }
    }

    /// `all frequencies`, `[f0, f1] Hz` or `N cells over [f0, f1] Hz`.
    pub fn describe_cells(&self) -> String {
        match &self.cells {
            FreqCells::All => "all frequencies".into(),
            FreqCells::Ranges(r) => match r.as_slice() {
                [] => "none".into(),
                [one] => format!("[{}, {}] Hz", one[0], one[1]),
                [first, .., last] => {
                    format!("{} cells over [{}, {}] Hz", r.len(), first[0], last[1])
                }
            },
        }
    }

    /// Checks intervals (finite, start ≤ end, ascending, disjoint) and cells.
    pub fn validate(&self) -> Result<(), ImagingError> {
        if self.intervals.is_empty() {
            return Err(ImagingError::invalid("intervals", "no intervals"));
        }
        for (i, iv) in self.intervals.iter().enumerate() {
            if !(iv[0].is_finite() && iv[1].is_finite() && iv[0] <= iv[1]) {
                return Err(ImagingError::invalid(
                    "intervals",
                    format!(
                        "interval {i} is [{}, {}] s; need finite start <= end",
                        iv[0], iv[1]
                    ),
                ));
            }
            if i > 0 && iv[0] < self.intervals[i - 1][1] {
                return Err(ImagingError::invalid(
                    "intervals",
                    format!(
                        "interval {i} starts at {} s, before interval {} ends ({} s); intervals \
                         must be ascending and disjoint",
                        iv[0],
                        i - 1,
                        self.intervals[i - 1][1]
                    ),
                ));
            }
        }
        self.cells.validate()
    }
}

/// Solution intervals for rows at times `time_r` (seconds).
///
/// The distinct times, sorted, are grouped greedily: a group starts at its first time
/// t_first and holds the following times t with t − t_first < interval (with a relative
/// slack of 1e-9, so an interval of exactly k integrations holds k of them); `None`
/// gives one group. Interval edges are the first and last times of the data and,
/// between groups, the midpoint between the last time of one and the first of the next,
/// so no data time lies on an inner edge.
pub fn time_intervals(
    time_r: &[f64],
    interval_s: Option<f64>,
) -> Result<Vec<[f64; 2]>, ImagingError> {
    if let Some(i) = time_r.iter().position(|t| !t.is_finite()) {
        return Err(ImagingError::NonFinite {
            name: "time".into(),
            index: i,
        });
    }
    if let Some(d) = interval_s
        && (d.is_nan() || d <= 0.0)
    {
        return Err(ImagingError::invalid(
            "interval",
            format!("{d} s; must be a positive number of seconds"),
        ));
    }
    let mut times = time_r.to_vec();
    times.sort_by(f64::total_cmp);
    times.dedup();
    let (Some(&first), Some(&last)) = (times.first(), times.last()) else {
        return Err(ImagingError::invalid("time", "no rows"));
    };
    let Some(d) = interval_s.filter(|d| d.is_finite()) else {
        return Ok(vec![[first, last]]);
    };
    let limit = d * (1.0 - GROUPING_SLACK);
    // (first, last) time of each group.
    let mut groups: Vec<[f64; 2]> = Vec::new();
    for &t in &times {
        match groups.last_mut() {
            Some(g) if t - g[0] < limit => g[1] = t,
            _ => groups.push([t, t]),
        }
    }
    let mut edges = Vec::with_capacity(groups.len());
    for (k, g) in groups.iter().enumerate() {
        let start = if k == 0 {
            first
        } else {
            0.5 * (groups[k - 1][1] + g[0])
        };
        let end = if k + 1 == groups.len() {
            last
        } else {
            0.5 * (g[1] + groups[k + 1][0])
        };
        edges.push([start, end]);
    }
    Ok(edges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_group_whole_integrations() {
        let t: Vec<f64> = (0..7).map(|k| 100.0 + 10.0 * k as f64).collect();
        let rows: Vec<f64> = t.iter().flat_map(|&x| [x, x, x]).collect();
        assert_eq!(time_intervals(&rows, None).unwrap(), vec![[100.0, 160.0]]);
        // 20 s = 2 integrations per interval: {100,110} {120,130} {140,150} {160}.
        let iv = time_intervals(&rows, Some(20.0)).unwrap();
        assert_eq!(
            iv,
            vec![
                [100.0, 115.0],
                [115.0, 135.0],
                [135.0, 155.0],
                [155.0, 160.0]
            ]
        );
        let layout = SolutionLayout {
            intervals: iv,
            cells: FreqCells::All,
        };
        let k = layout.row_intervals(&rows).unwrap();
        assert_eq!(
            k,
            [
                0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 3, 3, 3
            ]
        );
        assert_eq!(layout.interval_of(99.0), None);
        assert_eq!(layout.interval_of(160.0), Some(3));
        assert_eq!(layout.interval_of(160.0 + 1e-11), Some(3));
        assert_eq!(layout.interval_of(161.0), None);
        assert_eq!(layout.interval_of(f64::NAN), None);
        assert!(
            layout
                .row_intervals(&[120.0, 170.0])
                .unwrap_err()
                .to_string()
                .contains("170")
        );
        // Exactly one integration per interval despite rounding of the spacing.
        let t: Vec<f64> = (0..5).map(|k| 0.1 * k as f64).collect();
        assert_eq!(time_intervals(&t, Some(0.1)).unwrap().len(), 5);
        assert!(time_intervals(&[1.0, f64::NAN], None).is_err());
        assert!(time_intervals(&[], None).is_err());
        assert!(time_intervals(&[1.0], Some(-1.0)).is_err());
    }

    #[test]
    fn cells_for_windows_channels_and_lookup() {
        let f = [1.0e8, 1.1e8, 1.2e8, 1.3e8];
        let w = FreqCells::windows(&f, 2).unwrap();
        assert_eq!(w, FreqCells::Ranges(vec![[1.0e8, 1.1e8], [1.2e8, 1.3e8]]));
        assert_eq!(w.cell_of(1.05e8), Some(0));
        assert_eq!(w.cell_of(1.15e8), None);
        assert_eq!(w.cell_of(1.3e8 * (1.0 + 1e-12)), Some(1));
        assert!(FreqCells::windows(&f, 3).is_err());
        let c = FreqCells::channels(&[1.3e8, 1.0e8]).unwrap();
        assert_eq!(c, FreqCells::Ranges(vec![[1.0e8, 1.0e8], [1.3e8, 1.3e8]]));
        assert_eq!(c.cell_of(1.3e8), Some(1));
        assert!(FreqCells::channels(&[1e8, 1e8]).is_err());
        assert_eq!(FreqCells::All.cell_of(5.0), Some(0));
        let layout = SolutionLayout {
            intervals: vec![[0.0, 1.0]],
            cells: w,
        };
        let err = layout.channel_cells(&[1.0e8, 1.15e8]).unwrap_err();
        assert!(err.to_string().contains("115000000"), "{err}");
        assert!(
            SolutionLayout {
                intervals: vec![[0.0, 2.0], [1.0, 3.0]],
                cells: FreqCells::All
            }
            .validate()
            .is_err()
        );
    }
}
