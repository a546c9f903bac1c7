//! A container's environment: only what the pod spec says plus the few variables a container
//! runtime and the kubelet add. Nothing is inherited from the kubelet's own process.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Container, ObjectFieldSelector, Pod};

use crate::command::expand;

/// `PATH` every container gets unless its spec sets one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Values known about the pod when its containers start.
#[derive(Debug, Clone)]
pub struct EnvContext<'a> {
    pub pod: &'a Pod,
    pub pod_ip: Ipv4Addr,
    pub host_ip: Ipv4Addr,
    pub api_server_host: &'a str,
    pub api_server_port: u16,
    /// The image's own environment (Dockerfile `ENV`).
    pub image_env: &'a BTreeMap<String, String>,
}

/// ConfigMap and Secret data referenced by env vars, keyed by object name.
#[derive(Debug, Clone, Default)]
pub struct EnvSources {
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
}

/// Why an env var could not be resolved (the kubelet's `CreateContainerConfigError`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvError {
    #[error("{kind} {name:?} not found")]
    MissingObject { kind: &'static str, name: String },
    #[error("couldn't find key {key} in {kind} {name}")]
    MissingKey {
        kind: &'static str,
        name: String,
        key: String,
    },
    #[error("env var {var}: unsupported fieldPath {path:?}")]
    UnsupportedField { var: String, path: String },
    #[error("env var {0}: resourceFieldRef is not supported by the process kubelet")]
    UnsupportedResourceField(String),
}

/// Names of the ConfigMaps and Secrets a container's env refers to.
pub fn referenced_objects(container: &Container) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut config_maps = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    for from in container.env_from.iter().flatten() {
        if let Some(cm) = &from.config_map_ref {
            config_maps.insert(cm.name.clone());
        }
        if let Some(secret) = &from.secret_ref {
            secrets.insert(secret.name.clone());
        }
    }
    for var in container.env.iter().flatten() {
        let Some(source) = &var.value_from else {
            continue;
        };
        if let Some(key) = &source.config_map_key_ref {
            config_maps.insert(key.name.clone());
        }
        if let Some(key) = &source.secret_key_ref {
            secrets.insert(key.name.clone());
        }
    }
    (config_maps, secrets)
}

/// An ordered environment where a later `set` of the same name replaces the value in place.
#[derive(Debug, Default)]
struct EnvList(Vec<(String, String)>);

impl EnvList {
    fn set(&mut self, name: &str, value: String) {
        match self.0.iter_mut().find(|(k, _)| k == name) {
            Some(entry) => entry.1 = value,
            None => self.0.push((name.to_owned(), value)),
        }
    }

    fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

/// The complete environment of `container`, in order: runtime defaults (`PATH`, `HOSTNAME`,
/// `HOME`), the image's environment, the API server variables, `envFrom`, then `env` (later
/// entries win; `$(VAR)` refers to variables defined before).
pub fn container_env(
    container: &Container,
    ctx: &EnvContext<'_>,
    sources: &EnvSources,
) -> Result<Vec<(String, String)>, EnvError> {
    let pod_name = ctx.pod.metadata.name.clone().unwrap_or_default();
    let mut env = EnvList::default();
    env.set("PATH", DEFAULT_PATH.to_owned());
    env.set("HOSTNAME", pod_name);
    env.set("HOME", "/root".to_owned());
    for (name, value) in ctx.image_env {
        env.set(name, value.clone());
    }
    let (host, port) = (ctx.api_server_host, ctx.api_server_port);
    env.set("KUBERNETES_SERVICE_HOST", host.to_owned());
    env.set("KUBERNETES_SERVICE_PORT", port.to_string());
    env.set("KUBERNETES_SERVICE_PORT_HTTPS", port.to_string());
    env.set("KUBERNETES_PORT", format!("tcp://{host}:{port}"));

    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or("");
        if let Some(cm) = &from.config_map_ref {
            match sources.config_maps.get(&cm.name) {
                Some(data) => data
                    .iter()
                    .for_each(|(k, v)| env.set(&format!("{prefix}{k}"), v.clone())),
                None if cm.optional == Some(true) => {}
                None => return Err(missing("configmap", &cm.name)),
            }
        }
        if let Some(secret) = &from.secret_ref {
            match sources.secrets.get(&secret.name) {
                Some(data) => data
                    .iter()
                    .for_each(|(k, v)| env.set(&format!("{prefix}{k}"), v.clone())),
                None if secret.optional == Some(true) => {}
                None => return Err(missing("secret", &secret.name)),
            }
        }
    }

    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (_, Some(source)) => {
                if let Some(field) = &source.field_ref {
                    Some(field_value(&var.name, field, ctx)?)
                } else if let Some(key) = &source.config_map_key_ref {
                    lookup_key(
                        "configmap",
                        &sources.config_maps,
                        &key.name,
                        &key.key,
                        key.optional,
                    )?
                } else if let Some(key) = &source.secret_key_ref {
                    lookup_key(
                        "secret",
                        &sources.secrets,
                        &key.name,
                        &key.key,
                        key.optional,
                    )?
                } else {
                    return Err(EnvError::UnsupportedResourceField(var.name.clone()));
                }
            }
            (Some(value), None) => Some(expand(value, &|name| env.get(name))),
            (None, None) => Some(String::new()),
        };
        if let Some(value) = value {
            env.set(&var.name, value);
        }
    }
    Ok(env.0)
}

