//! The life cycle shared by the services: start, register, serve, stop.

use std::future::Future;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use gomicro_config::{Config, WatchHandle};
use gomicro_registry::{Discovery, PodIdentity, Registrar};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::service::RoutesBuilder;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::shutdown::Signals;
use crate::{Cli, ConfigExt, VERSION, grpc, host_ip, init_tracing, listen_addr, service_instance};

/// Quiet time before a burst of ConfigMap changes is applied.
const CONFIG_DEBOUNCE: Duration = Duration::from_millis(100);
/// Upper bound of the graceful stop of the servers.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A check of the merged configuration tree; `Err` carries the reason.
pub type Validator = fn(&Value) -> Result<(), String>;

/// Static description of a service.
#[derive(Clone, Copy)]
pub struct ServiceSpec {
    /// Registered service name, e.g. `go-micro.token-srv`.
    pub name: &'static str,
    /// Proto packages of the served API, listed by reflection (e.g. `["token_srv.v1",
    /// "common.authn"]`).
    pub api_packages: &'static [&'static str],
    /// Check of the merged configuration tree, run at start and on every update.
    pub validator: Option<Validator>,
}

/// What a service gets to build its handlers.
#[derive(Clone)]
pub struct Context {
    /// Registered service name.
    pub name: &'static str,
    /// The live configuration.
    pub config: Config,
    /// Kubernetes client (in-cluster config in a pod).
    pub kube: kube::Client,
    /// The namespaces other services' instances are discovered in: `registry.namespaces`, by
    /// default the own pod's (CONTRACT E2.3).
    pub namespaces: Vec<String>,
}

impl Context {
    /// Discovery of other services' instances in [`Context::namespaces`] only.
    pub fn discovery(&self) -> Discovery {
        Discovery::in_namespaces(self.kube.clone(), self.namespaces.clone())
    }
}

/// The servers a service runs: gRPC always (health and reflection are added), HTTP optional.
pub struct Servers {
    /// The service's gRPC routes.
    pub grpc: RoutesBuilder,
    /// The HTTP router, served on `server.http.addr` (default `:8080`).
    pub http: Option<axum::Router>,
}

/// Runs a service to completion and maps the outcome to the exit code; every failure is
/// logged with its full cause chain.
pub async fn run<F, Fut>(spec: ServiceSpec, build: F) -> ExitCode
where
    F: FnOnce(Context) -> Fut,
    Fut: Future<Output = anyhow::Result<Servers>>,
{
    init_tracing();
    match start_and_serve(spec, build).await {
        Ok(()) => {
            tracing::info!("{} stopped", spec.name);
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!("{} failed: {}", spec.name, describe(&error));
            ExitCode::FAILURE
        }
    }
}

/// The cause chain joined by `: `, skipping causes whose text an outer message already
/// contains (kube and config errors repeat their sources in their own text).
fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain().map(ToString::to_string) {
        if !text.contains(&cause) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause);
        }
    }
    text
}

async fn start_and_serve<F, Fut>(spec: ServiceSpec, build: F) -> anyhow::Result<()>
where
    F: FnOnce(Context) -> Fut,
    Fut: Future<Output = anyhow::Result<Servers>>,
{
    let cli = Cli::parse_from(std::env::args().skip(1)).map_err(anyhow::Error::msg)?;
    tracing::info!(
        "starting {} version {VERSION}, config directory {}",
        spec.name,
        cli.conf.display()
    );
    let config = load_config(&cli.conf, spec.validator)?;
    check_registry_type(&config)?;
    let kube = kube::Client::try_default()
        .await
        .context("cannot create the Kubernetes client (needs the in-cluster service account or a KUBECONFIG)")?;
    let config_watch = attach_configmaps(&config, &kube).await?;
    let pod = PodIdentity::from_env().context("cannot find the own pod to register on")?;
    let namespaces = discovery_namespaces(config.strings("registry.namespaces")?, &pod.namespace)
        .map_err(|reason| anyhow!("invalid registry.namespaces: {reason}"))?;
    tracing::info!(
        "discovering instances in namespace(s) {}",
        namespaces.join(", ")
    );
    let context = Context {
        name: spec.name,
        config: config.clone(),
        kube: kube.clone(),
        namespaces,
    };
    let servers = build(context)
        .await
        .with_context(|| format!("cannot set up {}", spec.name))?;
    let outcome = serve(spec, &config, Registrar::new(kube, pod), servers).await;
    if let Some(watch) = config_watch {
        watch.stop().await;
    }
    outcome
}

