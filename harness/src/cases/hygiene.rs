//! SEC: secret hygiene (CONTRACT.md §5, Extended feature `secret-hygiene`): "no password (right
//! or wrong), no `auth.api_key` value and no issued token appears in any log, event or object an
//! implementation writes". Each case first makes the implementation handle secrets, then scans
//! the places [`crate::leaks`] lists for every secret the run knows (and any JWT), and fails
//! naming where it found one, never the secret.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::config::{
    fresh_key, restoring_token_config, set_api_key, unique_value, wait_signed_with,
};
use super::{Case, Ctx, Skip, case_fn};
use crate::leaks;
use crate::login::{any_login, grpc_login, grpc_login_as, http_login, http_login_raw};
use crate::secrets::SecretKind;

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            id: "SEC-001",
            feature: "secret-hygiene",
            section: "§5",
            summary: "after logins with the right and a wrong password (HTTP and gRPC), no password or issued token is in the pods' logs, their labels/annotations, the namespace's ConfigMaps or events",
            run: case_fn!(logins_leave_no_secret),
        },
        Case {
            id: "SEC-002",
            feature: "secret-hygiene",
            section: "§5",
            summary: "after an auth.api_key change (restored after), no signing key or token is in the pods' logs, their labels/annotations, ConfigMaps other than the key's source or events",
            run: case_fn!(key_change_leaves_no_secret),
        },
    ]
}

/// Scans for every secret known so far; fails naming each place with one.
async fn scan(ctx: &Ctx, done: Value) -> Result<Value> {
    let (coverage, leaks) = leaks::scan(ctx, &ctx.secrets.redactor()).await?;
    if !leaks.is_empty() {
        bail!("{}", leaks::describe(&leaks));
    }
    Ok(json!({ "did": done, "scanned": coverage, "leaks": [] }))
}

/// A wrong password no run used before (a known secret of the run from now on).
fn fresh_wrong_password(ctx: &Ctx) -> String {
    let password = unique_value("wrong-password");
    ctx.secrets.remember(SecretKind::WrongPassword, &password);
    password
}

async fn logins_leave_no_secret(ctx: &Ctx) -> Result<Value> {
    let user = ctx.profile.expectations.demo_user.clone();
    let mut done = Vec::new();
    if ctx.profile.supports("login-http") {
        http_login(ctx)
            .await
            .context("HTTP login with the right password")?;
        let wrong = fresh_wrong_password(ctx);
        let (status, _) = http_login_raw(ctx, &user.user_name, &wrong).await?;
        if status == 200 {
            bail!("an HTTP login with a wrong password succeeded");
        }
        done.push("HTTP login, right and wrong password");
    }
    if ctx.profile.supports("login-grpc") {
        grpc_login(ctx)
            .await
            .context("gRPC login with the right password")?;
        let wrong = fresh_wrong_password(ctx);
        if grpc_login_as(ctx, &user.user_name, &wrong).await?.is_ok() {
            bail!("a gRPC login with a wrong password succeeded");
        }
        done.push("gRPC login, right and wrong password");
    }
    if done.is_empty() {
        return Err(Skip(needs_login("SEC-001")).into());
    }
    scan(ctx, json!(done)).await
}

async fn key_change_leaves_no_secret(ctx: &Ctx) -> Result<Value> {
    if !logs_in(ctx) {
        return Err(Skip(needs_login("SEC-002")).into());
    }
    let live = ctx.profile.supports("config-live-reload");
    let changed = restoring_token_config(ctx, async {
        let key = fresh_key(ctx, "hygiene");
        set_api_key(ctx, &key).await?;
        if live {
            // Confirmed processed: a token signed with the new key.
            wait_signed_with(ctx, &key).await?;
        } else {
            any_login(ctx).await?;
        }
        Ok(json!(if live {
            "auth.api_key changed, a token signed with it, original key restored"
        } else {
            "auth.api_key changed and restored (config-live-reload not declared: that the implementation processed the change is not confirmed)"
        }))
    })
    .await?;
    scan(ctx, changed).await
}

fn logs_in(ctx: &Ctx) -> bool {
    ctx.profile.supports("login-http") || ctx.profile.supports("login-grpc")
}

fn needs_login(id: &str) -> String {
    format!("{id} logs in, so it needs login-http or login-grpc declared")
}
