//! The checked-in CRD (`crds/imagingjob.yaml`) is what the code generates.

mod common;

use common::{aperture, assert_ok, stdout};

#[test]
fn checked_in_crd_is_current() {
    let o = aperture(["crd"]);
    assert_ok(&o);
    let generated = stdout(&o);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/imagingjob.yaml");
    let stored = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        generated == stored,
        "crds/imagingjob.yaml is stale: run `cargo run -p aperture -- crd > crds/imagingjob.yaml`"
    );
    assert!(generated.contains("kind: CustomResourceDefinition"));
    assert!(generated.contains("imagingjobs.aperture.dev"));
}
