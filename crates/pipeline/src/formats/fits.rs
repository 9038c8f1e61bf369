//! FITS images with a full celestial WCS: writer and reader.
