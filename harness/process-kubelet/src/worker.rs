//! One task per pod: sandbox (IP, netns, files), container processes, probes, restarts,
//! status reporting, graceful termination and the final delete.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, PodStatus, Probe, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use nix::sys::signal::Signal;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::CrashBackoff;
use crate::command::container_argv;
use crate::config::{KubeletConfig, LocalImage};
use crate::env::{EnvContext, EnvSources, container_env, referenced_objects};
use crate::ipam::IpAllocator;
use crate::logs::{LogState, LogWriter};
use crate::netns::{self, SandboxNames};
use crate::probes::{self, ProbeTarget, ProbeTracker};
use crate::records::{PodDir, ProcessRecord, SandboxRecord, write_atomic, write_json};
use crate::sandbox::{EnterExisting, ExtraMount, RootPlan, RootSpec, SERVICE_ACCOUNT_PATH};
use crate::server::{ContainerLogs, LogRegistry};
use crate::status::{ContainerView, PodView, RunState, Termination, build_status, merge_patch};
use crate::tokens;

/// Grace period used when the kubelet itself shuts down or a pod vanished from the API.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
const RETRY: Duration = Duration::from_secs(5);

/// State shared by all pod workers.
pub struct Shared {
    pub client: kube::Client,
    pub config: KubeletConfig,
    pub ipam: Mutex<IpAllocator>,
    pub logs: Arc<LogRegistry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProbeKind {
    Readiness,
    Liveness,
}

enum Event {
    Exited {
        index: usize,
        run: u64,
        code: i32,
        signal: Option<i32>,
    },
    Probed {
        index: usize,
        run: u64,
        kind: ProbeKind,
        result: Result<(), String>,
    },
}

struct Run {
    id: u64,
    record: ProcessRecord,
    started: Instant,
    started_at: Timestamp,
    probes: Vec<JoinHandle<()>>,
    readiness: Option<ProbeTracker>,
    liveness: Option<ProbeTracker>,
}

struct ContainerRt {
    spec: Container,
    image: Option<LocalImage>,
    state: RunState,
    last_termination: Option<Termination>,
    runs_started: u32,
    backoff: CrashBackoff,
    next_start: Option<Instant>,
    run: Option<Run>,
    log_state: watch::Sender<LogState>,
}

impl ContainerRt {
    fn restart_count(&self) -> u32 {
        self.runs_started.saturating_sub(1)
    }

    fn ready(&self) -> bool {
        self.run
            .as_ref()
            .is_some_and(|r| r.readiness.as_ref().is_none_or(ProbeTracker::passing))
    }

