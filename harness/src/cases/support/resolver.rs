//! admin-srv's resolver as cases see it: the instances that should be listed, the latest
//! update read from its log, and scaling with its restore.

use anyhow::{Result, bail};
use kube::ResourceExt;
use serde_json::{Value, json};

use crate::context::Ctx;
use crate::profile::ServiceSpec;
use crate::wait::wait_until;
use crate::{deploy, normalize, pods, resolver_log};

/// Expected ids `<pod>.<name>` of a service's discoverable pods: Running and not terminating
/// (Core discovery lists Running pods; a terminating one leaves the list once it stops).
pub(crate) async fn discoverable_ids(ctx: &Ctx, service: &ServiceSpec) -> Result<Vec<String>> {
    let mut ids: Vec<String> = pods::running_pods(&ctx.client(), ctx.namespace(), service)
        .await?
        .iter()
        .map(|p| format!("{}.{}", p.name_any(), service.name))
        .collect();
    ids.sort();
    Ok(ids)
}

/// admin-srv's whole log (its first ready pod).
pub(crate) async fn admin_log(ctx: &Ctx) -> Result<String> {
    let admin = ctx.ready_pods(&ctx.profile.services.admin).await?.remove(0);
    ctx.logs(&admin).await
}

/// Waits until admin-srv's latest update for `service` lists exactly its `count` discoverable pods.
pub(crate) async fn wait_in_sync(
    ctx: &Ctx,
    service: &ServiceSpec,
    count: usize,
) -> Result<Vec<Value>> {
    wait_until(
        ctx.profile.timeouts.step,
        &format!(
            "admin-srv's resolver to list {count} running {} instance(s)",
            service.name
        ),
        || async {
            let expected = discoverable_ids(ctx, service).await?;
            if expected.len() != count {
                bail!("{} running pods, waiting for {count}", expected.len());
            }
            let updates = resolver_log::updates(&admin_log(ctx).await?)?;
            let Some(latest) = resolver_log::latest_for(&updates, &service.name) else {
                bail!("no resolver update for {} yet", service.name);
            };
            let listed = resolver_log::ids(latest);
            if listed != expected {
                bail!("latest update lists {listed:?}, running pods are {expected:?}");
            }
            Ok(Some(latest.clone()))
        },
    )
    .await
}

/// An update's instances, normalised for snapshots.
pub(crate) fn normalised(update: &[Value], service: &ServiceSpec) -> Value {
    json!(
        update
            .iter()
            .map(|i| normalize::resolver_instance(i, &service.deployment))
            .collect::<Vec<_>>()
    )
}

/// Scales `service` and waits until exactly `replicas` pods exist.
pub(crate) async fn scale(ctx: &Ctx, service: &ServiceSpec, replicas: i32) -> Result<()> {
    deploy::scale(
        &ctx.client(),
        ctx.namespace(),
        service,
        replicas,
        ctx.profile.timeouts.step,
    )
    .await
}

/// Registers scaling `service` back to `replicas` (registered and serving) after the case,
/// whatever happens.
pub(crate) fn restore_replicas_afterwards(ctx: &Ctx, service: &ServiceSpec, replicas: i32) {
    let service = service.clone();
    let what = format!("scaling {} back to {replicas}", service.deployment);
    ctx.on_cleanup(&what, move |ctx| {
        Box::pin(async move {
            scale(ctx, &service, replicas).await?;
            ctx.wait_in_service(&service).await
        })
    });
}
