//! The gRPC UserService.

use gomicro_proto::user_srv::v1::user_service_server::UserService;
use gomicro_proto::user_srv::v1::{User, VerifyPasswordRequest};
use gomicro_service_kit::kratos_error;
use tonic::{Code, Request, Response, Status};

use crate::directory;

/// Reason of the wrong-credentials error.
pub const USER_NOT_FOUND: &str = "USER_NOT_FOUND";
/// Password as returned to callers.
pub const MASKED_PASSWORD: &str = "******";

/// Verifies credentials; never logs a password.
#[derive(Debug, Default)]
pub struct UserSrv;

impl UserSrv {
    /// The user for valid credentials, else Go-Micro's `USER_NOT_FOUND` error (gRPC UNKNOWN
    /// with a `google.rpc.ErrorInfo` detail).
    pub fn verify_password(&self, request: &VerifyPasswordRequest) -> Result<User, Status> {
        match directory::verify(&request.user_name, &request.password) {
            Some(account) => {
                tracing::debug!(user = account.user_name, "password verified");
                Ok(User {
                    id: account.id.to_owned(),
                    user_name: account.user_name.to_owned(),
                    nick_name: account.user_name.to_owned(),
                    password: MASKED_PASSWORD.to_owned(),
                })
            }
            None => {
                tracing::debug!(user = %request.user_name, "wrong credentials");
                Err(kratos_error::status(
                    Code::Unknown,
                    USER_NOT_FOUND,
                    "User not found",
                ))
            }
        }
    }
}

#[tonic::async_trait]
impl UserService for UserSrv {
    async fn verify_password(
        &self,
        request: Request<VerifyPasswordRequest>,
    ) -> Result<Response<User>, Status> {
        UserSrv::verify_password(self, request.get_ref()).map(Response::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(user_name: &str, password: &str) -> VerifyPasswordRequest {
        VerifyPasswordRequest {
            user_name: user_name.into(),
            password: password.into(),
        }
    }

    #[test]
    fn demo_user_is_returned_with_a_masked_password() {
        let user = UserSrv
            .verify_password(&request("thangn", "123456"))
            .unwrap();
        assert_eq!(
            user,
            User {
                id: "1".into(),
                user_name: "thangn".into(),
                nick_name: "thangn".into(),
                password: "******".into()
            }
        );
    }

    #[test]
    fn wrong_credentials_carry_the_go_micro_error() {
        let status = UserSrv
            .verify_password(&request("thangn", "nope"))
            .unwrap_err();
        assert_eq!(status.code(), Code::Unknown);
        assert_eq!(status.message(), "User not found");
        assert_eq!(
            kratos_error::error_info(&status).unwrap().reason,
            USER_NOT_FOUND
        );
    }
}
