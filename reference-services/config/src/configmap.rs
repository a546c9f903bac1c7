//! ConfigMaps as config entries, and the LIST / watch selectors.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use kube::runtime::watcher;

use crate::{ConfigError, Entry, RemoteSettings, configmap_key};

/// The data of one ConfigMap: data key → text (`binaryData` is ignored).
pub type ConfigMapData = BTreeMap<String, String>;

/// A ConfigMap's identity. Its `Ord` (namespace, then name) is the merge order of ConfigMaps:
/// a later ConfigMap wins over an earlier one, and within one ConfigMap later data keys (by
/// byte order) win over earlier ones.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigMapId {
    pub namespace: String,
    pub name: String,
}

impl ConfigMapId {
    /// The id of `configmap`, taking `default_namespace` when the object carries none.
    pub fn of(configmap: &ConfigMap, default_namespace: &str) -> ConfigMapId {
        ConfigMapId {
            namespace: configmap
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| default_namespace.to_owned()),
            name: configmap.metadata.name.clone().unwrap_or_default(),
        }
    }
}

impl fmt::Display for ConfigMapId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The `data` of a ConfigMap (empty when it has none).
pub fn data_of(configmap: &ConfigMap) -> ConfigMapData {
    configmap.data.clone().unwrap_or_default()
}

/// One entry per data key, keyed `<namespace>/<configmap>/<data key>`, in data-key order.
pub fn entries(id: &ConfigMapId, data: &ConfigMapData) -> Result<Vec<Entry>, ConfigError> {
    data.iter()
        .map(|(data_key, value)| {
            Entry::new(
                configmap_key(&id.namespace, &id.name, data_key),
                value.clone(),
            )
        })
        .collect()
}

/// LIST parameters with the settings' selectors.
pub fn list_params(settings: &RemoteSettings) -> ListParams {
    let mut params = ListParams::default();
    if let Some(labels) = &settings.label_selector {
        params = params.labels(labels);
    }
    if let Some(fields) = &settings.field_selector {
        params = params.fields(fields);
    }
    params
}

/// Watch configuration with the settings' selectors: a LIST, then a watch from its
/// resourceVersion, never a streaming list (`sendInitialEvents`), which the API server's
/// `WatchList` gate keeps off by default on every supported Kubernetes minor (1.34 to 1.37;
/// docs/contract.md, the note after V8.13).
pub fn watcher_config(settings: &RemoteSettings) -> watcher::Config {
    let mut config = watcher::Config {
        initial_list_strategy: watcher::InitialListStrategy::ListWatch,
        ..watcher::Config::default()
    };
    if let Some(labels) = &settings.label_selector {
        config = config.labels(labels);
    }
    if let Some(fields) = &settings.field_selector {
        config = config.fields(fields);
    }
    config
}

/// One LIST of the selected ConfigMaps, by id.
pub async fn list(
    api: &Api<ConfigMap>,
    settings: &RemoteSettings,
) -> Result<BTreeMap<ConfigMapId, ConfigMapData>, ConfigError> {
    let list = api
        .list(&list_params(settings))
        .await
        .map_err(|err| kube_error("list", &settings.namespace, &err))?;
    Ok(list
        .items
        .iter()
        .map(|cm| (ConfigMapId::of(cm, &settings.namespace), data_of(cm)))
        .collect())
}

/// A [`ConfigError::Kube`] carrying the API's status and message when there is one.
pub fn kube_error(verb: &'static str, namespace: &str, err: &kube::Error) -> ConfigError {
    let message = match err {
        kube::Error::Api(status) => {
            format!("{} {}: {}", status.code, status.reason, status.message)
        }
        other => other.to_string(),
    };
    ConfigError::Kube {
        verb,
        namespace: namespace.to_owned(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Format;

    fn configmap(namespace: Option<&str>, name: &str, data: &[(&str, &str)]) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.namespace = namespace.map(str::to_owned);
        cm.metadata.name = Some(name.to_owned());
        cm.data = Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        cm
    }

    #[test]
    fn every_data_entry_is_keyed_and_formatted() {
        let cm = configmap(
            Some("go-micro"),
            "token-srv",
            &[
                ("config.yaml", "a: 1"),
                ("api_key", "k"),
                ("extra.json", "{}"),
            ],
        );
        let id = ConfigMapId::of(&cm, "other");
        let entries = entries(&id, &data_of(&cm)).unwrap();
        let keyed: Vec<_> = entries.iter().map(|e| (e.key.as_str(), e.format)).collect();
        assert_eq!(
            keyed,
            [
                ("go-micro/token-srv/api_key", Format::Raw),
                ("go-micro/token-srv/config.yaml", Format::Yaml),
                ("go-micro/token-srv/extra.json", Format::Json),
            ]
        );
    }

    #[test]
    fn binary_data_is_ignored_and_missing_namespace_defaults() {
        let mut cm = configmap(None, "cm", &[]);
        cm.data = None;
        cm.binary_data = Some(BTreeMap::from([(
            "blob.yaml".to_owned(),
            k8s_openapi::ByteString(b"a: 1".to_vec()),
        )]));
        let id = ConfigMapId::of(&cm, "go-micro");
        assert_eq!(id.to_string(), "go-micro/cm");
        assert!(entries(&id, &data_of(&cm)).unwrap().is_empty());
    }

    #[test]
    fn an_unknown_extension_fails_naming_the_key() {
        let cm = configmap(Some("ns"), "web", &[("nginx.conf", "x")]);
        let err = entries(&ConfigMapId::of(&cm, "ns"), &data_of(&cm)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("ns/web/nginx.conf: unknown format `.conf`")
        );
    }

    #[test]
    fn ids_order_by_namespace_then_name() {
        let id = |ns: &str, name: &str| ConfigMapId {
            namespace: ns.into(),
            name: name.into(),
        };
        let mut ids = vec![id("b", "a"), id("a", "z"), id("a", "b")];
        ids.sort();
        assert_eq!(ids, [id("a", "b"), id("a", "z"), id("b", "a")]);
    }

    #[test]
    fn api_errors_name_namespace_verb_and_message() {
        let status = kube::core::Status::failure(
            "configmaps is forbidden: User \"x\" cannot list resource \"configmaps\"",
            "Forbidden",
        )
        .with_code(403);
        let err = kube_error("list", "go-micro", &kube::Error::Api(Box::new(status)));
        assert_eq!(
            err.to_string(),
            "cannot list configmaps in namespace go-micro: 403 Forbidden: configmaps is \
             forbidden: User \"x\" cannot list resource \"configmaps\""
        );
    }

    #[test]
    fn selectors_reach_list_and_watch() {
        let settings = RemoteSettings {
            namespace: "go-micro".into(),
            label_selector: Some("app=token-srv".into()),
            field_selector: Some("metadata.name=token-srv".into()),
            kubeconfig: None,
        };
        let params = list_params(&settings);
        assert_eq!(params.label_selector.as_deref(), Some("app=token-srv"));
        assert_eq!(
            params.field_selector.as_deref(),
            Some("metadata.name=token-srv")
        );
        let config = watcher_config(&settings);
        assert_eq!(
            config.initial_list_strategy,
            watcher::InitialListStrategy::ListWatch
        );
        assert_eq!(config.label_selector.as_deref(), Some("app=token-srv"));
        assert_eq!(
            config.field_selector.as_deref(),
            Some("metadata.name=token-srv")
        );
    }
}
