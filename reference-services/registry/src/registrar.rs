//! Self-registration of the own pod.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use serde_json::Value;

use crate::{PodIdentity, RegistryError, ServiceInstance, deregister_patch, register_patch};

/// Upper bound of a deregistration.
pub const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(10);

/// Registers and deregisters service instances on the pod this process runs in.
#[derive(Clone)]
pub struct Registrar {
    pods: Api<Pod>,
    pod: PodIdentity,
}

impl Registrar {
    /// A registrar for `pod`.
    pub fn new(client: kube::Client, pod: PodIdentity) -> Self {
        Registrar {
            pods: Api::namespaced(client, &pod.namespace),
            pod,
        }
    }

    /// The pod this registrar patches.
    pub fn pod(&self) -> &PodIdentity {
        &self.pod
    }

    /// Writes the instance's labels and annotations on the pod (one strategic-merge PATCH).
    pub async fn register(&self, instance: &ServiceInstance) -> Result<(), RegistryError> {
        self.patch(register_patch(instance)?).await?;
        tracing::info!(pod = %self.pod, id = %instance.id, name = %instance.name, "registered service instance");
        Ok(())
    }

    /// Clears the labels and annotations, bounded by [`DEREGISTER_TIMEOUT`].
    pub async fn deregister(&self) -> Result<(), RegistryError> {
        let timeout = RegistryError::DeregisterTimeout {
            pod: self.pod.to_string(),
            seconds: DEREGISTER_TIMEOUT.as_secs(),
        };
        tokio::time::timeout(DEREGISTER_TIMEOUT, self.patch(deregister_patch()))
            .await
            .map_err(|_| timeout)??;
        tracing::info!(pod = %self.pod, "deregistered service instance");
        Ok(())
    }

    async fn patch(&self, body: Value) -> Result<(), RegistryError> {
        self.pods
            .patch(
                &self.pod.name,
                &PatchParams::default(),
                &Patch::Strategic(body),
            )
            .await
            .map(drop)
            .map_err(|source| {
                RegistryError::from_kube("patch", "pods", &self.pod.namespace, source)
            })
    }
}
