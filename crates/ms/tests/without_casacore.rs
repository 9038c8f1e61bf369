//! Built without the `casacore` feature, opening a MeasurementSet is an error that says
//! how to enable it, and the pure parts (selection parsing) still work.

#![cfg(not(feature = "casacore"))]

use aperture_ms::{MeasurementSet, MsError, SUPPORTED, SpwList};

#[test]
fn opening_says_how_to_enable_measurement_sets() {
    const { assert!(!SUPPORTED) };
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/ms/low-linear.ms");
    let e = MeasurementSet::open(&dir).unwrap_err();
    assert!(matches!(e, MsError::NoSupport { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("built without MeasurementSet support (cargo feature `ms`)"),
        "{text}"
    );
    // A path that is not a table is still named as such first.
    let e = MeasurementSet::open(std::path::Path::new("/nonexistent.ms")).unwrap_err();
    assert!(e.to_string().contains("is not a MeasurementSet"), "{e}");
    assert_eq!("1-2".parse::<SpwList>().unwrap().0, [1, 2]);
}
