//! [`LocalCluster`]: start, use, fault-inject and stop the local cluster.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Node, ServiceAccount};
use kube::Api;
use kube::runtime::wait::await_condition;
use tokio::sync::{Mutex, watch};

use crate::auth::{Principals, client_from_kubeconfig};
use crate::binaries::{ensure_binaries, ensure_node_binaries};
use crate::cleanup::{cleanup_stale_locked, unmount_below};
use crate::component::Component;
use crate::layout::{DEFAULT_STATE_DIR, KEEP_LOGS_ENV, NODE_NAME, StateLayout, api_server_url};
use crate::lock::{ClusterLock, lock_file};
use crate::pki::Pki;
use crate::probe::Prober;
use crate::process::{Launch, ManagedProcess, ProcessWatch, Spawner};
use crate::sysctls::{NODE_SYSCTLS, RecordedSysctls};
use crate::versions::Release;
use crate::{net, node, preflight};

/// How long each component may take to become ready (generous: CI machines are slow).
fn ready_timeout(component: Component) -> Duration {
    match component {
        Component::Etcd | Component::Containerd => Duration::from_secs(30),
        Component::ApiServer => Duration::from_secs(90),
        Component::ControllerManager
        | Component::Scheduler
        | Component::Kubelet
        | Component::KubeProxy => Duration::from_secs(60),
    }
}
/// How long the node may take to become Ready, and the defaults to appear.
const NODE_TIMEOUT: Duration = Duration::from_secs(60);
/// SIGTERM grace of a component on stop.
const COMPONENT_GRACE: Duration = Duration::from_secs(5);
/// SIGTERM grace of kube-apiserver on stop: while it drains the requests still open it used up
/// the whole 5 s on every stop (measured: 5.03 s, then killed). The cluster is discarded, and
/// etcd, stopped after it, keeps its data consistent anyway.
const APISERVER_GRACE: Duration = Duration::from_secs(1);

