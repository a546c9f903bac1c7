//! End-to-end test of [`LocalCluster`] with the real control plane and node.
//!
//! Needs root and the built binaries, so it is `#[ignore]`d for plain `cargo test`; ci/test.sh
//! runs it (nextest `--run-ignored only`). By hand:
//!
//!     cargo test -p local-cluster --test cluster -- --ignored --nocapture
//!
//! It skips with a printed reason (not a pass) when not root or the binaries are missing;
//! GOMICRO_LOCAL_E2E_REQUIRED=1 turns such a skip into a failure (CI).

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{HostBefore, TIMEOUT, assert_nothing_left, kubectl, kubectl_until, should_run};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Client};
use local_cluster::{Component, LocalCluster, layout};

const STATE_DIR: &str = "/run/gomicro-conformance-e2e";

fn pod_is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Waits for a Ready sleeper pod that is not `except` and not terminating; returns it.
async fn ready_pod(pods: &Api<Pod>, except: Option<&str>) -> Pod {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let list = pods
            .list(&ListParams::default().labels("app=sleeper"))
            .await
            .unwrap();
        let found = list.items.into_iter().find(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.metadata.uid.as_deref() != except
                && pod_is_ready(p)
        });
        if let Some(pod) = found {
            return pod;
        }
        assert!(
            Instant::now() < deadline,
            "no Ready sleeper pod within {TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn pod_ip(pod: &Pod) -> Ipv4Addr {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .expect("pod has an IP")
        .parse()
        .expect("pod IP is IPv4")
}

async fn check_deployment_lifecycle(cluster: &LocalCluster, client: Client) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let deployment: Deployment = serde_json::from_value(common::sleeper_deployment()).unwrap();
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("creating the Deployment right after start (default SA must exist)");

    let first = ready_pod(&pods, None).await;
    let name = first.metadata.name.clone().unwrap();
    let ip = pod_ip(&first);
    assert_eq!(
        ip.octets()[..3],
        [10, 244, 0],
        "pod IP {ip} outside 10.244.0.0/24"
    );
    let available = await_condition(deployments.clone(), "sleeper", |d: Option<&Deployment>| {
        d.and_then(|d| d.status.as_ref())
            .and_then(|s| s.available_replicas)
            == Some(1)
    });
    tokio::time::timeout(TIMEOUT, available)
        .await
        .expect("Deployment available in time")
        .unwrap();

    kubectl_until(
        &cluster.kubectl(),
        cluster.kubeconfig_path(),
        &["logs", &name],
        &format!("hello from {name}"),
    )
    .await;

    pods.delete(&name, &DeleteParams::default()).await.unwrap();
    let replacement = ready_pod(&pods, first.metadata.uid.as_deref()).await;
    assert_ne!(replacement.metadata.name, first.metadata.name);
    // Ports joined and left; the bridge kept its fixed MAC, so pods' neighbour entries hold.
    let link = std::process::Command::new("ip")
        .args(["-br", "link", "show", "dev", layout::BRIDGE])
        .output()
        .unwrap();
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(
        link.contains(layout::BRIDGE_MAC),
        "bridge MAC changed: {link}"
    );
    assert_eq!(pod_ip(&replacement).octets()[..3], [10, 244, 0]);
    eprintln!(
        "[e2e] pod {name} ({ip}) replaced by {} ({})",
        replacement.metadata.name.as_deref().unwrap_or("?"),
        pod_ip(&replacement)
    );
}

async fn check_component_restarts(cluster: &LocalCluster) {
    for component in [Component::Etcd, Component::ApiServer] {
        cluster.restart(component).await.unwrap();
        let pods: Api<Pod> = Api::namespaced(cluster.client().await.unwrap(), "default");
        let list = pods.list(&ListParams::default()).await.unwrap();
        assert!(
            !list.items.is_empty(),
            "pods still listed after restarting {component}"
        );
    }
}

