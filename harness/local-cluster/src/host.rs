//! What the node leaves on the host outside the state dir, and removing it: container
//! processes and the `kubepods` cgroups (in every cgroup hierarchy), containerd's shims,
//! kube-proxy's nft tables, libcni's result cache, the kubelet's device-plugin socket and its
//! `/var/log/containers` links. The caller holds the machine-wide cluster lock, so every
//! `kubepods` cgroup and `kube-proxy` nft table on the machine is ours.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::layout::CNI_NETWORK;
use crate::procfs;

/// The kubelet's top cgroup (cgroupfs driver) in each hierarchy.
pub(crate) const KUBEPODS: &str = "kubepods";
/// kube-proxy's nft tables, by family.
pub(crate) const NFT_TABLES: [(&str, &str); 2] = [("ip", "kube-proxy"), ("ip6", "kube-proxy")];
/// libcni's result cache (containerd does not make it configurable).
pub(crate) const CNI_CACHE_DIR: &str = "/var/lib/cni";
/// The kubelet's device-plugin socket dir (fixed, whatever its `--root-dir`).
pub(crate) const DEVICE_PLUGINS_DIR: &str = "/var/lib/kubelet/device-plugins";
/// Where the kubelet links container logs (fixed, whatever its `podLogsDir`).
pub(crate) const CONTAINER_LOG_LINKS: &str = "/var/log/containers";
/// How long killed processes may take to leave their cgroups.
const KILL_TIMEOUT: Duration = Duration::from_secs(15);

/// Mount points of the cgroup (v1 and v2) hierarchies in the text of `/proc/self/mountinfo`.
pub(crate) fn cgroup_mounts(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fstype = right.split(' ').next()?;
            let mount = left.split(' ').nth(4)?;
            matches!(fstype, "cgroup" | "cgroup2").then(|| PathBuf::from(mount))
        })
        .collect()
}

/// The `kubepods` cgroup of every hierarchy where it exists.
pub(crate) fn kubepods_cgroups() -> Vec<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    cgroup_mounts(&mountinfo)
        .into_iter()
        .map(|mount| mount.join(KUBEPODS))
        .filter(|cgroup| cgroup.is_dir())
        .collect()
}

/// `dir` and every cgroup below it, deepest first.
fn cgroup_tree(dir: &Path) -> Vec<PathBuf> {
    let mut tree = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                tree.extend(cgroup_tree(&entry.path()));
            }
        }
    }
    tree.push(dir.to_path_buf());
    tree
}

