//! The reader against the MeasurementSet fixtures of tests/data/ms (written by
//! scripts/make_ms_fixtures.py with python-casacore): subtables equal to the fixtures'
//! expected JSON; Stokes I, weights, flags, times, antennas and uvw equal, bit for bit,
//! to the oracle bundles computed with `getcol`; selection by field, spectral window,
//! channels and time; and bad input named by table and column.

#![cfg(feature = "casacore")]

use std::path::{Path, PathBuf};

use aperture_imaging::vis::VisBlock;
use aperture_ms::{ChannelRange, DataColumn, MeasurementSet, MsError, Plan, Selection, TimeRange};
use ndarray::{Array1, Array2};
use num_complex::Complex64;
use serde_json::Value;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/ms")
}

fn expected(name: &str) -> Value {
    let p = data_dir().join(format!("{name}.expected.json"));
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn open(name: &str) -> MeasurementSet {
    MeasurementSet::open(data_dir().join(format!("{name}.ms"))).unwrap()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Every window of `plan` in one group per window.
fn read_all(ms: &mut MeasurementSet, plan: &Plan) -> Vec<VisBlock> {
    (0..plan.windows.len())
        .flat_map(|w| ms.read_windows(plan, &[w]).unwrap())
        .collect()
}

fn select(field: usize, spw: usize, column: DataColumn) -> Selection {
    Selection {
        column,
        field: Some(field),
        spws: Some(vec![spw]),
        ..Selection::default()
    }
}

#[test]
fn subtables_equal_the_expected_json() {
    for name in ["low-linear", "low-circular", "unsupported"] {
        let e = expected(name);
        let ms = open(name);
        let m = ms.meta();
        assert_eq!(m.nrows, e["main"]["n_rows"].as_u64().unwrap(), "{name}");
        assert_eq!(
            m.telescope.as_deref(),
            e["telescope_name"].as_str(),
            "{name}"
        );
        let ant = &e["antennas"];
        assert_eq!(m.antennas.len(), ant["names"].as_array().unwrap().len());
        for (i, a) in m.antennas.iter().enumerate() {
            assert_eq!(a.name, ant["names"][i].as_str().unwrap());
            let p = f64s(&ant["position_itrf_m"][i]);
            for (got, want) in [a.position.x, a.position.y, a.position.z]
                .into_iter()
                .zip(p)
            {
                assert_close(got, want, &format!("{name} antenna {i}"));
            }
            assert_eq!(
                a.dish_diameter_m,
                ant["dish_diameter_m"][i].as_f64().unwrap()
            );
        }
        let corr: Vec<i32> = e["correlations"]["corr_type"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_i64().unwrap() as i32)
            .collect();
        assert_eq!(m.polarizations[0].corr_type, corr, "{name}");
        for (s, es) in m
            .spectral_windows
            .iter()
            .zip(e["spectral_windows"].as_array().unwrap())
        {
            assert_eq!(s.chan_freq_hz, f64s(&es["chan_freq_hz"]), "{name}");
            assert_eq!(s.chan_width_hz, f64s(&es["chan_width_hz"]), "{name}");
            assert_eq!(s.ref_freq_hz, es["ref_frequency_hz"].as_f64().unwrap());
            assert_eq!(
                i64::from(s.meas_freq_ref),
                es["meas_freq_ref"].as_i64().unwrap()
            );
            assert_eq!(s.frame(), "TOPO");
            assert_eq!(s.name, es["name"].as_str().unwrap());
        }
        assert_eq!(
            m.spectral_windows.len(),
            e["spectral_windows"].as_array().unwrap().len()
        );
        for (d, ed) in m
            .data_descriptions
            .iter()
            .zip(e["data_descriptions"].as_array().unwrap())
        {
            assert_eq!(d.spw_id as u64, ed["spectral_window_id"].as_u64().unwrap());
            assert_eq!(d.pol_id as u64, ed["polarization_id"].as_u64().unwrap());
        }
        let fields = e["fields"].as_array().unwrap();
        assert_eq!(m.fields.len(), fields.len());
        for (f, ef) in m.fields.iter().zip(fields) {
            let pd = f64s(&ef["phase_dir_rad"]);
            assert_eq!([f.phase_centre.ra, f.phase_centre.dec], pd[..], "{name}");
            assert_eq!(f.name, ef["name"].as_str().unwrap());
        }
        // The configuration is the same array: ENU offsets reproduce the ITRF baselines.
        let cfg = m.antenna_config();
        let site = cfg.location;
        for (a, row) in cfg.antennas.iter().zip(&m.antennas).skip(1) {
            let d = site.enu_to_xyz_offset(aperture_imaging::coords::Enu {
                e: a.enu.e - cfg.antennas[0].enu.e,
                n: a.enu.n - cfg.antennas[0].enu.n,
                u: a.enu.u - cfg.antennas[0].enu.u,
            });
            let want = [
                row.position.x - m.antennas[0].position.x,
                row.position.y - m.antennas[0].position.y,
                row.position.z - m.antennas[0].position.z,
            ];
            for (g, w) in [d.x, d.y, d.z].into_iter().zip(want) {
                assert!((g - w).abs() < 1e-6, "{name}: {g} vs {w}");
            }
        }
        assert_eq!(m.common_dish_diameter(), Some(35.0));
    }
}

/// The oracle bundle of one selection.
struct Oracle {
    uvw: Array2<f64>,
    freq: Array1<f64>,
    vis: Array2<Complex64>,
    weight: Array2<f64>,
    flag: Array2<bool>,
    time: Array1<f64>,
    ant1: Array1<i32>,
    ant2: Array1<i32>,
}

fn oracle(dir: &str) -> Oracle {
    let d = data_dir().join(dir);
    let f = |n: &str| d.join(format!("{n}.npy"));
    use ndarray_npy::read_npy;
    Oracle {
        uvw: read_npy(f("uvw")).unwrap(),
        freq: read_npy(f("freq")).unwrap(),
        vis: read_npy(f("vis")).unwrap(),
        weight: read_npy(f("weight")).unwrap(),
        flag: read_npy(f("flag")).unwrap(),
        time: read_npy(f("time")).unwrap(),
        ant1: read_npy(f("ant1")).unwrap(),
        ant2: read_npy(f("ant2")).unwrap(),
    }
}

/// `block` (rows on the plan's grid) equals the oracle bundle over `chans` of its
/// channels: the oracle is the same time x baseline grid with FLAG_ROW rows flagged,
/// where the reader has dropped the row (flagged, zero weight, zero uvw).
fn assert_matches_oracle(block: &VisBlock, o: &Oracle, chans: std::ops::Range<usize>, what: &str) {
    assert_eq!(block.n_rows(), o.time.len(), "{what}: rows");
    assert_eq!(
        block.freq_c,
        o.freq.as_slice().unwrap()[chans.clone()],
        "{what}"
    );
    for r in 0..block.n_rows() {
        assert_eq!(block.time_r[r], o.time[r], "{what}: row {r} time");
        assert_eq!(
            i64::from(block.ant1_r[r]),
            i64::from(o.ant1[r]),
            "{what}: row {r}"
        );
        assert_eq!(
            i64::from(block.ant2_r[r]),
            i64::from(o.ant2[r]),
            "{what}: row {r}"
        );
        let dropped = block.flag_rc.row(r).iter().all(|&f| f) && block.uvw_r[r].u == 0.0;
        if !dropped {
            let u = block.uvw_r[r];
            assert_eq!(
                [u.u, u.v, u.w],
                [o.uvw[[r, 0]], o.uvw[[r, 1]], o.uvw[[r, 2]]]
            );
        }
        for (c, oc) in chans.clone().enumerate() {
            let at = format!("{what}: row {r} channel {oc}");
            assert_eq!(block.flag_rc[[r, c]], o.flag[[r, oc]], "{at}");
            assert_eq!(block.vis_rc[[r, c]], o.vis[[r, oc]], "{at}");
            assert_eq!(block.weight_rc[[r, c]], o.weight[[r, oc]], "{at}");
        }
    }
    block.validate().unwrap();
}

/// `a` and `b` within two units in the last place (serde_json's float parsing is not
/// always correctly rounded).
fn assert_close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 2.0 * f64::EPSILON * a.abs().max(b.abs()),
        "{what}: {a} vs {b}"
    );
}

