//! LOGIN: the article's logins over HTTP and gRPC, error shapes, bad bodies and CORS.

use anyhow::{Context, Result, bail};
use reqwest::header::{ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN, ORIGIN};
use serde_json::{Value, json};

use super::{Case, Ctx, case_fn};
use crate::login::{check_reply, grpc_login, grpc_login_as, http_login, http_login_raw};

/// The wrong password of LOGIN-003.
const WRONG_PASSWORD: &str = "definitely-wrong";

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            id: "LOGIN-001",
            feature: "login-http",
            summary: "POST /admin/v1/login returns {id, userName, token} with a verifiable HS256 token",
            run: case_fn!(http_login_works),
        },
        Case {
            id: "LOGIN-002",
            feature: "login-grpc",
            summary: "admin_srv.v1.AuthenticationService/Login returns a verifiable token",
            run: case_fn!(grpc_login_works),
        },
        Case {
            id: "LOGIN-003",
            feature: "login-http",
            summary: "wrong credentials give the contract's error shape with reason USER_NOT_FOUND",
            run: case_fn!(wrong_password_error_shape),
        },
        Case {
            id: "LOGIN-004",
            feature: "login-bad-input",
            summary: "bad bodies (not JSON, wrong types, empty, wrong content type) are rejected with 4xx, no crash",
            run: case_fn!(bad_bodies_rejected),
        },
        Case {
            id: "LOGIN-005",
            feature: "cors",
            summary: "CORS preflight and response headers follow server.http origins/methods",
            run: case_fn!(cors_follows_config),
        },
    ]
}

async fn http_login_works(ctx: &Ctx) -> Result<Value> {
    let reply = http_login(ctx).await?;
    check_reply(ctx, &reply, &ctx.profile.expectations.api_key)
}

async fn grpc_login_works(ctx: &Ctx) -> Result<Value> {
    let reply = grpc_login(ctx).await?;
    check_reply(ctx, &reply, &ctx.profile.expectations.api_key)
}

/// Checks `{"code":<status>,"reason":..,"message":..,"metadata":{}}`.
pub(super) fn check_error_shape(status: u16, body: &Value) -> Result<()> {
    if body["code"].as_u64() != Some(status as u64) {
        bail!(
            "error body code is {}, expected the HTTP status {status}: {body}",
            body["code"]
        );
    }
    if !body["reason"].is_string() || !body["message"].is_string() || !body["metadata"].is_object()
    {
        bail!("error body lacks reason/message strings or a metadata object: {body}");
    }
    Ok(())
}

async fn wrong_password_error_shape(ctx: &Ctx) -> Result<Value> {
    let user = &ctx.profile.expectations.demo_user;
    let expected_status = ctx.profile.expectations.wrong_credentials_http_status;
    let (status, body) = http_login_raw(ctx, &user.user_name, WRONG_PASSWORD).await?;
    if status != expected_status {
        bail!("wrong password answered {status}, the profile expects {expected_status}: {body}");
    }
    check_error_shape(status, &body)?;
    if body["reason"] != "USER_NOT_FOUND" || body["message"] != "User not found" {
        bail!(
            "wrong password gave reason {} message {}, expected USER_NOT_FOUND / User not found",
            body["reason"],
            body["message"]
        );
    }
    let mut observed = json!({ "http": { "status": status, "body": body } });
    if ctx.profile.supports("login-grpc") {
        let status = grpc_login_as(ctx, &user.user_name, WRONG_PASSWORD)
            .await?
            .err()
            .context("gRPC Login with a wrong password succeeded")?;
        let expected = if expected_status == 401 {
            tonic::Code::Unauthenticated
        } else {
            tonic::Code::Unknown
        };
        if status.code() != expected || !status.message().contains("User not found") {
            bail!(
                "gRPC wrong password gave {:?} {:?}, expected {expected:?} with 'User not found'",
                status.code(),
                status.message()
            );
        }
        observed["grpc"] =
            json!({ "code": format!("{:?}", status.code()), "message": status.message() });
    }
    Ok(observed)
}

