//! Runs the process kubelet against an existing API server, for manual testing:
//! `local_node <kubeconfig> <config.json>` where config.json holds the [`KubeletConfig`]
//! fields plus `ca_cert_file`, `serving_cert_file`, `serving_key_file`. Ctrl-C stops it.

use std::path::PathBuf;

use anyhow::Context;
use process_kubelet::{ImageMap, KubeletConfig};
use serde::Deserialize;

#[derive(Deserialize)]
struct FileConfig {
    node_name: String,
    node_ip: std::net::Ipv4Addr,
    pod_cidr: process_kubelet::Ipv4Cidr,
    bridge: String,
    state_dir: PathBuf,
    images: ImageMap,
    api_server_host: String,
    api_server_port: u16,
    ca_cert_file: PathBuf,
    serving_cert_file: PathBuf,
    serving_key_file: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter("info,process_kubelet=debug")
        .init();
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() == 3,
        "usage: local_node <kubeconfig> <config.json>"
    );
    let kubeconfig = kube::config::Kubeconfig::read_from(&args[1])?;
    let client_config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    let client = kube::Client::try_from(client_config)?;
    let file: FileConfig =
        serde_json::from_slice(&std::fs::read(&args[2])?).context("config.json")?;
    let read = |p: &PathBuf| std::fs::read_to_string(p).with_context(|| format!("{p:?}"));
    let config = KubeletConfig {
        ca_cert_pem: read(&file.ca_cert_file)?,
        serving_cert_pem: read(&file.serving_cert_file)?,
        serving_key_pem: read(&file.serving_key_file)?,
        node_name: file.node_name,
        node_ip: file.node_ip,
        pod_cidr: file.pod_cidr,
        bridge: file.bridge,
        state_dir: file.state_dir,
        images: file.images,
        api_server_host: file.api_server_host,
        api_server_port: file.api_server_port,
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal");
        tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
        trigger.cancel();
    });
    process_kubelet::run(client, config, shutdown).await
}
