//! The gRPC server: the service's routes plus grpc.health.v1 and reflection v1/v1alpha.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::RoutesBuilder;
use tonic_health::server::HealthReporter;

/// Adds health (service `""` SERVING) and reflection (v1, v1alpha; the gomicro packages and
/// grpc.health.v1) to `routes`; returns the reporter to flip to NOT_SERVING on stop.
pub fn add_standard_services(routes: &mut RoutesBuilder) -> anyhow::Result<HealthReporter> {
    let (reporter, health) = tonic_health::server::health_reporter();
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(gomicro_proto::FILE_DESCRIPTOR_SET)
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
