//! The local backend: a real single-node Kubernetes (crate `local-cluster`).
//!
//! Either owned by this process (started and stopped with it), or a daemon started by
//! `harness up` that this process attaches to and leaves running.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use futures::future::BoxFuture;
use local_cluster::versions::Release;
use local_cluster::{ClusterSpec, Component, ContainerStats, LocalCluster, NodeRuntime, daemon};

use super::provider::{Prepared, Provider, UpRequest};
use super::{Backend, BackendKind, ControlPlaneLever, Lever, RuntimeLever};
use crate::error::UsageError;
use crate::profile::Profile;

/// Default directory of the local cluster's state (pid files, certificates, pod roots).
pub(crate) fn default_state_dir() -> PathBuf {
    std::env::var_os("GOMICRO_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/gomicro-conformance"))
}

/// A local cluster, owned or attached.
pub(crate) enum LocalBackend {
    /// Started by this process; stopped by [`LocalBackend::shutdown`].
    Owned(Box<LocalCluster>),
    /// A `harness up` daemon; left running.
    Attached(daemon::ClusterInfo),
}

impl LocalBackend {
    /// Starts a cluster of `release` owned by this process with the given image archives.
    pub(crate) async fn start(
        images: Vec<PathBuf>,
        release: &Release,
    ) -> Result<(LocalBackend, kube::Client)> {
        let spec = ClusterSpec::with_defaults(images, release)?;
        let cluster = LocalCluster::start(spec).await?;
        let client = cluster.client().await?;
        Ok((LocalBackend::Owned(Box::new(cluster)), client))
    }

    /// Attaches to the running `harness up` daemon `info`.
    async fn attach(info: daemon::ClusterInfo) -> Result<(LocalBackend, kube::Client)> {
        let client = local_cluster::client_from_kubeconfig(&info.kubeconfig).await?;
        Ok((LocalBackend::Attached(info), client))
    }

    /// Starts (or reuses) a `harness up` daemon of `release` through `harness_exe` and
    /// attaches to it.
    pub(crate) async fn up(
        harness_exe: &Path,
        image_list: &Path,
        release: &Release,
    ) -> Result<(LocalBackend, kube::Client)> {
        let args = daemon_args(image_list, release);
        let info = daemon::up(&default_state_dir(), harness_exe, &args).await?;
        Self::attach(info).await
    }

    /// The node's containers through its containerd.
    fn node_runtime(&self) -> NodeRuntime {
        match self {
            LocalBackend::Owned(cluster) => cluster.runtime(),
            LocalBackend::Attached(info) => info.runtime.clone(),
        }
    }

    /// Stops an owned cluster; an attached one keeps running.
    async fn stop(self, keep: bool) -> Result<()> {
        match self {
            LocalBackend::Owned(cluster) if !keep => cluster.stop().await,
            LocalBackend::Owned(cluster) => {
                eprintln!(
                    "[local] --keep-cluster needs a daemon cluster: use `harness up`; stopping this one"
                );
                cluster.stop().await
            }
            LocalBackend::Attached(_) => Ok(()),
        }
    }
}

/// The arguments of the `cluster-daemon` that `harness up` starts.
fn daemon_args(image_list: &Path, release: &Release) -> Vec<String> {
    vec![
        "cluster-daemon".to_string(),
        "--image-archives".to_string(),
        image_list.display().to_string(),
        "--kubernetes-version".to_string(),
        release.minor.clone(),
    ]
}

/// Builds (or finds cached) the control plane of `release` and the node runtime.
fn ensure_go_builds(release: &Release) -> Result<()> {
    let started = std::time::Instant::now();
    local_cluster::ensure_binaries(release)?;
    local_cluster::ensure_node_binaries()?;
    let took = started.elapsed();
    if took > std::time::Duration::from_secs(5) {
        eprintln!(
            "[local] control plane ({}) and node runtime built in {:.1} s",
            release.kubernetes,
            took.as_secs_f64()
        );
    }
    Ok(())
}

