//! BAD: malformed and oversized input to every entry point: ConfigMaps, foreign pods, login
//! bodies and gRPC messages. Each gives a clear error, nothing crashes, the last good state stays.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use gomicro_proto::admin_srv::v1::LoginRequest;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use prost::Message;
use serde_json::{Value, json};

use super::config::{rejection_message, reports_rejection, restoring_token_config};
use super::login::check_error_shape;
use super::resolver::{admin_log, discoverable_ids, wait_in_sync};
use super::{Case, Ctx, case_fn};
use crate::configmap::{self, CONFIG_KEY};
use crate::login::{any_login, check_reply, grpc_login};
use crate::normalize;
use crate::pod_process::restart_count;
use crate::profile::ServiceSpec;
use crate::wait::wait_until;

mod raw_grpc;

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            id: "BAD-001",
            feature: "config-bad-input",
            section: "§4",
            summary: "a tab-indented (malformed) YAML config.yaml is rejected naming the entry; the last good config serves",
            run: case_fn!(malformed_yaml),
        },
        Case {
            id: "BAD-002",
            feature: "config-bad-input",
            section: "§4",
            summary: "a malformed JSON entry (config.json) is rejected naming the entry; the last good config serves",
            run: case_fn!(malformed_json),
        },
        Case {
            id: "BAD-003",
            feature: "config-bad-input",
            section: "§4",
            summary: "an entry with an unknown format extension (config.toml) is rejected naming it; the last good config serves",
            run: case_fn!(unknown_extension),
        },
        Case {
            id: "BAD-004",
            feature: "config-bad-input",
            section: "§4",
            summary: "a ConfigMap over 1 MiB is refused by the API server; a malformed one just under 1 MiB is rejected with a short error",
            run: case_fn!(one_mebibyte_configmap),
        },
        Case {
            id: "BAD-005",
            feature: "discovery-bad-input",
            section: "§2",
            summary: "foreign pods with malformed gomicro annotations or invalid label values leave the resolver's state intact",
            run: case_fn!(foreign_pods),
        },
        Case {
            id: "BAD-006",
            feature: "strict-input-validation",
            section: "§5",
            summary: "empty, non-JSON, truncated, wrongly typed, array, 1 MiB, XML and text/plain login bodies are refused with 4xx in the error shape; admin-srv keeps serving",
            run: case_fn!(bad_bodies_refused),
        },
        Case {
            id: "BAD-007",
            feature: "login-bad-input",
            section: "§5",
            summary: "malformed gRPC LoginRequest messages are answered (no hang, no crash); admin-srv keeps serving",
            run: case_fn!(malformed_messages_answered),
        },
        Case {
            id: "BAD-008",
            feature: "strict-input-validation",
            section: "§5",
            summary: "malformed gRPC LoginRequest messages are refused with INVALID_ARGUMENT (or gRPC's INTERNAL decode error); admin-srv keeps serving",
            run: case_fn!(malformed_messages_refused),
        },
    ]
}

const DEADLINE: Duration = Duration::from_secs(60);
/// The largest `data` the API server stores in one ConfigMap.
const CONFIGMAP_LIMIT: usize = 1024 * 1024;
/// A rejection message longer than this echoes the input instead of explaining it.
const MAX_REJECTION_LINE: usize = 4096;
/// Name prefix of the pods BAD-005 creates.
const FOREIGN_POD: &str = "conformance-foreign";

/// Name, uid and restart count of each pod of a service (equal before and after = no crash).
async fn identity(ctx: &Ctx, service: &ServiceSpec) -> Result<Vec<(String, String, i32)>> {
    Ok(ctx
        .ready_pods(service)
        .await?
        .iter()
        .map(|p| (p.name_any(), p.uid().unwrap_or_default(), restart_count(p)))
        .collect())
}

/// Fails when the pods of `service` changed or restarted since `before`.
async fn still_same_pods(
    ctx: &Ctx,
    service: &ServiceSpec,
    before: &[(String, String, i32)],
) -> Result<()> {
    let after = identity(ctx, service).await?;
    if after != before {
        bail!(
            "{} pods changed or restarted (before {before:?}, after {after:?})",
            service.deployment
        );
    }
    Ok(())
}

