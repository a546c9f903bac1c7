//! CFG: ConfigMap configuration: load, live reload, bad updates, deletion (CONTRACT.md §4).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use serde_json::{Value, json};

use super::support::token_config::{
    fresh_key, rejection_message, reports_rejection, restore_token_config_afterwards, set_api_key,
    wait_signed_with,
};
use super::{Case, Ctx, case_fn};
use crate::configmap::{self, CONFIG_KEY};
use crate::features::Feature;
use crate::login::{any_login, check_reply};
use crate::wait::{wait_gone, wait_until};
use crate::{pod_process, pods};

pub(super) fn cases() -> Vec<Case> {
    vec![
        Case {
            id: "CFG-001",
            feature: Feature::ConfigLoad,
            section: "§4",
            summary: "each service loads its ConfigMap entry as <namespace>/<configmap>/config.yaml",
            lever: None,
            run: case_fn!(configmap_loaded),
        },
        Case {
            id: "CFG-002",
            feature: Feature::ConfigLiveReload,
            section: "§4",
            summary: "a new auth.api_key in token-srv's ConfigMap signs the next token, without a restart",
            lever: None,
            run: case_fn!(api_key_reloads_live),
        },
        Case {
            id: "CFG-003",
            feature: Feature::ConfigBadInput,
            section: "§4",
            summary: "a malformed ConfigMap update is rejected visibly and the last good config keeps serving",
            lever: None,
            run: case_fn!(malformed_update_rejected),
        },
        Case {
            id: "CFG-004",
            feature: Feature::ConfigLiveReload,
            section: "§4",
            summary: "deleting the ConfigMap keeps the values it gave",
            lever: None,
            run: case_fn!(deleted_configmap_keeps_values),
        },
    ]
}

async fn configmap_loaded(ctx: &Ctx) -> Result<Value> {
    let mut loaded = serde_json::Map::new();
    for (role, service) in ctx.profile.all_services() {
        let key = format!("{}/{}/{CONFIG_KEY}", ctx.namespace(), service.config_map);
        let marker = format!("config loaded: {key}");
        // The pods that exist now (one may just have replaced another), their logs read until
        // the line appears or the deadline passes.
        let line = wait_until(
            ctx.profile.timeouts.step,
            &format!("every running {} pod to log {marker:?}", service.name),
            || async {
                let running = pods::running_pods(&ctx.client(), ctx.namespace(), service).await?;
                let mut found = None;
                for pod in &running {
                    let log = ctx.logs(pod).await?;
                    match log.lines().find_map(|l| l.find(&marker).map(|at| &l[at..])) {
                        Some(line) => found = Some(line.to_string()),
                        None => return Ok(None),
                    }
                }
                Ok(found)
            },
        )
        .await?;
        loaded.insert(role.into(), json!(line));
    }
    Ok(json!({ "loaded": loaded }))
}

/// Identity of the token-srv pods: normalised names with restart counts.
async fn token_pods_identity(ctx: &Ctx) -> Result<Vec<Value>> {
    let token = &ctx.profile.services.token;
    let pods: Vec<Pod> = ctx.ready_pods(token).await?;
    Ok(pods
        .iter()
        .map(|p| {
            json!({
                "pod": crate::normalize::pod_name(&p.name_any(), &token.deployment),
                "uid": p.uid(),
                "restarts": pod_process::restart_count(p),
            })
        })
        .collect())
}

/// Identity without the uid (the same pod keeps it; a snapshot must not hold it).
fn without_uid(identity: &[Value]) -> Vec<Value> {
    identity
        .iter()
        .map(|pod| json!({ "pod": pod["pod"], "restarts": pod["restarts"] }))
        .collect()
}

async fn api_key_reloads_live(ctx: &Ctx) -> Result<Value> {
    restore_token_config_afterwards(ctx);
    let before = token_pods_identity(ctx).await?;
    let key = fresh_key(ctx, "reload");
    set_api_key(ctx, &key).await?;
    let started = Instant::now();
    let token = wait_signed_with(ctx, &key).await?;
    let after = token_pods_identity(ctx).await?;
    if before != after {
        bail!(
            "token-srv pods changed while reloading (before {before:?}, after {after:?}): a restart is not a live reload"
        );
    }
    let took_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(
        json!({ "token": token, "tokenPods": without_uid(&after), super::MEASUREMENTS: { "newKeyInEffectMs": took_ms } }),
    )
}

async fn malformed_update_rejected(ctx: &Ctx) -> Result<Value> {
    let token = &ctx.profile.services.token;
    let pod = ctx.ready_pods(token).await?.remove(0);
    let before_log = ctx.logs(&pod).await?;
    let entry = format!("{}/{}/{CONFIG_KEY}", ctx.namespace(), token.config_map);
    restore_token_config_afterwards(ctx);
    configmap::set_entry(ctx, token, CONFIG_KEY, "auth: [unclosed\n  api_key: {").await?;
    let rejection = wait_until(
        ctx.profile.timeouts.step,
        &format!("token-srv to report the rejected update naming {entry}"),
        || async {
            let log = ctx.logs(&pod).await?;
            let new = log.get(before_log.len()..).unwrap_or(&log);
            Ok(new
                .lines()
                .find(|l| reports_rejection(l, &entry))
                .map(String::from))
        },
    )
    .await?;
    // The last good configuration keeps serving.
    let reply = any_login(ctx).await?;
    let checked = check_reply(ctx, &reply, &ctx.profile.expectations.api_key)
        .context("after a malformed update, tokens no longer verify with the last good key")?;
    if pods::ready_pods(&ctx.client(), ctx.namespace(), token)
        .await?
        .iter()
        .any(|p| p.uid() != pod.uid())
    {
        bail!("token-srv pod was replaced after the malformed update");
    }
    Ok(json!({ "rejection": rejection_message(&rejection, &entry), "stillServing": checked }))
}

async fn deleted_configmap_keeps_values(ctx: &Ctx) -> Result<Value> {
    let token = &ctx.profile.services.token;
    restore_token_config_afterwards(ctx);
    let key = fresh_key(ctx, "delete");
    set_api_key(ctx, &key).await?;
    wait_signed_with(ctx, &key).await?;
    let api: Api<ConfigMap> = Api::namespaced(ctx.client(), ctx.namespace());
    api.delete(&token.config_map, &DeleteParams::default())
        .await?;
    wait_gone(&api, &token.config_map, None, ctx.profile.timeouts.step).await?;
    // Observe for a bounded window: every login in it must still sign with the key the
    // deleted ConfigMap gave (an implementation that drops the values falls back to another key).
    let window = Instant::now();
    let mut logins = 0;
    let mut last = Value::Null;
    while window.elapsed() < Duration::from_secs(3) {
        let reply = any_login(ctx).await?;
        last = check_reply(ctx, &reply, &key)
            .context("after the ConfigMap was deleted, tokens stopped using its key")?;
        logins += 1;
    }
    Ok(json!({
        "configMapAfterDelete": api.get_opt(&token.config_map).await?.map(|c| c.name_any()),
        "lastLoginAfterDelete": last,
        super::MEASUREMENTS: { "loginsInWindow": logins },
    }))
}
