//! A local cluster that outlives the command starting it: `harness up` spawns a detached
//! daemon (the harness's hidden `cluster-daemon` subcommand running [`serve`]) and returns
//! once `<state_dir>/cluster.json` appears; `harness down` stops it.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::signal::unix::{SignalKind, signal};

use crate::cleanup::cleanup_stale_locked;
use crate::cluster::{ClusterSpec, LocalCluster, keep_logs, remove_generated_files};
use crate::component::Component;
use crate::control;
use crate::files::{tail, write_atomically, write_public};
use crate::layout::StateLayout;
use crate::lock::{ClusterLock, TryLock, lock_file};
use crate::procfs;

/// How long `up` waits for the daemon's cluster to become ready.
const UP_TIMEOUT: Duration = Duration::from_secs(180);
/// How long `down` waits for the daemon to stop its cluster before SIGKILL.
const DOWN_TIMEOUT: Duration = Duration::from_secs(90);
/// How long `down` waits for a gone daemon's lock to be released.
const LOCK_RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// What `<state_dir>/cluster.json` records about a running daemon cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// Pid of the daemon.
    pub pid: u32,
    /// Start time of the daemon in clock ticks since boot (guards against pid reuse).
    pub pid_start_time: u64,
    /// Admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The kubectl built with the control plane.
    pub kubectl: PathBuf,
    /// API server URL.
    pub api_server: String,
    /// The node's containers through its containerd.
    pub runtime: crate::NodeRuntime,
}

impl ClusterInfo {
    fn is_live(&self) -> bool {
        procfs::is_same_process(self.pid as i32, self.pid_start_time)
    }
}

fn own_identity() -> anyhow::Result<(u32, u64)> {
    let pid = std::process::id();
    let start = procfs::start_time(pid as i32).context("reading this process's start time")?;
    Ok((pid, start))
}

fn read_daemon_pid(layout: &StateLayout) -> Option<(i32, u64)> {
    let text = std::fs::read_to_string(layout.daemon_pid_file()).ok()?;
    let (pid, start) = text.trim().split_once(' ')?;
    Some((pid.parse().ok()?, start.parse().ok()?))
}

/// The live daemon of `layout`, from daemon.pid or cluster.json.
fn live_daemon(layout: &StateLayout) -> Option<i32> {
    read_daemon_pid(layout)
        .filter(|(pid, start)| procfs::is_same_process(*pid, *start))
        .map(|(pid, _)| pid)
        .or_else(|| status(layout.root()).map(|info| info.pid as i32))
}

async fn shutdown_signal() -> anyhow::Result<&'static str> {
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut quit = signal(SignalKind::quit()).context("listening for SIGQUIT")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        _ = quit.recv() => "SIGQUIT",
    })
}

/// Body of the `cluster-daemon` subcommand: starts the cluster, writes
/// `<state_dir>/cluster.json`, runs until SIGTERM/SIGINT/SIGQUIT or a cluster failure, then
/// stops the cluster and removes the file.
pub async fn serve(spec: ClusterSpec) -> anyhow::Result<()> {
    let layout = StateLayout::new(&spec.state_dir);
    std::fs::create_dir_all(layout.root())
        .with_context(|| format!("creating {}", layout.root().display()))?;
    let (pid, start) = own_identity()?;
    write_public(&layout.daemon_pid_file(), &format!("{pid} {start}\n"))?;
    let result = serve_cluster(spec, &layout, pid, start).await;
    let _ = std::fs::remove_file(layout.cluster_info_file());
    let _ = std::fs::remove_file(layout.daemon_pid_file());
    if let Err(err) = &result {
        eprintln!("[local] cluster daemon failed: {err:#}");
    }
    result
}

