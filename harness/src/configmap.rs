//! Reading and changing the services' ConfigMaps (their `config.yaml` entry).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use crate::context::Ctx;
use crate::profile::ServiceSpec;

/// The data key holding a service's configuration.
pub(crate) const CONFIG_KEY: &str = "config.yaml";

/// The `data` of a service's ConfigMap.
pub(crate) async fn data(ctx: &Ctx, service: &ServiceSpec) -> Result<BTreeMap<String, String>> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client(), ctx.namespace());
    let map = api.get(&service.config_map).await.with_context(|| {
        format!(
            "reading ConfigMap {}/{}",
            ctx.namespace(),
            service.config_map
        )
    })?;
    Ok(map.data.unwrap_or_default())
}

/// The parsed `config.yaml` of a service's ConfigMap.
pub(crate) async fn service_config(ctx: &Ctx, service: &ServiceSpec) -> Result<Value> {
    let data = data(ctx, service).await?;
    let text = data
        .get(CONFIG_KEY)
        .with_context(|| format!("ConfigMap {} has no {CONFIG_KEY}", service.config_map))?;
    serde_saphyr::from_str(text).map_err(|e| {
        anyhow::anyhow!(
            "ConfigMap {} {CONFIG_KEY} is not YAML: {e}",
            service.config_map
        )
    })
}

/// Replaces one data entry of a service's ConfigMap (JSON merge patch).
pub(crate) async fn set_entry(
    ctx: &Ctx,
    service: &ServiceSpec,
    key: &str,
    value: &str,
) -> Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client(), ctx.namespace());
    api.patch(
        &service.config_map,
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { key: value } })),
    )
    .await
    .with_context(|| {
        format!(
            "patching ConfigMap {}/{}",
            ctx.namespace(),
            service.config_map
        )
    })?;
    Ok(())
}

/// `config` with `auth.api_key` set to `key`, rendered as YAML-compatible JSON.
pub(crate) fn with_api_key(mut config: Value, key: &str) -> Value {
    if !config.is_object() {
        config = json!({});
    }
    if !config["auth"].is_object() {
        config["auth"] = json!({});
    }
    config["auth"]["api_key"] = json!(key);
    config
}

/// Renders a config tree for a `config.yaml` entry (JSON is valid YAML 1.2).
pub(crate) fn render(config: &Value) -> String {
    serde_json::to_string_pretty(config).expect("a JSON value always renders")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_is_set_without_touching_other_leaves() {
        let config = json!({ "server": { "grpc": { "addr": ":9090" } }, "auth": { "api_key": "old", "x": 1 } });
        let changed = with_api_key(config, "new");
        assert_eq!(changed["auth"], json!({ "api_key": "new", "x": 1 }));
        assert_eq!(changed["server"]["grpc"]["addr"], ":9090");
        let rendered: Value = serde_saphyr::from_str(&render(&changed)).unwrap();
        assert_eq!(rendered, changed);
    }
}
