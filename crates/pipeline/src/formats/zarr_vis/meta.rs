//! The metadata of a Zarr visibility dataset ([`VisDatasetMeta`]): grid sizes, frequency
//! windows, antenna pairs, times, phase centre and telescope. It is stored as the group
//! attribute `aperture` and is what aperture trusts when reading (the coordinate arrays
//! repeat it for Python users).

use std::collections::HashSet;
use std::ops::Range;

use aperture_imaging::antenna::AntennaConfig;
use aperture_imaging::coords::RaDec;
use aperture_imaging::vis::VisBlock;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::grid::RowGrid;
use crate::error::FormatError;
use crate::formats::bundle::VisDtype;

/// The group attribute `format` of a dataset.
pub const FORMAT: &str = "aperture-vis-zarr";
/// The group attribute `format_version`; readers refuse newer versions.
pub const FORMAT_VERSION: u32 = 1;

/// Default upper bound on the bytes of one `VISIBILITY` chunk, used to choose
/// [`VisDatasetMeta::time_chunk`]: large enough for few object-store requests, small
/// enough that a window's chunks stream through a worker's memory.
pub const TARGET_CHUNK_BYTES: usize = 64 << 20;

/// One frequency window: a run of consecutive channels, stored as one chunk column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowMeta {
    /// Index of the window's first channel in the whole band.
    pub chan_start: usize,
    pub nchan: usize,
    /// Channel centre frequencies, Hz.
    pub freq_hz: Vec<f64>,
}

impl WindowMeta {
    /// Splits the channels `freq_c` (Hz) into windows of `channels_per_window`
    /// consecutive channels; the error names the option when they do not divide evenly.
    pub fn split(freq_c: &[f64], channels_per_window: usize) -> Result<Vec<Self>, FormatError> {
        if channels_per_window == 0 {
            return Err(FormatError::invalid(
                "channels_per_window",
                "must be at least 1",
            ));
        }
        if freq_c.is_empty() || !freq_c.len().is_multiple_of(channels_per_window) {
            return Err(FormatError::invalid(
                "channels_per_window",
                format!(
                    "{channels_per_window} does not divide the {} channels into equal windows",
                    freq_c.len()
                ),
            ));
        }
        Ok(freq_c
            .chunks(channels_per_window)
            .enumerate()
            .map(|(w, f)| Self {
                chan_start: w * channels_per_window,
                nchan: channels_per_window,
                freq_hz: f.to_vec(),
            })
            .collect())
    }

    /// The window's channels in the whole band.
    pub fn channels(&self) -> Range<usize> {
        self.chan_start..self.chan_start + self.nchan
    }
}

/// The channels of `window` out of a whole-band block (all other arrays shared).
pub fn window_block(block: &VisBlock, window: &WindowMeta) -> Result<VisBlock, FormatError> {
    let r = window.channels();
    if r.end > block.n_chan() {
        return Err(FormatError::invalid(
            "window",
            format!(
                "channels {}..{} of a block with {} channels",
                r.start,
                r.end,
                block.n_chan()
            ),
        ));
    }
    let cols = ndarray::s![.., r.clone()];
    Ok(VisBlock {
        uvw_r: block.uvw_r.clone(),
        freq_c: block.freq_c[r.clone()].to_vec(),
        vis_rc: block.vis_rc.slice(cols).to_owned(),
        weight_rc: block.weight_rc.slice(cols).to_owned(),
        flag_rc: block.flag_rc.slice(cols).to_owned(),
        ant1_r: block.ant1_r.clone(),
        ant2_r: block.ant2_r.clone(),
        time_r: block.time_r.clone(),
        phase_centre: block.phase_centre,
    })
}

fn complex64() -> VisDtype {
    VisDtype::Complex64
}

