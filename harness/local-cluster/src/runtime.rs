//! Levers on the node's containers through the container runtime, for fault injection and
//! measurements: SIGKILL a container with ctr, and read its memory, CPU, start time and its
//! pod's network traffic from the container's cgroup (v1 or v2) and its first process.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use crate::containerd::{CRI_NAMESPACE, ctr};
use crate::host::{KUBEPODS, cgroup_mounts};
use crate::procfs;

/// How a container is reached through the node's containerd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRuntime {
    /// The `ctr` binary.
    pub ctr: PathBuf,
    /// containerd's socket.
    pub socket: PathBuf,
}

/// What a container uses, read from its cgroup and its processes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContainerStats {
    /// Resident set size of its processes (the sum of their `VmRSS`, what `ps` shows). The
    /// memory cgroup's own figure would leave out file pages another cgroup read first, such
    /// as the program itself, which the image import wrote.
    pub memory_bytes: u64,
    /// CPU time used since it started.
    pub cpu: Duration,
    /// When its first process started (10 ms resolution).
    pub started_at: SystemTime,
    /// Bytes received by its pod's network namespace on every interface but `lo`.
    pub pod_rx_bytes: u64,
}

/// The ID in a CRI `containerID` (`containerd://<id>`).
pub fn container_id(cri_id: &str) -> anyhow::Result<&str> {
    cri_id
        .strip_prefix("containerd://")
        .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit()))
        .with_context(|| format!("{cri_id:?} is not a containerd://<id> container ID"))
}

impl NodeRuntime {
    /// SIGKILLs the container's task (the kubelet then restarts it as for any crash).
    pub fn kill(&self, cri_id: &str) -> anyhow::Result<()> {
        let id = container_id(cri_id)?;
        ctr(
            &self.ctr,
            &self.socket,
            &[
                "-n",
                CRI_NAMESPACE,
                "tasks",
                "kill",
                "--signal",
                "SIGKILL",
                id,
            ],
        )
        .map(drop)
    }

    /// The container's usage from its cgroup.
    pub fn stats(&self, cri_id: &str) -> anyhow::Result<ContainerStats> {
        let id = container_id(cri_id)?;
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
        let cgroups: Vec<PathBuf> = cgroup_mounts(&mountinfo)
            .into_iter()
            .filter_map(|mount| find_dir(&mount.join(KUBEPODS), id, 4))
            .collect();
        if cgroups.is_empty() {
            bail!("no cgroup of container {id} below any kubepods hierarchy");
        }
        let pids = cgroups
            .iter()
            .map(|c| container_pids(c))
            .max_by_key(Vec::len)
            .unwrap_or_default();
        let memory_bytes = pids
            .iter()
            .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
            .filter_map(|status| vm_rss_bytes(&status))
            .sum();
        let cpu = cgroups
            .iter()
            .find_map(|c| cpu_usage(c))
            .context("no CPU accounting in the container's cgroups")?;
        let pid = *pids
            .first()
            .with_context(|| format!("container {id} has no process"))?;
        let start_ticks = procfs::start_time(pid).with_context(|| format!("pid {pid} is gone"))?;
        let net_dev = std::fs::read_to_string(format!("/proc/{pid}/net/dev"))
            .with_context(|| format!("reading the network counters of pid {pid}"))?;
        Ok(ContainerStats {
            memory_bytes,
            cpu,
            started_at: wall_clock_of(start_ticks)?,
            pod_rx_bytes: rx_bytes(&net_dev)?,
        })
    }
}

/// The directory named `name` at most `depth` levels below `dir`.
fn find_dir(dir: &Path, name: &str, depth: usize) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    let subdirs: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    if let Some(found) = subdirs
        .iter()
        .find(|d| d.file_name() == Some(name.as_ref()))
    {
        return Some(found.clone());
    }
    if depth == 0 {
        return None;
    }
    subdirs.iter().find_map(|d| find_dir(d, name, depth - 1))
}

