//! Namespaces a case creates for itself, removed after the case whatever happens.

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use crate::context::Ctx;

/// Creates the namespace `<prefix>-<process id>` and registers its deletion first; returns its
/// name.
pub(crate) async fn scratch_namespace(ctx: &Ctx, prefix: &str) -> Result<String> {
    let name = format!("{prefix}-{}", std::process::id());
    let doomed = name.clone();
    ctx.on_cleanup(&format!("deleting namespace {name}"), move |ctx| {
        Box::pin(async move {
            let namespaces: Api<Namespace> = Api::all(ctx.client());
            match namespaces.delete(&doomed, &DeleteParams::default()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
                Err(error) => Err(error.into()),
            }
        })
    });
    let namespaces: Api<Namespace> = Api::all(ctx.client());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": name } }))?,
        )
        .await
        .with_context(|| format!("creating namespace {name}"))?;
    Ok(name)
}
