//! Deploys an implementation: applies the profile's manifests in kind order (server-side
//! apply) and waits, with deadlines, for rollout and registration.

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::discovery::{self, Scope};

use crate::manifests::{self, Manifest};
use crate::profile::Profile;
use crate::wait::{wait_for, wait_until};

/// Field manager of every object the harness applies.
pub(crate) const FIELD_MANAGER: &str = "gomicro-conformance";

/// Server-side applies each manifest in order.
pub(crate) async fn apply(client: &kube::Client, manifests: &[Manifest]) -> Result<()> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for manifest in manifests {
        let api = api_for(client, manifest).await?;
        api.patch(manifest.name(), &params, &Patch::Apply(&manifest.object))
            .await
            .with_context(|| {
                format!(
                    "applying {} ({} document {})",
                    manifest.describe(),
                    manifest.file.display(),
                    manifest.document
                )
            })?;
    }
    Ok(())
}

/// Applies the profile's manifests, waits for every Deployment to roll out, then (with a shorter
/// deadline, warning only) for its pods to register.
pub async fn deploy(client: &kube::Client, profile: &Profile) -> Result<()> {
    let deadline = profile.timeouts.deploy;
    let mut manifests = manifests::load(&profile.manifests)?;
    for change in manifests::use_provided_images(&mut manifests, profile) {
        eprintln!("[deploy] {change}");
    }
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
            crate::pods::wait_registered(client, profile, service, profile.timeouts.registration)
                .await
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

/// Deletes every object of the profile's manifests (in reverse apply order, absent ones
/// skipped) and waits until all of them are gone, so a later deployment starts clean.
pub async fn remove(client: &kube::Client, profile: &Profile) -> Result<()> {
    let deadline = profile.timeouts.deploy;
    let manifests = manifests::load(&profile.manifests)?;
    let mut apis = Vec::new();
    for manifest in &manifests {
        apis.push((manifest, api_for(client, manifest).await?));
    }
    for (manifest, api) in apis.iter().rev() {
        match api
            .delete(manifest.name(), &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                return Err(e).with_context(|| format!("deleting {}", manifest.describe()));
            }
        }
    }
    wait_until(
        deadline,
        &format!("the objects of {} to be gone", profile.manifests.display()),
        || async {
            for (manifest, api) in &apis {
                if api.get_opt(manifest.name()).await?.is_some() {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        },
    )
    .await
}

/// The API of a manifest's kind, in its namespace when the kind is namespaced.
async fn api_for(client: &kube::Client, manifest: &Manifest) -> Result<Api<DynamicObject>> {
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
    Ok(match capabilities.scope {
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
    })
}

/// Waits until a Deployment's newest ReplicaSet is fully available.
pub(crate) async fn wait_rolled_out(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    deadline: Duration,
) -> Result<()> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let what = format!("deployment {namespace}/{name} to roll out");
    let done = |deployment: Option<&Deployment>| deployment.is_some_and(rolled_out);
    wait_for(&api, name, deadline, &what, done).await.map(drop)
}

/// Scales a Deployment, waits for the rollout and until exactly `replicas` pods exist
/// (terminating pods count until they are gone).
pub(crate) async fn scale(
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
pub(crate) fn rolled_out(deployment: &Deployment) -> bool {
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
