//! The `local` cluster backend: upstream etcd, kube-apiserver, kube-controller-manager and
//! kube-scheduler (built from Go modules by `ci/controlplane/build.sh`) as child processes,
//! plus the Rust process kubelet as an in-process task, on bridge `gmc0` (10.244.0.1/24).
//!
//! Needs root (bridge, network namespaces, mounts). One cluster runs per machine.
//! [`LocalCluster`] is the in-process API; [`daemon`] keeps a cluster running across
//! commands (`harness up` / `harness down`).

mod auth;
mod binaries;
mod cleanup;
mod cluster;
mod component;
mod containerd;
mod control;
pub mod daemon;
mod files;
mod kubelet;
pub mod layout;
mod lock;
mod net;
pub mod node_config;
mod pause_image;
mod pki;
mod preflight;
mod probe;
mod process;
mod procfs;
pub mod sysctls;

pub use binaries::{
    BIN_DIR_ENV, NODE_BIN_DIR_ENV, NODE_BINARIES, REQUIRED_BINARIES, build_script, cached_bin_dir,
    check_binaries, ensure_binaries, ensure_node_binaries, node_build_script,
};
pub use cleanup::cleanup_stale;
pub use cluster::{ClusterSpec, LocalCluster};
pub use component::Component;
pub use containerd::{CLOSED_REGISTRY, CRI_NAMESPACE, Containerd, ContainerdPaths};
pub use daemon::ClusterInfo;
pub use pause_image::{PAUSE_IMAGE, write_pause_archive};
pub use process_kubelet::{ImageMap, LocalImage};