/// Removes one data entry of a service's ConfigMap (JSON merge patch with `null`).
async fn remove_entry(ctx: &Ctx, service: &ServiceSpec, key: &str) -> Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client(), ctx.namespace());
    api.patch(
        &service.config_map,
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { key: null } })),
    )
    .await
    .with_context(|| format!("removing {key} from ConfigMap {}", service.config_map))?;
    Ok(())
}

/// Puts `value` under `data_key` of token-srv's ConfigMap and expects a clear rejection naming
/// the entry while the deployed key keeps signing; restores the ConfigMap afterwards.
async fn rejected_entry(ctx: &Ctx, data_key: &str, value: String) -> Result<Value> {
    let token = &ctx.profile.services.token;
    let pod = ctx.ready_pods(token).await?.remove(0);
    let before = identity(ctx, token).await?;
    let log_before = ctx.logs(&pod).await?.len();
    let entry = format!("{}/{}/{data_key}", ctx.namespace(), token.config_map);
    restoring_token_config(ctx, async {
        let checked = async {
            configmap::set_entry(ctx, token, data_key, &value).await?;
            let rejection = wait_until(
                DEADLINE,
                &format!("token-srv to reject {entry}"),
                || async {
                    let log = ctx.logs(&pod).await?;
                    Ok(log
                        .get(log_before..)
                        .unwrap_or(&log)
                        .lines()
                        .find(|l| reports_rejection(l, &entry))
                        .map(String::from))
                },
            )
            .await?;
            if rejection.len() > MAX_REJECTION_LINE {
                bail!(
                    "the rejection of {entry} is {} bytes long: it echoes the input instead of naming the problem",
                    rejection.len()
                );
            }
            let reply = any_login(ctx).await?;
            let last_good = check_reply(ctx, &reply, &ctx.profile.expectations.api_key)
                .with_context(|| format!("after rejecting {entry}, tokens no longer verify with the last good key"))?;
            still_same_pods(ctx, token, &before).await?;
            anyhow::Ok(json!({ "rejection": rejection_message(&rejection, &entry), "loginAfter": last_good }))
        }
        .await;
        let removed = if data_key == CONFIG_KEY {
            Ok(())
        } else {
            remove_entry(ctx, token, data_key).await
        };
        let value = checked?;
        removed?;
        Ok(value)
    })
    .await
}

async fn malformed_yaml(ctx: &Ctx) -> Result<Value> {
    let text = "server:\n\tgrpc:\n\t\taddr: 0.0.0.0:9090\nauth:\n\tapi_key: from-tabs\n";
    rejected_entry(ctx, CONFIG_KEY, text.into()).await
}

async fn malformed_json(ctx: &Ctx) -> Result<Value> {
    let text = "{\"auth\": {\"api_key\": \"from-bad-json\",}}";
    rejected_entry(ctx, "config.json", text.into()).await
}

async fn unknown_extension(ctx: &Ctx) -> Result<Value> {
    let text = "[auth]\napi_key = \"from-toml\"\n";
    rejected_entry(ctx, "config.toml", text.into()).await
}

async fn one_mebibyte_configmap(ctx: &Ctx) -> Result<Value> {
    let token = &ctx.profile.services.token;
    let refused = configmap::set_entry(ctx, token, "padding", &"x".repeat(CONFIGMAP_LIMIT + 1))
        .await
        .err()
        .context("the API server stored a ConfigMap over 1 MiB")?;
    let status = refused
        .chain()
        .find_map(|e| match e.downcast_ref::<kube::Error>() {
            Some(kube::Error::Api(status)) => Some(status.code),
            _ => None,
        })
        .with_context(|| {
            format!("the oversized ConfigMap failed without an API status: {refused:#}")
        })?;
    // Just under the limit: one unclosed flow sequence of almost 1 MiB.
    let mut text = String::from("auth: [");
    text.push_str(&"x".repeat(CONFIGMAP_LIMIT - 8 * 1024));
    text.push('\n');
    let mut observed = rejected_entry(ctx, CONFIG_KEY, text).await?;
    observed["overLimitRefusedWith"] = json!(status);
    Ok(observed)
}

