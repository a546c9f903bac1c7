//! HTTP errors in the Go-Micro/Kratos JSON shape `{"code","reason","message","metadata"}`.

use std::collections::BTreeMap;

use axum::Json;
use axum::response::{IntoResponse, Response};
use gomicro_service_kit::kratos_error;
use http::StatusCode;
use serde::Serialize;

/// An error answer; `code` is also the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpError {
    /// HTTP status code.
    pub code: u16,
    /// Machine-readable reason, e.g. `USER_NOT_FOUND`.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// Extra string metadata (usually empty).
    pub metadata: BTreeMap<String, String>,
}

impl HttpError {
    /// An error with empty metadata.
    pub fn new(code: StatusCode, reason: &str, message: impl Into<String>) -> Self {
        HttpError {
            code: code.as_u16(),
            reason: reason.to_owned(),
            message: message.into(),
            metadata: BTreeMap::new(),
        }
    }

    /// A 400 Bad Request.
    pub fn bad_request(reason: &str, message: impl Into<String>) -> Self {
        HttpError::new(StatusCode::BAD_REQUEST, reason, message)
    }

    /// The HTTP form of a gRPC status, as Kratos converts it: status from the gRPC code
    /// (UNKNOWN → 500, DEADLINE_EXCEEDED → 504, …), reason and metadata from the
    /// `ErrorInfo` detail (else the code's name), message unchanged.
    pub fn from_status(status: &tonic::Status) -> Self {
        let info = kratos_error::error_info(status);
        HttpError {
            code: kratos_error::http_status_of(status.code()),
            reason: info
                .as_ref()
                .map_or_else(|| code_name(status.code()), |i| i.reason.clone()),
            message: status.message().to_owned(),
            metadata: info.map(|i| i.metadata).unwrap_or_default(),
        }
    }
}

/// `DeadlineExceeded` → `DEADLINE_EXCEEDED`.
fn code_name(code: tonic::Code) -> String {
    let mut name = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(
        kratos_error::status(tonic::Code::Unknown, "USER_NOT_FOUND", "User not found"),
        500,
        "USER_NOT_FOUND"
    )]
    #[case(
        kratos_error::status(tonic::Code::DeadlineExceeded, "GATEWAY_TIMEOUT", "late"),
        504,
        "GATEWAY_TIMEOUT"
    )]
    #[case(tonic::Status::unavailable("connection refused"), 503, "UNAVAILABLE")]
    #[case(
        tonic::Status::deadline_exceeded("Timeout expired"),
        504,
        "DEADLINE_EXCEEDED"
    )]
    fn statuses_map_like_kratos(
        #[case] status: tonic::Status,
        #[case] code: u16,
        #[case] reason: &str,
    ) {
        let error = HttpError::from_status(&status);
        assert_eq!(
            (error.code, error.reason.as_str(), error.message.as_str()),
            (code, reason, status.message())
        );
    }
}
