//! The cluster's host-namespace network: bridge `gmc0` carrying the node IP (the CNI bridge
//! plugin attaches the pods' veths to it), and `unreachable` routes for the pod and service
//! CIDRs so stray traffic fails locally (kube-proxy's rules DNAT ClusterIPs before routing).

use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

use crate::layout::{BRIDGE, BRIDGE_MAC, BRIDGE_PREFIX, CLUSTER_POD_CIDR, NODE_IP, SERVICE_CIDR};

/// CIDRs routed `unreachable` while the cluster runs.
pub(crate) const UNREACHABLE_CIDRS: [&str; 2] = [CLUSTER_POD_CIDR, SERVICE_CIDR];

/// Runs `ip args...`; its stdout on success, an error with its stderr otherwise.
pub(crate) fn ip(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running `ip` (is iproute2 installed?)")?;
    if !output.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Whether the bridge exists.
pub(crate) fn bridge_exists() -> bool {
    ip(&["link", "show", "dev", BRIDGE]).is_ok()
}

/// Our CIDRs among the `unreachable` routes listed by `ip route show type unreachable`.
pub(crate) fn our_unreachable_routes(listing: &str) -> Vec<&'static str> {
    UNREACHABLE_CIDRS
        .into_iter()
        .filter(|cidr| {
            listing.lines().any(|line| {
                let mut words = line.split_whitespace();
                words.next() == Some("unreachable") && words.next() == Some(cidr)
            })
        })
        .collect()
}

/// Creates the bridge (with its fixed MAC) carrying the node IP, and the unreachable routes.
pub(crate) fn setup() -> anyhow::Result<()> {
    let address = format!("{NODE_IP}/{BRIDGE_PREFIX}");
    ip(&[
        "link", "add", BRIDGE, "address", BRIDGE_MAC, "type", "bridge",
    ])?;
    // Pods and the node talk IPv4 only; keep the bridge quiet on IPv6.
    let _ = std::fs::write(
        format!("/proc/sys/net/ipv6/conf/{BRIDGE}/disable_ipv6"),
        "1",
    );
    ip(&["addr", "add", &address, "dev", BRIDGE])?;
    ip(&["link", "set", BRIDGE, "up"])?;
    for cidr in UNREACHABLE_CIDRS {
        ip(&["route", "replace", "unreachable", cidr])?;
    }
    Ok(())
}

/// Interface names in the text of `ip -o link show` (without their `@peer` suffix).
pub(crate) fn link_names(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_string())
        .collect()
}

/// Removes the pods' veths on the bridge, the bridge and our unreachable routes if present;
/// returns what was removed.
pub(crate) fn teardown() -> anyhow::Result<Vec<String>> {
    let mut removed = Vec::new();
    if bridge_exists() {
        for veth in link_names(&ip(&["-o", "link", "show", "master", BRIDGE])?) {
            // Gone already when its pod's netns went away in the meantime.
            if ip(&["link", "delete", &veth]).is_ok() {
                removed.push(format!("veth {veth}"));
            }
        }
        ip(&["link", "delete", BRIDGE])?;
        removed.push(format!("bridge {BRIDGE}"));
    }
    let listing = ip(&["route", "show", "type", "unreachable"])?;
    for cidr in our_unreachable_routes(&listing) {
        ip(&["route", "delete", "unreachable", cidr])?;
        removed.push(format!("unreachable route {cidr}"));
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names_drop_the_peer_suffix() {
        let listing = "7: veth1a2b@if2: <BROADCAST> mtu 1500 master gmc0\n8: lo: <LOOPBACK>\n";
        assert_eq!(link_names(listing), ["veth1a2b", "lo"]);
    }

    #[test]
    fn finds_only_our_unreachable_routes() {
        let listing = "unreachable 10.244.0.0/16 \nunreachable 10.1.0.0/16\n";
        assert_eq!(our_unreachable_routes(listing), vec!["10.244.0.0/16"]);
        let both = "unreachable 10.96.0.0/16\nunreachable 10.244.0.0/16 metric 5\n";
        assert_eq!(
            our_unreachable_routes(both),
            vec!["10.244.0.0/16", "10.96.0.0/16"]
        );
        assert!(our_unreachable_routes("").is_empty());
    }
}
