//! On-disk records of everything a run creates, and removal of a killed run's leftovers.
//!
//! Layout below `state_dir/pods/<uid>/`: `_sandbox.json` (netns, veth, IP; written before the
//! netns is created), `_root/` (mount point of container roots), `_sa/` (service-account
//! files), `_etc/` (hosts, hostname), and one directory per container holding
//! `<restartCount>.log` and `pid` (pid + start time of the running process).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::netns::{self, SandboxNames};

/// A pod sandbox as recorded on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxRecord {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub netns: String,
    pub veth: String,
    pub ip: Ipv4Addr,
}

/// A container process as recorded on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub pid: u32,
    /// Start time in clock ticks since boot (`/proc/<pid>/stat` field 22).
    pub start_time: u64,
}

/// Paths of one pod's state.
#[derive(Debug, Clone)]
pub struct PodDir(pub PathBuf);

impl PodDir {
    /// `state_dir/pods/<uid>`.
    pub fn new(state_dir: &Path, uid: &str) -> Self {
        Self(pods_dir(state_dir).join(uid))
    }
    pub fn sandbox_record(&self) -> PathBuf {
        self.0.join("_sandbox.json")
    }
    pub fn root(&self) -> PathBuf {
        self.0.join("_root")
    }
    pub fn service_account(&self) -> PathBuf {
        self.0.join("_sa")
    }
    pub fn etc(&self) -> PathBuf {
        self.0.join("_etc")
    }
    pub fn container(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    pub fn pid_file(&self, container: &str) -> PathBuf {
        self.container(container).join("pid")
    }
}

/// `state_dir/pods`.
pub fn pods_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("pods")
}

/// Writes `value` as JSON atomically (temp file + rename).
pub fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let bytes = serde_json::to_vec_pretty(value)?;
    write_atomic(path, &bytes, 0o644)
}

/// Writes a file atomically with the given mode.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {tmp:?}"))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename {tmp:?} to {path:?}"))?;
    Ok(())
}

/// The start time of a live process, if it exists.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

/// Field 22 of a `/proc/<pid>/stat` line (the command may contain spaces and parentheses).
pub fn parse_start_time(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

impl ProcessRecord {
    /// Records a just-started process.
    pub fn of(pid: u32) -> Option<Self> {
        Some(Self {
            pid,
            start_time: process_start_time(pid)?,
        })
    }

    /// Whether the recorded process still runs (same pid and start time).
    pub fn alive(&self) -> bool {
        process_start_time(self.pid) == Some(self.start_time)
    }

    /// Sends `signal` to the process (and with `group` its whole process group) if it is still
    /// the recorded one.
    pub fn signal(&self, signal: Signal, group: bool) -> bool {
        if !self.alive() {
            return false;
        }
        let pid = Pid::from_raw(self.pid as i32);
        if group {
            let _ = killpg(pid, signal);
        }
        kill(pid, signal).is_ok()
    }
}

/// Removes what an earlier (killed) run left below `state_dir`: recorded processes, netns and
/// veths, mounts, files. Returns what was removed.
pub fn cleanup_stale(state_dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut removed = Vec::new();
    let pods = pods_dir(state_dir);
    if let Ok(entries) = std::fs::read_dir(&pods) {
        for entry in entries.flatten() {
            let dir = PodDir(entry.path());
            removed.extend(kill_recorded_processes(&dir));
            if let Ok(bytes) = std::fs::read(dir.sandbox_record())
                && let Ok(record) = serde_json::from_slice::<SandboxRecord>(&bytes)
            {
                removed.extend(kill_netns_processes(&record.netns));
                removed.extend(netns::delete(&SandboxNames {
                    netns: record.netns,
                    veth: record.veth,
                }));
            }
        }
    }
    removed.extend(unmount_below(state_dir)?);
    if pods.exists() {
        std::fs::remove_dir_all(&pods).with_context(|| format!("cannot remove {pods:?}"))?;
        removed.push(format!("directory {}", pods.display()));
    }
    Ok(removed)
}

/// Removes every `gmc-*` network namespace no process runs in, whichever run made it (their
/// veths go with them). Not part of [`cleanup_stale`]: another live cluster on the same host may
/// own such a namespace between creating it and starting the pod's first process.
pub fn cleanup_unrecorded_netns() -> Vec<String> {
    netns::list_ours()
        .into_iter()
        .filter(|name| netns::pids_in(name).is_empty())
        .flat_map(|name| {
            netns::delete(&SandboxNames {
                netns: name,
                veth: String::new(),
            })
        })
        .collect()
}

fn kill_recorded_processes(dir: &PodDir) -> Vec<String> {
    let mut killed = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir.0) else {
        return killed;
    };
    for entry in entries.flatten() {
        let pid_file = entry.path().join("pid");
        let Ok(bytes) = std::fs::read(&pid_file) else {
            continue;
        };
        let Ok(record) = serde_json::from_slice::<ProcessRecord>(&bytes) else {
            continue;
        };
        if record.signal(Signal::SIGKILL, true) {
            killed.push(format!(
                "process {} ({})",
                record.pid,
                entry.path().display()
            ));
        }
    }
    killed
}

