//! Readiness and liveness probes (tcpSocket, httpGet, grpc, exec) and their threshold logic.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::config::Ipv4Cidr;
use crate::sandbox::EnterExisting;

/// Counts consecutive results against a probe's thresholds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTracker {
    success_threshold: u32,
    failure_threshold: u32,
    successes: u32,
    failures: u32,
    passing: bool,
}

impl ProbeTracker {
    /// A tracker that starts failing (readiness) or passing (liveness).
    pub fn new(probe: &Probe, initially_passing: bool) -> Self {
        let threshold = |v: Option<i32>| u32::try_from(v.unwrap_or(1)).unwrap_or(1).max(1);
        Self {
            success_threshold: threshold(probe.success_threshold),
            failure_threshold: threshold(probe.failure_threshold.or(Some(3))),
            successes: 0,
            failures: 0,
            passing: initially_passing,
        }
    }

    /// Records a result; returns whether the verdict changed.
    pub fn record(&mut self, ok: bool) -> bool {
        let before = self.passing;
        if ok {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            if self.successes >= self.success_threshold {
                self.passing = true;
            }
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            if self.failures >= self.failure_threshold {
                self.passing = false;
            }
        }
        before != self.passing
    }

    /// The current verdict.
    pub fn passing(&self) -> bool {
        self.passing
    }
}

/// Probe timing from the spec (defaults as in Kubernetes).
pub fn timing(probe: &Probe) -> (Duration, Duration, Duration) {
    let secs = |v: Option<i32>, default: u64| {
        Duration::from_secs(v.and_then(|v| u64::try_from(v).ok()).unwrap_or(default))
    };
    (
        secs(probe.initial_delay_seconds, 0),
        secs(probe.period_seconds, 10).max(Duration::from_secs(1)),
        secs(probe.timeout_seconds, 1).max(Duration::from_secs(1)),
    )
}

/// Where probes are sent and how exec probes enter the container.
#[derive(Clone)]
pub struct ProbeTarget {
    pub pod_ip: Ipv4Addr,
    pub pod_cidr: Ipv4Cidr,
    pub container: Container,
    pub env: Vec<(String, String)>,
    pub exec: Option<Arc<EnterExisting>>,
}

/// Resolves a numeric or named container port.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("named port {name:?} not found in container")),
    }
}

/// The host to dial: the pod IP unless the probe names another address, which must be a pod
/// or loopback address (the network rule: never dial anything else).
pub fn probe_host(host: Option<&str>, target: &ProbeTarget) -> Result<Ipv4Addr, String> {
    match host.filter(|h| !h.is_empty()) {
        None => Ok(target.pod_ip),
        Some(h) => match h.parse::<Ipv4Addr>() {
            Ok(ip) if target.pod_cidr.contains(ip) || ip.is_loopback() => Ok(ip),
            _ => Err(format!(
                "probe host {h:?} is outside the pod network; refusing to dial it"
            )),
        },
    }
}

/// Runs one probe attempt; `Err` carries the failure message.
pub async fn run_once(
    probe: &Probe,
    target: &ProbeTarget,
    timeout: Duration,
) -> Result<(), String> {
    let attempt = async {
        if let Some(tcp) = &probe.tcp_socket {
            let host = probe_host(tcp.host.as_deref(), target)?;
            let port = resolve_port(&tcp.port, &target.container)?;
            tokio::net::TcpStream::connect((host, port))
                .await
                .map(drop)
                .map_err(|e| format!("dial {host}:{port}: {e}"))
        } else if let Some(http) = &probe.http_get {
            let host = probe_host(http.host.as_deref(), target)?;
            let port = resolve_port(&http.port, &target.container)?;
            let scheme = http
                .scheme
                .as_deref()
                .unwrap_or("HTTP")
                .to_ascii_lowercase();
            let path = http.path.as_deref().unwrap_or("/");
            let client = reqwest::Client::builder()
                .no_proxy()
                .timeout(timeout)
                .tls_danger_accept_invalid_certs(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| e.to_string())?;
            let mut request = client.get(format!("{scheme}://{host}:{port}{path}"));
            for header in http.http_headers.iter().flatten() {
                request = request.header(&header.name, &header.value);
            }
            let response = request
                .send()
                .await
                .map_err(|e| format!("HTTP probe failed: {e}"))?;
            let code = response.status().as_u16();
            if (200..400).contains(&code) {
                Ok(())
            } else {
                Err(format!("HTTP probe failed with statuscode: {code}"))
            }
        } else if let Some(grpc) = &probe.grpc {
            let port =
                u16::try_from(grpc.port).map_err(|_| format!("invalid port {}", grpc.port))?;
            grpc_check(
                target.pod_ip,
                port,
                grpc.service.clone().unwrap_or_default(),
                timeout,
            )
            .await
        } else if let Some(exec) = &probe.exec {
            exec_check(exec.command.clone().unwrap_or_default(), target, timeout).await
        } else {
            Err("probe has no handler".to_owned())
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("probe timed out after {timeout:?}")),
    }
}

