//! HS256 JWTs byte-compatible with Go-Micro's token-srv (golang-jwt): header
//! `{"alg":"HS256","typ":"JWT"}` (in that order, which jsonwebtoken's own encoder does not
//! produce) and claims `iat`, `platform`, `sub`, `uid` in that order, no `exp`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde::{Deserialize, Serialize};

/// The header JSON, exactly as Go writes it.
pub const HEADER_JSON: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// The token's claims; serialised in field order (iat, platform, sub, uid).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// Issued at, unix seconds.
    pub iat: u64,
    /// Platform enum name, e.g. `TOKEN_PLATFORM_WEB`.
    pub platform: String,
    /// Subject: the user name.
    pub sub: String,
    /// The user id.
    pub uid: String,
}

/// Signs `claims` with HMAC-SHA256 under `key`: `header.claims.signature`, base64url without
/// padding.
pub fn sign(claims: &TokenClaims, key: &[u8]) -> Result<String, jsonwebtoken::errors::Error> {
    let claims_json = serde_json::to_vec(claims).expect("claims always serialise");
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(HEADER_JSON),
        URL_SAFE_NO_PAD.encode(claims_json)
    );
    let signature = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &EncodingKey::from_secret(key),
        Algorithm::HS256,
    )?;
    Ok(format!("{signing_input}.{signature}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    fn article_claims() -> TokenClaims {
        TokenClaims {
            iat: 1695359246,
            platform: "TOKEN_PLATFORM_WEB".into(),
            sub: "thangn".into(),
            uid: "1".into(),
        }
    }

    #[test]
    fn article_sample_token_is_recomputed_exactly() {
        let token = sign(&article_claims(), b"some_api_key").unwrap();
        let segments: Vec<&str> = token.split('.').collect();
        assert_eq!(segments.len(), 3);
        // The well-known base64url of {"alg":"HS256","typ":"JWT"}.
        assert_eq!(segments[0], "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9");
        let hand_built =
            r#"{"iat":1695359246,"platform":"TOKEN_PLATFORM_WEB","sub":"thangn","uid":"1"}"#;
        assert_eq!(segments[1], URL_SAFE_NO_PAD.encode(hand_built));
        // The signature verifies under the key, with no exp required.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let decoded = jsonwebtoken::decode::<TokenClaims>(
            &token,
            &DecodingKey::from_secret(b"some_api_key"),
            &validation,
        )
        .unwrap();
        assert_eq!(decoded.claims, article_claims());
        assert_eq!(decoded.header.typ.as_deref(), Some("JWT"));
    }

    #[test]
    fn another_key_does_not_verify() {
        let token = sign(&article_claims(), b"some_api_key").unwrap();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        assert!(
            jsonwebtoken::decode::<TokenClaims>(
                &token,
                &DecodingKey::from_secret(b"other"),
                &validation
            )
            .is_err()
        );
    }
}
