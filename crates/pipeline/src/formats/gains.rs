//! Gain tables on disk: JSON (`aperture-gains` version 1, everything) and CSV (long
//! format, one row per interval × antenna × frequency cell), both written atomically,
//! both read back exactly, both readable from Python with the standard library.
//!
//! JSON keys (arrays indexed [interval][antenna][cell] or [interval][cell]):
//! `format` = "aperture-gains", `version` = 1, `convention`, `solution` ("T", "G", "B"),
//! `phase_only`, `antennas`, `reference_antenna` (or null), `intervals` ([[t0, t1], …]
//! seconds), `frequency_cells` ("all" or [[f0, f1], …] Hz), `gains` ([re, im] pairs),
//! `flags`; for solved tables also `iterations`, `converged`, `chi2_before`,
//! `chi2_after`, `samples`, `refant_used` (null where no antenna had data).
//!
//! CSV columns: interval, time_start, time_end, antenna, freq_start, freq_end, gain_re,
//! gain_im, amplitude, phase_deg, flagged, then cell, solution, phase_only,
//! reference_antenna, refant_used, converged, iterations, chi2_before, chi2_after,
//! samples (the last six empty for tables that were not solved). "All frequencies" (T)
//! is the range [0, inf]. Floats are written in Rust's shortest round-trip form.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use aperture_imaging::ImagingError;
use aperture_imaging::calib::{FreqCells, GainTable, SolutionLayout, SolutionStats, SolutionType};
use ndarray::{Array2, Array3};
use num_complex::Complex64;
use serde_json::{Map, Value, json};

use super::atomic::write_file_atomic;
use crate::error::FormatError;

/// The `format` value of a gain-table JSON file.
pub const FORMAT_NAME: &str = "aperture-gains";
/// The version this build writes and reads.
pub const FORMAT_VERSION: u64 = 1;
/// The measurement-equation convention, written into every JSON file.
pub const CONVENTION: &str = "V_pq = g_p * conj(g_q) * M_pq for a row with ant1 = p, ant2 = q";

/// The CSV columns, in order.
pub const CSV_COLUMNS: [&str; 21] = [
    "interval",
    "time_start",
    "time_end",
    "antenna",
    "freq_start",
    "freq_end",
    "gain_re",
    "gain_im",
    "amplitude",
    "phase_deg",
    "flagged",
    "cell",
    "solution",
    "phase_only",
    "reference_antenna",
    "refant_used",
    "converged",
    "iterations",
    "chi2_before",
    "chi2_after",
    "samples",
];

/// The on-disk form of a gain table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GainFormat {
    Json,
    Csv,
}

impl GainFormat {
    /// The format named by the extension of `path` (`.json` or `.csv`, any case).
    pub fn from_path(path: &Path) -> Result<Self, FormatError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("json") => Ok(Self::Json),
            Some("csv") => Ok(Self::Csv),
            _ => Err(FormatError::invalid(
                "gain table path",
                format!("{}: the extension must be .json or .csv", path.display()),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Json => "JSON",
            Self::Csv => "CSV",
        }
    }
}

/// Writes `table` to `path` atomically in `format`.
pub fn write_gain_table(
    path: &Path,
    table: &GainTable,
    format: GainFormat,
) -> Result<(), FormatError> {
    table
        .validate()
        .map_err(|e| FormatError::invalid("gain table", e.to_string()))?;
    let text = match format {
        GainFormat::Json => gain_table_to_json(table),
        GainFormat::Csv => gain_table_to_csv(table),
    };
    write_file_atomic(path, |w| {
        w.write_all(text.as_bytes())
            .map_err(|e| FormatError::io("writing", path, e))
    })
}

/// Reads a gain table; the format comes from the extension, or from the content (JSON
/// starts with `{`) when the extension is neither `.json` nor `.csv`.
pub fn read_gain_table(path: &Path) -> Result<GainTable, FormatError> {
    let text = std::fs::read_to_string(path).map_err(|e| FormatError::io("opening", path, e))?;
    let format = GainFormat::from_path(path).unwrap_or(if text.trim_start().starts_with('{') {
        GainFormat::Json
    } else {
        GainFormat::Csv
    });
    match format {
        GainFormat::Json => gain_table_from_json(&text, path),
        GainFormat::Csv => gain_table_from_csv(&text, path),
    }
}

