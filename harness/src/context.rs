//! What a case works with: the cluster, the profile, and ways to reach the services.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::cluster::Cluster;
use crate::pods;
use crate::profile::{Profile, ServiceSpec};
use crate::secrets::KnownSecrets;
use crate::stability::{Stability, StabilityWatch, Termination};
use crate::wait::wait_until;

/// A restore a case registered: what it restores, and how.
pub(crate) type Cleanup = Box<dyn for<'a> FnOnce(&'a Ctx) -> BoxFuture<'a, Result<()>> + Send>;

/// Shared state of a conformance run.
pub struct Ctx {
    /// The cluster under test.
    pub cluster: Cluster,
    /// The implementation's profile, without its feature declarations: a case's verdict never
    /// depends on what else the profile claims (CONTRACT.md §8).
    pub profile: Profile,
    /// Secrets known to the run (redacted from everything it writes).
    pub secrets: KnownSecrets,
    http: reqwest::Client,
    stability: Option<StabilityWatch>,
    /// Restores registered by the running case, run last-in first-out by the runner.
    cleanups: Mutex<Vec<(String, Cleanup)>>,
}

impl Ctx {
    /// A context for cases: `profile` on `cluster`, its declarations left out.
    pub fn new(cluster: Cluster, mut profile: Profile) -> Result<Ctx> {
        profile.features.clear();
        Ctx::with_declarations(cluster, profile)
    }

