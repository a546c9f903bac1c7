//! DISC: readiness-aware discovery, an Extended feature (CONTRACT.md §2: the reference excludes
//! pods that are not Ready; Go-Micro lists every Running pod).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Pod, Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use super::support::foreign::{delete_afterwards, foreign_pod, idle_image};
use super::support::resolver::{admin_log, discoverable_ids, wait_in_sync};
use super::{Case, Ctx, case_fn};
use crate::features::Feature;
use crate::wait::wait_for;
use crate::{normalize, pods, resolver_log};

pub(super) fn cases() -> Vec<Case> {
    vec![Case {
        id: "DISC-001",
        feature: Feature::ReadinessAwareDiscovery,
        section: "§2",
        summary: "a Running user-srv pod that never becomes Ready is not discovered: no resolver update lists it",
        lever: None,
        run: case_fn!(not_ready_pod_not_discovered),
    }]
}

/// How long the resolver is watched once the not-Ready pod runs.
const OBSERVATION: Duration = Duration::from_secs(5);

/// A pod with user-srv's registry keys whose readiness probe never passes (nothing listens on
/// the gRPC port of a sleeping container).
fn not_ready_pod(ctx: &Ctx, image: &str) -> Result<Pod> {
    let port = ctx.profile.services.user.grpc_port;
    let protocols = json!({ port.to_string(): "grpc" }).to_string();
    let mut pod = foreign_pod(ctx, "not-ready", image, "{}", &protocols);
    let container = pod
        .spec
        .as_mut()
        .and_then(|s| s.containers.first_mut())
        .context("the foreign pod has no container")?;
    container.readiness_probe = Some(Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(port.into()),
            ..Default::default()
        }),
        period_seconds: Some(1),
        ..Default::default()
    });
    Ok(pod)
}

async fn not_ready_pod_not_discovered(ctx: &Ctx) -> Result<Value> {
    let user = &ctx.profile.services.user;
    let replicas = discoverable_ids(ctx, user).await?.len();
    wait_in_sync(ctx, user, replicas).await?;
    let pod = not_ready_pod(ctx, &idle_image(ctx))?;
    let name = pod.name_any();
    let id = format!("{name}.{}", user.name);
    let api: Api<Pod> = Api::namespaced(ctx.client(), ctx.namespace());
    delete_afterwards(ctx, ctx.namespace(), std::slice::from_ref(&name));
    api.create(&PostParams::default(), &pod)
        .await
        .with_context(|| format!("creating pod {name}"))?;
    let running_unready =
        |pod: Option<&Pod>| pod.is_some_and(|pod| pods::is_running(pod) && !pods::is_ready(pod));
    let what = format!("pod {name} to run, not Ready");
    wait_for(
        &api,
        &name,
        ctx.profile.timeouts.step,
        &what,
        running_unready,
    )
    .await?;
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_millis(250));
    let mut latest = Vec::new();
    while started.elapsed() < OBSERVATION {
        ticks.tick().await;
        let updates = resolver_log::updates(&admin_log(ctx).await?)?;
        if let Some(listing) = updates.iter().find(|u| resolver_log::ids(u).contains(&id)) {
            bail!(
                "admin-srv's resolver listed the not-Ready pod {name} (instance id {id}) in an update of {} instance(s): {}",
                listing.len(),
                resolver_log::ids(listing).join(", ")
            );
        }
        if let Some(update) = resolver_log::latest_for(&updates, &user.name) {
            latest = update.clone();
        }
    }
    let still = api.get(&name).await?;
    if pods::is_ready(&still) {
        bail!("pod {name} became Ready during the observation; nothing was shown");
    }
    anyhow::Ok(json!({
        "notReadyPod": name,
        "latestUpdate": latest
            .iter()
            .map(|i| normalize::resolver_instance(i, &user.deployment))
            .collect::<Vec<_>>(),
    }))
}
