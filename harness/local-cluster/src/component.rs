//! The cluster's processes: control plane and node components, their binary names,
//! command-line flags and health endpoints.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::layout::{
    API_SERVER_PORT, CONTROLLER_MANAGER_PORT, ETCD_CLIENT_PORT, ETCD_METRICS_PORT, ETCD_PEER_PORT,
    KUBE_PROXY_HEALTHZ_PORT, KUBELET_HEALTHZ_PORT, NODE_IP, NODE_NAME, SCHEDULER_PORT,
    SERVICE_ACCOUNT_ISSUER, SERVICE_CIDR, StateLayout,
};

/// How a component shows it is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// An HTTP(S) endpoint answering 2xx (and a healthy body, see `probe::healthy_body`).
    Http(String),
    /// A Unix socket accepting connections.
    Socket(PathBuf),
}

/// A process of the local cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    /// etcd (storage).
    Etcd,
    /// kube-apiserver.
    ApiServer,
    /// kube-controller-manager.
    ControllerManager,
    /// kube-scheduler.
    Scheduler,
    /// The node's private containerd.
    Containerd,
    /// The upstream kubelet.
    Kubelet,
    /// kube-proxy (nftables mode).
    KubeProxy,
}

impl Component {
    /// All components.
    pub const ALL: [Component; 7] = [
        Component::Etcd,
        Component::ApiServer,
        Component::ControllerManager,
        Component::Scheduler,
        Component::Containerd,
        Component::Kubelet,
        Component::KubeProxy,
    ];

    /// The order in which a cluster stops them: the node's agents first, containerd last
    /// (after it, clean-up removes the containers it leaves running).
    pub const STOP_ORDER: [Component; 7] = [
        Component::KubeProxy,
        Component::Kubelet,
        Component::Scheduler,
        Component::ControllerManager,
        Component::ApiServer,
        Component::Etcd,
        Component::Containerd,
    ];

    /// Whether the binary comes from the node runtime's bin dir (`ci/node/build.sh`) rather
    /// than the control plane's (`ci/controlplane/build.sh`).
    pub fn from_node_runtime(self) -> bool {
        self == Component::Containerd
    }

    /// Binary (and log/pid file) name.
    pub fn binary_name(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::ApiServer => "kube-apiserver",
            Component::ControllerManager => "kube-controller-manager",
            Component::Scheduler => "kube-scheduler",
            Component::Containerd => "containerd",
            Component::Kubelet => "kubelet",
            Component::KubeProxy => "kube-proxy",
        }
    }

    /// The component a binary name belongs to.
    pub fn from_binary_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.binary_name() == name)
    }

    /// What is polled until the component is ready.
    pub fn health(self, layout: &StateLayout) -> Health {
        let url = |url: String| Health::Http(url);
        match self {
            Component::Etcd => url(format!("http://127.0.0.1:{ETCD_METRICS_PORT}/health")),
            Component::ApiServer => url(format!("https://{NODE_IP}:{API_SERVER_PORT}/readyz")),
            Component::ControllerManager => url(format!(
                "https://127.0.0.1:{CONTROLLER_MANAGER_PORT}/healthz"
            )),
            Component::Scheduler => url(format!("https://127.0.0.1:{SCHEDULER_PORT}/healthz")),
            Component::Containerd => Health::Socket(containerd_socket(layout)),
            Component::Kubelet => url(format!("http://127.0.0.1:{KUBELET_HEALTHZ_PORT}/healthz")),
            Component::KubeProxy => url(format!(
                "http://127.0.0.1:{KUBE_PROXY_HEALTHZ_PORT}/healthz"
            )),
        }
    }

    /// Command-line flags for this component with files from `layout`.
    pub fn args(self, layout: &StateLayout) -> Vec<String> {
        match self {
            Component::Etcd => etcd_args(layout),
            Component::ApiServer => api_server_args(layout),
            Component::ControllerManager => controller_manager_args(layout),
            Component::Scheduler => scheduler_args(layout),
            Component::Containerd => vec![
                "--config".into(),
                layout.containerd().config().display().to_string(),
            ],
            Component::Kubelet => kubelet_args(layout),
            Component::KubeProxy => vec![
                path_flag("config", &layout.config_file("kube-proxy.json")),
                flag("v", 1),
            ],
        }
    }
}

