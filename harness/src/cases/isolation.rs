//! SEC-003: namespace isolation, an Extended feature (CONTRACT.md E2.3). A pod in another
//! namespace that carries user-srv's registry keys, answers health SERVING and records the
//! gRPC calls it receives (the harness pod image's `intruder` mode) must never be listed by
//! admin-srv's resolver nor receive a call while logins go through admin-srv.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{HTTPGetAction, Pod, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use super::support::foreign::{delete_afterwards, foreign_pod, idle_image};
use super::support::namespace::scratch_namespace;
use super::support::resolver::{admin_log, discoverable_ids, normalised, wait_in_sync};
use super::{Case, Ctx, case_fn};
use crate::context::connect_grpc;
use crate::features::Feature;
use crate::login::any_login;
use crate::wait::wait_for;
use crate::{pods, resolver_log};

pub(super) fn cases() -> Vec<Case> {
    vec![Case {
        id: "SEC-003",
        feature: Feature::NamespaceIsolation,
        section: "§2",
        summary: "an intruder pod in another namespace, labelled and annotated as user-srv and answering health SERVING, is never listed by the resolver and receives no call while logins go through admin-srv",
        lever: None,
        run: case_fn!(intruder_is_not_reached),
    }]
}

/// Port of the intruder's record (`GET /calls`, `GET /ready`); not declared in the pod spec,
/// so it is no endpoint (CONTRACT.md C2.3).
const RECORD_PORT: u16 = 8079;
/// Logins made through admin-srv while the intruder runs, one per [`LOGIN_EVERY`].
const LOGINS: usize = 10;
const LOGIN_EVERY: Duration = Duration::from_millis(500);
/// Metadata key marking the harness's own calls in the intruder's record (the name
/// `harness-pod` looks for).
const PROBE_HEADER: &str = "conformance-probe";

/// One call in the intruder's record.
#[derive(serde::Deserialize)]
struct Call {
    method: String,
    probe: bool,
}

/// The intruder: user-srv's registry keys on the harness pod image in `intruder` mode, Ready
/// once it serves.
fn intruder_pod(ctx: &Ctx, namespace: &str) -> Result<Pod> {
    let port = ctx.profile.services.user.grpc_port;
    if port == RECORD_PORT {
        bail!("user-srv's gRPC port {port} is the intruder's record port; SEC-003 cannot run");
    }
    let protocols = json!({ port.to_string(): "grpc" }).to_string();
    let mut pod = foreign_pod(ctx, "intruder", &idle_image(ctx), "{}", &protocols);
    pod.metadata.namespace = Some(namespace.to_string());
    let container = pod
        .spec
        .as_mut()
        .and_then(|s| s.containers.first_mut())
        .context("the intruder pod has no container")?;
    container.args = Some(vec![
        "intruder".into(),
        port.to_string(),
        RECORD_PORT.to_string(),
    ]);
    container.readiness_probe = Some(Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/ready".into()),
            port: IntOrString::Int(RECORD_PORT.into()),
            ..Default::default()
        }),
        period_seconds: Some(1),
        ..Default::default()
    });
    Ok(pod)
}

/// The intruder's health as the harness sees it, asked with the probe marker.
async fn probe_health(ctx: &Ctx, namespace: &str, pod: &Pod) -> Result<ServingStatus> {
    let ip = pods::pod_ip(pod).context("the intruder has no IP")?;
    let port = ctx.profile.services.user.grpc_port;
    let addr = ctx
        .cluster
        .pod_addr(namespace, &pod.name_any(), ip, port)
        .await?;
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    request.metadata_mut().insert(PROBE_HEADER, "1".parse()?);
    Ok(
        HealthClient::new(connect_grpc(addr, &pod.name_any()).await?)
            .check(request)
            .await
            .context("health check of the intruder")?
            .into_inner()
            .status(),
    )
}

/// The intruder's record of the gRPC calls it received.
async fn calls(ctx: &Ctx, namespace: &str, pod: &Pod) -> Result<Vec<Call>> {
    let ip = pods::pod_ip(pod).context("the intruder has no IP")?;
    let addr = ctx
        .cluster
        .pod_addr(namespace, &pod.name_any(), ip, RECORD_PORT)
        .await?;
    let url = format!("http://{addr}/calls");
    let record: Value = ctx
        .http()
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("GET {url}"))?
        .json()
        .await
        .with_context(|| format!("GET {url}: not JSON"))?;
    serde_json::from_value(record["calls"].clone())
        .with_context(|| format!("GET {url}: no list of calls"))
}