/// How long `component` may take to exit after SIGTERM on stop before it is killed.
fn stop_grace(component: Component) -> Duration {
    match component {
        Component::ApiServer => APISERVER_GRACE,
        _ => COMPONENT_GRACE,
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Directory with etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
    /// kube-proxy and kubectl (`ci/controlplane/build.sh`).
    pub bin_dir: PathBuf,
    /// Directory with the node runtime: containerd, ctr, runc, CNI plugins, pause
    /// (`ci/node/build.sh`).
    pub node_bin_dir: PathBuf,
    /// Where the cluster keeps its files (default `/run/gomicro-conformance`).
    pub state_dir: PathBuf,
    /// OCI (or `docker save`) image archives imported into the node's containerd at start.
    pub images: Vec<PathBuf>,
    /// Registries on loopback (`127.0.0.1:PORT`) the node may pull from; every other registry
    /// stays routed to a closed port.
    pub pull_registries: Vec<String>,
}

impl ClusterSpec {
    /// Default state dir and the binaries of `release` from [`ensure_binaries`] and
    /// [`ensure_node_binaries`] (built if missing).
    pub fn with_defaults(images: Vec<PathBuf>, release: &Release) -> anyhow::Result<Self> {
        Ok(Self {
            bin_dir: ensure_binaries(release)?,
            node_bin_dir: ensure_node_binaries()?,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            images,
            pull_registries: Vec::new(),
        })
    }
}

fn progress(what: &str, took: Duration) {
    eprintln!("[local] {what} in {:.1} s", took.as_secs_f64());
}

pub(crate) fn keep_logs() -> bool {
    std::env::var(KEEP_LOGS_ENV).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// A running local cluster: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
/// containerd, the kubelet and kube-proxy as child processes. Stop it with
/// [`LocalCluster::stop`]; dropping it tears everything down synchronously as a fallback.
pub struct LocalCluster {
    layout: StateLayout,
    admin_kubeconfig: PathBuf,
    bin_dir: PathBuf,
    node_bin_dir: PathBuf,
    principals: Principals,
    prober: Prober,
    processes: Mutex<BTreeMap<Component, ManagedProcess>>,
    failures: watch::Sender<Option<String>>,
    spawner: Option<Spawner>,
    stopped: bool,
    _lock: ClusterLock,
}

impl LocalCluster {
    /// Starts the cluster; returns once every component is ready, the node is Ready and the
    /// `default` ServiceAccount and `kube-root-ca.crt` exist in `default`. Cleans up a killed
    /// run's leftovers first. Progress goes to stderr.
    pub async fn start(spec: ClusterSpec) -> anyhow::Result<LocalCluster> {
        let started = Instant::now();
        preflight::check(&spec.bin_dir, &spec.node_bin_dir)?;
        let layout = StateLayout::new(&spec.state_dir);
        std::fs::create_dir_all(layout.root())
            .with_context(|| format!("creating {}", layout.root().display()))?;
        preflight::check_free_space(layout.root())?;
        let lock = ClusterLock::acquire(&lock_file(), layout.root())?;
        let leftovers = cleanup_stale_locked(layout.root())?;
        if !leftovers.is_empty() {
            eprintln!(
                "[local] removed leftovers of an earlier run: {}",
                leftovers.join(", ")
            );
        }
        remove_generated_files(&layout, false)?;
        for dir in [
            layout.pki_dir(),
            layout.run_dir(),
            layout.logs_dir(),
            layout.pod_logs_dir(),
            layout.ipam_dir(),
        ] {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let pki = Pki::generate(NODE_NAME)?;
        pki.write(&layout)?;
        let principals = Principals::generate()?;
        principals.write(&layout, &api_server_url())?;
        let prober = Prober::new(&pki.ca.cert_pem, &principals.admin.token, &layout)?;
        RecordedSysctls::record(Path::new("/proc/sys"), &NODE_SYSCTLS)?
            .save(&layout.sysctls_file())?;
        node::write_configs(&layout, &spec.node_bin_dir, &spec.pull_registries)?;
        progress("preflight, PKI, sysctls and configs", started.elapsed());

        let mut cluster = LocalCluster {
            admin_kubeconfig: layout.kubeconfig("admin"),
            layout,
            bin_dir: spec.bin_dir,
            node_bin_dir: spec.node_bin_dir,
            principals,
            prober,
            processes: Mutex::new(BTreeMap::new()),
            failures: watch::channel(None).0,
            spawner: Some(Spawner::start()?),
            stopped: false,
            _lock: lock,
        };
        match cluster.bring_up(&spec.images).await {
            Ok(()) => {
                progress("local cluster ready", started.elapsed());
                Ok(cluster)
            }
            Err(err) => {
                let logs = cluster.layout.logs_dir();
                eprintln!(
                    "[local] start failed; tearing down (component logs: {})",
                    logs.display()
                );
                if let Err(stop_err) = cluster.shutdown().await {
                    eprintln!("[local] teardown after the failed start: {stop_err:#}");
                }
                Err(err)
            }
        }
    }

    async fn bring_up(&mut self, images: &[PathBuf]) -> anyhow::Result<()> {
        let phase = Instant::now();
        net::setup().context("creating the cluster network")?;
        progress("bridge and routes", phase.elapsed());

        // etcd and containerd need nothing; the API server needs etcd; the kubelet needs the
        // API server and the images imported.
        let phase = Instant::now();
        let etcd = self.launch(Component::Etcd).await?;
        let containerd = self.launch(Component::Containerd).await?;
        self.wait_process(&etcd, phase).await?;
        let api_server = self.launch(Component::ApiServer).await?;
        let import = async {
            self.wait_process(&containerd, phase).await?;
            let (layout, bin) = (self.layout.clone(), self.node_bin_dir.clone());
            let archives = images.to_vec();
            tokio::task::spawn_blocking(move || node::import_images(&layout, &bin, &archives))
                .await
                .context("the image import panicked")??;
            progress(
                &format!("{} image archives imported", images.len() + 1),
                phase.elapsed(),
            );
            anyhow::Ok(())
        };
        futures::try_join!(self.wait_process(&api_server, phase), import)?;

        // Everything after the API server is independent: start it all at once.
        let phase = Instant::now();
        let mut started = Vec::new();
        for component in [
            Component::ControllerManager,
            Component::Scheduler,
            Component::Kubelet,
            Component::KubeProxy,
        ] {
            started.push(self.launch(component).await?);
        }
        let admin = self.client().await?;
        futures::try_join!(
            futures::future::try_join_all(started.iter().map(|p| self.wait_process(p, phase))),
            self.guarded("node Ready", phase, wait_node_ready(admin.clone())),
            self.guarded(
                "default ServiceAccount and kube-root-ca.crt",
                phase,
                wait_namespace_defaults(admin.clone())
            ),
        )?;
        Ok(())
    }

    async fn wait_process(&self, process: &ProcessWatch, since: Instant) -> anyhow::Result<()> {
        let component = process.component();
        self.prober
            .wait_ready(process, since, ready_timeout(component))
            .await?;
        progress(&format!("{component} ready"), since.elapsed());
        Ok(())
    }

    /// Runs `wait` with the node timeout, failing early when a component or the kubelet
    /// dies; reports how long `what` took since `since`.
    async fn guarded(
        &self,
        what: &str,
        since: Instant,
        wait: impl Future<Output = anyhow::Result<()>>,
    ) -> anyhow::Result<()> {
        tokio::select! {
            result = tokio::time::timeout(NODE_TIMEOUT, wait) => {
                result.map_err(|_| anyhow::anyhow!("{what}: timed out after {NODE_TIMEOUT:?}"))??
            }
            err = self.failed() => return Err(err.context(format!("waiting for {what}"))),
        }
        progress(what, since.elapsed());
        Ok(())
    }

    async fn launch(&self, component: Component) -> anyhow::Result<ProcessWatch> {
        let mut processes = self.processes.lock().await;
        self.launch_locked(&mut processes, component).await
    }

    async fn launch_locked(
        &self,
        processes: &mut BTreeMap<Component, ManagedProcess>,
        component: Component,
    ) -> anyhow::Result<ProcessWatch> {
        let name = component.binary_name();
        let bin_dir = if component.from_node_runtime() {
            &self.node_bin_dir
        } else {
            &self.bin_dir
        };
        let launch = Launch {
            component,
            program: bin_dir.join(name),
            args: component.args(&self.layout),
            log: self.layout.logs_dir().join(format!("{name}.log")),
            home: self.layout.home_dir(),
            pid_file: self.layout.run_dir().join(format!("{name}.pid")),
        };
        let spawner = self.spawner.as_ref().context("the cluster is stopped")?;
        let process = ManagedProcess::launch(spawner, &launch, self.failures.clone()).await?;
        let watch = process.watch();
        processes.insert(component, process);
        Ok(watch)
    }

    /// The admin kubeconfig (usable by kubectl and `kube::Config`).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.admin_kubeconfig
    }

    /// The kubectl built with the control plane.
    pub fn kubectl(&self) -> PathBuf {
        self.bin_dir.join("kubectl")
    }

    /// An admin client.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        client_from_kubeconfig(self.kubeconfig_path()).await
    }

    /// The API server URL (`https://10.244.0.1:6443`).
    pub fn api_server_url(&self) -> String {
        api_server_url()
    }

    /// The admin bearer token.
    pub fn admin_token(&self) -> &str {
        &self.principals.admin.token
    }

    /// The name of the single node.
    pub fn node_name(&self) -> &'static str {
        NODE_NAME
    }

    /// The state dir.
    pub fn state_dir(&self) -> &Path {
        self.layout.root()
    }

    /// The directory with the component logs.
    pub fn logs_dir(&self) -> PathBuf {
        self.layout.logs_dir()
    }

    /// The node runtime's bin dir (containerd, ctr, runc).
    pub fn node_bin_dir(&self) -> &Path {
        &self.node_bin_dir
    }

    /// The node's containers through its containerd.
    pub fn runtime(&self) -> crate::NodeRuntime {
        crate::NodeRuntime {
            ctr: self.node_bin_dir.join("ctr"),
            socket: self.layout.containerd().socket(),
        }
    }

    /// Resolves with the first failure: a component ending unexpectedly.
    pub async fn failed(&self) -> anyhow::Error {
        let mut failures = self.failures.subscribe();
        match failures.wait_for(Option::is_some).await {
            Ok(first) => anyhow::anyhow!(first.clone().unwrap_or_default()),
            Err(_) => anyhow::anyhow!("the cluster is gone"),
        }
    }

    /// SIGKILLs `component`, starts it again and waits until it is ready (fault injection).
    pub async fn restart(&self, component: Component) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut processes = self.processes.lock().await;
        if let Some(process) = processes.remove(&component) {
            process.kill().await;
        }
        let watch = self.launch_locked(&mut processes, component).await?;
        drop(processes);
        let restarted = Instant::now();
        self.prober
            .wait_ready(&watch, restarted, ready_timeout(component))
            .await?;
        progress(&format!("{component} restarted"), started.elapsed());
        Ok(())
    }

    /// Stops kube-proxy, the kubelet, the control plane and containerd, removes the containers
    /// and everything else the cluster made (see `cleanup`); logs stay with GOMICRO_KEEP_LOGS.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown().await
    }

    async fn shutdown(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut errors = Vec::new();
        let mut processes = std::mem::take(self.processes.get_mut());
        for component in Component::STOP_ORDER {
            if let Some(process) = processes.remove(&component) {
                process.terminate(stop_grace(component)).await;
            }
        }
        self.spawner.take();
        if let Err(err) = cleanup_stale_locked(self.layout.root()) {
            errors.push(format!("{err:#}"));
        }
        if let Err(err) = remove_generated_files(&self.layout, keep_logs()) {
            errors.push(format!("{err:#}"));
        }
        self.stopped = true;
        progress("local cluster stopped", started.elapsed());
        if !errors.is_empty() {
            bail!("stopping the local cluster: {}", errors.join("; "));
        }
        Ok(())
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        eprintln!("[local] cluster dropped without stop(): tearing down");
        for process in self.processes.get_mut().values() {
            process.kill_now();
        }
        self.spawner.take();
        if let Err(err) = cleanup_stale_locked(self.layout.root()) {
            eprintln!("[local] teardown: {err:#}");
        }
        if let Err(err) = remove_generated_files(&self.layout, keep_logs()) {
            eprintln!("[local] teardown: {err:#}");
        }
    }
}

