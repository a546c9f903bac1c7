//! The individual measurements of `harness bench`, each against a deployed profile.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use gomicro_proto::admin_srv::v1::authentication_service_client::AuthenticationServiceClient;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, LogParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;

use super::report::{LoginLoad, Percentiles, mib};
use crate::configmap::{self, CONFIG_KEY};
use crate::context::Ctx;
use crate::load::{self, Budget, Target};
use crate::pod_process;
use crate::profile::ServiceSpec;
use crate::wait::wait_until;
use crate::{deploy, pods, resolver_log};

const DEADLINE: Duration = Duration::from_secs(120);

/// When the harness first saw each state of one pod.
#[derive(Debug, Clone, Default)]
struct PodTimes {
    ready: Option<SystemTime>,
    registered: Option<SystemTime>,
}

fn ms_between(from: SystemTime, to: SystemTime) -> f64 {
    match to.duration_since(from) {
        Ok(d) => d.as_secs_f64() * 1000.0,
        Err(e) => -e.duration().as_secs_f64() * 1000.0,
    }
}

/// Records, as watch events arrive, when each pod of `service` became Ready and registered.
fn watch_pod_times(
    ctx: &Ctx,
    service: &ServiceSpec,
    selector: &str,
) -> (
    Arc<Mutex<BTreeMap<String, PodTimes>>>,
    tokio::task::JoinHandle<()>,
) {
    let times: Arc<Mutex<BTreeMap<String, PodTimes>>> = Arc::default();
    let api: Api<Pod> = Api::namespaced(ctx.client(), ctx.namespace());
    let config = watcher::Config::default().labels(selector);
    let id_key = ctx.profile.key("id");
    let name = service.name.clone();
    let sink = times.clone();
    let task = tokio::spawn(async move {
        let mut events = watcher(api, config)
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(event) = events.next().await {
            let Ok(pod) = event else { continue };
            let now = SystemTime::now();
            let mut times = sink.lock().unwrap_or_else(|p| p.into_inner());
            let entry = times.entry(pod.name_any()).or_default();
            if entry.ready.is_none() && pods::is_ready(&pod) {
                entry.ready = Some(now);
            }
            let registered =
                pod.labels().get(&id_key) == Some(&format!("{}.{name}", pod.name_any()));
            if entry.registered.is_none() && registered {
                entry.registered = Some(now);
            }
        }
    });
    (times, task)
}

/// admin-srv's applied resolver updates with the time the kubelet captured each line.
async fn timed_updates(ctx: &Ctx) -> Result<Vec<(SystemTime, Vec<Value>)>> {
    let admin = ctx.ready_pods(&ctx.profile.services.admin).await?.remove(0);
    let api: Api<Pod> = Api::namespaced(ctx.client(), ctx.namespace());
    let log = api
        .logs(
            &admin.name_any(),
            &LogParams {
                timestamps: true,
                ..Default::default()
            },
        )
        .await?;
    let mut out = Vec::new();
    for line in log.lines() {
        let Some((stamp, text)) = line.split_once(' ') else {
            continue;
        };
        let Ok(time) = stamp.parse::<k8s_openapi::jiff::Timestamp>() else {
            continue;
        };
        for update in resolver_log::updates(text)? {
            out.push((SystemTime::from(time), update));
        }
    }
    Ok(out)
}

/// Scales `service` to `replicas` and waits until every pod is registered and admin-srv's
/// latest update lists exactly them.
async fn scale_and_settle(ctx: &Ctx, service: &ServiceSpec, replicas: usize) -> Result<()> {
    deploy::scale(
        &ctx.client(),
        ctx.namespace(),
        service,
        replicas as i32,
        DEADLINE,
    )
    .await?;
    pods::wait_registered(&ctx.client(), &ctx.profile, service, DEADLINE).await?;
    wait_until(
        DEADLINE,
        "admin-srv's resolver to list the ready pods",
        || async {
            let mut ready: Vec<String> = ctx
                .ready_pods(service)
                .await?
                .iter()
                .map(|p| format!("{}.{}", p.name_any(), service.name))
                .collect();
            ready.sort();
            let updates: Vec<Vec<Value>> = timed_updates(ctx)
                .await?
                .into_iter()
                .map(|(_, u)| u)
                .collect();
            let latest =
                resolver_log::latest_for(&updates, &service.name).map(|u| resolver_log::ids(u));
            Ok((latest.as_ref() == Some(&ready)).then_some(()))
        },
    )
    .await
}

/// Registration (process start → registration labels seen) and resolver update (pod Ready →
/// first admin-srv update listing it) latencies over `rounds` of scaling user-srv 1 → 3 → 1.
pub async fn scaling_latencies(ctx: &Ctx, rounds: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let user = &ctx.profile.services.user;
    let selector = pods::selector(&ctx.client(), ctx.namespace(), &user.deployment).await?;
    let existing: Vec<String> = pods::all_pods(&ctx.client(), ctx.namespace(), user)
        .await?
        .iter()
        .map(|p| p.name_any())
        .collect();
    let original = existing.len().max(1);
    let (times, task) = watch_pod_times(ctx, user, &selector);
    let mut starts = BTreeMap::new();
    let rounds_done = async {
        for round in 1..=rounds {
            eprintln!("[bench] scaling round {round}/{rounds}");
            scale_and_settle(ctx, user, 3).await?;
            for pod in pods::all_pods(&ctx.client(), ctx.namespace(), user).await? {
                if let Some(pid) = pod_process::container_pid(&pod) {
                    starts
                        .entry(pod.name_any())
                        .or_insert(pod_process::start_time(pid)?);
                }
            }
            scale_and_settle(ctx, user, 1).await?;
        }
        anyhow::Ok(())
    }
    .await;
    task.abort();
    // Whatever happened, user-srv goes back to the replica count it had.
    let restored = scale_and_settle(ctx, user, original).await;
    rounds_done?;
    restored.context("restoring user-srv's replica count")?;
    let updates = timed_updates(ctx).await?;
    let times = times.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut registration = Vec::new();
    let mut resolver = Vec::new();
    for (name, seen) in times.iter().filter(|(n, _)| !existing.contains(n)) {
        if let (Some(start), Some(registered)) = (starts.get(name), seen.registered) {
            registration.push(ms_between(*start, registered));
        }
        let id = format!("{name}.{}", user.name);
        let applied = updates
            .iter()
            .find(|(_, update)| resolver_log::ids(update).contains(&id))
            .map(|(time, _)| *time);
        if let (Some(ready), Some(applied)) = (seen.ready, applied) {
            resolver.push(ms_between(ready, applied));
        }
    }
    if registration.is_empty() || resolver.is_empty() {
        bail!(
            "no complete sample: {} registration, {} resolver",
            registration.len(),
            resolver.len()
        );
    }
    Ok((registration, resolver))
}