/// Loads the local directory and checks it with the service's validator.
fn load_config(dir: &Path, validator: Option<Validator>) -> anyhow::Result<Config> {
    let config = Config::from_dir(dir)
        .with_context(|| format!("cannot load the configuration directory {}", dir.display()))?;
    if let Some(validate) = validator {
        validate(&config.snapshot())
            .map_err(|reason| anyhow!("invalid configuration in {}: {reason}", dir.display()))?;
        config.set_validator(validate);
    }
    Ok(config)
}

/// Only the Kubernetes registry exists; `registry.type` may be absent or `k8s`.
fn check_registry_type(config: &Config) -> anyhow::Result<()> {
    match config.string_or("registry.type", "k8s")?.as_str() {
        "k8s" => Ok(()),
        other => Err(anyhow!(
            "unsupported registry.type {other:?}: only \"k8s\" is implemented"
        )),
    }
}

/// The namespaces to discover in: those configured, else the own one. Each must be a namespace
/// name (a DNS-1123 label); read once at start.
fn discovery_namespaces(configured: Vec<String>, own: &str) -> Result<Vec<String>, String> {
    if configured.is_empty() {
        return Ok(vec![own.to_owned()]);
    }
    for name in &configured {
        let valid = (1..=63).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-');
        if !valid {
            return Err(format!(
                "{name:?} is not a namespace name (lower-case letters, digits and '-', at most 63)"
            ));
        }
    }
    Ok(configured)
}

/// Merges and watches the ConfigMaps selected by `remote.yaml`, if it selects any.
async fn attach_configmaps(
    config: &Config,
    kube: &kube::Client,
) -> anyhow::Result<Option<WatchHandle>> {
    let Some(settings) = config
        .remote_settings()
        .context("invalid remote config settings")?
    else {
        tracing::info!("no remote configuration source (config.type is not k8s)");
        return Ok(None);
    };
    let client = match settings.kubeconfig {
        Some(_) => settings.client().await?,
        None => kube.clone(),
    };
    let watch = config
        .attach_configmaps(client, &settings, CONFIG_DEBOUNCE)
        .await
        .with_context(|| {
            let selector = settings.label_selector.as_deref().unwrap_or("<none>");
            format!(
                "cannot load ConfigMaps of namespace {:?} with label selector {selector}",
                settings.namespace
            )
        })?;
    tracing::info!(
        "watching ConfigMaps of namespace {:?} for configuration changes",
        settings.namespace
    );
    Ok(Some(watch))
}

async fn bind(config: &Config, path: &str, default: &str) -> anyhow::Result<TcpListener> {
    let address = listen_addr(&config.string_or(path, default)?);
    TcpListener::bind(&address)
        .await
        .with_context(|| format!("cannot listen on {address} ({path})"))
}

/// Binds and starts the servers, registers, waits for a signal or a server failure, then
/// deregisters, reports NOT_SERVING and stops the servers.
async fn serve(
    ServiceSpec {
        name, api_packages, ..
    }: ServiceSpec,
    config: &Config,
    registrar: Registrar,
    servers: Servers,
) -> anyhow::Result<()> {
    let mut signals = Signals::install().context("cannot install signal handlers")?;
    let stop = CancellationToken::new();
    let (mut tasks, health, ports) = spawn_servers(config, servers, api_packages, &stop).await?;
    let instance = service_instance(name, registrar.pod(), host_ip(), &ports);
    if let Err(error) = registrar.register(&instance).await {
        stop.cancel();
        tasks.shutdown().await;
        let context = format!("cannot register {name} on pod {}", registrar.pod());
        return Err(anyhow!(error).context(context));
    }
    let outcome = tokio::select! {
        signal = signals.recv() => {
            tracing::info!("received {signal}, deregistering and stopping");
            Ok(())
        }
        Some(ended) = tasks.join_next() => Err(match ended {
            Ok(Ok(())) => anyhow!("a server stopped unexpectedly"),
            Ok(Err(error)) => error,
            Err(join) => anyhow!("a server task panicked: {join}"),
        }),
    };
    shut_down(&registrar, health, &stop, &mut tasks).await;
    outcome
}