    /// A context that keeps the profile's declarations: for `harness bench`, which measures
    /// only what the profile declares; never given to a case.
    pub(crate) fn with_declarations(cluster: Cluster, profile: Profile) -> Result<Ctx> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .no_proxy()
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Ctx {
            cluster,
            secrets: KnownSecrets::for_profile(&profile),
            profile,
            http,
            stability: None,
            cleanups: Mutex::new(Vec::new()),
        })
    }

    /// Registers a restore of what the running case is about to change. It runs after the case's
    /// body, whether the body passed, failed, panicked or ran out of time, with its own deadline;
    /// a restore that fails is reported. A second registration under the same `what` is ignored.
    pub fn on_cleanup<F>(&self, what: &str, restore: F)
    where
        F: for<'a> FnOnce(&'a Ctx) -> BoxFuture<'a, Result<()>> + Send + 'static,
    {
        let mut cleanups = self.cleanups.lock().unwrap_or_else(|p| p.into_inner());
        if !cleanups.iter().any(|(known, _)| known == what) {
            cleanups.push((what.to_string(), Box::new(restore)));
        }
    }

    /// Takes the registered restores, newest first.
    pub(crate) fn take_cleanups(&self) -> Vec<(String, Cleanup)> {
        let mut cleanups = self.cleanups.lock().unwrap_or_else(|p| p.into_inner());
        let mut taken = std::mem::take(&mut *cleanups);
        taken.reverse();
        taken
    }

    /// Starts watching the implementation's pods for crashes (see [`crate::stability`]);
    /// what is seen before the first case is labelled `phase`.
    pub async fn watch_stability(&mut self, phase: &str) -> Result<()> {
        self.stability = Some(StabilityWatch::start(&self.client(), &self.profile, phase).await?);
        Ok(())
    }

    /// The cluster, once the run is over.
    pub fn into_cluster(self) -> Cluster {
        self.cluster
    }

    /// Ends the crash watch (before the cluster stops, so it does not report the stop).
    pub fn stop_stability_watch(&mut self) {
        self.stability = None;
    }

    /// Marks restarts of `service`'s pods as caused on purpose by the running case.
    pub fn expect_restarts(&self, service: &ServiceSpec) {
        if let Some(watch) = &self.stability {
            watch.expect_restarts(&service.deployment);
        }
    }

    /// Begins a phase of the run for the crash watch (containers that finish from now on
    /// belong to it); `is_case` when it is a case, named by its ID.
    pub fn set_stability_phase(&self, phase: &str, is_case: bool) {
        if let Some(watch) = &self.stability {
            watch.set_phase(phase, is_case);
        }
    }

    /// Unexpected container exits or restarts since the last call (none when not watching).
    pub async fn unexpected_terminations(&self) -> Vec<Termination> {
        match &self.stability {
            Some(watch) => watch.take_unexpected().await,
            None => Vec::new(),
        }
    }

    /// Changes each time the crash watch sees a termination no case caused on purpose (none
    /// when not watching).
    pub(crate) fn unexpected_seen(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.stability.as_ref().map(StabilityWatch::unexpected_seen)
    }

    /// The run's stability record for the reports.
    pub fn stability(&self) -> Stability {
        self.stability
            .as_ref()
            .map(StabilityWatch::stability)
            .unwrap_or_default()
    }

    /// Admin client of the cluster.
    pub fn client(&self) -> kube::Client {
        self.cluster.client()
    }

    /// Namespace of the services.
    pub fn namespace(&self) -> &str {
        &self.profile.namespace
    }

    /// The HTTP client for requests to the services.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Ready pods of a service, failing when there are none.
    pub async fn ready_pods(&self, service: &ServiceSpec) -> Result<Vec<Pod>> {
        let pods = pods::ready_pods(&self.client(), self.namespace(), service).await?;
        if pods.is_empty() {
            bail!("deployment {} has no ready pod", service.deployment);
        }
        Ok(pods)
    }

    /// An address reaching `port` of `pod`.
    pub async fn pod_addr(&self, pod: &Pod, port: u16) -> Result<SocketAddr> {
        let ip = pods::pod_ip(pod).with_context(|| format!("pod {} has no IP", pod.name_any()))?;
        self.cluster
            .pod_addr(self.namespace(), &pod.name_any(), ip, port)
            .await
    }

    /// Base URL of the admin service's HTTP server on its first ready pod.
    pub async fn admin_http_base(&self) -> Result<String> {
        let admin = &self.profile.services.admin;
        let port = admin
            .http_port
            .context("the profile gives the admin service no httpPort")?;
        let pod = self.ready_pods(admin).await?.remove(0);
        Ok(format!("http://{}", self.pod_addr(&pod, port).await?))
    }

    /// A gRPC channel to a service's first ready pod.
    pub async fn grpc_channel(&self, service: &ServiceSpec) -> Result<Channel> {
        let pod = self.ready_pods(service).await?.remove(0);
        self.grpc_channel_to(&pod, service.grpc_port).await
    }

    /// A gRPC channel to `port` of a given pod.
    pub async fn grpc_channel_to(&self, pod: &Pod, port: u16) -> Result<Channel> {
        connect_grpc(self.pod_addr(pod, port).await?, &pod.name_any()).await
    }

    /// Waits, within the profile's step timeout, until `service`'s Deployment has rolled out.
    pub(crate) async fn wait_rolled_out(&self, service: &ServiceSpec) -> Result<()> {
        let step = self.profile.timeouts.step;
        crate::deploy::wait_rolled_out(&self.client(), self.namespace(), &service.deployment, step)
            .await
    }

    /// Waits, within the profile's step timeout, until every pod of `service` is registered
    /// and serving again (after a disruption, before a case asserts).
    pub(crate) async fn wait_in_service(&self, service: &ServiceSpec) -> Result<()> {
        let step = self.profile.timeouts.step;
        pods::wait_registered(&self.client(), &self.profile, service, step).await?;
        self.wait_serving(service, step).await
    }

    /// Waits until every Running pod of `service` answers grpc.health.v1 SERVING for `""`:
    /// without readiness probes a pod is Ready before it listens, so after a disruption a
    /// case waits for this before asserting.
    pub async fn wait_serving(&self, service: &ServiceSpec, deadline: Duration) -> Result<()> {
        wait_until(
            deadline,
            &format!("every running {} pod to serve", service.name),
            || async {
                let running = pods::running_pods(&self.client(), self.namespace(), service).await?;
                if running.is_empty() {
                    bail!("no running pod of deployment {}", service.deployment);
                }
                for pod in &running {
                    let channel = self.grpc_channel_to(pod, service.grpc_port).await?;
                    let status = HealthClient::new(channel)
                        .check(HealthCheckRequest {
                            service: String::new(),
                        })
                        .await
                        .with_context(|| format!("health check of pod {}", pod.name_any()))?
                        .into_inner()
                        .status();
                    if status != ServingStatus::Serving {
                        bail!("pod {} is {status:?}", pod.name_any());
                    }
                }
                Ok(Some(()))
            },
        )
        .await
    }

    /// The whole log of a pod.
    pub async fn logs(&self, pod: &Pod) -> Result<String> {
        pods::logs(&self.client(), self.namespace(), &pod.name_any()).await
    }
}

/// A gRPC channel to `addr` (of pod `pod`, named in the error).
pub(crate) async fn connect_grpc(addr: SocketAddr, pod: &str) -> Result<Channel> {
    Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .with_context(|| format!("cannot connect gRPC to pod {pod} at {addr}"))
}
