//! Which pod this process runs in.

use std::path::{Path, PathBuf};

use crate::RegistryError;

/// Where Kubernetes mounts the pod's namespace.
pub const NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Name and namespace of the pod this process runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodIdentity {
    /// Pod name.
    pub name: String,
    /// Pod namespace.
    pub namespace: String,
}

impl PodIdentity {
    /// Reads the identity from the environment: name from `POD_NAME`, else `HOSTNAME`;
    /// namespace from `POD_NAMESPACE`, else the service-account namespace file.
    pub fn from_env() -> Result<PodIdentity, RegistryError> {
        Self::resolve(|key| std::env::var(key).ok(), Path::new(NAMESPACE_FILE))
    }

    /// Same as [`PodIdentity::from_env`] with an injected environment and namespace file.
    pub fn resolve(
        env: impl Fn(&str) -> Option<String>,
        namespace_file: &Path,
    ) -> Result<PodIdentity, RegistryError> {
        let non_empty = |key: &str| {
            env(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let name = non_empty("POD_NAME")
            .or_else(|| non_empty("HOSTNAME"))
            .ok_or(RegistryError::NoPodName)?;
        let namespace = match non_empty("POD_NAMESPACE") {
            Some(namespace) => namespace,
            None => std::fs::read_to_string(namespace_file)
                .map(|content| content.trim().to_owned())
                .map_err(|source| RegistryError::NoNamespace {
                    path: PathBuf::from(namespace_file),
                    source,
                })?,
        };
        Ok(PodIdentity { name, namespace })
    }
}

impl std::fmt::Display for PodIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |key| map.get(key).cloned()
    }

    fn namespace_file(content: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "gomicro-ns-{}-{}",
            std::process::id(),
            content.len()
        ));
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn uses_hostname_and_namespace_file() {
        let file = namespace_file("go-micro\n");
        let identity =
            PodIdentity::resolve(env_of(&[("HOSTNAME", "user-srv-abc")]), &file).unwrap();
        assert_eq!(
            identity,
            PodIdentity {
                name: "user-srv-abc".into(),
                namespace: "go-micro".into()
            }
        );
    }

    #[test]
    fn pod_name_and_namespace_env_take_precedence() {
        let env = env_of(&[
            ("HOSTNAME", "host"),
            ("POD_NAME", "pod"),
            ("POD_NAMESPACE", "ns"),
        ]);
        let identity = PodIdentity::resolve(env, Path::new("/nonexistent/namespace")).unwrap();
        assert_eq!(identity.to_string(), "ns/pod");
    }

    #[test]
    fn missing_sources_are_named() {
        let no_name = PodIdentity::resolve(env_of(&[]), Path::new("/nonexistent")).unwrap_err();
        assert!(
            no_name
                .to_string()
                .contains("neither POD_NAME nor HOSTNAME")
        );
        let no_ns =
            PodIdentity::resolve(env_of(&[("HOSTNAME", "h")]), Path::new("/nonexistent/ns"))
                .unwrap_err();
        assert!(no_ns.to_string().contains("/nonexistent/ns"), "{no_ns}");
    }
}