async fn grpc_check(
    ip: Ipv4Addr,
    port: u16,
    service: String,
    timeout: Duration,
) -> Result<(), String> {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{ip}:{port}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(timeout)
        .timeout(timeout);
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("grpc dial {ip}:{port}: {e}"))?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest { service })
        .await
        .map_err(|e| format!("grpc health check: {e}"))?;
    let status = response.into_inner().status;
    if status == ServingStatus::Serving as i32 {
        Ok(())
    } else {
        Err(format!("service unhealthy (status {status})"))
    }
}

async fn exec_check(
    argv: Vec<String>,
    target: &ProbeTarget,
    timeout: Duration,
) -> Result<(), String> {
    let enter = target.exec.clone().ok_or("container is not running")?;
    let (program, args) = argv.split_first().ok_or("exec probe has no command")?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(target.env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    // SAFETY: `enter` only makes system calls on data prepared before fork.
    unsafe {
        command.pre_exec(move || enter.enter());
    }
    let mut child = command.spawn().map_err(|e| format!("exec probe: {e}"))?;
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("command exited with {status}")),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => {
            let _ = child.start_kill();
            Err("exec probe timed out".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ContainerPort, TCPSocketAction};

    use super::*;

    fn probe(success: Option<i32>, failure: Option<i32>) -> Probe {
        Probe {
            success_threshold: success,
            failure_threshold: failure,
            ..Default::default()
        }
    }

    #[test]
    fn readiness_needs_success_threshold_and_fails_after_failure_threshold() {
        let mut t = ProbeTracker::new(&probe(Some(2), Some(2)), false);
        assert!(!t.record(true));
        assert!(t.record(true));
        assert!(t.passing());
        assert!(!t.record(false));
        assert!(!t.record(true), "a success resets the failure count");
        assert!(!t.record(false));
        assert!(t.record(false));
        assert!(!t.passing());
    }

    #[test]
    fn default_failure_threshold_is_three() {
        let mut t = ProbeTracker::new(&probe(None, None), true);
        assert!(!t.record(false));
        assert!(!t.record(false));
        assert!(t.record(false));
    }

    #[test]
    fn timing_defaults() {
        let (delay, period, timeout) = timing(&Probe::default());
        assert_eq!(
            (delay, period, timeout),
            (
                Duration::ZERO,
                Duration::from_secs(10),
                Duration::from_secs(1)
            )
        );
    }

    fn target() -> ProbeTarget {
        ProbeTarget {
            pod_ip: Ipv4Addr::new(10, 244, 0, 9),
            pod_cidr: "10.244.0.0/24".parse().unwrap(),
            container: Container {
                ports: Some(vec![ContainerPort {
                    name: Some("grpc".into()),
                    container_port: 9090,
                    ..Default::default()
                }]),
                ..Default::default()
            },
            env: Vec::new(),
            exec: None,
        }
    }

    #[test]
    fn resolves_named_and_numeric_ports() {
        let t = target();
        assert_eq!(
            resolve_port(&IntOrString::String("grpc".into()), &t.container),
            Ok(9090)
        );
        assert_eq!(resolve_port(&IntOrString::Int(80), &t.container), Ok(80));
        assert!(resolve_port(&IntOrString::String("http".into()), &t.container).is_err());
    }

    #[test]
    fn refuses_hosts_outside_the_pod_network() {
        let t = target();
        assert_eq!(probe_host(None, &t), Ok(Ipv4Addr::new(10, 244, 0, 9)));
        assert_eq!(
            probe_host(Some("10.244.0.3"), &t),
            Ok(Ipv4Addr::new(10, 244, 0, 3))
        );
        assert!(probe_host(Some("8.8.8.8"), &t).is_err());
        assert!(probe_host(Some("example.com"), &t).is_err());
    }

    #[tokio::test]
    async fn tcp_probe_against_a_local_listener() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut t = target();
        t.pod_ip = Ipv4Addr::LOCALHOST;
        let tcp = |port| Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(port),
                host: None,
            }),
            ..Default::default()
        };
        assert_eq!(
            run_once(&tcp(i32::from(port)), &t, Duration::from_secs(1)).await,
            Ok(())
        );
        drop(listener);
        assert!(
            run_once(&tcp(i32::from(port)), &t, Duration::from_secs(1))
                .await
                .is_err()
        );
    }
}