#[test]
fn stokes_i_equals_the_oracle_bundles() {
    for name in ["low-linear", "low-circular"] {
        let e = expected(name);
        let mut ms = open(name);
        for (key, s) in e["selections"].as_object().unwrap() {
            let column = match s["data_column"].as_str().unwrap() {
                "DATA" => DataColumn::Data,
                "CORRECTED_DATA" => DataColumn::Corrected,
                other => panic!("{other}"),
            };
            let field = s["field_id"].as_u64().unwrap() as usize;
            let spw = s["spectral_window_id"].as_u64().unwrap() as usize;
            let plan = ms.plan(&select(field, spw, column), None).unwrap();
            assert_eq!(plan.windows.len(), 1, "{name} {key}");
            let pc = f64s(&s["phase_centre_rad"]);
            assert_eq!([plan.phase_centre.ra, plan.phase_centre.dec], pc[..]);
            assert_eq!(
                plan.rows.autocorrelations,
                s["n_autocorrelation_rows"].as_u64().unwrap()
            );
            assert_eq!(plan.rows.flag_row, s["n_flag_row_rows"].as_u64().unwrap());
            assert_eq!(
                plan.rows.selected,
                s["n_rows_without_flag_row"].as_u64().unwrap()
            );
            assert_eq!(plan.layout.ntime() as u64, s["n_times"].as_u64().unwrap());
            assert_eq!(
                plan.layout.nbaseline() as u64,
                s["n_baselines"].as_u64().unwrap()
            );
            assert_eq!(plan.layout.time_s, f64s(&s["times_mjd_s"]));
            let blocks = read_all(&mut ms, &plan);
            let o = oracle(s["oracle_bundle"].as_str().unwrap());
            assert_matches_oracle(&blocks[0], &o, 0..o.freq.len(), &format!("{name} {key}"));
            let flagged = blocks[0].flag_rc.iter().filter(|&&f| f).count();
            assert_eq!(flagged as u64, s["n_flagged_samples"].as_u64().unwrap());
            let sw: f64 = blocks[0].effective_weight_rc().sum();
            assert_eq!(sw, s["sum_weight"].as_f64().unwrap(), "{name} {key}");
            // Both hands usable give w_I = 1 here (the fixture's weight pairs); one hand
            // gives that hand's weight, never 1.
            let one_hand = blocks[0]
                .effective_weight_rc()
                .iter()
                .filter(|&&w| w > 0.0 && w != 1.0)
                .count();
            assert_eq!(one_hand as u64, s["n_one_hand_samples"].as_u64().unwrap());
        }
    }
}

