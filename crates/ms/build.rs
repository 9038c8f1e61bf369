//! Build script of aperture-ms: with the cargo feature `casacore`, compiles the bulk
//! column reader `cc/bulk.cc` against the casacore headers that rubbl_casatables_impl
//! exports (`DEP_CASA_INCLUDE`), with casacore's namespace renamed as rubbl does.

fn main() {
    println!("cargo:rerun-if-changed=cc/bulk.cc");
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_CASACORE").is_none() {
        return;
    }
    let Some(include) = std::env::var_os("DEP_CASA_INCLUDE") else {
        panic!("rubbl_casatables_impl did not export its casacore headers (DEP_CASA_INCLUDE)");
    };
    cc::Build::new()
        .cpp(true)
        .warnings(false)
        .flag_if_supported("-std=c++11")
        .flag_if_supported("-Wno-deprecated-declarations")
        .define("casacore", "rubbl_casacore")
        .include(include)
        .file("cc/bulk.cc")
        .compile("aperture_ms_bulk");
}
