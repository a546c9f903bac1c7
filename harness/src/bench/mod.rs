//! `harness bench`: performance figures of one or more implementations, each on a fresh
//! cluster, printed as a table (with ratios against the first profile) and written as JSON.
//!
//! Every load is bounded in request count and in time, and goes only to the cluster's own pod
//! addresses. Figures that need host access to the pods' processes (RSS, network counters,
//! process start times) are measured on the local backend only.

pub(crate) mod baseline;
pub(crate) mod compare;
pub(crate) mod measure;
pub(crate) mod report;
pub(crate) mod unrelated;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::cluster::{BackendKind, Cluster, provider};
use crate::context::Ctx;
use crate::deploy;
use crate::features::Feature;
use crate::load::Budget;
use crate::profile::Profile;

use measure::Counted;
use report::{BenchReport, Figure, Metrics, ProfileBench, unit};

/// What to measure and how hard.
#[derive(Debug, Clone)]
pub(crate) struct BenchOptions {
    pub backend: BackendKind,
    /// Profiles benchmarked one after the other, each on its own cluster.
    pub profiles: Vec<PathBuf>,
    /// Where the JSON goes.
    pub json: PathBuf,
    /// Concurrent logins of the load phases.
    pub concurrency: usize,
    /// Longest duration of each load phase.
    pub load_duration: Duration,
    /// Most requests of each load phase.
    pub max_requests: usize,
    /// Scaling rounds (2 new pods each) and config reloads.
    pub rounds: usize,
    /// Unrelated pods created for the admin-srv memory and watch traffic figures (0: skip).
    pub unrelated_pods: usize,
    /// Idle and settle window around the unrelated pods.
    pub window: Duration,
    /// The `harness` executable (for the local daemon).
    pub harness_exe: PathBuf,
    /// An earlier run's JSON ([`compare::load`]) to print the changes against.
    pub compare: Option<serde_json::Value>,
}

fn method() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        (
            "clusterStart",
            "seconds until the backend's cluster answers (local: control plane + node Ready), images prepared beforehand",
        ),
        (
            "deployToReady",
            "seconds from applying the manifests until every Deployment rolled out and every pod registered",
        ),
        (
            "registration",
            "ms from a new user-srv process's start (/proc/<pid>/stat) until the harness's pod watch sees its registration labels; scaling user-srv 1 -> 3 -> 1 per round",
        ),
        (
            "resolverUpdate",
            "ms from the harness's pod watch seeing a new user-srv pod discoverable (registered and Ready; registered and Running when the profile does not declare readiness-aware-discovery) until the kubelet-captured time of admin-srv's first `[resolver] update instances` line listing it",
        ),
        (
            "configReload",
            "ms from the ConfigMap update request until the first login whose token verifies with the new auth.api_key (sequential logins)",
        ),
        (
            "loginHttp/loginGrpc",
            "logins through admin-srv at fixed concurrency, bounded by duration and request count; latency p50/p99 of successful logins; generatorCpu = CPU time of the harness process (the load generator) / (wall time x cores); podsCpu = the same for the three services' first containers, from their cgroups (backends with a runtime lever)",
        ),
        (
            "baselineHttp/baselineGrpc",
            "the same load generator, concurrency and budget against the cheapest unary handlers (package bench-baseline: constant login reply over HTTP, echo over gRPC) in a pod of their own namespace on the same cluster, right after the login phases; podsCpu = the baseline pod's",
        ),
        (
            "loginHttpVsBaseline/loginGrpcVsBaseline",
            "logins/s divided by the baseline's requests/s over the same protocol; a login is one request plus two gRPC calls behind it, so about 1/3 is the ideal",
        ),
        (
            "rss",
            "VmRSS of each service's container process (first ready pod); under load = peak sampled every 200 ms during the HTTP load",
        ),
        (
            "unrelatedPods",
            "admin-srv VmRSS before and after creating unrelated Pending pods in another namespace; rx = bytes received by admin-srv's pod network namespace (/proc/<pid>/net/dev, non-loopback), idle window vs creation + settle window",
        ),
    ])
}

