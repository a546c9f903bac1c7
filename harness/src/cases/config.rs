//! CFG: ConfigMap configuration: load, live reload, bad updates, deletion (CONTRACT.md §4).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use serde_json::{Value, json};

use super::{Case, Ctx, case_fn};
use crate::configmap::{self, CONFIG_KEY};
use crate::login::{any_login, check_reply};
use crate::secrets::SecretKind;
use crate::wait::wait_until;
use crate::{deploy, pods};

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            id: "CFG-001",
            feature: "config-load",
            summary: "each service loads its ConfigMap entry as <namespace>/<configmap>/config.yaml",
            run: case_fn!(configmap_loaded),
        },
        Case {
            id: "CFG-002",
            feature: "config-live-reload",
            summary: "a new auth.api_key in token-srv's ConfigMap signs the next token, without a restart",
            run: case_fn!(api_key_reloads_live),
        },
        Case {
            id: "CFG-003",
            feature: "config-bad-input",
            summary: "a malformed ConfigMap update is rejected visibly and the last good config keeps serving",
            run: case_fn!(malformed_update_rejected),
        },
        Case {
            id: "CFG-004",
            feature: "config-live-reload",
            summary: "deleting the ConfigMap keeps the values it gave",
            run: case_fn!(deleted_configmap_keeps_values),
        },
    ]
}

const DEADLINE: Duration = Duration::from_secs(60);

async fn configmap_loaded(ctx: &Ctx) -> Result<Value> {
    let mut keys = Vec::new();
    for (_, service) in ctx.profile.all_services() {
        let key = format!("{}/{}/{CONFIG_KEY}", ctx.namespace(), service.config_map);
        let marker = format!("config loaded: {key}");
        let pod = ctx.ready_pods(service).await?.remove(0);
        let log = ctx.logs(&pod).await?;
        if !log.contains(&marker) {
            bail!("pod {} never logged {marker:?}", pod.name_any());
        }
        keys.push(key);
    }
    Ok(json!({ "loaded": keys }))
}

/// Identity of the token-srv pods: names with restart counts.
async fn token_pods_identity(ctx: &Ctx) -> Result<Vec<(String, String, i32)>> {
    let pods: Vec<Pod> = ctx.ready_pods(&ctx.profile.services.token).await?;
    Ok(pods
        .iter()
        .map(|p| {
            let restarts = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .map(|c| c.iter().map(|c| c.restart_count).sum())
                .unwrap_or(0);
            (p.name_any(), p.uid().unwrap_or_default(), restarts)
        })
        .collect())
}

/// Waits until a login's token verifies with `key`.
pub(super) async fn wait_signed_with(ctx: &Ctx, key: &str) -> Result<Value> {
    wait_until(
        DEADLINE,
        "a login token signed with the new key",
        || async {
            let reply = any_login(ctx).await?;
            Ok(check_reply(ctx, &reply, key).ok())
        },
    )
    .await
}

/// Sets token-srv's `auth.api_key` in its ConfigMap.
pub(super) async fn set_api_key(ctx: &Ctx, key: &str) -> Result<()> {
    let token = &ctx.profile.services.token;
    let config = configmap::with_api_key(configmap::service_config(ctx, token).await?, key);
    configmap::set_entry(ctx, token, CONFIG_KEY, &configmap::render(&config)).await
}

/// Runs `body`, then puts token-srv's ConfigMap back as the manifests have it and waits until the
/// original key signs again.
pub(super) async fn restoring_token_config<F: std::future::Future<Output = Result<Value>>>(
    ctx: &Ctx,
    body: F,
) -> Result<Value> {
    let result = body.await;
    let restored = async {
        let manifests = crate::manifests::load(&ctx.profile.manifests)?;
        let token_map: Vec<_> = manifests
            .into_iter()
            .filter(|m| {
                m.object
                    .types
                    .as_ref()
                    .is_some_and(|t| t.kind == "ConfigMap")
                    && m.object.metadata.name.as_deref()
                        == Some(ctx.profile.services.token.config_map.as_str())
            })
            .collect();
        deploy::apply(&ctx.client(), &token_map).await?;
        wait_signed_with(ctx, &ctx.profile.expectations.api_key).await
    }
    .await;
    let value = result?;
    restored.context("restoring token-srv's ConfigMap")?;
    Ok(value)
}

