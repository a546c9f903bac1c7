//! Logging in through admin-srv over HTTP and gRPC, and checking the token (CONTRACT.md §5).

use std::collections::BTreeSet;

use anyhow::{Context, Result, bail};
use gomicro_proto::admin_srv::v1::LoginRequest;
use gomicro_proto::admin_srv::v1::authentication_service_client::AuthenticationServiceClient;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

use crate::context::Ctx;
use crate::secrets::SecretKind;

/// A successful login reply.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginReply {
    pub id: String,
    pub user_name: String,
    pub token: String,
}

/// `POST /admin/v1/login` with the given credentials; returns status and JSON body. The
/// password and any token in the reply become known secrets of the run.
pub(crate) async fn http_login_raw(ctx: &Ctx, user: &str, password: &str) -> Result<(u16, Value)> {
    ctx.secrets.remember(SecretKind::WrongPassword, password);
    let url = format!("{}/admin/v1/login", ctx.admin_http_base().await?);
    let response = ctx
        .http()
        .post(&url)
        .json(&json!({ "userName": user, "password": password }))
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    let body: Value = serde_json::from_str(&text)
        .with_context(|| format!("POST {url} answered {status} with non-JSON body {text:?}"))?;
    if let Some(token) = body["token"].as_str() {
        ctx.secrets.remember(SecretKind::Token, token);
    }
    Ok((status, body))
}

/// Logs the demo user in over HTTP, failing on anything but 200 with a reply.
pub(crate) async fn http_login(ctx: &Ctx) -> Result<LoginReply> {
    let user = &ctx.profile.expectations.demo_user;
    let (status, body) = http_login_raw(ctx, &user.user_name, &user.password).await?;
    if status != 200 {
        bail!("HTTP login answered {status}: {body}");
    }
    serde_json::from_value(body.clone())
        .with_context(|| format!("HTTP login reply {body} lacks id/userName/token"))
}

/// `admin_srv.v1.AuthenticationService/Login` with the given credentials; the outer error is a
/// connection failure, the inner one the call's status. The password and the reply's token
/// become known secrets of the run.
pub(crate) async fn grpc_login_as(
    ctx: &Ctx,
    user: &str,
    password: &str,
) -> Result<Result<LoginReply, tonic::Status>> {
    ctx.secrets.remember(SecretKind::WrongPassword, password);
    let channel = ctx.grpc_channel(&ctx.profile.services.admin).await?;
    let reply = AuthenticationServiceClient::new(channel)
        .login(LoginRequest {
            user_name: user.to_string(),
            password: password.to_string(),
        })
        .await;
    Ok(reply.map(|reply| {
        let reply = reply.into_inner();
        ctx.secrets.remember(SecretKind::Token, &reply.token);
        LoginReply {
            id: reply.id,
            user_name: reply.user_name,
            token: reply.token,
        }
    }))
}

/// Logs the demo user in over gRPC.
pub(crate) async fn grpc_login(ctx: &Ctx) -> Result<LoginReply> {
    let user = &ctx.profile.expectations.demo_user;
    grpc_login_as(ctx, &user.user_name, &user.password)
        .await?
        .context("gRPC Login failed")
}

/// The login cases use to observe the implementation: over HTTP, which is Core (`login-http`),
/// so no case depends on what else the profile declares.
pub(crate) async fn any_login(ctx: &Ctx) -> Result<LoginReply> {
    http_login(ctx).await
}

/// Verifies a token as CONTRACT.md §5 describes and returns its normalised header and claims.
pub(crate) fn check_token(token: &str, key: &str, user_name: &str, user_id: &str) -> Result<Value> {
    let header = jsonwebtoken::decode_header(token).context("token is not a JWT")?;
    if header.alg != Algorithm::HS256 || header.typ.as_deref() != Some("JWT") {
        bail!(
            "token header is alg={:?} typ={:?}, expected HS256/JWT",
            header.alg,
            header.typ
        );
    }
    let mut validation = Validation::new(Algorithm::HS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(
        token,
        &DecodingKey::from_secret(key.as_bytes()),
        &validation,
    )
    .context("token does not verify with the expected key")?;
    let claims = data.claims;
    let keys: BTreeSet<&str> = claims.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = ["iat", "platform", "sub", "uid"].into();
    if keys != expected {
        bail!("token claims are {keys:?}, expected exactly {expected:?} (no exp)");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let iat = claims["iat"].as_i64().context("iat is not an integer")?;
    if (iat - now).abs() > 300 {
        bail!("iat {iat} is more than 5 minutes from now ({now})");
    }
    for (claim, want) in [
        ("platform", "TOKEN_PLATFORM_WEB"),
        ("sub", user_name),
        ("uid", user_id),
    ] {
        if claims[claim] != want {
            bail!("claim {claim} is {}, expected {want:?}", claims[claim]);
        }
    }
    Ok(json!({
        "header": { "alg": "HS256", "typ": "JWT" },
        "claims": { "iat": "[iat]", "platform": claims["platform"], "sub": claims["sub"], "uid": claims["uid"] },
    }))
}

/// Checks a reply for the demo user and returns it normalised.
pub fn check_reply(ctx: &Ctx, reply: &LoginReply, key: &str) -> Result<Value> {
    let user = &ctx.profile.expectations.demo_user;
    if reply.id != user.id || reply.user_name != user.user_name {
        bail!(
            "login reply is id={:?} userName={:?}, expected {:?}/{:?}",
            reply.id,
            reply.user_name,
            user.id,
            user.user_name
        );
    }
    let token = check_token(&reply.token, key, &user.user_name, &user.id)?;
    Ok(
        json!({ "reply": { "id": reply.id, "userName": reply.user_name, "token": "[token]" }, "token": token }),
    )
}