fn goals() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        ("resolverUpdateP95", "<= 200 ms"),
        ("configReloadP95", "<= 300 ms"),
        ("rssIdlePerService", "<= 12 MiB"),
        ("rssUnderLoadPerService", "<= 15 MiB"),
        ("adminRssWithUnrelatedPods", "<= +2 MiB"),
        ("httpLoginsPerSecond", ">= 5000"),
        ("loginsVsBaseline", ">= 0.25 over HTTP and over gRPC"),
        ("loginP99", "<= 5 ms at 16 concurrent"),
        ("failedLogins", "0"),
    ])
}

/// Runs the bench of every profile, prints the table, writes the JSON.
pub(crate) async fn run(options: &BenchOptions) -> Result<BenchReport> {
    let mut profiles = Vec::new();
    for path in &options.profiles {
        let bench = match bench_profile(options, path).await {
            Ok(bench) => bench,
            Err(error) => {
                eprintln!("[bench] {}: {error:#}", path.display());
                unmeasured(path, format!("{error:#}"))
            }
        };
        profiles.push(bench);
    }
    let report = BenchReport {
        format_version: report::FORMAT_VERSION,
        date: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        cores: measure::cores(),
        method: method(),
        goals: goals(),
        profiles,
    };
    println!("{}", report::render_table(&report.profiles));
    if let Some(old) = &options.compare {
        println!("changes against the earlier run:");
        println!("{}", compare::render(old, &serde_json::to_value(&report)?));
    }
    if let Some(dir) = options.json.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&options.json, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", options.json.display()))?;
    eprintln!("[bench] JSON written to {}", options.json.display());
    Ok(report)
}

/// Starts a cluster, timing only the cluster itself (local images are prepared first).
async fn timed_start(options: &BenchOptions, profile: &Profile) -> Result<(Cluster, Duration)> {
    let prepared = provider(options.backend)
        .prepare(profile, &options.harness_exe)
        .await?;
    eprintln!("[bench] backend: {}", prepared.kind.name());
    let started = Instant::now();
    let cluster = Cluster::start(prepared, false).await?;
    Ok((cluster, started.elapsed()))
}

/// The entry of a profile that could not be measured at all.
fn unmeasured(path: &Path, error: String) -> ProfileBench {
    ProfileBench {
        name: profile_name(path),
        profile: path.display().to_string(),
        implementation: String::new(),
        backend: String::new(),
        kubernetes_version: String::new(),
        metrics: Metrics::default(),
        not_declared: BTreeMap::new(),
        errors: vec![error],
    }
}

fn profile_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

async fn bench_profile(options: &BenchOptions, path: &Path) -> Result<ProfileBench> {
    let mut profile = Profile::load(path)?;
    baseline::add_image(&mut profile);
    eprintln!("[bench] profile {}", path.display());
    let (cluster, start) = timed_start(options, &profile).await?;
    let mut bench = ProfileBench {
        name: profile_name(path),
        profile: path.display().to_string(),
        implementation: format!(
            "{}/{} {}",
            profile.implementation.organization,
            profile.implementation.project,
            profile.implementation.version
        ),
        backend: cluster.backend().name().into(),
        kubernetes_version: cluster.kubernetes_version().into(),
        metrics: Metrics {
            cluster_start: Some(Figure::new(start.as_secs_f64(), unit::SECONDS)),
            ..Default::default()
        },
        not_declared: BTreeMap::new(),
        errors: Vec::new(),
    };
    let ctx = Ctx::with_declarations(cluster, profile)?;
    let deploying = Instant::now();
    match deploy::deploy(&ctx.client(), &ctx.profile).await {
        Ok(()) => {
            bench.metrics.deploy_to_ready = Some(Figure::new(
                deploying.elapsed().as_secs_f64(),
                unit::SECONDS,
            ));
            measure_deployed(options, &ctx, &mut bench).await;
        }
        Err(error) => bench.errors.push(format!("deployment failed: {error:#}")),
    }
    ctx.cluster.shutdown(false).await?;
    Ok(bench)
}

/// Records `result` under `what`, or its error in the bench's errors.
fn record<T>(bench: &mut ProfileBench, what: &str, result: Result<T>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(error) => {
            eprintln!("[bench] {what} failed: {error:#}");
            bench.errors.push(format!("{what}: {error:#}"));
            None
        }
    }
}

/// A figure whose feature the profile does not declare is not measured; it is listed with the
/// feature instead.
fn declared(ctx: &Ctx, bench: &mut ProfileBench, figure: &'static str, feature: Feature) -> bool {
    let supported = ctx.profile.declares(feature);
    if !supported {
        bench
            .not_declared
            .insert(figure.into(), feature.name().into());
    }
    supported
}

