//! What the Kubernetes API tells about a pod's containers: their runtime IDs (for the
//! backend's runtime lever, see [`crate::cluster::RuntimeLever`]) and restart counts.

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

/// The CRI `containerID` of a pod's first started container (`containerd://<id>`).
pub(crate) fn container_id(pod: &Pod) -> Option<&str> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find_map(|c| c.container_id.as_deref().filter(|id| !id.is_empty()))
}

/// Like [`container_id`], failing with a message naming the pod.
pub(crate) fn require_container_id(pod: &Pod) -> Result<String> {
    container_id(pod)
        .map(str::to_string)
        .with_context(|| format!("pod {} has no started container", pod.name_any()))
}

/// Sum of the restart counts of a pod's containers.
pub(crate) fn restart_count(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|c| c.iter().map(|c| c.restart_count).sum())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerStatus, PodStatus};

    #[test]
    fn the_container_id_and_restarts_come_from_the_status() {
        let pod = |id: &str| Pod {
            status: Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus {
                    container_id: Some(id.into()),
                    restart_count: 2,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            container_id(&pod("containerd://abc")),
            Some("containerd://abc")
        );
        assert_eq!(container_id(&pod("")), None);
        assert_eq!(restart_count(&pod("containerd://abc")), 2);
        assert!(require_container_id(&Pod::default()).is_err());
    }
}