/// The image foreign pods run: the backend's idle image when it has one (the local node's
/// pause image), else user-srv's, with `sleep` as the command.
pub(super) async fn user_image(ctx: &Ctx) -> Result<String> {
    if let Some(idle) = ctx.cluster.idle_image() {
        return Ok(idle.to_string());
    }
    let user = &ctx.profile.services.user;
    let api: Api<Deployment> = Api::namespaced(ctx.client(), ctx.namespace());
    let deployment = api.get(&user.deployment).await?;
    deployment
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers.into_iter().next())
        .and_then(|c| c.image)
        .with_context(|| format!("deployment {} names no image", user.deployment))
}

/// A pod claiming to be an instance of user-srv, idle (the idle image, or `sleep`) so it never
/// registers.
pub(super) fn foreign_pod(
    ctx: &Ctx,
    suffix: &str,
    image: &str,
    metadata: &str,
    protocols: &str,
) -> Pod {
    let user = &ctx.profile.services.user;
    let name = format!("{FOREIGN_POD}-{suffix}");
    serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": {
                ctx.profile.key("id"): format!("{name}.{}", user.name),
                ctx.profile.key("app"): user.name,
                ctx.profile.key("version"): "v0",
            },
            "annotations": {
                ctx.profile.key("metadata"): metadata,
                ctx.profile.key("protocols"): protocols,
            },
        },
        "spec": {
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "foreign",
                "image": image,
                "command": (ctx.cluster.idle_image() != Some(image)).then_some(["/bin/sleep", "3600"]),
                "ports": [{ "name": "grpc-port", "containerPort": user.grpc_port, "protocol": "TCP" }],
            }],
        },
    }))
    .expect("a static pod shape")
}

