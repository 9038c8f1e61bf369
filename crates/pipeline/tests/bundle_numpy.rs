//! Python interop for numpy bundles: numpy loads what we write (shapes, dtypes, values),
//! and we read what numpy writes (complex64 vis, float32 weights, Fortran order,
//! big-endian, int64 antennas). Skipped if numpy is missing.

mod common;

use aperture_imaging::coords::RaDec;
use aperture_imaging::vis::VisBlock;
use aperture_pipeline::formats::bundle::{
    Bundle, BundleMeta, VisDtype, WriteBundleOptions, read_bundle_full, write_bundle,
};
use serde_json::Value;

/// Prints, for every .npy in the directory argv[1], its dtype, shape and flat values;
/// floats as the bits of their float64 value (JSON decimals need not round-trip exactly),
/// complex values as [re, im] bit pairs.
const LOAD: &str = r#"
import json, pathlib, sys
import numpy as np
out = {}
for p in sorted(pathlib.Path(sys.argv[1]).glob("*.npy")):
    a = np.load(p, allow_pickle=False)
    flat = a.ravel(order="C")
    if np.iscomplexobj(flat):
        bits = flat.astype(np.complex128).view(np.float64).view(np.uint64)
        values = [[int(a), int(b)] for a, b in bits.reshape(-1, 2)]
    elif flat.dtype == np.bool_:
        values = [bool(v) for v in flat]
    elif np.issubdtype(flat.dtype, np.integer):
        values = [int(v) for v in flat]
    else:
        values = [int(v) for v in flat.astype(np.float64).view(np.uint64)]
    out[p.stem] = {"dtype": a.dtype.str, "shape": list(a.shape), "values": values}
out["meta"] = json.load(open(pathlib.Path(sys.argv[1]) / "meta.json"))
print(json.dumps(out))
"#;

/// Floats sent as the bits of their float64 value.
fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| f64::from_bits(x.as_u64().unwrap()))
        .collect()
}

fn check_loaded(out: &Value, block: &VisBlock, single: bool) {
    let (nr, nc) = (block.n_rows() as u64, block.n_chan() as u64);
    let arr = |name: &str, dtype: &str, shape: &[u64]| {
        let a = &out[name];
        assert_eq!(a["dtype"], dtype, "{name}");
        let got: Vec<u64> = a["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_u64().unwrap())
            .collect();
        assert_eq!(got, shape, "{name}");
        &a["values"]
    };
    let uvw: Vec<f64> = block.uvw_r.iter().flat_map(|p| [p.u, p.v, p.w]).collect();
    assert_eq!(f64s(arr("uvw", "<f8", &[nr, 3])), uvw);
    assert_eq!(f64s(arr("freq", "<f8", &[nc])), block.freq_c);
    assert_eq!(f64s(arr("time", "<f8", &[nr])), block.time_r);
    let (vis_dt, w_dt) = if single {
        ("<c8", "<f4")
    } else {
        ("<c16", "<f8")
    };
    let round = |x: f64| if single { f64::from(x as f32) } else { x };
    let vis: Vec<f64> = block
        .vis_rc
        .iter()
        .flat_map(|v| [round(v.re), round(v.im)])
        .collect();
    let got: Vec<f64> = arr("vis", vis_dt, &[nr, nc])
        .as_array()
        .unwrap()
        .iter()
        .flat_map(f64s)
        .collect();
    assert_eq!(got, vis);
    let w: Vec<f64> = block.weight_rc.iter().map(|&w| round(w)).collect();
    assert_eq!(f64s(arr("weight", w_dt, &[nr, nc])), w);
    let flags: Vec<bool> = arr("flag", "|b1", &[nr, nc])
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_bool().unwrap())
        .collect();
    assert_eq!(flags, block.flag_rc.iter().copied().collect::<Vec<_>>());
    for (name, ants) in [("ant1", &block.ant1_r), ("ant2", &block.ant2_r)] {
        let got: Vec<u32> = arr(name, "<i4", &[nr])
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(&got, ants);
    }
    // The degrees the block's centre was made from (common::vis_block), exactly.
    let pc = &out["meta"]["phase_centre"];
    assert_eq!(
        (pc["ra_deg"].as_f64(), pc["dec_deg"].as_f64()),
        (Some(201.365), Some(-43.019))
    );
    assert_eq!(out["meta"]["telescope"], "LOW");
}

