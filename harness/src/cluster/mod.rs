//! One cluster abstraction over four backends: `local`, `k3s`, `kubeconfig` and `auto`.
//!
//! Every case talks to the Kubernetes API ([`Cluster::client`]), to pod addresses handed out
//! by [`Cluster::pod_addr`], and to the optional levers of the [`Backend`] trait (a case skips
//! when its lever is absent), so cases run unchanged on every backend. A new backend is one
//! module (its [`Provider`] and [`Backend`]), its [`BackendKind`] variant and its line in
//! [`provider()`].

pub(crate) mod k3s;
pub(crate) mod kubeconfig;
pub(crate) mod local;
pub(crate) mod port_forward;
mod provider;

pub(crate) use provider::{UpRequest, provider};

use std::net::SocketAddr;

use anyhow::Result;
use futures::future::BoxFuture;

/// Which backend to use.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, strum::IntoStaticStr,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum BackendKind {
    /// k3s when a Docker engine answers and holds the pinned k3s image, else local.
    Auto,
    /// A real single-node Kubernetes from Go modules and containerd, no Docker (Linux, root).
    Local,
    /// k3s in a container (needs a Docker engine).
    K3s,
    /// An existing cluster from KUBECONFIG.
    Kubeconfig,
}

impl BackendKind {
    /// Resolves `auto` to a concrete backend for a cluster of `release`, saying why when it
    /// falls back to local.
    pub(crate) async fn resolve(self, release: &local_cluster::versions::Release) -> BackendKind {
        if self != BackendKind::Auto {
            return self;
        }
        match k3s::unavailable_reason(release).await {
            None => BackendKind::K3s,
            Some(reason) => {
                eprintln!("[harness] backend auto: using local because {reason}");
                BackendKind::Local
            }
        }
    }

    /// Stable lower-case name used in reports.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// Control-plane components a fault case can restart (local backend only).
pub(crate) use local_cluster::Component;
pub(crate) use local_cluster::ContainerStats;

/// Env var forcing pod access through kube-rs port-forward (`port-forward`) even where pod IPs
/// are routable (`direct`, the local backend's default): the k3s path, tested locally.
pub(crate) const POD_ACCESS_ENV: &str = "HARNESS_POD_ACCESS";

/// A lever a case may need beyond the Kubernetes API; a backend offers it or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lever {
    /// Killing and restarting kube-apiserver and etcd.
    ControlPlane,
    /// Killing a container through the container runtime.
    ContainerRuntime,
}

impl Lever {
    /// What the lever does, for reasons and reports.
    pub fn describe(self) -> &'static str {
        match self {
            Lever::ControlPlane => "restarting kube-apiserver and etcd",
            Lever::ContainerRuntime => "killing a container through the container runtime",
        }
    }
}

/// Restarting control-plane components (fault injection).
pub trait ControlPlaneLever: Send + Sync {
    /// SIGKILLs `component`, starts it again and returns once it is ready.
    fn restart(&self, component: Component) -> BoxFuture<'_, Result<()>>;
}

/// The node's containers through the container runtime.
pub trait RuntimeLever: Send + Sync {
    /// SIGKILLs a container (its CRI `containerID`, e.g. `containerd://<id>`).
    fn kill_container<'a>(&'a self, container_id: &'a str) -> BoxFuture<'a, Result<()>>;
    /// Memory, CPU, start time and pod traffic of a container.
    fn container_stats(&self, container_id: &str) -> Result<ContainerStats>;
}

/// One backend: what keeps its cluster alive, how it ends, and the levers it offers beyond the
/// Kubernetes API. Cases ask for a lever and skip, naming the backend, when it is absent.
pub trait Backend: Send + Sync {
    /// Restarting control-plane components, if this backend can.
    fn control_plane(&self) -> Option<&dyn ControlPlaneLever> {
        None
    }
    /// Reaching containers through the runtime, if this backend can.
    fn runtime(&self) -> Option<&dyn RuntimeLever> {
        None
    }
    /// Whether the harness can dial pod IPs directly.
    fn pod_ips_routable(&self) -> bool {
        false
    }
    /// The ends of the cluster's own logs (control plane, runtime, node), by file name, for
    /// the diagnostics of a failed run; empty where the backend keeps none.
    fn logs(&self) -> Result<Vec<(String, String)>> {
        Ok(Vec::new())
    }
    /// Stops what this process owns (unless `keep`), printing what it does.
    fn shutdown(self: Box<Self>, keep: bool) -> BoxFuture<'static, Result<()>>;
}

