//! CORS from the live `server.http.{origins,methods,headers}` configuration.
//!
//! An allowed origin (`*` allows any and is answered with `*`) gets
//! `Access-Control-Allow-Origin` on every response. A preflight (OPTIONS with `Origin` and
//! `Access-Control-Request-Method`) is answered here with 200, adding the allowed methods
//! and headers when the origin is allowed; the browser enforces the rest.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gomicro_config::Config;
use gomicro_service_kit::ConfigExt;
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

/// The CORS settings at the time of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsPolicy {
    /// Allowed origins; `*` allows all.
    pub origins: Vec<String>,
    /// Allowed methods.
    pub methods: Vec<String>,
    /// Allowed request headers.
    pub headers: Vec<String>,
}

impl CorsPolicy {
    /// Reads the policy from the live configuration (invalid values count as empty lists;
    /// the validator keeps them out).
    pub fn current(config: &Config) -> Self {
        let list = |key: &str| {
            config
                .strings(&format!("server.http.{key}"))
                .unwrap_or_default()
        };
        CorsPolicy {
            origins: list("origins"),
            methods: list("methods"),
            headers: list("headers"),
        }
    }

    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if allowed.
    pub fn allow_origin(&self, origin: &str) -> Option<String> {
        if self.origins.iter().any(|o| o == "*") {
            Some("*".to_owned())
        } else {
            self.origins.iter().find(|o| o.as_str() == origin).cloned()
        }
    }
}

/// The middleware: answers preflights, decorates other responses.
pub async fn cors(State(config): State<Config>, request: Request, next: Next) -> Response {
    let Some(origin) = request
        .headers()
        .get(ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return next.run(request).await;
    };
    let policy = CorsPolicy::current(&config);
    let allowed = policy.allow_origin(&origin);
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if preflight {
        let mut response = StatusCode::OK.into_response();
        if allowed.is_some() {
            set_list(
                response.headers_mut(),
                ACCESS_CONTROL_ALLOW_METHODS,
                &policy.methods,
            );
            set_list(
                response.headers_mut(),
                ACCESS_CONTROL_ALLOW_HEADERS,
                &policy.headers,
            );
        }
        response
    } else {
        next.run(request).await
    };
    if let Some(value) = allowed.and_then(|a| HeaderValue::from_str(&a).ok()) {
        let specific = value != "*";
        response
            .headers_mut()
            .insert(ACCESS_CONTROL_ALLOW_ORIGIN, value);
        if specific {
            response
                .headers_mut()
                .append(VARY, HeaderValue::from_static("Origin"));
        }
    }
    response
}

fn set_list(headers: &mut HeaderMap, name: http::HeaderName, values: &[String]) {
    if let Ok(value) = HeaderValue::from_str(&values.join(", "))
        && !values.is_empty()
    {
        headers.insert(name, value);
    }
}
