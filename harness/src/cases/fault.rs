//! FAULT: control-plane restarts, killed pods, rolling restarts under load and ConfigMap bursts,
//! each ending with nothing lost.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

use super::support::resolver::{
    discoverable_ids, normalised, restore_replicas_afterwards, scale, wait_in_sync,
};
use super::support::token_config::{
    fresh_key, reports_rejection, restore_token_config_afterwards, set_api_key, wait_signed_with,
};
use super::{Case, Ctx, Lever, MEASUREMENTS, case_fn};
use crate::cluster::Component;
use crate::configmap::{self, CONFIG_KEY};
use crate::features::Feature;
use crate::load::{self, Budget, Target};
use crate::login::{any_login, check_reply, check_token};
use crate::pod_process::{require_container_id, restart_count};
use crate::pods;
use crate::profile::ServiceSpec;
use crate::resolver_log;
use crate::wait::{wait_gone, wait_until};

pub(super) fn cases() -> Vec<Case> {
    vec![
        Case {
            id: "FAULT-001",
            feature: Feature::FaultTolerance,
            section: "§2",
            summary: "kube-apiserver killed and restarted: the registry watch re-lists and sees a pod replaced as it comes back",
            lever: Some(Lever::ControlPlane),
            run: case_fn!(api_server_restart),
        },
        Case {
            id: "FAULT-002",
            feature: Feature::FaultTolerance,
            section: "§2",
            summary: "etcd killed and restarted: a pod replaced afterwards is seen",
            lever: Some(Lever::ControlPlane),
            run: case_fn!(etcd_restart),
        },
        Case {
            id: "FAULT-003",
            feature: Feature::Failover,
            section: "§2, §3",
            summary: "after a user-srv process is SIGKILLed, logins succeed again within 60 s and the resolver converges; the time is measured",
            lever: Some(Lever::ContainerRuntime),
            run: case_fn!(killed_user_pod),
        },
        Case {
            id: "FAULT-004",
            feature: Feature::ZeroDowntimeRollout,
            section: "§2, §3",
            summary: "no login fails while a rolling restart of user-srv at 2 replicas runs (only logins made during the rollout count)",
            lever: None,
            run: case_fn!(rolling_restart_under_load),
        },
        Case {
            id: "FAULT-005",
            feature: Feature::ConfigLiveReload,
            section: "§4",
            summary: "20 ConfigMap updates within a second: debounced, the last value wins, no half-applied config is served",
            lever: None,
            run: case_fn!(configmap_burst),
        },
        Case {
            id: "FAULT-006",
            feature: Feature::ConfigLiveReload,
            section: "§4",
            summary: "kube-apiserver killed and restarted: a ConfigMap change made as it comes back takes effect (the config watch re-establishes)",
            lever: Some(Lever::ControlPlane),
            run: case_fn!(config_after_api_server_restart),
        },
        Case {
            id: "FAULT-007",
            feature: Feature::ConfigLiveReload,
            section: "§4",
            summary: "etcd killed and restarted: a ConfigMap change made afterwards takes effect",
            lever: Some(Lever::ControlPlane),
            run: case_fn!(config_after_etcd_restart),
        },
    ]
}

/// Logins the rolling restart must see at least for the case to show anything.
const MIN_LOGINS_DURING_ROLLOUT: usize = 100;
/// Annotation that makes the Deployment roll its pods (as `kubectl rollout restart` does).
const RESTARTED_AT: &str = "conformance.gomicro.dev/restarted-at";
/// Updates in the ConfigMap burst, and the time they must fit in.
const BURST_UPDATES: usize = 20;
const BURST_WINDOW: Duration = Duration::from_secs(1);
/// The reference's log line per applied configuration change.
const RELOAD_MARKER: &str = "config reloaded";

/// Restarts `component` through the backend's lever (the case declares it, so it is there).
async fn restart(ctx: &Ctx, component: Component) -> Result<()> {
    ctx.cluster
        .control_plane()
        .map_err(anyhow::Error::msg)?
        .restart(component)
        .await
        .with_context(|| format!("restarting {component}"))
}

/// Retries `write` until the API server accepts it (it may still be settling after a restart).
async fn until_accepted<F, Fut>(ctx: &Ctx, what: &str, mut write: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    wait_until(ctx.profile.timeouts.step, what, || {
        let attempt = write();
        async move { attempt.await.map(Some) }
    })
    .await
}

