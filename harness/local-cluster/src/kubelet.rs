//! The process kubelet as a task of the cluster: its configuration, start and stop.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use process_kubelet::{ImageMap, KubeletConfig};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::layout::{API_SERVER_PORT, BRIDGE, NODE_IP, NODE_POD_CIDR, StateLayout};
use crate::pki::Pki;
use crate::process::report_failure;

/// The kubelet configuration for this cluster.
pub fn config(layout: &StateLayout, node_name: &str, pki: &Pki, images: ImageMap) -> KubeletConfig {
    KubeletConfig {
        node_name: node_name.to_string(),
        node_ip: NODE_IP,
        pod_cidr: NODE_POD_CIDR
            .parse()
            .expect("NODE_POD_CIDR is a valid CIDR"),
        bridge: BRIDGE.to_string(),
        state_dir: layout.kubelet_dir(),
        images,
        api_server_host: NODE_IP.to_string(),
        api_server_port: API_SERVER_PORT,
        ca_cert_pem: pki.ca.cert_pem.clone(),
        serving_cert_pem: pki.kubelet.cert_pem.clone(),
        serving_key_pem: pki.kubelet.key_pem.clone(),
    }
}

/// The running kubelet task.
pub struct KubeletTask {
    cancel: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl KubeletTask {
    /// Starts the kubelet with the node's `client`; reports on `failures` if it ends without
    /// being asked to.
    pub fn start(
        client: kube::Client,
        config: KubeletConfig,
        failures: watch::Sender<Option<String>>,
    ) -> Self {
        let cancel = CancellationToken::new();
        let token = cancel.clone();
        let task = tokio::spawn(async move {
            let result = process_kubelet::run(client, config, token.clone()).await;
            if !token.is_cancelled() {
                let why = match &result {
                    Ok(()) => "returned".to_string(),
                    Err(err) => format!("failed: {err:#}"),
                };
                report_failure(&failures, || format!("the kubelet {why}"));
            }
            result
        });
        Self { cancel, task }
    }

    /// Asks the kubelet to stop its pods and exit; waits up to `timeout`.
    pub async fn stop(self, timeout: Duration) -> anyhow::Result<()> {
        self.cancel.cancel();
        let mut task = self.task;
        match tokio::time::timeout(timeout, &mut task).await {
            Ok(joined) => joined.context("the kubelet task panicked")?,
            Err(_) => {
                task.abort();
                anyhow::bail!("the kubelet did not stop within {timeout:?}")
            }
        }
    }

    /// Cancels and aborts without waiting (drop paths).
    pub fn abort(&self) {
        self.cancel.cancel();
        self.task.abort();
    }
}

/// Removes the pods, namespaces and mounts a killed kubelet recorded in `dir`. (Unrecorded
/// `gmc-*` namespaces are left alone: the kubelet's own tests may be creating them.)
pub fn cleanup_stale(dir: &Path) -> anyhow::Result<Vec<String>> {
    process_kubelet::cleanup_stale(dir)
}
