//! token-srv: `token_srv.v1.TokenService/GenerateToken` signs HS256 JWTs with the live
//! `auth.api_key`.

mod jwt;
mod service;
mod settings;

use std::process::ExitCode;

use gomicro_proto::token_srv::v1::token_service_server::TokenServiceServer;
use gomicro_service_kit::{Servers, ServiceSpec};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let spec = ServiceSpec {
        name: "go-micro.token-srv",
        api_packages: &["token_srv.v1", "common.authn"],
        validator: Some(settings::validate),
    };
    gomicro_service_kit::run(spec, |ctx| async move {
        let mut grpc = tonic::service::RoutesBuilder::default();
        grpc.add_service(TokenServiceServer::new(service::TokenSrv::new(ctx.config)));
        Ok(Servers { grpc, http: None })
    })
    .await
}