/// An HTTP client trusting only the CA in `ca_file`.
fn client_trusting(ca_file: &Path) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca_file).unwrap()).unwrap();
    reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([ca])
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// The error etcd's client port gives a TLS client trusting etcd's CA, with the client
/// certificate and key `identity` or none: the handshake, or the first read after it (TLS 1.3
/// checks the client's certificate last), fails with the server's alert.
async fn etcd_refusal(ca_file: &Path, identity: Option<(PathBuf, PathBuf)>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto};
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca_file).unwrap())
        .unwrap();
    let config =
        ClientConfig::builder_with_provider(Arc::new(crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => config
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_file(cert).unwrap()],
                PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
        None => config.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", layout::ETCD_CLIENT_PORT))
        .await
        .unwrap();
    let exchange = async {
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await?;
        tls.write_all(b"GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await?;
        let mut answer = Vec::new();
        tls.read_to_end(&mut answer).await?;
        std::io::Result::Ok(String::from_utf8_lossy(&answer).into_owned())
    };
    match tokio::time::timeout(Duration::from_secs(5), exchange).await {
        Ok(Err(error)) => error.to_string(),
        Ok(Ok(answer)) => panic!("etcd answered: {answer}"),
        Err(_) => panic!("etcd neither answered nor refused within 5 s"),
    }
}

/// Nobody gets in without credentials: etcd hangs up on plain HTTP and refuses a TLS client
/// without a certificate or with one of the cluster CA (only the API server's, of etcd's own
/// CA, is accepted); the API server refuses a request without a token or a client
/// certificate; keys and kubeconfigs are readable by root only.
async fn check_nobody_gets_in(cluster: &LocalCluster) {
    use std::os::unix::fs::MetadataExt;
    let files = layout::StateLayout::new(cluster.state_dir());
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    let error = plain
        .get(format!(
            "http://127.0.0.1:{}/version",
            layout::ETCD_CLIENT_PORT
        ))
        .send()
        .await
        .expect_err("etcd answered plain HTTP");
    let error = format!("{error}: {:?}", std::error::Error::source(&error));
    eprintln!("[e2e] etcd over plain HTTP: {error}");
    assert!(error.contains("IncompleteMessage"), "{error}");
    let error = etcd_refusal(&files.pki("etcd-ca.crt"), None).await;
    eprintln!("[e2e] etcd without a client certificate: {error}");
    assert_eq!(error, "received fatal alert: CertificateRequired");
    let kubelet = (
        files.pki("kubelet-client.crt"),
        files.pki("kubelet-client.key"),
    );
    let error = etcd_refusal(&files.pki("etcd-ca.crt"), Some(kubelet)).await;
    eprintln!("[e2e] etcd with the kubelet's client certificate (cluster CA): {error}");
    assert_eq!(error, "received fatal alert: UnknownCA");

    let anonymous = client_trusting(&files.pki("ca.crt"));
    for path in ["/api/v1/namespaces/kube-system/secrets", "/version"] {
        let answer = anonymous
            .get(format!("{}{path}", cluster.api_server_url()))
            .send()
            .await
            .unwrap();
        let status = answer.status();
        let text = answer.text().await.unwrap();
        eprintln!("[e2e] API server {path} without credentials: {status} {text}");
        assert_eq!(status, 401, "{path}: {text}");
        assert!(
            text.contains(r#""reason":"Unauthorized""#),
            "{path}: {text}"
        );
    }

    for file in [
        files.pki("ca.key"),
        files.pki("etcd-server.key"),
        files.pki("apiserver-etcd-client.key"),
        files.token_file(),
        cluster.kubeconfig_path().to_path_buf(),
        files.kubeconfig("kubelet"),
    ] {
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(
            (meta.mode() & 0o777, meta.uid()),
            (0o600, 0),
            "{}",
            file.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and the built control plane; see the module docs"]
async fn local_cluster_runs_a_deployment_and_leaves_nothing_behind() {
    if !should_run("local_cluster_runs_a_deployment_and_leaves_nothing_behind") {
        return;
    }
    let image_dir = tempfile::tempdir().unwrap();
    let before = HostBefore::capture();
    let spec = common::spec(STATE_DIR, image_dir.path());
    let started = Instant::now();
    let cluster = LocalCluster::start(spec).await.unwrap();
    eprintln!(
        "[e2e] cluster ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(cluster.api_server_url(), "https://10.244.0.1:6443");
    let (ok, nodes) = kubectl(
        &cluster.kubectl(),
        cluster.kubeconfig_path(),
        &["get", "nodes", "-o", "name"],
    );
    assert!(ok && nodes.contains("node/"), "{nodes}");

    check_nobody_gets_in(&cluster).await;
    check_deployment_lifecycle(&cluster, cluster.client().await.unwrap()).await;
    check_component_restarts(&cluster).await;

    cluster.stop().await.unwrap();
    assert_nothing_left(Path::new(STATE_DIR), &before);
}
