//! user-srv: `user_srv.v1.UserService/VerifyPassword` over the demo user directory.

mod directory;
mod service;

use std::process::ExitCode;

use gomicro_proto::user_srv::v1::user_service_server::UserServiceServer;
use gomicro_service_kit::{Servers, ServiceSpec};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let spec = ServiceSpec {
        name: "go-micro.user-srv",
        api_packages: &["user_srv.v1"],
        validator: None,
    };
    gomicro_service_kit::run(spec, |_ctx| async move {
        let mut grpc = tonic::service::RoutesBuilder::default();
        grpc.add_service(UserServiceServer::new(service::UserSrv));
        Ok(Servers { grpc, http: None })
    })
    .await
}
