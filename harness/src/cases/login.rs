//! LOGIN: the article's logins over HTTP and gRPC, error shapes, bad bodies and CORS.

use anyhow::{Context, Result, bail};
use reqwest::header::{ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN, ORIGIN};
use serde_json::{Value, json};

use super::support::bad_input::{answered, check_error_shape, each_bad_body};
use super::{Case, Ctx, case_fn};
use crate::features::Feature;
use crate::login::{check_reply, grpc_login, grpc_login_as, http_login, http_login_raw};

/// The wrong password of LOGIN-003.
const WRONG_PASSWORD: &str = "definitely-wrong";

pub(super) fn cases() -> Vec<Case> {
    vec![
        Case {
            id: "LOGIN-001",
            feature: Feature::LoginHttp,
            section: "§5",
            summary: "POST /admin/v1/login returns {id, userName, token} with a verifiable HS256 token",
            lever: None,
            run: case_fn!(http_login_works),
        },
        Case {
            id: "LOGIN-002",
            feature: Feature::LoginGrpc,
            section: "§5",
            summary: "admin_srv.v1.AuthenticationService/Login returns a verifiable token",
            lever: None,
            run: case_fn!(grpc_login_works),
        },
        Case {
            id: "LOGIN-003",
            feature: Feature::LoginHttp,
            section: "§5",
            summary: "HTTP: wrong credentials give the error shape with reason USER_NOT_FOUND, at the profile's status (implementation-specific: 500 or 401)",
            lever: None,
            run: case_fn!(wrong_password_error_shape),
        },
        Case {
            id: "LOGIN-004",
            feature: Feature::LoginBadInput,
            section: "§5",
            summary: "bad login bodies (empty, not JSON, wrong types, 1 MiB, other content types) are answered in the error shape, no crash; admin-srv keeps serving",
            lever: None,
            run: case_fn!(bad_bodies_answered),
        },
        Case {
            id: "LOGIN-005",
            feature: Feature::Cors,
            section: "§5",
            summary: "CORS: a preflight for a configured non-simple method allows it, an unconfigured method is refused, origins follow server.http.origins",
            lever: None,
            run: case_fn!(cors_follows_config),
        },
        Case {
            id: "LOGIN-006",
            feature: Feature::LoginGrpc,
            section: "§5",
            summary: "gRPC: wrong credentials give 'User not found' with the status matching the profile's HTTP status (UNKNOWN for 500, UNAUTHENTICATED for 401)",
            lever: None,
            run: case_fn!(wrong_password_grpc_status),
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
    Ok(json!({ "http": { "status": status, "body": body } }))
}

async fn wrong_password_grpc_status(ctx: &Ctx) -> Result<Value> {
    let user = &ctx.profile.expectations.demo_user;
    let expected = if ctx.profile.expectations.wrong_credentials_http_status == 401 {
        tonic::Code::Unauthenticated
    } else {
        tonic::Code::Unknown
    };
    let status = grpc_login_as(ctx, &user.user_name, WRONG_PASSWORD)
        .await?
        .err()
        .context("gRPC Login with a wrong password succeeded")?;
    if status.code() != expected || !status.message().contains("User not found") {
        bail!(
            "gRPC wrong password gave {:?} {:?}, expected {expected:?} with 'User not found'",
            status.code(),
            status.message()
        );
    }
    Ok(json!({ "grpc": { "code": format!("{:?}", status.code()), "message": status.message() } }))
}

async fn bad_bodies_answered(ctx: &Ctx) -> Result<Value> {
    each_bad_body(ctx, answered).await
}

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

/// Methods a preflight is needed for (not CORS-safelisted), in the order tried.
const NON_SIMPLE_METHODS: [&str; 3] = ["PUT", "DELETE", "PATCH"];

/// One preflight's answer: status and the two headers CORS reads.
async fn preflight(ctx: &Ctx, url: &str, origin: &str, method: &str) -> Result<Value> {
    let response = ctx
        .http()
        .request(reqwest::Method::OPTIONS, url)
        .header(ORIGIN, origin)
        .header("Access-Control-Request-Method", method)
        .header("Access-Control-Request-Headers", "Content-Type")
        .send()
        .await
        .with_context(|| format!("CORS preflight for {method}"))?;
    Ok(json!({
        "status": response.status().as_u16(),
        "allowOrigin": header(&response, ACCESS_CONTROL_ALLOW_ORIGIN),
        "allowMethods": header(&response, ACCESS_CONTROL_ALLOW_METHODS),
    }))
}

fn header(response: &reqwest::Response, name: reqwest::header::HeaderName) -> Value {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map_or(Value::Null, |v| json!(v))
}

/// Whether a preflight answer lets a browser send `method` (the Fetch standard's CORS check:
/// an ok status and the method, or `*`, in Access-Control-Allow-Methods).
fn preflight_allows(answer: &Value, method: &str) -> bool {
    let ok = answer["status"]
        .as_u64()
        .is_some_and(|s| (200..300).contains(&s));
    let listed = answer["allowMethods"].as_str().is_some_and(|methods| {
        methods
            .split(',')
            .map(str::trim)
            .any(|m| m == "*" || m.eq_ignore_ascii_case(method))
    });
    ok && listed
}

async fn cors_follows_config(ctx: &Ctx) -> Result<Value> {
    let (origins, methods) = cors_config(ctx).await?;
    let configured = |m: &str| methods.iter().any(|c| c.eq_ignore_ascii_case(m));
    let expected_origin = if origins.iter().any(|o| o == "*") {
        "*".to_string()
    } else {
        origins
            .first()
            .cloned()
            .context("the admin config allows no origin; nothing to check")?
    };
    let request_origin = if expected_origin == "*" {
        "http://conformance.example".to_string()
    } else {
        expected_origin.clone()
    };
    let url = format!("{}/admin/v1/login", ctx.admin_http_base().await?);
    let mut observed = json!({});
    if let Some(method) = NON_SIMPLE_METHODS.into_iter().find(|m| configured(m)) {
        let answer = preflight(ctx, &url, &request_origin, method).await?;
        if !preflight_allows(&answer, method) || answer["allowOrigin"] != expected_origin {
            bail!(
                "the preflight for configured {method} from {request_origin} does not allow it with origin {expected_origin:?}: {answer}"
            );
        }
        observed["configured"] = json!({ "method": method, "preflight": answer });
    }
    if let Some(method) = NON_SIMPLE_METHODS.into_iter().find(|m| !configured(m)) {
        let answer = preflight(ctx, &url, &request_origin, method).await?;
        if preflight_allows(&answer, method) {
            bail!(
                "the preflight for {method}, which server.http.methods does not list, allows it: {answer}"
            );
        }
        observed["unconfigured"] = json!({ "method": method, "preflight": answer });
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
            "login response Access-Control-Allow-Origin is {actual_origin}, expected {expected_origin:?}"
        );
    }
    observed["response"] =
        json!({ "status": actual.status().as_u16(), "allowOrigin": actual_origin });
    Ok(observed)
}
