//! Component child processes: spawned from one long-lived thread (so `PR_SET_PDEATHSIG`,
//! which fires when the *spawning thread* exits, only fires when the cluster object is gone),
//! each in its own process group with a scrubbed environment, a log file and a pid file.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, watch};

use crate::component::Component;
use crate::files::{tail, write_public};
use crate::procfs;

type SpawnRequest = (Command, oneshot::Sender<io::Result<Child>>);

/// A dedicated thread that forks every component process.
pub(crate) struct Spawner {
    requests: Option<std::sync::mpsc::Sender<SpawnRequest>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Spawner {
    /// Starts the spawner thread bound to the current tokio runtime.
    pub(crate) fn start() -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Handle::current();
        let (requests, inbox) = std::sync::mpsc::channel::<SpawnRequest>();
        let thread = std::thread::Builder::new()
            .name("gmc-spawner".into())
            .spawn(move || {
                let _runtime = runtime.enter();
                for (mut command, reply) in inbox {
                    let _ = reply.send(command.spawn());
                }
            })
            .context("starting the spawner thread")?;
        Ok(Self {
            requests: Some(requests),
            thread: Some(thread),
        })
    }

    async fn spawn(&self, command: Command) -> io::Result<Child> {
        let (reply, answer) = oneshot::channel();
        let gone = || io::Error::other("the spawner thread is gone");
        self.requests
            .as_ref()
            .ok_or_else(gone)?
            .send((command, reply))
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What to run for one component.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    /// Which component.
    pub component: Component,
    /// Absolute path of the binary.
    pub program: PathBuf,
    /// Its flags.
    pub args: Vec<String>,
    /// Log file (stdout and stderr, appended).
    pub log: PathBuf,
    /// HOME (and working directory) of the process.
    pub home: PathBuf,
    /// Pid file for `cleanup_stale`.
    pub pid_file: PathBuf,
}

/// PATH given to component processes.
const SCRUBBED_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn command(launch: &Launch) -> anyhow::Result<Command> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&launch.log)
        .with_context(|| format!("opening {}", launch.log.display()))?;
    let log_err = log.try_clone().context("duplicating the log handle")?;
    std::fs::create_dir_all(&launch.home)
        .with_context(|| format!("creating {}", launch.home.display()))?;
    let mut command = Command::new(&launch.program);
    command
        .args(&launch.args)
        .env_clear()
        .env("PATH", SCRUBBED_PATH)
        .env("HOME", &launch.home)
        .current_dir(&launch.home)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0)
        .kill_on_drop(false);
    // SAFETY: the closure only calls prctl(2), which is async-signal-safe.
    unsafe {
        command
            .pre_exec(|| nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from));
    }
    Ok(command)
}

/// Contents of a pid file: pid and program path.
pub(crate) fn pid_file_contents(pid: i32, program: &Path) -> String {
    format!("{pid}\n{}\n", program.display())
}

/// Parses a pid file written by [`pid_file_contents`].
pub(crate) fn parse_pid_file(text: &str) -> Option<(i32, PathBuf)> {
    let mut lines = text.lines();
    let pid = lines.next()?.trim().parse().ok()?;
    let program = PathBuf::from(lines.next()?.trim());
    Some((pid, program))
}

/// Records the cluster's first failure (later ones are dropped: the first is the cause).
pub(crate) fn report_failure(
    failures: &watch::Sender<Option<String>>,
    message: impl FnOnce() -> String,
) {
    failures.send_if_modified(|first| {
        if first.is_some() {
            return false;
        }
        *first = Some(message());
        true
    });
}

fn signal_group(pid: i32, signal: Signal) {
    // ESRCH (already gone) is fine.
    let _ = killpg(Pid::from_raw(pid), signal);
}

/// A cheap, cloneable view of a component process: which one, its log, whether it exited.
#[derive(Clone)]
pub(crate) struct ProcessWatch {
    component: Component,
    log: PathBuf,
    exit: watch::Receiver<Option<ExitStatus>>,
}

impl ProcessWatch {
    /// Which component this is.
    pub(crate) fn component(&self) -> Component {
        self.component
    }

    /// Its log file.
    pub(crate) fn log(&self) -> &Path {
        &self.log
    }

    /// The exit status once it has exited.
    pub(crate) fn exit_status(&self) -> Option<ExitStatus> {
        *self.exit.borrow()
    }

    async fn wait_exit(&mut self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.exit.wait_for(Option::is_some))
            .await
            .is_ok()
    }
}

/// A running component process, reaped by a background task.
pub(crate) struct ManagedProcess {
    pid: i32,
    pid_file: PathBuf,
    watch: ProcessWatch,
    exit_expected: Arc<AtomicBool>,
}

impl ManagedProcess {
    /// Spawns `launch` through `spawner`; an unexpected exit is reported once on `failures`.
    pub(crate) async fn launch(
        spawner: &Spawner,
        launch: &Launch,
        failures: watch::Sender<Option<String>>,
    ) -> anyhow::Result<Self> {
        let mut child = spawner
            .spawn(command(launch)?)
            .await
            .with_context(|| format!("starting {}", launch.program.display()))?;
        let pid = child.id().context("spawned child has no pid")? as i32;
        write_public(&launch.pid_file, &pid_file_contents(pid, &launch.program))?;
        let (exit_tx, exit) = watch::channel(None);
        let exit_expected = Arc::new(AtomicBool::new(false));
        let expected = exit_expected.clone();
        let (component, log) = (launch.component, launch.log.clone());
        tokio::spawn(async move {
            let status = child.wait().await;
            let status = match status {
                Ok(status) => status,
                Err(_) => return,
            };
            let _ = exit_tx.send(Some(status));
            if !expected.load(Ordering::SeqCst) {
                report_failure(&failures, || {
                    format!(
                        "{component} exited unexpectedly ({status}); last log lines of {}:\n{}",
                        log.display(),
                        tail(&log, 20)
                    )
                });
            }
        });
        Ok(Self {
            pid,
            pid_file: launch.pid_file.clone(),
            watch: ProcessWatch {
                component: launch.component,
                log: launch.log.clone(),
                exit,
            },
            exit_expected,
        })
    }

