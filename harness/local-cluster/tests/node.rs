//! The node behaves as any Kubernetes node: a pod with a configMap volume, an emptyDir and an
//! init container runs; `kubectl logs`, `exec` and `port-forward` work; the `kubernetes`
//! Service answers inside pods (kube-proxy); a pod whose image was not imported gets
//! ErrImagePull naming the closed loopback registry; after stop nothing remains.
//!
//!     cargo test -p local-cluster --test node -- --ignored --nocapture
//!
//! Skips visibly when not root or the binaries are missing (see tests/cluster.rs).

mod common;

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{HostBefore, IMAGE, TIMEOUT, assert_nothing_left, kubectl, kubectl_until, should_run};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::Api;
use kube::api::PostParams;
use kube::runtime::wait::await_condition;
use local_cluster::{CLOSED_REGISTRY, LocalCluster};

const STATE_DIR: &str = "/run/gomicro-conformance-node-test";
/// The pod's port-forward target: perl's built-in socket calls (no module needed).
const SERVE_PONG: &str = r#"socket(S,2,1,6)||die"socket: $!";setsockopt(S,1,2,pack("l",1));bind(S,pack("Sna4x8",2,8080,"\0\0\0\0"))||die"bind: $!";listen(S,5)||die;while(accept(C,S)){syswrite(C,"pong\n");close(C)}"#;
/// Dials the `kubernetes` Service's ClusterIP from inside the pod.
const DIAL_SERVICE: &str = r#"socket(S,2,1,6)||die;connect(S,pack("Sna4x8",2,443,pack("C4",split(/\./,$ENV{KUBERNETES_SERVICE_HOST}))))||die"connect: $!";print"connected\n""#;

fn volumes_pod() -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "volumes", "namespace": "default"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "volumes": [
                {"name": "config", "configMap": {"name": "greeting"}},
                {"name": "work", "emptyDir": {}}
            ],
            "initContainers": [{
                "name": "init",
                "image": IMAGE,
                "command": ["/bin/sh", "-c", "echo init-was-here > /work/init.txt; echo init done"],
                "volumeMounts": [{"name": "work", "mountPath": "/work"}]
            }],
            "containers": [{
                "name": "main",
                "image": IMAGE,
                "command": ["/bin/sh", "-c", "cat /config/greeting /work/init.txt; exec /usr/bin/perl -e \"$SERVE\""],
                "env": [{"name": "SERVE", "value": SERVE_PONG}],
                "ports": [{"containerPort": 8080}],
                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                "volumeMounts": [
                    {"name": "config", "mountPath": "/config"},
                    {"name": "work", "mountPath": "/work"}
                ]
            }]
        }
    }))
    .unwrap()
}

fn missing_image_pod() -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "missing-image", "namespace": "default"},
        "spec": {"containers": [{"name": "main", "image": "gmc.test/not-imported:1"}]}
    }))
    .unwrap()
}

