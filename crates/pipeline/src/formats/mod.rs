//! File formats aperture reads and writes.
