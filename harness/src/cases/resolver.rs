//! RES: admin-srv's resolver follows the Running instances of user-srv and token-srv
//! (CONTRACT.md §2 Core discovery, §3 the resolver's log line and refusal of empty updates).

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use serde_json::{Value, json};

use super::support::bad_input::check_error_shape;
use super::support::resolver::{
    admin_log, discoverable_ids, normalised, restore_replicas_afterwards, scale, wait_in_sync,
};
use super::{Case, Ctx, case_fn};
use crate::features::Feature;
use crate::pods;
use crate::resolver_log::{self, ZERO_MARKER};
use crate::wait::{wait_gone, wait_until};

pub(super) fn cases() -> Vec<Case> {
    vec![
        Case {
            id: "RES-001",
            feature: Feature::Resolver,
            section: "§2, §3",
            summary: "admin-srv's latest resolver updates list exactly the Running user-srv and token-srv instances",
            lever: None,
            run: case_fn!(lists_ready_instances),
        },
        Case {
            id: "RES-002",
            feature: Feature::Resolver,
            section: "§2, §3",
            summary: "scaling user-srv 1→3→1 is followed exactly",
            lever: None,
            run: case_fn!(follows_scaling),
        },
        Case {
            id: "RES-003",
            feature: Feature::Resolver,
            section: "§2, §3",
            summary: "a deleted user-srv pod leaves the resolver; its replacement joins",
            lever: None,
            run: case_fn!(deleted_pod_leaves),
        },
        Case {
            id: "RES-004",
            feature: Feature::Resolver,
            section: "§3, §5",
            summary: "with no user-srv instance the empty list is refused, never applied; a login answers in the error shape with the profile's 503/504 (implementation-specific)",
            lever: None,
            run: case_fn!(empty_list_never_applied),
        },
    ]
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

async fn follows_scaling(ctx: &Ctx) -> Result<Value> {
    let user = &ctx.profile.services.user;
    restore_replicas_afterwards(ctx, user, 1);
    scale(ctx, user, 1).await?;
    wait_in_sync(ctx, user, 1).await?;
    scale(ctx, user, 3).await?;
    pods::wait_registered(&ctx.client(), &ctx.profile, user, ctx.profile.timeouts.step).await?;
    let three = wait_in_sync(ctx, user, 3).await?;
    scale(ctx, user, 1).await?;
    let one = wait_in_sync(ctx, user, 1).await?;
    Ok(json!({ "at3": normalised(&three, user), "at1": normalised(&one, user) }))
}

async fn deleted_pod_leaves(ctx: &Ctx) -> Result<Value> {
    let user = &ctx.profile.services.user;
    let old: Pod = ctx.ready_pods(user).await?.remove(0);
    let old_id = format!("{}.{}", old.name_any(), user.name);
    let api: Api<Pod> = Api::namespaced(ctx.client(), ctx.namespace());
    api.delete(&old.name_any(), &DeleteParams::default())
        .await?;
    ctx.wait_rolled_out(user).await?;
    wait_gone(
        &api,
        &old.name_any(),
        old.uid().as_deref(),
        ctx.profile.timeouts.step,
    )
    .await?;
    ctx.wait_in_service(user).await?;
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
    restore_replicas_afterwards(ctx, user, 1);
    scale(ctx, user, 0).await?;
    let refusal = wait_until(
        ctx.profile.timeouts.step,
        "admin-srv to refuse the empty user-srv list",
        || async { Ok(refusals(&admin_log(ctx).await?).get(before).cloned()) },
    )
    .await?;
    let refusal = &refusal[refusal.find(ZERO_MARKER).unwrap_or(0)..];
    let mut observed = json!({ "refusal": refusal });
    // The login that shows the no-instance answer is the Core HTTP login.
    let demo = &ctx.profile.expectations.demo_user;
    let (status, body) = crate::login::http_login_raw(ctx, &demo.user_name, &demo.password).await?;
    let allowed = &ctx.profile.expectations.no_instance_http_status;
    if !allowed.contains(&status) {
        bail!(
            "login with no user-srv instance answered {status}, the profile expects one of {allowed:?}: {body}"
        );
    }
    check_error_shape(status, &body)?;
    observed["loginWithoutUserSrv"] = json!({ "status": status, "reason": body["reason"] });
    scale(ctx, user, 1).await?;
    ctx.wait_in_service(user).await?;
    let update = wait_in_sync(ctx, user, 1).await?;
    let updates = resolver_log::updates(&admin_log(ctx).await?)?;
    if updates.iter().any(Vec::is_empty) {
        bail!("admin-srv applied an empty instance list");
    }
    observed["after"] = normalised(&update, user);
    Ok(observed)
}
