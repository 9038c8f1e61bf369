//! PNG quick-look rendering of images.
