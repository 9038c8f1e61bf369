//! The Zarr visibility store: bit-exact round trips of simulated windows (in memory and on
//! disk), one window = one independent read (requests recorded), concurrent window
//! writes equal sequential ones, bad input (corrupt or missing chunks, unwritten windows,
//! blocks that do not fit, inconsistent array metadata) named precisely, bundle import
//! with irregular rows, and zarr-python / xarray reading what we write.

mod common;
#[path = "support/seaweedfs.rs"]
mod seaweedfs;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use aperture_imaging::coords::{RaDec, UvwMetres};
use aperture_imaging::sim::{
    FrequencySetup, PointSource, SkyModel, hour_angles, low_config, simulate_block,
};
use aperture_imaging::vis::VisBlock;
use aperture_pipeline::FormatError;
use aperture_pipeline::formats::bundle::{BundleMeta, VisDtype, WriteBundleOptions, write_bundle};
use aperture_pipeline::formats::zarr_vis::{
    ImportOptions, RowGrid, VisDatasetMeta, WindowMeta, create_dataset, dataset_exists,
    delete_dataset, import_bundle, open_dataset,
};
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use ndarray::Array3;
use num_complex::{Complex32, Complex64};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

const WINDOWS: usize = 3;
const CHANNELS: usize = 2;

/// A simulated observation: the dataset metadata and one block per window, as the
/// simulate stage makes them (each window simulated on its own, with noise so every
/// value differs), with varied weights and some flags.
struct Obs {
    meta: VisDatasetMeta,
    windows: Vec<VisBlock>,
}

fn observation(ntimes: usize) -> Obs {
    let config = low_config(300.0).unwrap();
    let pc = RaDec::from_degrees(15.0, -45.0);
    let ha = hour_angles(ntimes, 4.0).unwrap();
    let setup = FrequencySetup::new(WINDOWS, CHANNELS, 100e6, 150e6).unwrap();
    let freq = setup.freq_c().unwrap();
    let sky = SkyModel {
        sources: vec![PointSource {
            dir: RaDec::from_degrees(15.5, -44.5),
            flux_jy: 2.0,
            spectral_index: -0.7,
        }],
        ref_freq_hz: 125e6,
    };
    let windows: Vec<VisBlock> = (0..WINDOWS)
        .map(|w| {
            let f = &freq[setup.channels_of(w).unwrap()];
            let mut b = simulate_block(&config, pc, &ha, f, &sky, 0.3, 10 + w as u64).unwrap();
            for ((r, c), x) in b.weight_rc.indexed_iter_mut() {
                *x = 0.5 + ((r * 7 + c * 3 + w) % 11) as f64 / 3.0;
            }
            for ((r, c), x) in b.flag_rc.indexed_iter_mut() {
                *x = (r + 5 * c + w) % 17 == 0;
            }
            b
        })
        .collect();
    let b0 = &windows[0];
    let grid = RowGrid::from_rows(&b0.time_r, &b0.ant1_r, &b0.ant2_r).unwrap();
    assert!(
        grid.is_identity(),
        "simulated rows are time-major on the grid"
    );
    let meta = VisDatasetMeta::new(&grid, WindowMeta::split(&freq, CHANNELS).unwrap(), pc).unwrap();
    Obs { meta, windows }
}

/// `block` as a complex64 dataset stores it: vis and weights rounded to f32.
fn rounded(block: &VisBlock) -> VisBlock {
    let mut b = block.clone();
    b.vis_rc
        .mapv_inplace(|v| Complex64::new((v.re as f32).into(), (v.im as f32).into()));
    b.weight_rc.mapv_inplace(|x| (x as f32).into());
    b
}

fn uvw_tb3(meta: &VisDatasetMeta, uvw_r: &[UvwMetres]) -> Array3<f64> {
    Array3::from_shape_vec(
        (meta.ntime, meta.nbaseline, 3),
        uvw_r.iter().flat_map(|p| [p.u, p.v, p.w]).collect(),
    )
    .unwrap()
}

