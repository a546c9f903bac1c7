//! HEALTH: grpc.health.v1 and server reflection on every gRPC server (CONTRACT.md §5).

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
};
use tonic_reflection::pb::v1alpha;

use super::{Case, Ctx, case_fn};

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            id: "HEALTH-001",
            feature: "health",
            section: "§5",
            summary: "grpc.health.v1 answers SERVING for service \"\" on every service",
            run: case_fn!(health_serving),
        },
        Case {
            id: "HEALTH-002",
            feature: "reflection",
            section: "§5",
            summary: "server reflection (v1 and v1alpha) lists each service's API and health",
            run: case_fn!(reflection_lists_services),
        },
    ]
}

async fn health_serving(ctx: &Ctx) -> Result<Value> {
    let mut observed = BTreeMap::new();
    for (role, service) in ctx.profile.all_services() {
        let mut client = HealthClient::new(ctx.grpc_channel(service).await?);
        let status = client
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .with_context(|| format!("{}: health check failed", service.name))?
            .into_inner()
            .status();
        if status != ServingStatus::Serving {
            bail!(
                "{}: health status is {status:?}, expected SERVING",
                service.name
            );
        }
        observed.insert(role, status.as_str_name());
    }
    Ok(json!(observed))
}

/// The fully qualified API service each role must expose.
fn api_service(role: &str) -> &'static str {
    match role {
        "admin" => "admin_srv.v1.AuthenticationService",
        "user" => "user_srv.v1.UserService",
        _ => "token_srv.v1.TokenService",
    }
}

async fn reflection_lists_services(ctx: &Ctx) -> Result<Value> {
    let mut observed = BTreeMap::new();
    for (role, service) in ctx.profile.all_services() {
        let channel = ctx.grpc_channel(service).await?;
        let v1 = list_services_v1(channel.clone())
            .await
            .with_context(|| format!("{}: reflection v1", service.name))?;
        let alpha = list_services_v1alpha(channel)
            .await
            .with_context(|| format!("{}: reflection v1alpha", service.name))?;
        for (version, listed) in [("v1", &v1), ("v1alpha", &alpha)] {
            for wanted in [api_service(role), "grpc.health.v1.Health"] {
                if !listed.iter().any(|s| s == wanted) {
                    bail!(
                        "{}: reflection {version} does not list {wanted} (lists {listed:?})",
                        service.name
                    );
                }
            }
        }
        let mut relevant: Vec<&String> = v1
            .iter()
            .filter(|s| s.as_str() == api_service(role) || s.as_str() == "grpc.health.v1.Health")
            .collect();
        relevant.sort();
        observed.insert(role, relevant.into_iter().cloned().collect::<Vec<_>>());
    }
    Ok(json!(observed))
}

async fn list_services_v1(channel: tonic::transport::Channel) -> Result<Vec<String>> {
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::once(request))
        .await?
        .into_inner();
    let response = responses
        .message()
        .await?
        .context("no reflection response")?;
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            Ok(list.service.into_iter().map(|s| s.name).collect())
        }
        other => bail!("unexpected reflection response {other:?}"),
    }
}

async fn list_services_v1alpha(channel: tonic::transport::Channel) -> Result<Vec<String>> {
    use v1alpha::server_reflection_request::MessageRequest as AlphaRequest;
    use v1alpha::server_reflection_response::MessageResponse as AlphaResponse;
    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(AlphaRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::once(request))
        .await?
        .into_inner();
    let response = responses
        .message()
        .await?
        .context("no reflection response")?;
    match response.message_response {
        Some(AlphaResponse::ListServicesResponse(list)) => {
            Ok(list.service.into_iter().map(|s| s.name).collect())
        }
        other => bail!("unexpected reflection response {other:?}"),
    }
}