async fn serve_cluster(
    spec: ClusterSpec,
    layout: &StateLayout,
    pid: u32,
    pid_start_time: u64,
) -> anyhow::Result<()> {
    // Listen before starting, so a signal during start-up still ends in a clean stop.
    let signal = shutdown_signal();
    tokio::pin!(signal);
    let cluster = tokio::select! {
        cluster = LocalCluster::start(spec) => cluster?,
        name = &mut signal => bail!("interrupted by {} during start-up", name?),
    };
    let info = ClusterInfo {
        pid,
        pid_start_time,
        kubeconfig: cluster.kubeconfig_path().to_path_buf(),
        kubectl: cluster.kubectl(),
        api_server: cluster.api_server_url(),
        runtime: cluster.runtime(),
    };
    write_atomically(
        &layout.cluster_info_file(),
        &serde_json::to_string_pretty(&info)?,
    )?;
    let control_socket = control::bind(&layout.control_socket())?;
    eprintln!("[local] cluster running; daemon pid {pid}");
    let outcome = loop {
        tokio::select! {
            name = &mut signal => {
                eprintln!("[local] {} received, stopping", name?);
                break Ok(());
            }
            err = cluster.failed() => break Err(err.context("the local cluster failed")),
            accepted = control_socket.accept() => match accepted {
                Ok((stream, _)) => control::handle(stream, &cluster).await,
                Err(err) => eprintln!("[local] control socket: {err}"),
            },
        }
    };
    let _ = std::fs::remove_file(layout.control_socket());
    let _ = std::fs::remove_file(layout.cluster_info_file());
    let stopped = cluster.stop().await;
    outcome.and(stopped)
}

/// Asks the running daemon of `state_dir` to SIGKILL `component` and start it again; returns
/// once the component is ready (fault injection from another process).
pub async fn restart(state_dir: &Path, component: Component) -> anyhow::Result<()> {
    if status(state_dir).is_none() {
        bail!(
            "no cluster daemon runs with state dir {}",
            state_dir.display()
        );
    }
    let socket = StateLayout::new(state_dir).control_socket();
    control::send(&socket, control::Request::Restart(component)).await
}

/// The running daemon cluster of `state_dir`, if its daemon is alive.
pub fn status(state_dir: &Path) -> Option<ClusterInfo> {
    let layout = StateLayout::new(state_dir);
    let text = std::fs::read_to_string(layout.cluster_info_file()).ok()?;
    let info: ClusterInfo = serde_json::from_str(&text).ok()?;
    info.is_live().then_some(info)
}

fn spawn_detached(
    layout: &StateLayout,
    exe: &Path,
    args: &[String],
) -> anyhow::Result<std::process::Child> {
    let log = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(layout.daemon_log())
        .with_context(|| format!("creating {}", layout.daemon_log().display()))?;
    let log_err = log.try_clone()?;
    let mut command = Command::new(exe);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    // SAFETY: setsid(2) is async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            nix::unistd::setsid()
                .map(drop)
                .map_err(std::io::Error::from)
        });
    }
    command
        .spawn()
        .with_context(|| format!("starting the cluster daemon {}", exe.display()))
}