#[test]
fn a_flagged_xx_with_unflagged_yy_gives_yy_with_its_weight() {
    // MS row 1 (stations 0-1, first integration), channel 1: only XX is flagged.
    let e = expected("low-linear");
    let s = &e["selections"]["field0-spw0"]["first_samples"][1];
    assert_eq!(
        (s["ms_row"].as_u64(), s["channel"].as_u64()),
        (Some(1), Some(1))
    );
    let mut ms = open("low-linear");
    let plan = ms.plan(&select(0, 0, DataColumn::Data), None).unwrap();
    let b = &ms.read_windows(&plan, &[0]).unwrap()[0];
    let cell = plan.layout.spw_rows[0]
        .iter()
        .find(|&&(r, _)| r == 1)
        .unwrap()
        .1;
    let want = f64s(&s["vis"]);
    assert_eq!(b.vis_rc[[cell, 1]], Complex64::new(want[0], want[1]));
    assert_eq!(b.weight_rc[[cell, 1]], 0.75);
    assert!(!b.flag_rc[[cell, 1]]);
    // Its neighbours use both hands: weight 4/(1/w_XX + 1/w_YY) = 1.
    assert_eq!(b.weight_rc[[cell, 0]], 1.0);
}

#[test]
fn circular_corrected_data_is_twice_data() {
    let mut ms = open("low-circular");
    let p = ms.plan(&select(0, 0, DataColumn::Data), None).unwrap();
    let q = ms.plan(&select(0, 0, DataColumn::Corrected), None).unwrap();
    assert_eq!(p.weight_source, aperture_ms::WeightSource::Weight);
    let (d, c) = (&read_all(&mut ms, &p)[0], &read_all(&mut ms, &q)[0]);
    assert_eq!(c.vis_rc, d.vis_rc.mapv(|v| v * 2.0));
    assert_eq!(c.weight_rc, d.weight_rc);
}