fn cpu_usage(cgroup: &Path) -> Option<Duration> {
    if let Ok(ns) = std::fs::read_to_string(cgroup.join("cpuacct.usage")) {
        return Some(Duration::from_nanos(ns.trim().parse().ok()?));
    }
    let stat = std::fs::read_to_string(cgroup.join("cpu.stat")).ok()?;
    stat_value(&stat, "usage_usec").map(Duration::from_micros)
}

/// The processes of a cgroup, first started first (the container's entrypoint).
fn container_pids(cgroup: &Path) -> Vec<i32> {
    let Ok(procs) = std::fs::read_to_string(cgroup.join("cgroup.procs")) else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = procs
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    pids.sort_by_key(|pid| procfs::start_time(*pid).unwrap_or(u64::MAX));
    pids
}

/// `VmRSS` of a `/proc/<pid>/status`, in bytes (absent for kernel threads and zombies).
fn vm_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn stat_value(stat: &str, key: &str) -> Option<u64> {
    stat.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// Clock ticks per second of `/proc` times (USER_HZ, 100 on every Linux architecture we run on).
const USER_HZ: f64 = 100.0;

fn wall_clock_of(start_ticks: u64) -> anyhow::Result<SystemTime> {
    let uptime = std::fs::read_to_string("/proc/uptime").context("reading /proc/uptime")?;
    let now = SystemTime::now();
    let uptime: f64 = uptime
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .context("/proc/uptime is not a number of seconds")?;
    let age = (uptime - start_ticks as f64 / USER_HZ).max(0.0);
    Ok(now - Duration::from_secs_f64(age))
}

/// Received bytes of every interface but `lo` in the text of `/proc/<pid>/net/dev`.
pub(crate) fn rx_bytes(net_dev: &str) -> anyhow::Result<u64> {
    let mut total = 0;
    let mut interfaces = 0;
    for line in net_dev.lines().skip(2) {
        let Some((name, counters)) = line.split_once(':') else {
            bail!("line without an interface name: {line:?}");
        };
        if name.trim() == "lo" {
            continue;
        }
        let rx: u64 = counters
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no receive byte count in {line:?}"))?;
        total += rx;
        interfaces += 1;
    }
    if interfaces == 0 {
        bail!("no interface besides lo");
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_must_be_containerd_hex() {
        assert_eq!(container_id("containerd://ab12").unwrap(), "ab12");
        assert!(container_id("process://12").is_err());
        assert!(container_id("containerd://../x").is_err());
        assert!(container_id("containerd://").is_err());
    }

    #[test]
    fn resident_memory_is_vm_rss_in_bytes() {
        let status =
            "Name:\tuser-srv\nVmHWM:\t   20000 kB\nVmRSS:\t   13880 kB\nRssAnon:\t 4000 kB\n";
        assert_eq!(vm_rss_bytes(status), Some(13880 * 1024));
        assert_eq!(vm_rss_bytes("Name:\tkthreadd\nState:\tS\n"), None);
    }

    #[test]
    fn rx_bytes_skip_loopback_and_sum_the_rest() {
        let net_dev = "Inter-|   Receive                            |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes packets\n    lo:  999999     10    0    0    0     0          0         0   999999 10\n  eth0:   12345     20    0    0    0     0          0         0     678 9\n";
        assert_eq!(rx_bytes(net_dev).unwrap(), 12345);
        let only_lo = "h1\nh2\n    lo:  1 1 0 0 0 0 0 0 1 1\n";
        assert!(rx_bytes(only_lo).is_err());
    }

    #[test]
    fn a_dir_is_found_by_name_within_the_depth() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("besteffort/pod1/abc")).unwrap();
        assert_eq!(
            find_dir(root.path(), "abc", 4),
            Some(root.path().join("besteffort/pod1/abc"))
        );
        assert_eq!(find_dir(root.path(), "abc", 1), None);
    }

    #[test]
    fn this_process_started_in_the_past() {
        let ticks = procfs::start_time(std::process::id() as i32).unwrap();
        let started = wall_clock_of(ticks).unwrap();
        let age = SystemTime::now().duration_since(started).unwrap();
        assert!(age < Duration::from_secs(3600), "{age:?}");
    }
}
