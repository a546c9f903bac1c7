//! token-srv's configuration as cases change it: fresh signing keys, the new key taking effect,
//! the restore of the ConfigMap as deployed, and how a rejection of an entry reads.

use anyhow::Result;
use serde_json::Value;

use crate::configmap::{self, CONFIG_KEY};
use crate::context::Ctx;
use crate::deploy;
use crate::login::{any_login, check_reply};
use crate::secrets::SecretKind;
use crate::wait::wait_until;

/// Whether `line` reports the rejection of ConfigMap entry `entry` (`<ns>/<cm>/<key>`): it
/// names the entry and reads as an error or warning (the wording is the implementation's).
pub(crate) fn reports_rejection(line: &str, entry: &str) -> bool {
    let lower = line.to_lowercase();
    line.contains(entry)
        && ["error", "reject", "invalid", "warn", "fail"]
            .iter()
            .any(|word| lower.contains(word))
}

/// The part of a rejection line from the entry on (stable across runs).
pub(crate) fn rejection_message(line: &str, entry: &str) -> String {
    line.find(entry)
        .map_or_else(|| line.to_string(), |at| line[at..].to_string())
}

/// Waits until a login's token verifies with `key`.
pub(crate) async fn wait_signed_with(ctx: &Ctx, key: &str) -> Result<Value> {
    wait_until(
        ctx.profile.timeouts.step,
        "a login token signed with the new key",
        || async {
            let reply = any_login(ctx).await?;
            Ok(check_reply(ctx, &reply, key).ok())
        },
    )
    .await
}

/// Sets token-srv's `auth.api_key` in its ConfigMap.
pub(crate) async fn set_api_key(ctx: &Ctx, key: &str) -> Result<()> {
    let token = &ctx.profile.services.token;
    let config = configmap::with_api_key(configmap::service_config(ctx, token).await?, key);
    configmap::set_entry(ctx, token, CONFIG_KEY, &configmap::render(&config)).await
}

/// Registers the restore of token-srv's ConfigMap as the manifests have it, done after the case
/// whatever happens; it waits until the deployed key signs again.
pub(crate) fn restore_token_config_afterwards(ctx: &Ctx) {
    ctx.on_cleanup("restoring token-srv's ConfigMap", |ctx| {
        Box::pin(restore_token_config(ctx))
    });
}

async fn restore_token_config(ctx: &Ctx) -> Result<()> {
    let manifests = crate::manifests::load(&ctx.profile.manifests)?;
    let token_map: Vec<_> = manifests
        .into_iter()
        .filter(|m| m.kind() == "ConfigMap" && m.name() == ctx.profile.services.token.config_map)
        .collect();
    deploy::apply(&ctx.client(), &token_map).await?;
    wait_signed_with(ctx, &ctx.profile.expectations.api_key)
        .await
        .map(drop)
}

/// `conformance-<tag>-<hex>`, a value no run used before.
pub(crate) fn unique_value(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("conformance-{tag}-{nanos:08x}")
}

/// A signing key no run used before; it becomes a known secret of the run.
pub(crate) fn fresh_key(ctx: &Ctx, tag: &str) -> String {
    let key = unique_value(tag);
    ctx.secrets.remember(SecretKind::ApiKey, &key);
    key
}
