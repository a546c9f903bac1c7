//! The process kubelet: a node agent that makes a real Kubernetes control plane run pods as
//! local processes in Linux namespaces (network, mount, UTS) on a harness-created bridge.

pub mod backoff;
pub mod command;
pub mod config;
pub mod env;
pub mod ipam;
pub mod logs;
pub mod status;

pub use config::{ImageMap, Ipv4Cidr, KubeletConfig, LocalImage};