/// The profile's local images as OCI archives, with the local backend's Go builds (control plane
/// of the profile's Kubernetes minor, node runtime; cached by version, so usually instant) run
/// beside them: cold, both take minutes, and the cargo build of the images alone leaves cores
/// idle while it links.
pub(crate) fn prepare_images(
    profile: &crate::profile::Profile,
    harness_exe: &Path,
) -> Result<Vec<PathBuf>> {
    let release = profile.kubernetes_release();
    let go_builds = std::thread::spawn(move || ensure_go_builds(release));
    let images = crate::images::local_archives(profile, harness_exe);
    let built = go_builds
        .join()
        .map_err(|_| anyhow::anyhow!("the control-plane build thread panicked"))?;
    let images = images?;
    built.context("the local backend's binaries")?;
    Ok(images)
}

impl ControlPlaneLever for LocalBackend {
    /// Directly when owned, through the daemon's control socket when attached.
    fn restart(&self, component: Component) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            match self {
                LocalBackend::Owned(cluster) => cluster.restart(component).await,
                LocalBackend::Attached(_) => daemon::restart(&default_state_dir(), component).await,
            }
        })
    }
}

impl RuntimeLever for LocalBackend {
    fn kill_container<'a>(&'a self, container_id: &'a str) -> BoxFuture<'a, Result<()>> {
        let runtime = self.node_runtime();
        let id = container_id.to_string();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || runtime.kill(&id))
                .await
                .context("the kill task panicked")?
        })
    }

    fn container_stats(&self, container_id: &str) -> Result<ContainerStats> {
        self.node_runtime().stats(container_id)
    }
}

impl Backend for LocalBackend {
    fn control_plane(&self) -> Option<&dyn ControlPlaneLever> {
        Some(self)
    }
    fn runtime(&self) -> Option<&dyn RuntimeLever> {
        Some(self)
    }
    fn pod_ips_routable(&self) -> bool {
        true
    }
    fn logs(&self) -> Result<Vec<(String, String)>> {
        match self {
            LocalBackend::Owned(cluster) => log_tails(cluster.state_dir()),
            LocalBackend::Attached(_) => log_tails(&default_state_dir()),
        }
    }
    fn shutdown(self: Box<Self>, keep: bool) -> BoxFuture<'static, Result<()>> {
        Box::pin(self.stop(keep))
    }
}

/// The local backend: a real node on this machine (root, Linux), owned or a `harness up` daemon.
pub(crate) struct LocalProvider;

impl Provider for LocalProvider {
    fn levers(&self) -> &'static [Lever] {
        &[Lever::ControlPlane, Lever::ContainerRuntime]
    }

    fn prepare<'a>(
        &'a self,
        profile: &'a Profile,
        harness_exe: &'a Path,
    ) -> BoxFuture<'a, Result<Prepared>> {
        Box::pin(async move {
            let release = profile.kubernetes_release();
            // A running daemon's node imported its images when it started: building and
            // writing them again would change nothing it runs, so a run attaching to it skips
            // that (prepared in `start` after all if it does not attach).
            let images = match daemon::status(&default_state_dir()) {
                Some(_) => None,
                None => Some(prepare_images(profile, harness_exe)?),
            };
            let profile = profile.clone();
            let harness_exe = harness_exe.to_path_buf();
            Ok(Prepared {
                kind: BackendKind::Local,
                kubernetes_minor: Some(release.minor.clone()),
                start: Box::new(move |keep| {
                    Box::pin(async move {
                        // Only a run that keeps its cluster attaches to a running daemon.
                        let running = match (&images, keep) {
                            (None, true) => daemon::status(&default_state_dir()),
                            _ => None,
                        };
                        let (local, client) = if let Some(info) = running {
                            eprintln!(
                                "[local] cluster already running (daemon pid {}): it keeps the \
                                 images it started with (`harness down` first to deploy new builds)",
                                info.pid
                            );
                            LocalBackend::attach(info).await?
                        } else {
                            let images = match images {
                                Some(images) => images,
                                None => prepare_images(&profile, &harness_exe)?,
                            };
                            if keep {
                                let list = write_image_list(&images)?;
                                LocalBackend::up(&harness_exe, &list, release).await?
                            } else {
                                LocalBackend::start(images, release).await?
                            }
                        };
                        Ok((client, Box::new(local) as Box<dyn Backend>))
                    })
                }),
            })
        })
    }

    fn up<'a>(&'a self, request: UpRequest<'a>) -> BoxFuture<'a, Result<daemon::ClusterInfo>> {
        Box::pin(async move {
            for registry in &request.pull_registries {
                local_cluster::check_loopback_registry(registry)
                    .map_err(|error| UsageError(format!("--pull-registry: {error:#}")))?;
            }
            let release = request.profile.kubernetes_release();
            let archives = if request.no_images {
                ensure_go_builds(release)?;
                Vec::new()
            } else {
                prepare_images(request.profile, request.harness_exe)?
            };
            let list = write_image_list(&archives)?;
            let mut args = daemon_args(&list, release);
            for registry in request.pull_registries {
                args.extend(["--pull-registry".to_string(), registry]);
            }
            let info = daemon::up(&default_state_dir(), request.harness_exe, &args).await?;
            check_running_version(&info, release).await?;
            Ok(info)
        })
    }
}

