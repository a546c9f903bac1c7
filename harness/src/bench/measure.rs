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

use super::report::{Figure, LoadPhase, Percentiles, mib, unit};
use crate::configmap::{self, CONFIG_KEY};
use crate::context::Ctx;
use crate::features::Feature;
use crate::load::{self, Budget, Target};
use crate::pod_process;
use crate::profile::ServiceSpec;
use crate::wait::wait_until;
use crate::{deploy, pods, resolver_log};

const DEADLINE: Duration = Duration::from_secs(120);

/// When the harness first saw each state of one pod.
#[derive(Debug, Clone, Default)]
struct PodTimes {
    /// Registered and, for readiness-aware discovery, Ready; else Running: from then on the
    /// resolver should list it.
    discoverable: Option<SystemTime>,
    registered: Option<SystemTime>,
}

/// Whether the profile's discovery lists only Ready pods (the Extended feature); Core
/// discovery lists every Running pod (CONTRACT.md §2).
fn readiness_aware(ctx: &Ctx) -> bool {
    ctx.profile.declares(Feature::ReadinessAwareDiscovery)
}

/// The pods of `service` its resolver should list: Ready ones for readiness-aware discovery,
/// else the Running ones (as the RES cases expect).
async fn discoverable_pods(ctx: &Ctx, service: &ServiceSpec) -> Result<Vec<Pod>> {
    if readiness_aware(ctx) {
        pods::ready_pods(&ctx.client(), ctx.namespace(), service).await
    } else {
        pods::running_pods(&ctx.client(), ctx.namespace(), service).await
    }
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
    let state: fn(&Pod) -> bool = if readiness_aware(ctx) {
        pods::is_ready
    } else {
        pods::is_running
    };
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
            let registered =
                pod.labels().get(&id_key) == Some(&format!("{}.{name}", pod.name_any()));
            if entry.registered.is_none() && registered {
                entry.registered = Some(now);
            }
            if entry.discoverable.is_none() && registered && state(&pod) {
                entry.discoverable = Some(now);
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
/// latest update lists exactly the discoverable ones.
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
    let what = if readiness_aware(ctx) {
        "admin-srv's resolver to list the ready pods"
    } else {
        "admin-srv's resolver to list the running pods"
    };
    wait_until(DEADLINE, what, || async {
        let mut ready: Vec<String> = discoverable_pods(ctx, service)
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
    })
    .await
}

/// Registration (process start → registration labels seen) and resolver update (pod
/// discoverable: registered and Ready, or Running without readiness-aware discovery → first
/// admin-srv update listing it) latencies over `rounds` of scaling user-srv 1 → 3 → 1.
pub(crate) async fn scaling_latencies(ctx: &Ctx, rounds: usize) -> Result<(Vec<f64>, Vec<f64>)> {
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
    // Process start times need the runtime lever; without it registration goes unmeasured.
    let runtime = ctx.cluster.runtime().ok();
    let rounds_done = async {
        for round in 1..=rounds {
            eprintln!("[bench] scaling round {round}/{rounds}");
            scale_and_settle(ctx, user, 3).await?;
            for pod in pods::all_pods(&ctx.client(), ctx.namespace(), user).await? {
                if let Some(runtime) = runtime
                    && let Some(id) = pod_process::container_id(&pod)
                    && !starts.contains_key(&pod.name_any())
                {
                    starts.insert(pod.name_any(), runtime.container_stats(id)?.started_at);
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
        if let (Some(discoverable), Some(applied)) = (seen.discoverable, applied) {
            resolver.push(ms_between(discoverable, applied));
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
pub(crate) async fn reload_latencies(
    ctx: &Ctx,
    target: &Target,
    rounds: usize,
) -> Result<Vec<f64>> {
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

/// Container IDs of the first ready pod of each service, by role.
pub(crate) async fn service_containers(ctx: &Ctx) -> Result<BTreeMap<String, String>> {
    ctx.cluster.runtime().map_err(anyhow::Error::msg)?;
    let mut containers = BTreeMap::new();
    for (role, service) in ctx.profile.all_services() {
        let pod = ctx.ready_pods(service).await?.remove(0);
        containers.insert(role.to_string(), pod_process::require_container_id(&pod)?);
    }
    Ok(containers)
}

/// Resident memory in MiB of each container (from its cgroup).
pub(crate) fn rss_mib(
    ctx: &Ctx,
    containers: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, f64>> {
    let runtime = ctx.cluster.runtime().map_err(anyhow::Error::msg)?;
    containers
        .iter()
        .map(|(role, id)| Ok((role.clone(), mib(runtime.container_stats(id)?.memory_bytes))))
        .collect()
}

/// The HTTP target `POST <base>/admin/v1/login` with a connection pool for `concurrency`.
pub(crate) fn http_target(base: &str, concurrency: usize) -> Result<Target> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(concurrency)
        .build()?;
    Ok(Target::Http {
        client,
        url: format!("{base}/admin/v1/login"),
    })
}

/// HTTP and gRPC login targets on admin-srv's first ready pod.
pub(crate) async fn login_targets(
    ctx: &Ctx,
    concurrency: usize,
) -> Result<(Option<Target>, Option<Target>)> {
    let http = if ctx.profile.declares(Feature::LoginHttp) {
        Some(http_target(&ctx.admin_http_base().await?, concurrency)?)
    } else {
        None
    };
    let grpc = if ctx.profile.declares(Feature::LoginGrpc) {
        let channel = ctx.grpc_channel(&ctx.profile.services.admin).await?;
        Some(Target::Grpc(AuthenticationServiceClient::new(channel)))
    } else {
        None
    };
    Ok((http, grpc))
}

/// CPU time (user + system) of this process (the load generator) in seconds.
fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_cpu_ticks(&stat).map(|ticks| ticks as f64 / 100.0)
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line, in clock ticks (USER_HZ).
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command (field 2) may hold spaces and parentheses: count from its closing one.
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace().skip(11);
    Some(fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?)
}

/// CPU time of the given containers (from the runtime lever's cgroup stats) in seconds.
fn containers_cpu_seconds(ctx: &Ctx, containers: &[String]) -> Option<f64> {
    let runtime = ctx.cluster.runtime().ok()?;
    containers
        .iter()
        .map(|id| Some(runtime.container_stats(id).ok()?.cpu.as_secs_f64()))
        .sum()
}

/// CPU time read by `read` between [`CpuMeter::start`] and [`CpuMeter::share`].
pub(crate) struct CpuMeter<F> {
    read: F,
    started: Instant,
    cpu: f64,
}

impl<F: Fn() -> Option<f64>> CpuMeter<F> {
    /// Starts metering; `None` when `read` cannot read the CPU time.
    pub(crate) fn start(read: F) -> Option<CpuMeter<F>> {
        let cpu = read()?;
        Some(CpuMeter {
            read,
            started: Instant::now(),
            cpu,
        })
    }

    /// The CPU time since the start in percent of the machine's (wall time × cores).
    pub(crate) fn share(&self) -> Option<Figure> {
        let now = (self.read)()?;
        let capacity = self.started.elapsed().as_secs_f64() * cores() as f64;
        (capacity > 0.0)
            .then(|| Figure::new(100.0 * (now - self.cpu) / capacity, unit::CPU_PERCENT))
    }
}

/// CPU cores this process may use.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// What one load phase counts: logins (through admin-srv) or requests (the baseline).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counted {
    Logins,
    Requests,
}

/// A load phase at fixed concurrency; with `rss_containers`, also the peak RSS of each while
/// it runs. CPU shares are metered for the harness (the load generator) and `cpu_containers`
/// (through the backend's runtime lever; absent without it).
pub(crate) async fn load_phase(
    ctx: &Ctx,
    target: &Target,
    budget: Budget,
    counted: Counted,
    cpu_containers: &[String],
    rss_containers: Option<&BTreeMap<String, String>>,
) -> (LoadPhase, BTreeMap<String, f64>) {
    let running = std::sync::atomic::AtomicBool::new(true);
    let mut peaks: BTreeMap<String, f64> = BTreeMap::new();
    let sampler = async {
        let Some(containers) = rss_containers else {
            return;
        };
        while running.load(std::sync::atomic::Ordering::SeqCst) {
            if let Ok(now) = rss_mib(ctx, containers) {
                for (role, value) in now {
                    let peak = peaks.entry(role).or_insert(0.0);
                    *peak = peak.max(value);
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let generator = CpuMeter::start(own_cpu_seconds);
    let pods = CpuMeter::start(|| containers_cpu_seconds(ctx, cpu_containers))
        .filter(|_| !cpu_containers.is_empty());
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
    let (count, rate) = match counted {
        Counted::Logins => (unit::LOGINS, unit::LOGINS_PER_S),
        Counted::Requests => (unit::REQUESTS, unit::REQUESTS_PER_S),
    };
    let summary = LoadPhase {
        concurrency: budget.concurrency,
        duration: Figure::new(stats.elapsed.as_secs_f64(), unit::SECONDS),
        succeeded: Figure::new(stats.succeeded as f64, count),
        failed: Figure::new(stats.failed as f64, count),
        per_second: Figure::new(stats.throughput(), rate),
        latency: Percentiles::of(&latencies, 99),
        generator_cpu: generator.and_then(|m| m.share()),
        pods_cpu: pods.and_then(|m| m.share()),
        first_errors: stats.first_errors,
    };
    (summary, peaks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_counted_after_the_command() {
        let stat = "4242 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 17 0 0 20 0 1 0 300";
        assert_eq!(parse_cpu_ticks(stat), Some(267));
        assert_eq!(parse_cpu_ticks("4242 (x) S 1"), None);
        assert!(own_cpu_seconds().unwrap() >= 0.0);
    }
}
