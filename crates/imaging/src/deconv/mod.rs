//! Deconvolution (the minor cycle): Hogbom CLEAN, multi-scale CLEAN and multi-scale
//! multi-frequency synthesis (MSMFS, Rau & Cornwell 2011) on images with their PSF.

mod params;

pub use params::{Algorithm, CleanParams, CleanResult, CleanWindow, MfsResult, StopReason};
