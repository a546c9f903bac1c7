//! Helpers shared by case modules (case modules never import each other).

pub(crate) mod bad_input;
pub(crate) mod foreign;
pub(crate) mod namespace;
pub(crate) mod raw_grpc;
pub(crate) mod resolver;
pub(crate) mod token_config;

use anyhow::{Result, bail};
use kube::ResourceExt;

use crate::context::Ctx;
use crate::pod_process::restart_count;
use crate::profile::ServiceSpec;

/// Name, uid and restart count of each pod of a service (equal before and after = no crash).
pub(crate) async fn identity(
    ctx: &Ctx,
    service: &ServiceSpec,
) -> Result<Vec<(String, String, i32)>> {
    Ok(ctx
        .ready_pods(service)
        .await?
        .iter()
        .map(|p| (p.name_any(), p.uid().unwrap_or_default(), restart_count(p)))
        .collect())
}

/// Fails when the pods of `service` changed or restarted since `before`.
pub(crate) async fn still_same_pods(
    ctx: &Ctx,
    service: &ServiceSpec,
    before: &[(String, String, i32)],
) -> Result<()> {
    let after = identity(ctx, service).await?;
    if after != before {
        bail!(
            "{} pods changed or restarted (before {before:?}, after {after:?})",
            service.deployment
        );
    }
    Ok(())
}