async fn delete_pod(ctx: &Ctx, name: &str) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(ctx.client(), ctx.namespace());
    api.delete(name, &DeleteParams::default()).await?;
    Ok(())
}

async fn wait_pod_gone(ctx: &Ctx, name: &str) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(ctx.client(), ctx.namespace());
    wait_gone(&api, name, None, ctx.profile.timeouts.step).await
}

/// Kills `component`, and as soon as it is back replaces a user-srv pod: the change must reach
/// admin-srv's resolver through its re-established watch.
async fn pod_replaced_after_restart(ctx: &Ctx, component: Component) -> Result<Value> {
    let user = &ctx.profile.services.user;
    let replicas = discoverable_ids(ctx, user).await?.len();
    wait_in_sync(ctx, user, replicas).await?;
    let old = ctx.ready_pods(user).await?.remove(0).name_any();
    let old_id = format!("{old}.{}", user.name);
    restart(ctx, component).await?;
    until_accepted(ctx, "the API server to accept the pod deletion", || {
        delete_pod(ctx, &old)
    })
    .await?;
    wait_pod_gone(ctx, &old).await?;
    ctx.wait_rolled_out(user).await?;
    ctx.wait_in_service(user).await?;
    let update = wait_in_sync(ctx, user, replicas).await?;
    if resolver_log::ids(&update).contains(&old_id) {
        bail!("the replaced instance {old_id} is still listed after the {component} restart");
    }
    Ok(json!({ "resolverAfter": normalised(&update, user) }))
}

/// Kills `component`, and as soon as it is back gives token-srv a new key: the change must reach
/// token-srv through its re-established ConfigMap watch.
async fn config_changed_after_restart(ctx: &Ctx, component: Component) -> Result<Value> {
    restore_token_config_afterwards(ctx);
    restart(ctx, component).await?;
    let key = fresh_key(ctx, "outage");
    until_accepted(ctx, "the API server to accept the ConfigMap change", || {
        set_api_key(ctx, &key)
    })
    .await?;
    let token = wait_signed_with(ctx, &key)
        .await
        .with_context(|| format!("the ConfigMap change after the {component} restart"))?;
    Ok(json!({ "loginWithNewKey": token }))
}

async fn api_server_restart(ctx: &Ctx) -> Result<Value> {
    pod_replaced_after_restart(ctx, Component::ApiServer).await
}

async fn etcd_restart(ctx: &Ctx) -> Result<Value> {
    pod_replaced_after_restart(ctx, Component::Etcd).await
}

async fn config_after_api_server_restart(ctx: &Ctx) -> Result<Value> {
    config_changed_after_restart(ctx, Component::ApiServer).await
}

async fn config_after_etcd_restart(ctx: &Ctx) -> Result<Value> {
    config_changed_after_restart(ctx, Component::Etcd).await
}

async fn killed_user_pod(ctx: &Ctx) -> Result<Value> {
    let user = &ctx.profile.services.user;
    let replicas = discoverable_ids(ctx, user).await?.len();
    let pod = ctx.ready_pods(user).await?.remove(0);
    let runtime = ctx.cluster.runtime().map_err(anyhow::Error::msg)?;
    let container = require_container_id(&pod)?;
    let restarts = restart_count(&pod);
    ctx.expect_restarts(user);
    runtime
        .kill_container(&container)
        .await
        .with_context(|| format!("SIGKILL to {container} of pod {}", pod.name_any()))?;
    let killed = Instant::now();
    let login = wait_until(
        ctx.profile.timeouts.step,
        "a login to succeed after the user-srv process was killed",
        || async { Ok(any_login(ctx).await.ok()) },
    )
    .await?;
    let converged_ms = killed.elapsed().as_secs_f64() * 1000.0;
    let login = check_reply(ctx, &login, &ctx.profile.expectations.api_key)?;
    ctx.wait_in_service(user).await?;
    let update = wait_in_sync(ctx, user, replicas).await?;
    let api: Api<Pod> = Api::namespaced(ctx.client(), ctx.namespace());
    let restarted = match api.get_opt(&pod.name_any()).await? {
        Some(now) => restart_count(&now) > restarts,
        None => true,
    };
    Ok(json!({
        "processRestartedOrReplaced": restarted,
        "loginAfter": login,
        "resolverAfter": normalised(&update, user),
        MEASUREMENTS: { "loginsBackAfterMs": converged_ms },
    }))
}

