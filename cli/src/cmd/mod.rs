//! The subcommands, one module each: arguments (clap) and `run`.

pub mod apply_gains;
pub mod bench;
pub mod calibrate;
pub mod clean;
pub mod crd;
pub mod import;
pub mod invert;
pub mod predict;
pub mod report;
pub mod run;
pub mod simulate;
