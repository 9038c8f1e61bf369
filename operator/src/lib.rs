//! aperture-operator: a kube-rs controller that runs the plan and state machine of
//! `aperture-pipeline` on Kubernetes, one Indexed `batch/v1` Job per stage.

pub mod cluster;
pub mod config;
pub mod context;
pub mod controller;
pub mod error;
#[cfg(test)]
mod fake_api;
#[cfg(test)]
pub mod fixtures;
pub mod jobs;
pub mod leader;
pub mod metrics;
pub mod observe;
pub mod reconcile;
#[cfg(test)]
mod reconcile_tests;
pub mod server;
pub mod status;