async fn measure_deployed(options: &BenchOptions, ctx: &Ctx, bench: &mut ProfileBench) {
    let http_declared = declared(ctx, bench, "loginHttp", Feature::LoginHttp);
    let grpc_declared = declared(ctx, bench, "loginGrpc", Feature::LoginGrpc);
    let Some((http, grpc)) = record(
        bench,
        "login targets",
        measure::login_targets(ctx, options.concurrency).await,
    ) else {
        return;
    };
    // grpc-go builds a client's resolver on its first call (Go-Micro's admin-srv logs no
    // resolver update before a login), so one login comes before the scaling rounds.
    if let Some(target) = http.as_ref().or(grpc.as_ref()) {
        let warm_up = target.login(&ctx.profile.expectations.demo_user).await;
        record(bench, "warm-up login", warm_up);
    }
    let registration = declared(ctx, bench, "registration", Feature::Registration);
    let resolver = declared(ctx, bench, "resolverUpdate", Feature::Resolver);
    if registration || resolver {
        eprintln!("[bench] registration and resolver latencies");
        if let Some((registration_ms, resolver_ms)) = record(
            bench,
            "registration/resolver latency",
            measure::scaling_latencies(ctx, options.rounds).await,
        ) {
            if registration {
                bench.metrics.registration = report::Percentiles::of(&registration_ms, 95);
            }
            if resolver {
                bench.metrics.resolver_update = report::Percentiles::of(&resolver_ms, 95);
            }
        }
    }
    if declared(ctx, bench, "configReload", Feature::ConfigLiveReload)
        && let Some(target) = http.as_ref().or(grpc.as_ref())
    {
        eprintln!("[bench] config reload latency");
        let reloads = measure::reload_latencies(ctx, target, options.rounds).await;
        bench.metrics.config_reload = record(bench, "config reload latency", reloads)
            .and_then(|r| report::Percentiles::of(&r, 95));
    }
    let containers = record(
        bench,
        "service containers",
        measure::service_containers(ctx).await,
    );
    if let Some(containers) = &containers
        && let Some(idle) = record(bench, "idle RSS", measure::rss_mib(ctx, containers))
    {
        bench.metrics.rss_idle = mib_figures(idle);
    }
    let budget = Budget {
        concurrency: options.concurrency,
        max_requests: options.max_requests,
        max_duration: options.load_duration,
    };
    let cpu_containers: Vec<String> = containers
        .iter()
        .flat_map(|c| c.values().cloned())
        .collect();
    if let Some(target) = http.as_ref().filter(|_| http_declared) {
        eprintln!("[bench] HTTP login load");
        let (load, peaks) = measure::load_phase(
            ctx,
            target,
            budget,
            Counted::Logins,
            &cpu_containers,
            containers.as_ref(),
        )
        .await;
        bench.metrics.login_http = Some(load);
        bench.metrics.rss_load = mib_figures(peaks);
    }
    if let Some(target) = grpc.as_ref().filter(|_| grpc_declared) {
        eprintln!("[bench] gRPC login load");
        let (load, _) =
            measure::load_phase(ctx, target, budget, Counted::Logins, &cpu_containers, None).await;
        bench.metrics.login_grpc = Some(load);
    }
    eprintln!("[bench] baseline load (HTTP and gRPC)");
    if let Some(measured) = record(bench, "baseline", baseline::measure(ctx, budget).await) {
        bench.metrics.baseline_http = measured.http;
        bench.metrics.baseline_grpc = measured.grpc;
        bench.metrics.compute_ratios();
    }
    if options.unrelated_pods > 0
        && let Some(admin) = containers.as_ref().and_then(|c| c.get("admin"))
    {
        eprintln!(
            "[bench] admin-srv with {} unrelated pods",
            options.unrelated_pods
        );
        let measured = unrelated::measure(ctx, admin, options.unrelated_pods, options.window).await;
        bench.metrics.unrelated_pods = record(bench, "unrelated pods", measured);
    }
}

fn mib_figures(values: BTreeMap<String, f64>) -> BTreeMap<String, Figure> {
    values
        .into_iter()
        .map(|(role, value)| (role, Figure::new(value, unit::MIB)))
        .collect()
}
