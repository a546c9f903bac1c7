//! The one place a [`BackendKind`] becomes the code that starts its clusters.
//!
//! `harness run`, `bench`, `up`, the preflight checks and the generated tests ask a
//! [`Provider`] what its backend can do and let it start clusters; none of them matches on the
//! kind. A new backend is its module (a `Provider` and a [`Backend`]) plus its line in
//! [`provider`].

use std::path::Path;

use anyhow::Result;
use futures::future::BoxFuture;

use super::{Backend, BackendKind, Lever, k3s, kubeconfig, local};
use crate::profile::Profile;

/// A started cluster: an admin client and what keeps it alive.
pub(crate) type Started = (kube::Client, Box<dyn Backend>);

/// A cluster ready to start: its images built and the backend's checks passed, so that a start
/// does nothing else (bench times only the start).
pub(crate) struct Prepared {
    /// The concrete backend (`auto` resolved).
    pub(crate) kind: BackendKind,
    /// The Kubernetes minor the cluster must run (`1.34`), checked once it answers; `None`:
    /// whatever it runs (a kubeconfig cluster nobody asked a version of).
    pub(crate) kubernetes_minor: Option<String>,
    /// Starts the cluster (with `keep`: one that outlives this process where the backend can).
    pub(crate) start: Box<dyn FnOnce(bool) -> BoxFuture<'static, Result<Started>> + Send>,
}

/// What a `harness up` daemon cluster needs.
pub(crate) struct UpRequest<'a> {
    /// The profile whose images the cluster gets.
    pub(crate) profile: &'a Profile,
    pub(crate) harness_exe: &'a Path,
    /// Loopback registries the node may pull from.
    pub(crate) pull_registries: Vec<String>,
    /// Import no image.
    pub(crate) no_images: bool,
}

/// How one backend starts clusters and what they offer.
pub(crate) trait Provider: Sync {
    /// The levers every cluster of this backend offers (known before one starts: the generated
    /// tests mark the others' cases ignored).
    fn levers(&self) -> &'static [Lever] {
        &[]
    }
    /// Why `--keep-cluster` cannot apply here, or `None`.
    fn refuses_keep(&self) -> Option<&'static str> {
        None
    }
    /// Why `harness bench` cannot measure this backend's clusters, or `None`.
    fn refuses_bench(&self) -> Option<&'static str> {
        None
    }
    /// Checks that the backend can run here and builds what its start needs.
    fn prepare<'a>(
        &'a self,
        profile: &'a Profile,
        harness_exe: &'a Path,
    ) -> BoxFuture<'a, Result<Prepared>>;
    /// Starts a cluster in the background (`harness up`) and returns how to reach it; backends
    /// that keep no background cluster refuse.
    fn up<'a>(
        &'a self,
        _request: UpRequest<'a>,
    ) -> BoxFuture<'a, Result<local_cluster::ClusterInfo>> {
        Box::pin(async {
            Err(crate::error::UsageError(
                "`harness up` keeps a local cluster running; use `--backend local`, or `harness run --keep-cluster` on this backend".into(),
            )
            .into())
        })
    }
}

/// The provider of `kind`: the one map from backend kinds to their code.
pub(crate) fn provider(kind: BackendKind) -> &'static dyn Provider {
    match kind {
        BackendKind::Auto => &Auto,
        BackendKind::Local => &local::LocalProvider,
        BackendKind::K3s => &k3s::K3sProvider,
        BackendKind::Kubeconfig => &kubeconfig::KubeconfigProvider,
    }
}

/// `auto`: k3s where a Docker engine holds its image, else local; decided when preparing.
struct Auto;

impl Provider for Auto {
    fn prepare<'a>(
        &'a self,
        profile: &'a Profile,
        harness_exe: &'a Path,
    ) -> BoxFuture<'a, Result<Prepared>> {
        Box::pin(async move {
            let kind = BackendKind::Auto
                .resolve(profile.kubernetes_release())
                .await;
            provider(kind).prepare(profile, harness_exe).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_local_backend_offers_levers() {
        assert_eq!(
            provider(BackendKind::Local).levers(),
            &[Lever::ControlPlane, Lever::ContainerRuntime]
        );
        for kind in [BackendKind::K3s, BackendKind::Kubeconfig, BackendKind::Auto] {
            assert!(provider(kind).levers().is_empty(), "{kind:?}");
        }
    }

    #[test]
    fn only_the_kubeconfig_backend_refuses_keep_and_bench() {
        let kubeconfig = provider(BackendKind::Kubeconfig);
        assert!(kubeconfig.refuses_keep().is_some());
        assert!(kubeconfig.refuses_bench().is_some());
        for kind in [BackendKind::Local, BackendKind::K3s, BackendKind::Auto] {
            assert!(provider(kind).refuses_keep().is_none(), "{kind:?}");
            assert!(provider(kind).refuses_bench().is_none(), "{kind:?}");
        }
    }
}
