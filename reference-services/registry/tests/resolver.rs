//! The resolver channel against a real in-process gRPC health server.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gomicro_registry::ServiceInstance;
use gomicro_registry::resolver::{ResolverOptions, channel_from_updates};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::transport::Channel;
use tonic_health::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_health::server::HealthReporter;

const DEADLINE: Duration = Duration::from_secs(10);

fn fast_options() -> ResolverOptions {
    ResolverOptions {
        connect_timeout: Duration::from_millis(500),
        probe_timeout: Duration::from_millis(500),
        retry_interval: Duration::from_millis(50),
    }
}

async fn health_server() -> (SocketAddr, HealthReporter) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (reporter, service) = tonic_health::server::health_reporter();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (address, reporter)
}

fn instance(address: SocketAddr) -> ServiceInstance {
    ServiceInstance {
        id: format!("pod-{}.go-micro.user-srv", address.port()),
        name: "go-micro.user-srv".into(),
        version: "test".into(),
        metadata: Default::default(),
        endpoints: vec![format!("http://{address}"), format!("grpc://{address}")],
    }
}

/// Whether one call through the balanced channel is answered within 200 ms.
async fn answers(channel: &Channel) -> bool {
    let mut client = HealthClient::new(channel.clone());
    let call = client.check(HealthCheckRequest {
        service: String::new(),
    });
    matches!(
        tokio::time::timeout(Duration::from_millis(200), call).await,
        Ok(Ok(_))
    )
}

async fn wait_until(what: &str, channel: &Channel, expect_answer: bool) {
    let start = Instant::now();
    while answers(channel).await != expect_answer {
        assert!(start.elapsed() < DEADLINE, "timed out waiting until {what}");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn balances_over_healthy_instances_and_keeps_them_on_empty_updates() {
    let (address, reporter) = health_server().await;
    let (updates, receiver) = mpsc::channel(8);
    let channel = channel_from_updates(ReceiverStream::new(receiver), fast_options());

    assert!(!answers(&channel).await, "no instance known yet");
    updates.send(vec![instance(address)]).await.unwrap();
    wait_until("the instance is balanced over", &channel, true).await;

    // An empty update is refused: the previous address keeps serving.
    updates.send(vec![]).await.unwrap();
    updates
        .send(vec![ServiceInstance {
            endpoints: vec!["http://127.0.0.1:1".into()],
            ..instance(address)
        }])
        .await
        .unwrap();
    for _ in 0..5 {
        assert!(answers(&channel).await);
    }

    // A failing health check takes the address out; recovery puts it back.
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    wait_until("the NOT_SERVING address is removed", &channel, false).await;
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    wait_until("the recovered address is back", &channel, true).await;
}

#[tokio::test]
async fn removed_instances_leave_the_balancer() {
    let (first, _r1) = health_server().await;
    let (second, reporter_two) = health_server().await;
    let (updates, receiver) = mpsc::channel(8);
    let channel = channel_from_updates(ReceiverStream::new(receiver), fast_options());
    updates
        .send(vec![instance(first), instance(second)])
        .await
        .unwrap();
    wait_until("both are balanced over", &channel, true).await;
    updates.send(vec![instance(second)]).await.unwrap();
    // Once only `second` remains, making it unhealthy must leave nothing to call.
    reporter_two
        .set_service_status("", ServingStatus::NotServing)
        .await;
    wait_until("no healthy address remains", &channel, false).await;
}

#[tokio::test]
async fn not_serving_and_stopped_servers_leave_at_once() {
    let (address, reporter) = health_server().await;
    let (updates, receiver) = mpsc::channel(8);
    let slow = ResolverOptions {
        retry_interval: Duration::from_secs(3600),
        ..fast_options()
    };
    let channel = channel_from_updates(ReceiverStream::new(receiver), slow);
    updates.send(vec![instance(address)]).await.unwrap();
    wait_until("the instance is balanced over", &channel, true).await;
    // Pushed by the health watch: no polling interval involved.
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    wait_until("the NOT_SERVING address is removed", &channel, false).await;
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    wait_until("the address is back", &channel, true).await;
    // A refused empty update keeps the address.
    updates.send(vec![]).await.unwrap();
    assert!(answers(&channel).await);
}
