//! Antenna configurations from CSV text: `name,e,n,u[,diameter]` (local east-north-up
//! metres about a given site) or `name,x,y,z[,diameter]` (ITRF geocentric metres, converted
//! to ENU about the site or, if none is given, about the mean position).
//!
//! The header line is required (column order free, names case-insensitive); blank lines
//! and lines starting with `#` are skipped. Errors name the line (1-based) and column.

use std::collections::HashMap;

use crate::ImagingError;
use crate::antenna::{Antenna, AntennaConfig};
use crate::coords::{EarthLocation, Enu, Xyz};

/// Geocentric distances accepted for ITRF rows, m: anywhere from deep valleys to high
/// mountains (the WGS84 ellipsoid spans 6 356 752–6 378 137 m), catching local coordinates
/// given under x,y,z headers.
const ITRF_RADIUS_RANGE_M: (f64, f64) = (6.2e6, 6.5e6);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Frame {
    Enu,
    Itrf,
}

/// Column positions found in the header.
#[derive(Debug)]
struct Columns {
    frame: Frame,
    name: usize,
    pos: [usize; 3],
    diameter: Option<usize>,
    width: usize,
    /// Header labels, for error messages.
    labels: Vec<String>,
}

/// Parses `text` into a configuration called `name`.
///
/// `default_diameter` (m) applies where there is no diameter column. `site` is required for
/// ENU columns; for ITRF columns it is optional and defaults to the geodetic position of
/// the mean of the rows (`EarthLocation::from_xyz`), with positions rotated by
/// `EarthLocation::xyz_offset_to_enu`.
pub fn config_from_csv(
    text: &str,
    name: &str,
    default_diameter: f64,
    site: Option<EarthLocation>,
) -> Result<AntennaConfig, ImagingError> {
    if !(default_diameter.is_finite() && default_diameter > 0.0) {
        return Err(ImagingError::invalid(
            "default_diameter",
            format!("{default_diameter} m; must be positive"),
        ));
    }
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    let (header_line, header) = lines
        .next()
        .ok_or_else(|| ImagingError::invalid("csv", "no header line"))?;
    let cols = parse_header(header_line, header)?;

    // Antenna name → the line that defined it, to report duplicates.
    let mut defined: HashMap<&str, usize> = HashMap::new();
    let mut rows: Vec<(String, [f64; 3], f64)> = Vec::new();
    for (line, l) in lines {
        let fields: Vec<&str> = l.split(',').map(str::trim).collect();
        if fields.len() != cols.width {
            return Err(ImagingError::invalid(
                format!("line {line}"),
                format!("{} fields; the header has {}", fields.len(), cols.width),
            ));
        }
        let ant_name = fields[cols.name];
        if ant_name.is_empty() {
            return Err(field_err(line, &cols, cols.name, "empty antenna name"));
        }
        if let Some(first) = defined.insert(ant_name, line) {
            return Err(field_err(
                line,
                &cols,
                cols.name,
                format!("antenna {ant_name:?} already defined on line {first}"),
            ));
        }
        let mut p = [0.0; 3];
        for (k, &c) in cols.pos.iter().enumerate() {
            p[k] = parse_number(line, &cols, c, fields[c])?;
        }
        let diameter = match cols.diameter {
            Some(c) => {
                let d = parse_number(line, &cols, c, fields[c])?;
                if d <= 0.0 {
                    return Err(field_err(
                        line,
                        &cols,
                        c,
                        format!("{d} m; must be positive"),
                    ));
                }
                d
            }
            None => default_diameter,
        };
        if cols.frame == Frame::Itrf {
            let r = (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt();
            if !(ITRF_RADIUS_RANGE_M.0..=ITRF_RADIUS_RANGE_M.1).contains(&r) {
                return Err(field_err(
                    line,
                    &cols,
                    cols.pos[0],
                    format!(
                        "geocentric distance {r:.0} m is not on the Earth's surface; \
                         local coordinates need e,n,u columns"
                    ),
                ));
            }
        }
        rows.push((ant_name.to_string(), p, diameter));
    }
    if rows.is_empty() {
        return Err(ImagingError::invalid(
            "csv",
            "no antenna rows after the header",
        ));
    }

    let location = match cols.frame {
        Frame::Enu => site.ok_or_else(|| {
            ImagingError::invalid("site", "ENU (e,n,u) columns need the array's site")
        })?,
        Frame::Itrf => site.unwrap_or_else(|| {
            let nf = rows.len() as f64;
            let mean = rows.iter().fold(Xyz::default(), |m, (_, p, _)| Xyz {
                x: m.x + p[0] / nf,
                y: m.y + p[1] / nf,
                z: m.z + p[2] / nf,
            });
            EarthLocation::from_xyz(mean)
        }),
    };
    let origin = location.to_xyz();
    let antennas = rows
        .into_iter()
        .map(|(name, [a, b, c], diameter)| {
            let enu = match cols.frame {
                Frame::Enu => Enu { e: a, n: b, u: c },
                Frame::Itrf => location.xyz_offset_to_enu(Xyz {
                    x: a - origin.x,
                    y: b - origin.y,
                    z: c - origin.z,
                }),
            };
            Antenna {
                name,
                enu,
                diameter,
            }
        })
        .collect();
    Ok(AntennaConfig {
        name: name.to_string(),
        location,
        antennas,
    })
}

fn parse_header(line: usize, header: &str) -> Result<Columns, ImagingError> {
    let labels: Vec<String> = header
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    let find = |want: &str| labels.iter().position(|l| l == want);
    for (j, l) in labels.iter().enumerate() {
        let known = ["name", "e", "n", "u", "x", "y", "z", "diameter"];
        if !known.contains(&l.as_str()) {
            return Err(ImagingError::invalid(
                format!("line {line}, column {}", j + 1),
                format!(
                    "unknown header {l:?}; expected name,e,n,u[,diameter] or name,x,y,z[,diameter]"
                ),
            ));
        }
        if labels[..j].contains(l) {
            return Err(ImagingError::invalid(
                format!("line {line}, column {}", j + 1),
                format!("header {l:?} appears twice"),
            ));
        }
    }
    let enu = [find("e"), find("n"), find("u")];
    let xyz = [find("x"), find("y"), find("z")];
    let has_enu = enu.iter().any(Option::is_some);
    let has_xyz = xyz.iter().any(Option::is_some);
    let (frame, pos, names) = match (has_enu, has_xyz) {
        (true, false) => (Frame::Enu, enu, ["e", "n", "u"]),
        (false, true) => (Frame::Itrf, xyz, ["x", "y", "z"]),
        _ => {
            return Err(ImagingError::invalid(
                format!("line {line}"),
                "the header needs either e,n,u or x,y,z position columns (not both)",
            ));
        }
    };
    let mut idx = [0; 3];
    for k in 0..3 {
        idx[k] = pos[k].ok_or_else(|| {
            ImagingError::invalid(
                format!("line {line}"),
                format!("missing column {:?}", names[k]),
            )
        })?;
    }
    let name = find("name")
        .ok_or_else(|| ImagingError::invalid(format!("line {line}"), "missing column \"name\""))?;
    Ok(Columns {
        frame,
        name,
        pos: idx,
        diameter: find("diameter"),
        width: labels.len(),
        labels,
    })
}

fn parse_number(line: usize, cols: &Columns, c: usize, s: &str) -> Result<f64, ImagingError> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(v) => Err(field_err(line, cols, c, format!("{v} is not finite"))),
        Err(_) => Err(field_err(line, cols, c, format!("{s:?} is not a number"))),
    }
}

