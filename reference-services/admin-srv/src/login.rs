//! The login flow: VerifyPassword at user-srv, then GenerateToken at token-srv.

use std::future::Future;
use std::time::Duration;

use gomicro_config::Config;
use gomicro_proto::admin_srv::v1::{LoginReply, LoginRequest};
use gomicro_proto::common::authn::Claims;
use gomicro_proto::token_srv::v1::{
    GenerateTokenRequest, TokenPlatform, token_service_client::TokenServiceClient,
};
use gomicro_proto::user_srv::v1::{VerifyPasswordRequest, user_service_client::UserServiceClient};
use gomicro_registry::Discovery;
use gomicro_registry::resolver::{self, ResolverOptions};
use gomicro_service_kit::{ConfigExt, kratos_error};
use tonic::transport::Channel;
use tonic::{Code, Response, Status};

use crate::settings::DEFAULT_TIMEOUT;

/// Resolver target of user-srv.
pub const USER_SRV_TARGET: &str = "discovery:///go-micro.user-srv";
/// Resolver target of token-srv.
pub const TOKEN_SRV_TARGET: &str = "discovery:///go-micro.token-srv";

/// Something that turns credentials into a signed token; errors are gRPC statuses in the
/// Kratos format (reason in a `google.rpc.ErrorInfo` detail).
pub trait Authenticator: Clone + Send + Sync + 'static {
    /// Logs `request` in.
    fn login(
        &self,
        request: LoginRequest,
    ) -> impl Future<Output = Result<LoginReply, Status>> + Send;
}

/// The real authenticator: user-srv and token-srv over resolver channels.
#[derive(Clone)]
pub struct Downstream {
    users: UserServiceClient<Channel>,
    tokens: TokenServiceClient<Channel>,
    config: Config,
}

impl Downstream {
    /// Opens the resolver channels to both services.
    pub fn connect(discovery: &Discovery, config: Config) -> anyhow::Result<Downstream> {
        let options = ResolverOptions::default();
        Ok(Downstream {
            users: UserServiceClient::new(resolver::channel(discovery, USER_SRV_TARGET, options)?),
            tokens: TokenServiceClient::new(resolver::channel(
                discovery,
                TOKEN_SRV_TARGET,
                options,
            )?),
            config,
        })
    }

    /// `client.grpc.timeout` of the live configuration.
    fn timeout(&self) -> Duration {
        self.config
            .duration_or("client.grpc.timeout", DEFAULT_TIMEOUT)
            .unwrap_or(DEFAULT_TIMEOUT)
    }
}

impl Authenticator for Downstream {
    async fn login(&self, request: LoginRequest) -> Result<LoginReply, Status> {
        let timeout = self.timeout();
        let verify = VerifyPasswordRequest {
            user_name: request.user_name,
            password: request.password,
        };
        let user = call("go-micro.user-srv", timeout, |left| {
            let (mut users, request) = (self.users.clone(), with_deadline(verify.clone(), left));
            async move { users.verify_password(request).await }
        })
        .await?;
        let claims = Claims {
            subject: user.user_name.clone(),
            user_id: user.id.clone(),
            user_name: user.user_name.clone(),
            platform: TokenPlatform::Web.as_str_name().to_owned(),
            nick_name: user.nick_name,
        };
        let generate = GenerateTokenRequest {
            token_info: Some(claims),
        };
        let reply = call("go-micro.token-srv", timeout, |left| {
            let (mut tokens, request) =
                (self.tokens.clone(), with_deadline(generate.clone(), left));
            async move { tokens.generate_token(request).await }
        })
        .await?;
        Ok(LoginReply {
            id: user.id,
            user_name: user.user_name,
            token: reply.token,
        })
    }
}

fn with_deadline<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