async fn bad_bodies_rejected(ctx: &Ctx) -> Result<Value> {
    let url = format!("{}/admin/v1/login", ctx.admin_http_base().await?);
    let bodies: [(&str, &str, &str); 5] = [
        ("not-json", "application/json", "{\"userName\": "),
        (
            "wrong-types",
            "application/json",
            "{\"userName\": 1, \"password\": [true]}",
        ),
        ("empty", "application/json", ""),
        ("array", "application/json", "[]"),
        (
            "wrong-content-type",
            "text/plain",
            "userName=thangn&password=123456",
        ),
    ];
    let mut observed = serde_json::Map::new();
    for (label, content_type, body) in bodies {
        let response = ctx
            .http()
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body.to_string())
            .send()
            .await
            .with_context(|| format!("{label}: POST {url}"))?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        if !(400..500).contains(&status) {
            bail!("{label} body answered {status}, expected 4xx: {text}");
        }
        let json: Value = serde_json::from_str(&text)
            .with_context(|| format!("{label}: error body is not JSON: {text:?}"))?;
        check_error_shape(status, &json).with_context(|| label.to_string())?;
        observed.insert(
            label.into(),
            json!({ "status": status, "reason": json["reason"] }),
        );
    }
    // The service is still alive and serving.
    http_login(ctx)
        .await
        .context("a valid login after the bad bodies failed")?;
    Ok(Value::Object(observed))
}

/// The admin service's CORS settings from its deployed ConfigMap.
async fn cors_config(ctx: &Ctx) -> Result<(Vec<String>, Vec<String>)> {
    let tree = crate::configmap::service_config(ctx, &ctx.profile.services.admin).await?;
    let list = |key: &str| -> Vec<String> {
        tree["server"]["http"][key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    };
    Ok((list("origins"), list("methods")))
}

async fn cors_follows_config(ctx: &Ctx) -> Result<Value> {
    let (origins, methods) = cors_config(ctx).await?;
    let origin = "http://conformance.example";
    let expected_origin = if origins.iter().any(|o| o == "*") {
        "*".to_string()
    } else {
        origins
            .first()
            .cloned()
            .context("the admin config allows no origin; nothing to check")?
    };
    let request_origin = if expected_origin == "*" {
        origin.to_string()
    } else {
        expected_origin.clone()
    };
    let url = format!("{}/admin/v1/login", ctx.admin_http_base().await?);
    let preflight = ctx
        .http()
        .request(reqwest::Method::OPTIONS, &url)
        .header(ORIGIN, &request_origin)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "Content-Type")
        .send()
        .await?;
    if !preflight.status().is_success() {
        bail!("CORS preflight answered {}", preflight.status());
    }
    let header = |response: &reqwest::Response, name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let allow_origin = header(&preflight, ACCESS_CONTROL_ALLOW_ORIGIN);
    if allow_origin != expected_origin {
        bail!(
            "preflight Access-Control-Allow-Origin is {allow_origin:?}, expected {expected_origin:?}"
        );
    }
    let allow_methods = header(&preflight, ACCESS_CONTROL_ALLOW_METHODS).to_uppercase();
    for method in &methods {
        if !allow_methods.contains(&method.to_uppercase()) {
            bail!(
                "preflight Access-Control-Allow-Methods {allow_methods:?} lacks configured {method}"
            );
        }
    }
    let user = &ctx.profile.expectations.demo_user;
    let actual = ctx
        .http()
        .post(&url)
        .header(ORIGIN, &request_origin)
        .json(&json!({ "userName": user.user_name, "password": user.password }))
        .send()
        .await?;
    let actual_origin = header(&actual, ACCESS_CONTROL_ALLOW_ORIGIN);
    if actual_origin != expected_origin {
        bail!(
            "login response Access-Control-Allow-Origin is {actual_origin:?}, expected {expected_origin:?}"
        );
    }
    Ok(
        json!({ "preflight": { "allowOrigin": allow_origin, "methodsConfigured": methods }, "response": { "allowOrigin": actual_origin } }),
    )
}
