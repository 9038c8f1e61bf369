//! Criterion benchmark of the Zarr visibility store: writing and reading one frequency
//! window (LOW, rmax 600 m = 227 stations, 7 times, 64 channels: 11.5 M visibilities,
//! 149 MB as complex64 + float32 + bool) in memory and on the local filesystem.
//! Throughput is reported in bytes of the stored arrays (13 B per visibility).
//!
//! `cargo bench -p aperture-pipeline --bench zarr_vis`

use std::sync::Arc;
use std::time::Duration;

use aperture_imaging::coords::RaDec;
use aperture_imaging::sim::{FrequencySetup, SkyModel, hour_angles, low_config, simulate_block};
use aperture_imaging::vis::VisBlock;
use aperture_pipeline::formats::zarr_vis::{
    RowGrid, VisDataset, VisDatasetMeta, WindowMeta, create_dataset,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;

/// The window: noise-like visibilities (nothing compresses them), unit weights, no flags.
fn window() -> VisBlock {
    let config = low_config(600.0).unwrap();
    let pc = RaDec::from_degrees(15.0, -45.0);
    let ha = hour_angles(7, 6.0).unwrap();
    let setup = FrequencySetup::new(1, 64, 100e6, 150e6).unwrap();
    let sky = SkyModel {
        sources: Vec::new(),
        ref_freq_hz: 125e6,
    };
    simulate_block(&config, pc, &ha, &setup.freq_c().unwrap(), &sky, 1.0, 7).unwrap()
}

fn dataset(
    rt: &tokio::runtime::Runtime,
    store: Arc<dyn ObjectStore>,
    block: &VisBlock,
) -> VisDataset {
    let grid = RowGrid::from_rows(&block.time_r, &block.ant1_r, &block.ant2_r).unwrap();
    let windows = WindowMeta::split(&block.freq_c, block.n_chan()).unwrap();
    let meta = VisDatasetMeta::new(&grid, windows, block.phase_centre).unwrap();
    rt.block_on(create_dataset(
        store,
        &Path::from("bench/vis.zarr"),
        &meta,
        None,
    ))
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let block = window();
    let stored_bytes = block.n_vis() as u64 * (8 + 4 + 1);
    let tmp = tempfile::tempdir().unwrap();
    let stores: [(&str, Arc<dyn ObjectStore>); 2] = [
        ("memory", Arc::new(InMemory::new())),
        (
            "local",
            Arc::new(LocalFileSystem::new_with_prefix(tmp.path()).unwrap()),
        ),
    ];
    let mut g = c.benchmark_group("zarr_vis_window");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Bytes(stored_bytes));
    for (name, store) in stores {
        let ds = dataset(&rt, store, &block);
        g.bench_function(format!("write/{name}"), |b| {
            b.iter(|| rt.block_on(ds.write_window(0, &block)).unwrap())
        });
        g.bench_function(format!("read/{name}"), |b| {
            b.iter(|| rt.block_on(ds.read_window(0)).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