/// Sends one downstream call (`send` gets the time left) bounded by `timeout` (also when no
/// instance is available, where the balancer would otherwise wait); forwards the downstream's
/// status code, message and details. A call whose connection went away under it is sent once
/// more within the same deadline, to whichever instance the balancer picks then: during a
/// rollout the resolver removes a terminating instance and the balancer drops its connection,
/// cancelling a request still on it (grpc-go, under Go-Micro and Kratos, retries such calls
/// transparently too).
async fn call<T, F, Fut>(service: &str, timeout: Duration, mut send: F) -> Result<T, Status>
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Result<Response<T>, Status>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut attempts = 0;
    let outcome = loop {
        attempts += 1;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout_at(deadline, send(left)).await {
            Ok(Err(status)) if attempts < 2 && connection_lost(&status) => continue,
            outcome => break outcome,
        }
    };
    match outcome {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(Status::with_details(
            status.code(),
            status.message(),
            status.details().to_vec().into(),
        )),
        Err(_) => Err(kratos_error::status(
            Code::DeadlineExceeded,
            "GATEWAY_TIMEOUT",
            &format!("{service} did not answer within {timeout:?}"),
        )),
    }
}

/// A status the transport made because the connection went away (the services' own errors carry
/// a Kratos `ErrorInfo`).
fn connection_lost(status: &Status) -> bool {
    matches!(status.code(), Code::Cancelled | Code::Unavailable)
        && kratos_error::error_info(status).is_none()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn slow_calls_become_gateway_timeouts() {
        let status = call("go-micro.user-srv", Duration::from_millis(10), |_| {
            std::future::pending::<Result<Response<()>, Status>>()
        })
        .await
        .unwrap_err();
        assert_eq!(status.code(), Code::DeadlineExceeded);
        assert_eq!(
            status.message(),
            "go-micro.user-srv did not answer within 10ms"
        );
        assert_eq!(
            kratos_error::error_info(&status).unwrap().reason,
            "GATEWAY_TIMEOUT"
        );
    }

    #[tokio::test]
    async fn downstream_errors_keep_code_message_and_reason() {
        let failing = |_| async {
            Err::<Response<()>, _>(kratos_error::status(
                Code::Unknown,
                "USER_NOT_FOUND",
                "User not found",
            ))
        };
        let status = call("go-micro.user-srv", Duration::from_secs(1), failing)
            .await
            .unwrap_err();
        assert_eq!(
            (status.code(), status.message()),
            (Code::Unknown, "User not found")
        );
        assert_eq!(
            kratos_error::error_info(&status).unwrap().reason,
            "USER_NOT_FOUND"
        );
    }

    /// Answers `Cancelled` from the transport (no ErrorInfo) for the first `lost` calls.
    async fn lose_connections(lost: usize, sent: &AtomicUsize) -> Result<Response<u8>, Status> {
        if sent.fetch_add(1, Ordering::SeqCst) < lost {
            Err(Status::cancelled("operation was canceled"))
        } else {
            Ok(Response::new(7))
        }
    }

    #[tokio::test]
    async fn a_call_whose_connection_went_away_is_sent_once_more() {
        let sent = AtomicUsize::new(0);
        let reply = call("go-micro.user-srv", Duration::from_secs(1), |_| {
            lose_connections(1, &sent)
        })
        .await
        .unwrap();
        assert_eq!((reply, sent.load(Ordering::SeqCst)), (7, 2));
    }

    #[tokio::test]
    async fn a_second_lost_connection_is_the_answer() {
        let sent = AtomicUsize::new(0);
        let status = call("go-micro.user-srv", Duration::from_secs(1), |_| {
            lose_connections(2, &sent)
        })
        .await
        .unwrap_err();
        assert_eq!(
            (status.code(), sent.load(Ordering::SeqCst)),
            (Code::Cancelled, 2)
        );
    }

    #[tokio::test]
    async fn a_cancellation_the_service_answered_is_not_sent_again() {
        let sent = AtomicUsize::new(0);
        let status = call("go-micro.user-srv", Duration::from_secs(1), |_| {
            sent.fetch_add(1, Ordering::SeqCst);
            async {
                Err::<Response<()>, _>(kratos_error::status(
                    Code::Cancelled,
                    "CANCELLED",
                    "the client went away",
                ))
            }
        })
        .await
        .unwrap_err();
        assert_eq!(
            (status.code(), sent.load(Ordering::SeqCst)),
            (Code::Cancelled, 1)
        );
    }
}
