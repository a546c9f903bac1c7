//! Loopback listeners that forward to pod ports through kube-rs port-forward.
//!
//! For each (namespace, pod, port) a listener on `127.0.0.1:0` is bound on first use and
//! cached. Every accepted connection opens its own port-forward stream to the pod through the API
//! server and copies bytes both ways, so HTTP, gRPC and anything else over TCP work. Listeners and
//! open connections stop when the [`PortForwarder`] is dropped.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::{CancellationToken, DropGuard};

/// How long a finished connection waits for its port-forward stream to close cleanly.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Which pod port a listener forwards to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Target {
    namespace: String,
    pod: String,
    port: u16,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}:{}", self.namespace, self.pod, self.port)
    }
}

/// Hands out loopback addresses forwarding to pod ports.
pub(crate) struct PortForwarder {
    client: kube::Client,
    listeners: Mutex<HashMap<Target, SocketAddr>>,
    /// Cancels every listener and connection task when the forwarder is dropped.
    stop: CancellationToken,
    _stop_on_drop: DropGuard,
}

impl PortForwarder {
    /// A forwarder using `client`.
    pub(crate) fn new(client: kube::Client) -> Self {
        let stop = CancellationToken::new();
        PortForwarder {
            client,
            listeners: Mutex::default(),
            _stop_on_drop: stop.clone().drop_guard(),
            stop,
        }
    }

    /// A loopback address whose connections reach `port` of `pod` (the same address for the
    /// same target on every call).
    pub(crate) async fn local_addr(
        &self,
        namespace: &str,
        pod: &str,
        port: u16,
    ) -> Result<SocketAddr> {
        let target = Target {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            port,
        };
        let mut listeners = self
            .listeners
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(addr) = listeners.get(&target) {
            return Ok(*addr);
        }
        // Binding loopback does not block; a std listener lets the lock stay synchronous.
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
            .and_then(TcpListener::from_std)
            .with_context(|| format!("port-forward {target}: cannot bind a loopback listener"))?;
        let addr = listener.local_addr()?;
        tracing::debug!(%target, %addr, "port-forward listening");
        let pods = Api::<Pod>::namespaced(self.client.clone(), namespace);
        tokio::spawn(accept_loop(
            listener,
            pods,
            target.clone(),
            self.stop.clone(),
        ));
        listeners.insert(target, addr);
        Ok(addr)
    }
}

/// Accepts connections until `stop`, forwarding each in its own task.
async fn accept_loop(
    listener: TcpListener,
    pods: Api<Pod>,
    target: Target,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((connection, peer)) => {
                let (pods, target, stop) = (pods.clone(), target.clone(), stop.clone());
                tokio::spawn(async move {
                    if let Err(error) = forward_connection(connection, &pods, &target, &stop).await
                    {
                        tracing::warn!(%target, %peer, "port-forward connection failed: {error:#}");
                    }
                });
            }
            Err(error) => {
                // Accept errors (e.g. too many open files) are transient: log and go on.
                tracing::warn!(%target, "port-forward accept failed: {error}");
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
    tracing::debug!(%target, "port-forward listener stopped");
}

/// Copies bytes between `connection` and a new port-forward stream to the target until either
/// side closes, the pod reports an error, or `stop`.
async fn forward_connection(
    mut connection: TcpStream,
    pods: &Api<Pod>,
    target: &Target,
    stop: &CancellationToken,
) -> Result<()> {
    let ports = [target.port];
    let mut forwarder = tokio::select! {
        () = stop.cancelled() => return Ok(()),
        forwarder = pods.portforward(&target.pod, &ports) => forwarder
            .with_context(|| format!("cannot open a port-forward to {target}"))?,
    };
    let mut upstream = forwarder
        .take_stream(target.port)
        .ok_or_else(|| anyhow!("port-forward to {target} returned no stream"))?;
    let pod_error = forwarder.take_error(target.port);
    let pod_error = async move {
        match pod_error {
            Some(error) => error.await,
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        () = stop.cancelled() => Ok(()),
        copied = tokio::io::copy_bidirectional(&mut connection, &mut upstream) => copied
            .map(|(sent, received)| tracing::trace!(%target, sent, received, "port-forward connection closed"))
            .with_context(|| format!("copying to or from {target} failed")),
        Some(message) = pod_error => Err(anyhow!("{target} reported: {message}")),
    };
    drop(upstream);
    if outcome.is_ok() && !stop.is_cancelled() {
        match tokio::time::timeout(CLOSE_TIMEOUT, forwarder.join()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::debug!(%target, "port-forward stream ended with: {error}"),
            Err(_) => {
                tracing::debug!(%target, "port-forward stream did not close within {CLOSE_TIMEOUT:?}")
            }
        }
    } else {
        forwarder.abort();
    }
    outcome
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::io::AsyncReadExt;

    use super::*;

    /// A client whose API server refuses connections (the port was just released).
    fn client_without_server() -> kube::Client {
        let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}").parse().unwrap();
        kube::Client::try_from(kube::Config::new(url)).unwrap()
    }

    #[test]
    fn forwarder_is_shareable_between_tasks() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<PortForwarder>();
    }

    #[tokio::test]
    async fn one_loopback_listener_per_target() {
        let forwarder = PortForwarder::new(client_without_server());
        let a = forwarder.local_addr("ns", "pod-a", 9090).await.unwrap();
        assert!(a.ip().is_loopback() && a.port() != 0, "{a}");
        assert_eq!(forwarder.local_addr("ns", "pod-a", 9090).await.unwrap(), a);
        let other_port = forwarder.local_addr("ns", "pod-a", 8080).await.unwrap();
        let other_pod = forwarder.local_addr("ns", "pod-b", 9090).await.unwrap();
        let other_namespace = forwarder.local_addr("other", "pod-a", 9090).await.unwrap();
        let mut ports = vec![
            a.port(),
            other_port.port(),
            other_pod.port(),
            other_namespace.port(),
        ];
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 4, "{ports:?}");
    }

    #[tokio::test]
    async fn failed_forward_closes_the_connection_and_keeps_listening() {
        let forwarder = PortForwarder::new(client_without_server());
        let addr = forwarder.local_addr("ns", "pod", 9090).await.unwrap();
        for _ in 0..2 {
            let mut connection = TcpStream::connect(addr).await.unwrap();
            let mut buffer = [0u8; 16];
            let read = tokio::time::timeout(Duration::from_secs(10), connection.read(&mut buffer))
                .await
                .expect("the connection must be closed when the API server cannot be reached");
            // Closed (EOF) or reset: either way no bytes arrive.
            assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        }
    }

    #[tokio::test]
    async fn dropping_the_forwarder_stops_its_listeners() {
        let forwarder = PortForwarder::new(client_without_server());
        let addr = forwarder.local_addr("ns", "pod", 9090).await.unwrap();
        TcpStream::connect(addr)
            .await
            .expect("listening while the forwarder lives");
        drop(forwarder);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match TcpStream::connect(addr).await {
                Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => break,
                _ if Instant::now() < deadline => tokio::task::yield_now().await,
                other => panic!("listener still accepting after drop: {other:?}"),
            }
        }
    }
}