fn field_err(line: usize, cols: &Columns, c: usize, reason: impl Into<String>) -> ImagingError {
    ImagingError::invalid(
        format!("line {line}, column {} ({})", c + 1, cols.labels[c]),
        reason,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::invalid_name;

    fn site() -> EarthLocation {
        EarthLocation::from_degrees(116.7644, -26.8247, 377.0)
    }

    fn enu(e: f64, n: f64, u: f64) -> Enu {
        Enu { e, n, u }
    }

    #[test]
    fn enu_with_comments_optional_diameter_and_any_column_order() {
        let text =
            "# my array\nname, n, e, u, diameter\n\nA1, 10, 20, 1.5, 12\r\n# skip\nA2,-5,0,0,14\n";
        let c = config_from_csv(text, "mine", 35.0, Some(site())).unwrap();
        assert_eq!(c.name, "mine");
        assert_eq!(c.location, site());
        let names: Vec<&str> = c.antennas.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["A1", "A2"]);
        assert_eq!(c.antennas[0].enu, enu(20.0, 10.0, 1.5));
        assert_eq!(c.antennas[1].enu, enu(0.0, -5.0, 0.0));
        assert_eq!(
            (c.antennas[0].diameter, c.antennas[1].diameter),
            (12.0, 14.0)
        );
        let c = config_from_csv("NAME,E,N,U\nx,1,2,3\n", "m", 35.0, Some(site())).unwrap();
        assert_eq!(c.antennas[0].diameter, 35.0);
    }

    #[test]
    fn itrf_rows_convert_to_enu_about_the_mean() {
        // Build ITRF rows from known ENU offsets about a site, then parse them back.
        let s = site();
        let o = s.to_xyz();
        let enus = [
            enu(1000.0, 0.0, 0.0),
            enu(-1000.0, 0.0, 0.0),
            enu(0.0, 500.0, 2.0),
            enu(0.0, -500.0, -2.0),
        ];
        let mut text = String::from("name,x,y,z\n");
        for (i, p) in enus.iter().enumerate() {
            let d = s.enu_to_xyz_offset(*p);
            text += &format!("s{i},{:.6},{:.6},{:.6}\n", o.x + d.x, o.y + d.y, o.z + d.z);
        }
        // The text keeps 1 µm: each coordinate is off by ≤ 0.5 µm, so a rotated offset by
        // ≤ √3 · 0.5 µm < 1 µm; the arithmetic adds ~1e-16 × 6.4e6 m ≈ 1 nm.
        let close = |c: &AntennaConfig| {
            c.antennas.iter().zip(&enus).all(|(a, p)| {
                let d = [a.enu.e - p.e, a.enu.n - p.n, a.enu.u - p.u];
                d.iter().all(|x| x.abs() < 1e-6)
            })
        };
        let c = config_from_csv(&text, "itrf", 35.0, Some(s)).unwrap();
        assert_eq!(c.location, s);
        assert!(close(&c), "{:?}", c.antennas);
        // Without a site, the geodetic position of the mean of the rows is used; the offsets
        // sum to zero, so that is the site again (to the text's µm and from_xyz's rounding).
        let c = config_from_csv(&text, "itrf", 35.0, None).unwrap();
        assert!((c.location.lat - s.lat).abs() < 1e-12 && (c.location.lon - s.lon).abs() < 1e-12);
        assert!((c.location.height - s.height).abs() < 1e-6);
        assert!(close(&c), "{:?}", c.antennas);
    }

    #[test]
    fn errors_name_line_and_column() {
        // (csv text, default diameter, site given, the name the error must carry)
        let cases = [
            ("name,e,n,u\na,1,zz,3\n", 35.0, true, "line 2, column 3 (n)"),
            ("# c\nname,e,n,q\n", 35.0, true, "line 2, column 4"),
            ("name,e,n,n\n", 35.0, true, "line 1, column 4"),
            ("name,e,n,u\na,1,2\n", 35.0, true, "line 2"),
            (
                "name,e,n,u,diameter\na,1,2,3,-1\n",
                35.0,
                true,
                "line 2, column 5 (diameter)",
            ),
            (
                "name,e,n,u\na,1,2,3\na,4,5,6\n",
                35.0,
                true,
                "line 3, column 1 (name)",
            ),
            (
                "name,e,n,u\n,1,2,3\n",
                35.0,
                true,
                "line 2, column 1 (name)",
            ),
            (
                "name,e,n,u\na,1,2,inf\n",
                35.0,
                true,
                "line 2, column 4 (u)",
            ),
            ("name,e,n,u\na,1,2,3\n", 35.0, false, "site"),
            ("name,x,y,z\na,1,2,3\n", 35.0, false, "line 2, column 2 (x)"),
            ("name,e,n,x\n", 35.0, true, "line 1"),
            ("name,e,n\n", 35.0, true, "line 1"),
            ("e,n,u\n", 35.0, true, "line 1"),
            ("name,e,n,u\n", 35.0, true, "csv"),
            ("", 35.0, true, "csv"),
            ("name,e,n,u\na,1,2,3\n", 0.0, true, "default_diameter"),
        ];
        for (text, diameter, with_site, want) in cases {
            let site = with_site.then(site);
            let got = invalid_name(config_from_csv(text, "m", diameter, site));
            assert_eq!(got, want, "{text:?}");
        }
    }
}