pub(super) async fn delete_foreign_pods(ctx: &Ctx, names: &[String]) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(ctx.client(), ctx.namespace());
    for name in names {
        if api.get_opt(name).await?.is_some() {
            api.delete(name, &DeleteParams::default().grace_period(0))
                .await?;
        }
    }
    wait_until(DEADLINE, "the foreign pods to be gone", || async {
        for name in names {
            if api.get_opt(name).await?.is_some() {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })
    .await
}

async fn foreign_pods(ctx: &Ctx) -> Result<Value> {
    let user = &ctx.profile.services.user;
    let replicas = discoverable_ids(ctx, user).await?.len();
    let before = identity(ctx, &ctx.profile.services.admin).await?;
    let admin_log_before = admin_log(ctx).await?.len();
    let image = user_image(ctx).await?;
    let api: Api<Pod> = Api::namespaced(ctx.client(), ctx.namespace());

    // Label values Kubernetes itself refuses never reach the registry.
    let mut invalid = foreign_pod(ctx, "invalid-label", &image, "{}", "{}");
    invalid.labels_mut().insert(
        ctx.profile.key("version"),
        "not a valid label value!".into(),
    );
    let refused = api
        .create(&PostParams::default(), &invalid)
        .await
        .err()
        .context("the API server accepted a pod with an invalid label value")?;
    let refused_code = match &refused {
        kube::Error::Api(status)
            if status.code == 422 && status.message.contains("metadata.labels") =>
        {
            status.code
        }
        other => bail!(
            "the invalid label value was not refused as an invalid metadata.labels value: {other}"
        ),
    };

    let malformed = [
        foreign_pod(ctx, "metadata", &image, "{not json", "{}"),
        foreign_pod(ctx, "protocols", &image, "{}", "{\"9090\": 9090}"),
    ];
    let names: Vec<String> = malformed.iter().map(|p| p.name_any()).collect();
    let checked = async {
        for pod in &malformed {
            api.create(&PostParams::default(), pod)
                .await
                .with_context(|| format!("creating foreign pod {}", pod.name_any()))?;
        }
        wait_until(DEADLINE, "the foreign pods to run and be Ready", || async {
            for name in &names {
                match api.get_opt(name).await? {
                    Some(pod) if crate::pods::is_ready(&pod) => {}
                    _ => return Ok(None),
                }
            }
            Ok(Some(()))
        })
        .await?;
        let warnings = wait_until(
            DEADLINE,
            "admin-srv to warn about each malformed foreign pod",
            || async {
                let log = admin_log(ctx).await?;
                let new = log.get(admin_log_before..).unwrap_or(&log);
                let warning = |name: &String| {
                    new.lines()
                        .find(|l| l.contains(name.as_str()) && l.to_uppercase().contains("WARN"))
                        .map(|l| rejection_message(l, name))
                };
                Ok(names.iter().map(warning).collect::<Option<Vec<String>>>())
            },
        )
        .await?;
        let update = wait_in_sync(ctx, user, replicas).await?;
        let reply = any_login(ctx).await?;
        let login = check_reply(ctx, &reply, &ctx.profile.expectations.api_key)?;
        still_same_pods(ctx, &ctx.profile.services.admin, &before).await?;
        anyhow::Ok(json!({
            "invalidLabelRefusedWith": refused_code,
            "warnings": warnings,
            "resolverAfter": update.iter().map(|i| normalize::resolver_instance(i, &user.deployment)).collect::<Vec<_>>(),
            "loginAfter": login,
        }))
    }
    .await;
    let cleaned = delete_foreign_pods(ctx, &names).await;
    let value = checked?;
    cleaned.context("deleting the foreign pods")?;
    Ok(value)
}

/// One bad HTTP login body: label, content type, body, and the 4xx statuses that refuse it
/// (strict input validation).
struct BadBody {
    label: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    refusals: &'static [u16],
}

fn bad_bodies() -> Vec<BadBody> {
    const CLIENT_ERROR: &[u16] = &[400, 415, 422];
    let mut huge = b"{\"userName\":\"thangn\",\"password\":\"".to_vec();
    huge.resize(1024 * 1024 - 2, b'a');
    huge.extend_from_slice(b"\"}");
    let body = |label, content_type, body: &[u8], refusals| BadBody {
        label,
        content_type,
        body: body.to_vec(),
        refusals,
    };
    vec![
        body("empty", "application/json", b"", CLIENT_ERROR),
        body(
            "notJson",
            "application/json",
            b"userName=thangn&password=123456",
            CLIENT_ERROR,
        ),
        body(
            "truncatedJson",
            "application/json",
            b"{\"userName\": ",
            CLIENT_ERROR,
        ),
        body(
            "wrongTypes",
            "application/json",
            b"{\"userName\": {\"a\": 1}, \"password\": 123456}",
            CLIENT_ERROR,
        ),
        body("array", "application/json", b"[]", CLIENT_ERROR),
        BadBody {
            body: huge,
            ..body("oneMebibyte", "application/json", b"", &[400, 413])
        },
        body(
            "xml",
            "application/xml",
            b"<login><userName>thangn</userName></login>",
            &[400, 415],
        ),
        body(
            "textPlain",
            "text/plain",
            b"userName=thangn&password=123456",
            &[400, 415],
        ),
    ]
}

/// Sends one bad body; the status and the JSON body of the answer.
async fn send_bad_body(ctx: &Ctx, url: &str, bad: &BadBody) -> Result<(u16, Value)> {
    let response = ctx
        .http()
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, bad.content_type)
        .body(bad.body.clone())
        .send()
        .await
        .with_context(|| format!("{}: POST {url} got no answer", bad.label))?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    let body: Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: the answer ({status}) is not JSON: {text:?}", bad.label))?;
    Ok((status, body))
}

/// Runs `check` on admin-srv's answer to every bad body, then proves admin-srv unharmed: a
/// valid login works and its pods neither changed nor restarted.
async fn each_bad_body(ctx: &Ctx, check: fn(&BadBody, u16, &Value) -> Result<()>) -> Result<Value> {
    let admin = &ctx.profile.services.admin;
    let before = identity(ctx, admin).await?;
    let url = format!("{}/admin/v1/login", ctx.admin_http_base().await?);
    let mut observed = serde_json::Map::new();
    for bad in bad_bodies() {
        let (status, body) = send_bad_body(ctx, &url, &bad).await?;
        check(&bad, status, &body).with_context(|| bad.label)?;
        observed.insert(
            bad.label.into(),
            json!({ "status": status, "reason": body["reason"] }),
        );
    }
    any_login(ctx)
        .await
        .context("a valid login after the bad bodies failed")?;
    still_same_pods(ctx, admin, &before).await?;
    Ok(Value::Object(observed))
}

