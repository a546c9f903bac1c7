//! Pod network sandboxes made with iproute2: a named netns, a veth pair whose host end sits on
//! the bridge and whose pod end is `eth0` with the pod IP and only the connected route.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

/// Prefix of every network namespace the kubelet creates.
pub const NETNS_PREFIX: &str = "gmc-";
/// Prefix of every host-side veth the kubelet creates.
pub const VETH_PREFIX: &str = "gmcv";

/// Names of a pod's netns and host veth, derived from its UID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxNames {
    pub netns: String,
    pub veth: String,
}

impl SandboxNames {
    /// `gmc-<12 hex>` and `gmcv<8 hex>` from the UID's hex digits.
    pub fn for_uid(uid: &str) -> Self {
        let hex: String = uid
            .chars()
            .filter(char::is_ascii_hexdigit)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let hex = format!("{hex:0<12}");
        Self {
            netns: format!("{NETNS_PREFIX}{}", &hex[..12]),
            veth: format!("{VETH_PREFIX}{}", &hex[..8]),
        }
    }

    /// The bind-mounted namespace file `ip netns add` creates.
    pub fn netns_path(&self) -> std::path::PathBuf {
        Path::new("/run/netns").join(&self.netns)
    }
}

fn ip_binary() -> &'static str {
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("ip")
}

/// Runs `ip <args>`, failing with its stderr.
pub fn ip(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(ip_binary())
        .args(args)
        .env_clear()
        .output()
        .with_context(|| format!("cannot run ip {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Creates the netns and veth pair; on failure removes what was made.
pub fn create(
    names: &SandboxNames,
    bridge: &str,
    addr: Ipv4Addr,
    prefix_len: u8,
) -> anyhow::Result<()> {
    let result = create_steps(names, bridge, addr, prefix_len);
    if result.is_err() {
        delete(names);
    }
    result
}

fn create_steps(
    names: &SandboxNames,
    bridge: &str,
    addr: Ipv4Addr,
    prefix_len: u8,
) -> anyhow::Result<()> {
    let (ns, veth) = (names.netns.as_str(), names.veth.as_str());
    let cidr = format!("{addr}/{prefix_len}");
    ip(&["netns", "add", ns])?;
    ip(&[
        "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns,
    ])?;
    ip(&["link", "set", veth, "master", bridge])?;
    ip(&["link", "set", veth, "up"])?;
    ip(&["-n", ns, "link", "set", "lo", "up"])?;
    ip(&["-n", ns, "addr", "add", &cidr, "dev", "eth0"])?;
    ip(&["-n", ns, "link", "set", "eth0", "up"])?;
    Ok(())
}

/// Removes the veth and netns; missing ones are fine. Returns what was removed.
pub fn delete(names: &SandboxNames) -> Vec<String> {
    let mut removed = Vec::new();
    if ip(&["link", "del", &names.veth]).is_ok() {
        removed.push(format!("veth {}", names.veth));
    }
    if names.netns_path().exists() && ip(&["netns", "del", &names.netns]).is_ok() {
        removed.push(format!("netns {}", names.netns));
    }
    removed
}

/// Names of existing network namespaces created by a process kubelet.
pub fn list_ours() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(NETNS_PREFIX))
        .collect()
}

/// PIDs of processes inside a named netns.
pub fn pids_in(netns: &str) -> Vec<i32> {
    ip(&["netns", "pids", netns])
        .map(|out| {
            out.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_kernel_limits() {
        let names = SandboxNames::for_uid("6F1C2B3A-0D4E-4a5b-9c8d-7e6f5a4b3c2d");
        assert_eq!(names.netns, "gmc-6f1c2b3a0d4e");
        assert_eq!(names.veth, "gmcv6f1c2b3a");
        assert!(names.veth.len() <= 15);
        let short = SandboxNames::for_uid("ab");
        assert_eq!(short.veth, "gmcvab000000");
    }
}
