//! SEC: secret hygiene (CONTRACT.md §5, Extended feature `secret-hygiene`): "no password (right
//! or wrong), no `auth.api_key` value and no issued token appears in any log, event or object an
//! implementation writes". Each case first makes the implementation handle secrets, then scans
//! the places [`crate::leaks`] lists for every secret the run knows (and any JWT), and fails
//! naming where it found one, never the secret.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::support::token_config::{
    fresh_key, restore_token_config_afterwards, set_api_key, unique_value, wait_signed_with,
};
use super::{Case, Ctx, case_fn};
use crate::features::Feature;
use crate::leaks;
use crate::login::{grpc_login, grpc_login_as, http_login, http_login_raw};
use crate::secrets::SecretKind;

/// How long SEC-002 lets the implementation take up the key change before it scans; whether it
/// does is CFG-002's question, not this case's.
const TAKE_UP: Duration = Duration::from_secs(10);

pub(super) fn cases() -> Vec<Case> {
    vec![
        Case {
            id: "SEC-001",
            feature: Feature::SecretHygiene,
            section: "§5",
            summary: "after logins with the right and a wrong password (HTTP and gRPC), no password or issued token is in the pods' logs, their labels/annotations, the namespace's ConfigMaps or events",
            lever: None,
            run: case_fn!(logins_leave_no_secret),
        },
        Case {
            id: "SEC-002",
            feature: Feature::SecretHygiene,
            section: "§5",
            summary: "after an auth.api_key change (restored after), no signing key or token is in the pods' logs, their labels/annotations, ConfigMaps other than the key's source or events",
            lever: None,
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
    http_login(ctx)
        .await
        .context("HTTP login with the right password")?;
    let wrong = fresh_wrong_password(ctx);
    let (status, _) = http_login_raw(ctx, &user.user_name, &wrong).await?;
    if status == 200 {
        bail!("an HTTP login with a wrong password succeeded");
    }
    grpc_login(ctx)
        .await
        .context("gRPC login with the right password")?;
    let wrong = fresh_wrong_password(ctx);
    if grpc_login_as(ctx, &user.user_name, &wrong).await?.is_ok() {
        bail!("a gRPC login with a wrong password succeeded");
    }
    scan(
        ctx,
        json!([
            "HTTP login, right and wrong password",
            "gRPC login, right and wrong password"
        ]),
    )
    .await
}

/// Changes `auth.api_key`, gives the implementation up to [`TAKE_UP`] to sign with it (it may not
/// reload live: that does not matter here), logs in, restores the key and scans.
async fn key_change_leaves_no_secret(ctx: &Ctx) -> Result<Value> {
    restore_token_config_afterwards(ctx);
    let key = fresh_key(ctx, "hygiene");
    set_api_key(ctx, &key).await?;
    let taken_up = tokio::time::timeout(TAKE_UP, wait_signed_with(ctx, &key))
        .await
        .is_ok_and(|signed| signed.is_ok());
    http_login(ctx)
        .await
        .context("a login after the key change")?;
    let mut observed = scan(
        ctx,
        json!("auth.api_key changed, a login made, then the scan"),
    )
    .await?;
    observed[super::MEASUREMENTS] = json!({ "newKeyTakenUp": taken_up });
    Ok(observed)
}