#[test]
fn numpy_loads_what_we_write() {
    if !common::python_has(&["numpy"]) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let block = common::vis_block(9, 4);
    let mut meta = BundleMeta::for_block(&block);
    meta.telescope = Some("LOW".into());
    for (name, vis_dtype) in [("c8", VisDtype::Complex64), ("c16", VisDtype::Complex128)] {
        let dir = root.path().join(name);
        let opts = WriteBundleOptions {
            vis_dtype,
            overwrite: false,
        };
        write_bundle(&dir, &block, &meta, opts).unwrap();
        let out: Value = serde_json::from_str(&common::run_python(LOAD, &[&dir])).unwrap();
        check_loaded(&out, &block, vis_dtype == VisDtype::Complex64);
    }
}

/// Writes a bundle with numpy.save into argv[1]: nrow = 6, nchan = 3.
const SAVE: &str = r#"
import json, pathlib, sys
import numpy as np
d = pathlib.Path(sys.argv[1]); d.mkdir()
nrow, nchan = 6, 3
r = np.arange(nrow, dtype=np.float64)[:, None]
c = np.arange(nchan, dtype=np.float64)[None, :]
uvw = np.stack([1.5 * r[:, 0], -2.0 * r[:, 0], 0.1 * r[:, 0]], axis=1)
np.save(d / "uvw.npy", np.asfortranarray(uvw))
np.save(d / "freq.npy", 1.0e8 + 1.0e6 * np.arange(nchan))
np.save(d / "vis.npy", (r + 0.5 * c - 0.25j * r).astype(np.complex64))
np.save(d / "weight.npy", (1.0 + r * c / 8.0).astype(np.float32))
np.save(d / "flag.npy", (r + c) % 2 == 0)
np.save(d / "ant1.npy", np.arange(nrow, dtype=np.int64) % 3)
np.save(d / "ant2.npy", (np.arange(nrow, dtype=np.int64) % 3 + 1).astype(np.int32))
np.save(d / "time.npy", (4.0e9 + 2.0 * np.arange(nrow)).astype(">f8"))
json.dump({"phase_centre": {"ra_deg": 83.63, "dec_deg": 22.01}, "telescope": "MID",
           "station_diameter_m": 13.5, "source": "numpy"}, open(d / "meta.json", "w"))
"#;

#[test]
fn we_read_what_numpy_writes() {
    if !common::python_has(&["numpy"]) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("from_numpy");
    common::run_python(SAVE, &[&dir]);
    let Bundle {
        block,
        meta,
        vis_dtype,
    } = read_bundle_full(&dir).unwrap();
    assert_eq!(vis_dtype, VisDtype::Complex64);
    assert_eq!((block.n_rows(), block.n_chan()), (6, 3));
    for (r, p) in block.uvw_r.iter().enumerate() {
        let rf = r as f64;
        assert_eq!((p.u, p.v, p.w), (1.5 * rf, -2.0 * rf, 0.1 * rf));
    }
    assert_eq!(block.freq_c, vec![1.0e8, 1.01e8, 1.02e8]);
    for ((r, c), v) in block.vis_rc.indexed_iter() {
        let (rf, cf) = (r as f64, c as f64);
        assert_eq!((v.re, v.im), (rf + 0.5 * cf, -0.25 * rf));
        assert_eq!(
            block.weight_rc[[r, c]],
            f64::from((1.0 + rf * cf / 8.0) as f32)
        );
        assert_eq!(block.flag_rc[[r, c]], (r + c) % 2 == 0);
    }
    assert_eq!(block.ant1_r, vec![0, 1, 2, 0, 1, 2]);
    assert_eq!(block.ant2_r, vec![1, 2, 3, 1, 2, 3]);
    assert_eq!(
        block.time_r,
        (0..6).map(|r| 4.0e9 + 2.0 * r as f64).collect::<Vec<_>>()
    );
    assert_eq!(block.phase_centre, RaDec::from_degrees(83.63, 22.01));
    assert_eq!(meta.telescope.as_deref(), Some("MID"));
    assert_eq!(meta.station_diameter_m, Some(13.5));
    assert_eq!(meta.extra["source"], "numpy");
}