#[test]
fn a_second_field_or_spw_is_read_only_when_selected() {
    let e = expected("low-linear");
    let sel = &e["selections"];
    let mut ms = open("low-linear");
    // Default: field 0, every spectral window with its rows, one window each.
    let plan = ms.plan(&Selection::default(), None).unwrap();
    assert_eq!(plan.field, 0);
    let spws: Vec<usize> = plan.spws.iter().map(|s| s.spw_id).collect();
    assert_eq!(spws, [0, 1]);
    let mut freq = f64s(&sel["field0-spw0"]["chan_freq_hz"]);
    freq.extend(f64s(&sel["field0-spw1"]["chan_freq_hz"]));
    assert_eq!(plan.freq_c(), freq);
    assert_eq!(plan.rows.total, e["main"]["n_rows"].as_u64().unwrap());
    let blocks = read_all(&mut ms, &plan);
    for (w, key) in ["field0-spw0", "field0-spw1"].into_iter().enumerate() {
        let o = oracle(sel[key]["oracle_bundle"].as_str().unwrap());
        assert_matches_oracle(&blocks[w], &o, 0..4, key);
    }
    // Field 1's other sky is never mixed in: only when selected.
    let plan = ms.plan(&select(1, 0, DataColumn::Data), None).unwrap();
    assert_eq!(plan.field_name, "OTHER");
    assert_eq!(plan.layout.ntime(), 2);
    let o = oracle(sel["field1-spw0"]["oracle_bundle"].as_str().unwrap());
    assert_matches_oracle(&read_all(&mut ms, &plan)[0], &o, 0..4, "field1-spw0");
    // Field 1 has no rows in spectral window 1.
    let e = ms.plan(&select(1, 1, DataColumn::Data), None).unwrap_err();
    assert!(matches!(e, MsError::Selection { .. }), "{e}");
    assert!(
        e.to_string().contains("--spw 1") && e.to_string().contains("no rows"),
        "{e}"
    );
}

