//! Fixed network parameters of the local cluster and the file layout below its state dir.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Default state directory of the local cluster.
pub const DEFAULT_STATE_DIR: &str = "/run/gomicro-conformance";
/// Name of the bridge in the host namespace that pods attach to.
pub const BRIDGE: &str = "gmc0";
/// The bridge's fixed MAC: locally administered unicast `0a:58:` and the node IP's bytes.
///
/// Without an explicit address the kernel gives a bridge the lowest MAC among its ports, so a
/// pod's veth joining or leaving may change it. A pod that resolved the node IP before such a
/// change keeps sending to the old MAC (its neighbour entry stays valid for about 30 s); those
/// frames arrive on a port the MAC does not belong to, are passed up as "other host" and
/// dropped, so the pod's first API request hangs until its client's connect timeout.
pub const BRIDGE_MAC: &str = "0a:58:0a:f4:00:01";
/// Address of the bridge: the node IP, where the API server and the kubelet listen.
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 1);
/// Prefix length of the bridge subnet (the node's pod CIDR).
pub const BRIDGE_PREFIX: u8 = 24;
/// Pod CIDR of the single node.
pub const NODE_POD_CIDR: &str = "10.244.0.0/24";
/// Cluster-wide pod CIDR; routed `unreachable` in the host namespace while the cluster runs.
pub const CLUSTER_POD_CIDR: &str = "10.244.0.0/16";
/// Service CIDR: kube-proxy's ClusterIPs, routed to the pods via the bridge address.
pub const SERVICE_CIDR: &str = "10.96.0.0/16";
/// Network address and prefix length of [`SERVICE_CIDR`].
pub const SERVICE_NET: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 96, 0, 0), 16);
/// Network address and prefix length of [`NODE_POD_CIDR`].
pub const NODE_POD_NET: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 244, 0, 0), 24);
/// Name of the CNI network (also the prefix of libcni's result cache files).
pub const CNI_NETWORK: &str = "gomicro-conformance";
/// First service IP (the `kubernetes` Service), part of the API server certificate.
pub const FIRST_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);
/// Name of the single Node the kubelet registers.
pub const NODE_NAME: &str = "gmc-node";
/// API server secure port (on [`NODE_IP`]).
pub const API_SERVER_PORT: u16 = 6443;
/// etcd client port (loopback, off the default 2379).
pub const ETCD_CLIENT_PORT: u16 = 23790;
/// etcd peer port (loopback, off the default 2380).
pub const ETCD_PEER_PORT: u16 = 23800;
/// etcd's plain-HTTP `/health` and `/metrics` port (loopback; no key space behind it).
pub const ETCD_METRICS_PORT: u16 = 23810;
/// kube-controller-manager health port (loopback).
pub const CONTROLLER_MANAGER_PORT: u16 = 10257;
/// kube-scheduler health port (loopback).
pub const SCHEDULER_PORT: u16 = 10259;
/// The kubelet's healthz port (loopback).
pub const KUBELET_HEALTHZ_PORT: u16 = 10248;
/// kube-proxy's healthz port (loopback).
pub const KUBE_PROXY_HEALTHZ_PORT: u16 = 10256;
/// kube-proxy's metrics port (loopback).
pub const KUBE_PROXY_METRICS_PORT: u16 = 10249;
/// Issuer of ServiceAccount tokens.
pub const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// Machine-wide lock: the bridge, the node IP and the ports are global, so one cluster runs
/// per machine.
pub const LOCK_FILE: &str = "/run/lock/gomicro-local-cluster.lock";
/// Env var that keeps `<state_dir>/logs` after the cluster stops.
pub const KEEP_LOGS_ENV: &str = "GOMICRO_KEEP_LOGS";

/// The API server URL clients use.
pub fn api_server_url() -> String {
    format!("https://{NODE_IP}:{API_SERVER_PORT}")
}

/// Paths of everything the cluster writes below its state dir.
#[derive(Debug, Clone)]
pub struct StateLayout {
    root: PathBuf,
}

