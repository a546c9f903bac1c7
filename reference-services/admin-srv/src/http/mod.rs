//! The HTTP API: `POST /admin/v1/login`, with CORS and the live `server.http.timeout`.

mod cors;
mod error;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use gomicro_config::Config;
use gomicro_proto::admin_srv::v1::LoginRequest;
use gomicro_service_kit::ConfigExt;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use error::HttpError;

use crate::login::Authenticator;
use crate::settings::DEFAULT_TIMEOUT;

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Oversized bodies up to this size are read and dropped before the error is sent.
const DRAIN_LIMIT: usize = 4 * 1024 * 1024;

#[derive(Clone)]
struct AppState<A> {
    auth: A,
}

/// The router; CORS wraps everything so error answers carry the CORS headers too.
pub fn router<A: Authenticator>(auth: A, config: Config) -> Router {
    Router::new()
        .route("/admin/v1/login", post(login::<A>))
        .with_state(AppState { auth })
        .layer(middleware::from_fn_with_state(
            config.clone(),
            server_timeout,
        ))
        .layer(middleware::from_fn_with_state(config, cors::cors))
}

/// The JSON body of a login (missing fields and `null` are empty strings, as protojson does).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LoginBody {
    #[serde(default)]
    user_name: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The JSON reply of a login.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LoginReplyBody {
    id: String,
    user_name: String,
    token: String,
}

async fn login<A: Authenticator>(
    State(state): State<AppState<A>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<LoginReplyBody>, HttpError> {
    let request = parse_login(&headers, body).await?;
    let reply = state
        .auth
        .login(request)
        .await
        .map_err(|status| HttpError::from_status(&status))?;
    Ok(Json(LoginReplyBody {
        id: reply.id,
        user_name: reply.user_name,
        token: reply.token,
    }))
}

/// Checks content type, size and shape of a login body.
async fn parse_login(headers: &HeaderMap, body: Body) -> Result<LoginRequest, HttpError> {
    if let Some(content_type) = headers.get(CONTENT_TYPE) {
        let essence = content_type
            .to_str()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return Err(HttpError::bad_request(
                "INVALID_CONTENT_TYPE",
                format!("content type {essence:?} is not supported, send application/json"),
            ));
        }
    }
    let too_large = || {
        HttpError::bad_request(
            "BODY_TOO_LARGE",
            format!("the body exceeds {BODY_LIMIT} bytes"),
        )
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|length| length > BODY_LIMIT) {
        // Read (and drop) a moderately oversized body before answering, so that a client still
        // uploading it sees the 400 instead of a connection reset; larger ones are cut off.
        if declared.is_some_and(|length| length <= DRAIN_LIMIT) {
            let _ = axum::body::to_bytes(body, DRAIN_LIMIT).await;
        }
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .map_err(|_| too_large())?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(HttpError::bad_request(
            "EMPTY_BODY",
            "the body is empty, send {\"userName\":..,\"password\":..}",
        ));
    }
    let invalid = |detail: String| HttpError::bad_request("INVALID_JSON", detail);
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| invalid(format!("the body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(invalid("the body must be a JSON object".into()));
    }
    let parsed: LoginBody =
        serde_json::from_value(value).map_err(|e| invalid(format!("invalid login body: {e}")))?;
    Ok(LoginRequest {
        user_name: parsed.user_name.unwrap_or_default(),
        password: parsed.password.unwrap_or_default(),
    })
}

/// Bounds every request by the live `server.http.timeout` (504 when exceeded).
async fn server_timeout(State(config): State<Config>, request: Request, next: Next) -> Response {
    let timeout = config
        .duration_or("server.http.timeout", DEFAULT_TIMEOUT)
        .unwrap_or(DEFAULT_TIMEOUT);
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => HttpError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "GATEWAY_TIMEOUT",
            format!("the request did not finish within {timeout:?}"),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests;
