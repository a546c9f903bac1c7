//! Waiting until k3s can run pods: a Ready node and a Ready CoreDNS pod.

use std::time::Instant;

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};

use super::READY_TIMEOUT;
use crate::wait::wait_until;

/// Waits until a node is Ready and a CoreDNS pod is Ready.
pub(super) async fn wait_until_ready(client: &kube::Client) -> Result<()> {
    eprintln!(
        "[k3s] waiting for the node and CoreDNS to be Ready (up to {}s) ...",
        READY_TIMEOUT.as_secs()
    );
    let deadline = Instant::now() + READY_TIMEOUT;
    let nodes = &Api::<Node>::all(client.clone());
    wait_until(READY_TIMEOUT, "the k3s node to be Ready", move || async move {
        node_ready(&nodes.list(&ListParams::default()).await?.items).map(Some)
    })
    .await?;
    let coredns = &Api::<Pod>::namespaced(client.clone(), "kube-system");
    let selector = &ListParams::default().labels("k8s-app=kube-dns");
    wait_until(
        deadline.saturating_duration_since(Instant::now()),
        "CoreDNS to be Ready",
        move || async move { pod_ready(&coredns.list(selector).await?.items).map(Some) },
    )
    .await
}

/// `Ok` when some node has condition Ready=True, else an error saying what is missing.
fn node_ready(nodes: &[Node]) -> Result<()> {
    if nodes.is_empty() {
        bail!("no node has registered yet");
    }
    let mut states = Vec::new();
    for node in nodes {
        let name = node.metadata.name.as_deref().unwrap_or("?");
        let conditions = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default();
        match conditions.iter().find(|c| c.type_ == "Ready") {
            Some(c) if c.status == "True" => return Ok(()),
            Some(c) => states.push(format!(
                "{name}: Ready={} ({})",
                c.status,
                c.message.as_deref().unwrap_or("")
            )),
            None => states.push(format!("{name}: no Ready condition yet")),
        }
    }
    bail!("{}", states.join("; "))
}

/// `Ok` when some pod is Running with condition Ready=True, else an error saying why not.
fn pod_ready(pods: &[Pod]) -> Result<()> {
    if pods.is_empty() {
        bail!("no pod created yet");
    }
    let mut states = Vec::new();
    for pod in pods {
        let name = pod.metadata.name.as_deref().unwrap_or("?");
        let status = pod.status.as_ref();
        let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Unknown");
        let ready = status
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        if phase == "Running" && ready {
            return Ok(());
        }
        let waiting: Vec<String> = status
            .and_then(|s| s.container_statuses.as_deref())
            .unwrap_or_default()
            .iter()
            .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
            .collect();
        states.push(format!(
            "{name}: phase {phase}, ready {ready}, waiting {waiting:?}"
        ));
    }
    bail!("{}", states.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_explains_what_is_missing() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "k3s-0" },
            "status": { "conditions": [{ "type": "Ready", "status": "False", "message": "CNI not ready" }] }
        }))
        .unwrap();
        let err = node_ready(std::slice::from_ref(&node))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("k3s-0") && err.contains("CNI not ready"),
            "{err}"
        );
        assert!(node_ready(&[]).is_err());

        let mut ready = node;
        ready.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "True".into();
        node_ready(&[ready]).unwrap();
    }

    #[test]
    fn coredns_must_be_running_and_ready() {
        let pod = |phase: &str, ready: &str| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": { "name": "coredns-abc" },
                "status": {
                    "phase": phase,
                    "conditions": [{ "type": "Ready", "status": ready }],
                    "containerStatuses": [{
                        "name": "coredns", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                        "state": { "waiting": { "reason": "ContainerCreating" } }
                    }]
                }
            }))
            .unwrap()
        };
        let err = pod_ready(&[pod("Pending", "False")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Pending") && err.contains("ContainerCreating"),
            "{err}"
        );
        assert!(pod_ready(&[pod("Running", "False")]).is_err());
        assert!(pod_ready(&[]).is_err());
        pod_ready(&[pod("Pending", "False"), pod("Running", "True")]).unwrap();
    }
}