/// Removes the cluster's generated files, the kubelet and node dirs and (unless `keep_logs`)
/// the logs;
/// removes the state dir itself when nothing else is left in it.
pub(crate) fn remove_generated_files(layout: &StateLayout, keep_logs: bool) -> anyhow::Result<()> {
    unmount_below(layout.root())?;
    let mut dirs = vec![
        layout.cluster_dir(),
        layout.kubelet_dir(),
        layout.node_dir(),
        layout.shim_socket_dir(),
    ];
    if !keep_logs {
        dirs.push(layout.logs_dir());
    }
    for dir in dirs {
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err).with_context(|| format!("removing {}", dir.display())),
        }
    }
    // Only succeeds when empty, which is the point.
    let _ = std::fs::remove_dir(layout.root());
    Ok(())
}

fn node_is_ready(node: Option<&Node>) -> bool {
    node.and_then(|n| n.status.as_ref())
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

async fn wait_node_ready(client: kube::Client) -> anyhow::Result<()> {
    await_condition(Api::<Node>::all(client), NODE_NAME, node_is_ready)
        .await
        .context("watching the node")?;
    Ok(())
}

async fn wait_namespace_defaults(client: kube::Client) -> anyhow::Result<()> {
    let exists = |o: Option<&ServiceAccount>| o.is_some();
    let sa = await_condition(
        Api::<ServiceAccount>::namespaced(client.clone(), "default"),
        "default",
        exists,
    );
    let ca = await_condition(
        Api::<ConfigMap>::namespaced(client, "default"),
        "kube-root-ca.crt",
        |o: Option<&ConfigMap>| o.is_some(),
    );
    let (sa, ca) = futures::join!(sa, ca);
    sa.context("watching the default ServiceAccount")?;
    ca.context("watching kube-root-ca.crt")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeStatus};

    fn node(conditions: &[(&str, &str)]) -> Node {
        Node {
            status: Some(NodeStatus {
                conditions: Some(
                    conditions
                        .iter()
                        .map(|(t, s)| NodeCondition {
                            type_: t.to_string(),
                            status: s.to_string(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn node_readiness_needs_ready_true() {
        assert!(node_is_ready(Some(&node(&[
            ("MemoryPressure", "False"),
            ("Ready", "True")
        ]))));
        assert!(!node_is_ready(Some(&node(&[("Ready", "False")]))));
        assert!(!node_is_ready(Some(&node(&[]))));
        assert!(!node_is_ready(None));
    }

    #[test]
    fn removing_generated_files_keeps_logs_on_request_and_other_files_always() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("state");
        let layout = StateLayout::new(&root);
        for d in [layout.pki_dir(), layout.logs_dir(), layout.kubelet_dir()] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(layout.daemon_log(), "x").unwrap();
        remove_generated_files(&layout, true).unwrap();
        assert!(!layout.cluster_dir().exists());
        assert!(!layout.kubelet_dir().exists());
        assert!(layout.logs_dir().exists());
        assert!(layout.daemon_log().exists());
        std::fs::remove_file(layout.daemon_log()).unwrap();
        remove_generated_files(&layout, false).unwrap();
        assert!(!root.exists(), "an empty state dir is removed");
    }
}
