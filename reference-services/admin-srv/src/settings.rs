//! admin-srv's configuration checks and defaults.

use std::time::Duration;

use gomicro_service_kit::parse_duration;
use serde_json::Value;

/// Default of `client.grpc.timeout` and `server.http.timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

const STRING_LISTS: [&str; 3] = [
    "/server/http/headers",
    "/server/http/methods",
    "/server/http/origins",
];
const DURATIONS: [&str; 3] = [
    "/server/http/timeout",
    "/server/grpc/timeout",
    "/client/grpc/timeout",
];

/// Rejects CORS lists that are not lists of strings and timeouts that are not durations.
pub fn validate(tree: &Value) -> Result<(), String> {
    let dotted = |pointer: &str| pointer.trim_start_matches('/').replace('/', ".");
    for pointer in STRING_LISTS {
        match tree.pointer(pointer) {
            None => {}
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {}
            Some(other) => {
                return Err(format!(
                    "{} must be a list of strings, got {other}",
                    dotted(pointer)
                ));
            }
        }
    }
    for pointer in DURATIONS {
        match tree.pointer(pointer) {
            None => {}
            Some(Value::String(text)) => parse_duration(text)
                .map(drop)
                .map_err(|e| format!("{}: {e}", dotted(pointer)))?,
            Some(other) => {
                return Err(format!(
                    "{} must be a duration string like \"1s\", got {other}",
                    dotted(pointer)
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    #[test]
    fn accepts_the_article_config() {
        let tree = json!({
            "server": { "http": { "timeout": "1s", "headers": ["Content-Type"], "methods": ["POST"], "origins": ["*"] } },
            "client": { "grpc": { "timeout": "1s" } }
        });
        assert_eq!(validate(&tree), Ok(()));
    }

    #[rstest]
    #[case(json!({"server": {"http": {"origins": "*"}}}), "server.http.origins must be a list of strings, got \"*\"")]
    #[case(json!({"server": {"http": {"methods": [1]}}}), "server.http.methods must be a list of strings, got [1]")]
    #[case(json!({"client": {"grpc": {"timeout": 1}}}), "client.grpc.timeout must be a duration string like \"1s\", got 1")]
    #[case(json!({"client": {"grpc": {"timeout": "soon"}}}), "client.grpc.timeout: invalid duration \"soon\"")]
    fn rejects_bad_values(#[case] tree: Value, #[case] message: &str) {
        let error = validate(&tree).unwrap_err();
        assert!(error.starts_with(message), "{error}");
    }
}
