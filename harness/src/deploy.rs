//! Deploys an implementation: applies the profile's manifests in order (server-side apply)
//! and waits, with deadlines, for rollout and registration.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::{self, Scope};

use crate::profile::Profile;
use crate::wait::wait_until;

/// How long deployment waits for the pods of each service to register.
pub const REGISTRATION_DEADLINE: Duration = Duration::from_secs(30);

/// Field manager of every object the harness applies.
pub const FIELD_MANAGER: &str = "gomicro-conformance";

/// One object read from a manifest file.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The file it came from.
    pub file: PathBuf,
    /// Its 1-based position among the file's documents.
    pub document: usize,
    /// The object.
    pub object: DynamicObject,
}

impl Manifest {
    /// `Kind/namespace/name` for messages.
    pub fn describe(&self) -> String {
        let kind = self
            .object
            .types
            .as_ref()
            .map(|t| t.kind.as_str())
            .unwrap_or("?");
        let name = self.object.metadata.name.as_deref().unwrap_or("?");
        match &self.object.metadata.namespace {
            Some(ns) => format!("{kind}/{ns}/{name}"),
            None => format!("{kind}/{name}"),
        }
    }
}

/// Reads every `*.yaml`/`*.yml` file of `dir` in file-name order, each possibly with several documents.
pub fn load_manifests(dir: &Path) -> Result<Vec<Manifest>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read manifest directory {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            )
        })
        .collect();
    files.sort();
    let mut manifests = Vec::new();
    for file in files {
        manifests.extend(parse_manifest_file(&file)?);
    }
    if manifests.is_empty() {
        bail!("manifest directory {} holds no YAML objects", dir.display());
    }
    Ok(manifests)
}

/// Parses one manifest file into objects, naming the file and document in errors.
pub fn parse_manifest_file(file: &Path) -> Result<Vec<Manifest>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text)
        .map_err(|e| anyhow::anyhow!("{}: not valid YAML: {e}", file.display()))?;
    let mut manifests = Vec::new();
    for (index, document) in documents.into_iter().enumerate() {
        if document.is_null() {
            continue;
        }
        let object: DynamicObject = serde_json::from_value(document).map_err(|e| {
            anyhow::anyhow!(
                "{} document {}: not a Kubernetes object: {e}",
                file.display(),
                index + 1
            )
        })?;
        if object.types.is_none() || object.metadata.name.is_none() {
            bail!(
                "{} document {}: apiVersion, kind and metadata.name are required",
                file.display(),
                index + 1
            );
        }
        manifests.push(Manifest {
            file: file.to_path_buf(),
            document: index + 1,
            object,
        });
    }
    Ok(manifests)
}

/// Server-side applies each manifest in order.
pub async fn apply(client: &kube::Client, manifests: &[Manifest]) -> Result<()> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for manifest in manifests {
        let types = manifest.object.types.as_ref().expect("checked when parsed");
        let gvk = kube::core::GroupVersionKind::try_from(types)
            .with_context(|| format!("{}: bad apiVersion", manifest.describe()))?;
        let (resource, capabilities) =
            discovery::pinned_kind(client, &gvk)
                .await
                .with_context(|| {
                    format!(
                        "{}: the API server does not serve this kind",
                        manifest.describe()
                    )
                })?;
        let name = manifest
            .object
            .metadata
            .name
            .clone()
            .expect("checked when parsed");
        let api: Api<DynamicObject> = match capabilities.scope {
            Scope::Namespaced => {
                let namespace = manifest
                    .object
                    .metadata
                    .namespace
                    .as_deref()
                    .unwrap_or("default");
                Api::namespaced_with(client.clone(), namespace, &resource)
            }
            Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        api.patch(&name, &params, &Patch::Apply(&manifest.object))
            .await
            .with_context(|| {
                format!(
                    "applying {} from {}",
                    manifest.describe(),
                    manifest.file.display()
                )
            })?;
    }
    Ok(())
}

