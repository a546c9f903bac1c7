//! The gRPC server: the service's routes plus grpc.health.v1 and reflection v1/v1alpha.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::RoutesBuilder;
use tonic_health::server::HealthReporter;

/// Adds health (service `""` SERVING) and reflection (v1, v1alpha; the proto packages
/// `api_packages` and grpc.health.v1) to `routes`; returns the reporter to flip to
/// NOT_SERVING on stop.
pub fn add_standard_services(
    routes: &mut RoutesBuilder,
    api_packages: &[&str],
) -> anyhow::Result<HealthReporter> {
    let (reporter, health) = tonic_health::server::health_reporter();
    let api = gomicro_proto::file_descriptor_set_of(api_packages);
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(&api)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    routes.add_service(health);
    routes.add_service(reflection().build_v1()?);
    routes.add_service(reflection().build_v1alpha()?);
    Ok(reporter)
}

/// Serves `routes` on `listener` with a per-request `timeout` until `shutdown` resolves.
pub async fn serve(
    routes: RoutesBuilder,
    listener: TcpListener,
    timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .timeout(timeout)
        .add_routes(routes.routes())
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    };
    use tonic_reflection::pb::v1alpha;

    async fn start() -> (
        tonic::transport::Channel,
        HealthReporter,
        tokio::sync::oneshot::Sender<()>,
    ) {
        let mut routes = RoutesBuilder::default();
        let reporter = add_standard_services(&mut routes, &["admin_srv.v1"]).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(routes, listener, Duration::from_secs(1), async {
            let _ = stopped.await;
        }));
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .unwrap()
            .connect_lazy();
        (channel, reporter, stop)
    }

    #[tokio::test]
    async fn health_reports_serving_then_not_serving() {
        let (channel, reporter, _stop) = start().await;
        let mut health = HealthClient::new(channel);
        let check = || HealthCheckRequest {
            service: String::new(),
        };
        assert_eq!(
            health.check(check()).await.unwrap().into_inner().status(),
            ServingStatus::Serving
        );
        reporter
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        assert_eq!(
            health.check(check()).await.unwrap().into_inner().status(),
            ServingStatus::NotServing
        );
    }

    #[tokio::test]
    async fn reflection_v1_and_v1alpha_list_the_apis_and_health() {
        let (channel, _reporter, _stop) = start().await;
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut v1 = ServerReflectionClient::new(channel.clone());
        let mut responses = v1
            .server_reflection_info(tokio_stream::once(request))
            .await
            .unwrap()
            .into_inner();
        let Some(MessageResponse::ListServicesResponse(list)) =
            responses.message().await.unwrap().unwrap().message_response
        else {
            panic!("no service list");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        for wanted in [
            "admin_srv.v1.AuthenticationService",
            "grpc.health.v1.Health",
        ] {
            assert!(
                names.iter().any(|n| n == wanted),
                "{wanted} missing in {names:?}"
            );
        }
        assert!(
            !names.iter().any(|n| n == "user_srv.v1.UserService"),
            "{names:?}"
        );

        use v1alpha::server_reflection_request::MessageRequest as AlphaRequest;
        use v1alpha::server_reflection_response::MessageResponse as AlphaResponse;
        let request = v1alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(AlphaRequest::FileContainingSymbol(
                "admin_srv.v1.AuthenticationService".into(),
            )),
        };
        let mut alpha = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
        let mut responses = alpha
            .server_reflection_info(tokio_stream::once(request))
            .await
            .unwrap()
            .into_inner();
        let response = responses.message().await.unwrap().unwrap().message_response;
        assert!(
            matches!(response, Some(AlphaResponse::FileDescriptorResponse(files)) if !files.file_descriptor_proto.is_empty())
        );
    }
}
