//! Development aid: times invert and predict on the issue-2 benchmark scenario.
#![allow(clippy::print_stdout)]
use aperture_imaging::gridder::{self, GridderOptions, Precision};
use aperture_imaging::sim::scenario::Scenario;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let eps: f64 = a.first().map(|s| s.parse().unwrap()).unwrap_or(1e-5);
    let prec = if a.get(1).map(|s| s == "f32").unwrap_or(false) {
        Precision::F32
    } else {
        Precision::F64
    };
    let threads: usize = a.get(2).map(|s| s.parse().unwrap()).unwrap_or(1);
    let (block, geom) = Scenario::default().build().unwrap();
    println!(
        "nvis {} cell {:.3} arcsec fov {:.2} deg",
        block.n_vis(),
        geom.cell.to_degrees() * 3600.0,
        (geom.cell * 1024.0).to_degrees()
    );
    if std::env::var("DUMP").is_ok() {
        dump(&block, &geom);
    }
    let opts = GridderOptions {
        epsilon: eps,
        precision: prec,
        wstacking: true,
        threads,
    };
    let w = block.weight_rc.clone();
    let t = std::time::Instant::now();
    let (img, rep) = gridder::invert(
        &block.uvw_r,
        &block.freq_c,
        block.vis_rc.view(),
        w.view(),
        &geom,
        &opts,
    )
    .unwrap();
    println!("invert {:.3}s {:?}", t.elapsed().as_secs_f64(), rep);
    let t = std::time::Instant::now();
    let (_v, rep) =
        gridder::predict(&block.uvw_r, &block.freq_c, img.view(), &geom, &opts).unwrap();
    println!("predict {:.3}s {:?}", t.elapsed().as_secs_f64(), rep);
}

#[allow(dead_code)]
pub fn dump(
    block: &aperture_imaging::vis::VisBlock,
    geom: &aperture_imaging::image::ImageGeometry,
) {
    use std::io::Write;
    let mut f = std::fs::File::create("/tmp/scen_uvw.bin").unwrap();
    for p in &block.uvw_r {
        for x in [p.u, p.v, p.w] {
            f.write_all(&x.to_le_bytes()).unwrap();
        }
    }
    let mut f = std::fs::File::create("/tmp/scen_freq.bin").unwrap();
    for x in &block.freq_c {
        f.write_all(&x.to_le_bytes()).unwrap();
    }
    let mut f = std::fs::File::create("/tmp/scen_vis.bin").unwrap();
    for v in block.vis_rc.iter() {
        f.write_all(&v.re.to_le_bytes()).unwrap();
        f.write_all(&v.im.to_le_bytes()).unwrap();
    }
    std::fs::write(
        "/tmp/scen_geom.txt",
        format!("{} {}", geom.npix_x, geom.cell),
    )
    .unwrap();
}