/// `harness up`: returns the running cluster, or starts `exe args...` as a detached daemon
/// (output in `<state_dir>/daemon.log`) and waits until its cluster is ready.
pub async fn up(state_dir: &Path, exe: &Path, args: &[String]) -> anyhow::Result<ClusterInfo> {
    if let Some(info) = status(state_dir) {
        eprintln!("[local] cluster already running (daemon pid {})", info.pid);
        return Ok(info);
    }
    let layout = StateLayout::new(state_dir);
    std::fs::create_dir_all(layout.root())
        .with_context(|| format!("creating {}", layout.root().display()))?;
    let mut daemon = match live_daemon(&layout) {
        Some(pid) => {
            eprintln!("[local] a cluster daemon (pid {pid}) is starting; waiting for it");
            None
        }
        None => {
            let _ = std::fs::remove_file(layout.cluster_info_file());
            Some(spawn_detached(&layout, exe, args)?)
        }
    };
    let started = Instant::now();
    loop {
        if let Some(info) = status(state_dir) {
            eprintln!(
                "[local] cluster up in {:.1} s (daemon pid {}, log {})",
                started.elapsed().as_secs_f64(),
                info.pid,
                layout.daemon_log().display()
            );
            return Ok(info);
        }
        let exited = match daemon.as_mut() {
            Some(child) => child.try_wait()?.map(|status| status.to_string()),
            None => live_daemon(&layout).is_none().then(|| "gone".to_string()),
        };
        if let Some(status) = exited {
            bail!(
                "the cluster daemon exited ({status}) before the cluster was ready; last lines of {}:\n{}",
                layout.daemon_log().display(),
                tail(&layout.daemon_log(), 40)
            );
        }
        if started.elapsed() >= UP_TIMEOUT {
            if let Some(child) = &daemon {
                let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            }
            bail!(
                "the local cluster was not ready after {UP_TIMEOUT:?}; last lines of {}:\n{}",
                layout.daemon_log().display(),
                tail(&layout.daemon_log(), 40)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `harness down`: SIGTERMs the daemon and waits for it (SIGKILL after a deadline), then
/// removes any leftovers. Ok when nothing runs; an error if a cluster that is not a daemon
/// (e.g. a test's) holds the machine-wide lock.
pub async fn down(state_dir: &Path) -> anyhow::Result<()> {
    let layout = StateLayout::new(state_dir);
    if let Some(pid) = live_daemon(&layout) {
        eprintln!("[local] stopping the cluster daemon (pid {pid})");
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        if !procfs::wait_gone(pid, DOWN_TIMEOUT).await {
            eprintln!("[local] daemon {pid} still running after {DOWN_TIMEOUT:?}: SIGKILL");
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            procfs::wait_gone(pid, Duration::from_secs(10)).await;
        }
    }
    // A SIGKILLed daemon shows as a zombie before its last thread has exited and let go of
    // the lock: give it a moment.
    let deadline = Instant::now() + LOCK_RELEASE_TIMEOUT;
    let lock = loop {
        match ClusterLock::try_acquire(&lock_file(), state_dir)? {
            TryLock::Acquired(lock) => break lock,
            TryLock::Held(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            TryLock::Held(holder) => bail!(
                "a local cluster not started by `harness up` is running ({holder}); stop that \
                 process"
            ),
        }
    };
    let removed = cleanup_stale_locked(state_dir)?;
    if !removed.is_empty() {
        eprintln!("[local] removed leftovers: {}", removed.join(", "));
    }
    let _ = std::fs::remove_file(layout.cluster_info_file());
    let _ = std::fs::remove_file(layout.daemon_pid_file());
    let _ = std::fs::remove_file(layout.control_socket());
    if !keep_logs() {
        let _ = std::fs::remove_file(layout.daemon_log());
    }
    remove_generated_files(&layout, keep_logs())?;
    lock.release_and_remove()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_requires_a_live_daemon_with_the_recorded_start_time() {
        let dir = tempfile::tempdir().unwrap();
        let layout = StateLayout::new(dir.path());
        assert_eq!(status(dir.path()), None);
        let (pid, start) = own_identity().unwrap();
        let mut info = ClusterInfo {
            pid,
            pid_start_time: start,
            kubeconfig: "/k".into(),
            kubectl: "/kubectl".into(),
            api_server: "https://10.244.0.1:6443".into(),
            runtime: crate::NodeRuntime {
                ctr: "/ctr".into(),
                socket: "/s.sock".into(),
            },
        };
        write_atomically(
            &layout.cluster_info_file(),
            &serde_json::to_string(&info).unwrap(),
        )
        .unwrap();
        assert_eq!(status(dir.path()), Some(info.clone()));
        info.pid_start_time += 1;
        write_atomically(
            &layout.cluster_info_file(),
            &serde_json::to_string(&info).unwrap(),
        )
        .unwrap();
        assert_eq!(status(dir.path()), None, "a reused pid is not our daemon");
    }

    #[test]
    fn daemon_pid_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let layout = StateLayout::new(dir.path());
        assert_eq!(read_daemon_pid(&layout), None);
        std::fs::write(layout.daemon_pid_file(), "12 345\n").unwrap();
        assert_eq!(read_daemon_pid(&layout), Some((12, 345)));
    }

    #[tokio::test]
    async fn up_reports_a_daemon_that_dies_with_its_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        let err = up(
            dir.path(),
            Path::new("/bin/sh"),
            &["-c".into(), "echo daemon-broke >&2; exit 4".into()],
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("exited"), "{err}");
        assert!(err.contains("daemon-broke"), "{err}");
    }
}