/// Refuses a `harness up` cluster that was already running with another Kubernetes minor than
/// the one asked for (`daemon::up` returns a running cluster as it is).
async fn check_running_version(info: &daemon::ClusterInfo, release: &Release) -> Result<()> {
    let client = local_cluster::client_from_kubeconfig(&info.kubeconfig).await?;
    let running = client.apiserver_version().await?.git_version;
    if local_cluster::versions::minor_of(&running).as_deref() == Some(release.minor.as_str()) {
        return Ok(());
    }
    Err(UsageError(format!(
        "a local cluster of Kubernetes {running} is already up (daemon pid {}), not {} as asked: \
         stop it with `harness down` first",
        info.pid, release.minor
    ))
    .into())
}

/// Where `harness up` leaves the list of image archives for its daemon.
fn image_list_path() -> PathBuf {
    default_state_dir().join("image-archives.json")
}

/// Writes the list of image archives where `harness up` and the daemon can share it.
fn write_image_list(images: &[PathBuf]) -> Result<PathBuf> {
    let dir = default_state_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = image_list_path();
    std::fs::write(&path, serde_json::to_vec_pretty(images)?)?;
    Ok(path)
}

/// `harness down`: stops the `harness up` cluster, then removes the files the harness itself
/// left in the state directory, and the directory once empty.
pub(crate) async fn stop_daemon() -> Result<()> {
    let dir = default_state_dir();
    daemon::down(&dir).await?;
    match std::fs::remove_file(image_list_path()) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error).context("cannot remove the image archive list"),
    }
    // Only succeeds when empty (kept logs stay, with their directory).
    let _ = std::fs::remove_dir(&dir);
    Ok(())
}

/// Most bytes kept of each log by [`log_tails`] (its end).
const LOG_TAIL_BYTES: u64 = 512 * 1024;

/// The ends of the local cluster's logs in `state_dir` (the daemon's and each component's:
/// control plane, containerd, kubelet, kube-proxy), by file name; empty when no local cluster
/// left logs there.
pub(crate) fn log_tails(state_dir: &Path) -> Result<Vec<(String, String)>> {
    let layout = local_cluster::layout::StateLayout::new(state_dir);
    let mut logs = vec![layout.daemon_log()];
    if let Ok(entries) = std::fs::read_dir(layout.logs_dir()) {
        logs.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
    }
    logs.retain(|path| path.is_file());
    logs.sort();
    logs.iter()
        .map(|log| {
            let name = log.file_name().expect("a file has a name");
            let text = tail(log, LOG_TAIL_BYTES)
                .with_context(|| format!("cannot read {}", log.display()))?;
            Ok((name.to_string_lossy().into_owned(), text))
        })
        .collect()
}

fn tail(path: &Path, max: u64) -> std::io::Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(max)))?;
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_end_of_each_log() {
        let state = tempfile::tempdir().unwrap();
        std::fs::create_dir(state.path().join("logs")).unwrap();
        std::fs::write(state.path().join("daemon.log"), "daemon\n").unwrap();
        let long = "x".repeat(LOG_TAIL_BYTES as usize) + "end\n";
        std::fs::write(state.path().join("logs/kube-apiserver.log"), &long).unwrap();
        let logs = log_tails(state.path()).unwrap();
        assert_eq!(logs[0], ("daemon.log".to_string(), "daemon\n".to_string()));
        assert_eq!(logs[1].0, "kube-apiserver.log");
        assert_eq!(logs[1].1.len() as u64, LOG_TAIL_BYTES);
        assert!(logs[1].1.ends_with("end\n"));
    }

    #[test]
    fn no_cluster_no_logs() {
        let state = tempfile::tempdir().unwrap();
        assert!(log_tails(state.path()).unwrap().is_empty());
    }
}