#[test]
fn channels_time_and_windows_select_parts() {
    let e = expected("low-linear");
    let s = &e["selections"]["field0-spw0"];
    let o = oracle(s["oracle_bundle"].as_str().unwrap());
    let mut ms = open("low-linear");
    let mut sel = select(0, 0, DataColumn::Data);
    sel.channels = Some(ChannelRange {
        start: Some(1),
        end: Some(3),
    });
    let plan = ms.plan(&sel, None).unwrap();
    assert_matches_oracle(&read_all(&mut ms, &plan)[0], &o, 1..3, "channels 1:3");

    // Times: seconds after the first integration, or MJD seconds; inclusive.
    let times = f64s(&s["times_mjd_s"]);
    sel.channels = None;
    for (range, want) in [
        ("0:0", &times[..1]),
        (":7200", &times[..2]),
        (&format!("mjd:{}:", times[2]) as &str, &times[2..]),
    ] {
        sel.time = Some(range.parse::<TimeRange>().unwrap());
        let plan = ms.plan(&sel, None).unwrap();
        assert_eq!(plan.layout.time_s, want, "{range}");
    }
    sel.time = Some("1e6:".parse().unwrap());
    let e = ms.plan(&sel, None).unwrap_err().to_string();
    assert!(e.starts_with("--time-range: selects no rows"), "{e}");

    // Windows of one channel, read in groups of any size, give the same blocks.
    sel.time = None;
    sel.spws = None;
    let plan = ms.plan(&sel, Some(1)).unwrap();
    assert_eq!(plan.windows.len(), 8);
    let one_by_one = read_all(&mut ms, &plan);
    let per_channel = plan.bytes_per_channel();
    for budget in [3 * per_channel, usize::MAX] {
        let groups = plan.window_groups(budget);
        assert!(groups.len() >= 2, "groups never cross spectral windows");
        let mut got = Vec::new();
        for g in &groups {
            got.extend(ms.read_windows(&plan, g).unwrap());
        }
        assert_eq!(got, one_by_one);
    }
    let e = ms.plan(&sel, Some(3)).unwrap_err().to_string();
    assert!(
        e.starts_with("--channels-per-window: 3 does not divide"),
        "{e}"
    );
}

/// Copies a directory tree.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

fn open_err(path: &Path) -> String {
    MeasurementSet::open(path).unwrap_err().to_string()
}

#[test]
fn bad_input_is_named_by_table_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    // Not a MeasurementSet: missing, a file, a directory that is not a table.
    let missing = tmp.path().join("nope.ms");
    assert!(open_err(&missing).contains("is not a MeasurementSet (no such directory)"));
    let file = tmp.path().join("file.ms");
    std::fs::write(&file, b"x").unwrap();
    assert!(open_err(&file).contains("not a directory"));
    let dir = tmp.path().join("dir.ms");
    std::fs::create_dir(&dir).unwrap();
    let e = open_err(&dir);
    assert!(
        e.contains("dir.ms: is not a MeasurementSet (no table.dat"),
        "{e}"
    );

    // A subtable deleted from a copy.
    let copy = tmp.path().join("copy.ms");
    copy_dir(&data_dir().join("low-linear.ms"), &copy);
    std::fs::remove_dir_all(copy.join("SPECTRAL_WINDOW")).unwrap();
    let e = open_err(&copy);
    assert!(
        e.ends_with("copy.ms: has no SPECTRAL_WINDOW subtable"),
        "{e}"
    );

    // A column the selection asks for that is not there.
    let mut ms = open("low-circular");
    let e = ms.plan(&select(0, 0, DataColumn::Model), None).unwrap_err();
    assert!(matches!(e, MsError::MissingColumn { .. }), "{e}");
    assert!(
        e.to_string()
            .ends_with("table MAIN has no column MODEL_DATA"),
        "{e}"
    );

    // Correlations without Stokes I.
    let mut ms = open("unsupported");
    let e = ms
        .plan(&Selection::default(), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("POLARIZATION/CORR_TYPE row 0 holds correlations [XY(10), YX(11)]"),
        "{e}"
    );

    // Channels outside the spectral window, fields and windows that do not exist.
    let mut ms = open("low-linear");
    let mut sel = select(0, 1, DataColumn::Data);
    sel.channels = Some("2:9".parse().unwrap());
    let e = ms.plan(&sel, None).unwrap_err();
    assert!(
        matches!(
            e,
            MsError::ChannelRange {
                spw: 1,
                nchan: 4,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "channels 2:9: outside SPECTRAL_WINDOW 1, which has 4 channels (0:4)"
    );
    let e = ms.plan(&select(2, 0, DataColumn::Data), None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "--field 2: the MeasurementSet has 2 fields (0-1)"
    );
    let e = ms.plan(&select(0, 5, DataColumn::Data), None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "--spw 5: the MeasurementSet has 2 spectral windows"
    );
}

#[test]
fn a_column_of_the_wrong_type_is_an_error_not_a_panic() {
    // FLAG_ROW and UVW rewritten with other types in a copy: the reader checks types
    // before reading (rubbl sizes its buffers from them).
    use rubbl_casatables::{GlueDataType, Table, TableOpenMode};
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("t.ms");
    copy_dir(&data_dir().join("low-linear.ms"), &copy);
    {
        let _casacore = aperture_ms::casacore_lock();
        let mut t = Table::open(&copy, TableOpenMode::ReadWrite).unwrap();
        t.remove_column("FLAG_ROW").unwrap();
        t.add_scalar_column(GlueDataType::TpInt, "FLAG_ROW", None, true, false)
            .unwrap();
    }
    let mut ms = MeasurementSet::open(&copy).unwrap();
    let e = ms
        .plan(&Selection::default(), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "column MAIN/FLAG_ROW is a scalar column of i32; expected a scalar column of bool"
        ),
        "{e}"
    );
    drop(ms);
    {
        let _casacore = aperture_ms::casacore_lock();
        let mut t = Table::open(&copy, TableOpenMode::ReadWrite).unwrap();
        t.remove_column("UVW").unwrap();
        t.add_scalar_column(GlueDataType::TpFloat, "UVW", None, true, false)
            .unwrap();
    }
    let mut ms = MeasurementSet::open(&copy).unwrap();
    let e = ms
        .plan(&Selection::default(), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("column MAIN/UVW is a scalar column of f32; expected an array column of f64"),
        "{e}"
    );
}

