//! RES: admin-srv's resolver follows the Running instances of user-srv and token-srv
//! (CONTRACT.md §2 Core discovery, §3 the resolver's log line and refusal of empty updates).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use serde_json::{Value, json};

use super::{Case, Ctx, case_fn};
use crate::profile::ServiceSpec;
use crate::resolver_log::{self, ZERO_MARKER};
use crate::wait::wait_until;
use crate::{deploy, normalize, pods};

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            id: "RES-001",
            feature: "resolver",
            section: "§2, §3",
            summary: "admin-srv's latest resolver updates list exactly the Running user-srv and token-srv instances",
            run: case_fn!(lists_ready_instances),
        },
        Case {
            id: "RES-002",
            feature: "resolver",
            section: "§2, §3",
            summary: "scaling user-srv 1→3→1 is followed exactly",
            run: case_fn!(follows_scaling),
        },
        Case {
            id: "RES-003",
            feature: "resolver",
            section: "§2, §3",
            summary: "a deleted user-srv pod leaves the resolver; its replacement joins",
            run: case_fn!(deleted_pod_leaves),
        },
        Case {
            id: "RES-004",
            feature: "resolver",
            section: "§3, §5",
            summary: "with no user-srv instance the empty list is refused, never applied; a login answers in the error shape with the profile's 503/504 (implementation-specific)",
            run: case_fn!(empty_list_never_applied),
        },
    ]
}

const DEADLINE: Duration = Duration::from_secs(60);

/// Expected ids `<pod>.<name>` of a service's discoverable pods: Running and not terminating
/// (Core discovery lists Running pods; a terminating one leaves the list once it stops).
pub(super) async fn discoverable_ids(ctx: &Ctx, service: &ServiceSpec) -> Result<Vec<String>> {
    let mut ids: Vec<String> = pods::running_pods(&ctx.client(), ctx.namespace(), service)
        .await?
        .iter()
        .map(|p| format!("{}.{}", p.name_any(), service.name))
        .collect();
    ids.sort();
    Ok(ids)
}

pub(super) async fn admin_log(ctx: &Ctx) -> Result<String> {
    let admin = ctx.ready_pods(&ctx.profile.services.admin).await?.remove(0);
    ctx.logs(&admin).await
}