fn missing(kind: &'static str, name: &str) -> EnvError {
    EnvError::MissingObject {
        kind,
        name: name.to_owned(),
    }
}

fn lookup_key(
    kind: &'static str,
    objects: &BTreeMap<String, BTreeMap<String, String>>,
    name: &str,
    key: &str,
    optional: Option<bool>,
) -> Result<Option<String>, EnvError> {
    let optional = optional == Some(true);
    match objects.get(name) {
        None if optional => Ok(None),
        None => Err(missing(kind, name)),
        Some(data) => match data.get(key) {
            Some(value) => Ok(Some(value.clone())),
            None if optional => Ok(None),
            None => Err(EnvError::MissingKey {
                kind,
                name: name.to_owned(),
                key: key.to_owned(),
            }),
        },
    }
}

/// The downward-API value of `field` for this pod.
fn field_value(
    var: &str,
    field: &ObjectFieldSelector,
    ctx: &EnvContext<'_>,
) -> Result<String, EnvError> {
    let meta = &ctx.pod.metadata;
    let spec = ctx.pod.spec.as_ref();
    let path = field.field_path.as_str();
    let map_entry = |map: &Option<BTreeMap<String, String>>, prefix: &str| -> Option<String> {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(
            map.as_ref()
                .and_then(|m| m.get(key))
                .cloned()
                .unwrap_or_default(),
        )
    };
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.podIPs" => ctx.pod_ip.to_string(),
        "status.hostIP" | "status.hostIPs" => ctx.host_ip.to_string(),
        _ => map_entry(&meta.labels, "metadata.labels['")
            .or_else(|| map_entry(&meta.annotations, "metadata.annotations['"))
            .ok_or_else(|| EnvError::UnsupportedField {
                var: var.to_owned(),
                path: path.to_owned(),
            })?,
    };
    Ok(value)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource, PodSpec,
        SecretKeySelector,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web-1".into()),
                namespace: Some("shop".into()),
                uid: Some("u-1".into()),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("local-node".into()),
                service_account_name: Some("robot".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    static NO_IMAGE_ENV: BTreeMap<String, String> = BTreeMap::new();

    fn ctx(pod: &Pod) -> EnvContext<'_> {
        EnvContext {
            pod,
            pod_ip: Ipv4Addr::new(10, 244, 0, 5),
            host_ip: Ipv4Addr::new(10, 244, 0, 1),
            api_server_host: "10.244.0.1",
            api_server_port: 6443,
            image_env: &NO_IMAGE_ENV,
        }
    }

    fn field(name: &str, path: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: path.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn plain(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            ..Default::default()
        }
    }

    fn get<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn base_env_is_scrubbed_and_complete() {
        let pod = pod();
        let env = container_env(&Container::default(), &ctx(&pod), &EnvSources::default()).unwrap();
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "PATH",
                "HOSTNAME",
                "HOME",
                "KUBERNETES_SERVICE_HOST",
                "KUBERNETES_SERVICE_PORT",
                "KUBERNETES_SERVICE_PORT_HTTPS",
                "KUBERNETES_PORT"
            ]
        );
        assert_eq!(get(&env, "HOSTNAME"), Some("web-1"));
        assert_eq!(get(&env, "HOME"), Some("/root"));
        assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("10.244.0.1"));
        assert_eq!(get(&env, "KUBERNETES_SERVICE_PORT"), Some("6443"));
        assert_eq!(get(&env, "KUBECONFIG"), None);
    }

    #[test]
    fn image_env_overrides_defaults_and_container_env_overrides_it() {
        let pod = pod();
        let image_env: BTreeMap<String, String> = [
            ("PATH".to_string(), "/app/bin:/usr/bin".to_string()),
            ("GIN_MODE".to_string(), "release".to_string()),
            ("LEVEL".to_string(), "info".to_string()),
        ]
        .into();
        let ctx = EnvContext {
            image_env: &image_env,
            ..ctx(&pod)
        };
        let container = Container {
            env: Some(vec![plain("LEVEL", "debug"), plain("MODE", "$(GIN_MODE)")]),
            ..Default::default()
        };
        let env = container_env(&container, &ctx, &EnvSources::default()).unwrap();
        assert_eq!(get(&env, "PATH"), Some("/app/bin:/usr/bin"));
        assert_eq!(get(&env, "GIN_MODE"), Some("release"));
        assert_eq!(get(&env, "LEVEL"), Some("debug"));
        assert_eq!(get(&env, "MODE"), Some("release"));
    }

    #[test]
    fn resolves_field_refs() {
        let pod = pod();
        let container = Container {
            env: Some(vec![
                field("NAME", "metadata.name"),
                field("NS", "metadata.namespace"),
                field("IP", "status.podIP"),
                field("HOST", "status.hostIP"),
                field("NODE", "spec.nodeName"),
                field("SA", "spec.serviceAccountName"),
                field("APP", "metadata.labels['app']"),
                field("NOLABEL", "metadata.labels['nope']"),
            ]),
            ..Default::default()
        };
        let env = container_env(&container, &ctx(&pod), &EnvSources::default()).unwrap();
        assert_eq!(get(&env, "NAME"), Some("web-1"));
        assert_eq!(get(&env, "NS"), Some("shop"));
        assert_eq!(get(&env, "IP"), Some("10.244.0.5"));
        assert_eq!(get(&env, "HOST"), Some("10.244.0.1"));
        assert_eq!(get(&env, "NODE"), Some("local-node"));
        assert_eq!(get(&env, "SA"), Some("robot"));
        assert_eq!(get(&env, "APP"), Some("web"));
        assert_eq!(get(&env, "NOLABEL"), Some(""));
    }

    #[test]
    fn unknown_field_path_is_an_error() {
        let pod = pod();
        let container = Container {
            env: Some(vec![field("X", "spec.nope")]),
            ..Default::default()
        };
        let err = container_env(&container, &ctx(&pod), &EnvSources::default()).unwrap_err();
        assert_eq!(
            err,
            EnvError::UnsupportedField {
                var: "X".into(),
                path: "spec.nope".into()
            }
        );
    }

    #[test]
    fn spec_env_overrides_defaults_and_expands_earlier_vars() {
        let pod = pod();
        let container = Container {
            env: Some(vec![
                plain("HOME", "/home/app"),
                plain("GREETING", "hi $(HOSTNAME) from $(HOME)"),
            ]),
            ..Default::default()
        };
        let env = container_env(&container, &ctx(&pod), &EnvSources::default()).unwrap();
        assert_eq!(get(&env, "HOME"), Some("/home/app"));
        assert_eq!(get(&env, "GREETING"), Some("hi web-1 from /home/app"));
        assert_eq!(env.iter().filter(|(k, _)| k == "HOME").count(), 1);
    }

    #[test]
    fn config_map_and_secret_keys() {
        let pod = pod();
        let mut sources = EnvSources::default();
        sources.config_maps.insert(
            "cfg".into(),
            [("level".to_string(), "debug".to_string())].into(),
        );
        sources.secrets.insert(
            "sec".into(),
            [("pw".to_string(), "s3cret".to_string())].into(),
        );
        let cm_key = |name: &str, key: &str, optional| EnvVar {
            name: "L".into(),
            value_from: Some(EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: name.into(),
                    key: key.into(),
                    optional,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let secret_key = EnvVar {
            name: "PW".into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: "sec".into(),
                    key: "pw".into(),
                    optional: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let container = Container {
            env: Some(vec![cm_key("cfg", "level", None), secret_key.clone()]),
            ..Default::default()
        };
        assert_eq!(
            referenced_objects(&container),
            (["cfg".to_string()].into(), ["sec".to_string()].into())
        );
        let env = container_env(&container, &ctx(&pod), &sources).unwrap();
        assert_eq!(get(&env, "L"), Some("debug"));
        assert_eq!(get(&env, "PW"), Some("s3cret"));

        let optional = Container {
            env: Some(vec![cm_key("gone", "level", Some(true))]),
            ..Default::default()
        };
        assert_eq!(
            get(
                &container_env(&optional, &ctx(&pod), &sources).unwrap(),
                "L"
            ),
            None
        );

        let missing_key = Container {
            env: Some(vec![cm_key("cfg", "nope", None)]),
            ..Default::default()
        };
        assert_eq!(
            container_env(&missing_key, &ctx(&pod), &sources)
                .unwrap_err()
                .to_string(),
            "couldn't find key nope in configmap cfg"
        );
    }

    #[test]
    fn env_from_with_prefix_then_env_wins() {
        let pod = pod();
        let mut sources = EnvSources::default();
        sources.config_maps.insert(
            "cfg".into(),
            [
                ("A".to_string(), "1".to_string()),
                ("B".to_string(), "2".to_string()),
            ]
            .into(),
        );
        let container = Container {
            env_from: Some(vec![EnvFromSource {
                prefix: Some("X_".into()),
                config_map_ref: Some(ConfigMapEnvSource {
                    name: "cfg".into(),
                    optional: None,
                }),
                ..Default::default()
            }]),
            env: Some(vec![plain("X_B", "override")]),
            ..Default::default()
        };
        let env = container_env(&container, &ctx(&pod), &sources).unwrap();
        assert_eq!(get(&env, "X_A"), Some("1"));
        assert_eq!(get(&env, "X_B"), Some("override"));
    }
}