/// Every object of `store` with its bytes.
async fn snapshot(store: &Arc<dyn ObjectStore>) -> BTreeMap<String, Bytes> {
    let metas: Vec<ObjectMeta> = store.list(None).try_collect().await.unwrap();
    let mut out = BTreeMap::new();
    for m in metas {
        let b = store.get(&m.location).await.unwrap().bytes().await.unwrap();
        out.insert(m.location.to_string(), b);
    }
    out
}

fn memory() -> Arc<dyn ObjectStore> {
    Arc::new(InMemory::new())
}

fn local(dir: &std::path::Path) -> Arc<dyn ObjectStore> {
    Arc::new(LocalFileSystem::new_with_prefix(dir).unwrap())
}

async fn write_all(store: &Arc<dyn ObjectStore>, prefix: &Path, obs: &Obs, uvw: bool) {
    let u = uvw.then(|| uvw_tb3(&obs.meta, &obs.windows[0].uvw_r));
    let ds = create_dataset(
        store.clone(),
        prefix,
        &obs.meta,
        u.as_ref().map(|a| a.view()),
    )
    .await
    .unwrap();
    for (w, b) in obs.windows.iter().enumerate() {
        ds.write_window(w, b).await.unwrap();
    }
}

#[tokio::test]
async fn windows_round_trip_bit_exact_in_memory_and_on_disk() {
    let obs = observation(3);
    let dir = tempfile::tempdir().unwrap();
    for (store, uvw_at_create) in [(memory(), false), (local(dir.path()), true)] {
        let prefix = Path::from("obs/vis.zarr");
        write_all(&store, &prefix, &obs, uvw_at_create).await;
        let ds = open_dataset(store.clone(), &prefix).await.unwrap();
        assert_eq!(ds.nwindows(), WINDOWS);
        assert_eq!(ds.meta().uvw_at_create, uvw_at_create);
        for (w, want) in obs.windows.iter().enumerate() {
            let got = ds.read_window(w).await.unwrap();
            // Everything but vis and weights is exact; those are exactly their f32 values.
            assert_eq!(got, rounded(want), "window {w}");
            // The rounding is what complex64 costs: ≤ 2^-24 relative per component.
            for (g, o) in got.vis_rc.iter().zip(&want.vis_rc) {
                assert!((g - o).norm() <= 2f64.powi(-24) * 2f64.sqrt() * o.norm());
            }
        }
    }
    // The dataset is where the keys say on disk.
    assert!(dir.path().join("obs/vis.zarr/zarr.json").is_file());
    assert!(
        dir.path()
            .join("obs/vis.zarr/VISIBILITY/c/0/0/2/0")
            .is_file()
    );
}

#[tokio::test]
async fn complex128_datasets_are_lossless() {
    let obs = observation(2);
    let mut meta = obs.meta.clone();
    meta.vis_dtype = VisDtype::Complex128;
    let store = memory();
    let prefix = Path::from("v.zarr");
    let ds = create_dataset(store.clone(), &prefix, &meta, None)
        .await
        .unwrap();
    ds.write_window(2, &obs.windows[2]).await.unwrap();
    let ds = open_dataset(store, &prefix).await.unwrap();
    assert_eq!(ds.read_window(2).await.unwrap(), obs.windows[2]);
}

/// An object store that records the path of every request to the one it wraps.
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn ObjectStore>,
    log: Arc<Mutex<Vec<(&'static str, String)>>>,
}

impl fmt::Display for Recording {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recording({})", self.inner)
    }
}

impl Recording {
    fn note(&self, op: &'static str, p: &Path) {
        self.log.lock().unwrap().push((op, p.to_string()));
    }
}

#[async_trait]
impl ObjectStore for Recording {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.note("put", location);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.note("put", location);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.note(if options.head { "head" } else { "get" }, location);
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.note("get", location);
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let log = self.log.clone();
        let locations = locations
            .inspect(move |p| {
                if let Ok(p) = p {
                    log.lock().unwrap().push(("delete", p.to_string()));
                }
            })
            .boxed();
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.note("list", prefix.unwrap_or(&Path::default()));
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.note("list", prefix.unwrap_or(&Path::default()));
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.note("put", to);
        self.inner.copy_opts(from, to, options).await
    }
}

