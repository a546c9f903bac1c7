//! bench-baseline: the cheapest unary handlers on the login paths, so `harness bench` can say
//! how close a login (one request plus two gRPC calls behind it) comes to what this cluster,
//! machine and load generator allow.
//!
//! `POST /admin/v1/login` on :8080 reads the body and answers a constant login reply;
//! `admin_srv.v1.AuthenticationService/Login` on :9090 echoes the user name with a constant
//! token. No configuration, registration, logging or per-request work beyond the protocols.
//! Arguments (the images' `-conf DIR`) are ignored.

use gomicro_proto::admin_srv::v1::authentication_service_server::{
    AuthenticationService, AuthenticationServiceServer,
};
use gomicro_proto::admin_srv::v1::{LoginReply, LoginRequest};
use tonic::{Request, Response, Status};

/// The token both handlers answer with.
const TOKEN: &str = "bench-baseline";
/// The HTTP reply: a login reply's shape.
const HTTP_REPLY: &str = r#"{"id":"1","userName":"bench-baseline","token":"bench-baseline"}"#;

struct Echo;

#[tonic::async_trait]
impl AuthenticationService for Echo {
    async fn login(&self, request: Request<LoginRequest>) -> Result<Response<LoginReply>, Status> {
        Ok(Response::new(LoginReply {
            id: "1".into(),
            user_name: request.into_inner().user_name,
            token: TOKEN.into(),
        }))
    }
}

async fn http_login(_body: axum::body::Bytes) -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        HTTP_REPLY,
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let http = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
    let router = axum::Router::new().route("/admin/v1/login", axum::routing::post(http_login));
    let grpc = tonic::transport::Server::builder()
        .add_service(AuthenticationServiceServer::new(Echo))
        .serve("0.0.0.0:9090".parse()?);
    println!("bench-baseline serving HTTP on :8080 and gRPC on :9090");
    tokio::select! {
        served = async { axum::serve(http, router).await } => served?,
        served = grpc => served?,
    }
    Ok(())
}
