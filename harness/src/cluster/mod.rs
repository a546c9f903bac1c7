//! One cluster abstraction over four backends: `local`, `k3s`, `kubeconfig` and `auto`.
//!
//! Every case talks only to the Kubernetes API ([`Cluster::client`]) and to pod addresses handed
//! out by [`Cluster::pod_addr`], so cases run unchanged on every backend.

pub mod k3s;
pub mod kubeconfig;
pub mod local;
pub mod port_forward;

use std::net::SocketAddr;

use anyhow::Result;

/// Which backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// k3s when a Docker engine answers and holds the pinned k3s image, else local.
    Auto,
    /// Upstream control plane built from Go modules plus the process kubelet (Linux, root).
    Local,
    /// k3s in a container (needs a Docker engine).
    K3s,
    /// An existing cluster from KUBECONFIG.
    Kubeconfig,
}

impl BackendKind {
    /// Resolves `auto` to a concrete backend, saying why when it falls back to local.
    pub async fn resolve(self) -> BackendKind {
        if self != BackendKind::Auto {
            return self;
        }
        match k3s::unavailable_reason().await {
            None => BackendKind::K3s,
            Some(reason) => {
                eprintln!("[harness] backend auto: using local because {reason}");
                BackendKind::Local
            }
        }
    }

    /// Stable lower-case name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Auto => "auto",
            BackendKind::Local => "local",
            BackendKind::K3s => "k3s",
            BackendKind::Kubeconfig => "kubeconfig",
        }
    }
}

/// Control-plane components a fault case can restart (local backend only).
pub use local_cluster::Component;

/// How the harness reaches pods.
enum PodAccess {
    /// Pod IPs are routable from the harness (local backend: the run's own bridge).
    Direct,
    /// Through kube-rs port-forward to a loopback listener.
    Forward(port_forward::PortForwarder),
}

/// A running cluster the harness can deploy to and test against.
pub struct Cluster {
    backend: BackendKind,
    client: kube::Client,
    kubernetes_version: String,
    access: PodAccess,
    lifecycle: Lifecycle,
}

/// What keeps the cluster alive and how it ends.
pub enum Lifecycle {
    /// A local cluster owned by this process.
    Local(Box<local::LocalBackend>),
    /// A k3s container owned by this process.
    K3s(Box<k3s::K3sCluster>),
    /// A cluster this process does not own.
    External,
}

impl Cluster {
    /// Wraps a started backend.
    pub async fn new(
        backend: BackendKind,
        client: kube::Client,
        lifecycle: Lifecycle,
    ) -> Result<Cluster> {
        let version = client.apiserver_version().await?;
        let access = match backend {
            BackendKind::Local => PodAccess::Direct,
            _ => PodAccess::Forward(port_forward::PortForwarder::new(client.clone())),
        };
        Ok(Cluster {
            backend,
            client,
            kubernetes_version: version.git_version,
            access,
            lifecycle,
        })
    }

    /// The concrete backend in use.
    pub fn backend(&self) -> BackendKind {
        self.backend
    }

    /// An admin client.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The API server's version, e.g. `v1.35.4`.
    pub fn kubernetes_version(&self) -> &str {
        &self.kubernetes_version
    }

    /// An address on which the harness reaches `port` of a pod.
    pub async fn pod_addr(
        &self,
        namespace: &str,
        pod: &str,
        pod_ip: &str,
        port: u16,
    ) -> Result<SocketAddr> {
        match &self.access {
            PodAccess::Direct => Ok(SocketAddr::new(pod_ip.parse()?, port)),
            PodAccess::Forward(forwarder) => forwarder.local_addr(namespace, pod, port).await,
        }
    }

    /// The local control plane, for cases that need a local-only lever (killing components).
    pub fn local_levers(&self) -> Option<&local::LocalBackend> {
        match &self.lifecycle {
            Lifecycle::Local(local) => Some(local),
            _ => None,
        }
    }

    /// Stops what this process owns (unless `keep`), printing what it does.
    pub async fn shutdown(self, keep: bool) -> Result<()> {
        match self.lifecycle {
            Lifecycle::Local(local) => local.shutdown(keep).await,
            Lifecycle::K3s(k3s) => k3s.shutdown(keep).await,
            Lifecycle::External => Ok(()),
        }
    }
}