fn containerd_socket(layout: &StateLayout) -> PathBuf {
    layout.containerd().socket()
}

fn kubelet_args(layout: &StateLayout) -> Vec<String> {
    vec![
        path_flag("config", &layout.config_file("kubelet.json")),
        path_flag("kubeconfig", &layout.kubeconfig("kubelet")),
        path_flag("root-dir", &layout.kubelet_dir()),
        flag("node-ip", NODE_IP),
        flag("hostname-override", NODE_NAME),
        flag("v", 1),
    ]
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.binary_name())
    }
}

fn flag(name: &str, value: impl fmt::Display) -> String {
    format!("--{name}={value}")
}

fn path_flag(name: &str, path: &Path) -> String {
    flag(name, path.display())
}

/// etcd's client URL: TLS on loopback, a client certificate of etcd's CA required.
fn etcd_url() -> String {
    format!("https://127.0.0.1:{ETCD_CLIENT_PORT}")
}

fn etcd_args(layout: &StateLayout) -> Vec<String> {
    let client = etcd_url();
    let peer = format!("https://127.0.0.1:{ETCD_PEER_PORT}");
    let (cert, key, ca) = (
        layout.pki("etcd-server.crt"),
        layout.pki("etcd-server.key"),
        layout.pki("etcd-ca.crt"),
    );
    vec![
        flag("name", "gmc-etcd"),
        path_flag("data-dir", &layout.etcd_data_dir()),
        flag("listen-client-urls", &client),
        flag("advertise-client-urls", &client),
        path_flag("cert-file", &cert),
        path_flag("key-file", &key),
        flag("client-cert-auth", true),
        path_flag("trusted-ca-file", &ca),
        flag("listen-peer-urls", &peer),
        flag("initial-advertise-peer-urls", &peer),
        flag("initial-cluster", format!("gmc-etcd={peer}")),
        flag("initial-cluster-state", "new"),
        path_flag("peer-cert-file", &cert),
        path_flag("peer-key-file", &key),
        flag("peer-client-cert-auth", true),
        path_flag("peer-trusted-ca-file", &ca),
        // Health for the prober without a client certificate: /health and /metrics only.
        flag(
            "listen-metrics-urls",
            format!("http://127.0.0.1:{ETCD_METRICS_PORT}"),
        ),
        // Test data only: skipping fsync makes start-up and writes much faster.
        flag("unsafe-no-fsync", true),
        // One member on loopback: short raft timers make it elect itself in ~0.1 s instead
        // of ~0.5-1 s (a lone voter cannot lose leadership to missed heartbeats).
        flag("heartbeat-interval", 25),
        flag("election-timeout", 250),
        flag("log-level", "warn"),
    ]
}

fn api_server_args(layout: &StateLayout) -> Vec<String> {
    vec![
        flag("etcd-servers", etcd_url()),
        path_flag("etcd-cafile", &layout.pki("etcd-ca.crt")),
        path_flag("etcd-certfile", &layout.pki("apiserver-etcd-client.crt")),
        path_flag("etcd-keyfile", &layout.pki("apiserver-etcd-client.key")),
        // Every request needs a token or a client certificate (no system:anonymous).
        flag("anonymous-auth", false),
        flag("bind-address", NODE_IP),
        flag("secure-port", API_SERVER_PORT),
        flag("advertise-address", NODE_IP),
        path_flag("cert-dir", &layout.pki_dir()),
        path_flag("tls-cert-file", &layout.pki("apiserver.crt")),
        path_flag("tls-private-key-file", &layout.pki("apiserver.key")),
        path_flag("client-ca-file", &layout.pki("ca.crt")),
        path_flag("token-auth-file", &layout.token_file()),
        flag("authorization-mode", "Node,RBAC"),
        flag("enable-admission-plugins", "NodeRestriction"),
        flag("service-account-issuer", SERVICE_ACCOUNT_ISSUER),
        path_flag("service-account-signing-key-file", &layout.pki("sa.key")),
        path_flag("service-account-key-file", &layout.pki("sa.pub")),
        flag("service-cluster-ip-range", SERVICE_CIDR),
        flag("kubelet-preferred-address-types", "InternalIP"),
        path_flag("kubelet-certificate-authority", &layout.pki("ca.crt")),
        path_flag(
            "kubelet-client-certificate",
            &layout.pki("apiserver-kubelet-client.crt"),
        ),
        path_flag(
            "kubelet-client-key",
            &layout.pki("apiserver-kubelet-client.key"),
        ),
        flag("allow-privileged", true),
        flag("profiling", false),
        flag("v", 1),
    ]
}