    fn wait(&mut self, reason: &str, message: Option<String>) {
        self.state = RunState::Waiting {
            reason: reason.to_owned(),
            message,
        };
        self.log_state
            .send_modify(|s| s.waiting_reason = Some(reason.to_owned()));
    }
}

struct Sandbox {
    names: SandboxNames,
    ip: Ipv4Addr,
    active: bool,
}

/// How the pod's life on this node ends.
enum Ending {
    /// `deletionTimestamp` set: graceful stop, then the final DELETE.
    Deleted(Duration),
    /// Gone from the API (force delete) or kubelet shutdown: stop, no DELETE.
    Abandoned,
}

struct PodWorker {
    shared: Arc<Shared>,
    pod: Pod,
    uid: String,
    namespace: String,
    name: String,
    dir: PodDir,
    sandbox: Option<Sandbox>,
    containers: Vec<ContainerRt>,
    start_time: Timestamp,
    token_refresh: Option<Instant>,
    status_retry: Option<Instant>,
    last_status: Option<(serde_json::Value, PodStatus)>,
    next_run: u64,
    events_tx: mpsc::UnboundedSender<Event>,
    events: mpsc::UnboundedReceiver<Event>,
}

/// Drives one pod until it is deleted, vanishes or the kubelet shuts down.
pub async fn run_pod(
    shared: Arc<Shared>,
    mut updates: watch::Receiver<Option<Pod>>,
    shutdown: CancellationToken,
) {
    let Some(pod) = updates.borrow_and_update().clone() else {
        return;
    };
    let mut worker = PodWorker::new(shared, pod);
    let ending = worker.drive(&mut updates, &shutdown).await;
    worker.finish(ending, &shutdown).await;
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn deletion_grace(pod: &Pod) -> Option<Duration> {
    pod.metadata.deletion_timestamp.as_ref()?;
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| pod.spec.as_ref()?.termination_grace_period_seconds)
        .unwrap_or(30);
    Some(Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
}

impl PodWorker {
    fn new(shared: Arc<Shared>, pod: Pod) -> Self {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let dir = PodDir::new(&shared.config.state_dir, &uid);
        let containers = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .map(|spec| ContainerRt {
                image: spec
                    .image
                    .as_ref()
                    .and_then(|i| shared.config.images.get(i))
                    .cloned(),
                spec: spec.clone(),
                state: RunState::Waiting {
                    reason: "ContainerCreating".into(),
                    message: None,
                },
                last_termination: None,
                runs_started: 0,
                backoff: CrashBackoff::default(),
                next_start: None,
                run: None,
                log_state: watch::Sender::new(LogState::default()),
            })
            .collect();
        let start_time = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map_or_else(Timestamp::now, |t| t.0);
        let (events_tx, events) = mpsc::unbounded_channel();
        Self {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            shared,
            pod,
            uid,
            dir,
            sandbox: None,
            containers,
            start_time,
            token_refresh: None,
            status_retry: None,
            last_status: None,
            next_run: 0,
            events_tx,
            events,
        }
    }

    fn config(&self) -> &KubeletConfig {
        &self.shared.config
    }

    /// Runs the pod until its ending is known.
    async fn drive(
        &mut self,
        updates: &mut watch::Receiver<Option<Pod>>,
        shutdown: &CancellationToken,
    ) -> Ending {
        if let Some(grace) = deletion_grace(&self.pod) {
            return Ending::Deleted(grace);
        }
        let idle = is_terminal(&self.pod);
        if !idle {
            self.register_logs();
            loop {
                match self.setup_sandbox().await {
                    Ok(()) => break,
                    Err(err) => {
                        tracing::warn!(pod = %self.key(), err = format!("{err:#}"), "pod sandbox setup failed; retrying");
                        self.teardown_sandbox();
                        for c in &mut self.containers {
                            c.wait("ContainerCreating", Some(format!("{err:#}")));
                        }
                        self.report_status().await;
                    }
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return Ending::Abandoned,
                    changed = updates.changed() => match self.take_update(changed, updates) {
                        Some(ending) => return ending,
                        None => continue,
                    },
                    _ = tokio::time::sleep(RETRY) => {}
                }
            }
            for index in 0..self.containers.len() {
                self.start_container(index).await;
            }
        }
        loop {
            if !idle {
                self.start_due_containers().await;
                self.refresh_token_if_due().await;
                self.teardown_if_finished();
                self.report_status().await;
            }
            let wake = self.next_wake();
            tokio::select! {
                _ = shutdown.cancelled() => return Ending::Abandoned,
                changed = updates.changed() => {
                    if let Some(ending) = self.take_update(changed, updates) {
                        return ending;
                    }
                }
                Some(event) = self.events.recv() => self.handle(event),
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn take_update(
        &mut self,
        changed: Result<(), watch::error::RecvError>,
        updates: &mut watch::Receiver<Option<Pod>>,
    ) -> Option<Ending> {
        if changed.is_err() {
            return Some(Ending::Abandoned);
        }
        match updates.borrow_and_update().clone() {
            None => Some(Ending::Abandoned),
            Some(pod) => {
                let grace = deletion_grace(&pod);
                self.pod = pod;
                grace.map(Ending::Deleted)
            }
        }
    }

    fn next_wake(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        self.containers
            .iter()
            .filter_map(|c| c.next_start)
            .chain(self.token_refresh)
            .chain(self.status_retry)
            .fold(far, Instant::min)
    }

    fn register_logs(&self) {
        let containers = self
            .containers
            .iter()
            .map(|c| {
                let logs = ContainerLogs {
                    dir: self.dir.container(&c.spec.name),
                    state: c.log_state.subscribe(),
                };
                (c.spec.name.clone(), logs)
            })
            .collect();
        self.shared
            .logs
            .insert(&self.namespace, &self.name, &self.uid, containers);
    }

    async fn setup_sandbox(&mut self) -> anyhow::Result<()> {
        std::fs::create_dir_all(self.dir.root())?;
        std::fs::create_dir_all(self.dir.etc())?;
        let ip = self.shared.ipam.lock().expect("ipam lock").allocate()?;
        let names = SandboxNames::for_uid(&self.uid);
        self.sandbox = Some(Sandbox {
            names: names.clone(),
            ip,
            active: true,
        });
        let record = SandboxRecord {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            netns: names.netns.clone(),
            veth: names.veth.clone(),
            ip,
        };
        write_json(&self.dir.sandbox_record(), &record)?;
        let (bridge, prefix) = (
            self.config().bridge.clone(),
            self.config().pod_cidr.prefix_len(),
        );
        tokio::task::spawn_blocking(move || netns::create(&names, &bridge, ip, prefix)).await??;
        write_atomic(
            &self.dir.etc().join("hosts"),
            self.hosts_file(ip).as_bytes(),
            0o644,
        )?;
        write_atomic(
            &self.dir.etc().join("hostname"),
            format!("{}\n", self.name).as_bytes(),
            0o644,
        )?;
        if tokens::wants_token(&self.pod) {
            self.write_token().await?;
        }
        Ok(())
    }

    fn hosts_file(&self, ip: Ipv4Addr) -> String {
        let mut hosts = format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{ip}\t{}\n",
            self.name
        );
        if self.config().api_server_host.parse::<Ipv4Addr>().is_ok() {
            hosts.push_str(&format!(
                "{}\tkubernetes kubernetes.default kubernetes.default.svc kubernetes.default.svc.cluster.local\n",
                self.config().api_server_host
            ));
        }
        hosts
    }

    async fn write_token(&mut self) -> anyhow::Result<()> {
        let issued = Timestamp::now();
        let (token, expires) = tokens::request_token(&self.shared.client, &self.pod).await?;
        tokens::write_files(
            &self.dir.service_account(),
            &token,
            &self.config().ca_cert_pem,
            &self.namespace,
        )?;
        self.token_refresh = Some(Instant::now() + tokens::refresh_after(issued, expires));
        Ok(())
    }

    async fn refresh_token_if_due(&mut self) {
        if self.token_refresh.is_some_and(|t| t <= Instant::now())
            && let Err(err) = self.write_token().await
        {
            tracing::warn!(pod = %self.key(), err = format!("{err:#}"), "token refresh failed");
            self.token_refresh = Some(Instant::now() + RETRY);
        }
    }

    async fn env_sources(&self, container: &Container) -> anyhow::Result<EnvSources> {
        let (config_maps, secrets) = referenced_objects(container);
        let mut sources = EnvSources::default();
        let cm_api: Api<ConfigMap> = Api::namespaced(self.shared.client.clone(), &self.namespace);
        for name in config_maps {
            if let Some(cm) = cm_api.get_opt(&name).await? {
                sources
                    .config_maps
                    .insert(name, cm.data.unwrap_or_default());
            }
        }
        let secret_api: Api<Secret> = Api::namespaced(self.shared.client.clone(), &self.namespace);
        for name in secrets {
            if let Some(secret) = secret_api.get_opt(&name).await? {
                let data = secret.data.unwrap_or_default().into_iter();
                let data = data
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .collect();
                sources.secrets.insert(name, data);
            }
        }
        Ok(sources)
    }

    async fn start_due_containers(&mut self) {
        let now = Instant::now();
        for index in 0..self.containers.len() {
            if self.containers[index].next_start.is_some_and(|t| t <= now) {
                self.containers[index].next_start = None;
                self.start_container(index).await;
            }
        }
    }

    /// Starts a run of container `index` or records why it cannot start.
    async fn start_container(&mut self, index: usize) {
        let Some(sandbox) = self.sandbox.as_ref().filter(|s| s.active) else {
            return;
        };
        let pod_ip = sandbox.ip;
        let netns_path = sandbox.names.netns_path();
        let spec = self.containers[index].spec.clone();
        let image_name = spec.image.clone().unwrap_or_default();
        let Some(image) = self.containers[index].image.clone() else {
            let message = format!("image {image_name} is not in the local image map");
            self.containers[index].wait("ErrImagePull", Some(message));
            return;
        };
        let prepared = self.prepare_run(&spec, &image, pod_ip, &netns_path).await;
        let (argv, env, plan) = match prepared {
            Ok(p) => p,
            Err((reason, err)) => {
                self.containers[index].wait(reason, Some(format!("{err:#}")));
                self.containers[index].next_start = Some(Instant::now() + RETRY);
                return;
            }
        };
        let key = self.key();
        let c = &mut self.containers[index];
        let log_dir = self.dir.container(&spec.name);
        let writer = match LogWriter::create(&log_dir, c.runs_started, c.log_state.clone()).await {
            Ok(w) => Arc::new(w),
            Err(err) => {
                c.wait(
                    "RunContainerError",
                    Some(format!("cannot create log file: {err}")),
                );
                c.next_start = Some(Instant::now() + RETRY);
                return;
            }
        };
        let mut command = tokio::process::Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(false);
        let plan = Arc::new(plan);
        let child_plan = plan.clone();
        // SAFETY: `enter` only makes system calls on data prepared before fork.
        unsafe {
            command.pre_exec(move || child_plan.enter());
        }
        let spawned = command.spawn();
        drop(plan);
        let mut child = match spawned {
            Ok(child) => child,
            Err(err) => {
                let detail =
                    std::fs::read_to_string(log_dir.join("setup-error")).unwrap_or_default();
                let message = if detail.is_empty() {
                    format!("{err}")
                } else {
                    format!("{detail}: {err}")
                };
                tracing::warn!(pod = %key, container = %spec.name, %message, "container start failed");
                writer.finish().await;
                let delay = c.backoff.next_delay(Duration::ZERO);
                c.wait("RunContainerError", Some(message));
                c.next_start = Some(Instant::now() + delay.max(Duration::from_secs(1)));
                return;
            }
        };
        let pid = child.id().unwrap_or_default();
        let record = ProcessRecord::of(pid).unwrap_or(ProcessRecord { pid, start_time: 0 });
        if let Err(err) = write_json(&self.dir.pid_file(&spec.name), &record) {
            tracing::warn!(%err, "cannot record container pid");
        }
        let run_id = self.next_run;
        self.next_run += 1;
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            let pumps = {
                let writer = writer.clone();
                async move {
                    let out = async {
                        if let Some(s) = stdout {
                            writer.pump(s, "stdout").await;
                        }
                    };
                    let err = async {
                        if let Some(s) = stderr {
                            writer.pump(s, "stderr").await;
                        }
                    };
                    tokio::join!(out, err);
                }
            };
            let pumps = tokio::spawn(pumps);
            let status = child.wait().await;
            // Background children may hold the pipes open; do not wait for them forever.
            let _ = tokio::time::timeout(Duration::from_secs(2), pumps).await;
            writer.finish().await;
            use std::os::unix::process::ExitStatusExt;
            let (code, signal) = match status {
                Ok(s) => (
                    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
                    s.signal(),
                ),
                Err(_) => (255, None),
            };
            let _ = events.send(Event::Exited {
                index,
                run: run_id,
                code,
                signal,
            });
        });
        let c = &mut self.containers[index];
        c.runs_started += 1;
        let started_at = Timestamp::now();
        c.state = RunState::Running { started_at, pid };
        let exec = EnterExisting::prepare(pid, &self.dir.root(), &working_dir(&spec, &image))
            .ok()
            .map(Arc::new);
        let target = ProbeTarget {
            pod_ip,
            pod_cidr: self.shared.config.pod_cidr,
            container: spec.clone(),
            env,
            exec,
        };
        let mut run = Run {
            id: run_id,
            record,
            started: Instant::now(),
            started_at,
            probes: Vec::new(),
            readiness: spec
                .readiness_probe
                .as_ref()
                .map(|p| ProbeTracker::new(p, false)),
            liveness: spec
                .liveness_probe
                .as_ref()
                .map(|p| ProbeTracker::new(p, true)),
        };
        for (probe, kind) in [
            (&spec.readiness_probe, ProbeKind::Readiness),
            (&spec.liveness_probe, ProbeKind::Liveness),
        ] {
            if let Some(probe) = probe {
                let task = probe_loop(
                    probe.clone(),
                    target.clone(),
                    kind,
                    index,
                    run_id,
                    self.events_tx.clone(),
                );
                run.probes.push(tokio::spawn(task));
            }
        }
        tracing::info!(pod = %self.key(), container = %spec.name, pid, argv = ?argv, "container started");
        self.containers[index].run = Some(run);
    }

    async fn prepare_run(
        &self,
        spec: &Container,
        image: &LocalImage,
        pod_ip: Ipv4Addr,
        netns_path: &std::path::Path,
    ) -> Result<(Vec<String>, Vec<(String, String)>, RootPlan), (&'static str, anyhow::Error)> {
        let config_error = |e: anyhow::Error| ("CreateContainerConfigError", e);
        let sources = self.env_sources(spec).await.map_err(config_error)?;
        let ctx = EnvContext {
            pod: &self.pod,
            pod_ip,
            host_ip: self.config().node_ip,
            api_server_host: &self.config().api_server_host,
            api_server_port: self.config().api_server_port,
            image_env: &image.env,
        };
        let env = container_env(spec, &ctx, &sources).map_err(|e| config_error(e.into()))?;
        let argv =
            container_argv(spec, image, &env).map_err(|e| ("CreateContainerError", e.into()))?;
        let mut mounts = vec![ExtraMount {
            source: image.root.clone(),
            target: image.mount_path.clone(),
            read_only: true,
        }];
        if tokens::wants_token(&self.pod) {
            let source = self.dir.service_account();
            mounts.push(ExtraMount {
                source,
                target: SERVICE_ACCOUNT_PATH.into(),
                read_only: true,
            });
        }
        let root_spec = RootSpec {
            root: self.dir.root(),
            hosts_file: self.dir.etc().join("hosts"),
            hostname_file: self.dir.etc().join("hostname"),
            mounts,
            hostname: self.name.clone(),
            working_dir: working_dir(spec, image),
        };
        let log_dir = self.dir.container(&spec.name);
        std::fs::create_dir_all(&log_dir).map_err(|e| ("CreateContainerError", e.into()))?;
        let plan = RootPlan::prepare(&root_spec, netns_path, &log_dir.join("setup-error"))
            .map_err(|e| ("CreateContainerError", e.into()))?;
        Ok((argv, env, plan))
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Exited {
                index,
                run,
                code,
                signal,
            } => self.on_exit(index, run, code, signal),
            Event::Probed {
                index,
                run,
                kind,
                result,
            } => self.on_probe(index, run, kind, result),
        }
    }

    fn on_exit(&mut self, index: usize, run_id: u64, code: i32, signal: Option<i32>) {
        let policy = self.restart_policy();
        let key = self.key();
        let c = &mut self.containers[index];
        if c.run.as_ref().is_none_or(|r| r.id != run_id) {
            return;
        }
        let run = c.run.take().expect("checked above");
        run.probes.iter().for_each(JoinHandle::abort);
        let _ = std::fs::remove_file(self.dir.pid_file(&c.spec.name));
        let termination = Termination {
            exit_code: code,
            signal,
            started_at: run.started_at,
            finished_at: Timestamp::now(),
            pid: run.record.pid,
        };
        tracing::info!(pod = %key, container = %c.spec.name, code, "container exited");
        let restart = match policy.as_str() {
            "Always" => true,
            "OnFailure" => code != 0,
            _ => false,
        };
        if !restart {
            c.state = RunState::Terminated(termination);
            return;
        }
        let delay = c.backoff.next_delay(run.started.elapsed());
        c.last_termination = Some(termination);
        if delay.is_zero() {
            c.state = RunState::Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            };
        } else {
            let message = format!(
                "back-off {}s restarting failed container={} pod={}_{}({})",
                delay.as_secs(),
                c.spec.name,
                self.name,
                self.namespace,
                self.uid
            );
            c.wait("CrashLoopBackOff", Some(message));
        }
        c.next_start = Some(Instant::now() + delay);
    }