/// Waits until admin-srv's latest update for `service` lists exactly its `count` discoverable pods.
pub(super) async fn wait_in_sync(
    ctx: &Ctx,
    service: &ServiceSpec,
    count: usize,
) -> Result<Vec<Value>> {
    wait_until(
        DEADLINE,
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

pub(super) fn normalised(update: &[Value], service: &ServiceSpec) -> Value {
    json!(
        update
            .iter()
            .map(|i| normalize::resolver_instance(i, &service.deployment))
            .collect::<Vec<_>>()
    )
}

async fn lists_ready_instances(ctx: &Ctx) -> Result<Value> {
    let user = &ctx.profile.services.user;
    let token = &ctx.profile.services.token;
    let user_count = discoverable_ids(ctx, user).await?.len();
    let token_count = discoverable_ids(ctx, token).await?.len();
    let user_update = wait_in_sync(ctx, user, user_count).await?;
    let token_update = wait_in_sync(ctx, token, token_count).await?;
    Ok(json!({ "user": normalised(&user_update, user), "token": normalised(&token_update, token) }))
}

pub(super) async fn scale(ctx: &Ctx, service: &ServiceSpec, replicas: i32) -> Result<()> {
    deploy::scale(&ctx.client(), ctx.namespace(), service, replicas, DEADLINE).await
}

/// Runs `body`, then scales `service` back to `replicas` whatever happened.
async fn restoring_scale<F: std::future::Future<Output = Result<Value>>>(
    ctx: &Ctx,
    service: &ServiceSpec,
    replicas: i32,
    body: F,
) -> Result<Value> {
    let result = body.await;
    let restored = scale(ctx, service, replicas).await;
    let value = result?;
    restored.context("restoring the replica count")?;
    pods::wait_registered(&ctx.client(), &ctx.profile, service, DEADLINE).await?;
    ctx.wait_serving(service, DEADLINE).await?;
    Ok(value)
}

async fn follows_scaling(ctx: &Ctx) -> Result<Value> {
    let user = &ctx.profile.services.user;
    restoring_scale(ctx, user, 1, async {
        scale(ctx, user, 1).await?;
        wait_in_sync(ctx, user, 1).await?;
        scale(ctx, user, 3).await?;
        pods::wait_registered(&ctx.client(), &ctx.profile, user, DEADLINE).await?;
        let three = wait_in_sync(ctx, user, 3).await?;
        scale(ctx, user, 1).await?;
        let one = wait_in_sync(ctx, user, 1).await?;
        Ok(json!({ "at3": normalised(&three, user), "at1": normalised(&one, user) }))
    })
    .await
}

async fn deleted_pod_leaves(ctx: &Ctx) -> Result<Value> {
    let user = &ctx.profile.services.user;
    let old: Pod = ctx.ready_pods(user).await?.remove(0);
    let old_id = format!("{}.{}", old.name_any(), user.name);
    let api: Api<Pod> = Api::namespaced(ctx.client(), ctx.namespace());
    api.delete(&old.name_any(), &DeleteParams::default())
        .await?;
    deploy::wait_rolled_out(&ctx.client(), ctx.namespace(), &user.deployment, DEADLINE).await?;
    wait_until(
        DEADLINE,
        &format!("pod {} to be gone", old.name_any()),
        || async { Ok(api.get_opt(&old.name_any()).await?.is_none().then_some(())) },
    )
    .await?;
    pods::wait_registered(&ctx.client(), &ctx.profile, user, DEADLINE).await?;
    ctx.wait_serving(user, DEADLINE).await?;
    let update = wait_in_sync(ctx, user, 1).await?;
    if resolver_log::ids(&update).contains(&old_id) {
        bail!("the deleted instance {old_id} is still listed");
    }
    Ok(json!({ "after": normalised(&update, user) }))
}

async fn empty_list_never_applied(ctx: &Ctx) -> Result<Value> {
    let user = &ctx.profile.services.user;
    let refusals = |log: &str| -> Vec<String> {
        log.lines()
            .filter(|l| l.contains(ZERO_MARKER))
            .map(String::from)
            .collect()
    };
    let before = refusals(&admin_log(ctx).await?).len();
    let observed = restoring_scale(ctx, user, 1, async {
        scale(ctx, user, 0).await?;
        let refusal = wait_until(
            DEADLINE,
            "admin-srv to refuse the empty user-srv list",
            || async { Ok(refusals(&admin_log(ctx).await?).get(before).cloned()) },
        )
        .await?;
        let refusal = &refusal[refusal.find(ZERO_MARKER).unwrap_or(0)..];
        let mut observed = json!({ "refusal": refusal });
        if ctx.profile.supports("login-http") {
            let demo = &ctx.profile.expectations.demo_user;
            let (status, body) =
                crate::login::http_login_raw(ctx, &demo.user_name, &demo.password).await?;
            let allowed = &ctx.profile.expectations.no_instance_http_status;
            if !allowed.contains(&status) {
                bail!(
                    "login with no user-srv instance answered {status}, the profile expects one of {allowed:?}: {body}"
                );
            }
            super::login::check_error_shape(status, &body)?;
            observed["loginWithoutUserSrv"] = json!({ "status": status, "reason": body["reason"] });
        }
        Ok(observed)
    })
    .await?;
    let update = wait_in_sync(ctx, user, 1).await?;
    let updates = resolver_log::updates(&admin_log(ctx).await?)?;
    if updates.iter().any(Vec::is_empty) {
        bail!("admin-srv applied an empty instance list");
    }
    let mut observed = observed;
    observed["after"] = normalised(&update, user);
    Ok(observed)
}