/// Flags shared by the controller manager and the scheduler: loopback health endpoint with
/// our certificate (so nothing is written to /var/run/kubernetes), no leader election.
fn loopback_component_args(layout: &StateLayout, user: &str, port: u16) -> Vec<String> {
    vec![
        path_flag("kubeconfig", &layout.kubeconfig(user)),
        flag("leader-elect", false),
        flag("bind-address", "127.0.0.1"),
        flag("secure-port", port),
        path_flag("cert-dir", &layout.pki_dir()),
        path_flag("tls-cert-file", &layout.pki("apiserver.crt")),
        path_flag("tls-private-key-file", &layout.pki("apiserver.key")),
        flag("profiling", false),
        flag("v", 1),
    ]
}

fn controller_manager_args(layout: &StateLayout) -> Vec<String> {
    let mut args = loopback_component_args(layout, "controller-manager", CONTROLLER_MANAGER_PORT);
    args.extend([
        flag("use-service-account-credentials", true),
        path_flag("service-account-private-key-file", &layout.pki("sa.key")),
        path_flag("root-ca-file", &layout.pki("ca.crt")),
        path_flag("cluster-signing-cert-file", &layout.pki("ca.crt")),
        path_flag("cluster-signing-key-file", &layout.pki("ca.key")),
        flag("controllers", "*"),
        // With per-controller ServiceAccount credentials the manager makes ~100 requests
        // while it starts; the default client limit (20 qps, burst 30) makes that take
        // seconds. A one-node test cluster has no load to protect.
        flag("kube-api-qps", 200),
        flag("kube-api-burst", 400),
    ]);
    args
}

