//! admin-srv: `POST /admin/v1/login` (HTTP) and `admin_srv.v1.AuthenticationService/Login`
//! (gRPC), both verifying with user-srv and signing with token-srv, reached through
//! `discovery:///` resolver channels.

mod grpc;
mod http;
mod login;
mod settings;

use std::process::ExitCode;

use gomicro_proto::admin_srv::v1::authentication_service_server::AuthenticationServiceServer;
use gomicro_service_kit::{Servers, ServiceSpec};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let spec = ServiceSpec {
        name: "go-micro.admin-srv",
        api_packages: &["admin_srv.v1"],
        validator: Some(settings::validate),
    };
    gomicro_service_kit::run(spec, |ctx| async move {
        let downstream = login::Downstream::connect(&ctx.discovery(), ctx.config.clone())?;
        let mut grpc = tonic::service::RoutesBuilder::default();
        grpc.add_service(AuthenticationServiceServer::new(grpc::AdminGrpc::new(
            downstream.clone(),
        )));
        Ok(Servers {
            grpc,
            http: Some(http::router(downstream, ctx.config)),
        })
    })
    .await
}
