//! The kubelet's HTTPS endpoint on `node_ip:10250`: `/containerLogs/{ns}/{pod}/{container}`
//! (what the API server's `pods/log` proxies to) and `/healthz`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::jiff::Timestamp;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::logs::{ByteBudget, FOLLOW_POLL, LogQuery, LogState, log_path, render, select};

/// One container's log location and progress.
#[derive(Clone)]
pub struct ContainerLogs {
    pub dir: PathBuf,
    pub state: watch::Receiver<LogState>,
}

/// A registered pod: its UID and its containers' logs by container name.
type PodLogs = (String, HashMap<String, ContainerLogs>);

/// Logs of the pods on this node, by namespace and name.
#[derive(Default)]
pub struct LogRegistry {
    pods: RwLock<HashMap<(String, String), PodLogs>>,
}

impl LogRegistry {
    /// Registers (or replaces) a pod's containers.
    pub fn insert(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        containers: HashMap<String, ContainerLogs>,
    ) {
        let mut pods = self.pods.write().expect("log registry lock");
        pods.insert(
            (namespace.to_owned(), name.to_owned()),
            (uid.to_owned(), containers),
        );
    }

    /// Forgets a pod (only if the registered one has this UID).
    pub fn remove(&self, namespace: &str, name: &str, uid: &str) {
        let mut pods = self.pods.write().expect("log registry lock");
        let key = (namespace.to_owned(), name.to_owned());
        if pods
            .get(&key)
            .is_some_and(|(registered, _)| registered == uid)
        {
            pods.remove(&key);
        }
    }

    fn lookup(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<ContainerLogs, (StatusCode, String)> {
        let pods = self.pods.read().expect("log registry lock");
        let (_, containers) = pods
            .get(&(namespace.to_owned(), pod.to_owned()))
            .ok_or_else(|| {
                (
                    StatusCode::NOT_FOUND,
                    format!("pod {namespace}/{pod} not found on this node"),
                )
            })?;
        containers.get(container).cloned().ok_or_else(|| {
            (
                StatusCode::NOT_FOUND,
                format!("container {container} is not valid for pod {pod}"),
            )
        })
    }
}

/// Builds the TLS server configuration (aws-lc-rs, no client auth).
pub fn tls_config(cert_pem: &str, key_pem: &str) -> anyhow::Result<ServerConfig> {
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("kubelet serving certificate is not valid PEM")?;
    anyhow::ensure!(
        !certs.is_empty(),
        "kubelet serving certificate PEM holds no certificate"
    );
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .context("kubelet serving key is not valid PEM")?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("kubelet serving certificate and key do not match")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Accepted TLS connections for `axum::serve`; handshakes run concurrently.
pub struct TlsListener {
    connections: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `tcp` until `shutdown`.
    pub fn new(
        tcp: TcpListener,
        config: ServerConfig,
        shutdown: CancellationToken,
    ) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let (tx, connections) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    accepted = tcp.accept() => match accepted {
                        Ok(pair) => pair,
                        Err(err) => {
                            tracing::warn!(%err, "kubelet server accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(err)) => tracing::debug!(%err, %peer, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { connections, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.connections.recv().await {
            Some(conn) => conn,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Serves until `shutdown`.
pub async fn serve(
    tcp: TcpListener,
    config: ServerConfig,
    registry: Arc<LogRegistry>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = TlsListener::new(tcp, config, shutdown.clone())?;
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs),
        )
        .with_state(registry);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}

async fn container_logs(
    State(registry): State<Arc<LogRegistry>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(query): Query<LogQuery>,
) -> Response {
    match open_logs(&registry, &namespace, &pod, &container, query).await {
        Ok(body) => ([(axum::http::header::CONTENT_TYPE, "text/plain")], body).into_response(),
        Err((code, message)) => (code, message).into_response(),
    }
}

async fn open_logs(
    registry: &LogRegistry,
    namespace: &str,
    pod: &str,
    container: &str,
    query: LogQuery,
) -> Result<Body, (StatusCode, String)> {
    let logs = registry.lookup(namespace, pod, container)?;
    let state = logs.state.borrow().clone();
    let bad = |m: String| (StatusCode::BAD_REQUEST, m);
    let index = match (state.current, query.previous) {
        (Some(current), false) => current,
        (Some(current), true) if current > 0 => current - 1,
        (_, true) => {
            return Err(bad(format!(
                "previous terminated container \"{container}\" in pod \"{pod}\" not found"
            )));
        }
        (None, false) => {
            let reason = state
                .waiting_reason
                .unwrap_or_else(|| "ContainerCreating".into());
            return Err(bad(format!(
                "container \"{container}\" in pod \"{pod}\" is waiting to start: {reason}"
            )));
        }
    };
    let since = query.since(Timestamp::now()).map_err(bad)?;
    let path = log_path(&logs.dir, index);
    let content = tokio::fs::read(&path).await.unwrap_or_default();
    let complete = content
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let mut budget = ByteBudget::new(query.limit_bytes);
    let first = budget.take(
        select(
            &String::from_utf8_lossy(&content[..complete]),
            &query,
            since,
        )
        .into_bytes(),
    );
    let follow = query.follow && !query.previous && state.running && !budget.exhausted();
    if !follow {
        return Ok(Body::from(first));
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let _ = tx.send(Ok(Bytes::from(first))).await;
    tokio::spawn(follow_log(
        path,
        complete,
        index,
        logs.state,
        query.timestamps,
        since,
        budget,
        tx,
    ));
    Ok(Body::from_stream(ReceiverStream::new(rx)))
}

#[allow(clippy::too_many_arguments)]
async fn follow_log(
    path: PathBuf,
    mut offset: usize,
    index: u32,
    mut state: watch::Receiver<LogState>,
    timestamps: bool,
    since: Option<Timestamp>,
    mut budget: ByteBudget,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    loop {
        let snapshot = state.borrow_and_update().clone();
        let content = tokio::fs::read(&path).await.unwrap_or_default();
        if let Some(end) = content
            .get(offset..)
            .and_then(|new| new.iter().rposition(|b| *b == b'\n'))
        {
            let chunk = String::from_utf8_lossy(&content[offset..offset + end + 1]).into_owned();
            offset += end + 1;
            let rendered = budget.take(render(chunk.lines(), timestamps, since).into_bytes());
            if !rendered.is_empty() && tx.send(Ok(Bytes::from(rendered))).await.is_err() {
                return;
            }
        }
        if budget.exhausted() || snapshot.current != Some(index) || !snapshot.running {
            return;
        }
        tokio::select! {
            changed = state.changed() => if changed.is_err() { return },
            _ = tx.closed() => return,
            _ = tokio::time::sleep(FOLLOW_POLL) => {}
        }
    }
}
