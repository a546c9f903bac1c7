//! The gRPC AuthenticationService.

use gomicro_proto::admin_srv::v1::authentication_service_server::AuthenticationService;
use gomicro_proto::admin_srv::v1::{LoginReply, LoginRequest};
use tonic::{Request, Response, Status};

use crate::login::Authenticator;

/// `admin_srv.v1.AuthenticationService` over an [`Authenticator`]; downstream errors are
/// passed through unchanged (e.g. UNKNOWN "User not found" with reason USER_NOT_FOUND).
pub struct AdminGrpc<A> {
    auth: A,
}

impl<A> AdminGrpc<A> {
    /// The service logging in through `auth`.
    pub fn new(auth: A) -> Self {
        AdminGrpc { auth }
    }
}

#[tonic::async_trait]
impl<A: Authenticator> AuthenticationService for AdminGrpc<A> {
    async fn login(&self, request: Request<LoginRequest>) -> Result<Response<LoginReply>, Status> {
        self.auth
            .login(request.into_inner())
            .await
            .map(Response::new)
    }
}