fn pids_in(cgroups: &[PathBuf]) -> Vec<i32> {
    let mut pids: Vec<i32> = cgroups
        .iter()
        .flat_map(|cgroup| {
            std::fs::read_to_string(cgroup.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|line| line.trim().parse().ok())
                .collect::<Vec<_>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// SIGKILLs every process in a `kubepods` cgroup (the pods' containers) and waits until they
/// are gone; returns how many there were.
pub(crate) fn kill_pod_processes() -> usize {
    let cgroups: Vec<PathBuf> = kubepods_cgroups()
        .iter()
        .flat_map(|c| cgroup_tree(c))
        .collect();
    let pids = pids_in(&cgroups);
    for pid in &pids {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    wait_until(|| pids.iter().all(|pid| !procfs::is_alive(*pid)));
    pids.len()
}

/// SIGKILLs containerd's shims of the cluster in `state_dir` (they outlive containerd by
/// design); returns their pids.
pub(crate) fn kill_shims(state_dir: &Path) -> Vec<i32> {
    let state = state_dir.display().to_string();
    let shims: Vec<i32> = all_pids()
        .filter(|pid| {
            procfs::cmdline(*pid).is_some_and(|argv| {
                argv[0].ends_with("containerd-shim-runc-v2")
                    && argv.iter().any(|arg| arg.contains(&state))
            })
        })
        .collect();
    for pid in &shims {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    wait_until(|| shims.iter().all(|pid| !procfs::is_alive(*pid)));
    shims
}

fn all_pids() -> impl Iterator<Item = i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
}

fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + KILL_TIMEOUT;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Removes every `kubepods` cgroup tree (after [`kill_pod_processes`]); returns what it removed.
pub(crate) fn remove_kubepods_cgroups() -> anyhow::Result<Vec<String>> {
    let mut removed = Vec::new();
    for top in kubepods_cgroups() {
        for cgroup in cgroup_tree(&top) {
            // A cgroup whose last process just exited may report EBUSY for a moment.
            let mut result = std::fs::remove_dir(&cgroup);
            if result.is_err() {
                wait_until(|| {
                    result = std::fs::remove_dir(&cgroup);
                    result.is_ok() || !cgroup.exists()
                });
            }
            match result {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("removing cgroup {}", cgroup.display()));
                }
            }
        }
        removed.push(format!("cgroup {}", top.display()));
    }
    Ok(removed)
}

/// Our tables among the lines of `nft list tables`.
pub(crate) fn our_nft_tables(listing: &str) -> Vec<(&'static str, &'static str)> {
    NFT_TABLES
        .into_iter()
        .filter(|(family, name)| {
            listing
                .lines()
                .any(|line| line.trim() == format!("table {family} {name}"))
        })
        .collect()
}

/// Deletes kube-proxy's nft tables; nothing to do without `nft` (then nothing made them).
pub(crate) fn delete_nft_tables() -> anyhow::Result<Vec<String>> {
    let Ok(listing) = Command::new("nft")
        .args(["list", "tables"])
        .stdin(Stdio::null())
        .output()
    else {
        return Ok(Vec::new());
    };
    let listing = String::from_utf8_lossy(&listing.stdout);
    let mut removed = Vec::new();
    for (family, name) in our_nft_tables(&listing) {
        let status = Command::new("nft")
            .args(["delete", "table", family, name])
            .status()
            .context("running nft")?;
        anyhow::ensure!(
            status.success(),
            "nft delete table {family} {name}: {status}"
        );
        removed.push(format!("nft table {family} {name}"));
    }
    Ok(removed)
}

/// Removes the host files of the node outside `state_dir`: libcni's cached results of our
/// pods (our network's, and containerd's `cni-loopback` ones whose netns is in `state_dir`),
/// the kubelet's device-plugin socket, `/var/log/containers` links into `state_dir`,
/// and each of their directories that is left empty.
pub(crate) fn remove_host_files(state_dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut removed = Vec::new();
    let results = Path::new(CNI_CACHE_DIR).join("results");
    let our_netns = format!("\"netns\":\"{}/", state_dir.display());
    remove_entries(&results, &mut removed, |name, path| {
        name.starts_with(&format!("{CNI_NETWORK}-"))
            || std::fs::read_to_string(path).is_ok_and(|cached| cached.contains(&our_netns))
    })?;
    remove_entries(Path::new(DEVICE_PLUGINS_DIR), &mut removed, |name, _| {
        name == "kubelet.sock"
    })?;
    remove_entries(Path::new(CONTAINER_LOG_LINKS), &mut removed, |_, path| {
        std::fs::read_link(path).is_ok_and(|target| target.starts_with(state_dir))
    })?;
    for dir in [
        results.as_path(),
        Path::new(CNI_CACHE_DIR),
        Path::new(DEVICE_PLUGINS_DIR),
        Path::new("/var/lib/kubelet"),
        Path::new(CONTAINER_LOG_LINKS),
    ] {
        if std::fs::remove_dir(dir).is_ok() {
            removed.push(format!("empty dir {}", dir.display()));
        }
    }
    Ok(removed)
}

fn remove_entries(
    dir: &Path,
    removed: &mut Vec<String>,
    ours: impl Fn(&str, &Path) -> bool,
) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if ours(&entry.file_name().to_string_lossy(), &path) {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            removed.push(path.display().to_string());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cgroup_hierarchies_v1_and_v2() {
        let info = "\
25 1 0:22 / /sys/fs/cgroup ro - tmpfs tmpfs ro
26 25 0:23 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
27 25 0:24 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
28 1 0:25 / /run/x rw - tmpfs cgroup rw
";
        assert_eq!(
            cgroup_mounts(info),
            [
                PathBuf::from("/sys/fs/cgroup/unified"),
                PathBuf::from("/sys/fs/cgroup/memory")
            ]
        );
    }

    #[test]
    fn only_kube_proxy_tables_are_ours() {
        let listing =
            "table inet filter\ntable ip kube-proxy\ntable ip6 kube-proxy\ntable ip nat\n";
        assert_eq!(
            our_nft_tables(listing),
            [("ip", "kube-proxy"), ("ip6", "kube-proxy")]
        );
        assert!(our_nft_tables("table ip kube-proxy-other\n").is_empty());
    }

    #[test]
    fn a_cgroup_tree_lists_children_before_parents() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("kubepods");
        std::fs::create_dir_all(top.join("besteffort/pod1")).unwrap();
        let tree = cgroup_tree(&top);
        assert_eq!(
            tree,
            [
                top.join("besteffort/pod1"),
                top.join("besteffort"),
                top.clone()
            ]
        );
    }

    #[test]
    fn only_entries_the_predicate_names_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("gomicro-conformance-abc-eth0"), "").unwrap();
        std::fs::write(dir.path().join("other-abc-eth0"), "").unwrap();
        let mut removed = Vec::new();
        remove_entries(dir.path(), &mut removed, |name, _| {
            name.starts_with("gomicro-conformance-")
        })
        .unwrap();
        assert_eq!(removed.len(), 1);
        assert!(dir.path().join("other-abc-eth0").exists());
    }
}
