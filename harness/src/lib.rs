//! Conformance harness for Kubernetes-native client-side service discovery and ConfigMap
//! configuration, the Go-Micro pattern (see CONTRACT.md).
//!
//! The flow: [`cluster`] brings up a backend, [`deploy`] applies the profile's manifests,
//! [`cases`] run against the deployment, and [`report`] writes the results.

pub mod bench;
pub mod cases;
pub mod cluster;
pub mod configmap;
pub mod context;
pub mod contract;
pub mod deploy;
mod embedded;
pub mod features;
pub mod images;
pub mod leaks;
pub mod load;
pub mod login;
pub mod manifests;
pub mod normalize;
pub mod pod_process;
pub mod pods;
pub mod preflight;
pub mod profile;
pub mod report;
pub mod resolver_log;
pub mod run;
pub mod schema;
pub mod secrets;
pub mod stability;
pub mod testing;
pub mod verdict;
pub mod wait;