impl StateLayout {
    /// Layout rooted at `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        Self {
            root: state_dir.to_path_buf(),
        }
    }

    /// The state dir itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Generated files of the running cluster (PKI, kubeconfigs, etcd data, pid files).
    pub fn cluster_dir(&self) -> PathBuf {
        self.root.join("cluster")
    }

    /// Certificates and keys.
    pub fn pki_dir(&self) -> PathBuf {
        self.cluster_dir().join("pki")
    }

    /// A file in the PKI dir.
    pub fn pki(&self, file: &str) -> PathBuf {
        self.pki_dir().join(file)
    }

    /// The static token file of the API server.
    pub fn token_file(&self) -> PathBuf {
        self.cluster_dir().join("tokens.csv")
    }

    /// The kubeconfig of `user` (`admin`, `controller-manager`, `scheduler`, `node`).
    pub fn kubeconfig(&self, user: &str) -> PathBuf {
        self.cluster_dir().join(format!("{user}.kubeconfig"))
    }

    /// etcd's data dir.
    pub fn etcd_data_dir(&self) -> PathBuf {
        self.cluster_dir().join("etcd")
    }

    /// Pid files of the component processes (read by `cleanup_stale`).
    pub fn run_dir(&self) -> PathBuf {
        self.cluster_dir().join("run")
    }

    /// HOME of the component processes.
    pub fn home_dir(&self) -> PathBuf {
        self.cluster_dir().join("home")
    }

    /// Component log files.
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// The kubelet's `--root-dir`.
    pub fn kubelet_dir(&self) -> PathBuf {
        self.root.join("kubelet")
    }

    /// The node runtime's files: containerd's directory and the CNI IPAM store.
    pub fn node_dir(&self) -> PathBuf {
        self.root.join("node")
    }

    /// The private containerd's directory (config, root, state, sockets).
    pub fn containerd_dir(&self) -> PathBuf {
        self.node_dir().join("containerd")
    }

    /// containerd's shim sockets (short: containerd accepts at most 42 bytes).
    pub fn shim_socket_dir(&self) -> PathBuf {
        self.root.join("s")
    }

    /// The node's containerd paths.
    pub fn containerd(&self) -> crate::ContainerdPaths {
        crate::ContainerdPaths::new(&self.containerd_dir())
            .with_shim_sockets(&self.shim_socket_dir())
    }

    /// host-local's allocation store.
    pub fn ipam_dir(&self) -> PathBuf {
        self.node_dir().join("ipam")
    }

    /// Container logs (the kubelet's `podLogsDir`), kept with the component logs.
    pub fn pod_logs_dir(&self) -> PathBuf {
        self.logs_dir().join("pods")
    }

    /// A generated config file of a node component (`kubelet.json`, `kube-proxy.json`).
    pub fn config_file(&self, name: &str) -> PathBuf {
        self.cluster_dir().join(name)
    }

    /// Image archives written for the run (the pause image).
    pub fn images_dir(&self) -> PathBuf {
        self.cluster_dir().join("images")
    }

    /// Host sysctls recorded before the kubelet started; restored (and removed) on clean-up,
    /// also by the next start after a killed run.
    pub fn sysctls_file(&self) -> PathBuf {
        self.root.join("sysctls.json")
    }

    /// Written by the cluster daemon once the cluster is ready.
    pub fn cluster_info_file(&self) -> PathBuf {
        self.root.join("cluster.json")
    }

    /// Written by the cluster daemon when it starts (identifies it for `down`).
    pub fn daemon_pid_file(&self) -> PathBuf {
        self.root.join("daemon.pid")
    }

    /// stdout/stderr of the cluster daemon.
    pub fn daemon_log(&self) -> PathBuf {
        self.root.join("daemon.log")
    }

    /// The cluster daemon's fault-injection socket (see `daemon::restart`).
    pub fn control_socket(&self) -> PathBuf {
        self.root.join("control.sock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_mac_is_locally_administered_unicast_from_the_node_ip() {
        let bytes: Vec<u8> = BRIDGE_MAC
            .split(':')
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect();
        assert_eq!(bytes[0] & 0b11, 0b10, "locally administered, unicast");
        assert_eq!(bytes[..2], [0x0a, 0x58]);
        assert_eq!(bytes[2..], NODE_IP.octets());
    }
}
