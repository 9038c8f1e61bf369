//! Numpy visibility bundles (DESIGN.md format): read, validate, write.