    fn on_probe(&mut self, index: usize, run_id: u64, kind: ProbeKind, result: Result<(), String>) {
        let grace = self.termination_grace();
        let c = &mut self.containers[index];
        let Some(run) = c.run.as_mut().filter(|r| r.id == run_id) else {
            return;
        };
        if let Err(message) = &result {
            tracing::debug!(container = %c.spec.name, ?kind, %message, "probe failed");
        }
        let tracker = match kind {
            ProbeKind::Readiness => run.readiness.as_mut(),
            ProbeKind::Liveness => run.liveness.as_mut(),
        };
        let Some(tracker) = tracker else { return };
        if tracker.record(result.is_ok()) && kind == ProbeKind::Liveness && !tracker.passing() {
            tracing::info!(container = %c.spec.name, "liveness probe failed; killing container");
            stop_process(run.record, grace);
        }
    }

    fn restart_policy(&self) -> String {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into())
    }

    fn termination_grace(&self) -> Duration {
        let secs = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30);
        Duration::from_secs(u64::try_from(secs).unwrap_or(0))
    }

    /// Tears the sandbox down once no container will run again (terminal pods).
    fn teardown_if_finished(&mut self) {
        let finished = self
            .containers
            .iter()
            .all(|c| matches!(c.state, RunState::Terminated(_)));
        if finished && self.sandbox.as_ref().is_some_and(|s| s.active) {
            self.teardown_sandbox();
        }
    }

    fn teardown_sandbox(&mut self) {
        if let Some(sandbox) = self.sandbox.as_mut().filter(|s| s.active) {
            netns::delete(&sandbox.names);
            self.shared
                .ipam
                .lock()
                .expect("ipam lock")
                .release(sandbox.ip);
            sandbox.active = false;
            self.token_refresh = None;
        }
    }

    fn views(&self) -> Vec<ContainerView> {
        self.containers
            .iter()
            .map(|c| ContainerView {
                name: c.spec.name.clone(),
                image: c.spec.image.clone().unwrap_or_default(),
                image_id: c
                    .image
                    .as_ref()
                    .map(|i| format!("local://{}", i.root.display()))
                    .unwrap_or_default(),
                state: c.state.clone(),
                last_termination: c.last_termination.clone(),
                restart_count: i32::try_from(c.restart_count()).unwrap_or(i32::MAX),
                ready: c.ready(),
            })
            .collect()
    }

    async fn report_status(&mut self) {
        let views = self.views();
        let restart_policy = self.restart_policy();
        let previous = self
            .last_status
            .as_ref()
            .map(|(_, s)| s)
            .or(self.pod.status.as_ref());
        let status = build_status(&PodView {
            containers: &views,
            restart_policy: &restart_policy,
            pod_ip: self.sandbox.as_ref().map(|s| s.ip),
            host_ip: self.config().node_ip,
            start_time: self.start_time,
            sandbox_ready: self.sandbox.as_ref().is_some_and(|s| s.active),
            previous,
            now: Timestamp::now(),
        });
        let patch = merge_patch(&status);
        if self
            .last_status
            .as_ref()
            .is_some_and(|(sent, _)| *sent == patch)
        {
            return;
        }
        let pods: Api<Pod> = Api::namespaced(self.shared.client.clone(), &self.namespace);
        match pods
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                self.status_retry = None;
                self.last_status = Some((patch, status));
            }
            Err(err) => {
                tracing::warn!(pod = %self.key(), %err, "cannot update pod status");
                self.status_retry = Some(Instant::now() + Duration::from_secs(1));
            }
        }
    }

    /// Stops every container (SIGTERM, grace, SIGKILL), removes the sandbox and files, and
    /// for deleted pods issues the final DELETE.
    async fn finish(&mut self, ending: Ending, shutdown: &CancellationToken) {
        let grace = match ending {
            Ending::Deleted(grace) if !shutdown.is_cancelled() => grace,
            _ => SHUTDOWN_GRACE,
        };
        self.stop_all(grace).await;
        self.teardown_sandbox();
        self.shared
            .logs
            .remove(&self.namespace, &self.name, &self.uid);
        if let Err(err) = std::fs::remove_dir_all(&self.dir.0)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(pod = %self.key(), %err, "cannot remove pod directory");
        }
        if matches!(ending, Ending::Deleted(_)) && !shutdown.is_cancelled() {
            self.final_delete().await;
        }
    }

    async fn stop_all(&mut self, grace: Duration) {
        let running: Vec<ProcessRecord> = self
            .containers
            .iter()
            .filter_map(|c| c.run.as_ref().map(|r| r.record))
            .collect();
        if running.is_empty() {
            return;
        }
        tracing::info!(pod = %self.key(), ?grace, "stopping containers");
        for record in &running {
            record.signal(Signal::SIGTERM, false);
        }
        let deadline = Instant::now() + grace;
        let mut killed = false;
        while self.containers.iter().any(|c| c.run.is_some()) {
            let wait_until = if killed {
                Instant::now() + Duration::from_secs(5)
            } else {
                deadline
            };
            match tokio::time::timeout_at(wait_until, self.events.recv()).await {
                Ok(Some(Event::Exited {
                    index,
                    run,
                    code,
                    signal,
                })) => self.on_stopped(index, run, code, signal),
                Ok(Some(Event::Probed { .. })) => {}
                Ok(None) => break,
                Err(_) if killed => break,
                Err(_) => {
                    for c in &self.containers {
                        if let Some(run) = &c.run {
                            run.record.signal(Signal::SIGKILL, true);
                        }
                    }
                    killed = true;
                }
            }
        }
        for c in &self.containers {
            if let Some(run) = &c.run {
                run.record.signal(Signal::SIGKILL, true);
            }
        }
    }

    fn on_stopped(&mut self, index: usize, run_id: u64, code: i32, signal: Option<i32>) {
        let c = &mut self.containers[index];
        if let Some(run) = c.run.take_if(|r| r.id == run_id) {
            run.probes.iter().for_each(JoinHandle::abort);
            // Kill whatever the container left in its process group.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(run.record.pid as i32),
                Signal::SIGKILL,
            );
            c.state = RunState::Terminated(Termination {
                exit_code: code,
                signal,
                started_at: run.started_at,
                finished_at: Timestamp::now(),
                pid: run.record.pid,
            });
        }
    }

    async fn final_delete(&self) {
        let pods: Api<Pod> = Api::namespaced(self.shared.client.clone(), &self.namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match pods.delete(&self.name, &params).await {
            Ok(_) => tracing::info!(pod = %self.key(), "pod deleted"),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(err) => tracing::warn!(pod = %self.key(), %err, "final pod delete failed"),
        }
    }
}

fn working_dir(spec: &Container, image: &LocalImage) -> PathBuf {
    spec.working_dir
        .as_ref()
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| image.working_dir.clone())
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// SIGTERM now, SIGKILL to the group after `grace` if the same process still runs.
fn stop_process(record: ProcessRecord, grace: Duration) {
    record.signal(Signal::SIGTERM, false);
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        record.signal(Signal::SIGKILL, true);
    });
}

async fn probe_loop(
    probe: Probe,
    target: ProbeTarget,
    kind: ProbeKind,
    index: usize,
    run: u64,
    events: mpsc::UnboundedSender<Event>,
) {
    let (delay, period, timeout) = probes::timing(&probe);
    tokio::time::sleep(delay).await;
    loop {
        let result = probes::run_once(&probe, &target, timeout).await;
        if events
            .send(Event::Probed {
                index,
                run,
                kind,
                result,
            })
            .is_err()
        {
            return;
        }
        tokio::time::sleep(period).await;
    }
}
