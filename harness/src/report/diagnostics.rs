//! On failure: a bundle of pod logs, events and the objects involved, collected before cleanup.
//! Everything goes through the run's [`ReportWriter`]; the namespace's Secret data is added to
//! what it redacts, and Secrets themselves are listed by name, type and keys only.

use std::path::Path;

use anyhow::Result;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod, Secret};
use kube::ResourceExt;
use kube::api::{Api, ListParams, LogParams};
use serde_json::json;

use super::ReportWriter;
use crate::secrets::{MIN_SECRET_DATA_LEN, SecretKind};

/// Writes `diagnostics/` for `namespace`: pods (their status with restart counts and last
/// termination states), deployments, configmaps, secrets (keys only) and events as YAML, and
/// `logs/<pod>_<container>.log` (plus `.previous.log`: the run before the last restart).
pub(crate) async fn collect(
    client: &kube::Client,
    namespace: &str,
    writer: &ReportWriter,
) -> Result<()> {
    let out = Path::new("diagnostics");
    let secrets = match Api::<Secret>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
    {
        Ok(list) => list.items,
        Err(error) => {
            eprintln!("[report] cannot list Secrets (their data cannot be redacted): {error}");
            Vec::new()
        }
    };
    let writer = &writer.with_secrets(secret_values(&secrets));
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pod_list = pods.list(&ListParams::default()).await?.items;
    for pod in &pod_list {
        for container in pod.spec.iter().flat_map(|s| s.containers.iter()) {
            // The run before the last restart explains a crash; its log is `.previous.log`.
            let restarted = restart_count(pod, &container.name) > 0;
            for previous in [false, true].into_iter().filter(|p| !p || restarted) {
                let params = LogParams {
                    container: Some(container.name.clone()),
                    previous,
                    ..Default::default()
                };
                let text = pods
                    .logs(&pod.name_any(), &params)
                    .await
                    .unwrap_or_else(|e| format!("<logs unavailable: {e}>"));
                let suffix = if previous { ".previous" } else { "" };
                let file = format!("{}_{}{suffix}.log", pod.name_any(), container.name);
                writer.write(out.join("logs").join(file), &text)?;
            }
        }
    }
    let deployments = Api::<Deployment>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await?
        .items;
    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await?
        .items;
    let events = Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await?
        .items;
    writer.write_yaml(out.join("pods.yaml"), &strip(pod_list))?;
    writer.write_yaml(out.join("deployments.yaml"), &strip(deployments))?;
    writer.write_yaml(out.join("configmaps.yaml"), &strip(config_maps))?;
    writer.write_yaml(out.join("secrets.yaml"), &secret_outlines(&secrets))?;
    writer.write_yaml(out.join("events.yaml"), &events)?;
    eprintln!(
        "[report] diagnostics written to {}",
        writer.dir().join(out).display()
    );
    Ok(())
}

/// The values of the Secrets' data (decoded) long enough to redact.
fn secret_values(secrets: &[Secret]) -> Vec<(String, SecretKind)> {
    let data = secrets.iter().flat_map(|s| s.data.iter().flatten());
    let string_data = secrets.iter().flat_map(|s| s.string_data.iter().flatten());
    data.map(|(_, value)| String::from_utf8_lossy(&value.0).into_owned())
        .chain(string_data.map(|(_, value)| value.clone()))
        .filter(|value| value.len() >= MIN_SECRET_DATA_LEN)
        .map(|value| (value, SecretKind::SecretData))
        .collect()
}

/// Name, type and data keys of each Secret; never a value.
fn secret_outlines(secrets: &[Secret]) -> Vec<serde_json::Value> {
    secrets
        .iter()
        .map(|secret| {
            let keys: Vec<&String> = secret.data.iter().flat_map(|d| d.keys()).collect();
            json!({ "name": secret.name_any(), "type": secret.type_, "dataKeys": keys })
        })
        .collect()
}

fn restart_count(pod: &Pod, container: &str) -> i32 {
    pod.status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .find(|c| c.name == container)
        .map_or(0, |c| c.restart_count)
}

fn strip<K: kube::Resource>(mut objects: Vec<K>) -> Vec<K> {
    for object in &mut objects {
        object.meta_mut().managed_fields = None;
    }
    objects
}
