//! Configuration files of the node: the kubelet's `KubeletConfiguration`, kube-proxy's
//! `KubeProxyConfiguration` and the CNI bridge + host-local network, all as JSON (the
//! components read JSON as YAML).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::layout::{KUBE_PROXY_HEALTHZ_PORT, KUBE_PROXY_METRICS_PORT, KUBELET_HEALTHZ_PORT};

/// The kubelet's API port (on the node IP).
pub const KUBELET_PORT: u16 = 10250;

/// What the kubelet's configuration depends on.
#[derive(Debug, Clone)]
pub struct KubeletSettings {
    /// The node's IP on the run's bridge (the kubelet serves there).
    pub node_ip: Ipv4Addr,
    /// The private containerd's socket.
    pub containerd_socket: PathBuf,
    /// CA that signs API-server client certificates (webhook authn of kubelet clients).
    pub client_ca_file: PathBuf,
    /// The kubelet's serving certificate and key.
    pub tls_cert_file: PathBuf,
    /// Private key of `tls_cert_file`.
    pub tls_private_key_file: PathBuf,
    /// Where container logs go (private to the run).
    pub pod_logs_dir: PathBuf,
    /// The cluster DNS server, if the cluster runs one.
    pub cluster_dns: Option<Ipv4Addr>,
}

/// The kubelet's hard eviction threshold for its filesystems, in percent free: below it, it
/// evicts every pod (preflight refuses to start with less free, plus room for the node).
pub(crate) const EVICTION_FREE_PERCENT: u64 = 1;

/// The `KubeletConfiguration` for `settings`: webhook authn/authz, cgroupfs, cgroup v1
/// allowed, no host resolv.conf, and image GC and eviction thresholds that never remove
/// the imported (irreplaceable) images.
pub fn kubelet_config(settings: &KubeletSettings) -> Value {
    let path = |p: &Path| p.display().to_string();
    json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        // Kubernetes 1.35 refuses cgroup v1 hosts unless told otherwise.
        "failCgroupV1": false,
        "cgroupDriver": "cgroupfs",
        "containerRuntimeEndpoint": format!("unix://{}", path(&settings.containerd_socket)),
        "address": settings.node_ip.to_string(),
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": KUBELET_HEALTHZ_PORT,
        // Chains in the host's iptables that nothing here uses (kube-proxy runs nftables).
        "makeIPTablesUtilChains": false,
        "failSwapOn": false,
        "tlsCertFile": path(&settings.tls_cert_file),
        "tlsPrivateKeyFile": path(&settings.tls_private_key_file),
        "authentication": {
            "anonymous": { "enabled": false },
            "webhook": { "enabled": true },
            "x509": { "clientCAFile": path(&settings.client_ca_file) },
        },
        "authorization": { "mode": "Webhook" },
        "resolvConf": "",
        "clusterDNS": settings.cluster_dns.iter().map(|ip| ip.to_string()).collect::<Vec<_>>(),
        "clusterDomain": "cluster.local",
        "podLogsDir": path(&settings.pod_logs_dir),
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "1Mi",
            "nodefs.available": format!("{EVICTION_FREE_PERCENT}%"),
            "imagefs.available": format!("{EVICTION_FREE_PERCENT}%"),
        },
        "serializeImagePulls": false,
    })
}

/// What kube-proxy's configuration depends on.
#[derive(Debug, Clone)]
pub struct KubeProxySettings {
    /// Its kubeconfig (identity `system:kube-proxy`).
    pub kubeconfig: PathBuf,
    /// The node's name.
    pub node_name: String,
    /// The node's IP: the only address NodePorts are served on.
    pub node_ip: Ipv4Addr,
    /// The cluster's pod CIDR (traffic from outside it to a ClusterIP is masqueraded).
    pub cluster_cidr: String,
}

