//! An existing cluster, reached through KUBECONFIG (or in-cluster config).

use std::path::Path;

use anyhow::{Context, Result};
use futures::future::BoxFuture;

use super::provider::{Prepared, Provider};
use super::{Backend, BackendKind, External};
use crate::profile::Profile;

/// The kubeconfig backend: a cluster the harness neither starts nor stops.
pub(crate) struct KubeconfigProvider;

impl Provider for KubeconfigProvider {
    fn refuses_keep(&self) -> Option<&'static str> {
        Some(
            "conflicting options: --keep-cluster with --backend kubeconfig (the harness never stops an existing cluster); --keep-cluster applies to the local, k3s and auto backends",
        )
    }

    fn refuses_bench(&self) -> Option<&'static str> {
        Some(
            "`harness bench` measures clusters it starts itself (their start time, their unrelated pods, its baseline image): use --backend local, or --backend k3s where a Docker engine runs; the kubeconfig backend's cluster is not the harness's to measure",
        )
    }

    /// The cluster runs what it runs; a Kubernetes version the profile or `--kubernetes-version`
    /// asks for is checked against it once connected.
    fn prepare<'a>(&'a self, profile: &'a Profile, _: &'a Path) -> BoxFuture<'a, Result<Prepared>> {
        Box::pin(async {
            Ok(Prepared {
                kind: BackendKind::Kubeconfig,
                kubernetes_minor: profile
                    .kubernetes_version
                    .is_some()
                    .then(|| profile.kubernetes_release().minor.clone()),
                start: Box::new(|_keep| {
                    Box::pin(async {
                        Ok((connect().await?, Box::new(External) as Box<dyn Backend>))
                    })
                }),
            })
        })
    }
}

/// Connects with the standard kubeconfig search (KUBECONFIG, ~/.kube/config, in-cluster).
async fn connect() -> Result<kube::Client> {
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
