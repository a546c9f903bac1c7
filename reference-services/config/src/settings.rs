//! The remote source settings (`config.type`, `config.k8s.*`) and a client built from them.

use std::path::PathBuf;

use serde_json::Value;

use crate::{ConfigError, path};

/// Where the ConfigMap source reads from, as set in `remote.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSettings {
    /// `config.k8s.namespace` (required).
    pub namespace: String,
    /// `config.k8s.label_selector`, e.g. `app=token-srv`.
    pub label_selector: Option<String>,
    /// `config.k8s.field_selector`.
    pub field_selector: Option<String>,
    /// `config.k8s.kubeconfig`: a kubeconfig file used instead of the in-cluster config.
    pub kubeconfig: Option<PathBuf>,
}

impl RemoteSettings {
    /// Reads the settings from a tree: `None` when `config.type` is absent or not `k8s`.
    /// Empty strings count as absent; a non-string value or a missing namespace is an error.
    pub fn from_tree(tree: &Value) -> Result<Option<RemoteSettings>, ConfigError> {
        if string_at(tree, "config.type")?.as_deref() != Some("k8s") {
            return Ok(None);
        }
        let namespace =
            string_at(tree, "config.k8s.namespace")?.ok_or_else(|| ConfigError::Settings {
                reason: "config.k8s.namespace is required when config.type is k8s".into(),
            })?;
        Ok(Some(RemoteSettings {
            namespace,
            label_selector: string_at(tree, "config.k8s.label_selector")?,
            field_selector: string_at(tree, "config.k8s.field_selector")?,
            kubeconfig: string_at(tree, "config.k8s.kubeconfig")?.map(PathBuf::from),
        }))
    }

    /// A client from `kubeconfig` when set, otherwise inferred from the environment
    /// (in-cluster service account, then `KUBECONFIG` / `~/.kube/config`).
    pub async fn client(&self) -> Result<kube::Client, ConfigError> {
        let fail = |reason: String| ConfigError::Client { reason };
        let config = match &self.kubeconfig {
            Some(file) => {
                let kubeconfig = kube::config::Kubeconfig::read_from(file)
                    .map_err(|err| fail(format!("{}: {err}", file.display())))?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                    .await
                    .map_err(|err| fail(format!("{}: {err}", file.display())))?
            }
            None => kube::Config::infer()
                .await
                .map_err(|err| fail(err.to_string()))?,
        };
        kube::Client::try_from(config).map_err(|err| fail(err.to_string()))
    }
}

fn string_at(tree: &Value, at: &str) -> Result<Option<String>, ConfigError> {
    match path::lookup(tree, at) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ConfigError::Settings {
            reason: format!("{at} must be a string, found {}", path::type_name(other)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn k8s_settings_are_read() {
        let tree = json!({"config": {"type": "k8s", "k8s": {
            "namespace": "go-micro", "label_selector": "app=token-srv",
            "field_selector": "", "kubeconfig": "/tmp/kc"
        }}});
        assert_eq!(
            RemoteSettings::from_tree(&tree).unwrap(),
            Some(RemoteSettings {
                namespace: "go-micro".into(),
                label_selector: Some("app=token-srv".into()),
                field_selector: None,
                kubeconfig: Some("/tmp/kc".into()),
            })
        );
    }

    #[test]
    fn other_or_absent_types_mean_no_remote_source() {
        assert_eq!(RemoteSettings::from_tree(&json!({})).unwrap(), None);
        let consul = json!({"config": {"type": "consul", "k8s": {}}});
        assert_eq!(RemoteSettings::from_tree(&consul).unwrap(), None);
    }

    #[test]
    fn bad_settings_are_explained() {
        let no_namespace = json!({"config": {"type": "k8s"}});
        assert_eq!(
            RemoteSettings::from_tree(&no_namespace)
                .unwrap_err()
                .to_string(),
            "remote config settings: config.k8s.namespace is required when config.type is k8s"
        );
        let list_selector = json!({"config": {"type": "k8s", "k8s": {
            "namespace": "n", "label_selector": ["a"]}}});
        assert_eq!(
            RemoteSettings::from_tree(&list_selector)
                .unwrap_err()
                .to_string(),
            "remote config settings: config.k8s.label_selector must be a string, found a list"
        );
    }
}