/// `method ×count` for each method, in name order.
fn counted(calls: &[&Call]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for call in calls {
        *counts.entry(&call.method).or_default() += 1;
    }
    counts
        .iter()
        .map(|(method, count)| format!("{method} ×{count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn intruder_is_not_reached(ctx: &Ctx) -> Result<Value> {
    let user = &ctx.profile.services.user;
    let replicas = discoverable_ids(ctx, user).await?.len();
    wait_in_sync(ctx, user, replicas).await?;
    let namespace = scratch_namespace(ctx, "conformance-intruder").await?;
    let pod = intruder_pod(ctx, &namespace)?;
    let name = pod.name_any();
    let id = format!("{name}.{}", user.name);
    let api: Api<Pod> = Api::namespaced(ctx.client(), &namespace);
    // Registered after the namespace's deletion, so it runs first: no later case meets it.
    delete_afterwards(ctx, &namespace, std::slice::from_ref(&name));
    let updates_before = resolver_log::updates(&admin_log(ctx).await?)?.len();
    api.create(&PostParams::default(), &pod)
        .await
        .with_context(|| format!("creating pod {namespace}/{name}"))?;
    let ready = |pod: Option<&Pod>| pod.is_some_and(pods::is_ready);
    let what = format!("the intruder pod {namespace}/{name} to be Ready");
    let running = wait_for(&api, &name, ctx.profile.timeouts.step, &what, ready)
        .await?
        .context("the intruder pod is gone")?;
    let endpoint = format!(
        "grpc://{}:{}",
        pods::pod_ip(&running).unwrap_or_default(),
        user.grpc_port
    );
    let health = probe_health(ctx, &namespace, &running).await?;
    if health != ServingStatus::Serving {
        bail!(
            "the intruder pod {namespace}/{name} answers {health:?}, not SERVING: nothing could be shown"
        );
    }

    let mut ticks = tokio::time::interval(LOGIN_EVERY);
    let mut failed_logins = Vec::new();
    for _ in 0..LOGINS {
        ticks.tick().await;
        if let Err(error) = any_login(ctx).await {
            failed_logins.push(format!("{error:#}"));
        }
    }

    let mut findings = Vec::new();
    let updates = resolver_log::updates(&admin_log(ctx).await?)?;
    let during = &updates[updates_before.min(updates.len())..];
    let lists_intruder = |instance: &Value| {
        instance["id"] == id.as_str()
            || instance["endpoints"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e == endpoint.as_str()))
    };
    if let Some(listing) = during.iter().find(|u| u.iter().any(lists_intruder)) {
        findings.push(format!(
            "admin-srv's resolver listed the intruder pod {name} of namespace {namespace} (instance id {id}, endpoint {endpoint}) in an update of {} instance(s): {}",
            listing.len(),
            resolver_log::ids(listing).join(", ")
        ));
    }
    let record = calls(ctx, &namespace, &running).await?;
    if !record.iter().any(|c| c.probe) {
        bail!(
            "the intruder pod {namespace}/{name} did not record the harness's health check: its record cannot be trusted"
        );
    }
    let received: Vec<&Call> = record.iter().filter(|c| !c.probe).collect();
    if !received.is_empty() {
        findings.push(format!(
            "the intruder pod {name} of namespace {namespace} received {} gRPC call(s) while {LOGINS} logins went through admin-srv: {}",
            received.len(),
            counted(&received)
        ));
    }
    if !failed_logins.is_empty() {
        let summary = format!(
            "{} of {LOGINS} logins failed, the first with: {}",
            failed_logins.len(),
            failed_logins[0]
        );
        if findings.is_empty() {
            bail!("{summary}");
        }
        findings.push(summary);
    }
    if !findings.is_empty() {
        bail!("{}", findings.join("; "));
    }
    let latest = resolver_log::latest_for(&updates, &user.name)
        .context("no resolver update for user-srv")?;
    Ok(json!({
        "intruder": {
            "namespace": namespace.replace(&std::process::id().to_string(), "[pid]"),
            "pod": name,
            "health": format!("{health:?}"),
        },
        "logins": LOGINS,
        "updatesListingIntruder": [],
        "callsReceived": [],
        "latestUpdate": normalised(latest, user),
    }))
}