#[tokio::test]
async fn one_window_is_one_independent_read_and_write() {
    // 5 times in chunks of 2: three time chunks, the last one partly past the end.
    let obs = observation(5);
    let mut meta = obs.meta.clone();
    meta.time_chunk = 2;
    let log = Arc::new(Mutex::new(Vec::new()));
    let store: Arc<dyn ObjectStore> = Arc::new(Recording {
        inner: memory(),
        log: log.clone(),
    });
    let prefix = Path::from("run/vis.zarr");
    let ds = create_dataset(store.clone(), &prefix, &meta, None)
        .await
        .unwrap();
    for w in [0, 2] {
        ds.write_window(w, &obs.windows[w]).await.unwrap();
    }
    let window_keys = |w: usize, with_uvw: bool| {
        let mut keys = vec![format!("run/vis.zarr/window_complete/c/{w}")];
        for t in 0..3 {
            for a in ["VISIBILITY", "WEIGHT", "FLAG"] {
                keys.push(format!("run/vis.zarr/{a}/c/{t}/0/{w}/0"));
            }
            if with_uvw {
                keys.push(format!("run/vis.zarr/UVW/c/{t}/0/0"));
            }
        }
        keys.sort();
        keys
    };
    // Writing window 1 (UVW not given at creation, so each window writes it) touches its
    // own chunks and UVW only: erase the marker, write the chunks, write the marker.
    log.lock().unwrap().clear();
    ds.write_window(1, &obs.windows[1]).await.unwrap();
    let ops = log.lock().unwrap().clone();
    let mut touched: Vec<String> = ops.iter().map(|(_, p)| p.clone()).collect();
    touched.sort();
    touched.dedup();
    assert_eq!(touched, window_keys(1, true), "{ops:?}");
    let marker = "run/vis.zarr/window_complete/c/1";
    let marker_ops: Vec<&str> = ops
        .iter()
        .filter(|(_, p)| p == marker)
        .map(|(op, _)| *op)
        .collect();
    assert_eq!(marker_ops.first(), Some(&"delete"), "{ops:?}");
    assert_eq!(marker_ops.last(), Some(&"put"), "{ops:?}");
    assert_eq!(ops.last().map(|(_, p)| p.as_str()), Some(marker));

    // Reading window 1 from a freshly opened dataset: only its chunks, each once.
    let ds = open_dataset(store.clone(), &prefix).await.unwrap();
    log.lock().unwrap().clear();
    let got = ds.read_window(1).await.unwrap();
    assert_eq!(got, rounded(&obs.windows[1]));
    let ops = log.lock().unwrap().clone();
    assert!(ops.iter().all(|(op, _)| *op == "get"), "{ops:?}");
    let mut read: Vec<String> = ops.into_iter().map(|(_, p)| p).collect();
    read.sort();
    assert_eq!(read, window_keys(1, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_window_writes_equal_sequential_ones() {
    let obs = observation(3);
    let prefix = Path::from("vis.zarr");
    let sequential = memory();
    write_all(&sequential, &prefix, &obs, false).await;

    let concurrent = memory();
    create_dataset(concurrent.clone(), &prefix, &obs.meta, None)
        .await
        .unwrap();
    // Each writer opens its own handle, as separate worker tasks would; windows go in
    // reverse order, all at once.
    let writers = (0..WINDOWS).rev().map(|w| {
        let store = concurrent.clone();
        let prefix = prefix.clone();
        let block = obs.windows[w].clone();
        tokio::spawn(async move {
            let ds = open_dataset(store, &prefix).await?;
            ds.write_window(w, &block).await
        })
    });
    for r in futures::future::join_all(writers).await {
        r.unwrap().unwrap();
    }
    let (a, b) = (snapshot(&sequential).await, snapshot(&concurrent).await);
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    assert_eq!(a, b);

    // Re-writing a window (a retried task) changes nothing; so does re-creating.
    let ds = create_dataset(concurrent.clone(), &prefix, &obs.meta, None)
        .await
        .unwrap();
    ds.write_window(1, &obs.windows[1]).await.unwrap();
    assert_eq!(snapshot(&concurrent).await, a);
}

fn zarr_error(e: FormatError) -> (String, String) {
    match e {
        FormatError::Zarr { key, message } => (key, message),
        other => panic!("expected a Zarr error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_corrupt_chunk_is_an_error_naming_the_window_and_key() {
    let obs = observation(3);
    let dir = tempfile::tempdir().unwrap();
    let store = local(dir.path());
    let prefix = Path::from("data/vis.zarr");
    write_all(&store, &prefix, &obs, true).await;
    let ds = open_dataset(store.clone(), &prefix).await.unwrap();
    let key = "data/vis.zarr/VISIBILITY/c/0/0/1/0";
    let file = dir.path().join(key);
    let good = std::fs::read(&file).unwrap();

    // Garbage of another length, and a single flipped bit (same length: only the
    // checksum can tell).
    let mut flipped = good.clone();
    flipped[100] ^= 0x10;
    for bad in [b"not a zarr chunk".to_vec(), flipped] {
        std::fs::write(&file, &bad).unwrap();
        let (k, message) = zarr_error(ds.read_window(1).await.unwrap_err());
        assert_eq!(k, key);
        assert!(message.contains("window 1"), "{message}");
        let shown = FormatError::Zarr {
            key: k,
            message: message.clone(),
        }
        .to_string();
        assert!(shown.contains(key) && shown.contains("window 1"), "{shown}");
    }
    // The other windows are untouched.
    assert_eq!(ds.read_window(0).await.unwrap(), rounded(&obs.windows[0]));

    // A chunk deleted behind the marker's back.
    std::fs::remove_file(&file).unwrap();
    let (k, message) = zarr_error(ds.read_window(1).await.unwrap_err());
    assert_eq!(k, key);
    assert!(message.contains("missing"), "{message}");
    std::fs::write(&file, &good).unwrap();
    assert_eq!(ds.read_window(1).await.unwrap(), rounded(&obs.windows[1]));

    // Corrupt group metadata names its key.
    std::fs::write(dir.path().join("data/vis.zarr/zarr.json"), b"{").unwrap();
    let (k, _) = zarr_error(open_dataset(store, &prefix).await.unwrap_err());
    assert_eq!(k, "data/vis.zarr/zarr.json");
}

#[tokio::test]
async fn unwritten_windows_and_missing_datasets_are_clear_errors() {
    let obs = observation(2);
    let store = memory();
    let prefix = Path::from("a/vis.zarr");
    let (k, message) = zarr_error(open_dataset(store.clone(), &prefix).await.unwrap_err());
    assert_eq!(k, "a/vis.zarr/zarr.json");
    assert!(message.contains("no visibility dataset"), "{message}");
    assert!(!dataset_exists(store.clone(), &prefix).await.unwrap());

    let ds = create_dataset(store.clone(), &prefix, &obs.meta, None)
        .await
        .unwrap();
    assert!(dataset_exists(store.clone(), &prefix).await.unwrap());
    ds.write_window(0, &obs.windows[0]).await.unwrap();
    ds.write_window(2, &obs.windows[2]).await.unwrap();
    match ds.read_window(1).await.unwrap_err() {
        FormatError::MissingWindow { window, key } => {
            assert_eq!(
                (window, key.as_str()),
                (1, "a/vis.zarr/window_complete/c/1")
            );
        }
        other => panic!("{other:?}"),
    }
    let e = ds.read_window(1).await.unwrap_err().to_string();
    assert!(e.contains("window 1 has not been written"), "{e}");
    assert!(ds.window_complete(2).await.unwrap() && !ds.window_complete(1).await.unwrap());
    match ds.read_window(3).await.unwrap_err() {
        FormatError::Window {
            window: 3, field, ..
        } => assert_eq!(field, "window"),
        other => panic!("{other:?}"),
    }
}

fn window_field(e: FormatError) -> (usize, String) {
    match e {
        FormatError::Window { window, field, .. } => (window, field),
        other => panic!("expected a Window error, got {other:?}"),
    }
}

#[tokio::test]
async fn blocks_that_do_not_fit_their_window_name_the_field() {
    let obs = observation(2);
    let store = memory();
    let prefix = Path::from("vis.zarr");
    let ds = create_dataset(store.clone(), &prefix, &obs.meta, None)
        .await
        .unwrap();
    let good = &obs.windows[1];
    let n = good.n_rows();
    type Edit<'a> = Box<dyn Fn(&mut VisBlock) + 'a>;
    let cases: Vec<(Edit<'_>, String)> = vec![
        // Another window's channels.
        (
            Box::new(|b| b.freq_c = obs.windows[0].freq_c.clone()),
            "freq_c[0]".into(),
        ),
        // Three channels instead of two.
        (
            Box::new(|b| {
                b.freq_c.push(1.6e8);
                b.vis_rc = ndarray::Array2::zeros((b.n_rows(), 3));
            }),
            "freq_c".into(),
        ),
        (
            Box::new(|b| b.weight_rc = ndarray::Array2::ones((n, 1))),
            "weight_rc".into(),
        ),
        (
            Box::new(|b| {
                b.uvw_r.pop();
            }),
            "uvw_r".into(),
        ),
        // Rows 0 and 1 are baselines 0-1 and 0-2: swapped, row 0 is not baseline 0.
        (Box::new(|b| b.ant2_r.swap(0, 1)), "ant1_r/ant2_r[0]".into()),
        (
            Box::new(|b| b.time_r[n - 1] += 10.0),
            format!("time_r[{}]", n - 1),
        ),
        (Box::new(|b| b.vis_rc[[3, 1]].re = f64::NAN), "vis".into()),
        (Box::new(|b| b.weight_rc[[3, 1]] = -1.0), "weight".into()),
        (
            Box::new(|b| b.phase_centre = RaDec::from_degrees(15.0, -44.0)),
            "phase_centre".into(),
        ),
    ];
    for (edit, field) in cases {
        let mut b = good.clone();
        edit(&mut b);
        let (w, got) = window_field(ds.write_window(1, &b).await.unwrap_err());
        assert_eq!((w, got), (1, field));
    }
    // Nothing was written by the refused blocks.
    assert!(!ds.window_complete(1).await.unwrap());
    let (w, field) = window_field(ds.write_window(7, good).await.unwrap_err());
    assert_eq!((w, field.as_str()), (7, "window"));
}

#[tokio::test]
async fn array_metadata_that_disagrees_is_named() {
    let obs = observation(2);
    let store = memory();
    let prefix = Path::from("vis.zarr");
    create_dataset(store.clone(), &prefix, &obs.meta, None)
        .await
        .unwrap();
    // A WEIGHT array one time short: the shapes of a window no longer agree.
    let key = Path::from("vis.zarr/WEIGHT/zarr.json");
    let text = store.get(&key).await.unwrap().bytes().await.unwrap();
    let mut json: serde_json::Value = serde_json::from_slice(&text).unwrap();
    json["shape"][0] = serde_json::json!(obs.meta.ntime - 1);
    store
        .put(&key, serde_json::to_vec(&json).unwrap().into())
        .await
        .unwrap();
    let (k, message) = zarr_error(open_dataset(store.clone(), &prefix).await.unwrap_err());
    assert_eq!(k, "vis.zarr/WEIGHT/zarr.json");
    assert!(message.contains("shape"), "{message}");
    // A foreign Zarr group.
    let mut m = obs.meta.clone();
    m.ntime = 0;
    let (k, message) = {
        store
            .put(
                &Path::from("other/zarr.json"),
                br#"{"zarr_format":3,"node_type":"group","attributes":{}}"#
                    .to_vec()
                    .into(),
            )
            .await
            .unwrap();
        zarr_error(
            open_dataset(store.clone(), &Path::from("other"))
                .await
                .unwrap_err(),
        )
    };
    assert_eq!(k, "other/zarr.json");
    assert!(
        message.contains("not an aperture visibility dataset"),
        "{message}"
    );
    // Invalid metadata is refused before anything is written.
    let e = create_dataset(store.clone(), &Path::from("new"), &m, None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("ntime"), "{e}");
    assert!(!dataset_exists(store, &Path::from("new")).await.unwrap());
}

#[tokio::test]
async fn create_is_idempotent_and_delete_is_careful() {
    let obs = observation(2);
    let store = memory();
    let prefix = Path::from("p/vis.zarr");
    create_dataset(store.clone(), &prefix, &obs.meta, None)
        .await
        .unwrap();
    let before = snapshot(&store).await;
    create_dataset(store.clone(), &prefix, &obs.meta, None)
        .await
        .unwrap();
    assert_eq!(snapshot(&store).await, before);
    let mut other = obs.meta.clone();
    other.time_chunk = 1;
    let (k, message) = zarr_error(
        create_dataset(store.clone(), &prefix, &other, None)
            .await
            .unwrap_err(),
    );
    assert_eq!(k, "p/vis.zarr/zarr.json");
    assert!(message.contains("different"), "{message}");

    // A stranger's file inside the dataset stops the delete.
    let stranger = Path::from("p/vis.zarr/notes.txt");
    store.put(&stranger, "x".into()).await.unwrap();
    let (k, _) = zarr_error(delete_dataset(store.clone(), &prefix).await.unwrap_err());
    assert_eq!(k, "p/vis.zarr/notes.txt");
    store.delete(&stranger).await.unwrap();
    let n = delete_dataset(store.clone(), &prefix).await.unwrap();
    assert_eq!(n, before.len());
    assert!(snapshot(&store).await.is_empty());
}

/// The windows of `obs` as one whole-band block.
fn concat_windows(obs: &Obs) -> VisBlock {
    let ax = ndarray::Axis(1);
    let mut b = obs.windows[0].clone();
    b.freq_c = obs.meta.freq_c();
    let vis: Vec<_> = obs.windows.iter().map(|b| b.vis_rc.view()).collect();
    b.vis_rc = ndarray::concatenate(ax, &vis).unwrap();
    let weight: Vec<_> = obs.windows.iter().map(|b| b.weight_rc.view()).collect();
    b.weight_rc = ndarray::concatenate(ax, &weight).unwrap();
    let flag: Vec<_> = obs.windows.iter().map(|b| b.flag_rc.view()).collect();
    b.flag_rc = ndarray::concatenate(ax, &flag).unwrap();
    b
}

/// A bundle whose rows are shuffled, with one (time, baseline) cell missing.
fn irregular_bundle(dir: &std::path::Path, obs: &Obs) -> (VisBlock, usize) {
    let full = concat_windows(obs);
    let n = full.n_rows();
    let dropped = n / 3;
    // A fixed permutation: r -> (r * 7919) mod n (7919 is prime, n is not a multiple).
    assert_ne!(n % 7919, 0);
    let order: Vec<usize> = (0..n)
        .map(|r| (r * 7919) % n)
        .filter(|&r| r != dropped)
        .collect();
    let shuffled = VisBlock {
        uvw_r: order.iter().map(|&r| full.uvw_r[r]).collect(),
        freq_c: full.freq_c.clone(),
        vis_rc: full.vis_rc.select(ndarray::Axis(0), &order),
        weight_rc: full.weight_rc.select(ndarray::Axis(0), &order),
        flag_rc: full.flag_rc.select(ndarray::Axis(0), &order),
        ant1_r: order.iter().map(|&r| full.ant1_r[r]).collect(),
        ant2_r: order.iter().map(|&r| full.ant2_r[r]).collect(),
        time_r: order.iter().map(|&r| full.time_r[r]).collect(),
        phase_centre: full.phase_centre,
    };
    let mut meta = BundleMeta::for_block(&shuffled);
    meta.telescope = Some("LOW".into());
    meta.extra.insert(
        "frequency_windows".into(),
        serde_json::json!({"windows": WINDOWS, "channels_per_window": CHANNELS}),
    );
    write_bundle(
        dir,
        &shuffled,
        &meta,
        WriteBundleOptions {
            vis_dtype: VisDtype::Complex128,
            overwrite: false,
        },
    )
    .unwrap();
    (full, dropped)
}

#[tokio::test]
async fn irregular_bundles_are_gridded_on_import() {
    let obs = observation(3);
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("b");
    let (full, dropped) = irregular_bundle(&bundle, &obs);
    let store = memory();
    let prefix = Path::from("imported.zarr");
    let (ds, report) = import_bundle(&bundle, store.clone(), &prefix, &ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(report.missing_cells, 1);
    assert_eq!(
        (report.nwindows, report.channels_per_window),
        (WINDOWS, CHANNELS)
    );
    assert_eq!(report.vis_dtype, VisDtype::Complex128);
    assert_eq!(ds.meta().telescope.as_deref(), Some("LOW"));
    let ds = open_dataset(store.clone(), &prefix).await.unwrap();
    for w in 0..WINDOWS {
        let got = ds.read_window(w).await.unwrap();
        let mut want = obs.windows[w].clone();
        // The missing cell: flagged, zero weight and visibility, uvw unknown (0).
        want.uvw_r[dropped] = UvwMetres::default();
        want.vis_rc.row_mut(dropped).fill(Complex64::new(0.0, 0.0));
        want.weight_rc.row_mut(dropped).fill(0.0);
        want.flag_rc.row_mut(dropped).fill(true);
        assert_eq!(got, want, "window {w}");
    }
    assert_eq!(full.n_chan(), WINDOWS * CHANNELS);

    // A bundle with a duplicated row names the row; nothing is left behind.
    let dup = tmp.path().join("dup");
    let mut b = obs.windows[0].clone();
    b.time_r[5] = b.time_r[4];
    b.ant1_r[5] = b.ant1_r[4];
    b.ant2_r[5] = b.ant2_r[4];
    write_bundle(
        &dup,
        &b,
        &BundleMeta::for_block(&b),
        WriteBundleOptions::default(),
    )
    .unwrap();
    let e = import_bundle(
        &dup,
        store.clone(),
        &Path::from("dup.zarr"),
        &ImportOptions::default(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("row 5") && e.contains("duplicates row 4"), "{e}");
    // Importing over an existing dataset is refused.
    let e = import_bundle(&bundle, store.clone(), &prefix, &ImportOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("already exists"), "{e}");
}

/// Opens the dataset in argv[1] with zarr-python and xarray; prints JSON with the
/// dimension names, dtypes, VISIBILITY[t, b, c, 0] for (t, b, c) = argv[2..5], and the
/// coordinates.
const PYTHON_READ: &str = r#"
import json, sys
import zarr, xarray as xr
path = sys.argv[1]
t, b, c = (int(x) for x in sys.argv[2:5])
g = zarr.open_group(path, mode="r")
v = g["VISIBILITY"]
x = complex(v[t, b, c, 0])
ds = xr.open_zarr(path, consolidated=False)
out = {
    "zarr_dims": list(v.metadata.dimension_names),
    "zarr_dtype": str(v.dtype),
    "value": [repr(x.real), repr(x.imag)],
    "xr_dims": list(ds["VISIBILITY"].dims),
    "xr_value": [repr(float(ds["VISIBILITY"].values[t, b, c, 0].real)), repr(float(ds["VISIBILITY"].values[t, b, c, 0].imag))],
    "weight_dtype": str(ds["WEIGHT"].dtype),
    "flag_dtype": str(ds["FLAG"].dtype),
    "flag": bool(ds["FLAG"].values[t, b, c, 0]),
    "uvw_dims": list(ds["UVW"].dims),
    "uvw": [repr(float(u)) for u in ds["UVW"].values[t, b]],
    "frequency": [repr(float(f)) for f in ds["frequency"].values],
    "time": [repr(float(f)) for f in ds["time"].values],
    "polarization": [str(p) for p in ds["polarization"].values],
    "ant1": int(ds["baseline_antenna1_id"].values[b]),
    "ant2": int(ds["baseline_antenna2_id"].values[b]),
    "antenna_coords": ["baseline_antenna1_id" in ds.coords, "baseline_antenna2_id" in ds.coords],
    "format": g.attrs["format"],
    "phase_centre": g.attrs["aperture"]["phase_centre"],
}
print(json.dumps(out))
"#;

#[tokio::test]
async fn zarr_python_and_xarray_read_the_dataset() {
    if !common::python_has(&["zarr", "xarray"]) {
        return;
    }
    let obs = observation(3);
    let dir = tempfile::tempdir().unwrap();
    let store = local(dir.path());
    let prefix = Path::from("vis.zarr");
    write_all(&store, &prefix, &obs, true).await;
    let (t, b, c) = (2usize, 1234usize, 5usize);
    let (w, cw) = (c / CHANNELS, c % CHANNELS);
    let root = dir.path().join("vis.zarr");
    let args: Vec<String> = vec![
        root.display().to_string(),
        t.to_string(),
        b.to_string(),
        c.to_string(),
    ];
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(PYTHON_READ)
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let num = |x: &serde_json::Value| x.as_str().unwrap().parse::<f64>().unwrap();
    let dims = ["time", "baseline_id", "frequency", "polarization"];
    assert_eq!(v["zarr_dims"], serde_json::json!(dims));
    assert_eq!(v["xr_dims"], serde_json::json!(dims));
    assert_eq!(v["zarr_dtype"], "complex64");
    let r = t * obs.meta.nbaseline + b;
    let want = obs.windows[w].vis_rc[[r, cw]];
    let want32 = Complex32::new(want.re as f32, want.im as f32);
    for key in ["value", "xr_value"] {
        assert_eq!(num(&v[key][0]), f64::from(want32.re), "{key}");
        assert_eq!(num(&v[key][1]), f64::from(want32.im), "{key}");
    }
    assert_eq!(v["weight_dtype"], "float32");
    assert_eq!(v["flag_dtype"], "bool");
    assert_eq!(v["flag"], obs.windows[w].flag_rc[[r, cw]]);
    assert_eq!(
        v["uvw_dims"],
        serde_json::json!(["time", "baseline_id", "uvw_label"])
    );
    let p = obs.windows[0].uvw_r[r];
    let uvw: Vec<f64> = v["uvw"].as_array().unwrap().iter().map(num).collect();
    assert_eq!(uvw, [p.u, p.v, p.w]);
    let freq: Vec<f64> = v["frequency"].as_array().unwrap().iter().map(num).collect();
    assert_eq!(freq, obs.meta.freq_c());
    let time: Vec<f64> = v["time"].as_array().unwrap().iter().map(num).collect();
    assert_eq!(time, obs.meta.time_s);
    assert_eq!(v["polarization"], serde_json::json!(["I"]));
    assert_eq!(
        (v["ant1"].as_u64().unwrap(), v["ant2"].as_u64().unwrap()),
        (u64::from(obs.meta.ant1[b]), u64::from(obs.meta.ant2[b]))
    );
    assert_eq!(v["antenna_coords"], serde_json::json!([true, true]));
    assert_eq!(v["format"], "aperture-vis-zarr");
    assert_eq!(
        v["phase_centre"],
        serde_json::json!({"ra_deg": 15.0, "dec_deg": -45.0})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_round_trip_through_s3() {
    let Some(server) = seaweedfs::server() else {
        return;
    };
    let obs = observation(3);
    let store = server.store("zarr_vis/round_trip.zarr");
    let (os, prefix) = (store.object_store(), store.prefix().clone());
    if dataset_exists(os.clone(), &prefix).await.unwrap() {
        delete_dataset(os.clone(), &prefix).await.unwrap();
    }
    let uvw = uvw_tb3(&obs.meta, &obs.windows[0].uvw_r);
    let ds = create_dataset(os.clone(), &prefix, &obs.meta, Some(uvw.view()))
        .await
        .unwrap();
    let writes = obs
        .windows
        .iter()
        .enumerate()
        .map(|(w, b)| ds.write_window(w, b));
    for r in futures::future::join_all(writes).await {
        r.unwrap();
    }
    let ds = open_dataset(os.clone(), &prefix).await.unwrap();
    for (w, want) in obs.windows.iter().enumerate() {
        assert_eq!(
            ds.read_window(w).await.unwrap(),
            rounded(want),
            "window {w}"
        );
    }
    // A corrupt chunk over S3 names its full key too.
    let key = prefix
        .clone()
        .join("FLAG")
        .join("c")
        .join("0")
        .join("0")
        .join("2")
        .join("0");
    os.put(&key, Bytes::from_static(b"garbage").into())
        .await
        .unwrap();
    let (k, message) = zarr_error(ds.read_window(2).await.unwrap_err());
    assert_eq!(k, key.to_string());
    assert!(message.contains("window 2"), "{message}");
    delete_dataset(os, &prefix).await.unwrap();
}
