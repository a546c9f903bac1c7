//! Removing what a cluster leaves behind: component processes (verified against their pid
//! files), the containers and their shims, the host's sysctls as recorded, kube-proxy's nft
//! tables, veths, the bridge and routes, mounts below the state dir (containerd's rootfs and
//! netns mounts, the kubelet's volumes), the kubepods cgroups and the node's host files.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use crate::layout::StateLayout;
use crate::lock::{ClusterLock, lock_file};
use crate::process::parse_pid_file;
use crate::sysctls::RecordedSysctls;
use crate::{host, net, procfs};

/// Removes leftovers of a killed cluster in `state_dir` (see the module docs); returns what
/// was removed. Fails if a live cluster holds the machine-wide lock.
pub fn cleanup_stale(state_dir: &Path) -> anyhow::Result<Vec<String>> {
    let _lock = ClusterLock::acquire(&lock_file(), state_dir)?;
    cleanup_stale_locked(state_dir)
}

/// [`cleanup_stale`] for a caller that already holds the lock.
pub(crate) fn cleanup_stale_locked(state_dir: &Path) -> anyhow::Result<Vec<String>> {
    let layout = StateLayout::new(state_dir);
    let mut removed = kill_recorded_components(&layout);
    let containers = host::kill_pod_processes();
    if containers > 0 {
        removed.push(format!("{containers} container processes"));
    }
    removed.extend(
        host::kill_shims(state_dir)
            .iter()
            .map(|pid| format!("shim {pid}")),
    );
    removed.extend(
        RecordedSysctls::restore_saved(&layout.sysctls_file())
            .context("restoring the host's sysctls")?,
    );
    removed.extend(host::delete_nft_tables()?);
    removed.extend(net::teardown().context("removing the cluster network")?);
    removed.extend(unmount_below(state_dir)?);
    removed.extend(host::remove_kubepods_cgroups()?);
    removed.extend(host::remove_host_files(state_dir)?);
    Ok(removed)
}

/// Whether `argv` is the recorded `program` started for a cluster in `state_dir`.
pub(crate) fn is_component_of(argv: &[String], program: &Path, state_dir: &Path) -> bool {
    let state_dir = state_dir.display().to_string();
    argv.first().map(Path::new) == Some(program)
        && argv.iter().skip(1).any(|arg| arg.contains(&state_dir))
}

fn wait_gone_blocking(pid: i32, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while procfs::is_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill_recorded_components(layout: &StateLayout) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(layout.run_dir()) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|ext| ext != "pid") {
            continue;
        }
        let recorded = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| parse_pid_file(&text));
        if let Some((pid, program)) = recorded {
            let ours = procfs::cmdline(pid)
                .is_some_and(|argv| is_component_of(&argv, &program, layout.root()));
            if ours && procfs::is_alive(pid) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                wait_gone_blocking(pid, Duration::from_secs(5));
                removed.push(format!("process {pid} ({})", program.display()));
            }
        }
        let _ = std::fs::remove_file(&path);
    }
    removed
}

fn unescape_mount_path(field: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo (octal).
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points at or below `dir` in the text of `/proc/self/mountinfo`, deepest first.
pub(crate) fn mounts_below(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    let mut mounts: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_mount_path(field)))
        .filter(|mount| mount.starts_with(dir))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    mounts.dedup();
    mounts
}

/// Lazily unmounts everything mounted at or below `dir` in this mount namespace.
pub(crate) fn unmount_below(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    let mut removed = Vec::new();
    for mount in mounts_below(&mountinfo, dir) {
        nix::mount::umount2(&mount, nix::mount::MntFlags::MNT_DETACH)
            .with_context(|| format!("unmounting {}", mount.display()))?;
        removed.push(format!("mount {}", mount.display()));
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_identity_needs_program_and_state_dir() {
        let argv = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let program = Path::new("/bin/etcd");
        let state = Path::new("/run/gmc");
        assert!(is_component_of(
            &argv(&["/bin/etcd", "--data-dir=/run/gmc/cluster/etcd"]),
            program,
            state
        ));
        assert!(!is_component_of(
            &argv(&["/bin/etcd", "--data-dir=/var/lib/etcd"]),
            program,
            state
        ));
        assert!(!is_component_of(
            &argv(&["/usr/bin/vim", "/run/gmc/x"]),
            program,
            state
        ));
        assert!(!is_component_of(&[], program, state));
    }

    #[test]
    fn finds_mounts_below_a_dir_deepest_first_with_escapes() {
        let info = "\
22 1 0:21 / / rw - ext4 /dev/vda rw
30 22 0:40 / /run/gmc/kubelet/pods/a rw - tmpfs tmpfs rw
31 30 0:41 / /run/gmc/kubelet/pods/a/x\\040y rw - tmpfs tmpfs rw
32 22 0:42 / /run/gmc-other rw - tmpfs tmpfs rw
";
        assert_eq!(
            mounts_below(info, Path::new("/run/gmc")),
            vec![
                PathBuf::from("/run/gmc/kubelet/pods/a/x y"),
                PathBuf::from("/run/gmc/kubelet/pods/a"),
            ]
        );
    }
}
