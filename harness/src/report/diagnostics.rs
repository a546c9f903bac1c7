//! On failure: a bundle of pod logs, events and the objects involved, collected before cleanup.

use std::path::Path;

use anyhow::Result;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams, LogParams};
use serde::Serialize;

/// Writes `<dir>/diagnostics/` for `namespace`: objects.yaml, events.yaml, logs/<pod>.log.
pub async fn collect(client: &kube::Client, namespace: &str, dir: &Path) -> Result<()> {
    let out = dir.join("diagnostics");
    std::fs::create_dir_all(out.join("logs"))?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pod_list = pods.list(&ListParams::default()).await?.items;
    for pod in &pod_list {
        for container in pod.spec.iter().flat_map(|s| s.containers.iter()) {
            let params = LogParams {
                container: Some(container.name.clone()),
                ..Default::default()
            };
            let text = pods
                .logs(&pod.name_any(), &params)
                .await
                .unwrap_or_else(|e| format!("<logs unavailable: {e}>"));
            std::fs::write(
                out.join("logs")
                    .join(format!("{}_{}.log", pod.name_any(), container.name)),
                text,
            )?;
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
    write_yaml(&out.join("pods.yaml"), &strip(pod_list))?;
    write_yaml(&out.join("deployments.yaml"), &strip(deployments))?;
    write_yaml(&out.join("configmaps.yaml"), &strip(config_maps))?;
    write_yaml(&out.join("events.yaml"), &events)?;
    eprintln!("[report] diagnostics written to {}", out.display());
    Ok(())
}

fn strip<K: kube::Resource>(mut objects: Vec<K>) -> Vec<K> {
    for object in &mut objects {
        object.meta_mut().managed_fields = None;
    }
    objects
}

fn write_yaml<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_saphyr::to_string(value).map_err(|e| anyhow::anyhow!("{e}"))?;
    std::fs::write(path, text)?;
    Ok(())
}
