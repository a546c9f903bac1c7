//! The `local` cluster backend: a real single-node Kubernetes without Docker. Upstream etcd,
//! kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kube-proxy (built from
//! Go modules by `ci/controlplane/build.sh`) and a private containerd with runc and the CNI
//! bridge plugin (`ci/node/build.sh`) run as child processes on bridge `gmc0`
//! (10.244.0.1/24). Images are OCI archives imported at start; no registry is ever reached.
//!
//! Needs root (bridge, cgroups, mounts). One cluster runs per machine.
//! [`LocalCluster`] is the in-process API; [`daemon`] keeps a cluster running across
//! commands (`harness up` / `harness down`).

#![warn(unreachable_pub)]

mod auth;
mod binaries;
mod cleanup;
mod cluster;
mod component;
mod containerd;
mod control;
pub mod daemon;
mod files;
mod host;
pub mod layout;
mod lock;
mod net;
mod node;
pub mod node_config;
mod pause_image;
mod pki;
mod preflight;
mod probe;
mod process;
mod procfs;
mod runtime;
pub mod sources;
pub mod sysctls;
pub mod versions;

pub use auth::client_from_kubeconfig;
pub use binaries::{
    BIN_DIR_ENV, NODE_BIN_DIR_ENV, NODE_BINARIES, REQUIRED_BINARIES, build_script, cached_bin_dir,
    check_binaries, ensure_binaries, ensure_node_binaries, is_built, node_build_script,
};
pub use cleanup::cleanup_stale;
pub use cluster::{ClusterSpec, LocalCluster};
pub use component::Component;
pub use containerd::{
    CLOSED_REGISTRY, CRI_NAMESPACE, Containerd, ContainerdPaths, check_loopback_registry, ctr,
};
pub use daemon::ClusterInfo;
pub use pause_image::{PAUSE_IMAGE, write_pause_archive};
pub use runtime::{ContainerStats, NodeRuntime, container_id};
