//! Errors of registration and discovery.

use std::path::PathBuf;

/// What went wrong while registering, deregistering or discovering.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Neither `POD_NAME` nor `HOSTNAME` is set.
    #[error("cannot determine the own pod name: neither POD_NAME nor HOSTNAME is set")]
    NoPodName,
    /// The namespace file could not be read and `POD_NAMESPACE` is not set.
    #[error(
        "cannot determine the own pod namespace: reading {path} failed ({source}); \
         run in a pod with a mounted service account or set POD_NAMESPACE"
    )]
    NoNamespace {
        /// The service-account namespace file.
        path: PathBuf,
        /// Why reading it failed.
        source: std::io::Error,
    },
    /// An endpoint of the instance is not `scheme://host:port`.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The offending endpoint.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The API server refused the request (HTTP 403).
    #[error(
        "forbidden: the service account may not {verb} {resource} in namespace {namespace:?} \
         (check the RBAC rules): {message}"
    )]
    Forbidden {
        /// API verb, e.g. `patch`.
        verb: &'static str,
        /// API resource, e.g. `pods`.
        resource: &'static str,
        /// Namespace of the request (`*` for all namespaces).
        namespace: String,
        /// The API server's message.
        message: String,
    },
    /// Any other Kubernetes API failure.
    #[error("cannot {verb} {resource} in namespace {namespace:?}: {source}")]
    Kube {
        /// API verb, e.g. `patch`.
        verb: &'static str,
        /// API resource, e.g. `pods`.
        resource: &'static str,
        /// Namespace of the request (`*` for all namespaces).
        namespace: String,
        /// The client error.
        source: kube::Error,
    },
    /// A resolver target is not `discovery:///<service name>`.
    #[error("invalid resolver target {target:?}: {reason}")]
    InvalidTarget {
        /// The target as given.
        target: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Deregistration did not finish in time.
    #[error("deregistration of pod {pod} did not finish within {seconds} s")]
    DeregisterTimeout {
        /// `namespace/name` of the pod.
        pod: String,
        /// The bound that was exceeded.
        seconds: u64,
    },
}

impl RegistryError {
    /// Classifies a kube client error of request `verb resource` in `namespace`.
    pub fn from_kube(
        verb: &'static str,
        resource: &'static str,
        namespace: &str,
        source: kube::Error,
    ) -> Self {
        match &source {
            kube::Error::Api(status) if status.code == 403 => RegistryError::Forbidden {
                verb,
                resource,
                namespace: namespace.to_owned(),
                message: status.message.clone(),
            },
            _ => RegistryError::Kube {
                verb,
                resource,
                namespace: namespace.to_owned(),
                source,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_names_verb_resource_namespace_and_api_message() {
        let status = kube::core::Status {
            code: 403,
            message: "pods \"p\" is forbidden: User \"system:serviceaccount:go-micro:default\" cannot patch resource \"pods\"".into(),
            reason: "Forbidden".into(),
            ..Default::default()
        };
        let error = RegistryError::from_kube(
            "patch",
            "pods",
            "go-micro",
            kube::Error::Api(Box::new(status)),
        );
        let text = error.to_string();
        assert!(matches!(error, RegistryError::Forbidden { .. }));
        for needle in [
            "patch pods",
            "\"go-micro\"",
            "system:serviceaccount:go-micro:default",
        ] {
            assert!(text.contains(needle), "{needle:?} missing in {text}");
        }
    }

    #[test]
    fn other_api_errors_keep_the_source() {
        let status = kube::core::Status {
            code: 404,
            message: "pods \"p\" not found".into(),
            ..Default::default()
        };
        let error = RegistryError::from_kube(
            "patch",
            "pods",
            "go-micro",
            kube::Error::Api(Box::new(status)),
        );
        assert!(matches!(error, RegistryError::Kube { .. }));
        assert!(
            error
                .to_string()
                .starts_with("cannot patch pods in namespace \"go-micro\"")
        );
    }
}