/// A cluster this process neither owns nor has levers on (`kubeconfig` backend).
pub(crate) struct External;

impl Backend for External {
    fn shutdown(self: Box<Self>, _keep: bool) -> BoxFuture<'static, Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

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
    owner: Box<dyn Backend>,
}

impl Cluster {
    /// Starts a prepared cluster (see [`Provider::prepare`]); with `keep`, one that outlives
    /// this process where the backend can.
    /// A cluster that does not run the Kubernetes minor asked for is stopped and refused (a
    /// reused `harness up` daemon of another version, a kubeconfig cluster of another version).
    pub(crate) async fn start(prepared: provider::Prepared, keep: bool) -> Result<Cluster> {
        let (client, owner) = (prepared.start)(keep).await?;
        let cluster = Cluster::new(prepared.kind, client, owner).await?;
        let Some(wanted) = prepared.kubernetes_minor else {
            return Ok(cluster);
        };
        let running = cluster.kubernetes_version.clone();
        if local_cluster::versions::minor_of(&running).as_deref() == Some(wanted.as_str()) {
            return Ok(cluster);
        }
        cluster.shutdown(keep).await?;
        anyhow::bail!(
            "the {} cluster runs Kubernetes {running}, not {wanted} as asked (a `harness up` \
             cluster of another version is stopped with `harness down`; a kubeconfig cluster \
             runs what it runs: ask for its version or none)",
            prepared.kind.name()
        )
    }

    /// Wraps a started backend; pods are reached directly where their IPs are routable,
    /// else (or with `HARNESS_POD_ACCESS=port-forward`) through port-forward.
    pub async fn new(
        backend: BackendKind,
        client: kube::Client,
        owner: Box<dyn Backend>,
    ) -> Result<Cluster> {
        let version = client.apiserver_version().await?;
        let forced = match std::env::var(POD_ACCESS_ENV).as_deref() {
            Ok("port-forward") => true,
            Ok("direct") | Ok("") | Err(_) => false,
            Ok(other) => {
                anyhow::bail!("{POD_ACCESS_ENV}={other:?}: expected `direct` or `port-forward`")
            }
        };
        let access = if owner.pod_ips_routable() && !forced {
            PodAccess::Direct
        } else {
            eprintln!("[harness] pod access: kube-rs port-forward");
            PodAccess::Forward(port_forward::PortForwarder::new(client.clone()))
        };
        Ok(Cluster {
            backend,
            client,
            kubernetes_version: version.git_version,
            access,
            owner,
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

    /// Restarting control-plane components, or why this backend cannot.
    pub fn control_plane(&self) -> std::result::Result<&dyn ControlPlaneLever, String> {
        self.owner.control_plane().ok_or_else(|| {
            format!(
                "the {} backend cannot restart control-plane components",
                self.backend.name()
            )
        })
    }

    /// Reaching containers through the runtime, or why this backend cannot.
    pub fn runtime(&self) -> std::result::Result<&dyn RuntimeLever, String> {
        self.owner.runtime().ok_or_else(|| {
            format!(
                "the {} backend offers no container-runtime lever (kill, cgroup stats)",
                self.backend.name()
            )
        })
    }

    /// Why the case needing `lever` is not applicable here, or `None` when this backend has it.
    pub fn lacks(&self, lever: Lever) -> Option<String> {
        let has = match lever {
            Lever::ControlPlane => self.owner.control_plane().is_some(),
            Lever::ContainerRuntime => self.owner.runtime().is_some(),
        };
        (!has).then(|| {
            format!(
                "not applicable on the {} backend: the case needs the lever \"{}\", which this backend lacks",
                self.backend.name(),
                lever.describe()
            )
        })
    }

    /// The ends of the cluster's own logs, by file name (see [`Backend::logs`]).
    pub fn logs(&self) -> Result<Vec<(String, String)>> {
        self.owner.logs()
    }

    /// Stops what this process owns (unless `keep`), printing what it does.
    pub async fn shutdown(self, keep: bool) -> Result<()> {
        self.owner.shutdown(keep).await
    }
}
