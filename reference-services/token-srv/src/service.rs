//! The gRPC TokenService.

use std::time::{SystemTime, UNIX_EPOCH};

use gomicro_config::Config;
use gomicro_proto::token_srv::v1::token_service_server::TokenService;
use gomicro_proto::token_srv::v1::{GenerateTokenReply, GenerateTokenRequest};
use gomicro_service_kit::kratos_error;
use tonic::{Code, Request, Response, Status};

use crate::jwt::{self, TokenClaims};
use crate::settings::{API_KEY_PATH, DEFAULT_API_KEY};

/// Signs tokens with the `auth.api_key` of the live configuration.
pub struct TokenSrv {
    config: Config,
}

impl TokenSrv {
    /// A token service reading its key from `config` at every call.
    pub fn new(config: Config) -> Self {
        TokenSrv { config }
    }

    fn api_key(&self) -> Result<String, Status> {
        self.config
            .get::<String>(API_KEY_PATH)
            .map(|key| key.unwrap_or_else(|| DEFAULT_API_KEY.to_owned()))
            .map_err(|error| {
                kratos_error::status(Code::Internal, "INVALID_CONFIG", &error.to_string())
            })
    }

    /// Signs the claims of `request` issued at `iat`.
    pub fn generate(
        &self,
        request: GenerateTokenRequest,
        iat: u64,
    ) -> Result<GenerateTokenReply, Status> {
        let info = request.token_info.ok_or_else(|| {
            kratos_error::status(
                Code::InvalidArgument,
                "INVALID_ARGUMENT",
                "tokenInfo is required",
            )
        })?;
        let claims = TokenClaims {
            iat,
            platform: info.platform,
            sub: info.subject,
            uid: info.user_id,
        };
        let token = jwt::sign(&claims, self.api_key()?.as_bytes()).map_err(|error| {
            kratos_error::status(Code::Internal, "SIGNING_FAILED", &error.to_string())
        })?;
        tracing::debug!(sub = %claims.sub, uid = %claims.uid, platform = %claims.platform, "token generated");
        Ok(GenerateTokenReply { token })
    }
}

#[tonic::async_trait]
impl TokenService for TokenSrv {
    async fn generate_token(
        &self,
        request: Request<GenerateTokenRequest>,
    ) -> Result<Response<GenerateTokenReply>, Status> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        self.generate(request.into_inner(), now).map(Response::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gomicro_config::Entry;
    use gomicro_proto::common::authn::Claims;

    fn config(yaml: &str) -> Config {
        Config::from_entries(vec![Entry::new("config.yaml", yaml).unwrap()]).unwrap()
    }

    fn request() -> GenerateTokenRequest {
        GenerateTokenRequest {
            token_info: Some(Claims {
                subject: "thangn".into(),
                user_id: "1".into(),
                user_name: "thangn".into(),
                platform: "TOKEN_PLATFORM_WEB".into(),
                nick_name: "thangn".into(),
            }),
        }
    }

    fn expected(key: &str) -> String {
        let claims = TokenClaims {
            iat: 1695359246,
            platform: "TOKEN_PLATFORM_WEB".into(),
            sub: "thangn".into(),
            uid: "1".into(),
        };
        jwt::sign(&claims, key.as_bytes()).unwrap()
    }

    #[test]
    fn signs_with_the_configured_key() {
        let service = TokenSrv::new(config("auth:\n  api_key: secret-1\n"));
        assert_eq!(
            service.generate(request(), 1695359246).unwrap().token,
            expected("secret-1")
        );
    }

    #[test]
    fn default_key_when_unconfigured() {
        let service = TokenSrv::new(config("server: {}\n"));
        assert_eq!(
            service.generate(request(), 1695359246).unwrap().token,
            expected("some_api_key")
        );
    }

    #[test]
    fn missing_token_info_is_invalid_argument() {
        let service = TokenSrv::new(config("server: {}\n"));
        let status = service
            .generate(GenerateTokenRequest { token_info: None }, 0)
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            kratos_error::error_info(&status).unwrap().reason,
            "INVALID_ARGUMENT"
        );
    }
}
