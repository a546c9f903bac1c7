//! The HTTP router in-process: error mapping, body checks and CORS.

use std::collections::BTreeMap;

use axum::body::Body;
use gomicro_config::configmap::ConfigMapId;
use gomicro_config::{Config, Entry};
use gomicro_proto::admin_srv::v1::{LoginReply, LoginRequest};
use gomicro_service_kit::kratos_error;
use http::{Request, StatusCode};
use rstest::rstest;
use tonic::Status;
use tower::ServiceExt;

use super::*;

/// Answers like the demo directory: thangn/123456 → token "signed", else USER_NOT_FOUND.
#[derive(Clone)]
struct Fake;

impl Authenticator for Fake {
    async fn login(&self, request: LoginRequest) -> Result<LoginReply, Status> {
        if (request.user_name.as_str(), request.password.as_str()) == ("thangn", "123456") {
            Ok(LoginReply {
                id: "1".into(),
                user_name: request.user_name,
                token: "signed".into(),
            })
        } else {
            Err(kratos_error::status(
                tonic::Code::Unknown,
                "USER_NOT_FOUND",
                "User not found",
            ))
        }
    }
}

/// Fails with the given status.
#[derive(Clone)]
struct Failing(Status);

impl Authenticator for Failing {
    async fn login(&self, _: LoginRequest) -> Result<LoginReply, Status> {
        Err(self.0.clone())
    }
}

/// Never answers.
#[derive(Clone)]
struct Hanging;

impl Authenticator for Hanging {
    async fn login(&self, _: LoginRequest) -> Result<LoginReply, Status> {
        std::future::pending().await
    }
}

const ARTICLE_CONFIG: &str = "server:\n  http:\n    timeout: 1s\n    headers: [Content-Type, Authorization]\n    methods: [GET, POST, OPTIONS]\n    origins: ['*']\n";

fn config(yaml: &str) -> Config {
    Config::from_entries(vec![Entry::new("config.yaml", yaml).unwrap()]).unwrap()
}

fn post_login(content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut builder = Request::post("/admin/v1/login");
    if let Some(content_type) = content_type {
        builder = builder.header(CONTENT_TYPE, content_type);
    }
    builder.body(body.into()).unwrap()
}

