//! aperture-worker: runs one task (stage, index) of a job plan stored in object storage.

fn main() {}