fn is_ready(pod: Option<&Pod>) -> bool {
    pod.and_then(|p| p.status.as_ref())
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The waiting reason and message of the pod's first container.
fn waiting(pod: Option<&Pod>) -> Option<(String, String)> {
    let state = pod?.status.as_ref()?.container_statuses.as_ref()?.first()?;
    let waiting = state.state.as_ref()?.waiting.as_ref()?;
    Some((
        waiting.reason.clone().unwrap_or_default(),
        waiting.message.clone().unwrap_or_default(),
    ))
}

/// `kubectl port-forward pod/volumes :8080`, one connection through it, its first line.
fn port_forward_once(cluster: &LocalCluster) -> String {
    let mut child = Command::new(cluster.kubectl())
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(["port-forward", "pod/volumes", ":8080"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    // "Forwarding from 127.0.0.1:40123 -> 8080"
    let port: u16 = line
        .split_once("127.0.0.1:")
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| {
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).ok();
            panic!("kubectl port-forward printed {line:?}; stderr: {err}")
        });
    let mut answer = String::new();
    std::net::TcpStream::connect(("127.0.0.1", port))
        .unwrap()
        .read_to_string(&mut answer)
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    answer
}

async fn check_volumes_init_logs_exec_port_forward(cluster: &LocalCluster) {
    let client = cluster.client().await.unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let config_map: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "greeting"},
        "data": {"greeting": "hello-config\n"}
    }))
    .unwrap();
    config_maps
        .create(&PostParams::default(), &config_map)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let created = Instant::now();
    pods.create(&PostParams::default(), &volumes_pod())
        .await
        .unwrap();
    tokio::time::timeout(TIMEOUT, await_condition(pods.clone(), "volumes", is_ready))
        .await
        .expect("pod Ready in time")
        .unwrap();
    eprintln!(
        "[e2e] pod with init container, configMap volume, emptyDir and readiness probe: create \
         to Ready in {:.1} s",
        created.elapsed().as_secs_f64()
    );
    let pod = pods.get("volumes").await.unwrap();
    let ip = pod.status.as_ref().unwrap().pod_ip.clone().unwrap();
    assert!(ip.starts_with("10.244.0."), "pod IP {ip}");
    let container_id = pod
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
        .container_id
        .clone()
        .unwrap();
    assert!(container_id.starts_with("containerd://"), "{container_id}");

    let (kubectl_bin, kubeconfig) = (cluster.kubectl(), cluster.kubeconfig_path().to_path_buf());
    let (ok, init_log) = kubectl(
        &kubectl_bin,
        &kubeconfig,
        &["logs", "volumes", "-c", "init"],
    );
    assert!(ok && init_log.contains("init done"), "{init_log}");
    kubectl_until(
        &kubectl_bin,
        &kubeconfig,
        &["logs", "volumes", "-c", "main"],
        "hello-config\ninit-was-here",
    )
    .await;
    // `kubectl exec volumes -c main -- <command>`.
    let exec_main = |command: &[&str]| {
        let args = [&["exec", "volumes", "-c", "main", "--"], command].concat();
        kubectl(&kubectl_bin, &kubeconfig, &args)
    };
    let (ok, out) = exec_main(&["/bin/cat", "/config/greeting"]);
    assert!(ok && out == "hello-config\n", "exec: {out:?}");
    let (ok, out) = exec_main(&["/usr/bin/perl", "-e", DIAL_SERVICE]);
    assert!(
        ok && out.contains("connected"),
        "dialing the kubernetes Service: {out}"
    );
    let answer = tokio::task::block_in_place(|| port_forward_once(cluster));
    assert_eq!(answer, "pong\n");
    eprintln!("[e2e] logs, exec, the kubernetes Service from a pod and port-forward work");
}

async fn check_missing_image_fails_on_loopback(cluster: &LocalCluster) {
    let pods: Api<Pod> = Api::namespaced(cluster.client().await.unwrap(), "default");
    pods.create(&PostParams::default(), &missing_image_pod())
        .await
        .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let pod = pods.get("missing-image").await.unwrap();
        if let Some((reason, message)) = waiting(Some(&pod))
            && (reason == "ErrImagePull" || reason == "ImagePullBackOff")
            && message.contains(CLOSED_REGISTRY)
        {
            eprintln!("[e2e] missing image: {reason}: {message}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no ErrImagePull naming {CLOSED_REGISTRY}: {:?}",
            waiting(Some(&pod))
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and the built control plane; see the module docs"]
async fn the_node_runs_real_pods_and_leaves_nothing_behind() {
    if !should_run("the_node_runs_real_pods_and_leaves_nothing_behind") {
        return;
    }
    let image_dir = tempfile::tempdir().unwrap();
    let before = HostBefore::capture();
    let spec = common::spec(STATE_DIR, image_dir.path());
    let cluster = LocalCluster::start(spec).await.unwrap();
    check_volumes_init_logs_exec_port_forward(&cluster).await;
    check_missing_image_fails_on_loopback(&cluster).await;
    cluster.stop().await.unwrap();
    assert_nothing_left(Path::new(STATE_DIR), &before);
}