    /// A view for waiting on this process without holding it.
    pub(crate) fn watch(&self) -> ProcessWatch {
        self.watch.clone()
    }

    fn exit_status(&self) -> Option<ExitStatus> {
        self.watch.exit_status()
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL; removes the pid file.
    pub(crate) async fn terminate(mut self, grace: Duration) {
        self.exit_expected.store(true, Ordering::SeqCst);
        if self.exit_status().is_none() {
            signal_group(self.pid, Signal::SIGTERM);
            if !self.watch.wait_exit(grace).await {
                signal_group(self.pid, Signal::SIGKILL);
                self.watch.wait_exit(Duration::from_secs(10)).await;
            }
        }
        let _ = std::fs::remove_file(&self.pid_file);
    }

    /// SIGKILL right away and wait until reaped; removes the pid file.
    pub(crate) async fn kill(mut self) {
        self.exit_expected.store(true, Ordering::SeqCst);
        if self.exit_status().is_none() {
            signal_group(self.pid, Signal::SIGKILL);
            self.watch.wait_exit(Duration::from_secs(10)).await;
        }
        let _ = std::fs::remove_file(&self.pid_file);
    }

    /// Synchronous SIGKILL for drop paths (not reaped here; the pid file stays for
    /// `cleanup_stale` to verify).
    pub(crate) fn kill_now(&self) {
        self.exit_expected.store(true, Ordering::SeqCst);
        if self.exit_status().is_none() && procfs::is_alive(self.pid) {
            signal_group(self.pid, Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_file_round_trips() {
        let text = pid_file_contents(42, Path::new("/bin/etcd"));
        assert_eq!(
            parse_pid_file(&text),
            Some((42, PathBuf::from("/bin/etcd")))
        );
        assert_eq!(parse_pid_file("x\n/bin/etcd\n"), None);
        assert_eq!(parse_pid_file("42\n"), None);
    }

    fn sleeper(dir: &Path, script: &str) -> Launch {
        Launch {
            component: Component::Scheduler,
            program: PathBuf::from("/bin/sh"),
            args: vec!["-c".into(), script.into()],
            log: dir.join("p.log"),
            home: dir.join("home"),
            pid_file: dir.join("p.pid"),
        }
    }

    #[tokio::test]
    async fn child_gets_a_scrubbed_env_and_its_own_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let spawner = Spawner::start().unwrap();
        let (failures, _) = watch::channel(None);
        let launch = sleeper(dir.path(), "env; exec sleep 30");
        let process = ManagedProcess::launch(&spawner, &launch, failures)
            .await
            .unwrap();
        let pid = process.pid;
        let (recorded, program) =
            parse_pid_file(&std::fs::read_to_string(&launch.pid_file).unwrap()).unwrap();
        assert_eq!((recorded, program.as_path()), (pid, Path::new("/bin/sh")));
        // Wait for the script to reach `exec sleep` (its argv changes).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while procfs::cmdline(pid).is_some_and(|argv| argv[0] != "sleep") {
            assert!(
                std::time::Instant::now() < deadline,
                "script did not exec sleep"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let log = std::fs::read_to_string(&launch.log).unwrap();
        // cargo runs tests with CARGO_* variables set: none may reach the child.
        assert!(!log.contains("CARGO_"), "{log}");
        assert!(
            log.contains(&format!("HOME={}", launch.home.display())),
            "{log}"
        );
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 1..];
        let pgrp: i32 = after_name
            .split_whitespace()
            .nth(2)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(pgrp, pid, "child must lead its own process group");
        process.terminate(Duration::from_secs(5)).await;
        assert!(!procfs::is_alive(pid));
        assert!(!launch.pid_file.exists());
    }

    #[tokio::test]
    async fn unexpected_exit_is_reported_once_with_the_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        let spawner = Spawner::start().unwrap();
        let (failures, mut failed) = watch::channel(None);
        let launch = sleeper(dir.path(), "echo boom-from-child; exit 3");
        let _process = ManagedProcess::launch(&spawner, &launch, failures)
            .await
            .unwrap();
        let report =
            tokio::time::timeout(Duration::from_secs(10), failed.wait_for(Option::is_some))
                .await
                .unwrap()
                .unwrap()
                .clone()
                .unwrap();
        assert!(
            report.contains("kube-scheduler exited unexpectedly"),
            "{report}"
        );
        assert!(report.contains("boom-from-child"), "{report}");
    }

    #[tokio::test]
    async fn spawner_thread_exit_kills_children_via_pdeathsig() {
        let dir = tempfile::tempdir().unwrap();
        let spawner = Spawner::start().unwrap();
        let (failures, _) = watch::channel(None);
        let process =
            ManagedProcess::launch(&spawner, &sleeper(dir.path(), "exec sleep 30"), failures)
                .await
                .unwrap();
        let pid = process.pid;
        drop(spawner);
        assert!(
            procfs::wait_gone(pid, Duration::from_secs(10)).await,
            "child survived"
        );
    }
}
