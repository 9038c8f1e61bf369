//! The subcommands, one module each: arguments (clap) and `run`.

pub mod bench;
pub mod invert;
pub mod predict;
pub mod simulate;
