//! An existing cluster, reached through KUBECONFIG (or in-cluster config).

use anyhow::{Context, Result};

/// Connects with the standard kubeconfig search (KUBECONFIG, ~/.kube/config, in-cluster).
pub async fn connect() -> Result<kube::Client> {
    let config = kube::Config::infer().await.context(
        "backend kubeconfig: no usable kubeconfig (set KUBECONFIG, or use --backend local / k3s)",
    )?;
    let client =
        kube::Client::try_from(config).context("backend kubeconfig: cannot build a client")?;
    client
        .apiserver_version()
        .await
        .context("backend kubeconfig: the API server from KUBECONFIG does not answer")?;
    Ok(client)
}
