//! Waiting until k3s can run pods: a Ready node (its add-ons, CoreDNS included, are disabled).

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

use super::READY_TIMEOUT;
use crate::wait::wait_until;

/// Waits until a node is Ready.
pub(super) async fn wait_until_ready(client: &kube::Client) -> Result<()> {
    eprintln!(
        "[k3s] waiting for the node to be Ready (up to {}s) ...",
        READY_TIMEOUT.as_secs()
    );
    let nodes = &Api::<Node>::all(client.clone());
    wait_until(READY_TIMEOUT, "the k3s node to be Ready", move || async move {
        node_ready(&nodes.list(&ListParams::default()).await?.items).map(Some)
    })
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
}