#[test]
fn a_data_cell_of_another_shape_is_named_by_its_row() {
    // A row appended to a copy, one integration after the last, of spectral window 0,
    // with a DATA cell a channel short (DATA is variable-shape): the bulk read checks
    // every row's shape and names the row.
    use rubbl_casatables::{Array, Complex, Table, TableOpenMode};
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("t.ms");
    copy_dir(&data_dir().join("low-linear.ms"), &copy);
    let sel = select(0, 0, DataColumn::Data);
    let mut ms = MeasurementSet::open(&copy).unwrap();
    let plan = ms.plan(&sel, None).unwrap();
    let (nchan, ncorr, ddid) = (plan.spws[0].nchan, plan.spws[0].ncorr, plan.spws[0].ddid);
    let last_time = *plan.layout.time_s.last().unwrap();
    let row = ms.meta().nrows;
    drop(ms);
    {
        let _casacore = aperture_ms::casacore_lock();
        let mut t = Table::open(&copy, TableOpenMode::ReadWrite).unwrap();
        t.add_rows(1).unwrap();
        t.put_cell("TIME", row, &(last_time + 10.0)).unwrap();
        t.put_cell("ANTENNA1", row, &0i32).unwrap();
        t.put_cell("ANTENNA2", row, &1i32).unwrap();
        t.put_cell("FIELD_ID", row, &0i32).unwrap();
        t.put_cell("DATA_DESC_ID", row, &(ddid as i32)).unwrap();
        t.put_cell("FLAG_ROW", row, &false).unwrap();
        t.put_cell("UVW", row, &vec![1.0f64, 2.0, 3.0]).unwrap();
        let cell = Array::<Complex<f32>, _>::zeros((nchan - 1, ncorr));
        t.put_cell("DATA", row, &cell).unwrap();
    }
    let mut ms = MeasurementSet::open(&copy).unwrap();
    let plan = ms.plan(&sel, None).unwrap();
    let e = ms.read_windows(&plan, &[0]).unwrap_err().to_string();
    assert!(
        e.contains(&format!(
            "MAIN/DATA row {row}: has {} values; expected {}",
            (nchan - 1) * ncorr,
            nchan * ncorr
        )),
        "{e}"
    );
}
