//! The process kubelet: a node agent that makes a real Kubernetes control plane run pods as
//! local processes in Linux namespaces (network, mount, UTS) on a harness-created bridge.
//!
//! [`run`] registers the Node, renews its Lease, serves container logs on `node_ip:10250`
//! and runs every pod bound to the node; [`cleanup_stale`] removes what a killed run left.
//! The process must run as root in the network namespace that holds the bridge.

pub mod backoff;
pub mod command;
pub mod config;
pub mod env;
pub mod ipam;
pub mod logs;
pub mod netns;
pub mod node;
pub mod probes;
pub mod records;
pub mod sandbox;
pub mod server;
pub mod status;
pub mod tokens;
mod worker;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use config::{ImageMap, Ipv4Cidr, KUBELET_PORT, KubeletConfig, LocalImage};
pub use records::cleanup_unrecorded_netns;

/// Removes what a killed earlier run left below `state_dir`: recorded pod processes (checked by
/// pid and start time), their netns and veths, mounts below `state_dir`, and the pod files.
pub fn cleanup_stale(state_dir: &Path) -> anyhow::Result<Vec<String>> {
    records::cleanup_stale(state_dir)
}

/// Runs the node until `shutdown` is cancelled, then stops every pod process (SIGTERM, short
/// grace, SIGKILL), deletes every netns, veth and file it created, and returns.
pub async fn run(
    client: kube::Client,
    config: KubeletConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    for (name, image) in &config.images {
        anyhow::ensure!(
            image.root.is_dir(),
            "image {name}: root {:?} is not a directory",
            image.root
        );
        anyhow::ensure!(
            image.mount_path.is_absolute(),
            "image {name}: mount_path {:?} is not absolute",
            image.mount_path
        );
    }
    let state_dir = std::path::absolute(&config.state_dir)?;
    let config = KubeletConfig {
        state_dir,
        ..config
    };
    std::fs::create_dir_all(records::pods_dir(&config.state_dir))
        .with_context(|| format!("cannot create state dir {:?}", config.state_dir))?;
    for removed in cleanup_stale(&config.state_dir)? {
        tracing::info!(%removed, "removed leftover of an earlier run");
    }
    let version = client
        .apiserver_version()
        .await
        .context("cannot read API server /version")?;
    let facts = node::HostFacts::gather(version.git_version);
    let tls = server::tls_config(&config.serving_cert_pem, &config.serving_key_pem)?;
    let addr = SocketAddr::from((config.node_ip, KUBELET_PORT));
    let tcp = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let node_uid = node::register(&client, &config, &facts).await?;

    let background = CancellationToken::new();
    let logs = Arc::new(server::LogRegistry::default());
    let server_task = tokio::spawn(server::serve(tcp, tls, logs.clone(), background.clone()));
    let heartbeat = tokio::spawn(node::heartbeat(
        client.clone(),
        config.clone(),
        facts,
        node_uid,
        background.clone(),
    ));
    let shared = Arc::new(worker::Shared {
        client: client.clone(),
        ipam: Mutex::new(ipam::IpAllocator::new(config.pod_cidr, config.node_ip)),
        config,
        logs,
    });
    let pods_dir = records::pods_dir(&shared.config.state_dir);
    let result = watch_pods(shared, shutdown).await;
    let _ = std::fs::remove_dir(&pods_dir);
    background.cancel();
    let _ = heartbeat.await;
    match server_task.await {
        Ok(Err(err)) => tracing::warn!(err = format!("{err:#}"), "kubelet server failed"),
        Err(err) => tracing::warn!(%err, "kubelet server panicked"),
        Ok(Ok(())) => {}
    }
    result
}

/// Watches the node's pods and keeps one worker per pod until shutdown.
async fn watch_pods(
    shared: Arc<worker::Shared>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::all(shared.client.clone());
    let selector = format!("spec.nodeName={}", shared.config.node_name);
    let mut stream = watcher(pods, watcher::Config::default().fields(&selector))
        .default_backoff()
        .boxed();
    let workers_stop = CancellationToken::new();
    let mut workers: HashMap<String, watch::Sender<Option<Pod>>> = HashMap::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut tasks: JoinSet<String> = JoinSet::new();
    let mut relist: Option<HashSet<String>> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Ok(uid) = done {
                    workers.remove(&uid);
                    finished.insert(uid);
                }
            }
            event = stream.next() => match event {
                None => break,
                Some(Err(err)) => tracing::warn!(%err, "pod watch error"),
                Some(Ok(watcher::Event::Init)) => relist = Some(HashSet::new()),
                Some(Ok(watcher::Event::InitApply(pod) | watcher::Event::Apply(pod))) => {
                    let Some(uid) = pod.metadata.uid.clone() else { continue };
                    if let Some(seen) = &mut relist {
                        seen.insert(uid.clone());
                    }
                    if finished.contains(&uid) {
                        continue;
                    }
                    match workers.get(&uid) {
                        Some(tx) => {
                            let _ = tx.send(Some(pod));
                        }
                        None => {
                            let (tx, rx) = watch::channel(Some(pod));
                            workers.insert(uid.clone(), tx);
                            let (shared, stop) = (shared.clone(), workers_stop.clone());
                            tasks.spawn(async move {
                                worker::run_pod(shared, rx, stop).await;
                                uid
                            });
                        }
                    }
                }
                Some(Ok(watcher::Event::Delete(pod))) => {
                    if let Some(tx) = pod.metadata.uid.as_ref().and_then(|uid| workers.get(uid)) {
                        let _ = tx.send(None);
                    }
                }
                Some(Ok(watcher::Event::InitDone)) => {
                    if let Some(seen) = relist.take() {
                        for (uid, tx) in &workers {
                            if !seen.contains(uid) {
                                let _ = tx.send(None);
                            }
                        }
                    }
                }
            }
        }
    }
    workers_stop.cancel();
    while tasks.join_next().await.is_some() {}
    Ok(())
}
