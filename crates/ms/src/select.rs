//! What to read from a MeasurementSet: the data column, one field, spectral windows, a
//! channel range and a time range, with parsers for their command-line spellings.

use std::ops::Range;
use std::str::FromStr;

use serde::Serialize;

/// The visibility column to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum DataColumn {
    /// `DATA`: the observed visibilities.
    #[default]
    Data,
    /// `CORRECTED_DATA`: after calibration.
    Corrected,
    /// `MODEL_DATA`: a model's visibilities.
    Model,
}

impl DataColumn {
    /// The main-table column name.
    pub fn column(self) -> &'static str {
        match self {
            Self::Data => "DATA",
            Self::Corrected => "CORRECTED_DATA",
            Self::Model => "MODEL_DATA",
        }
    }
}

/// Bounds of a time selection, inclusive, compared with the TIME column (integration
/// midpoints).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TimeRange {
    pub start: Option<f64>,
    pub end: Option<f64>,
    /// True: the bounds are MJD seconds (the TIME column's own scale). False: seconds
    /// after the first integration of the selected field and spectral windows.
    pub mjd: bool,
}

impl TimeRange {
    /// Absolute bounds (MJD seconds) given the first selected integration `t0`.
    pub fn absolute(&self, t0: f64) -> (f64, f64) {
        let off = if self.mjd { 0.0 } else { t0 };
        (
            self.start.map_or(f64::NEG_INFINITY, |s| s + off),
            self.end.map_or(f64::INFINITY, |e| e + off),
        )
    }
}

/// A parse failure: what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

fn number(s: &str, what: &str) -> Result<f64, ParseError> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| ParseError(format!("{what} {s:?} is not a finite number")))
}

fn index(s: &str, what: &str) -> Result<usize, ParseError> {
    s.trim()
        .parse::<usize>()
        .map_err(|_| ParseError(format!("{what} {s:?} is not a non-negative integer")))
}

impl FromStr for TimeRange {
    type Err = ParseError;

    /// `START:END` in seconds after the first integration, or `mjd:START:END` in MJD
    /// seconds; either bound may be empty (open).
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let (mjd, rest) = match s.strip_prefix("mjd:") {
            Some(r) => (true, r),
            None => (false, s),
        };
        let Some((a, b)) = rest.split_once(':') else {
            return Err(ParseError(format!(
                "{s:?}: expected START:END (seconds after the first integration) or \
                 mjd:START:END (MJD seconds)"
            )));
        };
        let bound = |x: &str, what| {
            if x.trim().is_empty() {
                Ok(None)
            } else {
                number(x, what).map(Some)
            }
        };
        let r = TimeRange {
            start: bound(a, "start")?,
            end: bound(b, "end")?,
            mjd,
        };
        if let (Some(a), Some(b)) = (r.start, r.end)
            && b < a
        {
            return Err(ParseError(format!("end {b} is before start {a}")));
        }
        Ok(r)
    }
}

/// A channel range `A:B` within a spectral window: channels A to B − 1, like a Python
/// slice; either bound may be empty (from the first / to the last channel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ChannelRange {
    pub start: Option<usize>,
    pub end: Option<usize>,
}

impl ChannelRange {
    /// The channels of a window of `nchan`, or `None` when the range does not fit.
    pub fn resolve(&self, nchan: usize) -> Option<Range<usize>> {
        let r = self.start.unwrap_or(0)..self.end.unwrap_or(nchan);
        (r.start < r.end && r.end <= nchan).then_some(r)
    }

    /// The range as given, with open ends filled in for a window of `nchan`.
    pub fn as_given(&self, nchan: usize) -> Range<usize> {
        self.start.unwrap_or(0)..self.end.unwrap_or(nchan)
    }
}

impl FromStr for ChannelRange {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        let Some((a, b)) = s.split_once(':') else {
            return Err(ParseError(format!(
                "{s:?}: expected A:B (channels A to B-1, like a Python slice)"
            )));
        };
        let bound = |x: &str, what| {
            if x.trim().is_empty() {
                Ok(None)
            } else {
                index(x, what).map(Some)
            }
        };
        let r = ChannelRange {
            start: bound(a, "start")?,
            end: bound(b, "end")?,
        };
        if let (Some(a), Some(b)) = (r.start, r.end)
            && b <= a
        {
            return Err(ParseError(format!(
                "{s:?} selects no channels (the end {b} must be after the start {a})"
            )));
        }
        Ok(r)
    }
}

/// A list of spectral-window ids: `0,2,4-6` (ranges inclusive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpwList(pub Vec<usize>);

impl FromStr for SpwList {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        let mut ids = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            if part.is_empty() {
                return Err(ParseError(format!(
                    "{s:?}: expected ids separated by commas, e.g. 0,2,4-6"
                )));
            }
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (index(a, "spectral window")?, index(b, "spectral window")?);
                    if b < a {
                        return Err(ParseError(format!("{part:?}: the range is backwards")));
                    }
                    ids.extend(a..=b);
                }
                None => ids.push(index(part, "spectral window")?),
            }
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(SpwList(ids))
    }
}

/// What to read. `None` fields take the defaults documented on each.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Selection {
    pub column: DataColumn,
    /// FIELD id. Default: field 0 (the reader notes the others).
    pub field: Option<usize>,
    /// SPECTRAL_WINDOW ids. Default: every spectral window with rows of the field.
    pub spws: Option<Vec<usize>>,
    /// Channels within each selected spectral window. Default: all.
    pub channels: Option<ChannelRange>,
    /// Default: all times.
    pub time: Option<TimeRange>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_ranges_parse_relative_or_mjd() {
        let r: TimeRange = "10:20.5".parse().unwrap();
        assert_eq!((r.start, r.end, r.mjd), (Some(10.0), Some(20.5), false));
        assert_eq!(r.absolute(100.0), (110.0, 120.5));
        let r: TimeRange = "mjd:5e9:".parse().unwrap();
        assert_eq!((r.start, r.end, r.mjd), (Some(5e9), None, true));
        assert_eq!(r.absolute(100.0), (5e9, f64::INFINITY));
        for bad in ["10", "a:b", "20:10", "mjd:1"] {
            assert!(bad.parse::<TimeRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn channel_ranges_are_half_open() {
        let r: ChannelRange = "2:6".parse().unwrap();
        assert_eq!(r.resolve(8), Some(2..6));
        assert_eq!(r.resolve(5), None);
        let r: ChannelRange = ":3".parse().unwrap();
        assert_eq!(r.resolve(8), Some(0..3));
        let r: ChannelRange = "5:".parse().unwrap();
        assert_eq!(r.resolve(8), Some(5..8));
        assert_eq!(r.resolve(5), None);
        for bad in ["3", "4:4", "5:2", "-1:3", "x:"] {
            assert!(bad.parse::<ChannelRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn spw_lists_expand_ranges() {
        let l: SpwList = "3, 0-1,1".parse().unwrap();
        assert_eq!(l.0, [0, 1, 3]);
        for bad in ["", "1,,2", "2-1", "a"] {
            assert!(bad.parse::<SpwList>().is_err(), "{bad}");
        }
    }
}