/// Sets (or with `None` removes) the restart annotation of a Deployment's pod template.
async fn set_restarted_at(ctx: &Ctx, service: &ServiceSpec, value: Option<String>) -> Result<()> {
    let api: Api<Deployment> = Api::namespaced(ctx.client(), ctx.namespace());
    let patch = json!({ "spec": { "template": { "metadata": { "annotations": { RESTARTED_AT: value } } } } });
    api.patch(
        &service.deployment,
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await
    .with_context(|| format!("patching the pod template of {}", service.deployment))?;
    Ok(())
}

/// A load target for logins through admin-srv over HTTP (Core `login-http`).
async fn login_target(ctx: &Ctx) -> Result<Target> {
    Ok(Target::Http {
        client: ctx.http().clone(),
        url: format!("{}/admin/v1/login", ctx.admin_http_base().await?),
    })
}

/// Starts a rolling restart of the service's pods; returns the names of the pods it replaces.
async fn start_roll(ctx: &Ctx, service: &ServiceSpec) -> Result<BTreeSet<String>> {
    let before: BTreeSet<String> = pods::all_pods(&ctx.client(), ctx.namespace(), service)
        .await?
        .iter()
        .map(|p| p.name_any())
        .collect();
    let stamp = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    set_restarted_at(ctx, service, Some(stamp)).await?;
    Ok(before)
}

/// Waits until the rollout is over: only new, registered, serving, resolved pods remain.
async fn finish_roll(
    ctx: &Ctx,
    service: &ServiceSpec,
    replicas: usize,
    before: &BTreeSet<String>,
) -> Result<Vec<Value>> {
    ctx.wait_rolled_out(service).await?;
    wait_until(
        ctx.profile.timeouts.step,
        "the old user-srv pods to be gone",
        || async {
            let now = pods::all_pods(&ctx.client(), ctx.namespace(), service).await?;
            Ok(
                (now.len() == replicas && now.iter().all(|p| !before.contains(&p.name_any())))
                    .then_some(()),
            )
        },
    )
    .await?;
    ctx.wait_in_service(service).await?;
    wait_in_sync(ctx, service, replicas).await
}

async fn rolling_restart_under_load(ctx: &Ctx) -> Result<Value> {
    let user = &ctx.profile.services.user;
    // Restores run newest first: the template, then the replica count.
    restore_replicas_afterwards(ctx, user, 1);
    let template = user.clone();
    ctx.on_cleanup("restoring user-srv's pod template", move |ctx| {
        Box::pin(async move { set_restarted_at(ctx, &template, None).await })
    });
    {
        scale(ctx, user, 2).await?;
        ctx.wait_in_service(user).await?;
        wait_in_sync(ctx, user, 2).await?;
        let target = login_target(ctx).await?;
        let rolled = AtomicBool::new(false);
        let budget = Budget {
            concurrency: 4,
            max_requests: 200_000,
            max_duration: Duration::from_secs(120),
        };
        // Only logins started while the rollout runs: the load begins once the template is
        // patched and starts nothing after the new pods serve and are resolved.
        let keep_going = |_: usize| !rolled.load(Ordering::SeqCst);
        let user_credentials = &ctx.profile.expectations.demo_user;
        let before = start_roll(ctx, user).await?;
        let started = Instant::now();
        let rollout = async {
            let result = finish_roll(ctx, user, 2, &before).await;
            rolled.store(true, Ordering::SeqCst);
            result
        };
        let (stats, rolled_out) = tokio::join!(
            load::run(&target, user_credentials, budget, &keep_going),
            rollout
        );
        let update = rolled_out.context("rolling user-srv")?;
        let rollout_s = started.elapsed().as_secs_f64();
        let total = stats.succeeded + stats.failed;
        if stats.failed > 0 {
            bail!(
                "{} of {total} logins failed during the rolling restart; first errors: {:?}",
                stats.failed,
                stats.first_errors
            );
        }
        if total < MIN_LOGINS_DURING_ROLLOUT {
            bail!(
                "only {total} logins ran during the {rollout_s:.1} s rollout, at least {MIN_LOGINS_DURING_ROLLOUT} are needed"
            );
        }
        Ok(json!({
            "failedLogins": stats.failed,
            "resolverAfter": normalised(&update, user),
            MEASUREMENTS: { "loginsDuringRollout": total, "rolloutSeconds": rollout_s },
        }))
    }
}

/// The key among `keys` a login token verifies with.
fn signing_key<'a>(ctx: &Ctx, token: &str, keys: &'a [String]) -> Option<&'a str> {
    let user = &ctx.profile.expectations.demo_user;
    keys.iter()
        .map(String::as_str)
        .find(|key| check_token(token, key, &user.user_name, &user.id).is_ok())
}

