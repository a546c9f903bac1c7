//! token-srv's configuration: `auth.api_key`.

use serde_json::Value;

/// Config path of the signing key.
pub const API_KEY_PATH: &str = "auth.api_key";
/// Signing key when none is configured.
pub const DEFAULT_API_KEY: &str = "some_api_key";

/// Rejects a configured `auth.api_key` that is not a non-empty string.
pub fn validate(tree: &Value) -> Result<(), String> {
    match tree.pointer("/auth/api_key") {
        None => Ok(()),
        Some(Value::String(key)) if !key.is_empty() => Ok(()),
        Some(Value::String(_)) => Err(format!("{API_KEY_PATH} must not be empty")),
        Some(other) => Err(format!("{API_KEY_PATH} must be a string, got {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    #[rstest]
    #[case(json!({}))]
    #[case(json!({"auth": {}}))]
    #[case(json!({"auth": {"api_key": "k"}}))]
    fn accepts_absent_or_non_empty_keys(#[case] tree: Value) {
        assert_eq!(validate(&tree), Ok(()));
    }

    #[rstest]
    #[case(json!({"auth": {"api_key": ""}}), "auth.api_key must not be empty")]
    #[case(json!({"auth": {"api_key": 42}}), "auth.api_key must be a string, got 42")]
    #[case(json!({"auth": {"api_key": null}}), "auth.api_key must be a string, got null")]
    fn rejects_bad_keys(#[case] tree: Value, #[case] message: &str) {
        assert_eq!(validate(&tree).unwrap_err(), message);
    }
}
