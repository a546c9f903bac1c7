//! Conformance harness for Kubernetes-native client-side service discovery and ConfigMap
//! configuration, the Go-Micro pattern (see CONTRACT.md).
//!
//! The flow: [`cluster`] brings up a backend, [`deploy`] applies the profile's manifests,
//! [`cases`] run against the deployment, and [`report`] writes the results.

#![warn(missing_docs, unreachable_pub)]

mod bench;
pub mod cases;
pub mod cli;
pub mod cluster;
mod configmap;
#[doc(hidden)]
pub mod context;
mod contract;
#[doc(hidden)]
pub mod deploy;
mod embedded;
mod error;
pub mod features;
#[doc(hidden)]
pub mod images;
mod leaks;
mod load;
#[doc(hidden)]
pub mod login;
mod manifests;
mod normalize;
mod pod_process;
#[doc(hidden)]
pub mod pods;
mod preflight;
pub mod profile;
pub mod report;
mod resolver_log;
pub mod run;
mod schema;
#[doc(hidden)]
pub mod secrets;
#[doc(hidden)]
pub mod stability;
mod table;
pub mod testing;
pub mod verdict;
mod wait;