async fn configmap_burst(ctx: &Ctx) -> Result<Value> {
    let token = &ctx.profile.services.token;
    let base = configmap::service_config(ctx, token).await?;
    let stem = fresh_key(ctx, "burst");
    let burst: Vec<String> = (1..=BURST_UPDATES)
        .map(|i| format!("{stem}-{i:02}"))
        .collect();
    let last = burst.last().cloned().expect("the burst is not empty");
    let mut known = burst.clone();
    known.push(ctx.profile.expectations.api_key.clone());
    if let Some(current) = base["auth"]["api_key"].as_str() {
        known.push(current.to_string());
    }
    let pod = ctx.ready_pods(token).await?.remove(0);
    let log_before = ctx.logs(&pod).await?.len();
    let target = login_target(ctx).await?;
    let demo = &ctx.profile.expectations.demo_user;
    restore_token_config_afterwards(ctx);
    let done = AtomicBool::new(false);
    let sampler = async {
        let mut tokens = Vec::new();
        let started = Instant::now();
        while !done.load(Ordering::SeqCst) && started.elapsed() < ctx.profile.timeouts.step {
            tokens.push(target.login(demo).await);
        }
        tokens
    };
    let updates = async {
        let started = Instant::now();
        for key in &burst {
            let config = configmap::with_api_key(base.clone(), key);
            configmap::set_entry(ctx, token, CONFIG_KEY, &configmap::render(&config)).await?;
        }
        let took = started.elapsed();
        let applied = wait_signed_with(ctx, &last).await;
        done.store(true, Ordering::SeqCst);
        applied.context("the last of the burst never took effect")?;
        anyhow::Ok(took)
    };
    let (samples, took) = tokio::join!(sampler, updates);
    let took = took?;
    if took > BURST_WINDOW {
        bail!(
            "the API server needed {took:?} for {BURST_UPDATES} updates, more than {BURST_WINDOW:?}: cannot stage the burst"
        );
    }
    let sampled = samples.len();
    for sample in samples {
        let token = sample.context("a login failed during the ConfigMap burst")?;
        if signing_key(ctx, &token, &known).is_none() {
            bail!(
                "during the burst a token was signed with a key no update set (a half-applied config)"
            );
        }
    }
    // The last value stays: no older batch is applied after it.
    for _ in 0..20 {
        let token = target.login(demo).await?;
        if signing_key(ctx, &token, std::slice::from_ref(&last)).is_none() {
            bail!("after the last update took effect, a token was signed with another key");
        }
    }
    let log = ctx.logs(&pod).await?;
    let since_burst = log.get(log_before..).unwrap_or(&log);
    let entry = format!("{}/{}/{CONFIG_KEY}", ctx.namespace(), token.config_map);
    if let Some(rejected) = since_burst.lines().find(|l| reports_rejection(l, &entry)) {
        bail!("token-srv rejected an update of the burst: {rejected}");
    }
    let reloads = since_burst
        .lines()
        .filter(|l| l.contains(RELOAD_MARKER))
        .count();
    if reloads >= BURST_UPDATES {
        bail!("{BURST_UPDATES} updates gave {reloads} reloads: the burst was not debounced");
    }
    Ok(json!({
        "loginAfterBurst": check_reply(ctx, &any_login(ctx).await?, &last)?,
        MEASUREMENTS: { "reloads": reloads, "burstMs": took.as_secs_f64() * 1000.0, "samples": sampled },
    }))
}
