//! The `aperture` command line.

fn main() {}