async fn send(router: Router, request: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let response = router.oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    (
        parts.status,
        parts.headers,
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_default()
}

#[tokio::test]
async fn login_replies_id_user_name_and_token() {
    let router = router(Fake, config(ARTICLE_CONFIG));
    let (status, _, body) = send(
        router,
        post_login(
            Some("application/json; charset=utf-8"),
            r#"{"userName":"thangn","password":"123456"}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, r#"{"id":"1","userName":"thangn","token":"signed"}"#);
}

/// The seed article's curl: `-H 'accept: application/json' -H 'Content-Type: application/json'`
/// and a pretty-printed JSON body.
#[tokio::test]
async fn the_article_curl_request_logs_in() {
    let request = Request::post("/admin/v1/login")
        .header("accept", "application/json")
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(
            "{\n  \"userName\": \"thangn\",\n  \"password\": \"123456\"\n}",
        ))
        .unwrap();
    let (status, _, body) = send(router(Fake, config(ARTICLE_CONFIG)), request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, r#"{"id":"1","userName":"thangn","token":"signed"}"#);
}

#[tokio::test]
async fn wrong_credentials_answer_like_go_micro() {
    let router = router(Fake, config(ARTICLE_CONFIG));
    let (status, _, body) = send(
        router,
        post_login(
            Some("application/json"),
            r#"{"userName":"thangn","password":"x"}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    insta::assert_snapshot!(body, @r#"{"code":500,"reason":"USER_NOT_FOUND","message":"User not found","metadata":{}}"#);
}

#[rstest]
#[case::downstream_timeout(
    kratos_error::status(
        tonic::Code::DeadlineExceeded,
        "GATEWAY_TIMEOUT",
        "go-micro.user-srv did not answer within 1s"
    ),
    504
)]
#[case::unreachable(Status::unavailable("tcp connect error"), 503)]
#[tokio::test]
async fn downstream_failures_map_to_gateway_errors(#[case] failure: Status, #[case] expected: u16) {
    let router = router(Failing(failure.clone()), config(ARTICLE_CONFIG));
    let (status, _, body) = send(
        router,
        post_login(
            Some("application/json"),
            r#"{"userName":"a","password":"b"}"#,
        ),
    )
    .await;
    assert_eq!(status.as_u16(), expected);
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["code"], expected);
    assert_eq!(json["message"], failure.message());
}

#[tokio::test]
async fn slow_requests_hit_the_live_server_timeout() {
    let router = router(Hanging, config("server:\n  http:\n    timeout: 50ms\n"));
    let (status, _, body) = send(
        router,
        post_login(
            Some("application/json"),
            r#"{"userName":"a","password":"b"}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(body.contains(r#""reason":"GATEWAY_TIMEOUT""#), "{body}");
}

#[rstest]
#[case::not_json(Some("application/json"), "{\"userName\": ", "INVALID_JSON")]
#[case::wrong_types(
    Some("application/json"),
    "{\"userName\": 1, \"password\": [true]}",
    "INVALID_JSON"
)]
#[case::empty(Some("application/json"), "", "EMPTY_BODY")]
#[case::blank(None, " \n", "EMPTY_BODY")]
#[case::array(Some("application/json"), "[]", "INVALID_JSON")]
#[case::string(Some("application/json"), "\"thangn\"", "INVALID_JSON")]
#[case::wrong_content_type(
    Some("text/plain"),
    "userName=thangn&password=123456",
    "INVALID_CONTENT_TYPE"
)]
#[case::form(
    Some("application/x-www-form-urlencoded"),
    "userName=thangn",
    "INVALID_CONTENT_TYPE"
)]
#[tokio::test]
async fn bad_bodies_are_400_with_a_reason(
    #[case] content_type: Option<&str>,
    #[case] body: &'static str,
    #[case] reason: &str,
) {
    let router = router(Fake, config(ARTICLE_CONFIG));
    let (status, _, text) = send(router, post_login(content_type, body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (json["code"].as_u64(), json["reason"].as_str()),
        (Some(400), Some(reason)),
        "{text}"
    );
    assert!(
        json["message"].as_str().is_some_and(|m| !m.is_empty())
            && json["metadata"] == serde_json::json!({})
    );
}

#[tokio::test]
async fn too_large_bodies_are_refused() {
    let big = format!(
        r#"{{"userName":"{}","password":"x"}}"#,
        "a".repeat(BODY_LIMIT)
    );
    let router = router(Fake, config(ARTICLE_CONFIG));
    let (status, _, text) = send(
        router.clone(),
        post_login(Some("application/json"), big.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("BODY_TOO_LARGE"), "{text}");
    // Also when streamed without a Content-Length.
    let (status, _, text) = send(
        router,
        post_login(Some("application/json"), chunked(big.into_bytes())),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("BODY_TOO_LARGE"), "{text}");
}

/// A body of 1 KiB chunks whose length is not known in advance.
fn chunked(bytes: Vec<u8>) -> Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(1024).map(|c| Ok(c.to_vec())).collect();
    Body::from_stream(tokio_stream::iter(chunks))
}

#[tokio::test]
async fn missing_fields_reach_the_authenticator_as_empty() {
    let router = router(Fake, config(ARTICLE_CONFIG));
    let (status, _, body) = send(
        router,
        post_login(Some("application/json"), r#"{"userName":null,"extra":1}"#),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
}

fn preflight(origin: &str) -> Request<Body> {
    Request::options("/admin/v1/login")
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "Content-Type")
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn star_origin_allows_everyone() {
    let router = router(Fake, config(ARTICLE_CONFIG));
    let (status, headers, _) = send(router.clone(), preflight("http://conformance.example")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "access-control-allow-origin"), "*");
    assert_eq!(
        header(&headers, "access-control-allow-methods"),
        "GET, POST, OPTIONS"
    );
    assert_eq!(
        header(&headers, "access-control-allow-headers"),
        "Content-Type, Authorization"
    );
    let mut login = post_login(
        Some("application/json"),
        r#"{"userName":"thangn","password":"123456"}"#,
    );
    login
        .headers_mut()
        .insert("Origin", "http://conformance.example".parse().unwrap());
    let (status, headers, _) = send(router, login).await;
    assert_eq!(
        (status, header(&headers, "access-control-allow-origin")),
        (StatusCode::OK, "*")
    );
}

#[tokio::test]
async fn listed_origins_are_echoed_and_others_get_no_cors_headers() {
    let router = router(
        Fake,
        config("server:\n  http:\n    methods: [POST]\n    origins: ['https://admin.example']\n"),
    );
    let (_, headers, _) = send(router.clone(), preflight("https://admin.example")).await;
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        "https://admin.example"
    );
    assert_eq!(header(&headers, "vary"), "Origin");
    let (status, headers, _) = send(router, preflight("https://evil.example")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers.get("access-control-allow-origin").is_none()
            && headers.get("access-control-allow-methods").is_none()
    );
}

#[tokio::test]
async fn cors_follows_configuration_changes_live() {
    let config = config("server:\n  http:\n    origins: ['https://old.example']\n");
    let router = router(Fake, config.clone());
    let (_, headers, _) = send(router.clone(), preflight("https://new.example")).await;
    assert!(headers.get("access-control-allow-origin").is_none());
    let id = ConfigMapId {
        namespace: "go-micro".into(),
        name: "admin-srv".into(),
    };
    let data = BTreeMap::from([(
        "config.yaml".to_owned(),
        "server:\n  http:\n    origins: ['https://new.example']\n".to_owned(),
    )]);
    assert!(
        config
            .apply_configmaps(BTreeMap::from([(id, data)]))
            .published
    );
    let (_, headers, _) = send(router, preflight("https://new.example")).await;
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        "https://new.example"
    );
}
