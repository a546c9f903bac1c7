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
use std::path::Path;
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

    check_deployment_lifecycle(&cluster, cluster.client().await.unwrap()).await;
    check_component_restarts(&cluster).await;

    cluster.stop().await.unwrap();
    assert_nothing_left(Path::new(STATE_DIR), &before);
}
