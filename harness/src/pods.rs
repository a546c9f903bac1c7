//! Pods of the services under test: listing, readiness, registration checks and logs.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, LogParams};

use crate::profile::{Profile, ServiceSpec};
use crate::wait::wait_until;

/// Label selector of a Deployment's pods (from its `spec.selector.matchLabels`).
pub(crate) async fn selector(
    client: &kube::Client,
    namespace: &str,
    deployment: &str,
) -> Result<String> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let deployment = api
        .get(deployment)
        .await
        .with_context(|| format!("reading deployment {namespace}/{deployment}"))?;
    let labels: BTreeMap<String, String> = deployment
        .spec
        .and_then(|s| s.selector.match_labels)
        .unwrap_or_default();
    Ok(labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(","))
}

/// All pods of a service's Deployment, terminating ones included.
pub(crate) async fn all_pods(
    client: &kube::Client,
    namespace: &str,
    service: &ServiceSpec,
) -> Result<Vec<Pod>> {
    let selector = selector(client, namespace, &service.deployment).await?;
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut pods = api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items;
    pods.sort_by_key(|p| p.name_any());
    Ok(pods)
}

/// Running, Ready, non-terminating pods of a service.
pub async fn ready_pods(
    client: &kube::Client,
    namespace: &str,
    service: &ServiceSpec,
) -> Result<Vec<Pod>> {
    let mut pods = all_pods(client, namespace, service).await?;
    pods.retain(is_ready);
    Ok(pods)
}

/// Running, non-terminating pods of a service, Ready or not (what Core discovery lists).
pub(crate) async fn running_pods(
    client: &kube::Client,
    namespace: &str,
    service: &ServiceSpec,
) -> Result<Vec<Pod>> {
    let mut pods = all_pods(client, namespace, service).await?;
    pods.retain(is_running);
    Ok(pods)
}

/// In phase Running with no deletion timestamp.
pub(crate) fn is_running(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

/// Running with condition Ready=True and no deletion timestamp.
pub(crate) fn is_ready(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    pod.metadata.deletion_timestamp.is_none()
        && status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The pod's IP, if assigned.
pub(crate) fn pod_ip(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.pod_ip.as_deref()
}

/// Differences between a pod's registration keys and what CONTRACT.md §1 requires; empty when registered.
pub(crate) fn registration_problems(
    profile: &Profile,
    service: &ServiceSpec,
    pod: &Pod,
) -> Vec<String> {
    let mut problems = Vec::new();
    let labels = pod.labels();
    let annotations = pod.annotations();
    let expected_id = format!("{}.{}", pod.name_any(), service.name);
    let label = |suffix: &str| labels.get(&profile.key(suffix)).map(String::as_str);
    if label("id") != Some(expected_id.as_str()) {
        problems.push(format!(
            "label {} is {:?}, expected {expected_id:?}",
            profile.key("id"),
            label("id")
        ));
    }
    if label("app") != Some(service.name.as_str()) {
        problems.push(format!(
            "label {} is {:?}, expected {:?}",
            profile.key("app"),
            label("app"),
            service.name
        ));
    }
    if label("version").is_none_or(str::is_empty) {
        problems.push(format!(
            "label {} is missing or empty",
            profile.key("version")
        ));
    }
    let metadata_key = profile.key("metadata");
    match annotations
        .get(&metadata_key)
        .map(|v| serde_json::from_str::<BTreeMap<String, String>>(v))
    {
        Some(Ok(_)) => {}
        Some(Err(e)) => problems.push(format!(
            "annotation {metadata_key} is not a JSON object of strings: {e}"
        )),
        None => problems.push(format!("annotation {metadata_key} is missing")),
    }
    let protocols_key = profile.key("protocols");
    let expected = expected_protocols(service);
    match annotations
        .get(&protocols_key)
        .map(|v| serde_json::from_str::<BTreeMap<String, String>>(v))
    {
        Some(Ok(protocols)) if protocols == expected => {}
        Some(Ok(protocols)) => problems.push(format!(
            "annotation {protocols_key} is {protocols:?}, expected {expected:?}"
        )),
        Some(Err(e)) => problems.push(format!(
            "annotation {protocols_key} is not a JSON object of strings: {e}"
        )),
        None => problems.push(format!("annotation {protocols_key} is missing")),
    }
    problems
}

/// The protocols map a service's declared ports imply.
pub(crate) fn expected_protocols(service: &ServiceSpec) -> BTreeMap<String, String> {
    let mut map = BTreeMap::from([(service.grpc_port.to_string(), "grpc".to_string())]);
    if let Some(http) = service.http_port {
        map.insert(http.to_string(), "http".into());
    }
    map
}

/// Waits until every ready pod of a service carries its registration (CONTRACT.md §1).
pub async fn wait_registered(
    client: &kube::Client,
    profile: &Profile,
    service: &ServiceSpec,
    deadline: Duration,
) -> Result<()> {
    wait_until(
        deadline,
        &format!("{} pods to register", service.name),
        || async {
            let pods = ready_pods(client, &profile.namespace, service).await?;
            if pods.is_empty() {
                anyhow::bail!("no ready pod of deployment {}", service.deployment);
            }
            for pod in &pods {
                let problems = registration_problems(profile, service, pod);
                if !problems.is_empty() {
                    anyhow::bail!("pod {}: {}", pod.name_any(), problems.join("; "));
                }
            }
            Ok(Some(()))
        },
    )
    .await
}

/// The whole log of a pod's first container.
pub(crate) async fn logs(client: &kube::Client, namespace: &str, pod: &str) -> Result<String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    api.logs(pod, &LogParams::default())
        .await
        .with_context(|| format!("reading logs of pod {namespace}/{pod}"))
}