/// Everything aperture needs to know about a dataset without reading data: the
/// (time × baseline) grid, the windows, the phase centre, and how it is chunked.
///
/// Rows of a window's [`VisBlock`] are time-major: row `t · nbaseline + b` is time
/// `time_s[t]` on baseline (`ant1[b]`, `ant2[b]`), as `aperture_imaging::sim` orders
/// simulated rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisDatasetMeta {
    pub ntime: usize,
    pub nbaseline: usize,
    /// Frequency windows: equal widths, consecutive, in channel order.
    pub windows: Vec<WindowMeta>,
    /// First and second antenna of each baseline.
    pub ant1: Vec<u32>,
    pub ant2: Vec<u32>,
    /// Time of each integration, seconds (whatever `VisBlock::time_r` holds), increasing.
    pub time_s: Vec<f64>,
    /// Stored as `{"ra_deg": …, "dec_deg": …}`.
    #[serde(with = "phase_centre_deg")]
    pub phase_centre: RaDec,
    /// `Complex64` stores complex64 visibilities with float32 weights; `Complex128`
    /// complex128 with float64 weights (lossless for f64 blocks).
    #[serde(default = "complex64")]
    pub vis_dtype: VisDtype,
    /// Times per chunk (the last chunk may be partly beyond the end).
    pub time_chunk: usize,
    /// True when `UVW` was written by `create_dataset`; windows then do not write it.
    /// Set by `create_dataset`; any value given is replaced.
    #[serde(default)]
    pub uvw_at_create: bool,
    /// Telescope name, e.g. "LOW".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telescope: Option<String>,
    /// Station or dish diameter, metres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub station_diameter_m: Option<f64>,
    /// The array (site and antenna positions), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array: Option<AntennaConfig>,
    /// Anything else (e.g. a simulation's sky model), kept as given.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// `RaDec` (radians) as degrees, written so they read back bit for bit.
mod phase_centre_deg {
    use aperture_imaging::coords::RaDec;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::formats::angle::rad_to_deg;
    use crate::formats::bundle::PhaseCentreDeg;