fn kill_netns_processes(netns_name: &str) -> Vec<String> {
    netns::pids_in(netns_name)
        .into_iter()
        .filter(|pid| kill(Pid::from_raw(*pid), Signal::SIGKILL).is_ok())
        .map(|pid| format!("process {pid} in netns {netns_name}"))
        .collect()
}

/// Mount points at or below `dir` from `/proc/self/mountinfo`, deepest first.
pub fn mounts_below(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mount_path)
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

fn unescape_mount_path(raw: &str) -> String {
    raw.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

fn unmount_below(dir: &Path) -> anyhow::Result<Vec<String>> {
    let Ok(dir) = dir.canonicalize() else {
        return Ok(Vec::new());
    };
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(mounts_below(&mountinfo, &dir)
        .into_iter()
        .filter(|p| nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH).is_ok())
        .map(|p| format!("mount {}", p.display()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_start_time_with_odd_command_names() {
        let stat = "1234 (we ird) name)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_time(stat), Some(987_654));
        assert_eq!(parse_start_time("garbage"), None);
    }

    #[test]
    fn own_process_is_alive_and_a_wrong_start_time_is_not() {
        let me = ProcessRecord::of(std::process::id()).unwrap();
        assert!(me.alive());
        assert!(
            !ProcessRecord {
                start_time: me.start_time + 1,
                ..me
            }
            .alive()
        );
    }

    #[test]
    fn finds_mounts_below_dir_deepest_first() {
        let info = "22 1 0:21 / /proc rw - proc proc rw\n\
                    40 1 0:50 / /state/pods/u/_root rw - tmpfs tmpfs rw\n\
                    41 40 0:51 / /state/pods/u/_root/usr ro - ext4 /dev/vda rw\n\
                    42 1 0:52 / /state/pods\\040x rw - tmpfs tmpfs rw\n\
                    43 1 0:53 / /statefoo rw - tmpfs tmpfs rw\n";
        assert_eq!(
            mounts_below(info, Path::new("/state")),
            [
                PathBuf::from("/state/pods/u/_root/usr"),
                PathBuf::from("/state/pods/u/_root"),
                PathBuf::from("/state/pods x")
            ]
        );
    }

    #[test]
    fn cleanup_of_an_empty_state_dir_removes_only_files() {
        let dir = tempfile::tempdir().unwrap();
        let pod = PodDir::new(dir.path(), "uid-1");
        std::fs::create_dir_all(pod.container("c")).unwrap();
        std::fs::write(pod.pid_file("c"), br#"{"pid":1,"start_time":1}"#).unwrap();
        let removed = cleanup_stale(dir.path()).unwrap();
        assert!(
            removed.iter().any(|r| r.starts_with("directory ")),
            "{removed:?}"
        );
        assert!(
            !removed.iter().any(|r| r.starts_with("process ")),
            "{removed:?}"
        );
        assert!(!pods_dir(dir.path()).exists());
    }
}
