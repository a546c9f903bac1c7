//! HEALTH: grpc.health.v1 and server reflection on every gRPC server (CONTRACT.md §5): Core
//! reflection describes and calls the API; Extended `reflection-complete` resolves every file.

mod symbols;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, Kind};
use prost_types::{FileDescriptorProto, FileDescriptorSet};
use serde_json::{Value, json};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
};
use tonic_reflection::pb::v1alpha;

use super::support::raw_grpc;
use super::{Case, Ctx, case_fn};
use crate::features::Feature;
use crate::profile::ServiceSpec;
use crate::secrets::SecretKind;

pub(super) fn cases() -> Vec<Case> {
    vec![
        Case {
            id: "HEALTH-001",
            feature: Feature::Health,
            section: "§5",
            summary: "grpc.health.v1 answers SERVING for service \"\" on every service",
            lever: None,
            run: case_fn!(health_serving),
        },
        Case {
            id: "HEALTH-002",
            feature: Feature::Reflection,
            section: "§5, §7",
            summary: "server reflection (v1 and v1alpha) lists each service's API and health; the API service and the files of the types it uses resolve; Login is described with the contract's fields and called through the descriptors",
            lever: None,
            run: case_fn!(reflection_describes_the_api),
        },
        Case {
            id: "HEALTH-003",
            feature: Feature::ReflectionComplete,
            section: "§5",
            summary: "every service reflection lists, its file and every import, resolves into one descriptor pool (as grpcurl 1.9 requires); a placeholder or missing file is named",
            lever: None,
            run: case_fn!(reflection_is_complete),
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

/// Lists the services over reflection v1 and v1alpha; both must list the role's API service
/// and health. Returns the v1 list.
async fn listed_services(
    channel: &tonic::transport::Channel,
    role: &str,
    service: &ServiceSpec,
) -> Result<Vec<String>> {
    let v1 = list_services_v1(channel.clone())
        .await
        .with_context(|| format!("{}: reflection v1", service.name))?;
    let alpha = list_services_v1alpha(channel.clone())
        .await
        .with_context(|| format!("{}: reflection v1alpha", service.name))?;
    for (version, listed) in [("v1", &v1), ("v1alpha", &alpha)] {
        for wanted in [api_service(role), "grpc.health.v1.Health"] {
            if !listed.iter().any(|s| s == wanted) {
                bail!(
                    "{}: reflection {version} does not list {wanted} (lists {})",
                    service.name,
                    listed.join(", ")
                );
            }
        }
    }
    Ok(v1)
}

/// Core reflection (CONTRACT.md §5): the listed API service and the files defining it and the
/// message types it uses resolve (an import defining nothing the API uses may be missing or a
/// placeholder); Login is described with the contract's fields and called through them.
async fn reflection_describes_the_api(ctx: &Ctx) -> Result<Value> {
    let mut observed = BTreeMap::new();
    for (role, service) in ctx.profile.all_services() {
        let channel = ctx.grpc_channel(service).await?;
        let v1 = listed_services(&channel, role, service).await?;
        let pool = api_pool(channel.clone(), api_service(role))
            .await
            .with_context(|| format!("{}: describing {}", service.name, api_service(role)))?;
        let api = pool
            .get_service_by_name(api_service(role))
            .with_context(|| {
                format!(
                    "{}: {} is listed but not described",
                    service.name,
                    api_service(role)
                )
            })?;
        let mut methods: Vec<String> = api.methods().map(|m| m.name().to_string()).collect();
        methods.sort();
        let mut entry = json!({ "methods": methods });
        if role == "admin" {
            entry["login"] = describe_login(&pool)
                .with_context(|| format!("{}: describing {LOGIN_METHOD}", service.name))?;
            entry["loginCall"] = call_login(ctx, channel, &pool).await.with_context(|| {
                format!(
                    "{}: calling {LOGIN_METHOD} through the reflected descriptors",
                    service.name
                )
            })?;
        }
        let mut relevant: Vec<&String> = v1
            .iter()
            .filter(|s| s.as_str() == api_service(role) || s.as_str() == "grpc.health.v1.Health")
            .collect();
        relevant.sort();
        entry["listed"] = json!(relevant);
        observed.insert(role, entry);
    }
    Ok(json!(observed))
}

/// Extended `reflection-complete`: every listed service's file and all its imports resolve, as
/// grpcurl 1.9 requires.
async fn reflection_is_complete(ctx: &Ctx) -> Result<Value> {
    let mut observed = BTreeMap::new();
    for (role, service) in ctx.profile.all_services() {
        let channel = ctx.grpc_channel(service).await?;
        let v1 = listed_services(&channel, role, service).await?;
        let pool = complete_pool(channel, &v1)
            .await
            .with_context(|| format!("{}: reflection descriptors", service.name))?;
        observed.insert(role, json!({ "files": pool.files().count() }));
    }
    Ok(json!(observed))
}

/// Encodes the demo user's LoginRequest with the reflected descriptor, calls Login with those
/// bytes and decodes the reply with the reflected LoginReply.
async fn call_login(
    ctx: &Ctx,
    channel: tonic::transport::Channel,
    pool: &DescriptorPool,
) -> Result<Value> {
    let login = pool
        .get_service_by_name("admin_srv.v1.AuthenticationService")
        .and_then(|s| s.methods().find(|m| m.name() == "Login"))
        .context("no Login method")?;
    let demo = &ctx.profile.expectations.demo_user;
    let mut request = DynamicMessage::new(login.input());
    request.set_field_by_name(
        "userName",
        prost_reflect::Value::String(demo.user_name.clone()),
    );
    request.set_field_by_name(
        "password",
        prost_reflect::Value::String(demo.password.clone()),
    );
    let answer = raw_grpc::login(channel, request.encode_to_vec())
        .await
        .map_err(|status| {
            anyhow::anyhow!("Login answered {:?}: {}", status.code(), status.message())
        })?;
    let reply = DynamicMessage::decode(login.output(), answer.as_slice())
        .context("the reply does not decode as the reflected LoginReply")?;
    let text = |name: &str| {
        reply
            .get_field_by_name(name)
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    };
    let token = text("token");
    ctx.secrets.remember(SecretKind::Token, &token);
    let checked = crate::login::check_reply(
        ctx,
        &crate::login::LoginReply {
            id: text("id"),
            user_name: text("userName"),
            token,
        },
        &ctx.profile.expectations.api_key,
    )?;
    Ok(checked)
}

/// The method grpcurl describes and calls in the article (CONTRACT.md §5).
const LOGIN_METHOD: &str = "admin_srv.v1.AuthenticationService/Login";

/// Login's request and reply fields as reflection describes them; they must be the
/// contract's `LoginRequest{userName=1, password=2}` and `LoginReply{id=1, userName=2, token=3}`.
fn describe_login(pool: &DescriptorPool) -> Result<Value> {
    let service = pool
        .get_service_by_name("admin_srv.v1.AuthenticationService")
        .context("no AuthenticationService")?;
    let login = service
        .methods()
        .find(|m| m.name() == "Login")
        .context("AuthenticationService has no method Login")?;
    // A field other than a singular string shows its kind, so it differs from the contract.
    let fields = |message: prost_reflect::MessageDescriptor| -> Vec<(u32, String)> {
        message
            .fields()
            .map(|f| {
                let singular_string = f.kind() == Kind::String && !f.is_list() && !f.is_map();
                let name = match singular_string {
                    true => f.name().to_string(),
                    false => format!(
                        "{} ({:?}{})",
                        f.name(),
                        f.kind(),
                        if f.is_list() { ", repeated" } else { "" }
                    ),
                };
                (f.number(), name)
            })
            .collect()
    };
    let expect = |message: prost_reflect::MessageDescriptor, want: &[(u32, &str)]| {
        let got = fields(message.clone());
        let want: Vec<(u32, String)> = want.iter().map(|(n, s)| (*n, s.to_string())).collect();
        if got != want {
            bail!(
                "{} fields are {got:?}, the contract has these string fields: {want:?}",
                message.full_name()
            );
        }
        Ok(got.into_iter().map(|(_, name)| name).collect::<Vec<_>>())
    };
    let input = expect(login.input(), &[(1, "userName"), (2, "password")])?;
    let output = expect(login.output(), &[(1, "id"), (2, "userName"), (3, "token")])?;
    Ok(json!({
        "input": login.input().full_name(),
        "inputFields": input,
        "output": login.output().full_name(),
        "outputFields": output,
    }))
}

/// The syntaxes a real file descriptor has; anything else (Go's placeholder for a file it could
/// not find serializes as `<unknown:0>`) is not a descriptor.
const SYNTAXES: [&str; 4] = ["", "proto2", "proto3", "editions"];

/// Fails naming `file` when it is not a real descriptor (a placeholder), so a pool is never built
/// from it (prost-reflect 0.16.5 panics formatting the error of such a file).
fn check_descriptor(file: &FileDescriptorProto) -> Result<()> {
    if !SYNTAXES.contains(&file.syntax()) {
        bail!(
            "{}: reflection serves a placeholder, not a descriptor (syntax {:?}, package {:?}, {} message(s))",
            file.name(),
            file.syntax(),
            file.package(),
            file.message_type.len()
        );
    }
    Ok(())
}

/// Builds a pool, turning a panic inside the descriptor library into an error.
fn build_pool(files: Vec<FileDescriptorProto>) -> Result<DescriptorPool> {
    for file in &files {
        check_descriptor(file)?;
    }
    let names: Vec<String> = files.iter().map(|f| f.name().to_string()).collect();
    let built = std::panic::catch_unwind(|| {
        DescriptorPool::from_file_descriptor_set(FileDescriptorSet { file: files })
    })
    .map_err(|_| {
        anyhow::anyhow!(
            "the descriptor library failed on the reflected files {}",
            names.join(", ")
        )
    })?;
    built.map_err(|e| anyhow::anyhow!("the reflected descriptors do not form a valid pool: {e}"))
}

/// Asks reflection for `request` and adds the files of the answer to `files`.
async fn fetch_into(
    client: &mut ServerReflectionClient<tonic::transport::Channel>,
    files: &mut BTreeMap<String, FileDescriptorProto>,
    request: MessageRequest,
) -> Result<Vec<String>> {
    let received = reflect_files(client, request).await?;
    let names = received.iter().map(|f| f.name().to_string()).collect();
    for file in received {
        files.entry(file.name().to_string()).or_insert(file);
    }
    Ok(names)
}

/// Core: the file of `service` and the files defining the message and enum types its methods use
/// (transitively, through fields), with imports outside that set dropped.
async fn api_pool(channel: tonic::transport::Channel, service: &str) -> Result<DescriptorPool> {
    let mut client = ServerReflectionClient::new(channel);
    let mut files = BTreeMap::new();
    fetch_into(
        &mut client,
        &mut files,
        MessageRequest::FileContainingSymbol(service.to_string()),
    )
    .await
    .with_context(|| format!("file containing {service}"))?;
    let mut needed: BTreeSet<String> = BTreeSet::new();
    let mut pending: Vec<String> = vec![service.to_string()];
    let mut seen: BTreeSet<String> = BTreeSet::new();
    while let Some(symbol) = pending.pop() {
        if !seen.insert(symbol.clone()) {
            continue;
        }
        let found = match symbols::find(&files, &symbol) {
            Some(found) => found,
            None => {
                fetch_into(
                    &mut client,
                    &mut files,
                    MessageRequest::FileContainingSymbol(symbol.clone()),
                )
                .await
                .with_context(|| format!("file containing {symbol}, a type the API uses"))?;
                symbols::find(&files, &symbol).with_context(|| {
                    format!("reflection gave no file defining {symbol}, a type the API uses")
                })?
            }
        };
        needed.insert(found.file.clone());
        pending.extend(found.uses);
    }
    let chosen: Vec<FileDescriptorProto> = files
        .into_iter()
        .filter(|(name, _)| needed.contains(name))
        .map(|(_, mut file)| {
            file.dependency.retain(|d| needed.contains(d));
            file.public_dependency.clear();
            file.weak_dependency.clear();
            file
        })
        .collect();
    build_pool(dependencies_first(
        chosen
            .into_iter()
            .map(|f| (f.name().to_string(), f))
            .collect(),
    ))
}

/// Extended: every file defining a listed service and every file they import (transitively),
/// each by its exact name, form one pool.
async fn complete_pool(
    channel: tonic::transport::Channel,
    services: &[String],
) -> Result<DescriptorPool> {
    let mut client = ServerReflectionClient::new(channel);
    let mut files: BTreeMap<String, FileDescriptorProto> = BTreeMap::new();
    for service in services {
        fetch_into(
            &mut client,
            &mut files,
            MessageRequest::FileContainingSymbol(service.clone()),
        )
        .await
        .with_context(|| format!("file containing {service}"))?;
    }
    loop {
        let missing: BTreeSet<String> = files
            .values()
            .flat_map(|f| f.dependency.iter())
            .filter(|d| !files.contains_key(*d))
            .cloned()
            .collect();
        let Some(name) = missing.into_iter().next() else {
            break;
        };
        let importers: Vec<&str> = files
            .values()
            .filter(|f| f.dependency.contains(&name))
            .map(|f| f.name())
            .collect();
        let importers = importers.join(", ");
        let received = fetch_into(
            &mut client,
            &mut files,
            MessageRequest::FileByFilename(name.clone()),
        )
        .await
        .with_context(|| format!("import {name} of {importers} cannot be resolved"))?;
        if !received.contains(&name) {
            bail!(
                "import {name} of {importers}: reflection answered with other files ({})",
                received.join(", ")
            );
        }
    }
    build_pool(dependencies_first(files))
}

/// Orders files so that every file comes after the files it imports.
fn dependencies_first(
    mut files: BTreeMap<String, FileDescriptorProto>,
) -> Vec<FileDescriptorProto> {
    fn visit(
        name: &str,
        files: &mut BTreeMap<String, FileDescriptorProto>,
        out: &mut Vec<FileDescriptorProto>,
    ) {
        let Some(file) = files.remove(name) else {
            return;
        };
        for dependency in &file.dependency {
            visit(dependency, files, out);
        }
        out.push(file);
    }
    let mut out = Vec::new();
    let names: Vec<String> = files.keys().cloned().collect();
    for name in names {
        visit(&name, &mut files, &mut out);
    }
    out
}

/// One reflection v1 request and its response.
async fn reflect(
    client: &mut ServerReflectionClient<tonic::transport::Channel>,
    request: MessageRequest,
) -> Result<MessageResponse> {
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::once(request))
        .await?
        .into_inner();
    responses
        .message()
        .await?
        .context("no reflection response")?
        .message_response
        .context("an empty reflection response")
}

/// One reflection v1 request answered with file descriptors.
async fn reflect_files(
    client: &mut ServerReflectionClient<tonic::transport::Channel>,
    request: MessageRequest,
) -> Result<Vec<FileDescriptorProto>> {
    match reflect(client, request).await? {
        MessageResponse::FileDescriptorResponse(files) => files
            .file_descriptor_proto
            .iter()
            .map(|bytes| {
                FileDescriptorProto::decode(bytes.as_slice())
                    .context("a reflected file descriptor does not decode")
            })
            .collect(),
        MessageResponse::ErrorResponse(error) => bail!(
            "reflection error {}: {}",
            error.error_code,
            error.error_message
        ),
        other => bail!("unexpected reflection response {other:?}"),
    }
}

async fn list_services_v1(channel: tonic::transport::Channel) -> Result<Vec<String>> {
    let mut client = ServerReflectionClient::new(channel);
    match reflect(&mut client, MessageRequest::ListServices(String::new())).await? {
        MessageResponse::ListServicesResponse(list) => {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, imports: &[&str], message: &str, field_type: &str) -> FileDescriptorProto {
        FileDescriptorProto {
            name: Some(name.into()),
            package: Some("p".into()),
            dependency: imports.iter().map(|s| s.to_string()).collect(),
            message_type: vec![prost_types::DescriptorProto {
                name: Some(message.into()),
                field: vec![prost_types::FieldDescriptorProto {
                    name: Some("f".into()),
                    number: Some(1),
                    label: Some(1),
                    r#type: Some(if field_type.is_empty() { 9 } else { 11 }),
                    type_name: (!field_type.is_empty()).then(|| field_type.to_string()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            syntax: Some("proto3".into()),
            ..Default::default()
        }
    }

    fn pool(files: Vec<FileDescriptorProto>) -> Result<DescriptorPool, String> {
        let files = files
            .into_iter()
            .map(|f| (f.name().to_string(), f))
            .collect();
        DescriptorPool::from_file_descriptor_set(FileDescriptorSet {
            file: dependencies_first(files),
        })
        .map_err(|e| e.to_string())
    }

    #[test]
    fn imports_are_linked_whatever_the_order_received() {
        let pool = pool(vec![
            file("a.proto", &["common/b.proto"], "A", ".p.B"),
            file("common/b.proto", &[], "B", ""),
        ])
        .unwrap();
        assert!(pool.get_message_by_name("p.A").is_some());
    }

    #[test]
    fn login_is_described_with_the_contract_fields_only_when_they_are_strings() {
        let set = FileDescriptorSet::decode(gomicro_proto::FILE_DESCRIPTOR_SET).unwrap();
        let pool = DescriptorPool::from_file_descriptor_set(set.clone()).unwrap();
        let described = describe_login(&pool).unwrap();
        assert_eq!(
            described["outputFields"],
            json!(["id", "userName", "token"])
        );
        let mut changed = set;
        let file = changed
            .file
            .iter_mut()
            .find(|f| f.message_type.iter().any(|m| m.name() == "LoginRequest"))
            .unwrap();
        let request = file
            .message_type
            .iter_mut()
            .find(|m| m.name() == "LoginRequest")
            .unwrap();
        request.field[1].r#type = Some(12); // bytes
        let pool = DescriptorPool::from_file_descriptor_set(changed).unwrap();
        let error = describe_login(&pool).unwrap_err().to_string();
        assert!(error.contains("password (bytes)"), "{error}");
    }

    #[test]
    fn a_missing_or_misnamed_import_fails() {
        let err = pool(vec![
            file("a.proto", &["b.proto"], "A", ".p.B"),
            file("common/b.proto", &[], "B", ""),
        ])
        .unwrap_err();
        assert!(err.contains("b.proto"), "{err}");
    }

    #[test]
    fn a_placeholder_file_is_a_finding_that_names_it_not_a_panic() {
        let mut placeholder = FileDescriptorProto {
            name: Some("gnostic/openapi/v3/annotations.proto".into()),
            syntax: Some("<unknown:0>".into()),
            ..Default::default()
        };
        let importer = file(
            "admin.proto",
            &["gnostic/openapi/v3/annotations.proto"],
            "A",
            "",
        );
        let error = build_pool(vec![placeholder.clone(), importer])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("gnostic/openapi/v3/annotations.proto")
                && error.contains("placeholder")
                && error.contains("<unknown:0>"),
            "{error}"
        );
        placeholder.syntax = Some("proto3".into());
        assert!(check_descriptor(&placeholder).is_ok());
    }
}
