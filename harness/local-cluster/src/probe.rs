//! Health probes of the component processes (loopback, the bridge address, or a socket in the
//! state dir).

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::component::{Component, Health};
use crate::files::tail;
use crate::layout::StateLayout;
use crate::process::ProcessWatch;

/// How often a component's health endpoint is polled while it starts.
const POLL_INTERVAL: Duration = Duration::from_millis(40);

/// HTTP client trusting only the cluster CA, never using a proxy.
pub(crate) struct Prober {
    http: reqwest::Client,
    admin_token: String,
    layout: StateLayout,
}

/// Whether a health response body means healthy for `component`.
pub(crate) fn healthy_body(component: Component, body: &str) -> bool {
    match component {
        // etcd: {"health":"true","reason":""}
        Component::Etcd => body.replace(' ', "").contains("\"health\":\"true\""),
        // kube-proxy answers 200 with a JSON status once it synced its rules.
        Component::KubeProxy => true,
        _ => body.trim() == "ok",
    }
}

impl Prober {
    /// A prober for a cluster with CA `ca_pem` and admin bearer token `admin_token`.
    pub(crate) fn new(
        ca_pem: &str,
        admin_token: &str,
        layout: &StateLayout,
    ) -> anyhow::Result<Self> {
        let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).context("parsing the CA")?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .tls_certs_only([ca])
            .timeout(Duration::from_secs(2))
            .connect_timeout(Duration::from_millis(500))
            .build()
            .context("building the health-probe HTTP client")?;
        Ok(Self {
            http,
            admin_token: admin_token.to_string(),
            layout: layout.clone(),
        })
    }

    /// One probe of `component`'s health endpoint.
    pub(crate) async fn is_healthy(&self, component: Component) -> bool {
        let url = match component.health(&self.layout) {
            Health::Http(url) => url,
            Health::Socket(path) => return tokio::net::UnixStream::connect(path).await.is_ok(),
        };
        let mut request = self.http.get(url);
        if component == Component::ApiServer {
            request = request.bearer_auth(&self.admin_token);
        }
        let Ok(response) = request.send().await else {
            return false;
        };
        if !response.status().is_success() {
            return false;
        }
        response
            .text()
            .await
            .is_ok_and(|body| healthy_body(component, &body))
    }

    /// Polls until `process` is healthy; fails early when it exits, or after `timeout`, with
    /// the tail of its log. Returns how long it took.
    pub(crate) async fn wait_ready(
        &self,
        process: &ProcessWatch,
        started: Instant,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        let component = process.component();
        loop {
            if let Some(status) = process.exit_status() {
                bail!(
                    "{component} exited during start-up ({status}); last log lines of {}:\n{}",
                    process.log().display(),
                    tail(process.log(), 30)
                );
            }
            if self.is_healthy(component).await {
                return Ok(started.elapsed());
            }
            if started.elapsed() >= timeout {
                bail!(
                    "{component} not ready at {:?} after {:.0?}; last log lines of {}:\n{}",
                    component.health(&self.layout),
                    timeout,
                    process.log().display(),
                    tail(process.log(), 30)
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_healthy_bodies() {
        assert!(healthy_body(
            Component::Etcd,
            r#"{"health":"true","reason":""}"#
        ));
        assert!(!healthy_body(
            Component::Etcd,
            r#"{"health":"false","reason":"x"}"#
        ));
        assert!(healthy_body(Component::ApiServer, "ok"));
        assert!(!healthy_body(Component::ApiServer, "[-]etcd failed"));
    }
}
