//! Foreign pods: pods a case creates that claim to be instances of user-srv (with malformed
//! annotations, or never Ready), running an idle image so they never register themselves.

use anyhow::Result;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use serde_json::json;

use crate::context::Ctx;
use crate::wait::wait_gone;

/// Name prefix of the pods BAD-005 creates.
pub(crate) const FOREIGN_POD: &str = "conformance-foreign";

/// The image foreign pods run: the harness's own pod image, idle, on every backend (its pushed
/// reference when the run pushed the images to a registry).
pub(crate) fn idle_image(ctx: &Ctx) -> String {
    let image = crate::images::HARNESS_POD_IMAGE;
    ctx.profile
        .provided_image(image)
        .unwrap_or_else(|| image.to_string())
}

/// A pod claiming to be an instance of user-srv, idle (the idle image, or `sleep`) so it never
/// registers.
pub(crate) fn foreign_pod(
    ctx: &Ctx,
    suffix: &str,
    image: &str,
    metadata: &str,
    protocols: &str,
) -> Pod {
    let user = &ctx.profile.services.user;
    let name = format!("{FOREIGN_POD}-{suffix}");
    serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": {
                ctx.profile.key("id"): format!("{name}.{}", user.name),
                ctx.profile.key("app"): user.name,
                ctx.profile.key("version"): "v0",
            },
            "annotations": {
                ctx.profile.key("metadata"): metadata,
                ctx.profile.key("protocols"): protocols,
            },
        },
        "spec": {
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "foreign",
                "image": image,
                "ports": [{ "name": "grpc-port", "containerPort": user.grpc_port, "protocol": "TCP" }],
            }],
        },
    }))
    .expect("a static pod shape")
}

/// Registers the deletion of the foreign pods `names` after the case, whatever happens.
pub(crate) fn delete_afterwards(ctx: &Ctx, namespace: &str, names: &[String]) {
    let (namespace, names) = (namespace.to_string(), names.to_vec());
    ctx.on_cleanup(
        &format!("deleting pods {namespace}/{}", names.join(", ")),
        move |ctx| Box::pin(async move { delete_foreign_pods(ctx, &namespace, &names).await }),
    );
}

/// Deletes the foreign pods `names` and waits until they are gone.
async fn delete_foreign_pods(ctx: &Ctx, namespace: &str, names: &[String]) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(ctx.client(), namespace);
    for name in names {
        if api.get_opt(name).await?.is_some() {
            api.delete(name, &DeleteParams::default().grace_period(0))
                .await?;
        }
    }
    for name in names {
        wait_gone(&api, name, None, ctx.profile.timeouts.step).await?;
    }
    Ok(())
}