fn pair(z: Complex64) -> Value {
    json!([z.re, z.im])
}

/// The JSON text of `table`: one top-level key per line, values compact.
pub fn gain_table_to_json(table: &GainTable) -> String {
    let (ni, na, nc) = table.gains.dim();
    let cube = |f: &dyn Fn([usize; 3]) -> Value| -> Value {
        Value::Array(
            (0..ni)
                .map(|i| {
                    Value::Array(
                        (0..na)
                            .map(|a| Value::Array((0..nc).map(|c| f([i, a, c])).collect()))
                            .collect(),
                    )
                })
                .collect(),
        )
    };
    let mut entries: Vec<(&str, Value)> = vec![
        ("format", json!(FORMAT_NAME)),
        ("version", json!(FORMAT_VERSION)),
        ("convention", json!(CONVENTION)),
        ("solution", json!(table.solution.name())),
        ("phase_only", json!(table.phase_only)),
        ("antennas", json!(table.n_ant)),
        ("reference_antenna", json!(table.reference_antenna)),
        ("intervals", json!(table.layout.intervals)),
        (
            "frequency_cells",
            match &table.layout.cells {
                FreqCells::All => json!("all"),
                FreqCells::Ranges(r) => json!(r),
            },
        ),
        ("gains", cube(&|ix| pair(table.gains[ix]))),
        ("flags", cube(&|ix| json!(table.flags[ix]))),
    ];
    if let Some(stats) = &table.stats {
        let grid = |f: &dyn Fn(&SolutionStats) -> Value| -> Value {
            Value::Array(
                stats
                    .outer_iter()
                    .map(|row| Value::Array(row.iter().map(f).collect()))
                    .collect(),
            )
        };
        entries.push(("iterations", grid(&|s| json!(s.iterations))));
        entries.push(("converged", grid(&|s| json!(s.converged))));
        entries.push(("chi2_before", grid(&|s| json!(s.chi2_before))));
        entries.push(("chi2_after", grid(&|s| json!(s.chi2_after))));
        entries.push(("samples", grid(&|s| json!(s.n_samples))));
        entries.push(("refant_used", grid(&|s| json!(s.refant))));
    }
    let mut out = String::from("{\n");
    for (k, (key, v)) in entries.iter().enumerate() {
        let sep = if k + 1 == entries.len() { "" } else { "," };
        out.push_str(&format!("  {}: {v}{sep}\n", Value::from(*key)));
    }
    out.push_str("}\n");
    out
}

/// A JSON-reading context: the file, for errors naming `key`.
struct Json<'a> {
    path: &'a Path,
}