type ServerTasks = JoinSet<anyhow::Result<()>>;

/// Binds `server.grpc.addr` (and `server.http.addr` when there is an HTTP router) and
/// spawns the servers; returns them, the health reporter and the `(scheme, port)` pairs to
/// register (HTTP first, as Go-Micro lists them).
async fn spawn_servers(
    config: &Config,
    servers: Servers,
    api_packages: &[&str],
    stop: &CancellationToken,
) -> anyhow::Result<(ServerTasks, HealthReporter, Vec<(&'static str, u16)>)> {
    let Servers {
        grpc: mut routes,
        http,
    } = servers;
    let health = grpc::add_standard_services(&mut routes, api_packages)?;
    let timeout = config.duration_or("server.grpc.timeout", Duration::from_secs(1))?;
    let grpc_listener = bind(config, "server.grpc.addr", ":9090").await?;
    let mut tasks = JoinSet::new();
    let mut ports = Vec::new();
    if let Some(router) = http {
        let listener = bind(config, "server.http.addr", ":8080").await?;
        tracing::info!("HTTP server listening on {}", listener.local_addr()?);
        ports.push(("http", listener.local_addr()?.port()));
        let http_stop = stop.clone().cancelled_owned();
        tasks.spawn(async move {
            let serving = axum::serve(listener, router).with_graceful_shutdown(http_stop);
            serving.await.context("HTTP server failed")
        });
    }
    tracing::info!("gRPC server listening on {}", grpc_listener.local_addr()?);
    ports.push(("grpc", grpc_listener.local_addr()?.port()));
    let grpc_stop = stop.clone().cancelled_owned();
    tasks.spawn(async move {
        let serving = grpc::serve(routes, grpc_listener, timeout, grpc_stop);
        serving.await.context("gRPC server failed")
    });
    Ok((tasks, health, ports))
}

/// Deregisters (bounded by the registrar), reports NOT_SERVING, then stops the servers
/// gracefully within [`STOP_TIMEOUT`].
async fn shut_down(
    registrar: &Registrar,
    mut health: HealthReporter,
    stop: &CancellationToken,
    tasks: &mut ServerTasks,
) {
    if let Err(error) = registrar.deregister().await {
        tracing::warn!("deregistration failed: {error}");
    }
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    // Dropping the status ends open health watches after they got NOT_SERVING, so they do
    // not hold the graceful stop open.
    health.clear_service_status("").await;
    stop.cancel();
    if tokio::time::timeout(STOP_TIMEOUT, drain(tasks))
        .await
        .is_err()
    {
        tracing::warn!("servers did not stop within {STOP_TIMEOUT:?}, exiting anyway");
    }
}

async fn drain(tasks: &mut ServerTasks) {
    while let Some(ended) = tasks.join_next().await {
        match ended {
            Ok(Err(error)) => tracing::warn!("{error:#}"),
            Err(join) => tracing::warn!("a server task failed: {join}"),
            Ok(Ok(())) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Repeating;
    impl std::fmt::Display for Repeating {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "kubeconfig: file not found: os error 2")
        }
    }
    impl std::error::Error for Repeating {}

    #[test]
    fn discovery_defaults_to_the_own_namespace_and_refuses_bad_names() {
        assert_eq!(
            discovery_namespaces(Vec::new(), "go-micro").unwrap(),
            ["go-micro"]
        );
        let configured = vec!["go-micro".to_string(), "shared-1".to_string()];
        assert_eq!(
            discovery_namespaces(configured.clone(), "go-micro").unwrap(),
            configured
        );
        for bad in ["", "Go-Micro", "-x", "a/b", &"n".repeat(64)] {
            let error = discovery_namespaces(vec![bad.to_string()], "go-micro").unwrap_err();
            assert!(error.contains("is not a namespace name"), "{bad}: {error}");
        }
    }

    #[test]
    fn repeated_causes_are_written_once() {
        let inner = anyhow::Error::new(std::io::Error::other("os error 2")).context(Repeating);
        let error = inner.context("cannot create the client");
        assert_eq!(
            describe(&error),
            "cannot create the client: kubeconfig: file not found: os error 2"
        );
    }
}