/// ConfigMap update → first login token signed with the new key, `rounds` times; token-srv's
/// ConfigMap entry is put back as it was, even when a round fails.
pub async fn reload_latencies(ctx: &Ctx, target: &Target, rounds: usize) -> Result<Vec<f64>> {
    let token = &ctx.profile.services.token;
    let demo = &ctx.profile.expectations.demo_user;
    let original = configmap::data(ctx, token)
        .await?
        .remove(CONFIG_KEY)
        .with_context(|| format!("ConfigMap {} has no {CONFIG_KEY}", token.config_map))?;
    let base = configmap::service_config(ctx, token).await?;
    let measured = async {
        let mut samples = Vec::new();
        for round in 1..=rounds {
            let key = format!("bench-reload-{round}-{}", std::process::id());
            let config = configmap::with_api_key(base.clone(), &key);
            let started = Instant::now();
            configmap::set_entry(ctx, token, CONFIG_KEY, &configmap::render(&config)).await?;
            loop {
                if started.elapsed() > DEADLINE {
                    bail!("key {key} not in effect after {DEADLINE:?}");
                }
                let signed = target.login(demo).await?;
                if crate::login::check_token(&signed, &key, &demo.user_name, &demo.id).is_ok() {
                    break;
                }
            }
            samples.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        anyhow::Ok(samples)
    }
    .await;
    let restored = configmap::set_entry(ctx, token, CONFIG_KEY, &original).await;
    let samples = measured?;
    restored.context("restoring token-srv's ConfigMap")?;
    Ok(samples)
}

/// Host pids of the first ready pod of each service, by role.
pub async fn service_pids(ctx: &Ctx) -> Result<BTreeMap<String, i32>> {
    let mut pids = BTreeMap::new();
    for (role, service) in ctx.profile.all_services() {
        let pod = ctx.ready_pods(service).await?.remove(0);
        pids.insert(role.to_string(), pod_process::require_container_pid(&pod)?);
    }
    Ok(pids)
}

/// RSS in MiB of each pid.
pub fn rss_mib(pids: &BTreeMap<String, i32>) -> Result<BTreeMap<String, f64>> {
    pids.iter()
        .map(|(role, pid)| Ok((role.clone(), mib(pod_process::rss_bytes(*pid)?))))
        .collect()
}

/// HTTP and gRPC login targets on admin-srv's first ready pod.
pub async fn login_targets(
    ctx: &Ctx,
    concurrency: usize,
) -> Result<(Option<Target>, Option<Target>)> {
    let http = if ctx.profile.supports("login-http") {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(concurrency)
            .build()?;
        Some(Target::Http {
            client,
            url: format!("{}/admin/v1/login", ctx.admin_http_base().await?),
        })
    } else {
        None
    };
    let grpc = if ctx.profile.supports("login-grpc") {
        let channel = ctx.grpc_channel(&ctx.profile.services.admin).await?;
        Some(Target::Grpc(AuthenticationServiceClient::new(channel)))
    } else {
        None
    };
    Ok((http, grpc))
}

/// Login load at fixed concurrency; with `pids`, also the peak RSS of each while it runs.
pub async fn login_load(
    ctx: &Ctx,
    target: &Target,
    budget: Budget,
    pids: Option<&BTreeMap<String, i32>>,
) -> (LoginLoad, BTreeMap<String, f64>) {
    let running = std::sync::atomic::AtomicBool::new(true);
    let mut peaks: BTreeMap<String, f64> = BTreeMap::new();
    let sampler = async {
        let Some(pids) = pids else { return };
        while running.load(std::sync::atomic::Ordering::SeqCst) {
            if let Ok(now) = rss_mib(pids) {
                for (role, value) in now {
                    let peak = peaks.entry(role).or_insert(0.0);
                    *peak = peak.max(value);
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let load = async {
        let stats = load::run(target, &ctx.profile.expectations.demo_user, budget, &|_| {
            true
        })
        .await;
        running.store(false, std::sync::atomic::Ordering::SeqCst);
        stats
    };
    let (stats, ()) = tokio::join!(load, sampler);
    let latencies: Vec<f64> = stats
        .latencies
        .iter()
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    let summary = LoginLoad {
        concurrency: budget.concurrency,
        duration_s: stats.elapsed.as_secs_f64(),
        succeeded: stats.succeeded,
        failed: stats.failed,
        per_second: stats.throughput(),
        latency: Percentiles::of(&latencies, 99),
        first_errors: stats.first_errors,
    };
    (summary, peaks)
}