fn scheduler_args(layout: &StateLayout) -> Vec<String> {
    loopback_component_args(layout, "scheduler", SCHEDULER_PORT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> StateLayout {
        StateLayout::new(Path::new("/s"))
    }

    fn value<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
        let prefix = format!("--{name}=");
        let mut found = args.iter().filter_map(|a| a.strip_prefix(&prefix));
        let first = found.next();
        assert!(found.next().is_none(), "flag --{name} given twice");
        first
    }

    #[test]
    fn etcd_listens_on_loopback_off_default_ports_without_fsync() {
        let args = Component::Etcd.args(&layout());
        assert_eq!(
            value(&args, "listen-client-urls"),
            Some("https://127.0.0.1:23790")
        );
        assert_eq!(
            value(&args, "listen-peer-urls"),
            Some("https://127.0.0.1:23800")
        );
        assert_eq!(
            value(&args, "listen-metrics-urls"),
            Some("http://127.0.0.1:23810")
        );
        assert_eq!(value(&args, "data-dir"), Some("/s/cluster/etcd"));
        assert_eq!(value(&args, "unsafe-no-fsync"), Some("true"));
        assert!(
            args.iter()
                .all(|a| !a.contains("2379/") && !a.contains(":2379,"))
        );
    }

    #[test]
    fn etcd_requires_client_certificates_of_its_own_ca_on_both_ports() {
        let args = Component::Etcd.args(&layout());
        for (name, expected) in [
            ("client-cert-auth", "true"),
            ("peer-client-cert-auth", "true"),
            ("trusted-ca-file", "/s/cluster/pki/etcd-ca.crt"),
            ("peer-trusted-ca-file", "/s/cluster/pki/etcd-ca.crt"),
            ("cert-file", "/s/cluster/pki/etcd-server.crt"),
            ("peer-key-file", "/s/cluster/pki/etcd-server.key"),
        ] {
            assert_eq!(value(&args, name), Some(expected), "--{name}");
        }
    }

    #[test]
    fn api_server_serves_on_the_bridge_with_node_and_rbac_authorization() {
        let args = Component::ApiServer.args(&layout());
        assert_eq!(value(&args, "bind-address"), Some("10.244.0.1"));
        assert_eq!(value(&args, "advertise-address"), Some("10.244.0.1"));
        assert_eq!(value(&args, "secure-port"), Some("6443"));
        assert_eq!(value(&args, "authorization-mode"), Some("Node,RBAC"));
        assert_eq!(
            value(&args, "enable-admission-plugins"),
            Some("NodeRestriction")
        );
        assert_eq!(value(&args, "disable-admission-plugins"), None);
        assert_eq!(
            value(&args, "service-cluster-ip-range"),
            Some("10.96.0.0/16")
        );
        assert_eq!(
            value(&args, "service-account-issuer"),
            Some("https://kubernetes.default.svc.cluster.local")
        );
        assert_eq!(
            value(&args, "service-account-signing-key-file"),
            Some("/s/cluster/pki/sa.key")
        );
        assert_eq!(
            value(&args, "service-account-key-file"),
            Some("/s/cluster/pki/sa.pub")
        );
        assert_eq!(
            value(&args, "token-auth-file"),
            Some("/s/cluster/tokens.csv")
        );
        assert_eq!(
            value(&args, "etcd-servers"),
            Some("https://127.0.0.1:23790")
        );
        assert_eq!(
            value(&args, "etcd-certfile"),
            Some("/s/cluster/pki/apiserver-etcd-client.crt")
        );
        assert_eq!(
            value(&args, "etcd-cafile"),
            Some("/s/cluster/pki/etcd-ca.crt")
        );
        assert_eq!(value(&args, "anonymous-auth"), Some("false"));
        assert_eq!(
            value(&args, "kubelet-preferred-address-types"),
            Some("InternalIP")
        );
        assert_eq!(value(&args, "profiling"), Some("false"));
    }

    #[test]
    fn controller_manager_runs_all_default_controllers_as_service_accounts() {
        let args = Component::ControllerManager.args(&layout());
        assert_eq!(
            value(&args, "kubeconfig"),
            Some("/s/cluster/controller-manager.kubeconfig")
        );
        assert_eq!(value(&args, "leader-elect"), Some("false"));
        assert_eq!(
            value(&args, "use-service-account-credentials"),
            Some("true")
        );
        assert_eq!(value(&args, "root-ca-file"), Some("/s/cluster/pki/ca.crt"));
        assert_eq!(value(&args, "controllers"), Some("*"));
        assert_eq!(value(&args, "bind-address"), Some("127.0.0.1"));
        assert_eq!(value(&args, "secure-port"), Some("10257"));
    }

    #[test]
    fn scheduler_uses_its_own_kubeconfig_on_loopback() {
        let args = Component::Scheduler.args(&layout());
        assert_eq!(
            value(&args, "kubeconfig"),
            Some("/s/cluster/scheduler.kubeconfig")
        );
        assert_eq!(value(&args, "leader-elect"), Some("false"));
        assert_eq!(value(&args, "bind-address"), Some("127.0.0.1"));
        assert_eq!(value(&args, "secure-port"), Some("10259"));
    }

    #[test]
    fn every_component_mentions_the_state_dir_so_cleanup_can_identify_it() {
        for component in Component::ALL {
            assert!(
                component.args(&layout()).iter().any(|a| a.contains("/s/")),
                "{component}"
            );
        }
    }

    #[test]
    fn binary_names_round_trip() {
        for component in Component::ALL {
            assert_eq!(
                Component::from_binary_name(component.binary_name()),
                Some(component)
            );
        }
        assert_eq!(Component::from_binary_name("kubectl"), None);
    }

    #[test]
    fn health_endpoints_are_loopback_the_bridge_or_the_state_dir() {
        for component in Component::ALL {
            match component.health(&layout()) {
                Health::Http(url) => assert!(
                    url.contains("//127.0.0.1:") || url.contains("//10.244.0.1:"),
                    "{url}"
                ),
                Health::Socket(path) => assert!(path.starts_with("/s/"), "{path:?}"),
            }
        }
    }

    #[test]
    fn the_kubelet_runs_with_private_dirs_on_the_node_ip() {
        let args = Component::Kubelet.args(&layout());
        assert_eq!(value(&args, "root-dir"), Some("/s/kubelet"));
        assert_eq!(value(&args, "node-ip"), Some("10.244.0.1"));
        assert_eq!(value(&args, "config"), Some("/s/cluster/kubelet.json"));
        assert_eq!(
            value(&args, "kubeconfig"),
            Some("/s/cluster/kubelet.kubeconfig")
        );
        let stop = Component::STOP_ORDER;
        let mut sorted = stop;
        sorted.sort();
        assert_eq!(sorted, Component::ALL, "every component is stopped once");
    }
}