/// The `KubeProxyConfiguration`: nftables mode, health and metrics on loopback, NodePorts on
/// the node IP only, and conntrack sysctls left as they are.
pub fn kube_proxy_config(settings: &KubeProxySettings) -> Value {
    json!({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "nftables",
        "clientConnection": { "kubeconfig": settings.kubeconfig.display().to_string() },
        "hostnameOverride": settings.node_name,
        "bindAddress": settings.node_ip.to_string(),
        "healthzBindAddress": format!("127.0.0.1:{KUBE_PROXY_HEALTHZ_PORT}"),
        "metricsBindAddress": format!("127.0.0.1:{KUBE_PROXY_METRICS_PORT}"),
        "nodePortAddresses": [format!("{}/32", settings.node_ip)],
        "clusterCIDR": settings.cluster_cidr,
        // Zero leaves each host value unchanged.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    })
}

/// What the CNI network depends on.
#[derive(Debug, Clone)]
pub struct PodNetwork {
    /// The run's bridge (created by the cluster; the plugin attaches veths to it).
    pub bridge: String,
    /// The bridge's host address, the pods' gateway.
    pub gateway: Ipv4Addr,
    /// The pod subnet on the bridge and its prefix length.
    pub subnet: (Ipv4Addr, u8),
    /// The service CIDR, routed via the gateway so kube-proxy's rules see ClusterIP traffic.
    pub service_cidr: (Ipv4Addr, u8),
    /// host-local's allocation store (private to the run, not /var/lib/cni).
    pub ipam_data_dir: PathBuf,
}

/// The CNI network config list: bridge + host-local, a route for the service CIDR only
/// (no default route: traffic to anything else fails inside the pod).
pub fn cni_conflist(network: &PodNetwork) -> Value {
    let cidr = |(ip, len): (Ipv4Addr, u8)| format!("{ip}/{len}");
    json!({
        "cniVersion": "1.0.0",
        "name": crate::layout::CNI_NETWORK,
        "plugins": [{
            "type": "bridge",
            "bridge": network.bridge,
            "isGateway": true,
            "ipMasq": false,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "dataDir": network.ipam_data_dir.display().to_string(),
                "ranges": [[{
                    "subnet": cidr(network.subnet),
                    "gateway": network.gateway.to_string(),
                }]],
                "routes": [{ "dst": cidr(network.service_cidr), "gw": network.gateway.to_string() }],
            },
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> KubeletSettings {
        KubeletSettings {
            node_ip: Ipv4Addr::new(10, 244, 0, 1),
            containerd_socket: "/run/gmc/containerd/containerd.sock".into(),
            client_ca_file: "/run/gmc/pki/ca.crt".into(),
            tls_cert_file: "/run/gmc/pki/kubelet.crt".into(),
            tls_private_key_file: "/run/gmc/pki/kubelet.key".into(),
            pod_logs_dir: "/run/gmc/logs/pods".into(),
            cluster_dns: None,
        }
    }

    #[test]
    fn the_kubelet_uses_the_private_runtime_and_webhook_auth() {
        let config = kubelet_config(&settings());
        assert_eq!(
            config["containerRuntimeEndpoint"],
            "unix:///run/gmc/containerd/containerd.sock"
        );
        assert_eq!(config["failCgroupV1"], false);
        assert_eq!(config["address"], "10.244.0.1");
        assert_eq!(config["authentication"]["anonymous"]["enabled"], false);
        assert_eq!(config["authentication"]["webhook"]["enabled"], true);
        assert_eq!(
            config["authentication"]["x509"]["clientCAFile"],
            "/run/gmc/pki/ca.crt"
        );
        assert_eq!(config["authorization"]["mode"], "Webhook");
        assert_eq!(config["podLogsDir"], "/run/gmc/logs/pods");
        assert_eq!(config["clusterDNS"], json!([]));
        let with_dns = KubeletSettings {
            cluster_dns: Some(Ipv4Addr::new(10, 96, 0, 10)),
            ..settings()
        };
        assert_eq!(
            kubelet_config(&with_dns)["clusterDNS"],
            json!(["10.96.0.10"])
        );
    }

    #[test]
    fn kube_proxy_runs_nftables_with_loopback_endpoints_and_leaves_conntrack_alone() {
        let config = kube_proxy_config(&KubeProxySettings {
            kubeconfig: "/s/kube-proxy.kubeconfig".into(),
            node_name: "n1".into(),
            node_ip: Ipv4Addr::new(10, 244, 0, 1),
            cluster_cidr: "10.244.0.0/16".into(),
        });
        assert_eq!(config["mode"], "nftables");
        assert_eq!(
            config["clientConnection"]["kubeconfig"],
            "/s/kube-proxy.kubeconfig"
        );
        assert_eq!(config["healthzBindAddress"], "127.0.0.1:10256");
        assert_eq!(config["metricsBindAddress"], "127.0.0.1:10249");
        assert_eq!(config["nodePortAddresses"], json!(["10.244.0.1/32"]));
        assert_eq!(config["conntrack"]["maxPerCore"], 0);
    }

    #[test]
    fn pods_get_addresses_on_the_bridge_and_only_a_service_route() {
        let network = PodNetwork {
            bridge: "gmc0".into(),
            gateway: Ipv4Addr::new(10, 244, 0, 1),
            subnet: (Ipv4Addr::new(10, 244, 0, 0), 24),
            service_cidr: (Ipv4Addr::new(10, 96, 0, 0), 16),
            ipam_data_dir: "/run/gmc/cni/ipam".into(),
        };
        let list = cni_conflist(&network);
        let bridge = &list["plugins"][0];
        assert_eq!(bridge["bridge"], "gmc0");
        assert_eq!(bridge["ipMasq"], false);
        assert_eq!(bridge["ipam"]["dataDir"], "/run/gmc/cni/ipam");
        assert_eq!(bridge["ipam"]["ranges"][0][0]["subnet"], "10.244.0.0/24");
        assert_eq!(
            bridge["ipam"]["routes"],
            json!([{ "dst": "10.96.0.0/16", "gw": "10.244.0.1" }])
        );
    }
}
