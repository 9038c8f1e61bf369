//! `meta.json` of a numpy bundle: the phase centre (required) plus optional keys, parsed
//! by hand so every error names the offending key.

use std::path::Path;

use aperture_imaging::coords::RaDec;
use aperture_imaging::vis::VisBlock;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::FormatError;
use crate::formats::angle::rad_to_deg;

/// The phase centre in degrees (ICRS/J2000).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PhaseCentreDeg {
    pub ra_deg: f64,
    pub dec_deg: f64,
}

/// The contents of `meta.json`. Keys other than the named ones are kept in `extra` and
/// written back unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleMeta {
    pub phase_centre: PhaseCentreDeg,
    /// Telescope name, e.g. "LOW" or "MID".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telescope: Option<String>,
    /// Station or dish diameter in metres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub station_diameter_m: Option<f64>,
    /// Any other top-level keys.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Top-level keys with a meaning of their own (not allowed in `extra`).
const NAMED_KEYS: [&str; 3] = ["phase_centre", "telescope", "station_diameter_m"];

impl BundleMeta {
    /// Metadata for `block`: its phase centre and no optional keys. The degrees are the
    /// shortest that convert back to the block's radians exactly, so a centre made with
    /// `RaDec::from_degrees(15.0, …)` is stored as 15 (not 14.999999999999998) and
    /// [`BundleMeta::phase_centre`] returns `block.phase_centre` bit for bit.
    pub fn for_block(block: &VisBlock) -> Self {
        Self {
            phase_centre: PhaseCentreDeg {
                ra_deg: rad_to_deg(block.phase_centre.ra),
                dec_deg: rad_to_deg(block.phase_centre.dec),
            },
            telescope: None,
            station_diameter_m: None,
            extra: Map::new(),
        }
    }

    /// The phase centre in radians.
    pub fn phase_centre(&self) -> RaDec {
        RaDec::from_degrees(self.phase_centre.ra_deg, self.phase_centre.dec_deg)
    }

    /// Checks values (finite RA, Dec in [−90, 90], positive diameter) and that `extra`
    /// does not shadow a named key; the error names the key.
    pub fn validate(&self) -> Result<(), FormatError> {
        self.check().map_err(|(key, reason)| {
            FormatError::invalid(format!("bundle metadata key {key}"), reason)
        })
    }

    /// [`BundleMeta::validate`] as (key, reason).
    fn check(&self) -> Result<(), (String, String)> {
        let pc = &self.phase_centre;
        if !pc.ra_deg.is_finite() {
            return Err((
                "phase_centre.ra_deg".into(),
                format!("{} is not finite", pc.ra_deg),
            ));
        }
        if !(pc.dec_deg.is_finite() && (-90.0..=90.0).contains(&pc.dec_deg)) {
            return Err((
                "phase_centre.dec_deg".into(),
                format!("{} is outside [-90, 90]", pc.dec_deg),
            ));
        }
        if let Some(d) = self.station_diameter_m
            && !(d.is_finite() && d > 0.0)
        {
            return Err((
                "station_diameter_m".into(),
                format!("{d} must be a positive number"),
            ));
        }
        if let Some(k) = self.extra.keys().find(|k| NAMED_KEYS.contains(&k.as_str())) {
            return Err((k.clone(), "duplicated in the extra keys".into()));
        }
        Ok(())
    }

    /// Parses `meta.json` text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, FormatError> {
        let err = |key: &str, reason: String| FormatError::Meta {
            path: path.to_path_buf(),
            key: key.to_owned(),
            reason,
        };
        let root: Value = serde_json::from_str(text)
            .map_err(|e| err("(document)", format!("not valid JSON: {e}")))?;
        let Value::Object(mut root) = root else {
            return Err(err(
                "(document)",
                "the top level must be a JSON object".into(),
            ));
        };
        let pc = root.remove("phase_centre").ok_or_else(|| {
            err(
                "phase_centre",
                "missing; expected {\"ra_deg\": …, \"dec_deg\": …}".into(),
            )
        })?;
        let Value::Object(mut pc) = pc else {
            return Err(err(
                "phase_centre",
                "must be an object with ra_deg and dec_deg".into(),
            ));
        };
        let mut number = |key: &str| -> Result<f64, FormatError> {
            let full = format!("phase_centre.{key}");
            match pc.remove(key) {
                Some(v) => v
                    .as_f64()
                    .ok_or_else(|| err(&full, format!("{v} is not a number"))),
                None => Err(err(&full, "missing".into())),
            }
        };
        let ra_deg = number("ra_deg")?;
        let dec_deg = number("dec_deg")?;
        if let Some(frame) = pc.remove("frame") {
            let ok = frame.as_str().is_some_and(|f| {
                ["icrs", "fk5", "j2000"].contains(&f.to_ascii_lowercase().as_str())
            });
            if !ok {
                return Err(err(
                    "phase_centre.frame",
                    format!("{frame} is not supported; use \"icrs\""),
                ));
            }
        }
        if let Some(k) = pc.keys().next() {
            return Err(err(
                &format!("phase_centre.{k}"),
                "unknown key; expected ra_deg and dec_deg".into(),
            ));
        }
        let telescope = match root.remove("telescope") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(v) => return Err(err("telescope", format!("{v} is not a string"))),
        };
        let station_diameter_m = match root.remove("station_diameter_m") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_f64()
                    .ok_or_else(|| err("station_diameter_m", format!("{v} is not a number")))?,
            ),
        };
        let meta = Self {
            phase_centre: PhaseCentreDeg { ra_deg, dec_deg },
            telescope,
            station_diameter_m,
            extra: root,
        };
        meta.check().map_err(|(key, reason)| err(&key, reason))?;
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<BundleMeta, String> {
        BundleMeta::parse(text, Path::new("b/meta.json")).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_and_keeps_extras() {
        let m = parse(r#"{"phase_centre": {"ra_deg": 10.5, "dec_deg": -30}, "telescope": "LOW", "obs_id": 7}"#)
            .unwrap();
        assert_eq!(
            m.phase_centre,
            PhaseCentreDeg {
                ra_deg: 10.5,
                dec_deg: -30.0
            }
        );
        assert_eq!(m.telescope.as_deref(), Some("LOW"));
        assert_eq!(m.extra["obs_id"], 7);
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(parse(&text).unwrap(), m);
    }

    #[test]
    fn errors_name_the_key() {
        for (text, key) in [
            ("{}", "phase_centre"),
            (r#"{"phase_centre": {"ra_deg": 1}}"#, "phase_centre.dec_deg"),
            (
                r#"{"phase_centre": {"ra_deg": "x", "dec_deg": 0}}"#,
                "phase_centre.ra_deg",
            ),
            (
                r#"{"phase_centre": {"ra_deg": 1, "dec_deg": 91}}"#,
                "phase_centre.dec_deg",
            ),
            (
                r#"{"phase_centre": {"ra_deg": 1, "dec_deg": 0, "frame": "galactic"}}"#,
                "phase_centre.frame",
            ),
            (
                r#"{"phase_centre": {"ra_deg": 1, "dec_deg": 0}, "telescope": 3}"#,
                "telescope",
            ),
            (
                r#"{"phase_centre": {"ra_deg": 1, "dec_deg": 0}, "station_diameter_m": -1}"#,
                "station_diameter_m",
            ),
            ("[1]", "(document)"),
            ("{", "(document)"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(
                e.contains("meta.json") && e.contains(&format!("key {key}:")),
                "{text}: {e}"
            );
        }
    }
}
