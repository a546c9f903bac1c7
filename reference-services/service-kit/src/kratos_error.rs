//! Go-Micro/Kratos error wire format over gRPC: a status whose details
//! (`grpc-status-details-bin`, a `google.rpc.Status`) carry one `google.rpc.ErrorInfo`
//! with the error's reason and metadata; plus Kratos' mapping of gRPC codes to HTTP.

use std::collections::BTreeMap;

use prost::Message;

/// Type URL of `google.rpc.ErrorInfo` inside a `google.protobuf.Any`.
pub const ERROR_INFO_TYPE_URL: &str = "type.googleapis.com/google.rpc.ErrorInfo";

/// `google.rpc.ErrorInfo`.
#[derive(Clone, PartialEq, Message)]
pub struct ErrorInfo {
    /// Machine-readable reason, e.g. `USER_NOT_FOUND`.
    #[prost(string, tag = "1")]
    pub reason: String,
    /// Error domain (Kratos leaves it empty).
    #[prost(string, tag = "2")]
    pub domain: String,
    /// Extra string metadata.
    #[prost(btree_map = "string, string", tag = "3")]
    pub metadata: BTreeMap<String, String>,
}

/// `google.rpc.Status`.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<Any>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, Message)]
struct Any {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// A status with `code`, `message` and an `ErrorInfo{reason}` detail, as Kratos sends it.
pub fn status(code: tonic::Code, reason: &str, message: &str) -> tonic::Status {
    let info = ErrorInfo {
        reason: reason.to_owned(),
        ..Default::default()
    };
    let details = RpcStatus {
        code: code as i32,
        message: message.to_owned(),
        details: vec![Any {
            type_url: ERROR_INFO_TYPE_URL.to_owned(),
            value: info.encode_to_vec(),
        }],
    };
    tonic::Status::with_details(code, message, details.encode_to_vec().into())
}

/// The `ErrorInfo` detail of a status, if it carries one.
pub fn error_info(status: &tonic::Status) -> Option<ErrorInfo> {
    let details = RpcStatus::decode(status.details()).ok()?;
    details
        .details
        .iter()
        .find(|any| any.type_url.ends_with("/google.rpc.ErrorInfo"))
        .and_then(|any| ErrorInfo::decode(any.value.as_slice()).ok())
}

/// Kratos' HTTP status for a gRPC code (`httpstatus.FromGRPCCode`).
pub fn http_status_of(code: tonic::Code) -> u16 {
    use tonic::Code::*;
    match code {
        Ok => 200,
        Cancelled => 499,
        InvalidArgument | FailedPrecondition | OutOfRange => 400,
        DeadlineExceeded => 504,
        NotFound => 404,
        AlreadyExists | Aborted => 409,
        PermissionDenied => 403,
        Unauthenticated => 401,
        ResourceExhausted => 429,
        Unimplemented => 501,
        Unavailable => 503,
        Unknown | Internal | DataLoss => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn reason_survives_the_round_trip() {
        let sent = status(tonic::Code::Unknown, "USER_NOT_FOUND", "User not found");
        // Through the wire headers, as a client would see it.
        let mut headers = tonic::codegen::http::HeaderMap::new();
        sent.add_header(&mut headers).unwrap();
        let received = tonic::Status::from_header_map(&headers).unwrap();
        assert_eq!(received.code(), tonic::Code::Unknown);
        assert_eq!(received.message(), "User not found");
        let info = error_info(&received).unwrap();
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("USER_NOT_FOUND", "")
        );
    }

    #[test]
    fn plain_status_has_no_error_info() {
        assert_eq!(
            error_info(&tonic::Status::unavailable("no connection")),
            None
        );
    }

    #[rstest]
    #[case(tonic::Code::Unknown, 500)]
    #[case(tonic::Code::DeadlineExceeded, 504)]
    #[case(tonic::Code::Unauthenticated, 401)]
    #[case(tonic::Code::InvalidArgument, 400)]
    #[case(tonic::Code::Unavailable, 503)]
    fn http_mapping_follows_kratos(#[case] code: tonic::Code, #[case] http: u16) {
        assert_eq!(http_status_of(code), http);
    }
}