    pub fn serialize<S: Serializer>(pc: &RaDec, s: S) -> Result<S::Ok, S::Error> {
        PhaseCentreDeg {
            ra_deg: rad_to_deg(pc.ra),
            dec_deg: rad_to_deg(pc.dec),
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<RaDec, D::Error> {
        let p = PhaseCentreDeg::deserialize(d)?;
        Ok(RaDec::from_degrees(p.ra_deg, p.dec_deg))
    }
}

impl VisDatasetMeta {
    /// Metadata for rows on `grid`, split into `windows`, phased to `phase_centre`:
    /// complex64 storage and a time chunk of at most [`TARGET_CHUNK_BYTES`].
    pub fn new(
        grid: &RowGrid,
        windows: Vec<WindowMeta>,
        phase_centre: RaDec,
    ) -> Result<Self, FormatError> {
        let nchan_window = windows.first().map_or(1, |w| w.nchan.max(1));
        let mut meta = Self {
            ntime: grid.time_s.len(),
            nbaseline: grid.ant1.len(),
            windows,
            ant1: grid.ant1.clone(),
            ant2: grid.ant2.clone(),
            time_s: grid.time_s.clone(),
            phase_centre,
            vis_dtype: VisDtype::Complex64,
            time_chunk: 1,
            uvw_at_create: false,
            telescope: None,
            station_diameter_m: None,
            array: None,
            extra: Map::new(),
        };
        meta.time_chunk = meta.default_time_chunk(nchan_window);
        meta.validate()?;
        Ok(meta)
    }

    /// The time chunk that keeps a `VISIBILITY` chunk within [`TARGET_CHUNK_BYTES`],
    /// balanced so the last chunk is nearly full.
    pub fn default_time_chunk(&self, nchan_window: usize) -> usize {
        let per_time = self
            .nbaseline
            .saturating_mul(nchan_window)
            .saturating_mul(self.vis_bytes());
        let most = (TARGET_CHUNK_BYTES / per_time.max(1)).clamp(1, self.ntime.max(1));
        let nchunks = self.ntime.max(1).div_ceil(most);
        self.ntime.max(1).div_ceil(nchunks)
    }

    /// Bytes of one stored visibility.
    pub fn vis_bytes(&self) -> usize {
        match self.vis_dtype {
            VisDtype::Complex64 => 8,
            VisDtype::Complex128 => 16,
        }
    }

    pub fn nwindows(&self) -> usize {
        self.windows.len()
    }

    /// Channels per window.
    pub fn nchan_window(&self) -> usize {
        self.windows.first().map_or(0, |w| w.nchan)
    }

    /// Channels in the whole band.
    pub fn nchan(&self) -> usize {
        self.windows.iter().map(|w| w.nchan).sum()
    }

    /// Rows of one window's block: ntime · nbaseline.
    pub fn nrows(&self) -> usize {
        self.ntime * self.nbaseline
    }

    /// Number of chunks along time.
    pub fn n_time_chunks(&self) -> usize {
        self.ntime.div_ceil(self.time_chunk.max(1))
    }

    /// The times of time chunk `tc` (clipped to the array).
    pub fn time_chunk_range(&self, tc: usize) -> Range<usize> {
        let start = tc * self.time_chunk;
        start..(start + self.time_chunk).min(self.ntime)
    }

    /// All channel frequencies, Hz.
    pub fn freq_c(&self) -> Vec<f64> {
        self.windows
            .iter()
            .flat_map(|w| w.freq_hz.iter().copied())
            .collect()
    }

    /// Checks sizes, windows, times, baselines and the phase centre; the error names the
    /// field, e.g. `windows[2].chan_start`.
    pub fn validate(&self) -> Result<(), FormatError> {
        self.check().map_err(|(field, reason)| {
            FormatError::invalid(format!("visibility dataset metadata {field}"), reason)
        })
    }

    fn check(&self) -> Result<(), (String, String)> {
        let bad = |field: &str, reason: String| Err((field.to_owned(), reason));
        if self.ntime == 0 {
            return bad("ntime", "must be at least 1".into());
        }
        if self.nbaseline == 0 {
            return bad("nbaseline", "must be at least 1".into());
        }
        if self.time_s.len() != self.ntime {
            return bad(
                "time_s",
                format!(
                    "has {} values for ntime = {}",
                    self.time_s.len(),
                    self.ntime
                ),
            );
        }
        if let Some(t) = self.time_s.iter().position(|t| !t.is_finite()) {
            return bad(&format!("time_s[{t}]"), "is not finite".into());
        }
        for (t, pair) in self.time_s.windows(2).enumerate() {
            if pair[1].partial_cmp(&pair[0]) != Some(std::cmp::Ordering::Greater) {
                return bad(
                    &format!("time_s[{}]", t + 1),
                    format!(
                        "{} s after {} s; times must increase strictly",
                        pair[1], pair[0]
                    ),
                );
            }
        }
        for (name, ants) in [("ant1", &self.ant1), ("ant2", &self.ant2)] {
            if ants.len() != self.nbaseline {
                return bad(
                    name,
                    format!(
                        "has {} values for nbaseline = {}",
                        ants.len(),
                        self.nbaseline
                    ),
                );
            }
        }
        let mut seen = HashSet::with_capacity(self.nbaseline);
        for (b, pair) in self.ant1.iter().zip(&self.ant2).enumerate() {
            if i32::try_from(*pair.0.max(pair.1)).is_err() {
                return bad(
                    &format!("ant1/ant2[{b}]"),
                    format!("antenna {} exceeds int32", pair.0.max(pair.1)),
                );
            }
            if !seen.insert(pair) {
                return bad(
                    &format!("ant1/ant2[{b}]"),
                    format!("baseline {}-{} appears twice", pair.0, pair.1),
                );
            }
        }
        if self.windows.is_empty() {
            return bad("windows", "no frequency windows".into());
        }
        let width = self.windows[0].nchan;
        if width == 0 {
            return bad("windows[0].nchan", "must be at least 1".into());
        }
        for (w, win) in self.windows.iter().enumerate() {
            if win.nchan != width {
                return bad(
                    &format!("windows[{w}].nchan"),
                    format!("{}; every window must have {width} channels", win.nchan),
                );
            }
            if win.chan_start != w * width {
                return bad(
                    &format!("windows[{w}].chan_start"),
                    format!(
                        "{}; windows must be consecutive, so it must be {}",
                        win.chan_start,
                        w * width
                    ),
                );
            }
            if win.freq_hz.len() != win.nchan {
                return bad(
                    &format!("windows[{w}].freq_hz"),
                    format!("has {} values for nchan = {}", win.freq_hz.len(), win.nchan),
                );
            }
            if let Some(c) = win
                .freq_hz
                .iter()
                .position(|f| !(f.is_finite() && *f > 0.0))
            {
                return bad(
                    &format!("windows[{w}].freq_hz[{c}]"),
                    format!("{} Hz; must be positive and finite", win.freq_hz[c]),
                );
            }
        }
        let cells = self
            .ntime
            .checked_mul(self.nbaseline)
            .and_then(|n| n.checked_mul(self.nchan()));
        if cells.is_none() {
            return bad("ntime", "ntime × nbaseline × channels overflows".into());
        }
        if !(1..=self.ntime).contains(&self.time_chunk) {
            return bad(
                "time_chunk",
                format!("{}; must be in 1..={}", self.time_chunk, self.ntime),
            );
        }
        let pc = self.phase_centre;
        if !(pc.ra.is_finite() && pc.dec.is_finite() && pc.dec.abs() <= std::f64::consts::FRAC_PI_2)
        {
            return bad(
                "phase_centre",
                format!(
                    "({}, {}) deg is not a valid direction",
                    pc.ra.to_degrees(),
                    pc.dec.to_degrees()
                ),
            );
        }
        if let Some(d) = self.station_diameter_m
            && !(d.is_finite() && d > 0.0)
        {
            return bad("station_diameter_m", format!("{d}; must be positive"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> RowGrid {
        RowGrid::from_rows(&[0.0, 0.0, 1.0, 1.0], &[0, 0, 0, 0], &[1, 2, 1, 2]).unwrap()
    }

    #[test]
    fn windows_split_evenly_or_name_the_option() {
        let w = WindowMeta::split(&[1.0, 2.0, 3.0, 4.0], 2).unwrap();
        assert_eq!(w.len(), 2);
        assert_eq!((w[1].chan_start, w[1].nchan), (2, 2));
        assert_eq!(w[1].freq_hz, [3.0, 4.0]);
        for n in [0, 3] {
            let e = WindowMeta::split(&[1.0, 2.0, 3.0, 4.0], n).unwrap_err();
            assert!(e.to_string().contains("channels_per_window"), "{e}");
        }
    }

    #[test]
    fn serde_round_trip_keeps_degrees_exact() {
        let pc = RaDec::from_degrees(15.0, -45.0);
        let meta =
            VisDatasetMeta::new(&grid(), WindowMeta::split(&[1e8, 2e8], 1).unwrap(), pc).unwrap();
        let json = serde_json::to_value(&meta).unwrap();
        assert_eq!(json["phase_centre"]["ra_deg"], 15.0);
        assert_eq!(json["phase_centre"]["dec_deg"], -45.0);
        assert_eq!(json["vis_dtype"], "Complex64");
        let back: VisDatasetMeta = serde_json::from_value(json).unwrap();
        assert_eq!(back, meta);
    }

    #[test]
    fn validation_names_the_field() {
        let pc = RaDec::from_degrees(15.0, -45.0);
        let meta =
            VisDatasetMeta::new(&grid(), WindowMeta::split(&[1e8, 2e8], 1).unwrap(), pc).unwrap();
        type Edit = Box<dyn Fn(&mut VisDatasetMeta)>;
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|m| m.time_s[1] = 0.0), "time_s[1]"),
            (Box::new(|m| m.ant2.push(3)), "ant2"),
            (Box::new(|m| m.ant2[1] = 1), "ant1/ant2[1]"),
            (
                Box::new(|m| m.windows[1].chan_start = 5),
                "windows[1].chan_start",
            ),
            (Box::new(|m| m.windows[1].nchan = 2), "windows[1].nchan"),
            (
                Box::new(|m| m.windows[0].freq_hz[0] = -1.0),
                "windows[0].freq_hz[0]",
            ),
            (Box::new(|m| m.time_chunk = 3), "time_chunk"),
            (Box::new(|m| m.windows.clear()), "windows"),
        ];
        for (edit, field) in cases {
            let mut m = meta.clone();
            edit(&mut m);
            let e = m.validate().unwrap_err().to_string();
            assert!(e.contains(&format!("metadata {field}:")), "{field}: {e}");
        }
    }

    #[test]
    fn time_chunks_stay_under_the_target_and_balance() {
        let pc = RaDec::from_degrees(0.0, 0.0);
        let mut meta =
            VisDatasetMeta::new(&grid(), WindowMeta::split(&[1e8], 1).unwrap(), pc).unwrap();
        // 10 times of 5 MiB each: at most 12 fit 64 MiB, so one chunk of 10.
        meta.ntime = 10;
        meta.nbaseline = 5 << 17;
        assert_eq!(meta.default_time_chunk(1), 10);
        // 100 times: ceil(100/12) = 9 chunks, balanced to ceil(100/9) = 12 times each.
        meta.ntime = 100;
        let tc = meta.default_time_chunk(1);
        assert!(tc * meta.nbaseline * 8 <= TARGET_CHUNK_BYTES, "{tc}");
        assert_eq!(100usize.div_ceil(tc), 100usize.div_ceil(12));
        assert_eq!(tc, 12);
    }

    #[test]
    fn window_block_selects_channels() {
        let pc = RaDec::from_degrees(0.0, 0.0);
        let mut b = VisBlock::zeros(
            vec![Default::default(); 2],
            vec![1.0, 2.0, 3.0, 4.0],
            vec![0, 0],
            vec![1, 2],
            vec![0.0, 0.0],
            pc,
        );
        b.vis_rc[[1, 3]].re = 7.0;
        let w = &WindowMeta::split(&b.freq_c, 2).unwrap()[1];
        let s = window_block(&b, w).unwrap();
        assert_eq!(s.freq_c, [3.0, 4.0]);
        assert_eq!(s.vis_rc[[1, 1]].re, 7.0);
        assert_eq!(s.vis_rc.dim(), (2, 2));
    }
}