/// Core (§5): an answer in the error shape; a body that happens to read as the demo
/// credentials may log in instead.
fn answered(_: &BadBody, status: u16, body: &Value) -> Result<()> {
    if (200..300).contains(&status) {
        serde_json::from_value::<crate::login::LoginReply>(body.clone())
            .map(drop)
            .with_context(|| {
                format!("answered {status} with neither a login reply nor an error: {body}")
            })
    } else {
        check_error_shape(status, body)
    }
}

/// Strict input validation: refused with one of the body's 4xx statuses, in the error shape.
fn refused(bad: &BadBody, status: u16, body: &Value) -> Result<()> {
    if !bad.refusals.contains(&status) {
        bail!(
            "answered {status}, expected one of {:?}: {body}",
            bad.refusals
        );
    }
    check_error_shape(status, body)
}

/// LOGIN-004.
pub(super) async fn bad_bodies_answered(ctx: &Ctx) -> Result<Value> {
    each_bad_body(ctx, answered).await
}

async fn bad_bodies_refused(ctx: &Ctx) -> Result<Value> {
    each_bad_body(ctx, refused).await
}

/// Malformed LoginRequest messages sent as raw bytes.
fn malformed_messages() -> [(&'static str, Vec<u8>); 3] {
    [
        ("notProtobuf", b"this is not a protobuf".to_vec()),
        ("truncatedField", vec![0x0a, 0x10, b't']),
        ("wrongWireType", vec![0x08, 0x01, 0x10, 0x02]),
    ]
}

/// Runs `check` on admin-srv's answer (a reply or a status) to every malformed message, then
/// proves admin-srv unharmed.
async fn each_malformed_message(
    ctx: &Ctx,
    check: fn(&Result<Vec<u8>, tonic::Status>) -> Result<()>,
) -> Result<Value> {
    let admin = &ctx.profile.services.admin;
    let before = identity(ctx, admin).await?;
    let channel = ctx.grpc_channel(admin).await?;
    let demo = &ctx.profile.expectations.demo_user;
    let valid = LoginRequest {
        user_name: demo.user_name.clone(),
        password: demo.password.clone(),
    }
    .encode_to_vec();
    raw_grpc::login(channel.clone(), valid)
        .await
        .context("a well-formed LoginRequest sent as raw bytes failed; the raw path is broken")?;
    let mut observed = serde_json::Map::new();
    for (label, bytes) in malformed_messages() {
        let answer = raw_grpc::login(channel.clone(), bytes).await;
        check(&answer).with_context(|| label)?;
        let code = answer
            .as_ref()
            .err()
            .map_or(tonic::Code::Ok, tonic::Status::code);
        observed.insert(label.into(), json!({ "code": format!("{code:?}") }));
    }
    grpc_login(ctx)
        .await
        .context("a valid gRPC login after the malformed messages failed")?;
    still_same_pods(ctx, admin, &before).await?;
    Ok(Value::Object(observed))
}

/// Core (§5): any answer; a transport failure (no answer) fails.
fn message_answered(answer: &Result<Vec<u8>, tonic::Status>) -> Result<()> {
    match answer {
        Err(status) if status.code() == tonic::Code::Unavailable => {
            bail!("no answer: {status}")
        }
        _ => Ok(()),
    }
}

/// Strict input validation: refused as malformed, INVALID_ARGUMENT (or INTERNAL, the status
/// gRPC's own codec gives a message it cannot decode).
fn message_refused(answer: &Result<Vec<u8>, tonic::Status>) -> Result<()> {
    match answer {
        Ok(_) => bail!("a malformed LoginRequest was answered with success"),
        Err(status)
            if matches!(
                status.code(),
                tonic::Code::Internal | tonic::Code::InvalidArgument
            ) =>
        {
            Ok(())
        }
        Err(status) => bail!(
            "the malformed message gave {:?} {:?}, expected INVALID_ARGUMENT or INTERNAL",
            status.code(),
            status.message()
        ),
    }
}

async fn malformed_messages_answered(ctx: &Ctx) -> Result<Value> {
    each_malformed_message(ctx, message_answered).await
}

async fn malformed_messages_refused(ctx: &Ctx) -> Result<Value> {
    each_malformed_message(ctx, message_refused).await
}
