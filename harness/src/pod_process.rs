//! Reading a pod's processes on the local backend, where a container is a host process
//! (`containerID` = `process://<pid>`): memory from `/proc/<pid>/status` and the traffic of the
//! pod's own network namespace from `/proc/<pid>/net/dev`.

use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

/// Host pid of a pod's first running container, when its containerID is `process://<pid>`.
pub fn container_pid(pod: &Pod) -> Option<i32> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find_map(|c| {
            c.container_id
                .as_deref()?
                .strip_prefix("process://")?
                .parse()
                .ok()
        })
}

/// Like [`container_pid`], failing with a message naming the pod.
pub fn require_container_pid(pod: &Pod) -> Result<i32> {
    container_pid(pod).with_context(|| {
        format!(
            "pod {} has no process://<pid> containerID (only the local backend runs containers as host processes)",
            pod.name_any()
        )
    })
}

/// Sum of the restart counts of a pod's containers.
pub fn restart_count(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|c| c.iter().map(|c| c.restart_count).sum())
        .unwrap_or(0)
}

/// Resident set size of a process in bytes (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_bytes(pid: i32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_vm_rss(&text).with_context(|| format!("{path} has no VmRSS line"))
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => Some(value * 1024),
        Some(_) => None,
    }
}

/// Clock ticks per second of `/proc` times (USER_HZ, 100 on every Linux architecture we run on).
const USER_HZ: f64 = 100.0;

/// Wall-clock time at which process `pid` started (10 ms resolution).
pub fn start_time(pid: i32) -> Result<SystemTime> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let ticks = parse_start_ticks(&stat).with_context(|| format!("{path} has no start time"))?;
    let uptime = std::fs::read_to_string("/proc/uptime").context("reading /proc/uptime")?;
    let now = SystemTime::now();
    let uptime: f64 = uptime
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .context("/proc/uptime is not a number of seconds")?;
    let age = (uptime - ticks as f64 / USER_HZ).max(0.0);
    Ok(now - Duration::from_secs_f64(age))
}

/// Field 22 (`starttime`) of `/proc/<pid>/stat`, counted after the parenthesised command name.
fn parse_start_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Bytes received by all non-loopback interfaces of the network namespace `pid` lives in.
pub fn netns_rx_bytes(pid: i32) -> Result<u64> {
    let path = format!("/proc/{pid}/net/dev");
    read_rx_bytes(Path::new(&path))
}

fn read_rx_bytes(path: &Path) -> Result<u64> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_rx_bytes(&text)
        .with_context(|| format!("{} is not in /proc/net/dev format", path.display()))
}

fn parse_rx_bytes(net_dev: &str) -> Result<u64> {
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
    use k8s_openapi::api::core::v1::{ContainerStatus, PodStatus};

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status = "Name:\tadmin-srv\nVmPeak:\t  9000 kB\nVmRSS:\t    7344 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(7344 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn start_ticks_survive_odd_command_names() {
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_ticks(stat), Some(987654));
        assert_eq!(parse_start_ticks("garbage"), None);
    }

    #[test]
    fn this_process_started_in_the_past() {
        let started = start_time(std::process::id() as i32).unwrap();
        let age = SystemTime::now().duration_since(started).unwrap();
        assert!(age < Duration::from_secs(3600), "{age:?}");
    }

    #[test]
    fn rx_bytes_skip_loopback_and_sum_the_rest() {
        let net_dev = "Inter-|   Receive                            |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes packets\n    lo:  999999     10    0    0    0     0          0         0   999999 10\n  eth0:   12345     20    0    0    0     0          0         0     678 9\n";
        assert_eq!(parse_rx_bytes(net_dev).unwrap(), 12345);
        let only_lo = "h1\nh2\n    lo:  1 1 0 0 0 0 0 0 1 1\n";
        assert!(parse_rx_bytes(only_lo).is_err());
    }

    #[test]
    fn container_pid_comes_from_a_process_container_id() {
        let pod = |id: &str| Pod {
            status: Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus {
                    container_id: Some(id.into()),
                    restart_count: 2,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(container_pid(&pod("process://4242")), Some(4242));
        assert_eq!(container_pid(&pod("containerd://abc")), None);
        assert_eq!(restart_count(&pod("process://1")), 2);
        assert!(require_container_pid(&Pod::default()).is_err());
    }
}