impl Json<'_> {
    fn err(&self, key: impl Into<String>, reason: impl Into<String>) -> FormatError {
        FormatError::Meta {
            path: self.path.to_path_buf(),
            key: key.into(),
            reason: reason.into(),
        }
    }

    fn get<'v>(&self, obj: &'v Map<String, Value>, key: &str) -> Result<&'v Value, FormatError> {
        obj.get(key).ok_or_else(|| self.err(key, "missing"))
    }

    fn array<'v>(
        &self,
        v: &'v Value,
        key: &str,
        len: Option<usize>,
    ) -> Result<&'v Vec<Value>, FormatError> {
        let a = v
            .as_array()
            .ok_or_else(|| self.err(key, format!("expected an array, got {}", kind(v))))?;
        if let Some(n) = len
            && a.len() != n
        {
            return Err(self.err(key, format!("expected {n} entries, got {}", a.len())));
        }
        Ok(a)
    }

    fn f64(&self, v: &Value, key: &str) -> Result<f64, FormatError> {
        v.as_f64()
            .ok_or_else(|| self.err(key, format!("expected a number, got {}", kind(v))))
    }

    fn usize(&self, v: &Value, key: &str) -> Result<usize, FormatError> {
        v.as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| self.err(key, format!("expected a non-negative integer, got {v}")))
    }

    fn bool(&self, v: &Value, key: &str) -> Result<bool, FormatError> {
        v.as_bool()
            .ok_or_else(|| self.err(key, format!("expected true or false, got {v}")))
    }

    fn pairs(&self, v: &Value, key: &str) -> Result<Vec<[f64; 2]>, FormatError> {
        self.array(v, key, None)?
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let k = format!("{key}[{i}]");
                let a = self.array(p, &k, Some(2))?;
                Ok([self.f64(&a[0], &k)?, self.f64(&a[1], &k)?])
            })
            .collect()
    }

    /// A [ni][na][nc] array of `elem`.
    fn cube<T: Clone>(
        &self,
        v: &Value,
        key: &str,
        dim: (usize, usize, usize),
        fill: T,
        elem: impl Fn(&Value, &str) -> Result<T, FormatError>,
    ) -> Result<Array3<T>, FormatError> {
        let mut out = Array3::from_elem(dim, fill);
        for (i, vi) in self.array(v, key, Some(dim.0))?.iter().enumerate() {
            let ki = format!("{key}[{i}]");
            for (a, va) in self.array(vi, &ki, Some(dim.1))?.iter().enumerate() {
                let ka = format!("{ki}[{a}]");
                for (c, vc) in self.array(va, &ka, Some(dim.2))?.iter().enumerate() {
                    out[[i, a, c]] = elem(vc, &format!("{ka}[{c}]"))?;
                }
            }
        }
        Ok(out)
    }

    /// A [ni][nc] array of `elem`.
    fn grid<T: Clone>(
        &self,
        v: &Value,
        key: &str,
        dim: (usize, usize),
        fill: T,
        elem: impl Fn(&Value, &str) -> Result<T, FormatError>,
    ) -> Result<Array2<T>, FormatError> {
        let mut out = Array2::from_elem(dim, fill);
        for (i, vi) in self.array(v, key, Some(dim.0))?.iter().enumerate() {
            let ki = format!("{key}[{i}]");
            for (c, vc) in self.array(vi, &ki, Some(dim.1))?.iter().enumerate() {
                out[[i, c]] = elem(vc, &format!("{ki}[{c}]"))?;
            }
        }
        Ok(out)
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The table's own checks, as a format error naming the field.
fn validated(table: GainTable, path: &Path) -> Result<GainTable, FormatError> {
    table.validate().map_err(|e| {
        let (key, reason) = match e {
            ImagingError::InvalidParameter { name, reason } => (name, reason),
            ImagingError::NonFinite { name, index } => {
                (name, format!("non-finite value at flat index {index}"))
            }
            other => ("table".to_owned(), other.to_string()),
        };
        FormatError::Meta {
            path: path.to_path_buf(),
            key,
            reason,
        }
    })?;
    Ok(table)
}

/// The stats keys of the JSON format.
const STAT_KEYS: [&str; 6] = [
    "iterations",
    "converged",
    "chi2_before",
    "chi2_after",
    "samples",
    "refant_used",
];

/// Parses the JSON text of a gain table (`path` names it in errors).
pub fn gain_table_from_json(text: &str, path: &Path) -> Result<GainTable, FormatError> {
    let j = Json { path };
    let root: Value = serde_json::from_str(text)
        .map_err(|e| j.err("(document)", format!("not valid JSON: {e}")))?;
    let obj = root.as_object().ok_or_else(|| {
        j.err(
            "(document)",
            format!("expected an object, got {}", kind(&root)),
        )
    })?;
    let format = j.get(obj, "format")?;
    if format.as_str() != Some(FORMAT_NAME) {
        return Err(j.err(
            "format",
            format!("expected \"{FORMAT_NAME}\", got {format}"),
        ));
    }
    let version = j.usize(j.get(obj, "version")?, "version")?;
    if version as u64 != FORMAT_VERSION {
        return Err(j.err(
            "version",
            format!("{version} is not supported; this build reads version {FORMAT_VERSION}"),
        ));
    }
    let sol_v = j.get(obj, "solution")?;
    let solution: SolutionType = sol_v
        .as_str()
        .ok_or_else(|| {
            j.err(
                "solution",
                format!("expected \"T\", \"G\" or \"B\", got {sol_v}"),
            )
        })?
        .parse()
        .map_err(|e: ImagingError| j.err("solution", reason_of(e)))?;
    let phase_only = j.bool(j.get(obj, "phase_only")?, "phase_only")?;
    let n_ant = j.usize(j.get(obj, "antennas")?, "antennas")?;
    let reference_antenna = match j.get(obj, "reference_antenna")? {
        Value::Null => None,
        v => Some(j.usize(v, "reference_antenna")?),
    };
    let intervals = j.pairs(j.get(obj, "intervals")?, "intervals")?;
    let cells = match j.get(obj, "frequency_cells")? {
        Value::String(s) if s == "all" => FreqCells::All,
        Value::String(s) => {
            return Err(j.err(
                "frequency_cells",
                format!("expected \"all\" or [[f0, f1], ...], got \"{s}\""),
            ));
        }
        v => FreqCells::Ranges(j.pairs(v, "frequency_cells")?),
    };
    let layout = SolutionLayout { intervals, cells };
    let dim = (layout.n_intervals(), n_ant, layout.n_cells());
    let gains = j.cube(
        j.get(obj, "gains")?,
        "gains",
        dim,
        Complex64::new(0.0, 0.0),
        |v, k| {
            let a = j.array(v, k, Some(2))?;
            Ok(Complex64::new(j.f64(&a[0], k)?, j.f64(&a[1], k)?))
        },
    )?;
    let flags = j.cube(j.get(obj, "flags")?, "flags", dim, false, |v, k| {
        j.bool(v, k)
    })?;
    let present: Vec<&str> = STAT_KEYS
        .iter()
        .copied()
        .filter(|k| obj.contains_key(*k))
        .collect();
    let stats = if present.is_empty() {
        None
    } else {
        if let Some(missing) = STAT_KEYS.iter().find(|k| !obj.contains_key(**k)) {
            return Err(j.err(
                *missing,
                format!(
                    "missing, but {} is present (solution statistics come together)",
                    present[0]
                ),
            ));
        }
        let g = (dim.0, dim.2);
        let iters = j.grid(&obj["iterations"], "iterations", g, 0, |v, k| j.usize(v, k))?;
        let conv = j.grid(&obj["converged"], "converged", g, false, |v, k| {
            j.bool(v, k)
        })?;
        let before = j.grid(&obj["chi2_before"], "chi2_before", g, 0.0, |v, k| {
            j.f64(v, k)
        })?;
        let after = j.grid(&obj["chi2_after"], "chi2_after", g, 0.0, |v, k| j.f64(v, k))?;
        let samples = j.grid(&obj["samples"], "samples", g, 0u64, |v, k| {
            Ok(j.usize(v, k)? as u64)
        })?;
        let refant = j.grid(
            &obj["refant_used"],
            "refant_used",
            g,
            None,
            |v, k| match v {
                Value::Null => Ok(None),
                v => j.usize(v, k).map(Some),
            },
        )?;
        Some(Array2::from_shape_fn(g, |ix| SolutionStats {
            iterations: iters[ix],
            converged: conv[ix],
            chi2_before: before[ix],
            chi2_after: after[ix],
            n_samples: samples[ix],
            refant: refant[ix],
        }))
    };
    validated(
        GainTable {
            solution,
            phase_only,
            n_ant,
            reference_antenna,
            layout,
            gains,
            flags,
            stats,
        },
        path,
    )
}

fn reason_of(e: ImagingError) -> String {
    match e {
        ImagingError::InvalidParameter { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// A float in its shortest round-trip form (`inf` for infinity).
fn num(x: f64) -> String {
    format!("{x:?}")
}

/// The CSV text of `table` (rows interval-major, then antenna, then cell).
pub fn gain_table_to_csv(table: &GainTable) -> String {
    let (ni, na, nc) = table.gains.dim();
    let mut out = CSV_COLUMNS.join(",");
    out.push('\n');
    let cell_range = |c: usize| match &table.layout.cells {
        FreqCells::All => [0.0, f64::INFINITY],
        FreqCells::Ranges(r) => r[c],
    };
    let opt = |v: Option<usize>| v.map(|x| x.to_string()).unwrap_or_default();
    for i in 0..ni {
        let [t0, t1] = table.layout.intervals[i];
        for a in 0..na {
            for c in 0..nc {
                let g = table.gains[[i, a, c]];
                let [f0, f1] = cell_range(c);
                let stats = table.stats.as_ref().map(|s| s[[i, c]]);
                let fields = [
                    i.to_string(),
                    num(t0),
                    num(t1),
                    a.to_string(),
                    num(f0),
                    num(f1),
                    num(g.re),
                    num(g.im),
                    num(g.norm()),
                    num(g.arg().to_degrees()),
                    table.flags[[i, a, c]].to_string(),
                    c.to_string(),
                    table.solution.name().to_owned(),
                    table.phase_only.to_string(),
                    opt(table.reference_antenna),
                    stats.map(|s| opt(s.refant)).unwrap_or_default(),
                    stats.map(|s| s.converged.to_string()).unwrap_or_default(),
                    stats.map(|s| s.iterations.to_string()).unwrap_or_default(),
                    stats.map(|s| num(s.chi2_before)).unwrap_or_default(),
                    stats.map(|s| num(s.chi2_after)).unwrap_or_default(),
                    stats.map(|s| s.n_samples.to_string()).unwrap_or_default(),
                ];
                out.push_str(&fields.join(","));
                out.push('\n');
            }
        }
    }
    out
}

/// One parsed CSV row.
struct CsvRow {
    interval: usize,
    time: [f64; 2],
    antenna: usize,
    cell: usize,
    freq: [f64; 2],
    gain: Complex64,
    flagged: bool,
    solution: SolutionType,
    phase_only: bool,
    reference_antenna: Option<usize>,
    stats: Option<SolutionStats>,
}

/// Parses the CSV text of a gain table (`path` names it in errors). Every (interval,
/// antenna, cell) must appear exactly once; values that describe a whole table,
/// interval or cell must agree between rows.
pub fn gain_table_from_csv(text: &str, path: &Path) -> Result<GainTable, FormatError> {
    let bad = |at: String, reason: String| FormatError::BadValue {
        path: path.to_path_buf(),
        at,
        reason,
    };
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .ok_or_else(|| bad("line 1".into(), "empty file; expected a header line".into()))?;
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let mut col = BTreeMap::new();
    for want in CSV_COLUMNS {
        let k = names
            .iter()
            .position(|n| *n == want)
            .ok_or_else(|| bad("line 1".into(), format!("missing column {want}")))?;
        col.insert(want, k);
    }
    let mut rows = Vec::new();
    for (ln, line) in lines {
        let at = |c: &str| format!("line {}, column {c}", ln + 1);
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != names.len() {
            return Err(bad(
                format!("line {}", ln + 1),
                format!(
                    "{} fields, but the header has {}",
                    fields.len(),
                    names.len()
                ),
            ));
        }
        let get = |c: &str| fields[col[c]];
        let float = |c: &str| -> Result<f64, FormatError> {
            get(c)
                .parse::<f64>()
                .map_err(|_| bad(at(c), format!("{:?} is not a number", get(c))))
        };
        let int = |c: &str| -> Result<usize, FormatError> {
            get(c)
                .parse::<usize>()
                .map_err(|_| bad(at(c), format!("{:?} is not a non-negative integer", get(c))))
        };
        let opt_int = |c: &str| -> Result<Option<usize>, FormatError> {
            if get(c).is_empty() {
                Ok(None)
            } else {
                int(c).map(Some)
            }
        };
        let boolean = |c: &str| -> Result<bool, FormatError> {
            match get(c).to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                other => Err(bad(at(c), format!("{other:?} is not true or false"))),
            }
        };
        let solution: SolutionType = get("solution")
            .parse()
            .map_err(|e: ImagingError| bad(at("solution"), reason_of(e)))?;
        let stats = if get("converged").is_empty() {
            None
        } else {
            Some(SolutionStats {
                iterations: int("iterations")?,
                converged: boolean("converged")?,
                chi2_before: float("chi2_before")?,
                chi2_after: float("chi2_after")?,
                n_samples: int("samples")? as u64,
                refant: opt_int("refant_used")?,
            })
        };
        rows.push((
            ln + 1,
            CsvRow {
                interval: int("interval")?,
                time: [float("time_start")?, float("time_end")?],
                antenna: int("antenna")?,
                cell: int("cell")?,
                freq: [float("freq_start")?, float("freq_end")?],
                gain: Complex64::new(float("gain_re")?, float("gain_im")?),
                flagged: boolean("flagged")?,
                solution,
                phase_only: boolean("phase_only")?,
                reference_antenna: opt_int("reference_antenna")?,
                stats,
            },
        ));
    }
    let Some((_, first)) = rows.first() else {
        return Err(bad("line 2".into(), "no rows after the header".into()));
    };
    let ni = rows.iter().map(|(_, r)| r.interval).max().unwrap_or(0) + 1;
    let na = rows.iter().map(|(_, r)| r.antenna).max().unwrap_or(0) + 1;
    let nc = rows.iter().map(|(_, r)| r.cell).max().unwrap_or(0) + 1;
    if rows.len() != ni * na * nc {
        return Err(bad(
            "rows".into(),
            format!(
                "{} rows, but {ni} intervals x {na} antennas x {nc} cells need {}",
                rows.len(),
                ni * na * nc
            ),
        ));
    }
    let (solution, phase_only, reference_antenna) =
        (first.solution, first.phase_only, first.reference_antenna);
    let has_stats = first.stats.is_some();
    let mut intervals: Vec<Option<[f64; 2]>> = vec![None; ni];
    let mut cells: Vec<Option<[f64; 2]>> = vec![None; nc];
    let mut gains = Array3::from_elem((ni, na, nc), Complex64::new(0.0, 0.0));
    let mut flags = Array3::from_elem((ni, na, nc), false);
    let mut seen = Array3::from_elem((ni, na, nc), false);
    let mut stats: Array2<Option<SolutionStats>> = Array2::from_elem((ni, nc), None);
    for (ln, r) in &rows {
        let at = |what: &str| format!("line {ln}, column {what}");
        if (r.solution, r.phase_only, r.reference_antenna)
            != (solution, phase_only, reference_antenna)
        {
            return Err(bad(
                at("solution"),
                "solution, phase_only and reference_antenna must be the same on every row".into(),
            ));
        }
        if r.stats.is_some() != has_stats {
            return Err(bad(
                at("converged"),
                "solution statistics must be given on every row or on none".into(),
            ));
        }
        let ix = [r.interval, r.antenna, r.cell];
        if seen[ix] {
            return Err(bad(
                at("interval"),
                format!(
                    "interval {}, antenna {}, cell {} appears twice",
                    r.interval, r.antenna, r.cell
                ),
            ));
        }
        seen[ix] = true;
        for (slot, value, what) in [
            (&mut intervals[r.interval], r.time, "time_start"),
            (&mut cells[r.cell], r.freq, "freq_start"),
        ] {
            match slot {
                None => *slot = Some(value),
                Some(v) if *v == value => {}
                Some(v) => {
                    return Err(bad(
                        at(what),
                        format!(
                            "[{}, {}] differs from [{}, {}] on an earlier row",
                            value[0], value[1], v[0], v[1]
                        ),
                    ));
                }
            }
        }
        let st = &mut stats[[r.interval, r.cell]];
        match (st.as_ref(), r.stats) {
            (None, s) => *st = s,
            (Some(a), Some(b)) if *a == b => {}
            _ => {
                return Err(bad(
                    at("converged"),
                    "solution statistics differ between rows of the same interval and cell".into(),
                ));
            }
        }
        gains[ix] = r.gain;
        flags[ix] = r.flagged;
    }
    // Every combination appeared exactly once (count matched and no duplicates).
    let intervals: Vec<[f64; 2]> = intervals
        .into_iter()
        .map(|v| v.unwrap_or([0.0, 0.0]))
        .collect();
    let ranges: Vec<[f64; 2]> = cells.into_iter().map(|v| v.unwrap_or([0.0, 0.0])).collect();
    let cells = if solution == SolutionType::T
        && ranges.len() == 1
        && ranges[0][0] == 0.0
        && ranges[0][1] == f64::INFINITY
    {
        FreqCells::All
    } else {
        FreqCells::Ranges(ranges)
    };
    let stats = has_stats.then(|| {
        stats.mapv(|s| {
            s.unwrap_or(SolutionStats {
                iterations: 0,
                converged: false,
                chi2_before: 0.0,
                chi2_after: 0.0,
                n_samples: 0,
                refant: None,
            })
        })
    });
    validated(
        GainTable {
            solution,
            phase_only,
            n_ant: na,
            reference_antenna,
            layout: SolutionLayout { intervals, cells },
            gains,
            flags,
            stats,
        },
        path,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aperture_imaging::calib::{RandomGainSpec, random_gains};

    /// A solved-looking G table: 3 intervals, 5 antennas, 2 cells, one flagged gain.
    fn table(with_stats: bool) -> GainTable {
        let layout = SolutionLayout {
            intervals: vec![
                [-10770.123456789, -3590.1],
                [-3590.1, 3590.1],
                [3590.1, 10770.3],
            ],
            cells: FreqCells::Ranges(vec![[1e8, 1.1e8], [1.2e8, 1.3e8]]),
        };
        let mut t = random_gains(
            SolutionType::G,
            5,
            layout,
            &RandomGainSpec {
                phase_rms_deg: 40.0,
                amp_rms: 0.2,
            },
            9,
        )
        .unwrap();
        t.flags[[1, 3, 0]] = true;
        t.gains[[1, 3, 0]] = Complex64::new(0.0, 0.0);
        t.reference_antenna = Some(2);
        if with_stats {
            t.stats = Some(Array2::from_shape_fn((3, 2), |(i, c)| SolutionStats {
                iterations: 10 + i + c,
                converged: (i, c) != (2, 1),
                chi2_before: 1234.5 + 0.1 * i as f64,
                chi2_after: 1.0 / 3.0,
                n_samples: 1000,
                refant: if i == 1 { Some(3) } else { None },
            }));
        }
        t
    }

    fn t_table() -> GainTable {
        let layout = SolutionLayout {
            intervals: vec![[0.0, 100.0]],
            cells: FreqCells::All,
        };
        random_gains(
            SolutionType::T,
            4,
            layout,
            &RandomGainSpec {
                phase_rms_deg: 90.0,
                amp_rms: 0.0,
            },
            1,
        )
        .unwrap()
    }

    #[test]
    fn json_and_csv_round_trip_exactly() {
        let dir = tempfile::tempdir().unwrap();
        for t in [table(true), table(false), t_table()] {
            for (name, format) in [("g.json", GainFormat::Json), ("g.csv", GainFormat::Csv)] {
                let p = dir.path().join(name);
                write_gain_table(&p, &t, format).unwrap();
                let back = read_gain_table(&p).unwrap();
                assert!(
                    back == t,
                    "{name} round trip changed the table:\n{back:?}\nvs\n{t:?}"
                );
            }
        }
        // Nothing but the two outputs is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn csv_has_the_documented_columns_and_all_frequencies_as_zero_to_inf() {
        let text = gain_table_to_csv(&t_table());
        let mut lines = text.lines();
        assert_eq!(lines.next().unwrap(), CSV_COLUMNS.join(","));
        let row: Vec<&str> = lines.next().unwrap().split(',').collect();
        assert_eq!(row[..6], ["0", "0.0", "100.0", "0", "0.0", "inf"]);
        assert_eq!(row[12], "T");
        assert_eq!(text.lines().count(), 1 + 4);
    }

    #[test]
    fn bad_files_name_the_key_or_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.json");
        let good: Value = serde_json::from_str(&gain_table_to_json(&table(true))).unwrap();
        let check = |edit: &dyn Fn(&mut Value), needle: &str| {
            let mut v = good.clone();
            edit(&mut v);
            let e = gain_table_from_json(&v.to_string(), &p)
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle) && e.contains("t.json"), "{needle}: {e}");
        };
        check(&|v| v["solution"] = json!("K"), "key solution");
        check(&|v| v["format"] = json!("other"), "key format");
        check(&|v| v["version"] = json!(2), "key version");
        check(
            &|v| {
                v.as_object_mut().unwrap().remove("gains");
            },
            "key gains: missing",
        );
        check(
            &|v| {
                v["gains"][1].as_array_mut().unwrap().pop();
            },
            "key gains[1]",
        );
        check(
            &|v| v["gains"][0][0][1] = json!([1.0]),
            "key gains[0][0][1]",
        );
        check(&|v| v["flags"][2][4][0] = json!(1), "key flags[2][4][0]");
        check(&|v| v["reference_antenna"] = json!(7), "key refant");
        check(&|v| v["intervals"][1][0] = json!(-5000.0), "key intervals");
        check(
            &|v| v["frequency_cells"] = json!("some"),
            "key frequency_cells",
        );
        check(
            &|v| {
                v.as_object_mut().unwrap().remove("samples");
            },
            "key samples",
        );
        check(
            &|v| v["converged"][0][0] = json!("yes"),
            "key converged[0][0]",
        );
        assert!(
            gain_table_from_json("not json", &p)
                .unwrap_err()
                .to_string()
                .contains("not valid JSON")
        );

        let csv = gain_table_to_csv(&table(true));
        let c = dir.path().join("t.csv");
        let check_csv = |text: String, needle: &str| {
            let e = gain_table_from_csv(&text, &c).unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains("t.csv"), "{needle}: {e}");
        };
        check_csv(csv.replacen("gain_re", "g_re", 1), "missing column gain_re");
        let mut lines: Vec<String> = csv.lines().map(String::from).collect();
        lines[3] = lines[3].replacen(",G,", ",Q,", 1);
        check_csv(lines.join("\n"), "line 4, column solution");
        let mut lines: Vec<String> = csv.lines().map(String::from).collect();
        lines.pop();
        check_csv(lines.join("\n"), "29 rows");
        let mut lines: Vec<String> = csv.lines().map(String::from).collect();
        lines[2] = lines[2].replacen(",false,", ",maybe,", 1);
        check_csv(lines.join("\n"), "line 3, column flagged");
        assert!(
            read_gain_table(&dir.path().join("none.json"))
                .unwrap_err()
                .to_string()
                .contains("does not exist")
        );
        assert!(GainFormat::from_path(Path::new("g.txt")).is_err());
        assert_eq!(
            GainFormat::from_path(Path::new("G.JSON")).unwrap(),
            GainFormat::Json
        );
    }

    /// Runs `code` with python3 in `dir`; `None` when python3 is not installed.
    fn python(dir: &Path, code: &str) -> Option<String> {
        let out = std::process::Command::new("python3")
            .current_dir(dir)
            .arg("-c")
            .arg(code)
            .output()
            .ok()?;
        assert!(
            out.status.success(),
            "python failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    #[test]
    fn python_reads_both_formats_with_the_standard_library() {
        let dir = tempfile::tempdir().unwrap();
        let t = table(true);
        write_gain_table(&dir.path().join("gains.json"), &t, GainFormat::Json).unwrap();
        write_gain_table(&dir.path().join("gains.csv"), &t, GainFormat::Csv).unwrap();
        // The snippets of docs/formats.md, then the gain of interval 2, antenna 4, cell 1
        // and the number of flagged gains.
        let json_code = r#"
import json
t = json.load(open("gains.json"))
g = [[[complex(*z) for z in cells] for cells in ant] for ant in t["gains"]]  # g[interval][antenna][cell]
print(repr(g[2][4][1].real), repr(g[2][4][1].imag), sum(f for i in t["flags"] for a in i for f in a))
"#;
        let csv_code = r#"
import csv
rows = list(csv.DictReader(open("gains.csv")))
g = {(int(r["interval"]), int(r["antenna"]), int(r["cell"])): complex(float(r["gain_re"]), float(r["gain_im"])) for r in rows}
print(repr(g[2, 4, 1].real), repr(g[2, 4, 1].imag), sum(r["flagged"] == "true" for r in rows))
"#;
        let want = t.gains[[2, 4, 1]];
        for code in [json_code, csv_code] {
            let Some(out) = python(dir.path(), code) else {
                eprintln!("python3 not found; skipping the Python check");
                return;
            };
            let parts: Vec<&str> = out.split_whitespace().collect();
            assert_eq!(parts.len(), 3, "{out}");
            assert_eq!(parts[0].parse::<f64>().unwrap(), want.re);
            assert_eq!(parts[1].parse::<f64>().unwrap(), want.im);
            assert_eq!(parts[2], "1");
        }
    }
}