/// Applies the profile's manifests, waits for every Deployment to roll out, then (with a shorter
/// deadline, warning only) for its pods to register.
pub async fn deploy(client: &kube::Client, profile: &Profile, deadline: Duration) -> Result<()> {
    let manifests = load_manifests(&profile.manifests)?;
    eprintln!(
        "[deploy] applying {} objects from {}",
        manifests.len(),
        profile.manifests.display()
    );
    apply(client, &manifests).await?;
    for (_, service) in profile.all_services() {
        wait_rolled_out(client, &profile.namespace, &service.deployment, deadline).await?;
    }
    // A service that never registers is what the REG/RES cases report, case by case, so it
    // does not stop the run here.
    let mut unregistered = Vec::new();
    for (_, service) in profile.all_services() {
        if let Err(error) =
            crate::pods::wait_registered(client, profile, service, REGISTRATION_DEADLINE).await
        {
            eprintln!("[deploy] warning: {error:#}");
            unregistered.push(service.name.as_str());
        }
    }
    if unregistered.is_empty() {
        eprintln!("[deploy] all services rolled out and registered");
    } else {
        eprintln!(
            "[deploy] rolled out; not registered: {}",
            unregistered.join(", ")
        );
    }
    Ok(())
}

/// Waits until a Deployment's newest ReplicaSet is fully available.
pub async fn wait_rolled_out(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    deadline: Duration,
) -> Result<()> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    wait_until(
        deadline,
        &format!("deployment {namespace}/{name} to roll out"),
        || async {
            let Some(deployment) = api.get_opt(name).await? else {
                return Ok(None);
            };
            Ok(rolled_out(&deployment).then_some(()))
        },
    )
    .await
}

/// Scales a Deployment, waits for the rollout and until exactly `replicas` pods exist
/// (terminating pods count until they are gone).
pub async fn scale(
    client: &kube::Client,
    namespace: &str,
    service: &crate::profile::ServiceSpec,
    replicas: i32,
    deadline: Duration,
) -> Result<()> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    api.patch(
        &service.deployment,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "spec": { "replicas": replicas } })),
    )
    .await
    .with_context(|| format!("scaling {} to {replicas}", service.deployment))?;
    wait_rolled_out(client, namespace, &service.deployment, deadline).await?;
    wait_until(
        deadline,
        &format!("{} to have exactly {replicas} pods", service.deployment),
        || async {
            let all = crate::pods::all_pods(client, namespace, service).await?;
            Ok((all.len() == replicas as usize).then_some(()))
        },
    )
    .await
}

/// Whether a Deployment has rolled out all replicas of its current generation.
pub fn rolled_out(deployment: &Deployment) -> bool {
    let desired = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let Some(status) = &deployment.status else {
        return false;
    };
    status.observed_generation.unwrap_or(0) >= deployment.metadata.generation.unwrap_or(0)
        && status.updated_replicas.unwrap_or(0) == desired
        && status.available_replicas.unwrap_or(0) == desired
        && status.replicas.unwrap_or(0) == desired
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_manifests_parse_in_contract_order() {
        let dir = crate::images::workspace_root().join(".k8s");
        let kinds: Vec<String> = load_manifests(&dir)
            .unwrap()
            .iter()
            .map(Manifest::describe)
            .collect();
        let position = |needle: &str| kinds.iter().position(|k| k == needle).unwrap();
        assert!(
            position("Namespace/go-micro") < position("ServiceAccount/go-micro/go-micro-services")
        );
        assert!(
            position("ServiceAccount/go-micro/go-micro-services")
                < position("Role/go-micro/go-micro-config")
        );
        assert!(
            position("Role/go-micro/go-micro-config") < position("ClusterRole/go-micro-registry")
        );
        assert!(
            position("ConfigMap/go-micro/token-srv") < position("Deployment/go-micro/token-srv")
        );
        assert!(position("Deployment/go-micro/token-srv") < position("Service/go-micro/token-srv"));
        assert_eq!(kinds.len(), 15);
    }

    #[test]
    fn malformed_manifest_names_file_and_document() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.yaml");
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n---\nkind: [unclosed\n",
        )
        .unwrap();
        let err = format!("{:#}", parse_manifest_file(&file).unwrap_err());
        assert!(err.contains("bad.yaml"), "{err}");
    }

    #[test]
    fn object_without_name_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("noname.yaml");
        std::fs::write(&file, "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n").unwrap();
        let err = format!("{:#}", parse_manifest_file(&file).unwrap_err());
        assert!(
            err.contains("document 1") && err.contains("metadata.name"),
            "{err}"
        );
    }
}