/// `conformance-<tag>-<hex>`, a value no run used before.
pub(super) fn unique_value(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("conformance-{tag}-{nanos:08x}")
}

/// A signing key no run used before; it becomes a known secret of the run.
pub(super) fn fresh_key(ctx: &Ctx, tag: &str) -> String {
    let key = unique_value(tag);
    ctx.secrets.remember(SecretKind::ApiKey, &key);
    key
}

async fn api_key_reloads_live(ctx: &Ctx) -> Result<Value> {
    restoring_token_config(ctx, async {
        let before = token_pods_identity(ctx).await?;
        let key = fresh_key(ctx, "reload");
        set_api_key(ctx, &key).await?;
        let started = Instant::now();
        let token = wait_signed_with(ctx, &key).await?;
        let after = token_pods_identity(ctx).await?;
        if before != after {
            bail!("token-srv pods changed while reloading (before {before:?}, after {after:?}): a restart is not a live reload");
        }
        eprintln!("[case] CFG-002 new key in effect after {:.0} ms", started.elapsed().as_secs_f64() * 1000.0);
        Ok(json!({ "token": token, "restarted": false }))
    })
    .await
}

async fn malformed_update_rejected(ctx: &Ctx) -> Result<Value> {
    let token = &ctx.profile.services.token;
    let pod = ctx.ready_pods(token).await?.remove(0);
    let before_log = ctx.logs(&pod).await?;
    restoring_token_config(ctx, async {
        configmap::set_entry(ctx, token, CONFIG_KEY, "auth: [unclosed\n  api_key: {").await?;
        let rejection = wait_until(
            DEADLINE,
            "token-srv to report the rejected update",
            || async {
                let log = ctx.logs(&pod).await?;
                let new = log.get(before_log.len()..).unwrap_or(&log);
                Ok(new
                    .lines()
                    .find(|l| l.contains("config update rejected"))
                    .map(String::from))
            },
        )
        .await?;
        if !rejection.contains(&format!(
            "{}/{}/{CONFIG_KEY}",
            ctx.namespace(),
            token.config_map
        )) {
            bail!("the rejection does not name the entry: {rejection}");
        }
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
        Ok(json!({ "rejectionLogged": true, "stillServing": checked }))
    })
    .await
}

async fn deleted_configmap_keeps_values(ctx: &Ctx) -> Result<Value> {
    let token = &ctx.profile.services.token;
    restoring_token_config(ctx, async {
        let key = fresh_key(ctx, "delete");
        set_api_key(ctx, &key).await?;
        wait_signed_with(ctx, &key).await?;
        let api: Api<ConfigMap> = Api::namespaced(ctx.client(), ctx.namespace());
        api.delete(&token.config_map, &DeleteParams::default()).await?;
        wait_until(DEADLINE, "the ConfigMap to be gone", || async { Ok(api.get_opt(&token.config_map).await?.is_none().then_some(())) }).await?;
        // Observe for a bounded window: every login in it must still sign with the key the
        // deleted ConfigMap gave (an implementation that drops the values falls back to another key).
        let window = Instant::now();
        let mut logins = 0;
        while window.elapsed() < Duration::from_secs(3) {
            let reply = any_login(ctx).await?;
            check_reply(ctx, &reply, &key).context("after the ConfigMap was deleted, tokens stopped using its key")?;
            logins += 1;
        }
        Ok(json!({ "keptAfterDelete": true, "loginsChecked": if logins > 0 { "many" } else { "none" } }))
    })
    .await
}
