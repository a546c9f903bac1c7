//! Checks that this machine can run the local cluster, with clear errors when it cannot.

use std::path::Path;

use anyhow::{Context as _, bail};

use crate::binaries::{check_binaries, check_node_binaries};
use crate::net::ip;

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;

/// Effective capability bits from the text of `/proc/self/status`.
pub(crate) fn effective_capabilities(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
}

/// Names of the required capabilities missing from `cap_eff`.
pub(crate) fn missing_capabilities(cap_eff: u64) -> Vec<&'static str> {
    [
        (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
        (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
    ]
    .into_iter()
    .filter(|(bit, _)| cap_eff & (1u64 << bit) == 0)
    .map(|(_, name)| name)
    .collect()
}

/// Root, capabilities, iproute2, nft, network namespaces and the binaries.
pub(crate) fn check(bin_dir: &Path, node_bin_dir: &Path) -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "the local backend must run as root (it creates a bridge, cgroups and mounts); run \
             as root or use the k3s backend"
        );
    }
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let cap_eff = effective_capabilities(&status).context("no CapEff in /proc/self/status")?;
    let missing = missing_capabilities(cap_eff);
    if !missing.is_empty() {
        bail!(
            "the local backend needs {} (e.g. a privileged container or full root)",
            missing.join(" and ")
        );
    }
    ip(&["-V"]).context("iproute2's `ip` command is required by the local backend")?;
    let probe = format!("gmc-probe-{}", std::process::id());
    ip(&["netns", "add", &probe])
        .context("network namespaces are not supported here (`ip netns add` failed)")?;
    ip(&["netns", "delete", &probe])
        .with_context(|| format!("deleting probe network namespace {probe}"))?;
    let nft = std::process::Command::new("nft").arg("--version").output();
    if !nft.is_ok_and(|o| o.status.success()) {
        bail!(
            "kube-proxy's nftables mode needs `nft` on PATH (Debian package nftables; \
             ci/node/build.sh installs it)"
        );
    }
    check_binaries(bin_dir)?;
    check_node_binaries(node_bin_dir)
}

/// Room the node takes on the filesystem of its state directory beyond the kubelet's eviction
/// threshold: the imported images, etcd and the pod logs of a run (a few hundred MiB), with margin.
const NODE_ROOM_BYTES: u64 = 2 << 30;

/// Free bytes below which the kubelet evicts every pod, on a filesystem of `size` bytes.
fn eviction_bytes(size: u64) -> u64 {
    size / 100 * crate::node_config::EVICTION_FREE_PERCENT
}

/// The free bytes a filesystem of `size` bytes needs for a node, when `free` is less.
pub(crate) fn space_shortfall(free: u64, size: u64) -> Option<u64> {
    let needed = eviction_bytes(size) + NODE_ROOM_BYTES;
    (free < needed).then_some(needed)
}

/// Refuses to start a node whose kubelet would evict the pods under test for lack of disk space
/// on the filesystem of `state_dir` (containerd's and the kubelet's directories are under it).
pub(crate) fn check_free_space(state_dir: &Path) -> anyhow::Result<()> {
    let stat = nix::sys::statvfs::statvfs(state_dir)
        .with_context(|| format!("cannot read the free space of {}", state_dir.display()))?;
    let block = stat.fragment_size();
    let (free, size) = (stat.blocks_available() * block, stat.blocks() * block);
    if let Some(needed) = space_shortfall(free, size) {
        let gib = |bytes: u64| bytes as f64 / f64::from(1u32 << 30);
        bail!(
            "{} has {:.1} GiB free on its filesystem; the local cluster needs {:.1} GiB there: its \
             kubelet evicts every pod below {}% free ({:.1} GiB), and the images, etcd and pod \
             logs take up to {:.0} GiB. Free some disk space (an old cargo target directory?)",
            state_dir.display(),
            gib(free),
            gib(needed),
            crate::node_config::EVICTION_FREE_PERCENT,
            gib(eviction_bytes(size)),
            gib(NODE_ROOM_BYTES),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filesystem_near_the_eviction_threshold_is_refused() {
        let gib = 1u64 << 30;
        // 252 GiB: 1 % is 2.52 GiB, plus 2 GiB of room.
        assert_eq!(
            space_shortfall(4 * gib, 252 * gib),
            Some(252 * gib / 100 + 2 * gib)
        );
        assert_eq!(space_shortfall(5 * gib, 252 * gib), None);
        assert_eq!(
            space_shortfall(gib, 10 * gib),
            Some(10 * gib / 100 + 2 * gib)
        );
    }

    #[test]
    fn the_free_space_of_a_real_directory_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let stat = nix::sys::statvfs::statvfs(dir.path()).unwrap();
        assert!(stat.blocks() > 0);
        let missing = dir.path().join("missing");
        let error = check_free_space(&missing).unwrap_err().to_string();
        assert!(
            error.contains("cannot read the free space of") && error.contains("missing"),
            "{error}"
        );
    }

    #[test]
    fn parses_effective_capabilities() {
        let status = "Name:\tx\nCapPrm:\t0000000000000000\nCapEff:\t000001fffeffffff\n";
        assert_eq!(effective_capabilities(status), Some(0x1fffeffffff));
        assert_eq!(effective_capabilities("Name: x\n"), None);
    }

    #[test]
    fn reports_missing_capabilities() {
        assert!(missing_capabilities(0x1fffeffffff).is_empty());
        assert_eq!(
            missing_capabilities(1 << CAP_NET_ADMIN),
            vec!["CAP_SYS_ADMIN"]
        );
        assert_eq!(
            missing_capabilities(0),
            vec!["CAP_NET_ADMIN", "CAP_SYS_ADMIN"]
        );
    }
}
